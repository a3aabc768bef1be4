//! Test harness: a real DynamoDB-compatible server over HTTP. By default an
//! embedded dynoxide server started once per test binary; with
//! `DYNAMODB_TEST_ENDPOINT` set (the test command sets it for moto), that one.
//! Every test gets a table of its own.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::calls::CallCounter;
use dynamodb_sessions::{create_sessions_table, Config, ConfigBuilder};


fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("DYNAMODB_TEST_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => start_dynoxide(),
    })
}

/// Serves an in-memory dynoxide on a loopback port from a thread of its own,
/// so it outlives each test's runtime.
fn start_dynoxide() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let db = dynoxide::Database::memory().unwrap();
            dynoxide::server::serve_on(listener, db).await;
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

pub fn client_with(customize: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder) -> Client {
    let builder = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint())
        .interceptor(CallCounter);
    Client::from_conf(customize(builder).build())
}

pub fn client() -> Client {
    client_with(|b| b)
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

pub async fn raw_item(client: &Client, config: &Config, sid: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
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
