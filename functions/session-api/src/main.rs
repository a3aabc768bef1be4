//! The Lambda function behind API Gateway: options, client and router built
//! once, then every event goes to the router.

use dynamodb_sessions::{dynamodb_client, logging, Config, SessionStore};
use session_api::{lambda, router, ApiState, HttpSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    logging::init();
    let refuse = |err: &dynamodb_sessions::ConfigError| tracing::error!(error = %err, "refusing to start");
    let (config, settings) = (Config::from_env().inspect_err(refuse)?, HttpSettings::from_env().inspect_err(refuse)?);
    let client = dynamodb_client(&config).await;
    let state = ApiState::new(SessionStore::new(client, config), settings)?;
    lambda::run(router(state)).await
}
