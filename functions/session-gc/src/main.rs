//! The GC Lambda function, run by an EventBridge schedule: config and client
//! built once, then each scheduled event runs one checkpointed sweep.

use dynamodb_sessions::{dynamodb_client, logging, Config, SessionStore};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    logging::init();
    let config = Config::from_env().inspect_err(|err| tracing::error!(error = %err, "refusing to start"))?;
    let store = SessionStore::new(dynamodb_client(&config).await, config);
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| session_gc::handle(store, event))).await
}
