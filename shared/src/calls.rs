//! Counting the DynamoDB requests a unit of work makes, for logs and
//! benchmarks: an SDK interceptor adds each request's operation name to a
//! task-local list when the work runs inside [`counted`]; inside
//! [`crate::metrics::observed`] it also asks each request for its consumed
//! capacity (free: DynamoDB only adds it to the answer) and notes what the
//! answers consumed and which were throttled, for the metrics.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::{
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};

use crate::metrics::{self, Capacity};

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

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if metrics::observing() {
            ask_for_capacity(context.input_mut());
        }
        Ok(())
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
                metrics::note_throttle();
            }
        }
        if let Ok(output) = context.output_or_error() {
            if let Some(capacity) = consumed(output) {
                metrics::note_capacity(capacity);
            }
        }
        Ok(())
    }
}

/// Sets `ReturnConsumedCapacity: TOTAL` on the request, unless it says otherwise.
fn ask_for_capacity(input: &mut Input) {
    macro_rules! ask {
        ($($input:ty),*) => {$(
            if let Some(input) = input.downcast_mut::<$input>() {
                input.return_consumed_capacity.get_or_insert(ReturnConsumedCapacity::Total);
                return;
            }
        )*};
    }
    ask!(GetItemInput, PutItemInput, UpdateItemInput, DeleteItemInput, TransactWriteItemsInput, ScanInput, QueryInput);
}

/// The capacity an answer reports (as DynamoDB reports it: a refused
/// conditional write is charged, and reports nothing).
fn consumed(output: &Output) -> Option<Capacity> {
    fn units(consumed: Option<&ConsumedCapacity>) -> f64 {
        consumed.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0)
    }
    macro_rules! reported {
        ($kind:ident: $($output:ty),*) => {$(
            if let Some(output) = output.downcast_ref::<$output>() {
                return Some(Capacity::$kind(units(output.consumed_capacity.as_ref())));
            }
        )*};
    }
    reported!(Read: GetItemOutput, ScanOutput, QueryOutput);
    reported!(Write: PutItemOutput, UpdateItemOutput, DeleteItemOutput);
    let transaction = output.downcast_ref::<TransactWriteItemsOutput>()?;
    Some(Capacity::Write(transaction.consumed_capacity().iter().map(|table| units(Some(table))).sum()))
}
