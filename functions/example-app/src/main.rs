//! The example app's Lambda function: options, store and session layer
//! built once, then every API Gateway event goes to its router.

use dynamodb_sessions::{dynamodb_client, logging, Config, SessionStore};
use dynamodb_sessions_axum::{HttpSettings, SessionCookie, SessionLayer};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    logging::init();
    let refuse = |err: &dynamodb_sessions::ConfigError| tracing::error!(error = %err, "refusing to start");
    let (config, settings) = (Config::from_env().inspect_err(refuse)?, HttpSettings::from_env().inspect_err(refuse)?);
    let cookie = SessionCookie::new(&config.session_name, settings);
    let store = SessionStore::new(dynamodb_client(&config).await, config);
    lambda_http::run(example_app::router(SessionLayer::new(store, cookie))).await
}
