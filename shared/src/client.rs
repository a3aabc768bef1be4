//! The DynamoDB client: the standard AWS configuration chain (region,
//! credentials, the `AWS_ENDPOINT_URL_DYNAMODB` override), the options'
//! timeouts, and the SDK's standard retries (throttling and transient errors
//! retried with jittered backoff). Nothing here retries by hand.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;

use crate::calls::CallCounter;
use crate::config::Config;

/// How long to wait for a connection; DynamoDB answers in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A client from the standard AWS configuration chain, with `config`'s
/// timeouts and the request counter of [`crate::calls`].
pub async fn dynamodb_client(config: &Config) -> Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared).interceptor(CallCounter);
    // `sam local` passes an unset template variable as "": that means no override.
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|url| url.trim().is_empty()) {
        builder.set_endpoint_url(None);
    }
    with_timeouts(&Client::from_conf(builder.build()), config)
}

/// `client` with `config`'s attempt and operation timeouts and the SDK's
/// standard retry mode (3 attempts).
pub(crate) fn with_timeouts(client: &Client, config: &Config) -> Client {
    reconfigured(client, config.dynamodb_attempt_timeout, config.dynamodb_operation_timeout, 3)
}

/// `client` with other timeouts and attempts (the GC sweep derives them from
/// its deadline).
pub(crate) fn reconfigured(client: &Client, attempt: Duration, operation: Duration, max_attempts: u32) -> Client {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(attempt))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build();
    let conf = client
        .config()
        .to_builder()
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    Client::from_conf(conf)
}
