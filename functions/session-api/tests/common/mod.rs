//! Shared set-up for the API tests: a fresh table on the test endpoint
//! (embedded dynoxide, or moto via DYNAMODB_TEST_ENDPOINT) per test.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_sessions::{create_sessions_table, emulator, Config, ConfigBuilder, SessionStore};
use lambda_http::http::Request as HttpRequest;
use lambda_http::{Body, Request, Response};
use session_api::App;

/// A table name no other test uses, so tests can share one server.
fn fresh_table_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("api-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn app(builder: ConfigBuilder) -> App {
    app_with(builder.table_name(fresh_table_name()).build().unwrap()).await
}

/// The app configured as the Lambda function is, by environment variable
/// names (`("LOCKING_STRATEGY", "pessimistic")`), on a fresh table.
pub async fn app_from_env(vars: &[(&str, &str)]) -> App {
    let table = fresh_table_name();
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        _ => vars.iter().find(|(var, _)| *var == name).map(|(_, value)| value.to_string()),
    })
    .unwrap();
    app_with(config).await
}

async fn app_with(config: Config) -> App {
    let client = emulator::client(emulator::shared_endpoint());
    create_sessions_table(&client, &config, 5, 5).await.unwrap();
    App::new(SessionStore::new(client, config))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Writes a session item under a fixed id, as the events expect.
pub async fn seed(config: &Config, sid: &str, data: &str, expires: i64, lock_token: Option<&str>) {
    let client = emulator::client(emulator::shared_endpoint());
    let mut put = client
        .put_item()
        .table_name(&config.table_name)
        .item(&config.hash_key, AttributeValue::S(config.item_key(sid)))
        .item(&config.data_attribute, AttributeValue::S(data.into()))
        .item(&config.session_lifetime_attribute, AttributeValue::N(expires.to_string()))
        .item("version", AttributeValue::N("1".into()));
    if let Some(token) = lock_token {
        put = put
            .item("lock", AttributeValue::N("1".into()))
            .item("lock_token", AttributeValue::S(token.into()))
            .item("lock_until_ms", AttributeValue::N(((now() + 60) * 1000).to_string()));
    }
    put.send().await.unwrap();
}

pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> Request {
    let mut builder = HttpRequest::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.map(|b| Body::Text(b.to_string())).unwrap_or(Body::Empty)).unwrap()
}

pub fn json(response: &Response<Body>) -> serde_json::Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        Body::Binary(bytes) => serde_json::from_slice(bytes).unwrap(),
        _ => serde_json::Value::Null,
    }
}

pub fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}
