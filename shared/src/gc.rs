//! Garbage collection, a concern of the store: Scan the table page by page
//! and delete expired sessions, each delete conditional on the session
//! still being expired and unlocked at delete time, so a session refreshed
//! or locked after the scan stays.
//!
//! A sweep never starves the API: it runs within a capacity budget (a share
//! of the table's provisioned read and write units, read once with
//! DescribeTable; a configured rate on on-demand tables) and paces its Scan
//! pages (small `Limit`s) and deletes by the capacity DynamoDB reports them
//! consuming. Memory stays flat: one page at a time.
//!
//! BatchWriteItem cannot carry conditions, so a "batch" is up to
//! `gc_batch_size` conditional DeleteItems sent together (never more than the
//! write budget allows per second); a delete costs the same write unit
//! either way. Throttling and transient errors are retried by the SDK; when
//! it gives up, the sweep backs off and continues until its deadline.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, ConsumedCapacity, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure,
};
use rand::Rng;
use serde::Serialize;

use crate::budget::{self, InBudget};
use crate::config::Config;
use crate::error::SessionError;
use crate::expr::{attr_n, attr_s, Expr, WithCondition, WithExpressions, WithUpdate};
use crate::item::{conditions, Item, Now, Record};
use crate::items::Items;
use crate::lease::{lock_free, lock_is_live, stale_lease};
use crate::locking::end_stale_lease;
use crate::metrics::{count, MetricLine};
use crate::schema::checkpoint::{self, CLAIM, FINISHED, OWNER, POSITION};
use crate::schema::{bind_lock, lock_attributes, P_EXP, P_KEY};

/// With `automatic_gc`, one session request in this many runs a sweep step
/// (PHP's default `session.gc_probability / session.gc_divisor` = 1/100).
pub const AUTOMATIC_GC_DIVISOR: u32 = 100;
/// A step sweeps one random segment of a parallel scan of this many...
pub const AUTOMATIC_GC_SEGMENTS: i32 = 16;
/// ...for at most this long.
pub const AUTOMATIC_GC_BUDGET: Duration = Duration::from_millis(200);

/// Key of the item that keeps the scheduled sweep's position between runs,
/// in the sessions table itself ('#' never appears in a session key). It has
/// no expiry attribute, so neither a sweep nor TTL removes it.
pub const CHECKPOINT_KEY: &str = checkpoint::KEY;

/// The longest pause after a failure the SDK could not retry away.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(30);
/// Scan page sizes the pacing chooses between.
const PAGE_LIMITS: (i32, i32) = (10, 1000);

/// Capacity units per second a sweep may consume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CapacityBudget {
    /// Read units per second (Scan).
    pub read_units_per_second: f64,
    /// Write units per second (deletes).
    pub write_units_per_second: f64,
}

/// Where a sweep resumes: the last key of the last page it finished. Its
/// `Debug` hides the key (a session key holds a session id).
#[derive(Clone, PartialEq, Eq)]
pub struct ResumeKey(String);

impl fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeKey(…)")
    }
}

/// Where a sweep starts, when it stops, and what it may spend.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Resume after this key (a report's [`GcReport::resume_key`]).
    pub start_after: Option<ResumeKey>,
    /// Stop cleanly before this instant; None = run to the end.
    pub deadline: Option<Instant>,
    /// Sweep one segment of a parallel scan: (segment, total_segments).
    pub segment: Option<(i32, i32)>,
    /// The capacity budget; None = the table's (see [`crate::SessionStore::gc_budget`]).
    pub budget: Option<CapacityBudget>,
    /// First Scan page size; None = chosen from the budget.
    pub page_size: Option<i32>,
}

/// Why a sweep stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The whole table (or segment) was swept.
    Finished,
    /// The deadline came first; resume from [`GcReport::resume_key`].
    Deadline,
    /// A failure that is not transient (a bug, a missing permission).
    Failed,
}

/// What a sweep did. Exact: each expired session the scans found is counted
/// once, under what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcReport {
    /// Items the scans read.
    pub scanned: u64,
    /// Expired sessions deleted.
    pub deleted: u64,
    /// Expired sessions left: locked, or refreshed before the delete.
    pub skipped: u64,
    /// Expired sessions already gone at delete time (TTL, another sweep).
    pub gone: u64,
    /// Live sessions whose run-out lease (a crashed holder's) was removed, so
    /// PHP, which waits for any `lock`, can lock them again.
    pub leases_ended: u64,
    /// Read units DynamoDB reported (Scan).
    pub read_units: f64,
    /// Write units DynamoDB reported (deletes).
    pub write_units: f64,
    /// The budget the sweep kept to.
    pub budget: CapacityBudget,
    /// Failures the SDK could not retry away, each followed by a pause.
    pub transient_failures: u64,
    /// Wall time.
    pub duration_ms: u64,
    /// Why it stopped.
    pub stopped: Stop,
    #[serde(skip)]
    resume_key: Option<ResumeKey>,
}

impl GcReport {
    fn new(budget: CapacityBudget) -> GcReport {
        GcReport {
            scanned: 0,
            deleted: 0,
            skipped: 0,
            gone: 0,
            leases_ended: 0,
            read_units: 0.0,
            write_units: 0.0,
            budget,
            transient_failures: 0,
            duration_ms: 0,
            stopped: Stop::Finished,
            resume_key: None,
        }
    }

    /// The whole table (or segment) was swept.
    pub fn finished(&self) -> bool {
        self.stopped == Stop::Finished
    }

    /// Where to resume when not finished (None = from the start).
    pub fn resume_key(&self) -> Option<&ResumeKey> {
        self.resume_key.as_ref()
    }

    /// The sweep's metrics line: what it found and did, the capacity it
    /// used, and whether it finished the table (`SweepFinished`, 0 or 1)
    /// or failed.
    pub fn metric_line(&self) -> MetricLine {
        let stopped = match self.stopped {
            Stop::Finished => "finished",
            Stop::Deadline => "deadline",
            Stop::Failed => "failed",
        };
        MetricLine::new(&[("Stopped", stopped.into())]).metrics(
            &[&[]],
            &[
                ("SweepScanned", "Count", self.scanned as f64),
                ("SweepDeleted", "Count", self.deleted as f64),
                ("SweepSkipped", "Count", self.skipped as f64),
                ("SweepGone", "Count", self.gone as f64),
                ("SweepLeasesEnded", "Count", self.leases_ended as f64),
                ("SweepReadUnits", "Count", self.read_units),
                ("SweepWriteUnits", "Count", self.write_units),
                ("SweepTransientFailures", "Count", self.transient_failures as f64),
                ("SweepDuration", "Milliseconds", self.duration_ms as f64),
                ("SweepFinished", "Count", count(self.stopped == Stop::Finished)),
                ("SweepFailed", "Count", count(self.stopped == Stop::Failed)),
            ],
        )
    }

    /// Logs the report as one structured line (no keys in it).
    pub fn log(&self, message: &str) {
        tracing::info!(
            scanned = self.scanned,
            deleted = self.deleted,
            skipped = self.skipped,
            gone = self.gone,
            leases_ended = self.leases_ended,
            read_units = self.read_units,
            write_units = self.write_units,
            transient_failures = self.transient_failures,
            duration_ms = self.duration_ms,
            stopped = ?self.stopped,
            "{message}"
        );
    }
}

/// What a scheduled run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ScheduledSweep {
    /// This run held the checkpoint and swept.
    Swept(GcReport),
    /// Another sweep holds the checkpoint: this run did nothing.
    AnotherSweepRunning,
}

impl ScheduledSweep {
    /// The run's metrics line: the sweep's ([`GcReport::metric_line`]), or
    /// `SweepOverlapped` when another sweep held the checkpoint.
    pub fn metric_line(&self) -> MetricLine {
        match self {
            ScheduledSweep::Swept(report) => report.metric_line(),
            ScheduledSweep::AnotherSweepRunning => {
                MetricLine::new(&[]).metrics(&[&[]], &[("SweepOverlapped", "Count", 1.0)])
            }
        }
    }
}

/// Keeps an average rate of capacity units per second: each request's
/// reported consumption pushes the next request's start later.
struct Pacer {
    units_per_second: f64,
    ready_at: Instant,
}

impl Pacer {
    fn new(units_per_second: f64) -> Pacer {
        Pacer { units_per_second, ready_at: Instant::now() }
    }

    fn charge(&mut self, units: f64) {
        let cost = Duration::from_secs_f64((units / self.units_per_second).min(3600.0));
        self.ready_at = self.ready_at.max(Instant::now()) + cost;
    }

    /// Waits until the next request may go; false when the deadline comes first.
    async fn wait(&self, deadline: Option<Instant>) -> bool {
        if deadline.is_some_and(|d| self.ready_at >= d) {
            return false;
        }
        tokio::time::sleep_until(self.ready_at.into()).await;
        true
    }
}

/// One sweep's progress.
struct Sweep {
    report: GcReport,
    reads: Pacer,
    writes: Pacer,
    deadline: Option<Instant>,
    failures_in_a_row: u32,
}

impl Sweep {
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// After a failure the SDK gave up on: a growing pause (never past the
    /// deadline), or the error itself when it is not transient.
    async fn back_off(&mut self, err: SessionError) -> Result<(), SessionError> {
        if !err.is_transient() {
            return Err(err);
        }
        self.report.transient_failures += 1;
        self.failures_in_a_row += 1;
        tracing::warn!(error = %err, failures_in_a_row = self.failures_in_a_row, "gc: backing off");
        let pause = Duration::from_secs(1 << self.failures_in_a_row.min(5)).min(MAX_FAILURE_PAUSE);
        let pause = match self.deadline {
            Some(deadline) => pause.min(deadline.saturating_duration_since(Instant::now())),
            None => pause,
        };
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

fn units(consumed: Option<&ConsumedCapacity>) -> f64 {
    consumed.and_then(|c| c.capacity_units).unwrap_or(0.0)
}

/// Outcome of one conditional delete.
enum Deleted {
    Yes(f64),
    /// Refreshed or locked since the scan (the refusal still cost its units).
    Kept(f64),
    Gone(f64),
}

/// How one step of a sweep ended.
enum Step {
    /// Go on with the next page.
    Next,
    /// Stop, for this reason.
    Stop(Stop),
}

/// A page's items, sorted by what the sweep does with them.
#[derive(Default)]
struct Found {
    /// Keys of expired sessions under no live lock: to delete.
    expired: Vec<String>,
    /// Live sessions under a run-out lease of ours: to free.
    stale_leases: Vec<(String, Record)>,
    /// Expired sessions under a live lock: left.
    locked: u64,
}

impl Found {
    fn sort(config: &Config, items: Vec<Item>, now: Now) -> Found {
        let mut found = Found::default();
        for item in items {
            let Some(key) = item.get(&config.hash_key).and_then(|v| v.as_s().ok()).cloned() else { continue };
            let record = Record::decode(config, &item);
            if record.is_live(now) {
                found.stale_leases.push((key, record));
            } else if lock_is_live(&record, now) {
                found.locked += 1;
            } else {
                found.expired.push(key);
            }
        }
        found
    }
}

/// What claiming the scheduled sweep's checkpoint found.
enum Claim {
    /// This run holds it: sweep from the saved position.
    Taken { start_after: Option<ResumeKey> },
    /// Another run holds it.
    HeldByAnotherRun,
}

/// Garbage collection on the table's items, with the capacity budget read
/// once per store.
#[derive(Clone)]
pub(crate) struct Gc {
    items: Items,
    budget: Arc<OnceLock<CapacityBudget>>,
}

impl Gc {
    pub fn new(items: Items) -> Gc {
        Gc { items, budget: Arc::default() }
    }

    /// The capacity a sweep may use, read once per store with DescribeTable:
    /// `gc_capacity_share` of a provisioned table's units, or
    /// `gc_on_demand_rate` on an on-demand table.
    pub async fn budget(&self) -> Result<CapacityBudget, SessionError> {
        if let Some(budget) = self.budget.get() {
            return Ok(*budget);
        }
        let config = self.items.config();
        let table = self
            .items
            .client()
            .describe_table()
            .table_name(&config.table_name)
            .send()
            .in_budget()
            .await
            .map_err(|e| SessionError::dynamo("DescribeTable", e))?;
        let table = table.table();
        let on_demand = table.and_then(|t| t.billing_mode_summary()).and_then(|b| b.billing_mode())
            == Some(&BillingMode::PayPerRequest);
        let provisioned = table.and_then(|t| t.provisioned_throughput());
        let read = provisioned.and_then(|p| p.read_capacity_units()).unwrap_or(0) as f64;
        let write = provisioned.and_then(|p| p.write_capacity_units()).unwrap_or(0) as f64;
        let budget = if on_demand || read <= 0.0 || write <= 0.0 {
            CapacityBudget {
                read_units_per_second: config.gc_on_demand_rate,
                write_units_per_second: config.gc_on_demand_rate,
            }
        } else {
            // Even a 1-unit table gets something done: half a unit at least.
            let share = |units: f64| (units * config.gc_capacity_share).max(0.5);
            CapacityBudget { read_units_per_second: share(read), write_units_per_second: share(write) }
        };
        Ok(*self.budget.get_or_init(|| budget))
    }

    /// Sweeps the table (see the module doc) within its budget, from
    /// `options.start_after` to the end or the deadline.
    pub async fn delete_expired(&self, options: SweepOptions) -> Result<GcReport, SessionError> {
        let mut sweep = self.start_sweep(&options).await?;
        let outcome = self.run_sweep(&mut sweep, &options).await;
        let report = sweep.report;
        outcome.map(|()| report)
    }

    async fn start_sweep(&self, options: &SweepOptions) -> Result<Sweep, SessionError> {
        let budget = match options.budget {
            Some(budget) => budget,
            None => self.budget().await?,
        };
        let mut report = GcReport::new(budget);
        report.resume_key = options.start_after.clone();
        Ok(Sweep {
            report,
            reads: Pacer::new(budget.read_units_per_second),
            writes: Pacer::new(budget.write_units_per_second),
            deadline: options.deadline,
            failures_in_a_row: 0,
        })
    }

    /// The sweep loop. On every exit `sweep.report` says where it got to.
    async fn run_sweep(&self, sweep: &mut Sweep, options: &SweepOptions) -> Result<(), SessionError> {
        let started = Instant::now();
        // A page should cost about a second of the read budget.
        let mut limit = options.page_size.unwrap_or(25);
        let result = loop {
            match self.sweep_page(sweep, options, &mut limit).await {
                Ok(Step::Next) => {}
                Ok(Step::Stop(stopped)) => {
                    sweep.report.stopped = stopped;
                    break Ok(());
                }
                Err(err) => {
                    sweep.report.stopped = Stop::Failed;
                    break Err(err);
                }
            }
        };
        sweep.report.duration_ms = started.elapsed().as_millis() as u64;
        result
    }

    /// One step: a Scan page read (paced), its run-out leases ended and its
    /// expired sessions deleted, and the position moved past it.
    async fn sweep_page(
        &self,
        sweep: &mut Sweep,
        options: &SweepOptions,
        limit: &mut i32,
    ) -> Result<Step, SessionError> {
        if sweep.out_of_time() || !sweep.reads.wait(sweep.deadline).await {
            return Ok(Step::Stop(Stop::Deadline));
        }
        let now = Now::sample();
        let page = match self.scan_page(sweep, options, *limit, now).await {
            Ok(page) => page,
            Err(err) => {
                sweep.back_off(err).await?;
                return Ok(Step::Next);
            }
        };
        sweep.failures_in_a_row = 0;
        let read_units = units(page.consumed_capacity.as_ref());
        sweep.reads.charge(read_units);
        sweep.report.read_units += read_units;
        let scanned = page.scanned_count.max(0) as u64;
        *limit = next_limit(*limit, scanned, read_units, sweep.report.budget.read_units_per_second);
        let found = Found::sort(self.items.config(), page.items.unwrap_or_default(), now);
        // Counted as read now, even if the deadline stops the deletes
        // inside this page (the next run reads the page again).
        sweep.report.scanned += scanned;
        sweep.report.skipped += found.locked;
        self.end_stale_leases(sweep, &found.stale_leases).await?;
        if !self.delete_batches(sweep, found.expired).await? {
            // Stopped inside the page: the position stays before it, and
            // the next run's conditional deletes make the repeat harmless.
            return Ok(Step::Stop(Stop::Deadline));
        }
        let hash_key = &self.items.config().hash_key;
        match page.last_evaluated_key.and_then(|k| k.get(hash_key).and_then(|v| v.as_s().ok()).cloned()) {
            None => {
                sweep.report.resume_key = None;
                Ok(Step::Stop(Stop::Finished))
            }
            Some(next) => {
                sweep.report.resume_key = Some(ResumeKey(next));
                Ok(Step::Next)
            }
        }
    }

    /// One Scan page after the sweep's position: expired sessions, and live
    /// ones under a run-out lease of ours (filtering costs nothing: a Scan
    /// pays for what it reads).
    async fn scan_page(
        &self,
        sweep: &Sweep,
        options: &SweepOptions,
        limit: i32,
        now: Now,
    ) -> Result<ScanOutput, SessionError> {
        let config = self.items.config();
        let filter = conditions::expired(config, now).or(stale_lease(now));
        let projection = bind_lock(Expr::new(format!("{P_KEY}, {P_EXP}, {}", lock_attributes())))
            .name(P_KEY, &config.hash_key)
            .name(P_EXP, &config.session_lifetime_attribute);
        let mut scan = self
            .items
            .client()
            .scan()
            .table_name(&config.table_name)
            .bindings(&filter)
            .filter_expression(filter.text())
            .bindings(&projection)
            .projection_expression(projection.text())
            .limit(limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(ResumeKey(key)) = &sweep.report.resume_key {
            scan = scan.exclusive_start_key(&config.hash_key, attr_s(key));
        }
        if let Some((segment, total)) = options.segment {
            scan = scan.segment(segment).total_segments(total);
        }
        scan.send().in_budget().await.map_err(|e| SessionError::dynamo("Scan", e))
    }

    /// Removes the run-out leases of live sessions, paced like the deletes;
    /// one that fails is left to the next sweep.
    async fn end_stale_leases(&self, sweep: &mut Sweep, leases: &[(String, Record)]) -> Result<(), SessionError> {
        for (key, seen) in leases {
            if sweep.out_of_time() || !sweep.writes.wait(sweep.deadline).await {
                return Ok(());
            }
            let units = match end_stale_lease(&self.items, attr_s(key), seen).await {
                Ok(units) => {
                    sweep.report.leases_ended += 1;
                    units
                }
                Err(err) => {
                    sweep.back_off(err).await?;
                    1.0
                }
            };
            sweep.writes.charge(units);
            sweep.report.write_units += units;
        }
        Ok(())
    }

    /// Deletes `keys` in batches; false when the deadline stopped it.
    async fn delete_batches(&self, sweep: &mut Sweep, keys: Vec<String>) -> Result<bool, SessionError> {
        let config = self.items.config();
        // Never more deletes at once than a second of the write budget.
        let per_batch = config.gc_batch_size.min(sweep.report.budget.write_units_per_second.floor().max(1.0) as usize);
        let mut pending = VecDeque::from(keys);
        while !pending.is_empty() {
            if sweep.out_of_time() || !sweep.writes.wait(sweep.deadline).await {
                return Ok(false);
            }
            let batch: Vec<String> = pending.drain(..per_batch.min(pending.len())).collect();
            let failed = self.delete_batch(sweep, &batch).await?;
            if failed.is_empty() {
                sweep.failures_in_a_row = 0;
                if !config.gc_operation_delay.is_zero() && !pending.is_empty() {
                    tokio::time::sleep(config.gc_operation_delay).await;
                }
            } else {
                // Failed deletes go again before the rest of the page.
                for key in failed.into_iter().rev() {
                    pending.push_front(key);
                }
            }
        }
        Ok(true)
    }

    /// One batch of conditional deletes sent together. Every answer is
    /// counted before a failure is handed on (the deletes beside it landed
    /// all the same); returns the keys whose delete failed, to go again.
    async fn delete_batch(&self, sweep: &mut Sweep, batch: &[String]) -> Result<Vec<String>, SessionError> {
        let results = futures_util::future::join_all(batch.iter().map(|key| self.delete_if_expired(key))).await;
        let mut failed = Vec::new();
        let mut failure = None;
        for (key, result) in batch.iter().zip(results) {
            let units = match result {
                Ok(Deleted::Yes(units)) => {
                    sweep.report.deleted += 1;
                    units
                }
                Ok(Deleted::Kept(units)) => {
                    sweep.report.skipped += 1;
                    units
                }
                Ok(Deleted::Gone(units)) => {
                    sweep.report.gone += 1;
                    units
                }
                Err(err) => {
                    failure.get_or_insert(err);
                    failed.push(key.clone());
                    // A refused request still cost at least a unit.
                    1.0
                }
            };
            sweep.writes.charge(units);
            sweep.report.write_units += units;
        }
        if let Some(err) = failure {
            sweep.back_off(err).await?;
        }
        Ok(failed)
    }

    /// One conditional delete: only if the session is still expired and
    /// not under a live lock at delete time.
    async fn delete_if_expired(&self, key: &str) -> Result<Deleted, SessionError> {
        let now = Now::sample();
        let expired = conditions::expired(self.items.config(), now);
        let result = self
            .items
            .delete_key(attr_s(key))
            .condition(expired.and(lock_free(now)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .in_budget()
            .await;
        match result {
            Ok(out) => Ok(Deleted::Yes(units(out.consumed_capacity.as_ref()))),
            // A refused conditional write still costs its write unit.
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(failed)) if failed.item.is_none() => {
                    Ok(Deleted::Gone(1.0))
                }
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(Deleted::Kept(1.0)),
                _ => Err(SessionError::dynamo("DeleteItem", err)),
            },
        }
    }

    /// PHP's automatic GC, bounded: by chance (1 in [`AUTOMATIC_GC_DIVISOR`])
    /// a short sweep of one random scan segment. None when it did not run. A
    /// large table is only partly swept this way: the scheduled sweep is the
    /// one that finishes it.
    pub async fn automatic_step(&self) -> Option<Result<GcReport, SessionError>> {
        let (roll, segment) = {
            let mut rng = rand::rng();
            (rng.random_range(0..AUTOMATIC_GC_DIVISOR), rng.random_range(0..AUTOMATIC_GC_SEGMENTS))
        };
        if !self.items.config().automatic_gc || roll != 0 {
            return None;
        }
        let options = SweepOptions {
            deadline: Some(budget::clip(Instant::now() + AUTOMATIC_GC_BUDGET)),
            segment: Some((segment, AUTOMATIC_GC_SEGMENTS)),
            ..Default::default()
        };
        Some(self.delete_expired(options).await)
    }

    /// Sweeps every `period` forever (for a long-running server), each sweep
    /// stopping before the next is due.
    pub async fn continuously_delete_expired(&self, period: Duration) {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            let options = SweepOptions { deadline: Some(Instant::now() + period), ..Default::default() };
            match self.delete_expired(options).await {
                Ok(report) => report.log("gc sweep"),
                Err(err) => tracing::warn!(error = %err, "gc sweep failed"),
            }
        }
    }

    /// One scheduled run: claims the checkpoint (a lease that ends at the
    /// deadline, so a crashed run never blocks the next), sweeps from the
    /// saved position until the table ends or the deadline, and, on every
    /// way out (errors included), saves where it got to and releases the
    /// claim before returning.
    pub async fn scheduled_sweep(&self, deadline: Instant, run_id: &str) -> Result<ScheduledSweep, SessionError> {
        // The SDK's timeouts fit inside the run.
        let gc = self.for_deadline(deadline);
        let start_after = match gc.claim_checkpoint(deadline, run_id).await? {
            Claim::Taken { start_after } => start_after,
            Claim::HeldByAnotherRun => return Ok(ScheduledSweep::AnotherSweepRunning),
        };
        let options = SweepOptions { start_after, deadline: Some(deadline), ..Default::default() };
        let (report, outcome) = match gc.start_sweep(&options).await {
            Ok(mut sweep) => {
                let outcome = gc.run_sweep(&mut sweep, &options).await;
                if outcome.is_err() {
                    // What the failed run did, for the operator.
                    sweep.report.log("gc sweep failed");
                }
                (Some(sweep.report), outcome)
            }
            Err(err) => (None, Err(err)),
        };
        gc.release_checkpoint(run_id, report.as_ref()).await;
        outcome.map(|()| ScheduledSweep::Swept(report.expect("a sweep that ran has a report")))
    }

    /// This GC with SDK timeouts that end by `deadline`.
    fn for_deadline(&self, deadline: Instant) -> Gc {
        let config = self.items.config();
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let operation = config.dynamodb_operation_timeout.max(Duration::from_secs(10)).min(left);
        let attempt = config.dynamodb_attempt_timeout.max(Duration::from_secs(2)).min(operation);
        let client = crate::client::reconfigured(self.items.client(), attempt, operation, 5);
        Gc { items: self.items.with_client(client), budget: self.budget.clone() }
    }

    /// The checkpoint item's key.
    fn checkpoint() -> AttributeValue {
        attr_s(CHECKPOINT_KEY)
    }

    /// Takes the checkpoint's claim, unless another run holds it.
    async fn claim_checkpoint(&self, deadline: Instant, run_id: &str) -> Result<Claim, SessionError> {
        let now = Now::sample();
        let lease_until = now.millis + deadline.saturating_duration_since(Instant::now()).as_millis() as i64;
        let claim = self
            .items
            .update_key(Gc::checkpoint())
            .update(
                claim_names(Expr::new(format!("SET {} = :run, {} = :until", OWNER.placeholder, CLAIM.placeholder)))
                    .value(":run", attr_s(run_id))
                    .value(":until", attr_n(lease_until)),
            )
            .condition(
                CLAIM
                    .bound_in(Expr::new(format!("attribute_not_exists({0}) OR {0} < :now_ms", CLAIM.placeholder)))
                    .value(":now_ms", attr_n(now.millis)),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .in_budget()
            .await;
        match claim {
            Ok(out) => {
                let attributes = out.attributes.unwrap_or_default();
                let position = attributes.get(POSITION.name).and_then(|v| v.as_s().ok()).cloned();
                Ok(Claim::Taken { start_after: position.map(ResumeKey) })
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {
                Ok(Claim::HeldByAnotherRun)
            }
            Err(e) => Err(SessionError::dynamo("UpdateItem", e)),
        }
    }

    /// Saves the position (when the sweep moved) and releases the claim, if
    /// it is still ours. A failure is logged: the claim then ends with its
    /// lease, and the next run repeats some work, which conditional deletes
    /// make harmless.
    async fn release_checkpoint(&self, run_id: &str, report: Option<&GcReport>) {
        let (owner, claim, position, finished) =
            (OWNER.placeholder, CLAIM.placeholder, POSITION.placeholder, FINISHED.placeholder);
        let update = match report {
            Some(report) if report.finished() => {
                let update = Expr::new(format!("SET {finished} = :finished REMOVE {owner}, {claim}, {position}"));
                FINISHED.bound_in(POSITION.bound_in(update)).value(":finished", attr_n(Now::sample().secs))
            }
            Some(GcReport { resume_key: Some(ResumeKey(key)), .. }) => {
                let update = Expr::new(format!("SET {position} = :position REMOVE {owner}, {claim}"));
                POSITION.bound_in(update).value(":position", attr_s(key))
            }
            // Nothing swept: the saved position still holds.
            _ => Expr::new(format!("REMOVE {owner}, {claim}")),
        };
        let released = self
            .items
            .update_key(Gc::checkpoint())
            .update(claim_names(update))
            .condition(OWNER.bound_in(Expr::new(format!("{owner} = :run"))).value(":run", attr_s(run_id)))
            .send()
            .in_budget()
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %SessionError::dynamo("UpdateItem", e), "gc checkpoint not saved");
        }
    }
}

/// `expr` with the claim's placeholders (owner and lease) bound.
fn claim_names(expr: Expr) -> Expr {
    OWNER.bound_in(CLAIM.bound_in(expr))
}

/// The next Scan `Limit`: about one second of the read budget per page.
fn next_limit(limit: i32, scanned: u64, read_units: f64, read_budget: f64) -> i32 {
    if scanned == 0 || read_units <= 0.0 {
        return limit;
    }
    let units_per_item = read_units / scanned as f64;
    let wanted = (read_budget / units_per_item).round();
    (wanted as i32).clamp(PAGE_LIMITS.0, PAGE_LIMITS.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_lists_every_metric_the_code_emits() {
        use crate::metrics::{RequestMetrics, WorkStats, METRIC_NAMES};
        let request = RequestMetrics {
            route: "GET /sessions/{id}",
            status: 200,
            unavailable_cause: None,
            latency: Duration::from_millis(3),
            dynamodb_calls: 1,
            stats: WorkStats::default(),
        };
        let report = GcReport::new(CapacityBudget { read_units_per_second: 1.0, write_units_per_second: 1.0 });
        let lines = [request.line(), report.metric_line(), ScheduledSweep::AnotherSweepRunning.metric_line()];
        let mut emitted: Vec<String> = lines
            .iter()
            .flat_map(|line| {
                let line = line.to_json("test", 0);
                let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap().clone();
                directives.into_iter().flat_map(|directive| directive["Metrics"].as_array().unwrap().clone())
            })
            .map(|metric| metric["Name"].as_str().unwrap().to_string())
            .collect();
        emitted.sort();
        let mut listed: Vec<String> = METRIC_NAMES.iter().map(|name| name.to_string()).collect();
        listed.sort();
        assert_eq!(emitted, listed);
    }

    #[test]
    fn pages_cost_about_a_second_of_budget() {
        // 40 items cost 1 unit: at 1 unit/s, pages of 40.
        assert_eq!(next_limit(25, 40, 1.0, 1.0), 40);
        // Big items: never fewer than 10 per page; tiny ones: never more than 1000.
        assert_eq!(next_limit(25, 10, 50.0, 1.0), 10);
        assert_eq!(next_limit(25, 1000, 0.5, 100.0), 1000);
        assert_eq!(next_limit(25, 0, 0.0, 1.0), 25);
    }

    #[tokio::test]
    async fn the_pacer_keeps_the_average_rate() {
        let mut pacer = Pacer::new(10.0);
        let started = Instant::now();
        pacer.charge(5.0);
        // 5 units at 10/s: the next request waits half a second.
        assert!(pacer.ready_at >= started + Duration::from_millis(500));
        assert!(!pacer.wait(Some(started + Duration::from_millis(100))).await, "a deadline before it stops the wait");
    }

    #[test]
    fn the_report_never_shows_a_key() {
        let mut report = GcReport::new(CapacityBudget { read_units_per_second: 1.0, write_units_per_second: 1.0 });
        report.resume_key = Some(ResumeKey("PHPSESSID_secretsecretsecret".into()));
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("secret"), "{json}");
        assert!(!format!("{report:?}").contains("secret"));
    }
}
