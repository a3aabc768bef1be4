//! Counting the DynamoDB requests a unit of work makes, for logs and
//! benchmarks: an SDK interceptor adds each request's operation name to a
//! task-local list when the work runs inside [`counted`], and notes each
//! throttled answer for the metrics ([`crate::metrics::observed`]).

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

tokio::task_local! {
    static CALLS: Arc<Mutex<Vec<String>>>;
}

/// Runs `work`, returning its output and the DynamoDB operations it sent, in
/// order (retries count: each one is a request). Scopes nest: an enclosing
/// `counted` sees the calls too.
pub async fn counted<F: std::future::Future>(work: F) -> (F::Output, Vec<String>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let output = CALLS.scope(calls.clone(), work).await;
    let calls = std::mem::take(&mut *calls.lock().expect("not poisoned"));
    let _ = CALLS.try_with(|outer| outer.lock().expect("not poisoned").extend(calls.iter().cloned()));
    (output, calls)
}

/// The interceptor; [`crate::dynamodb_client`] installs it.
#[derive(Debug, Default, Clone)]
pub struct CallCounter;

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let _ = CALLS.try_with(|calls| {
            // "DynamoDB_20120810.GetItem" -> "GetItem"
            let target = context.request().headers().get("x-amz-target").unwrap_or("unknown");
            let operation = target.rsplit('.').next().unwrap_or(target).to_string();
            calls.lock().expect("not poisoned").push(operation);
        });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        // A throttled request is an HTTP 400 naming a throttling code (a
        // transaction names it among its cancellation reasons). The body is
        // read in by now.
        let response = context.response();
        if response.status().as_u16() == 400 {
            let body = response.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
            if crate::error::THROTTLING_CODES.iter().any(|code| body.contains(code)) {
                crate::metrics::note_throttle();
            }
        }
        Ok(())
    }
}
