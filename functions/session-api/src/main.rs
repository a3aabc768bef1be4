//! The Lambda function behind API Gateway: config and client built once,
//! then every event goes to the shared handler.

use dynamodb_sessions::{dynamodb_client, logging, Config, SessionStore};
use session_api::{lambda, App};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    logging::init();
    let config = Config::from_env().inspect_err(|err| tracing::error!(error = %err, "refusing to start"))?;
    let store = SessionStore::new(dynamodb_client().await, config);
    lambda::run(App::new(store)).await
}
