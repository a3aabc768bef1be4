//! CloudWatch metrics as Embedded Metric Format (EMF) lines: one JSON line
//! per request or sweep on stdout, which Lambda sends to CloudWatch Logs and
//! CloudWatch turns into metrics, with no API call at request time.
//!
//! One namespace, `METRICS_NAMESPACE` ([`NAMESPACE`] by default). Few dimensions, so few metrics (each metric
//! and dimension value is one custom metric, billed monthly): the API's
//! request count per `Route` (method and route template) and `StatusClass`,
//! its latency per `Route`, 503s per `Cause`, each also in total;
//! everything else in total only. See the README's "Operators" section for
//! the list.
//!
//! What the answer of a unit of work does not show (DynamoDB throttles the
//! SDK retried, the capacity DynamoDB reported, lock waits) is noted while
//! it runs inside [`observed`].
//! This module sits at the bottom of the library: the sweep's line is
//! [`GcReport::metric_line`](crate::GcReport::metric_line).
//! Lines are written only on Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set), or
//! collected by [`captured`] (tests, tools).

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every metric by default (`METRICS_NAMESPACE`).
pub const NAMESPACE: &str = "DynamoDbSessions";

/// The metrics of one line, by dimension sets: `([dimension names per set], [(metric, unit, value)])`.
type Directive = (Vec<Vec<&'static str>>, Vec<(&'static str, &'static str, f64)>);

/// 1 when `yes`: a count metric whose sum counts and whose average is a rate.
pub fn count(yes: bool) -> f64 {
    if yes {
        1.0
    } else {
        0.0
    }
}

/// One EMF line: its dimension values and other properties, and its metrics.
#[derive(Debug, Default)]
pub struct MetricLine {
    properties: Map<String, Value>,
    directives: Vec<Directive>,
}

impl MetricLine {
    /// A line with these properties (dimension values among them).
    pub fn new(properties: &[(&'static str, Value)]) -> MetricLine {
        let properties = properties.iter().map(|(name, value)| (name.to_string(), value.clone())).collect();
        MetricLine { properties, directives: Vec::new() }
    }

    /// The line naming the invocation it is about, and its X-Ray trace when
    /// traced (`requestId`, `traceId`): a metric's spike leads to the log
    /// lines and the trace behind it.
    pub fn of_invocation(mut self, request_id: &str, trace_id: Option<&str>) -> Self {
        self.properties.insert("requestId".into(), request_id.into());
        if let Some(trace_id) = trace_id {
            self.properties.insert("traceId".into(), trace_id.into());
        }
        self
    }

    /// Metrics published under each of `dimension_sets` (`&[]` is the total, without dimensions).
    pub fn metrics(
        mut self,
        dimension_sets: &[&[&'static str]],
        metrics: &[(&'static str, &'static str, f64)],
    ) -> Self {
        self.directives.push((dimension_sets.iter().map(|set| set.to_vec()).collect(), metrics.to_vec()));
        self
    }

    /// The line as EMF's JSON in `namespace`, stamped `timestamp_ms`.
    pub fn to_json(&self, namespace: &str, timestamp_ms: u64) -> Value {
        let mut line = self.properties.clone();
        let directives: Vec<Value> = self
            .directives
            .iter()
            .map(|(dimensions, metrics)| {
                for (name, _, value) in metrics {
                    line.insert(name.to_string(), json!(value));
                }
                let metrics: Vec<Value> =
                    metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
                json!({ "Namespace": namespace, "Dimensions": dimensions, "Metrics": metrics })
            })
            .collect();
        line.insert("_aws".into(), json!({ "Timestamp": timestamp_ms, "CloudWatchMetrics": directives }));
        Value::Object(line)
    }

    /// Writes the line in `namespace`: into the enclosing [`captured`]
    /// scope, else to stdout on Lambda, else nowhere.
    pub fn emit(&self, namespace: &str) {
        let line = self.to_json(namespace, now_ms());
        if CAPTURED.try_with(|lines| lines.lock().expect("not poisoned").push(line.clone())).is_ok() {
            return;
        }
        if on_lambda() {
            // One write of one line: lines from concurrent requests never interleave.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or(0)
}

fn on_lambda() -> bool {
    static ON_LAMBDA: OnceLock<bool> = OnceLock::new();
    *ON_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some())
}

tokio::task_local! {
    static CAPTURED: Arc<Mutex<Vec<Value>>>;
    static NOTED: Arc<Mutex<WorkStats>>;
}

/// Runs `work`, returning its output and the lines it emitted instead of writing them.
pub async fn captured<F: Future>(work: F) -> (F::Output, Vec<Value>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let output = CAPTURED.scope(lines.clone(), work).await;
    let lines = std::mem::take(&mut *lines.lock().expect("not poisoned"));
    (output, lines)
}

/// What a unit of work met that its outcome does not show.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorkStats {
    /// DynamoDB requests answered with throttling (the SDK retried them, or gave up).
    pub throttles: u64,
    /// Read capacity units DynamoDB reported consumed.
    pub read_units: f64,
    /// Write capacity units DynamoDB reported consumed.
    pub write_units: f64,
    /// Pauses waiting for another holder's lock.
    pub lock_waits: u64,
    /// Time spent in those pauses.
    pub lock_wait: Duration,
}

/// Runs `work`, returning its output and what it met (see [`WorkStats`]).
pub async fn observed<F: Future>(work: F) -> (F::Output, WorkStats) {
    let stats = Arc::new(Mutex::new(WorkStats::default()));
    let output = NOTED.scope(stats.clone(), work).await;
    let stats = stats.lock().expect("not poisoned").clone();
    (output, stats)
}

/// Whether the running work is [`observed`]: only then are DynamoDB
/// requests asked for their consumed capacity ([`crate::calls`]).
pub(crate) fn observing() -> bool {
    NOTED.try_with(|_| ()).is_ok()
}

/// Capacity units one DynamoDB answer reported consumed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Capacity {
    Read(f64),
    Write(f64),
}

/// What one DynamoDB answer consumed (the SDK's interceptor, [`crate::calls`]).
pub(crate) fn note_capacity(capacity: Capacity) {
    let _ = NOTED.try_with(|stats| {
        let mut stats = stats.lock().expect("not poisoned");
        match capacity {
            Capacity::Read(units) => stats.read_units += units,
            Capacity::Write(units) => stats.write_units += units,
        }
    });
}

/// A throttled DynamoDB request (the SDK's interceptor, [`crate::calls`]).
pub(crate) fn note_throttle() {
    let _ = NOTED.try_with(|stats| stats.lock().expect("not poisoned").throttles += 1);
}

/// A pause for another holder's lock ([`crate::locking`]).
pub(crate) fn note_lock_wait(paused: Duration) {
    let _ = NOTED.try_with(|stats| {
        let mut stats = stats.lock().expect("not poisoned");
        stats.lock_waits += 1;
        stats.lock_wait += paused;
    });
}

/// The `Cause` of a 503 whose answer did not say why.
pub const OTHER_CAUSE: &str = "other";

/// One answered API request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMetrics<'a> {
    /// `METHOD /route/{template}` (never a path: a path holds a session id).
    pub route: &'a str,
    /// The answer's status.
    pub status: u16,
    /// Why a 503 was answered (`throttled`, `busy`, ...), when the answer says.
    pub unavailable_cause: Option<&'a str>,
    /// Time to the answer.
    pub latency: Duration,
    /// DynamoDB requests sent, retries included.
    pub dynamodb_calls: usize,
    /// What the request met on the way.
    pub stats: WorkStats,
}

impl RequestMetrics<'_> {
    /// The request's line: `Requests` per `Route` and `StatusClass`,
    /// `Latency` per `Route`, `Unavailable` per `Cause` (on a 503), each
    /// also in total; the rest in total only.
    pub fn line(&self) -> MetricLine {
        let unavailable = self.status == 503;
        let mut properties = vec![
            ("Route", self.route.into()),
            ("Status", self.status.into()),
            ("StatusClass", format!("{}xx", self.status / 100).into()),
        ];
        if unavailable {
            properties.push(("Cause", self.unavailable_cause.unwrap_or(OTHER_CAUSE).into()));
        }
        let unavailable_by: &[&[&str]] = if unavailable { &[&["Cause"], &[]] } else { &[&[]] };
        MetricLine::new(&properties)
            .metrics(&[&["Route", "StatusClass"], &[]], &[("Requests", "Count", 1.0)])
            .metrics(&[&["Route"], &[]], &[("Latency", "Milliseconds", self.latency.as_secs_f64() * 1000.0)])
            .metrics(unavailable_by, &[("Unavailable", "Count", count(unavailable))])
            .metrics(
                &[&[]],
                &[
                    ("ServerErrors", "Count", count(self.status >= 500)),
                    ("ClientErrors", "Count", count((400..500).contains(&self.status))),
                    ("Locked", "Count", count(self.status == 423)),
                    ("DynamoDbCalls", "Count", self.dynamodb_calls as f64),
                    ("DynamoDbThrottles", "Count", self.stats.throttles as f64),
                    ("DynamoDbReadUnits", "Count", self.stats.read_units),
                    ("DynamoDbWriteUnits", "Count", self.stats.write_units),
                    ("LockWaits", "Count", self.stats.lock_waits as f64),
                    ("LockWaitTime", "Milliseconds", self.stats.lock_wait.as_secs_f64() * 1000.0),
                ],
            )
    }
}

/// Every metric name the code emits (the template's alarms and dashboard use only these).
pub const METRIC_NAMES: &[&str] = &[
    "Requests",
    "Latency",
    "ServerErrors",
    "ClientErrors",
    "Locked",
    "Unavailable",
    "DynamoDbCalls",
    "DynamoDbThrottles",
    "DynamoDbReadUnits",
    "DynamoDbWriteUnits",
    "LockWaits",
    "LockWaitTime",
    "SweepScanned",
    "SweepDeleted",
    "SweepSkipped",
    "SweepGone",
    "SweepLeasesEnded",
    "SweepReadUnits",
    "SweepWriteUnits",
    "SweepTransientFailures",
    "SweepDuration",
    "SweepFinished",
    "SweepFailed",
    "SweepOverlapped",
];
