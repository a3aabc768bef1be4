//! Test harness: a real DynamoDB-compatible server over HTTP (see
//! `emulator::shared_endpoint`: embedded dynoxide, or moto when the test
//! command sets `DYNAMODB_TEST_ENDPOINT`). Every test gets a table of its own.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::{create_sessions_table, Config, ConfigBuilder};

pub fn client() -> Client {
    dynamodb_sessions::emulator::client(dynamodb_sessions::emulator::shared_endpoint())
}

/// A client with extra interceptors or settings.
pub fn client_with(
    customize: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
) -> Client {
    Client::from_conf(customize(client().config().to_builder()).build())
}

/// A unique table name, so tests can share one server.
pub fn table_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Creates a fresh table for `builder`'s config and returns both.
pub async fn setup(builder: ConfigBuilder) -> (Client, Config) {
    let config = builder.table_name(table_name("t")).build().unwrap();
    let client = client();
    create_sessions_table(&client, &config, 5, 5).await.unwrap();
    (client, config)
}

/// Test configs wait briefly for locks so failures are quick.
pub fn fast_locks() -> ConfigBuilder {
    Config::builder()
        .max_lock_wait_time(Duration::from_secs(20))
        .min_lock_retry(Duration::from_millis(1))
        .max_lock_retry(Duration::from_millis(5))
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Writes an item as the PHP handler would: key, data, expires and, when
/// locked, `lock` = 1.
pub async fn put_php_item(client: &Client, config: &Config, sid: &str, data: &str, expires: i64, locked: bool) {
    let mut request = client
        .put_item()
        .table_name(&config.table_name)
        .item(&config.hash_key, s(&config.item_key(sid)))
        .item(&config.data_attribute, s(data))
        .item(&config.session_lifetime_attribute, n(expires));
    if locked {
        request = request.item("lock", n(1));
    }
    request.send().await.unwrap();
}

pub async fn raw_item(
    client: &Client,
    config: &Config,
    sid: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, s(&config.item_key(sid)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

pub async fn count_items(client: &Client, config: &Config) -> usize {
    let mut total = 0;
    let mut start = None;
    loop {
        let out = client.scan().table_name(&config.table_name).set_exclusive_start_key(start).send().await.unwrap();
        total += out.count as usize;
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return total,
        }
    }
}

pub fn data(value: serde_json::Value) -> dynamodb_sessions::Data {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}
