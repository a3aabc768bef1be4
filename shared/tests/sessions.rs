//! Session life cycle against a real DynamoDB-compatible server: reads,
//! writes, entity tags, PHP's writes in between, ids and keys, the data
//! attribute's type.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::config::MAX_DATA_SIZE_LIMIT;
use dynamodb_sessions::emulator::fixtures::{
    count_items, data, fast_locks, now, put_php_item, put_raw, raw_item, store, store_on, RequestLog,
};
use dynamodb_sessions::{Config, DataAttributeType, LockToken, LockingStrategy, SessionError, SessionId, WriteOptions};
use serde_json::{json, Value};

fn if_match(etag: &str) -> WriteOptions {
    WriteOptions { if_match: Some(etag.to_string()), lock_token: None, ..Default::default() }
}

/// A well-formed token of a lock nobody holds.
fn stranger_token() -> LockToken {
    LockToken::parse(&format!("{}.{}.jS", "s".repeat(22), now_ms() + 60_000)).unwrap()
}

#[tokio::test]
async fn create_then_load_round_trips_the_data() {
    let store = store(Config::builder()).await;
    let (created, calls) = counted(store.create(data(json!({"user.name": "jeremy", "user.role": "admin"})))).await;
    let created = created.unwrap();
    assert_eq!(calls, ["PutItem"]);
    assert!((created.expires - (now() + 1440)).abs() <= 2);
    assert!(created.lock_token.is_none());

    let (loaded, calls) = counted(store.load(&created.id)).await;
    let loaded = loaded.unwrap();
    assert_eq!(calls, ["GetItem"], "a fresh session's read writes nothing");
    assert_eq!(loaded.data, created.data);
    assert_eq!(loaded.etag, created.etag);

    let raw = raw_item(&store, created.id.as_str()).await.unwrap();
    assert_eq!(raw["id"].as_s().unwrap(), &format!("PHPSESSID_{}", created.id));
    let stored: serde_json::Value = serde_json::from_str(raw["data"].as_s().unwrap()).unwrap();
    assert_eq!(stored, json!({"user.name": "jeremy", "user.role": "admin"}));
    assert_eq!(number(&raw, "expires"), Some(created.expires));
}

#[tokio::test]
async fn every_new_session_gets_a_distinct_id() {
    let store = store(Config::builder()).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        ids.insert(store.create(Default::default()).await.unwrap().id);
    }
    assert_eq!(ids.len(), 20);
    assert_eq!(count_items(&store).await, 20);
}

#[tokio::test]
async fn expired_sessions_are_absent_before_ttl_removes_them() {
    let store = store(fast_locks().locking_strategy(LockingStrategy::Pessimistic)).await;
    let sid = SessionId::generate();
    put_php_item(&store, sid.as_str(), r#"{"a":1}"#, now() - 5, false).await;
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
    let raw = raw_item(&store, sid.as_str()).await.unwrap();
    assert_eq!(raw["data"].as_s().unwrap(), r#"{"a":1}"#);
    assert!(number(&raw, "expires").unwrap() < now());
    assert!(!raw.contains_key("lock") && !raw.contains_key("lock_token"));
}

#[tokio::test]
async fn writing_to_an_unknown_id_never_creates_an_item() {
    let store = store(fast_locks().locking_strategy(LockingStrategy::Pessimistic)).await;
    let id = SessionId::generate();
    let opts = WriteOptions::default();
    let token = stranger_token();
    let with_token = WriteOptions { if_match: None, lock_token: Some(token.clone()), ..Default::default() };
    assert!(matches!(store.load(&id).await, Err(SessionError::NotFound)));
    assert!(matches!(store.replace(&id, data(json!({"x":1})), &opts).await, Err(SessionError::NotFound)));
    assert!(matches!(store.replace(&id, data(json!({"x":1})), &with_token).await, Err(SessionError::NotFound)));
    assert!(matches!(store.patch(&id, &data(json!({"x":1})), &opts).await, Err(SessionError::NotFound)));
    assert!(matches!(store.patch(&id, &data(json!({"x":1})), &with_token).await, Err(SessionError::NotFound)));
    assert!(matches!(store.load_and_lock(&id).await, Err(SessionError::NotFound)));
    assert!(matches!(store.regenerate(&id, None).await, Err(SessionError::NotFound)));
    assert!(matches!(store.unlock(&id, &token).await, Err(SessionError::NotFound)));
    store.destroy(&id, Some(&token)).await.unwrap();
    assert_eq!(count_items(&store).await, 0);
}

#[tokio::test]
async fn replace_with_if_match_refuses_a_stale_etag() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"n": 0}))).await.unwrap();
    let first = store.replace(&s.id, data(json!({"n": 1})), &if_match(&s.etag)).await.unwrap();
    assert_eq!(first.data, data(json!({"n": 1})));
    assert_ne!(first.etag, s.etag, "our write changes the ETag");
    // A second writer that read the first version must not overwrite the second.
    let before = raw_item(&store, s.id.as_str()).await.unwrap();
    let (stale, calls) = counted(store.replace(&s.id, data(json!({"n": 99})), &if_match(&s.etag))).await;
    assert!(matches!(stale, Err(SessionError::PreconditionFailed)), "{stale:?}");
    assert_eq!(calls, ["GetItem"], "refused on its read: no write sent");
    assert_eq!(raw_item(&store, s.id.as_str()).await.unwrap(), before, "nothing written");
    let (stale, calls) = counted(store.patch(&s.id, &data(json!({"n": 99})), &if_match(&s.etag))).await;
    assert!(matches!(stale, Err(SessionError::PreconditionFailed)), "{stale:?}");
    assert_eq!(calls, ["GetItem"]);
    assert_eq!(raw_item(&store, s.id.as_str()).await.unwrap(), before);
    // The current ETag is accepted; without one it is last-writer-wins, as in PHP.
    let second = store.replace(&s.id, data(json!({"n": 2})), &if_match(&first.etag)).await.unwrap();
    let third = store.replace(&s.id, data(json!({"n": 3})), &WriteOptions::default()).await.unwrap();
    assert_ne!(second.etag, third.etag);
    assert_eq!(store.load(&s.id).await.unwrap().etag, third.etag);
}

#[tokio::test]
async fn the_etag_follows_data_writes_of_both_languages_not_a_touch() {
    let store = store(Config::builder().touch_interval(Duration::from_secs(60))).await;
    let s = store.create(data(json!({"n": 0}))).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().etag, s.etag, "a read does not change it");

    let patched = store.patch(&s.id, &data(json!({"n": 1})), &WriteOptions::default()).await.unwrap();
    assert_ne!(patched.etag, s.etag, "our write changes it");
    assert_eq!(store.load(&s.id).await.unwrap().etag, patched.etag);

    // PHP's write() (no version of ours bumped) changes it too.
    php_write(&store, s.id.as_str(), r#"{"n":2}"#).await;
    let after_php = store.load(&s.id).await.unwrap();
    assert_eq!(after_php.data, data(json!({"n": 2})));
    assert_ne!(after_php.etag, patched.etag, "a PHP write changes it");

    // A read due for a touch refreshes the expiry, and leaves the ETag alone.
    let key = store.config().item_key(s.id.as_str());
    set_raw(&store, &key, &[("expires", n(now() + 1440 - 100))]).await;
    let (touched, calls) = counted(store.load(&s.id)).await;
    let touched = touched.unwrap();
    assert_eq!(calls, ["GetItem", "UpdateItem"], "the read touched");
    assert!(touched.expires >= now() + 1440 - 2);
    assert_eq!(touched.etag, after_php.etag, "a touch does not change it");
    // An ETag read before the touch still writes.
    store.replace(&s.id, data(json!({"n": 3})), &if_match(&after_php.etag)).await.unwrap();
}

#[tokio::test]
async fn an_etag_read_before_a_php_write_is_stale() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"cart": [1]}))).await.unwrap();
    php_write(&store, s.id.as_str(), r#"{"cart":[1,2]}"#).await;
    let result = store.replace(&s.id, data(json!({"cart": [1, 3]})), &if_match(&s.etag)).await;
    assert!(matches!(result, Err(SessionError::PreconditionFailed)), "{result:?}");
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"cart": [1, 2]})), "PHP's data stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_php_write_between_a_patchs_read_and_write_is_kept() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"ours": 0}))).await.unwrap();
    // PHP writes just before the patch's write leaves, after its read.
    let (plain, sid) = (store.clone(), s.id.to_string());
    let hook = Hook::before("UpdateItem", 1, move || async move {
        php_write(&plain, &sid, r#"{"ours":0,"php":"yes"}"#).await;
    });
    let (patched, calls) =
        counted(hooked(&store, &hook).patch(&s.id, &data(json!({"ours": 1})), &Default::default())).await;
    assert!(hook.fired());
    let patched = patched.unwrap();
    assert_eq!(calls, ["GetItem", "UpdateItem", "GetItem", "UpdateItem"], "refused once, then read again");
    assert_eq!(patched.data, data(json!({"ours": 1, "php": "yes"})), "PHP's key survives");
    assert_eq!(store.load(&s.id).await.unwrap().data, patched.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_php_write_between_the_read_and_write_of_an_if_match_write_fails_it() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"ours": 0}))).await.unwrap();
    let (plain, sid) = (store.clone(), s.id.to_string());
    let hook = Hook::before("UpdateItem", 1, move || async move {
        php_write(&plain, &sid, r#"{"php":"yes"}"#).await;
    });
    let result = hooked(&store, &hook).replace(&s.id, data(json!({"ours": 1})), &if_match(&s.etag)).await;
    assert!(hook.fired());
    assert!(matches!(result, Err(SessionError::PreconditionFailed)), "{result:?}");
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"php": "yes"})));
}

#[tokio::test]
async fn merge_patch_follows_rfc_7396() {
    let store = store(Config::builder()).await;
    let s = store
        .create(data(json!({"user": {"name": "jeremy", "role": "admin"}, "cart": [1, 2], "keep": true})))
        .await
        .unwrap();
    let patched = store
        .patch(&s.id, &data(json!({"user": {"role": null, "lang": "en"}, "cart": [3]})), &if_match(&s.etag))
        .await
        .unwrap();
    assert_eq!(patched.data, data(json!({"user": {"name": "jeremy", "lang": "en"}, "cart": [3], "keep": true})));
    assert_ne!(patched.etag, s.etag);
    assert!(matches!(
        store.patch(&s.id, &data(json!({"x": 1})), &if_match(&s.etag)).await,
        Err(SessionError::PreconditionFailed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_patches_all_land() {
    // 50 writers on one item: moto answers one request at a time, so a request
    // can queue past the default timeouts there (and an attempt cut by its
    // timeout may still land). This is about lost updates, not latency.
    let patient = fast_locks()
        .dynamodb_operation_timeout(Duration::from_secs(30))
        .dynamodb_attempt_timeout(Duration::from_secs(30));
    let store = store(patient).await;
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
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert_eq!(number(&raw, "version"), Some(51), "one write each");
}

#[tokio::test]
async fn destroy_is_idempotent() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    store.destroy(&s.id, None).await.unwrap();
    assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
    store.destroy(&s.id, None).await.unwrap();
    store.destroy(&SessionId::generate(), None).await.unwrap();
    assert_eq!(count_items(&store).await, 0);
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
    let loaded = store.load(&fresh.id).await.unwrap();
    assert_eq!(loaded.data, s.data);
    assert_eq!(loaded.etag, fresh.etag);
    assert_eq!(count_items(&store).await, 1);
}

#[tokio::test]
async fn regenerate_on_a_read_goes_on_the_item_as_it_is_now() {
    let store = store(Config::builder()).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let loaded = store.load_for_change(&s.id).await.unwrap();
    let (fresh, calls) = counted(store.regenerate_loaded(&loaded)).await;
    assert_eq!(calls, ["TransactWriteItems"], "no second read");
    let fresh = fresh.unwrap();
    // The new session as written: a change on it needs no read either.
    let changes = vec![("m".to_string(), Some(json!(2)))];
    let (changed, calls) = counted(store.change_keys(&fresh, &changes, &WriteOptions::default())).await;
    assert_eq!(calls, ["UpdateItem"]);
    assert_eq!(Value::Object(changed.unwrap().data), json!({"n": 1, "m": 2}));

    // Another request wrote between the read and the regenerate: its write
    // moves to the new id too, never lost.
    let loaded = store.load_for_change(&fresh.session().id).await.unwrap();
    store.patch(&fresh.session().id, &data(json!({"n": 5})), &WriteOptions::default()).await.unwrap();
    let (moved, calls) = counted(store.regenerate_loaded(&loaded)).await;
    assert_eq!(calls, ["TransactWriteItems", "GetItem", "TransactWriteItems"], "refused, read again, moved");
    let moved = moved.unwrap();
    assert_eq!(Value::Object(store.load(&moved.session().id).await.unwrap().data), json!({"n": 5, "m": 2}));
    assert_eq!(count_items(&store).await, 1);
}

#[tokio::test]
async fn reads_touch_at_most_once_per_interval() {
    let store = store(Config::builder().touch_interval(Duration::from_secs(60))).await;
    let sid = SessionId::generate();
    // Last activity 100 s ago (expires = then + lifetime): due for a touch.
    let old_expires = now() - 100 + 1440;
    put_php_item(&store, sid.as_str(), "{}", old_expires, false).await;
    let (first, calls) = counted(store.load(&sid)).await;
    assert_eq!(calls, ["GetItem", "UpdateItem"]);
    let first = first.unwrap();
    assert!(first.expires >= now() + 1440 - 2, "the read pushed the expiry on");
    let raw = raw_item(&store, sid.as_str()).await.unwrap();
    assert_eq!(number(&raw, "expires"), Some(first.expires));
    assert!(!raw.contains_key("version"), "a touch is not a data write");
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
    // The expiry has whole seconds: the next second's read can push it on.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (loaded, calls) = counted(store.load(&s.id)).await;
    assert_eq!(calls, ["GetItem", "UpdateItem"]);
    assert!(loaded.unwrap().expires > s.expires);
}

#[tokio::test]
async fn oversized_data_is_refused_and_nothing_is_written() {
    let store = store(fast_locks().max_data_size(100usize).locking_strategy(LockingStrategy::Pessimistic)).await;
    let big = data(json!({"blob": "x".repeat(200)}));
    let (result, calls) = counted(store.create(big.clone())).await;
    assert!(matches!(result, Err(SessionError::TooLarge { limit: 100, .. })));
    assert!(calls.is_empty(), "{calls:?}");
    let s = store.create(data(json!({"small": 1}))).await.unwrap();
    // Over the limit in the configured format: refused before any call.
    let (result, calls) = counted(store.replace(&s.id, big.clone(), &WriteOptions::default())).await;
    assert!(matches!(result, Err(SessionError::TooLarge { .. })));
    assert!(calls.is_empty(), "{calls:?}");
    // A patch grows the stored data: it reads first, then refuses.
    let (result, calls) = counted(store.patch(&s.id, &big, &WriteOptions::default())).await;
    assert!(matches!(result, Err(SessionError::TooLarge { .. })));
    assert_eq!(calls, ["GetItem"]);
    // With the lock, the token knows the format: refused before any call, and the lock is kept.
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let with_token = WriteOptions { if_match: None, lock_token: locked.lock_token.clone(), ..Default::default() };
    let (result, calls) = counted(store.replace(&s.id, big, &with_token)).await;
    assert!(matches!(result, Err(SessionError::TooLarge { .. })));
    assert!(calls.is_empty(), "{calls:?}");
    store.replace(&s.id, data(json!({"small": 2})), &with_token).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"small": 2})));
}

#[tokio::test]
async fn a_write_stores_the_callers_expiry_with_or_without_the_lock() {
    let store = store(fast_locks().locking_strategy(LockingStrategy::Pessimistic)).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let in_two_hours = now() + 7200;
    let own_expiry = WriteOptions { expires: Some(in_two_hours), ..Default::default() };
    let written = store.replace(&s.id, data(json!({"n": 2})), &own_expiry).await.unwrap();
    assert_eq!(written.expires, in_two_hours, "read, then a conditional write");
    assert_eq!(number(&raw_item(&store, s.id.as_str()).await.unwrap(), "expires"), Some(in_two_hours));

    let locked = store.load_and_lock(&s.id).await.unwrap();
    let in_three_hours = now() + 10_800;
    let through_the_lock =
        WriteOptions { lock_token: locked.lock_token.clone(), expires: Some(in_three_hours), ..Default::default() };
    let written = store.replace(&s.id, data(json!({"n": 3})), &through_the_lock).await.unwrap();
    assert_eq!(written.expires, in_three_hours, "the holder's write-through");
    assert_eq!(number(&raw_item(&store, s.id.as_str()).await.unwrap(), "expires"), Some(in_three_hours));
}

#[tokio::test]
async fn a_session_near_dynamodbs_item_limit_is_stored_whole() {
    let store = store(Config::builder().max_data_size(MAX_DATA_SIZE_LIMIT)).await;
    let payload = "y".repeat(MAX_DATA_SIZE_LIMIT - 20);
    let s = store.create(data(json!({"blob": payload}))).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data["blob"].as_str().unwrap().len(), payload.len());
}

#[tokio::test]
async fn php_written_items_read_and_write() {
    let store = store(Config::builder()).await;
    let sid = "8v2qj1lcd0u4ofs3i4q9hn0c7r";
    put_php_item(&store, sid, r#"{"user.name":"jeremy"}"#, now() + 600, false).await;
    let id = SessionId::parse(sid).unwrap();
    let loaded = store.load(&id).await.unwrap();
    assert_eq!(loaded.data["user.name"], "jeremy");
    let written = store.replace(&id, data(json!({"user.name": "ada"})), &if_match(&loaded.etag)).await.unwrap();
    assert_ne!(written.etag, loaded.etag);
    assert_eq!(number(&raw_item(&store, sid).await.unwrap(), "version"), Some(1));
    // Data in no format the store reads is reported, never served as empty,
    // and left as it is.
    put_php_item(&store, sid, "\u{1}garbage", now() + 600, false).await;
    let before = raw_item(&store, sid).await.unwrap();
    assert!(matches!(store.load(&id).await, Err(SessionError::UnreadableData { .. })));
    let patch = store.patch(&id, &data(json!({"a": 1})), &WriteOptions::default()).await;
    assert!(matches!(patch, Err(SessionError::UnreadableData { .. })), "{patch:?}");
    assert!(matches!(store.regenerate(&id, None).await, Err(SessionError::UnreadableData { .. })));
    assert_eq!(raw_item(&store, sid).await.unwrap(), before);
}

/// Another writer stored a fractional `expires` (issue 21, item 5): writes
/// without a token compare it as stored, so they land at once (before, the
/// condition compared the truncated number and every write retried to 503).
#[tokio::test]
async fn a_fractional_expiry_is_read_and_written_as_stored() {
    let store = store(Config::builder().max_lock_wait_time(Duration::from_millis(500))).await;
    let sid = "fractionalexpiresfractional01";
    let key = store.config().item_key(sid);
    let fractional = format!("{}.5", now() + 600);
    put_raw(
        &store,
        [
            ("id".to_string(), AttributeValue::S(key)),
            ("data".to_string(), AttributeValue::S(r#"{"n":1}"#.into())),
            ("expires".to_string(), AttributeValue::N(fractional)),
        ]
        .into(),
    )
    .await;
    let id = SessionId::parse(sid).unwrap();
    let (patched, calls) = counted(store.patch(&id, &data(json!({"n": 2})), &WriteOptions::default())).await;
    assert_eq!(patched.expect("the patch lands").data, data(json!({"n": 2})));
    assert_eq!(calls, ["GetItem", "UpdateItem"], "one read, one write: no retries");
    let replaced = store.replace(&id, data(json!({"n": 3})), &WriteOptions::default()).await.unwrap();
    assert_eq!(replaced.data, data(json!({"n": 3})));

    // Live exactly while the stored number is in the future, as PHP reads
    // it: `x.5` within second `x` (tried again if the second ended meanwhile).
    for attempt in 1.. {
        let second = now();
        let mut item = raw_item(&store, sid).await.unwrap();
        item.insert("expires".into(), AttributeValue::N(format!("{second}.5")));
        put_raw(&store, item).await;
        let loaded = store.load(&id).await;
        if now() == second || attempt == 3 {
            assert_eq!(loaded.expect("x.5 is after x").data, data(json!({"n": 3})));
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// Ids and keys
// ---------------------------------------------------------------------------

#[tokio::test]
async fn generated_ids_are_32_alphanumerics_and_keyed_as_the_php_sdk_keys_them() {
    for _ in 0..1000 {
        let id = SessionId::generate();
        let text = id.as_str();
        assert!(text.len() == 32 && text.bytes().all(|b| b.is_ascii_alphanumeric()), "{text}");
    }
    let store = store(Config::builder()).await;
    for _ in 0..20 {
        let s = store.create(Default::default()).await.unwrap();
        assert!(s.id.as_str().len() == 32 && s.id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        let raw = raw_item(&store, s.id.as_str()).await.unwrap();
        assert_eq!(raw["id"].as_s().unwrap(), &format!("PHPSESSID_{}", s.id.as_str()));
    }
}

#[tokio::test]
async fn php_ids_of_every_alphabet_are_served() {
    let store = store(Config::builder()).await;
    let long: String = "0aZ,-".chars().cycle().take(256).collect();
    for sid in ["0123456789abcdef0123456789abcdef", "0123456789abcdefghijklmnuv", long.as_str()] {
        put_php_item(&store, sid, r#"{"n":1}"#, now() + 600, false).await;
        let id = SessionId::parse(sid).unwrap_or_else(|e| panic!("{sid}: {e}"));
        assert_eq!(store.load(&id).await.unwrap().data, data(json!({"n": 1})), "{sid}");
        store.patch(&id, &data(json!({"m": 2})), &WriteOptions::default()).await.unwrap();
        let raw = raw_item(&store, sid).await.unwrap();
        assert_eq!(raw["id"].as_s().unwrap(), &format!("PHPSESSID_{sid}"));
        assert_eq!(stored(&raw), ('S', json!({"m": 2, "n": 1})));
    }
    assert_eq!(count_items(&store).await, 3, "each written in place");
}

#[tokio::test]
async fn the_key_is_trim_of_session_name_underscore_id() {
    // (SESSION_NAME, the key PHP's SDK builds for `id`)
    let id = SessionId::generate();
    let cases =
        [("", id.to_string()), ("app", format!("app_{id}")), ("_app_", format!("app__{id}")), ("__", id.to_string())];
    for (session_name, key) in cases {
        let store = store(Config::builder().session_name(session_name)).await;
        // Written by "PHP" under the key PHP computes, read here.
        put_raw(
            &store,
            [
                ("id".to_string(), s(&key)),
                ("data".to_string(), s(r#"{"php":1}"#)),
                ("expires".to_string(), n(now() + 600)),
            ]
            .into(),
        )
        .await;
        assert_eq!(store.load(&id).await.unwrap().data, data(json!({"php": 1})), "SESSION_NAME={session_name:?}");
        store.patch(&id, &data(json!({"rust": 2})), &WriteOptions::default()).await.unwrap();
        assert_eq!(count_items(&store).await, 1, "SESSION_NAME={session_name:?}: written under the same key");
        let created = store.create(Default::default()).await.unwrap();
        let expected = format!("{session_name}_{}", created.id).trim_matches('_').to_string();
        assert!(raw_item(&store, created.id.as_str()).await.unwrap()["id"].as_s().unwrap() == &expected);
    }
}

#[tokio::test]
async fn custom_attribute_names_and_empty_session_name() {
    let store = store(
        Config::builder().hash_key("pk").data_attribute("payload").session_lifetime_attribute("ttl").session_name(""),
    )
    .await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert_eq!(raw["pk"].as_s().unwrap(), s.id.as_str());
    assert!(raw.contains_key("payload") && raw.contains_key("ttl"));
    store.patch(&s.id, &data(json!({"b": 2})), &WriteOptions::default()).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"a": 1, "b": 2})));
}

// ---------------------------------------------------------------------------
// The data attribute's type (the PHP SDK's data_attribute_type)
// ---------------------------------------------------------------------------

/// The stored data attribute: its type (S or B) and its JSON.
fn stored(raw: &std::collections::HashMap<String, AttributeValue>) -> (char, serde_json::Value) {
    match &raw["data"] {
        AttributeValue::S(text) => ('S', serde_json::from_str(text).unwrap()),
        AttributeValue::B(bytes) => ('B', serde_json::from_slice(bytes.as_ref()).unwrap()),
        other => panic!("data is {other:?}"),
    }
}

fn binary(bytes: &str) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes.as_bytes().to_vec()))
}

#[tokio::test]
async fn a_binary_data_attribute_is_read_and_written_back_as_binary() {
    let store = store(fast_locks().locking_strategy(LockingStrategy::Pessimistic)).await;
    let sid = SessionId::generate();
    let key = store.config().item_key(sid.as_str());
    put_raw(
        &store,
        [("id".into(), s(&key)), ("data".into(), binary(r#"{"n":3}"#)), ("expires".into(), n(now() + 600))].into(),
    )
    .await;
    let loaded = store.load(&sid).await.unwrap();
    assert_eq!(loaded.data, data(json!({"n": 3})), "never read as empty");

    let patched = store.patch(&sid, &data(json!({"m": 4})), &WriteOptions::default()).await.unwrap();
    assert_eq!(patched.data, data(json!({"m": 4, "n": 3})));
    let raw = raw_item(&store, sid.as_str()).await.unwrap();
    assert_eq!(stored(&raw), ('B', json!({"m": 4, "n": 3})), "written back as B");

    let locked = store.load_and_lock(&sid).await.unwrap();
    let token = WriteOptions { if_match: None, lock_token: locked.lock_token.clone(), ..Default::default() };
    store.replace(&sid, data(json!({"k": 5})), &token).await.unwrap();
    assert_eq!(stored(&raw_item(&store, sid.as_str()).await.unwrap()), ('B', json!({"k": 5})), "also through a lock");
}

#[tokio::test]
async fn data_attribute_type_binary_stores_new_sessions_as_b() {
    let from_env = Config::from_lookup(|name| (name == "DATA_ATTRIBUTE_TYPE").then(|| "binary".to_string())).unwrap();
    assert_eq!(from_env.data_attribute_type, DataAttributeType::Binary);
    let store = store(Config::builder().data_attribute_type(DataAttributeType::Binary)).await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert_eq!(stored(&raw), ('B', json!({"a": 1})));
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"a": 1})));
    store.patch(&s.id, &data(json!({"b": 2})), &WriteOptions::default()).await.unwrap();
    assert_eq!(stored(&raw_item(&store, s.id.as_str()).await.unwrap()), ('B', json!({"a": 1, "b": 2})));
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn consistent_read_option_sets_getitem_consistency() {
    for consistent in [true, false] {
        let gets = RequestLog::of("GetItem");
        let client = client_with(|b| b.interceptor(gets.clone()));
        let store = store_on(client, Config::builder().consistent_read(consistent)).await;
        let s = store.create(Default::default()).await.unwrap();
        store.load(&s.id).await.unwrap();
        assert_eq!(gets.bodies()[0]["ConsistentRead"], json!(consistent));
    }
}
