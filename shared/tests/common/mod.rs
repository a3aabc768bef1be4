//! What the integration tests need beyond `dynamodb_sessions::emulator::fixtures`:
//! the requests the PHP SDK's session handler sends (to play a PHP app on the
//! same table), and a hook that runs a write of another client at an exact
//! point of a store operation (between its read and its write), so races are
//! deterministic.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
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

// ---------------------------------------------------------------------------
// A hook at an exact request of an operation
// ---------------------------------------------------------------------------

type Action = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// An interceptor that, just before the `nth` request of `operation` leaves
/// (1-based, each SDK attempt counted), runs an action to completion, once.
/// The intercepted request waits for it, so whatever the action writes is in
/// the table before that request reaches it. Needs a multi-threaded runtime
/// (the action runs with `block_in_place`).
#[derive(Clone)]
pub struct Hook(Arc<HookState>);

struct HookState {
    operation: &'static str,
    nth: usize,
    seen: AtomicUsize,
    action: Mutex<Option<Action>>,
}

impl Hook {
    pub fn before<F>(operation: &'static str, nth: usize, action: impl FnOnce() -> F + Send + 'static) -> Hook
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let action: Action = Box::new(move || Box::pin(action()));
        Hook(Arc::new(HookState { operation, nth, seen: AtomicUsize::new(0), action: Mutex::new(Some(action)) }))
    }

    /// Whether the action ran.
    pub fn fired(&self) -> bool {
        self.0.action.lock().unwrap().is_none()
    }

    /// Requests of the operation seen so far.
    pub fn seen(&self) -> usize {
        self.0.seen.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hook(before {} #{})", self.0.operation, self.0.nth)
    }
}

impl Intercept for Hook {
    fn name(&self) -> &'static str {
        "Hook"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        if target.rsplit('.').next() != Some(self.0.operation) {
            return Ok(());
        }
        let count = self.0.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if count == self.0.nth {
            let action = self.0.action.lock().unwrap().take();
            if let Some(action) = action {
                // A task of its own, so the action's requests are not counted
                // with the intercepted operation's (`calls::counted`).
                let handle = tokio::runtime::Handle::current();
                let done = tokio::task::block_in_place(|| handle.block_on(handle.spawn(action())));
                done.expect("the hook's action");
            }
        }
        Ok(())
    }
}
