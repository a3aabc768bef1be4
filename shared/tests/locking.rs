//! Pessimistic locking against a real DynamoDB-compatible server.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::{LockToken, LockingStrategy, SessionError, SessionId, SessionStore, WriteOptions};
use serde_json::json;

async fn locking_store(builder: dynamodb_sessions::ConfigBuilder) -> SessionStore {
    let (client, config) = setup(builder.locking_strategy(LockingStrategy::Pessimistic)).await;
    SessionStore::new(client, config)
}

fn with_token(token: &LockToken) -> WriteOptions {
    WriteOptions { expected_version: None, lock_token: Some(token.clone()) }
}

#[tokio::test]
async fn acquire_is_one_update_that_returns_the_item() {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    let (locked, calls) = counted(store.load_and_lock(&s.id)).await;
    let locked = locked.unwrap();
    assert_eq!(calls, ["UpdateItem"]);
    assert_eq!(locked.data, data(json!({"a": 1})));
    assert!(locked.lock_token.is_some());
    let raw = raw_item(store.client(), store.config(), s.id.as_str()).await.unwrap();
    assert_eq!(raw["lock"].as_n().unwrap(), "1", "the PHP handler's lock attribute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_lock_holders_increment_a_counter_exactly_fifty_times() {
    let store = locking_store(fast_locks().max_lock_wait_time(Duration::from_secs(60))).await;
    let s = store.create(data(json!({"counter": 0}))).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, id) = (store.clone(), s.id.clone());
            tokio::spawn(async move {
                let session = store.load_and_lock(&id).await?;
                let mut next = session.data.clone();
                next.insert("counter".into(), json!(session.data["counter"].as_i64().unwrap() + 1));
                store.replace(&id, next, &with_token(session.lock_token.as_ref().unwrap())).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let end = store.load(&s.id).await.unwrap();
    assert_eq!(end.data["counter"], json!(50));
    let raw = raw_item(store.client(), store.config(), s.id.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock"), "the last write released the lock");
}

#[tokio::test]
async fn waiting_past_max_lock_wait_time_is_locked_and_the_data_survives() {
    let store = locking_store(fast_locks().max_lock_wait_time(Duration::from_millis(300))).await;
    let s = store.create(data(json!({"cart": [1, 2]}))).await.unwrap();
    let holder = store.load_and_lock(&s.id).await.unwrap();
    let started = Instant::now();
    let (waiter, calls) = counted(store.load_and_lock(&s.id)).await;
    assert!(matches!(waiter, Err(SessionError::Locked)), "{waiter:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(calls.len() > 1, "it retried: {calls:?}");
    // The holder still writes through, and nothing was emptied.
    let written = store
        .replace(&s.id, data(json!({"cart": [1, 2, 3]})), &with_token(holder.lock_token.as_ref().unwrap()))
        .await
        .unwrap();
    assert_eq!(written.data, data(json!({"cart": [1, 2, 3]})));
}

#[tokio::test]
async fn only_the_token_holder_writes_releases_or_destroys() {
    let store = locking_store(fast_locks().max_lock_wait_time(Duration::from_millis(100))).await;
    let s = store.create(data(json!({"v": 1}))).await.unwrap();
    let holder = store.load_and_lock(&s.id).await.unwrap();
    let token = holder.lock_token.clone().unwrap();
    let stranger = LockToken::parse("strangerstrangerstranger").unwrap();

    let none = WriteOptions::default();
    assert!(matches!(store.replace(&s.id, data(json!({"v": 2})), &none).await, Err(SessionError::Locked)));
    assert!(matches!(
        store.replace(&s.id, data(json!({"v": 2})), &with_token(&stranger)).await,
        Err(SessionError::Locked)
    ));
    assert!(matches!(store.patch(&s.id, &data(json!({"v": 2})), &none).await, Err(SessionError::Locked)));
    assert!(matches!(store.destroy(&s.id, None).await, Err(SessionError::Locked)));
    assert!(matches!(store.regenerate(&s.id, None).await, Err(SessionError::Locked)));
    assert!(matches!(store.unlock(&s.id, &stranger).await, Err(SessionError::Locked)));
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"v": 1})), "a plain read still works");

    store.unlock(&s.id, &token).await.unwrap();
    store.unlock(&s.id, &token).await.unwrap(); // nothing left to release: still fine
    let next = store.load_and_lock(&s.id).await.unwrap();
    store.destroy(&s.id, next.lock_token.as_ref()).await.unwrap();
    assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_lease_exactly_one_waiter_takes_over() {
    // Lease 1 s; waiters give up at 1.5 s, before the winner's own lease ends.
    let store =
        locking_store(fast_locks().lock_lease(Duration::from_secs(1)).max_lock_wait_time(Duration::from_millis(1500)))
            .await;
    let s = store.create(data(json!({"owner": "crashed"}))).await.unwrap();
    let crashed = store.load_and_lock(&s.id).await.unwrap(); // and never releases
    let waiters: Vec<_> = (0..6)
        .map(|_| {
            let (store, id) = (store.clone(), s.id.clone());
            tokio::spawn(async move { store.load_and_lock(&id).await })
        })
        .collect();
    let mut winners = Vec::new();
    for waiter in waiters {
        match waiter.await.unwrap() {
            Ok(session) => winners.push(session),
            Err(SessionError::Locked) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one waiter took the lock over");
    // The crashed holder's late write is refused, not a silent overwrite.
    let late =
        store.replace(&s.id, data(json!({"owner": "late"})), &with_token(crashed.lock_token.as_ref().unwrap())).await;
    assert!(matches!(late, Err(SessionError::Locked)), "{late:?}");
    let winner = &winners[0];
    store
        .replace(&s.id, data(json!({"owner": "winner"})), &with_token(winner.lock_token.as_ref().unwrap()))
        .await
        .unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data["owner"], "winner");
}

#[tokio::test]
async fn a_php_lock_is_honoured_and_a_php_item_can_be_locked() {
    let store = locking_store(fast_locks().max_lock_wait_time(Duration::from_millis(200))).await;
    let locked_sid = SessionId::parse("phplockedsession0000000000").unwrap();
    put_php_item(store.client(), store.config(), locked_sid.as_str(), r#"{"n":1}"#, now() + 600, true).await;
    assert!(matches!(store.load_and_lock(&locked_sid).await, Err(SessionError::Locked)));
    assert!(matches!(
        store.replace(&locked_sid, data(json!({"n":2})), &WriteOptions::default()).await,
        Err(SessionError::Locked)
    ));
    assert_eq!(store.load(&locked_sid).await.unwrap().data, data(json!({"n": 1})));

    let free_sid = SessionId::parse("phpfreesession000000000000").unwrap();
    put_php_item(store.client(), store.config(), free_sid.as_str(), r#"{"n":1}"#, now() + 600, false).await;
    let session = store.load_and_lock(&free_sid).await.unwrap();
    assert_eq!(session.data, data(json!({"n": 1})));
    let written = store
        .replace(&free_sid, data(json!({"n": 2})), &with_token(session.lock_token.as_ref().unwrap()))
        .await
        .unwrap();
    assert_eq!(written.version, 1);
    let raw = raw_item(store.client(), store.config(), free_sid.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock"));
}

#[tokio::test]
async fn regenerate_by_the_lock_holder_keeps_the_data() {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"role": "user"}))).await.unwrap();
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let fresh = store.regenerate(&s.id, locked.lock_token.as_ref()).await.unwrap();
    assert_eq!(fresh.data, data(json!({"role": "user"})));
    assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
    // The new id starts unlocked.
    assert!(store.load_and_lock(&fresh.id).await.unwrap().lock_token.is_some());
}
