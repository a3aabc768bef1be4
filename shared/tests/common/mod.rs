//! What the integration tests need beyond `dynamodb_sessions::emulator::fixtures`
//! (which also has the `Hook` that makes races deterministic): the requests
//! the PHP SDK's session handler sends, to play a PHP app on the same table.

#![allow(dead_code)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeValue, AttributeValueUpdate, ExpectedAttributeValue, ReturnValue,
};
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::emulator::{self, fixtures};
use dynamodb_sessions::SessionStore;

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A client of the shared test endpoint with extra interceptors or settings.
pub fn client_with(
    customize: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
) -> Client {
    let base = emulator::client(emulator::shared_endpoint());
    Client::from_conf(customize(base.config().to_builder()).build())
}

/// The same table and options as `store`, through a client carrying `hook`.
pub fn hooked(store: &SessionStore, hook: &Hook) -> SessionStore {
    SessionStore::new(client_with(|b| b.interceptor(hook.clone())), store.config().clone())
}

/// A number attribute of a raw item.
pub fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name).map(|v| v.as_n().expect("a number").parse().expect("an integer"))
}

// ---------------------------------------------------------------------------
// The PHP SDK's session handler (v3), request for request
// ---------------------------------------------------------------------------

fn put(value: AttributeValue) -> AttributeValueUpdate {
    AttributeValueUpdate::builder().action(AttributeAction::Put).value(value).build()
}

fn delete() -> AttributeValueUpdate {
    AttributeValueUpdate::builder().action(AttributeAction::Delete).build()
}

/// PHP's `write()`: an unconditional UpdateItem setting `expires` and `data`
/// (deleting `data` when empty) and removing only `lock`.
pub async fn php_write(store: &SessionStore, sid: &str, data: &str) {
    let config = store.config();
    let expires = fixtures::now() + config.session_lifetime.as_secs() as i64;
    let data_update = if data.is_empty() { delete() } else { put(s(data)) };
    store
        .client()
        .update_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, s(&config.item_key(sid)))
        .attribute_updates(&config.session_lifetime_attribute, put(n(expires)))
        .attribute_updates(&config.data_attribute, data_update)
        .attribute_updates("lock", delete())
        .send()
        .await
        .expect("PHP's write");
}

/// One attempt of PHP's locking read: UpdateItem with the legacy
/// `Expected: {lock: {Exists: false}}` setting `lock` = 1. True when PHP got the lock.
pub async fn php_lock(store: &SessionStore, sid: &str) -> bool {
    let config = store.config();
    let result = store
        .client()
        .update_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, s(&config.item_key(sid)))
        .expected("lock", ExpectedAttributeValue::builder().exists(false).build())
        .attribute_updates("lock", put(n(1)))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match result {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => false,
        Err(e) => panic!("PHP's lock: {e:?}"),
    }
}

/// Sets attributes of a stored item as they are (number or string values).
pub async fn set_raw(store: &SessionStore, key: &str, attributes: &[(&str, AttributeValue)]) {
    let config = store.config();
    let mut request = store.client().update_item().table_name(&config.table_name).key(&config.hash_key, s(key));
    for (name, value) in attributes {
        request = request.attribute_updates(*name, put(value.clone()));
    }
    request.send().await.expect("raw update");
}

/// Deletes a stored item by its key.
pub async fn delete_raw(store: &SessionStore, key: &str) {
    let config = store.config();
    store
        .client()
        .delete_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, s(key))
        .send()
        .await
        .expect("raw delete");
}

pub use dynamodb_sessions::emulator::fixtures::Hook;
