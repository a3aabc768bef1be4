//! The scheduled GC sweep: an EventBridge "Scheduled Event" in, one
//! checkpointed sweep ([`dynamodb_sessions::gc::scheduled_sweep`]) out,
//! stopped a safe margin before the Lambda's own deadline.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::gc::{scheduled_sweep, ScheduledSweep};
use dynamodb_sessions::Config;
use lambda_runtime::{Error, LambdaEvent};

/// Time kept back from the Lambda deadline: for the in-flight deletes to
/// finish and the checkpoint to be saved.
pub fn safety_margin(remaining: Duration) -> Duration {
    (remaining / 10).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// When this invocation must stop sweeping.
pub fn sweep_deadline(lambda_deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let remaining = Duration::from_millis(lambda_deadline_ms.saturating_sub(now_ms));
    Instant::now() + remaining.saturating_sub(safety_margin(remaining))
}

pub async fn handle(
    client: &Client,
    config: &Config,
    event: LambdaEvent<EventBridgeEvent<serde_json::Value>>,
) -> Result<ScheduledSweep, Error> {
    let deadline = sweep_deadline(event.context.deadline);
    let outcome = scheduled_sweep(client, config, deadline, &event.context.request_id).await?;
    match &outcome {
        ScheduledSweep::Swept(report) => report.log("gc sweep"),
        ScheduledSweep::AnotherSweepRunning => tracing::info!("gc sweep skipped: another sweep holds the checkpoint"),
    }
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
        assert!(sweep_deadline(0) <= Instant::now());
    }
}
