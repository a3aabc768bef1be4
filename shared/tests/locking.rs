//! Pessimistic locking against a real DynamoDB-compatible server, with PHP's
//! session handler locking and writing the same items.

mod common;

use std::time::Duration;

use common::*;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures::{data, fast_locks, now, put_php_item, raw_item, store};
use dynamodb_sessions::{
    ConfigBuilder, LockToken, LockingStrategy, SessionError, SessionId, SessionStore, WriteOptions,
};
use serde_json::json;

async fn locking_store(builder: ConfigBuilder) -> SessionStore {
    store(builder.locking_strategy(LockingStrategy::Pessimistic)).await
}

fn with_token(token: &LockToken) -> WriteOptions {
    WriteOptions { if_match: None, lock_token: Some(token.clone()), ..Default::default() }
}

/// A well-formed token of a lock nobody holds.
fn stranger_token() -> LockToken {
    LockToken::parse(&format!("{}.{}.jS", "s".repeat(22), now_ms() + 60_000)).unwrap()
}

#[tokio::test]
async fn acquire_is_one_update_that_returns_the_item() {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"a": 1}))).await.unwrap();
    let (locked, calls) = counted(store.load_and_lock(&s.id)).await;
    let locked = locked.unwrap();
    assert_eq!(calls, ["UpdateItem"]);
    assert_eq!(locked.data, data(json!({"a": 1})));
    assert_eq!(locked.etag, s.etag, "locking is not a data write");
    let token = locked.lock_token.expect("a token");
    assert_eq!(LockToken::parse(&token.as_header_value()).unwrap(), token, "the token round-trips as a header");
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    let lease = number(&raw, "lock").unwrap();
    assert!(lease > now_ms(), "`lock` holds the lease's end (ms), not PHP's 1: {lease}");
    assert!(raw["lock_token"].as_s().is_ok());
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
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock") && !raw.contains_key("lock_token"), "the last write released the lock");
}

#[tokio::test]
async fn waiting_past_max_lock_wait_time_is_locked_and_the_data_survives() {
    let store = locking_store(fast_locks().max_lock_wait_time(Duration::from_millis(300))).await;
    let s = store.create(data(json!({"cart": [1, 2]}))).await.unwrap();
    let holder = store.load_and_lock(&s.id).await.unwrap();
    let (waiter, calls) = counted(store.load_and_lock(&s.id)).await;
    assert!(matches!(waiter, Err(SessionError::Locked)), "{waiter:?}");
    assert!(calls.len() > 1, "it waited and looked again: {calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "UpdateItem").count(), 1, "one refused attempt, then reads: {calls:?}");
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
    let stranger = stranger_token();
    let none = WriteOptions::default();

    assert!(matches!(store.replace(&s.id, data(json!({"v": 2})), &none).await, Err(SessionError::Locked)));
    assert!(matches!(store.patch(&s.id, &data(json!({"v": 2})), &none).await, Err(SessionError::Locked)));
    assert!(matches!(store.destroy(&s.id, None).await, Err(SessionError::Locked)));
    assert!(matches!(store.regenerate(&s.id, None).await, Err(SessionError::Locked)));
    let wrong = with_token(&stranger);
    assert!(matches!(store.replace(&s.id, data(json!({"v": 2})), &wrong).await, Err(SessionError::LockLost)));
    assert!(matches!(store.patch(&s.id, &data(json!({"v": 2})), &wrong).await, Err(SessionError::LockLost)));
    assert!(matches!(store.destroy(&s.id, Some(&stranger)).await, Err(SessionError::LockLost)));
    assert!(matches!(store.regenerate(&s.id, Some(&stranger)).await, Err(SessionError::LockLost)));
    // Releasing a lock that is not the caller's is a no-op, not a release.
    store.unlock(&s.id, &stranger).await.unwrap();
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert!(raw.contains_key("lock") && raw.contains_key("lock_token"), "the holder's lock stays");
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"v": 1})), "a plain read still works");

    store.unlock(&s.id, &token).await.unwrap();
    store.unlock(&s.id, &token).await.unwrap(); // nothing left to release: still fine
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock") && !raw.contains_key("lock_token"));
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
    assert!(matches!(late, Err(SessionError::LockLost)), "{late:?}");
    let winner = &winners[0];
    store
        .replace(&s.id, data(json!({"owner": "winner"})), &with_token(winner.lock_token.as_ref().unwrap()))
        .await
        .unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data["owner"], "winner");
}

#[tokio::test]
async fn unlock_after_a_takeover_is_ok_and_leaves_the_new_holders_lock() {
    let store = locking_store(fast_locks().lock_lease(Duration::from_millis(200))).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let first = store.load_and_lock(&s.id).await.unwrap();
    let second = store.load_and_lock(&s.id).await.unwrap(); // waits out the 200 ms lease
    let first_token = first.lock_token.unwrap();
    let second_token = second.lock_token.unwrap();
    store.unlock(&s.id, &first_token).await.unwrap();
    let raw = raw_item(&store, s.id.as_str()).await.unwrap();
    assert!(raw.contains_key("lock"), "the new holder's lock stays");
    let late = store.replace(&s.id, data(json!({"n": 2})), &with_token(&first_token)).await;
    assert!(matches!(late, Err(SessionError::LockLost)), "{late:?}");
    store.replace(&s.id, data(json!({"n": 3})), &with_token(&second_token)).await.unwrap();
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"n": 3})));
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

// ---------------------------------------------------------------------------
// With PHP on the same table
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_php_lock_is_honoured_and_never_taken_over() {
    // A lease far shorter than the wait: a PHP lock has no lease to run out.
    let store = locking_store(
        fast_locks().lock_lease(Duration::from_millis(100)).max_lock_wait_time(Duration::from_millis(500)),
    )
    .await;
    let sid = SessionId::parse("phplockedsession0000000000").unwrap();
    put_php_item(&store, sid.as_str(), r#"{"n":1}"#, now() + 600, false).await;
    assert!(php_lock(&store, sid.as_str()).await, "PHP takes the lock");
    let before = raw_item(&store, sid.as_str()).await.unwrap();

    assert!(matches!(store.load_and_lock(&sid).await, Err(SessionError::Locked)));
    assert!(matches!(store.load_and_lock(&sid).await, Err(SessionError::Locked)), "not after a lease either");
    let none = WriteOptions::default();
    assert!(matches!(store.replace(&sid, data(json!({"n":2})), &none).await, Err(SessionError::Locked)));
    assert!(matches!(store.patch(&sid, &data(json!({"n":2})), &none).await, Err(SessionError::Locked)));
    assert!(matches!(store.destroy(&sid, None).await, Err(SessionError::Locked)));
    assert_eq!(raw_item(&store, sid.as_str()).await.unwrap(), before, "PHP's lock and data untouched");
    assert_eq!(store.load(&sid).await.unwrap().data, data(json!({"n": 1})), "a plain read still works");

    // PHP writes (releasing its lock): now we lock it.
    php_write(&store, sid.as_str(), r#"{"n":5}"#).await;
    let session = store.load_and_lock(&sid).await.unwrap();
    assert_eq!(session.data, data(json!({"n": 5})));
    store.replace(&sid, data(json!({"n": 6})), &with_token(session.lock_token.as_ref().unwrap())).await.unwrap();
    let raw = raw_item(&store, sid.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock") && !raw.contains_key("lock_token"));
}

#[tokio::test]
async fn php_cannot_lock_while_we_hold_the_lock() {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let locked = store.load_and_lock(&s.id).await.unwrap();
    assert!(!php_lock(&store, s.id.as_str()).await, "PHP's Exists=false sees our lock");
    store.unlock(&s.id, locked.lock_token.as_ref().unwrap()).await.unwrap();
    assert!(php_lock(&store, s.id.as_str()).await);
}

#[tokio::test]
async fn a_php_write_over_our_lock_ends_it_and_php_wins() {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"from": "rust"}))).await.unwrap();
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let token = locked.lock_token.unwrap();
    // PHP's write: unconditional, removes only `lock` (our lock_token stays behind).
    php_write(&store, s.id.as_str(), r#"{"from":"php"}"#).await;
    let after_php = raw_item(&store, s.id.as_str()).await.unwrap();
    assert!(!after_php.contains_key("lock"));

    let (write, calls) = counted(store.replace(&s.id, data(json!({"from": "late rust"})), &with_token(&token))).await;
    assert!(matches!(write, Err(SessionError::LockLost)), "{write:?}");
    assert_eq!(calls, ["UpdateItem"], "refused at once");
    let (patch, calls) = counted(store.patch(&s.id, &data(json!({"x": 1})), &with_token(&token))).await;
    assert!(matches!(patch, Err(SessionError::LockLost)), "{patch:?}");
    assert_eq!(calls, ["GetItem"], "the read shows the lock is gone: no write");
    assert!(matches!(store.destroy(&s.id, Some(&token)).await, Err(SessionError::LockLost)));
    assert!(matches!(store.regenerate(&s.id, Some(&token)).await, Err(SessionError::LockLost)));
    store.unlock(&s.id, &token).await.unwrap();
    assert_eq!(raw_item(&store, s.id.as_str()).await.unwrap(), after_php, "nothing of ours landed");
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"from": "php"})));
}

#[tokio::test]
async fn a_stale_token_never_writes_or_unlocks_under_a_later_php_lock() {
    let store = locking_store(fast_locks().max_lock_wait_time(Duration::from_millis(200))).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let token = store.load_and_lock(&s.id).await.unwrap().lock_token.unwrap();
    php_write(&store, s.id.as_str(), r#"{"n":2}"#).await;
    assert!(php_lock(&store, s.id.as_str()).await, "PHP locks again");
    let locked_by_php = raw_item(&store, s.id.as_str()).await.unwrap();
    assert_eq!(number(&locked_by_php, "lock"), Some(1));
    assert!(locked_by_php.contains_key("lock_token"), "our old token is still in the item");

    assert!(matches!(
        store.replace(&s.id, data(json!({"n": 3})), &with_token(&token)).await,
        Err(SessionError::LockLost)
    ));
    assert!(matches!(
        store.patch(&s.id, &data(json!({"n": 3})), &with_token(&token)).await,
        Err(SessionError::LockLost)
    ));
    assert!(matches!(store.destroy(&s.id, Some(&token)).await, Err(SessionError::LockLost)));
    assert!(matches!(store.regenerate(&s.id, Some(&token)).await, Err(SessionError::LockLost)));
    store.unlock(&s.id, &token).await.unwrap();
    assert_eq!(raw_item(&store, s.id.as_str()).await.unwrap(), locked_by_php, "PHP's lock stays, data untouched");
    assert!(matches!(store.load_and_lock(&s.id).await, Err(SessionError::Locked)));
}

#[tokio::test]
async fn a_locking_read_of_undecodable_data_leaves_no_lock_and_changes_nothing() {
    let store = locking_store(fast_locks()).await;
    let sid = SessionId::generate();
    put_php_item(&store, sid.as_str(), "\u{1}garbage", now() + 600, false).await;
    let before = raw_item(&store, sid.as_str()).await.unwrap();
    let result = store.load_and_lock(&sid).await;
    assert!(matches!(result, Err(SessionError::UnreadableData { .. })), "{result:?}");
    let after = raw_item(&store, sid.as_str()).await.unwrap();
    assert!(!after.contains_key("lock") && !after.contains_key("lock_token"), "no lock left behind: {after:?}");
    assert_eq!(after, before, "the item is as it was");
    // PHP can lock it at once.
    assert!(php_lock(&store, sid.as_str()).await);
}

// ---------------------------------------------------------------------------
// What a write costs when the lock is not the caller's
// ---------------------------------------------------------------------------

#[tokio::test]
async fn patch_with_a_lost_lock_is_lock_lost_after_one_read() {
    let store = locking_store(fast_locks().lock_lease(Duration::from_millis(100))).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let lost = store.load_and_lock(&s.id).await.unwrap().lock_token.unwrap();
    let taken_over = store.load_and_lock(&s.id).await.unwrap();
    let (patch, calls) = counted(store.patch(&s.id, &data(json!({"n": 2})), &with_token(&lost))).await;
    assert!(matches!(patch, Err(SessionError::LockLost)), "{patch:?}");
    assert_eq!(calls, ["GetItem"], "one read, no write, no retry");
    // The same once the lock is simply gone.
    store.unlock(&s.id, taken_over.lock_token.as_ref().unwrap()).await.unwrap();
    let (patch, calls) = counted(store.patch(&s.id, &data(json!({"n": 2})), &with_token(&lost))).await;
    assert!(matches!(patch, Err(SessionError::LockLost)), "{patch:?}");
    assert_eq!(calls, ["GetItem"]);
    assert_eq!(store.load(&s.id).await.unwrap().data, data(json!({"n": 1})));
}

/// A write without a token meets a live lock of another request: it polls
/// with reads until the holder releases (here, exactly when the writer's
/// third read leaves), and sends its one write only then.
async fn writes_only_once_the_lock_is_released(write: &str) {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let token = store.load_and_lock(&s.id).await.unwrap().lock_token.unwrap();
    let (holder, id) = (store.clone(), s.id.clone());
    let hook = Hook::before("GetItem", 3, move || async move {
        holder.replace(&id, data(json!({"n": 2, "holder": true})), &with_token(&token)).await.unwrap();
    });
    let writer = hooked(&store, &hook);
    let (result, calls) = match write {
        "patch" => counted(writer.patch(&s.id, &data(json!({"w": 1})), &WriteOptions::default())).await,
        _ => counted(writer.replace(&s.id, data(json!({"w": 1})), &WriteOptions::default())).await,
    };
    let written = result.unwrap();
    assert!(hook.fired());
    // The read, a poll that still sees the lock, the poll that sees it gone,
    // the read before writing, the write.
    assert_eq!(calls, ["GetItem", "GetItem", "GetItem", "GetItem", "UpdateItem"], "{write}");
    let expected = if write == "patch" { json!({"n": 2, "holder": true, "w": 1}) } else { json!({"w": 1}) };
    assert_eq!(written.data, data(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_sends_no_write_while_its_read_shows_a_live_lock() {
    writes_only_once_the_lock_is_released("patch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_sends_no_write_while_its_read_shows_a_live_lock() {
    writes_only_once_the_lock_is_released("replace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_polls_with_reads_and_retries_once_per_release() {
    let store = locking_store(fast_locks()).await;
    let s = store.create(data(json!({"n": 1}))).await.unwrap();
    let token = store.load_and_lock(&s.id).await.unwrap().lock_token.unwrap();
    let (holder, id) = (store.clone(), s.id.clone());
    let hook = Hook::before("GetItem", 3, move || async move {
        holder.unlock(&id, &token).await.unwrap();
    });
    let (locked, calls) = counted(hooked(&store, &hook).load_and_lock(&s.id)).await;
    assert!(locked.unwrap().lock_token.is_some());
    assert_eq!(calls, ["UpdateItem", "GetItem", "GetItem", "GetItem", "UpdateItem"]);
}
