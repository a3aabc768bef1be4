//! Session life cycle against a real DynamoDB-compatible server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use common::*;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::{Config, SessionError, SessionId, SessionStore, WriteOptions};
use serde_json::json;

async fn store(builder: dynamodb_sessions::config::ConfigBuilder) -> SessionStore {
    let (client, config) = setup(builder).await;
    SessionStore::new(client, config)
}

fn unknown_id() -> SessionId {
    SessionId::generate()
}

#[tokio::test]
async fn create_then_load_round_trips_the_data() {
    let store = store(Config::builder()).await;
    let (created, calls) = counted(store.create(data(json!({"user.name": "jeremy", "user.role": "admin"})))).await;
    let created = created.unwrap();
    assert_eq!(calls, ["PutItem"]);
    assert_eq!(created.version, 1);
    assert!((created.expires - (now() + 1440)).abs() <= 2);

    let (loaded, calls) = counted(store.load(&created.id)).await;
    let loaded = loaded.unwrap();
    assert_eq!(calls, ["GetItem"], "a fresh session's read writes nothing");
    assert_eq!(loaded.data, created.data);
    assert_eq!(loaded.version, 1);

    let raw = raw_item(store.client(), store.config(), created.id.as_str()).await.unwrap();
    assert_eq!(raw["id"].as_s().unwrap(), &format!("PHPSESSID_{}", created.id));
    let stored: serde_json::Value = serde_json::from_str(raw["data"].as_s().unwrap()).unwrap();
    assert_eq!(stored, json!({"user.name": "jeremy", "user.role": "admin"}));
}

#[tokio::test]
async fn every_new_session_gets_a_distinct_id() {
    let store = store(Config::builder()).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        ids.insert(store.create(Default::default()).await.unwrap().id);
    }
    assert_eq!(ids.len(), 20);
    assert_eq!(count_items(store.client(), store.config()).await, 20);
}

#[tokio::test]
async fn expired_sessions_are_absent_before_ttl_removes_them() {
    let store = store(fast_locks().locking_strategy(dynamodb_sessions::LockingStrategy::Pessimistic)).await;
    let sid = SessionId::generate();
    put_php_item(store.client(), store.config(), sid.as_str(), r#"{"a":1}"#, now() - 5, false).await;
    assert!(matches!(store.load(&sid).await, Err(SessionError::NotFound)));
    assert!(matches!(store.load_and_lock(&sid).await, Err(SessionError::NotFound)));
    assert!(matches!(
        store.replace(&sid, data(json!({"b":2})), &WriteOptions::default()).await,
        Err(SessionError::NotFound)
    ));
    assert!(matches!(
        store.patch(&sid, &data(json!({"b":2})), &WriteOptions::default()).await,
        Err(SessionError::NotFound)
    ));
    assert!(matches!(store.regenerate(&sid, None).await, Err(SessionError::NotFound)));
    // Nothing was revived: the item is still the expired one.
    let raw = raw_item(store.client(), store.config(), sid.as_str()).await.unwrap();
    assert_eq!(raw["data"].as_s().unwrap(), r#"{"a":1}"#);
    assert!(raw["expires"].as_n().unwrap().parse::<i64>().unwrap() < now());
}

#[tokio::test]
async fn writing_to_an_unknown_id_never_creates_an_item() {
    let store = store(fast_locks().locking_strategy(dynamodb_sessions::LockingStrategy::Pessimistic)).await;
    let id = unknown_id();
    let opts = WriteOptions::default();
    assert!(matches!(store.load(&id).await, Err(SessionError::NotFound)));
    assert!(matches!(store.replace(&id, data(json!({"x":1})), &opts).await, Err(SessionError::NotFound)));
    assert!(matches!(store.patch(&id, &data(json!({"x":1})), &opts).await, Err(SessionError::NotFound)));
    assert!(matches!(store.load_and_lock(&id).await, Err(SessionError::NotFound)));
    assert!(matches!(store.regenerate(&id, None).await, Err(SessionError::NotFound)));
    let token = dynamodb_sessions::LockToken::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert!(matches!(store.unlock(&id, &token).await, Err(SessionError::NotFound)));
    assert_eq!(count_items(store.client(), store.config()).await, 0);
}

#[tokio::test]
async fn replace_checks_the_version_and_bumps_it() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"n": 0}))).await.unwrap();
    let stale = WriteOptions { expected_version: Some(1), lock_token: None };
    let v2 = store.replace(&s.id, data(json!({"n": 1})), &stale).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.data, data(json!({"n": 1})));
    // A second writer that read version 1 must not overwrite version 2.
    assert!(matches!(store.replace(&s.id, data(json!({"n": 99})), &stale).await, Err(SessionError::Conflict)));
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"n": 1})));
    // Without a version it is last-writer-wins, as in PHP.
    let v3 = store.replace(&s.id, data(json!({"n": 3})), &WriteOptions::default()).await.unwrap();
    assert_eq!(v3.version, 3);
}

#[tokio::test]
async fn merge_patch_follows_rfc_7396() {
    let store = store(Config::builder()).await;
    let s = store
        .create(data(json!({"user": {"name": "jeremy", "role": "admin"}, "cart": [1, 2], "keep": true})))
        .await
        .unwrap();
    let patched = store
        .patch(&s.id, &data(json!({"user": {"role": null, "lang": "en"}, "cart": [3]})), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(patched.data, data(json!({"user": {"name": "jeremy", "lang": "en"}, "cart": [3], "keep": true})));
    assert_eq!(patched.version, 2);
    let stale = WriteOptions { expected_version: Some(1), lock_token: None };
    assert!(matches!(store.patch(&s.id, &data(json!({"x": 1})), &stale).await, Err(SessionError::Conflict)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_patches_all_land() {
    let store = store(fast_locks()).await;
    let s = store.create(Default::default()).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (store, id) = (store.clone(), s.id.clone());
            tokio::spawn(async move {
                store.patch(&id, &data(json!({ format!("k{i}"): i })), &WriteOptions::default()).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let loaded = store.load(&s.id).await.unwrap();
    assert_eq!(loaded.data.len(), 50, "every concurrent patch is kept: {:?}", loaded.data.keys());
    for i in 0..50 {
        assert_eq!(loaded.data[&format!("k{i}")], json!(i));
    }
    assert_eq!(loaded.version, 51);
}

#[tokio::test]
async fn destroy_is_idempotent() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    store.destroy(&s.id, None).await.unwrap();
    assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
    store.destroy(&s.id, None).await.unwrap();
    store.destroy(&unknown_id(), None).await.unwrap();
    assert_eq!(count_items(store.client(), store.config()).await, 0);
}

#[tokio::test]
async fn regenerate_moves_the_data_to_a_new_id_in_one_step() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"user.name": "jeremy"}))).await.unwrap();
    let (fresh, calls) = counted(store.regenerate(&s.id, None)).await;
    let fresh = fresh.unwrap();
    assert_eq!(calls, ["GetItem", "TransactWriteItems"]);
    assert_ne!(fresh.id, s.id);
    assert_eq!(fresh.data, s.data);
    assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
    assert_eq!(store.load(&fresh.id).await.unwrap().data, s.data);
    assert_eq!(count_items(store.client(), store.config()).await, 1);
}

#[tokio::test]
async fn reads_touch_at_most_once_per_interval() {
    let store = store(Config::builder().touch_interval(Duration::from_secs(60))).await;
    let sid = SessionId::generate();
    // Last activity 100 s ago (expires = then + lifetime): due for a touch.
    let old_expires = now() - 100 + 1440;
    put_php_item(store.client(), store.config(), sid.as_str(), "{}", old_expires, false).await;
    let (first, calls) = counted(store.load(&sid)).await;
    assert_eq!(calls, ["GetItem", "UpdateItem"]);
    let first = first.unwrap();
    assert!(first.expires >= now() + 1440 - 2, "the read pushed the expiry on");
    let stored: i64 = raw_item(store.client(), store.config(), sid.as_str()).await.unwrap()["expires"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored, first.expires);
    assert_eq!(first.version, 0, "a touch is not a data write");
    // Within the interval, reads write nothing.
    for _ in 0..3 {
        let (_, calls) = counted(store.load(&sid)).await;
        assert_eq!(calls, ["GetItem"]);
    }
}

#[tokio::test]
async fn touch_interval_zero_refreshes_on_every_read() {
    let store = store(Config::builder().touch_interval(Duration::ZERO)).await;
    let s = store.create(Default::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (loaded, calls) = counted(store.load(&s.id)).await;
    assert_eq!(calls, ["GetItem", "UpdateItem"]);
    assert!(loaded.unwrap().expires > s.expires);
}

#[tokio::test]
async fn oversized_data_is_refused_before_any_call() {
    let store = store(Config::builder().max_data_size(100usize)).await;
    let big = data(json!({"blob": "x".repeat(200)}));
    let (result, calls) = counted(store.create(big.clone())).await;
    assert!(matches!(result, Err(SessionError::TooLarge { limit: 100, .. })));
    assert!(calls.is_empty());
    let s = store.create(data(json!({"small": 1}))).await.unwrap();
    let (result, calls) = counted(store.replace(&s.id, big, &WriteOptions::default())).await;
    assert!(matches!(result, Err(SessionError::TooLarge { .. })));
    assert!(calls.is_empty());
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"small": 1})));
}

#[tokio::test]
async fn a_session_near_dynamodbs_item_limit_is_stored_whole() {
    let store = store(Config::builder().max_data_size(dynamodb_sessions::config::MAX_DATA_SIZE_LIMIT)).await;
    let payload = "y".repeat(dynamodb_sessions::config::MAX_DATA_SIZE_LIMIT - 20);
    let s = store.create(data(json!({"blob": payload}))).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data["blob"].as_str().unwrap().len(), payload.len());
}

#[tokio::test]
async fn php_written_items_read_and_write() {
    let store = store(Config::builder()).await;
    let sid = "8v2qj1lcd0u4ofs3i4q9hn0c7r";
    put_php_item(store.client(), store.config(), sid, r#"{"user.name":"jeremy"}"#, now() + 600, false).await;
    let id = SessionId::parse(sid).unwrap();
    let loaded = store.load(&id).await.unwrap();
    assert_eq!(loaded.data["user.name"], "jeremy");
    assert_eq!(loaded.version, 0);
    let written = store
        .replace(&id, data(json!({"user.name": "ada"})), &WriteOptions { expected_version: Some(0), lock_token: None })
        .await
        .unwrap();
    assert_eq!(written.version, 1);
    // A PHP item with non-JSON data is reported, never served as empty.
    put_php_item(store.client(), store.config(), sid, "user.name|s:6:\"jeremy\";", now() + 600, false).await;
    assert!(matches!(store.load(&id).await, Err(SessionError::UnreadableData)));
}

#[tokio::test]
async fn custom_attribute_names_and_empty_session_name() {
    let store = store(
        Config::builder().hash_key("pk").data_attribute("payload").session_lifetime_attribute("ttl").session_name(""),
    )
    .await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    let raw = raw_item(store.client(), store.config(), s.id.as_str()).await.unwrap();
    assert_eq!(raw["pk"].as_s().unwrap(), s.id.as_str());
    assert!(raw.contains_key("payload") && raw.contains_key("ttl"));
    store.patch(&s.id, &data(json!({"b": 2})), &WriteOptions::default()).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"a": 1, "b": 2})));
}

/// Records request bodies, to see what was asked of DynamoDB.
#[derive(Debug, Default, Clone)]
struct Bodies(Arc<Mutex<Vec<String>>>);

impl Intercept for Bodies {
    fn name(&self) -> &'static str {
        "Bodies"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let body =
            context.request().body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        self.0.lock().unwrap().push(body);
        Ok(())
    }
}

#[tokio::test]
async fn consistent_read_option_sets_getitem_consistency() {
    for consistent in [true, false] {
        let bodies = Bodies::default();
        let client = client_with(|b| b.interceptor(bodies.clone()));
        let config = Config::builder().table_name(table_name("cr")).consistent_read(consistent).build().unwrap();
        dynamodb_sessions::create_sessions_table(&client, &config, 5, 5).await.unwrap();
        let store = SessionStore::new(client, config);
        let s = store.create(Default::default()).await.unwrap();
        bodies.0.lock().unwrap().clear();
        store.load(&s.id).await.unwrap();
        let get: serde_json::Value = serde_json::from_str(&bodies.0.lock().unwrap()[0]).unwrap();
        assert_eq!(get["ConsistentRead"], json!(consistent));
    }
}
