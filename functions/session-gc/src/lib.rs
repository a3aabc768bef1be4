//! The scheduled GC sweep: any invocation (the EventBridge Scheduler's, or a
//! manual `aws lambda invoke` with `{}`) runs one checkpointed sweep
//! ([`SessionStore::scheduled_sweep`](dynamodb_sessions::SessionStore::scheduled_sweep)),
//! stopped a safe margin before the Lambda's own deadline.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dynamodb_sessions::{ScheduledSweep, SessionStore};
use lambda_runtime::{Error, LambdaEvent};

/// Time kept back from the Lambda deadline: for the in-flight deletes to
/// finish and the checkpoint to be saved.
pub fn safety_margin(remaining: Duration) -> Duration {
    (remaining / 10).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// Epoch milliseconds of 2001-09-09: no real deadline is earlier.
const PLAUSIBLE_EPOCH_MS: u64 = 1_000_000_000_000;

/// When this invocation must stop sweeping. Lambda gives the deadline in
/// epoch milliseconds; a value too small for that (`cargo lambda watch`
/// sends the time limit itself) is taken as the time left.
pub fn sweep_deadline(lambda_deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let remaining = if lambda_deadline_ms < PLAUSIBLE_EPOCH_MS {
        Duration::from_millis(lambda_deadline_ms)
    } else {
        Duration::from_millis(lambda_deadline_ms.saturating_sub(now_ms))
    };
    Instant::now() + remaining.saturating_sub(safety_margin(remaining))
}

/// Runs one sweep. The payload is not read: whatever invoked the function
/// (a schedule, a person, a test), the sweep to run is the same.
pub async fn handle(store: &SessionStore, event: LambdaEvent<serde_json::Value>) -> Result<ScheduledSweep, Error> {
    let deadline = sweep_deadline(event.context.deadline);
    tracing::info!(
        lambda_deadline_ms = event.context.deadline,
        budget_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
        "gc sweep starting"
    );
    let outcome = store.scheduled_sweep(deadline, &event.context.request_id).await?;
    match &outcome {
        ScheduledSweep::Swept(report) => report.log("gc sweep"),
        ScheduledSweep::AnotherSweepRunning => tracing::info!("gc sweep skipped: another sweep holds the checkpoint"),
    }
    let context = &event.context;
    outcome
        .metric_line()
        .of_invocation(&context.request_id, context.xray_trace_id.as_deref())
        .emit(&store.config().metrics_namespace);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_tenth_within_bounds() {
        assert_eq!(safety_margin(Duration::from_secs(300)), Duration::from_secs(30));
        assert_eq!(safety_margin(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(safety_margin(Duration::from_secs(5)), Duration::from_secs(2));
        assert_eq!(safety_margin(Duration::from_secs(900)), Duration::from_secs(30));
    }

    #[test]
    fn a_passed_deadline_leaves_no_time() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(sweep_deadline(now_ms - 1000) <= Instant::now());
        assert!(sweep_deadline(0) <= Instant::now());
    }

    #[test]
    fn an_epoch_deadline_keeps_the_margin_back() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = sweep_deadline(now_ms + 60_000).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(54), "{left:?}");
    }

    #[test]
    fn a_relative_deadline_from_an_emulator_is_the_time_left() {
        let left = sweep_deadline(600_000).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(560) && left <= Duration::from_secs(570), "{left:?}");
    }
}
