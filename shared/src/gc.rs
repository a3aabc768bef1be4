//! Garbage collection: Scan the whole table page by page and delete expired
//! sessions, each with a condition that re-checks expiry and lock at delete
//! time. A session refreshed after the scan saw it, or locked since, stays.
//!
//! BatchWriteItem cannot carry conditions, so a "batch" here is up to
//! `gc_batch_size` conditional DeleteItems sent together; a delete costs the
//! same write unit either way. `gc_operation_delay` pauses between pages and
//! batches, to keep a sweep within provisioned throughput.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use aws_sdk_dynamodb::Client;
use serde::Serialize;

use crate::config::Config;
use crate::error::SessionError;
use crate::item::*;

/// Where a sweep starts, when it stops, and how it pages.
#[derive(Debug, Clone, Default)]
pub struct GcOptions {
    /// Resume after this hash key value (a report's `resume_after`).
    pub start_after: Option<String>,
    /// Stop cleanly before this instant; None = run to the end.
    pub deadline: Option<Instant>,
    /// Items per Scan page (DynamoDB's 1 MB page when None).
    pub page_size: Option<i32>,
    /// Sweep one segment of a parallel scan: (segment, total_segments).
    pub segment: Option<(i32, i32)>,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Items the scans read.
    pub scanned: u64,
    /// Expired sessions deleted.
    pub deleted: u64,
    /// Expired sessions left: under a live lock, or refreshed before the delete.
    pub skipped: u64,
    /// Capacity units DynamoDB reported (scans and deletes).
    pub consumed_capacity: f64,
    pub duration_ms: u64,
    /// The whole table (or segment) was swept.
    pub finished: bool,
    /// When not finished: the key to pass as `start_after` next time
    /// (None = from the start).
    pub resume_after: Option<String>,
}

impl GcReport {
    /// Logs the report as one structured line.
    pub fn log(&self, message: &str) {
        tracing::info!(
            scanned = self.scanned,
            deleted = self.deleted,
            skipped = self.skipped,
            consumed_capacity = self.consumed_capacity,
            duration_ms = self.duration_ms,
            finished = self.finished,
            "{message}"
        );
    }
}

/// One page of a scan: the expired sessions not under a live lock, and the
/// key to continue after (None at the end).
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    pub expired: Vec<String>,
    pub next: Option<String>,
}

/// Sweeps the table (see the module doc). Persistent throttling stops it
/// early with `finished: false`; any other DynamoDB failure is an error.
pub async fn garbage_collect(client: &Client, config: &Config, options: GcOptions) -> Result<GcReport, SessionError> {
    let started = Instant::now();
    let mut sweeper = Sweeper::new(client, config, options.deadline);
    let mut position = options.start_after.clone();
    let finished = loop {
        if sweeper.out_of_time() {
            break false;
        }
        let page = match sweeper.scan_page(position.as_deref(), options.page_size, options.segment).await {
            Ok(page) => page,
            Err(e) if e.is_throttled() => break false,
            Err(e) => return Err(e),
        };
        match sweeper.delete_expired(&page.expired).await {
            // Stopped inside a page: the next run scans this page again, and
            // its conditional deletes make that harmless.
            Ok(false) => break false,
            Ok(true) => {}
            Err(e) if e.is_throttled() => break false,
            Err(e) => return Err(e),
        }
        match page.next {
            None => break true,
            Some(next) => position = Some(next),
        }
        sweeper.pause().await;
    };
    let mut report = sweeper.report;
    report.finished = finished;
    report.resume_after = if finished { None } else { position };
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The two steps of a sweep, public so each can be driven on its own.
pub struct Sweeper<'a> {
    client: &'a Client,
    config: &'a Config,
    deadline: Option<Instant>,
    pub report: GcReport,
}

const MAX_THROTTLE_RETRIES: u32 = 6;

impl<'a> Sweeper<'a> {
    pub fn new(client: &'a Client, config: &'a Config, deadline: Option<Instant>) -> Sweeper<'a> {
        Sweeper { client, config, deadline, report: GcReport::default() }
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    async fn pause(&self) {
        if !self.config.gc_operation_delay.is_zero() {
            tokio::time::sleep(self.config.gc_operation_delay).await;
        }
    }

    fn count_capacity(&mut self, consumed: Option<&ConsumedCapacity>) {
        self.report.consumed_capacity += consumed.and_then(|c| c.capacity_units).unwrap_or(0.0);
    }

    /// Reads one page, keeping only the keys of expired sessions whose lock
    /// (if any) is dead; the live-locked ones count as skipped.
    pub async fn scan_page(
        &mut self,
        start_after: Option<&str>,
        page_size: Option<i32>,
        segment: Option<(i32, i32)>,
    ) -> Result<ScanPage, SessionError> {
        let filter = format!("{P_EXP} < :now");
        let projection = format!("{P_KEY}, {P_EXP}, {P_LOCK}, {P_LEASE}");
        let mut attempt = 0;
        let out = loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.config.table_name)
                .set_expression_attribute_names(Some(names_for(self.config, &[&filter, &projection])))
                .expression_attribute_values(":now", n(now_secs()))
                .filter_expression(&filter)
                .projection_expression(&projection)
                .set_limit(page_size)
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if let Some(key) = start_after {
                request = request.exclusive_start_key(&self.config.hash_key, s(key));
            }
            if let Some((segment, total)) = segment {
                request = request.segment(segment).total_segments(total);
            }
            match request.send().await.map_err(|e| SessionError::dynamo("Scan", e)) {
                Ok(out) => break out,
                Err(e) if e.is_throttled() && attempt < MAX_THROTTLE_RETRIES && !self.out_of_time() => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.report.scanned += out.scanned_count as u64;
        self.count_capacity(out.consumed_capacity.as_ref());
        let now_ms = now_millis();
        let mut expired = Vec::new();
        for item in out.items.unwrap_or_default() {
            let Some(key) = item.get(&self.config.hash_key).and_then(|v| v.as_s().ok()) else { continue };
            if Record::decode(self.config, &item).lock_is_live(now_ms) {
                self.report.skipped += 1;
            } else {
                expired.push(key.clone());
            }
        }
        let next =
            out.last_evaluated_key.and_then(|k| k.get(&self.config.hash_key).and_then(|v| v.as_s().ok()).cloned());
        Ok(ScanPage { expired, next })
    }

    /// Deletes `keys` in batches of `gc_batch_size`, each delete conditional
    /// on the session still being expired and not live-locked. Returns false
    /// when the deadline stopped it before the end.
    pub async fn delete_expired(&mut self, keys: &[String]) -> Result<bool, SessionError> {
        for (i, batch) in keys.chunks(self.config.gc_batch_size).enumerate() {
            if self.out_of_time() {
                return Ok(false);
            }
            if i > 0 {
                self.pause().await;
            }
            let results = futures_util::future::join_all(batch.iter().map(|key| self.delete_one(key))).await;
            for result in results {
                match result? {
                    Deleted::Yes(consumed) => {
                        self.report.deleted += 1;
                        self.count_capacity(consumed.as_deref());
                    }
                    Deleted::NoLongerExpired => self.report.skipped += 1,
                }
            }
        }
        Ok(true)
    }

    async fn delete_one(&self, key: &str) -> Result<Deleted, SessionError> {
        let condition = format!(
            "{P_EXP} < :now AND (attribute_not_exists({P_LOCK}) OR attribute_not_exists({P_LEASE}) OR {P_LEASE} < :now_ms)"
        );
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .delete_item()
                .table_name(&self.config.table_name)
                .key(&self.config.hash_key, s(key))
                .set_expression_attribute_names(Some(names_for(self.config, &[&condition])))
                .expression_attribute_values(":now", n(now_secs()))
                .expression_attribute_values(":now_ms", n(now_millis()))
                .condition_expression(&condition)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => return Ok(Deleted::Yes(out.consumed_capacity.map(Box::new))),
                Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                    return Ok(Deleted::NoLongerExpired)
                }
                Err(e) => match SessionError::dynamo("DeleteItem", e) {
                    err if err.is_throttled() && attempt < MAX_THROTTLE_RETRIES && !self.out_of_time() => {
                        attempt += 1;
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    err => return Err(err),
                },
            }
        }
    }
}

enum Deleted {
    Yes(Option<Box<ConsumedCapacity>>),
    NoLongerExpired,
}

/// Exponential backoff with full jitter: up to 50 ms, 100 ms, ... 3.2 s.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(50) * 2u32.pow(attempt.min(6));
    Duration::from_micros(rand::Rng::random_range(&mut rand::rng(), 0..=cap.as_micros() as u64))
}

/// With `automatic_gc`, one session request in this many runs a sweep step
/// (PHP's default `session.gc_probability / session.gc_divisor` = 1/100).
pub const AUTOMATIC_GC_DIVISOR: u32 = 100;
/// A step sweeps one random segment of a parallel scan of this many...
pub const AUTOMATIC_GC_SEGMENTS: i32 = 16;
/// ...for at most this long, so the request that runs it stays fast.
pub const AUTOMATIC_GC_BUDGET: Duration = Duration::from_millis(200);

/// PHP's automatic GC, bounded: by chance (1 in [`AUTOMATIC_GC_DIVISOR`]) a
/// short sweep of one random scan segment. None when it did not run. A
/// large table is only partly swept this way: the scheduled sweep is the
/// one that finishes it.
pub async fn automatic_gc_step(client: &Client, config: &Config) -> Option<Result<GcReport, SessionError>> {
    use rand::Rng;
    let (roll, segment) = {
        let mut rng = rand::rng();
        (rng.random_range(0..AUTOMATIC_GC_DIVISOR), rng.random_range(0..AUTOMATIC_GC_SEGMENTS))
    };
    if !config.automatic_gc || roll != 0 {
        return None;
    }
    let options = GcOptions {
        deadline: Some(Instant::now() + AUTOMATIC_GC_BUDGET),
        segment: Some((segment, AUTOMATIC_GC_SEGMENTS)),
        page_size: Some(100),
        ..Default::default()
    };
    Some(garbage_collect(client, config, options).await)
}

/// Key of the item that keeps the scheduled sweep's position between runs,
/// in the sessions table itself ('#' never appears in a session key). It has
/// no expiry attribute, so neither a sweep nor TTL removes it.
pub const CHECKPOINT_KEY: &str = "#gc-checkpoint";

/// What a scheduled run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ScheduledSweep {
    Swept(GcReport),
    /// Another sweep holds the checkpoint: this run did nothing.
    AnotherSweepRunning,
}

/// One scheduled run: claims the checkpoint (a lease that ends at the
/// options' deadline, so a crashed run never blocks the next), sweeps from
/// the saved position (the options' `start_after` is ignored) until the
/// table ends or the deadline, and saves where it stopped.
pub async fn scheduled_sweep(
    client: &Client,
    config: &Config,
    options: GcOptions,
    run_id: &str,
) -> Result<ScheduledSweep, SessionError> {
    // Without a deadline, claim for Lambda's longest run.
    let lease = options.deadline.map_or(Duration::from_secs(900), |d| d.saturating_duration_since(Instant::now()));
    let lease_ms = now_millis() + lease.as_millis() as i64;
    let claim = client
        .update_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, s(CHECKPOINT_KEY))
        .update_expression("SET #owner = :run, #lease = :lease")
        .condition_expression("attribute_not_exists(#lease) OR #lease < :now_ms")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_names("#lease", "lease_until_ms")
        .expression_attribute_values(":run", s(run_id))
        .expression_attribute_values(":lease", n(lease_ms))
        .expression_attribute_values(":now_ms", n(now_millis()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
        .send()
        .await;
    let checkpoint = match claim {
        Ok(out) => out.attributes.unwrap_or_default(),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
            return Ok(ScheduledSweep::AnotherSweepRunning)
        }
        Err(e) => return Err(SessionError::dynamo("UpdateItem", e)),
    };
    let start_after = checkpoint.get("position").and_then(|v| v.as_s().ok()).cloned();
    let report = garbage_collect(client, config, GcOptions { start_after, ..options }).await?;

    // Save the position and release the claim (only if it is still ours).
    let mut sets = Vec::new();
    let mut removes = vec!["#owner", "#lease"];
    let mut names: HashMap<String, String> =
        [("#owner", "owner"), ("#lease", "lease_until_ms")].map(|(k, v)| (k.to_string(), v.to_string())).into();
    let mut values: HashMap<String, AttributeValue> = [(":run".to_string(), s(run_id))].into();
    match &report.resume_after {
        Some(position) => {
            sets.push("#position = :position");
            values.insert(":position".into(), s(position));
            names.insert("#position".into(), "position".into());
        }
        None if report.finished => {
            removes.push("#position");
            names.insert("#position".into(), "position".into());
        }
        // Stopped inside the first page: the saved position still holds.
        None => {}
    }
    if report.finished {
        sets.push("#finished = :finished");
        names.insert("#finished".into(), "last_finished".into());
        values.insert(":finished".into(), n(now_secs()));
    }
    let set_clause = if sets.is_empty() { String::new() } else { format!("SET {} ", sets.join(", ")) };
    let saved = client
        .update_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, s(CHECKPOINT_KEY))
        .update_expression(format!("{set_clause}REMOVE {}", removes.join(", ")))
        .condition_expression("#owner = :run")
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await;
    if let Err(e) = saved {
        // The sweep itself is done; a lost checkpoint only means the next run
        // starts over, which its conditional deletes make harmless.
        tracing::warn!(error = %SessionError::dynamo("UpdateItem", e), "gc checkpoint not saved");
    }
    Ok(ScheduledSweep::Swept(report))
}
