//! A time budget for one request. Inside [`within`], every lock wait, write
//! retry and DynamoDB call the store makes ends by the budget's deadline, so
//! a request on Lambda answers (503 with `Retry-After`, the calls cut as a
//! timeout) before the function's timeout kills it with a lock just taken or
//! a write's outcome unknown. Releasing what a failed request took may run
//! [`CLEANUP_GRACE`] past the deadline.
//!
//! The budget lives with the task that serves the request (a task-local), so
//! every store call of that request sees it without being handed it; outside
//! [`within`] nothing is cut but by the SDK's own timeouts.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;

/// How long past the deadline a release after a failure may run.
pub const CLEANUP_GRACE: Duration = Duration::from_millis(250);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with a budget ending at `deadline` (or the enclosing budget's
/// end, if that is earlier).
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    let deadline = current().map_or(deadline, |outer| outer.min(deadline));
    DEADLINE.scope(deadline, work).await
}

/// The running request's deadline, if it has a budget.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// Runs `work`, the release of what a failed request took, with the grace
/// past the deadline.
pub(crate) async fn cleanup<F: Future>(work: F) -> F::Output {
    match current() {
        Some(deadline) => DEADLINE.scope(deadline + CLEANUP_GRACE, work).await,
        None => work.await,
    }
}

/// The earlier of `deadline` and the budget's end.
pub(crate) fn clip(deadline: Instant) -> Instant {
    current().map_or(deadline, |end| end.min(deadline))
}

/// Sends one DynamoDB call within the budget: cut at the deadline as the
/// SDK's own operation timeout cuts it (a timeout error: it may have landed).
pub(crate) async fn call<T, E>(
    call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, SdkError<E, HttpResponse>> {
    let Some(deadline) = current() else { return call.await };
    // Not even started once the time is up: a first poll may send it.
    if Instant::now() >= deadline {
        return Err(SdkError::timeout_error(BudgetSpent));
    }
    match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(result) => result,
        Err(_) => Err(SdkError::timeout_error(BudgetSpent)),
    }
}

/// `.in_budget()` on a DynamoDB call's future: [`call`], postfix.
pub(crate) trait InBudget<T, E>: Future<Output = Result<T, SdkError<E, HttpResponse>>> + Sized {
    fn in_budget(self) -> impl Future<Output = Result<T, SdkError<E, HttpResponse>>> {
        call(self)
    }
}

impl<F, T, E> InBudget<T, E> for F where F: Future<Output = Result<T, SdkError<E, HttpResponse>>> {}

/// The error of a call cut by the budget.
#[derive(Debug, thiserror::Error)]
#[error("the request's time budget ran out")]
struct BudgetSpent;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budgets_nest_to_the_earlier_end_and_cleanup_gets_its_grace() {
        let now = Instant::now();
        assert_eq!(current(), None);
        within(now + Duration::from_secs(5), async {
            within(now + Duration::from_secs(9), async {
                assert_eq!(current(), Some(now + Duration::from_secs(5)), "an inner budget never extends");
                cleanup(async { assert_eq!(current(), Some(now + Duration::from_secs(5) + CLEANUP_GRACE)) }).await;
            })
            .await;
        })
        .await;
    }

    #[tokio::test]
    async fn a_call_past_the_deadline_is_a_timeout_and_never_started() {
        let started = std::sync::atomic::AtomicBool::new(false);
        let spent = within(Instant::now(), async {
            call::<(), std::io::Error>(async {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await
        })
        .await;
        assert!(matches!(spent, Err(SdkError::TimeoutError(_))), "{spent:?}");
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
    }
}
