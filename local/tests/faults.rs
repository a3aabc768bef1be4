//! The library (`dynamodb-sessions`) through the capacity and fault
//! simulator, in front of a real emulator: writes whose first attempt landed
//! before a 500, throttling and transaction conflicts classified, stalled
//! calls cut by the SDK's timeouts, what lock waiters cost at 5/5, GC paced by
//! capacity, GC runs killed or meeting 500s. Every figure asserted comes from
//! the simulator's stats or the store's answers, never from timing our speed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::{self, fixtures};
use dynamodb_sessions::gc::{Stop, CHECKPOINT_KEY};
use dynamodb_sessions::{
    Config, ConfigBuilder, GcReport, LockingStrategy, ScheduledSweep, SessionError, SessionId, SessionStore,
    WriteOptions,
};
use serde_json::json;
use sessions_local::simulator::{
    CapacityConfig, FaultConfig, InitialCredit, RunningSimulator, Simulator, SimulatorConfig, TableCapacity, Throughput,
};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// One embedded emulator for the whole binary, behind every simulator (also
/// when the test command points `DYNAMODB_TEST_ENDPOINT` at moto, whose
/// one-request-at-a-time server is no base for capacity figures); each test
/// has its own simulator and table.
fn upstream() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(emulator::start_in_background)
}

/// A store on a fresh 5/5 table of the emulator, without a simulator.
async fn plain_store(builder: ConfigBuilder) -> SessionStore {
    fixtures::store_on(emulator::client(upstream()), builder).await
}

async fn simulator(config: SimulatorConfig) -> RunningSimulator {
    Simulator::start(upstream(), config).await.expect("the simulator starts")
}

/// A store on a fresh 5/5 table, created through the simulator (which then
/// meters it at 5/5 when capacity is simulated).
async fn store_through(sim: &RunningSimulator, builder: ConfigBuilder) -> SessionStore {
    fixtures::store_on(emulator::client(&sim.url()), builder).await
}

/// The same table and options, straight on the emulator: for seeding and
/// checking without being metered or faulted.
fn direct(store: &SessionStore) -> SessionStore {
    SessionStore::new(emulator::client(upstream()), store.config().clone())
}

fn faults(spec: &str) -> FaultConfig {
    spec.parse().expect("a valid fault spec")
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name).map(|v| v.as_n().expect("a number").parse().expect("an integer"))
}

fn with_token(session: &dynamodb_sessions::Session) -> WriteOptions {
    WriteOptions { if_match: None, lock_token: session.lock_token.clone(), ..Default::default() }
}

fn locking() -> ConfigBuilder {
    fixtures::fast_locks().locking_strategy(LockingStrategy::Pessimistic)
}

/// Writes `items` straight on the emulator, 25 to a request.
async fn seed_items(store: &SessionStore, items: Vec<HashMap<String, AttributeValue>>) {
    let client = emulator::client(upstream());
    for chunk in items.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item.clone())).build().unwrap())
                    .build()
            })
            .collect();
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(&store.config().table_name, pending)
                .send()
                .await
                .expect("seed");
            pending = out.unprocessed_items.unwrap_or_default().remove(&store.config().table_name).unwrap_or_default();
        }
    }
}

/// Seeds `total` sessions as PHP writes them, one in `expired_every` of them
/// expired; returns (live ids, expired ids).
async fn seed_sessions(store: &SessionStore, total: usize, expired_every: usize) -> (Vec<String>, Vec<String>) {
    let (mut live, mut expired) = (Vec::new(), Vec::new());
    let mut items = Vec::new();
    let now = fixtures::now();
    for i in 0..total {
        let sid = SessionId::generate().to_string();
        let is_expired = i % expired_every == 0;
        let expires = if is_expired { now - 10 } else { now + 3600 };
        let config = store.config();
        items.push(
            [
                (config.hash_key.clone(), AttributeValue::S(config.item_key(&sid))),
                (config.data_attribute.clone(), AttributeValue::S(r#"{"user.name":"jeremy","n":3}"#.into())),
                (config.session_lifetime_attribute.clone(), AttributeValue::N(expires.to_string())),
            ]
            .into(),
        );
        if is_expired {
            expired.push(sid)
        } else {
            live.push(sid)
        }
    }
    seed_items(store, items).await;
    (live, expired)
}

// ---------------------------------------------------------------------------
// Writes whose first attempt landed, then the client got a 500
// ---------------------------------------------------------------------------

/// Arms one `after-500` on the next request of `operation` (applied upstream,
/// answered 500, retried by the SDK); returns the count of such faults so far.
fn one_after_500(sim: &RunningSimulator, operation: &str) -> u64 {
    sim.set_faults(faults(&format!("after-500=1:op={operation}:times=1"))).unwrap();
    sim.stats().faults_of("after-500")
}

fn assert_hit_once(sim: &RunningSimulator, before: u64) {
    assert_eq!(sim.stats().faults_of("after-500"), before + 1, "the fault landed");
}

#[tokio::test]
async fn idempotent_create() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, Config::builder()).await;
    let faulted = one_after_500(&sim, "PutItem");
    let (created, calls) = counted(store.create(fixtures::data(json!({"n": 1})))).await;
    let created = created.expect("the retry finds its own item: created");
    assert_hit_once(&sim, faulted);
    assert_eq!(calls, ["PutItem", "PutItem"]);
    assert_eq!(fixtures::count_items(&direct(&store)).await, 1, "one session");
    assert_eq!(store.load(&created.id).await.unwrap().data, fixtures::data(json!({"n": 1})));
}

#[tokio::test]
async fn idempotent_load_and_lock_takes_the_lock_without_waiting_for_itself() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, locking()).await;
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    let faulted = one_after_500(&sim, "UpdateItem");
    let (locked, calls) = counted(store.load_and_lock(&s.id)).await;
    let locked = locked.expect("not Locked: the lock the retry found is its own");
    assert_hit_once(&sim, faulted);
    assert_eq!(calls, ["UpdateItem", "UpdateItem"], "no wait, no poll");
    // The lock in the table is the one the token holds: no orphan.
    let header = locked.lock_token.as_ref().unwrap().as_header_value();
    let mut parts = header.split('.');
    let (marker, lease, encoding) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert_eq!(raw["lock_token"].as_s().unwrap(), &format!("{marker}.{encoding}"), "the marker, bound to the encoding");
    assert_eq!(number(&raw, "lock").unwrap().to_string(), lease);
    store.replace(&s.id, fixtures::data(json!({"n": 2})), &with_token(&locked)).await.unwrap();
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock") && !raw.contains_key("lock_token"));
}

#[tokio::test]
async fn idempotent_write_through_a_lock() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, locking()).await;
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let faulted = one_after_500(&sim, "UpdateItem");
    let (written, calls) = counted(store.replace(&s.id, fixtures::data(json!({"n": 2})), &with_token(&locked))).await;
    let written = written.expect("not LockLost: the released lock is the write's own doing");
    assert_hit_once(&sim, faulted);
    assert_eq!(calls, ["UpdateItem", "UpdateItem"]);
    assert_eq!(written.data, fixtures::data(json!({"n": 2})));
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert_eq!(number(&raw, "version"), Some(2), "written once");
    assert!(!raw.contains_key("lock"));
}

#[tokio::test]
async fn idempotent_patch_is_applied_once() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, locking()).await;
    let s = store.create(fixtures::data(json!({"keep": true}))).await.unwrap();
    let faulted = one_after_500(&sim, "UpdateItem");
    let (patched, calls) =
        counted(store.patch(&s.id, &fixtures::data(json!({"n": 1})), &WriteOptions::default())).await;
    let patched = patched.expect("not Conflict: the change the read found is its own");
    assert_hit_once(&sim, faulted);
    // The write's outcome unknown, the store reads at once and finds its
    // marker: no second write.
    assert_eq!(calls, ["GetItem", "UpdateItem", "GetItem"], "no second read-modify-write");
    assert_eq!(patched.data, fixtures::data(json!({"keep": true, "n": 1})));
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert_eq!(number(&raw, "version"), Some(2), "one write: the counter of writes went up once");

    // The same with the caller's lock.
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let faulted = one_after_500(&sim, "UpdateItem");
    let patched = store.patch(&s.id, &fixtures::data(json!({"m": 2})), &with_token(&locked)).await.unwrap();
    assert_hit_once(&sim, faulted);
    assert_eq!(patched.data, fixtures::data(json!({"keep": true, "n": 1, "m": 2})));
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert_eq!(number(&raw, "version"), Some(3));
    assert!(!raw.contains_key("lock"));
}

#[tokio::test]
async fn idempotent_unlock_and_destroy() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, locking()).await;
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let faulted = one_after_500(&sim, "UpdateItem");
    let (unlocked, calls) = counted(store.unlock(&s.id, locked.lock_token.as_ref().unwrap())).await;
    unlocked.unwrap();
    assert_hit_once(&sim, faulted);
    assert_eq!(calls, ["UpdateItem", "UpdateItem"]);
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert!(!raw.contains_key("lock") && !raw.contains_key("lock_token"));

    sim.set_faults(FaultConfig::default()).unwrap();
    let locked = store.load_and_lock(&s.id).await.unwrap();
    let faulted = one_after_500(&sim, "DeleteItem");
    let (destroyed, calls) = counted(store.destroy(&s.id, locked.lock_token.as_ref())).await;
    destroyed.expect("not LockLost: the session is gone by the write's own doing");
    assert_hit_once(&sim, faulted);
    assert_eq!(calls, ["DeleteItem", "DeleteItem"]);
    assert!(fixtures::raw_item(&direct(&store), s.id.as_str()).await.is_none());

    sim.set_faults(FaultConfig::default()).unwrap();
    let other = store.create(Default::default()).await.unwrap();
    let faulted = one_after_500(&sim, "DeleteItem");
    store.destroy(&other.id, None).await.unwrap();
    assert_hit_once(&sim, faulted);
    assert_eq!(fixtures::count_items(&direct(&store)).await, 0);
}

#[tokio::test]
async fn idempotent_regenerate() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, Config::builder()).await;
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    let faulted = one_after_500(&sim, "TransactWriteItems");
    let fresh = store.regenerate(&s.id, None).await;
    assert_hit_once(&sim, faulted);
    let fresh = fresh.expect("the transaction landed once: its retry is no failure");
    assert_eq!(fresh.data, s.data);
    assert_eq!(store.load(&fresh.id).await.unwrap().data, s.data);
    assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
    assert_eq!(fixtures::count_items(&direct(&store)).await, 1);
}

/// A regenerate whose commit lands after its only attempt timed out (issue
/// 21, item 4): it sends the same transaction again, with the same
/// `ClientRequestToken`, until it knows the outcome, so the client learns the
/// new id (before, it answered 503 and the late commit logged the user out).
#[tokio::test]
async fn a_regenerate_whose_commit_lands_late_answers_the_new_id() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, Config::builder().dynamodb_operation_timeout(Duration::from_millis(500))).await;
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    sim.set_faults(faults("late=1:op=TransactWriteItems:times=1:after=1s")).unwrap();
    let fresh = store.regenerate(&s.id, None).await;
    assert_eq!(sim.stats().faults_of("late"), 1, "the first attempt's answer never came");
    let fresh = fresh.expect("the outcome is known: the session lives on under the new id");
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the late commit has reached the table
    let plain = direct(&store);
    assert_eq!(plain.load(&fresh.id).await.unwrap().data, s.data);
    assert!(matches!(plain.load(&s.id).await, Err(SessionError::NotFound)), "the old id is gone");
    assert_eq!(fixtures::count_items(&plain).await, 1, "one new session, not two");
}

/// A write's marker is kept among the item's last three, so it recognises
/// its own landed attempt after another write. Here A's patch lands, its
/// answer is lost (500), B's patch lands, and A's look at the item finds its
/// marker behind B's: A answers Ok without writing again, and B's value stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_patch_when_another_write_lands_before_it_looks() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, Config::builder()).await;
    let s = store.create(fixtures::data(json!({"x": "0"}))).await.unwrap();
    let other = direct(&store);
    let id = s.id.clone();
    let before_look = fixtures::Hook::before("GetItem", 2, move || async move {
        other.patch(&id, &fixtures::data(json!({"x": "b"})), &WriteOptions::default()).await.unwrap();
    });
    let a =
        SessionStore::new(fixtures::intercepted(&emulator::client(&sim.url()), before_look), store.config().clone());
    let faulted = one_after_500(&sim, "UpdateItem");
    a.patch(&s.id, &fixtures::data(json!({"x": "a"})), &WriteOptions::default()).await.unwrap();
    assert_hit_once(&sim, faulted);
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert_eq!(direct(&store).load(&s.id).await.unwrap().data["x"], "b", "B wrote after A's write landed");
    assert_eq!(number(&raw, "version"), Some(3), "created, A once, B once");
}

/// When more writes follow a lost answer than the item remembers, whether
/// the write landed cannot be told: it answers Unavailable (503, the client
/// decides) and is not applied a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_whose_outcome_cannot_be_told_is_unavailable_not_applied_twice() {
    let sim = simulator(SimulatorConfig::default()).await;
    let store = store_through(&sim, Config::builder()).await;
    let s = store.create(fixtures::data(json!({"x": "0"}))).await.unwrap();
    let other = direct(&store);
    let id = s.id.clone();
    let before_look = fixtures::Hook::before("GetItem", 2, move || async move {
        for i in 0..4 {
            other.patch(&id, &fixtures::data(json!({ format!("b{i}"): i })), &WriteOptions::default()).await.unwrap();
        }
    });
    let a =
        SessionStore::new(fixtures::intercepted(&emulator::client(&sim.url()), before_look), store.config().clone());
    let faulted = one_after_500(&sim, "UpdateItem");
    let patched = a.patch(&s.id, &fixtures::data(json!({"a": 1})), &WriteOptions::default()).await;
    assert_hit_once(&sim, faulted);
    assert!(matches!(patched, Err(SessionError::Unavailable { .. })), "{patched:?}");
    let raw = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    assert_eq!(number(&raw, "version"), Some(6), "created, A once, four others");
    assert_eq!(direct(&store).load(&s.id).await.unwrap().data["a"], 1);
}

// ---------------------------------------------------------------------------
// Throttling and transaction conflicts are 503-class, never Conflict or 500
// ---------------------------------------------------------------------------

/// A 5/5 table with no burst and a manual clock: capacity comes only when the
/// test advances the clock.
async fn starved() -> (RunningSimulator, SessionStore) {
    let capacity = CapacityConfig::default().burst_seconds(0).initial_credit(InitialCredit::Empty);
    let sim = simulator(SimulatorConfig::default().capacity(capacity).manual_clock()).await;
    // Timeouts long enough for the SDK's throttling retries to run out first.
    let builder = Config::builder()
        .dynamodb_operation_timeout(Duration::from_secs(30))
        .dynamodb_attempt_timeout(Duration::from_secs(5));
    let store = store_through(&sim, builder).await;
    (sim, store)
}

/// Spends every write unit of `store`'s table (each tiny put costs one).
async fn spend_the_write_units(store: &SessionStore, sim: &RunningSimulator) {
    let client = Client::from_conf(
        store
            .client()
            .config()
            .to_builder()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    );
    for i in 0.. {
        let put = client
            .put_item()
            .table_name(&store.config().table_name)
            .item("id", AttributeValue::S(format!("filler-{i}")))
            .send()
            .await;
        if put.is_err() {
            break;
        }
    }
    assert!(sim.stats().table(&store.config().table_name).throttled_writes > 0);
}

#[tokio::test]
async fn regenerate_and_writes_under_throttling_are_throttled_not_conflict() {
    let (sim, store) = starved().await;
    let s = direct(&store).create(fixtures::data(json!({"n": 1}))).await.unwrap();
    sim.advance_clock(Duration::from_secs(1));
    spend_the_write_units(&store, &sim).await;
    let table = store.config().table_name.clone();
    let throttled_before = sim.stats().table(&table).throttled_writes;

    // The read goes through; the transaction is cancelled for capacity.
    let (regenerated, calls) = counted(store.regenerate(&s.id, None)).await;
    assert!(matches!(regenerated, Err(SessionError::Throttled { .. })), "{regenerated:?}");
    assert_eq!(calls, ["GetItem", "TransactWriteItems"], "a cancellation for capacity is not retried as a conflict");
    assert!(sim.stats().table(&table).throttled_writes > throttled_before);

    // A plain write: retried with backoff until MAX_LOCK_WAIT_TIME, then Throttled.
    let patched = store.patch(&s.id, &fixtures::data(json!({"m": 2})), &WriteOptions::default()).await;
    assert!(matches!(patched, Err(SessionError::Throttled { .. })), "{patched:?}");
    // Nothing moved or changed.
    let plain = direct(&store);
    assert_eq!(plain.load(&s.id).await.unwrap().data, fixtures::data(json!({"n": 1})));
    assert_eq!(number(&fixtures::raw_item(&plain, s.id.as_str()).await.unwrap(), "version"), Some(1));
}

/// Answers the `nth` request of `operation` with a canned DynamoDB error
/// instead of sending it: the request is swapped for a harmless one
/// (DescribeLimits) on the way out and its answer replaced on the way back,
/// so, as with a real conflict, nothing is applied. The mark that its answer
/// is to be replaced lives in that request's own config bag: among
/// concurrent requests (a GC batch), no other answer is taken for it.
#[derive(Debug, Clone)]
struct CannedError {
    operation: &'static str,
    nth: usize,
    body: String,
    seen: Arc<AtomicUsize>,
}

impl CannedError {
    fn new(operation: &'static str, nth: usize, body: serde_json::Value) -> CannedError {
        CannedError { operation, nth, body: body.to_string(), seen: Arc::default() }
    }
}

/// In one request's config bag: its answer is to be replaced (once).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Swapped(bool);

impl Storable for Swapped {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CannedError {
    fn name(&self) -> &'static str {
        "CannedError"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request_mut();
        let target = request.headers().get("x-amz-target").unwrap_or_default().to_string();
        if target.rsplit('.').next() == Some(self.operation) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
        {
            request.headers_mut().insert("x-amz-target", "DynamoDB_20120810.DescribeLimits");
            *request.body_mut() = "{}".into();
            request.headers_mut().insert("content-length", "2");
            cfg.interceptor_state().store_put(Swapped(true));
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if cfg.load::<Swapped>() == Some(&Swapped(true)) {
            cfg.interceptor_state().store_put(Swapped(false));
            let mut response =
                aws_sdk_dynamodb::config::http::HttpResponse::new(400u16.try_into().unwrap(), self.body.clone().into());
            response.headers_mut().insert("content-type", "application/x-amz-json-1.0");
            *context.response_mut() = response;
        }
        Ok(())
    }
}

/// `store`'s table and options through a client that answers with `canned`.
fn conflicted(canned: &CannedError, store: &SessionStore) -> SessionStore {
    SessionStore::new(fixtures::intercepted(&emulator::client(upstream()), canned.clone()), store.config().clone())
}

/// A locking read of undecodable data releases the lock it took; when that
/// release fails too, the answer is still the data's fault (409
/// `unreadable_data`), not the release's error (issue 21, item 5).
#[tokio::test]
async fn a_failed_release_never_hides_why_a_locking_read_failed() {
    let store = plain_store(locking()).await;
    fixtures::put_php_item(&store, "undecodableundecodable01", "\u{1}garbage", fixtures::now() + 600, false).await;
    let id = SessionId::parse("undecodableundecodable01").unwrap();
    let refused = json!({
        "__type": "com.amazon.coral.validate#ValidationException",
        "message": "canned: the release fails"
    });
    let canned = CannedError::new("UpdateItem", 2, refused);
    let read = conflicted(&canned, &store).load_and_lock(&id).await;
    assert_eq!(canned.seen.load(Ordering::SeqCst), 2, "the lock was taken, and its release failed");
    assert!(matches!(read, Err(SessionError::UnreadableData { .. })), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_conflict_is_retried_or_unavailable_never_a_dynamodb_error() {
    let store = plain_store(Config::builder()).await;
    let conflict = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
        "message": "Transaction is ongoing for the item"
    });

    // A plain write meeting another request's regenerate transaction.
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    let canned = CannedError::new("UpdateItem", 1, conflict.clone());
    let patched = conflicted(&canned, &store).patch(&s.id, &fixtures::data(json!({"m": 2})), &Default::default()).await;
    assert!(canned.seen.load(Ordering::SeqCst) >= 1, "the conflict was answered");
    match patched {
        Ok(session) => assert_eq!(session.data, fixtures::data(json!({"n": 1, "m": 2}))),
        Err(SessionError::Unavailable { code, .. }) => {
            assert_eq!(code.as_deref(), Some("TransactionConflictException"));
            assert_eq!(store.load(&s.id).await.unwrap().data, fixtures::data(json!({"n": 1})), "nothing applied");
        }
        Err(other) => panic!("a conflict must be retried or 503-class: {other:?}"),
    }

    // Regenerate meeting another transaction: cancelled with a
    // TransactionConflict reason, or refused with the exception. Retried.
    let cancelled = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
        "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
    });
    for body in [cancelled, conflict] {
        let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
        let canned = CannedError::new("TransactWriteItems", 1, body);
        let (fresh, calls) = counted(conflicted(&canned, &store).regenerate(&s.id, None)).await;
        let fresh = fresh.expect("a transaction conflict is retried after a pause");
        // (The answered attempt was swapped for DescribeLimits on its way out.)
        // A conflict is refused before anything happens: the same transaction
        // is sent again, with no read in between.
        assert_eq!(calls, ["GetItem", "DescribeLimits", "TransactWriteItems"]);
        assert_eq!(fresh.data, s.data);
        assert!(matches!(store.load(&s.id).await, Err(SessionError::NotFound)));
        assert_eq!(store.load(&fresh.id).await.unwrap().data, s.data);
    }
}

// ---------------------------------------------------------------------------
// Stalled calls end in the SDK's timeouts
// ---------------------------------------------------------------------------

/// Fails the test if `work` hangs (a stall holds 10 minutes; the library's
/// timeout is half a second): a guard against hanging, not a speed check.
async fn not_hung<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), work).await.expect("the call hung: no timeout cut the stall")
}

#[tokio::test]
async fn stalled_calls_answer_unavailable() {
    let sim = simulator(SimulatorConfig::default()).await;
    let builder = locking().dynamodb_operation_timeout(Duration::from_millis(500));
    let store = store_through(&sim, builder).await;
    let s = store.create(fixtures::data(json!({"n": 1}))).await.unwrap();
    let before = fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap();
    sim.set_faults(faults("stall=1:for=10m")).unwrap();

    let unavailable =
        |result: &Result<_, SessionError>| matches!(result, Err(SessionError::Unavailable { code: None, .. }));
    let loaded = not_hung(store.load(&s.id)).await;
    assert!(unavailable(&loaded), "{loaded:?}");
    let locked = not_hung(store.load_and_lock(&s.id)).await;
    assert!(unavailable(&locked), "{locked:?}");
    let patched = not_hung(store.patch(&s.id, &fixtures::data(json!({"m": 2})), &WriteOptions::default())).await;
    assert!(unavailable(&patched), "{patched:?}");
    let created = not_hung(store.create(Default::default())).await;
    assert!(unavailable(&created), "{created:?}");
    let destroyed = not_hung(store.destroy(&s.id, None)).await;
    assert!(matches!(destroyed, Err(SessionError::Unavailable { .. })), "{destroyed:?}");
    assert!(sim.stats().faults_of("stall") >= 5);
    // A stalled request is never applied: the session is as it was.
    assert_eq!(fixtures::raw_item(&direct(&store), s.id.as_str()).await.unwrap(), before);
}

// ---------------------------------------------------------------------------
// Lock waiters at 5/5
// ---------------------------------------------------------------------------

/// One holder and five waiters on one session of a 5/5 table with no burst
/// credit, for about three seconds.
///
/// The bound on write units: every write here is of an item under 1 KB, so
/// it costs 1 unit, refused or not. The holder writes twice (lock, release).
/// A waiter sends one refused lock attempt when it arrives, then polls with
/// reads, and sends one more attempt only after a poll saw the lock free,
/// i.e. at most once per release. Releases: the holder's, plus one per
/// waiter that got the lock (each writes through once). With W = 5 waiters,
/// R <= 1 + W releases, the waiters' writes are at most W * (1 + R) + W
/// (their write-throughs), so the table's total is at most
/// 2 + 5 * 7 + 5 = 42 units. (Retrying every 10-50 ms as before would be
/// ~30 units per waiter per second: hundreds.) Throttled attempts consume
/// nothing, so they are outside the bound but counted by the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_waiters_are_cheap_at_5_5() {
    let capacity = CapacityConfig::default().burst_seconds(0).initial_credit(InitialCredit::Full);
    let sim = simulator(SimulatorConfig::default().capacity(capacity)).await;
    let builder =
        Config::builder().locking_strategy(LockingStrategy::Pessimistic).max_lock_wait_time(Duration::from_secs(3));
    let store = store_through(&sim, builder).await;
    let table = store.config().table_name.clone();
    let s = direct(&store).create(fixtures::data(json!({"turns": 0}))).await.unwrap();
    let before = sim.stats().table(&table);

    let holder = store.load_and_lock(&s.id).await.unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let (store, id) = (store.clone(), s.id.clone());
            tokio::spawn(async move {
                let session = store.load_and_lock(&id).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut next = session.data.clone();
                next.insert("turns".into(), json!(session.data["turns"].as_i64().unwrap() + 1));
                store.replace(&id, next, &with_token(&session)).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    store.replace(&s.id, holder.data.clone(), &with_token(&holder)).await.unwrap();

    let mut turns = 0;
    for waiter in waiters {
        match waiter.await.unwrap() {
            Ok(_) => turns += 1,
            Err(SessionError::Locked) => {}
            Err(other) => panic!("a waiter ends with the lock or Locked, never {other:?}"),
        }
    }
    let after = sim.stats().table(&table);
    let write_units = after.write_units - before.write_units;
    let read_units = after.read_units - before.read_units;
    println!(
        "lock waiters: {turns} of 5 got the lock; {write_units} WCU, {read_units} RCU; throttled {} writes, {} reads",
        after.throttled_writes - before.throttled_writes,
        after.throttled_reads - before.throttled_reads
    );
    assert!(turns >= 1, "the holder's release let a waiter in");
    assert_eq!(store.load(&s.id).await.unwrap().data["turns"], json!(turns), "every turn counted once");
    assert!(write_units <= 42.0, "waiters cost {write_units} write units, over the bound of 42");
}

/// A waiter whose polls are all throttled (a table with no read capacity
/// left, and a manual clock that never refills it) still waits for the lock
/// to its deadline and answers Locked: a poll only looks, so a refused one
/// changes nothing.
#[tokio::test]
async fn a_waiter_whose_polls_are_throttled_still_ends_locked() {
    let capacity = CapacityConfig::default().burst_seconds(0).initial_credit(InitialCredit::Empty);
    let sim = simulator(SimulatorConfig::default().capacity(capacity).manual_clock()).await;
    let builder = locking().max_lock_wait_time(Duration::from_secs(2));
    let store = store_through(&sim, builder).await;
    let table = store.config().table_name.clone();
    sim.set_capacity(&table, TableCapacity::Provisioned(Throughput::new(1, 100)));
    let s = direct(&store).create(fixtures::data(json!({"n": 1}))).await.unwrap();
    // 1 read unit and 100 write units, then no more: the holder locks, the
    // waiter's attempt is refused, and its reads are throttled.
    sim.advance_clock(Duration::from_secs(1));
    let holder = store.load_and_lock(&s.id).await.unwrap();
    for _ in 0..2 {
        let _ = store.client().get_item().table_name(&table).key("id", AttributeValue::S("spend".into())).send().await;
    }
    let waited = store.load_and_lock(&s.id).await;
    assert!(sim.stats().table(&table).throttled_reads > 0, "the polls were throttled");
    assert!(matches!(waited, Err(SessionError::Locked)), "{waited:?}");
    store.unlock(&s.id, holder.lock_token.as_ref().unwrap()).await.unwrap();
}

// ---------------------------------------------------------------------------
// GC paced by capacity
// ---------------------------------------------------------------------------

fn swept(outcome: ScheduledSweep) -> GcReport {
    match outcome {
        ScheduledSweep::Swept(report) => report,
        other => panic!("{other:?}"),
    }
}

async fn checkpoint(store: &SessionStore) -> HashMap<String, AttributeValue> {
    let config = store.config();
    emulator::client(upstream())
        .get_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, AttributeValue::S(CHECKPOINT_KEY.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

/// A scheduled sweep of 2,000 sessions (10 % expired) at 5/5, share 0.5 (2.5
/// units per second each way), no burst credit, for 4 s, then a second run.
///
/// Bounds, from the simulator's meter: the sweep starts each request only
/// when the units reported so far fit its budget, so by any moment it has
/// spent at most budget x elapsed plus the request in flight. A Scan page is
/// sized to cost about one second of the read budget (rounded to 4 KB
/// units: + 0.5); a batch of deletes is at most floor(2.5) = 2 deletes of 1
/// unit; the checkpoint's claim and release are 2 more writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_sweeps_within_its_budget_at_5_5_and_resumes_from_its_checkpoint() {
    let capacity = CapacityConfig::default().burst_seconds(0).initial_credit(InitialCredit::Full);
    let sim = simulator(SimulatorConfig::default().capacity(capacity)).await;
    let scans = fixtures::RequestLog::of("Scan");
    let client = emulator::client(&sim.url());
    let client = fixtures::intercepted(&client, scans.clone());
    let store = fixtures::store_on(client, Config::builder().gc_capacity_share(0.5)).await;
    let table = store.config().table_name.clone();
    let (live, expired) = seed_sessions(&store, 2000, 10).await;
    assert_eq!(expired.len(), 200);

    let mut runs = Vec::new();
    for run in ["run-1", "run-2"] {
        let scans_before = scans.bodies().len();
        let before = sim.stats().table(&table);
        let started = Instant::now();
        let report = swept(store.scheduled_sweep(started + Duration::from_secs(4), run).await.unwrap());
        let elapsed = started.elapsed().as_secs_f64();
        let after = sim.stats().table(&table);
        let (read_units, write_units) = (after.read_units - before.read_units, after.write_units - before.write_units);
        println!("{run}: {report:?}; {read_units} RCU, {write_units} WCU in {elapsed:.2} s");
        assert_eq!(report.budget.read_units_per_second, 2.5, "half of the simulated 5 RCU");
        assert_eq!(report.budget.write_units_per_second, 2.5);
        assert!(read_units <= 2.5 * (elapsed + 1.0) + 0.5, "{run}: {read_units} RCU in {elapsed} s");
        assert!(write_units <= 2.5 * elapsed + 2.0 + 2.0, "{run}: {write_units} WCU in {elapsed} s");
        assert_eq!(after.throttled_reads - before.throttled_reads, 0, "{run}: the sweep was never throttled");
        assert_eq!(after.throttled_writes - before.throttled_writes, 0);
        assert_eq!(report.transient_failures, 0);
        assert_eq!(report.stopped, Stop::Deadline, "2,000 sessions take longer than 4 s at this budget");
        assert!(report.deleted > 0 && report.scanned > 0, "{report:?}");
        let saved = checkpoint(&store).await;
        assert!(!saved.contains_key("owner") && !saved.contains_key("lease_until_ms"), "the claim is released");
        let first_scan = scans.bodies()[scans_before].clone();
        runs.push((report, saved, first_scan));
    }
    // The first run started at the beginning, the second where the first saved its position.
    assert!(runs[0].2.get("ExclusiveStartKey").is_none(), "{:?}", runs[0].2);
    let position = runs[0].1.get("position").and_then(|v| v.as_s().ok()).expect("the first run saved its position");
    assert_eq!(runs[1].2["ExclusiveStartKey"]["id"]["S"].as_str(), Some(position.as_str()));
    assert!(runs[1].1.get("position") != runs[0].1.get("position"), "and moved it on");

    // Nothing live deleted, nothing counted twice.
    let plain = direct(&store);
    let deleted = runs[0].0.deleted + runs[1].0.deleted;
    assert_eq!(stored_count(&plain, &expired).await as u64, 200 - deleted);
    let checkpoint_item = 1;
    assert_eq!(fixtures::count_items(&plain).await, live.len() + checkpoint_item + (200 - deleted as usize));
}

/// How many of `ids` are still stored.
async fn stored_count(store: &SessionStore, ids: &[String]) -> usize {
    let mut count = 0;
    for sid in ids {
        if fixtures::raw_item(store, sid).await.is_some() {
            count += 1;
        }
    }
    count
}

/// A table of 600 sessions (100 expired) metered at 40/40 (GC budget 20 units/s each way).
async fn gc_table(
    sim: &RunningSimulator,
    builder: ConfigBuilder,
    scans: &fixtures::RequestLog,
) -> (SessionStore, Vec<String>, Vec<String>) {
    let client = emulator::client(&sim.url());
    let client = fixtures::intercepted(&client, scans.clone());
    let store = fixtures::store_on(client, builder.gc_capacity_share(0.5)).await;
    sim.set_capacity(&store.config().table_name, TableCapacity::Provisioned(Throughput::new(40, 40)));
    let (live, expired) = seed_sessions(&store, 600, 6).await;
    (store, live, expired)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gc_run_killed_mid_sweep_is_resumed_and_deletes_every_expired_session_and_nothing_live() {
    let capacity = CapacityConfig::default().burst_seconds(0).initial_credit(InitialCredit::Full);
    let sim = simulator(SimulatorConfig::default().capacity(capacity)).await;
    let scans = fixtures::RequestLog::of("Scan");
    let (store, live, expired) = gc_table(&sim, Config::builder(), &scans).await;
    let table = store.config().table_name.clone();

    // A run that stops at its deadline saves a position.
    let first = swept(store.scheduled_sweep(Instant::now() + Duration::from_secs(1), "run-1").await.unwrap());
    assert_eq!(first.stopped, Stop::Deadline, "{first:?}");
    let position = checkpoint(&store).await.get("position").cloned().expect("a saved position");

    // A run killed mid-sweep (as a Lambda timeout kills it): dropped after a few deletes.
    let killed_deadline = Instant::now() + Duration::from_secs(3);
    let start_units = sim.stats().table(&table).write_units;
    let killed = {
        let store = store.clone();
        tokio::spawn(async move { store.scheduled_sweep(killed_deadline, "run-killed").await })
    };
    while sim.stats().table(&table).write_units < start_units + 5.0 && !killed.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!killed.is_finished(), "the run was still sweeping when killed");
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    // Its claim stands until its deadline (nothing ran to release it): a run meanwhile does nothing.
    assert_eq!(checkpoint(&store).await["owner"].as_s().unwrap(), "run-killed");
    let meanwhile = store.scheduled_sweep(Instant::now() + Duration::from_secs(30), "run-meanwhile").await.unwrap();
    assert_eq!(meanwhile, ScheduledSweep::AnotherSweepRunning);

    // After it, the next run resumes from the last saved position and finishes.
    tokio::time::sleep_until((killed_deadline + Duration::from_millis(50)).into()).await;
    let scans_before = scans.bodies().len();
    let last = swept(store.scheduled_sweep(Instant::now() + Duration::from_secs(60), "run-3").await.unwrap());
    assert!(last.finished(), "{last:?}");
    let resumed_scan = scans.bodies()[scans_before].clone();
    assert_eq!(resumed_scan["ExclusiveStartKey"]["id"]["S"].as_str(), position.as_s().ok().map(String::as_str));
    let plain = direct(&store);
    assert_eq!(stored_count(&plain, &expired).await, 0, "every expired session deleted");
    assert_eq!(stored_count(&plain, &live).await, live.len(), "nothing live deleted");
    let saved = checkpoint(&store).await;
    assert!(!saved.contains_key("owner") && !saved.contains_key("position") && saved.contains_key("last_finished"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_sweep_backs_off_through_500s_and_releases_its_claim() {
    let sim = simulator(SimulatorConfig::default()).await;
    let scans = fixtures::RequestLog::of("Scan");
    // One delete at a time, so one delete meets every 500 and the SDK gives up on it.
    let (store, live, expired) = gc_table(&sim, Config::builder().gc_batch_size(1usize), &scans).await;
    // The scheduled sweep's client makes 5 attempts: 2 failed Scans are retried
    // by the SDK; 5 failed attempts of one delete are a failure the sweep backs off from.
    sim.set_faults(faults("500=1:op=Scan:times=2,500=1:op=DeleteItem:times=5")).unwrap();
    let report = swept(store.scheduled_sweep(Instant::now() + Duration::from_secs(60), "run-500").await.unwrap());
    assert_eq!(sim.stats().faults_of("500"), 7, "every fault landed");
    assert!(report.finished(), "{report:?}");
    assert_eq!(report.transient_failures, 1, "{report:?}");
    assert_eq!(report.deleted, expired.len() as u64);
    let plain = direct(&store);
    assert_eq!(stored_count(&plain, &expired).await, 0);
    assert_eq!(stored_count(&plain, &live).await, live.len());
    let saved = checkpoint(&store).await;
    assert!(!saved.contains_key("owner") && !saved.contains_key("lease_until_ms"), "the claim is released: {saved:?}");
}

/// A delete refused for good in the middle of a batch (issue 21, item 5):
/// the deletes beside it landed, and the failed run's report, logged for the
/// operator, counts them (before, the counting stopped at the failure).
#[tokio::test]
async fn a_sweep_failing_mid_batch_counts_every_delete_that_landed() {
    let store = plain_store(Config::builder().gc_capacity_share(1.0)).await;
    // Five expired sessions: one batch at 5 writes a second.
    let (live, expired) = seed_sessions(&store, 10, 2).await;
    let denied = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
        "message": "not authorized to perform: dynamodb:DeleteItem"
    });
    let canned = CannedError::new("DeleteItem", 1, denied);
    let lines = fixtures::logs_of(async {
        let denying = conflicted(&canned, &store);
        let result = denying.scheduled_sweep(Instant::now() + Duration::from_secs(60), "run-mid").await;
        assert!(
            matches!(&result, Err(SessionError::DynamoDb { code: Some(code), .. }) if code == "AccessDeniedException")
        );
    })
    .await;
    assert_eq!(stored_count(&store, &expired).await, 1, "the other four deletes of the batch landed");
    assert_eq!(stored_count(&store, &live).await, live.len());
    let failed =
        lines.iter().find(|line| line["fields"]["message"] == "gc sweep failed").expect("the report is logged");
    assert_eq!(failed["fields"]["deleted"], 4, "{failed}");
    assert_eq!(failed["fields"]["write_units"], 5.0, "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_failing_for_good_saves_its_position_and_releases_its_claim() {
    let store = plain_store(Config::builder().gc_capacity_share(1.0)).await;
    let (live, expired) = seed_sessions(&store, 60, 2).await;
    // The second page is refused for good (as a missing permission would be).
    let denied = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
        "message": "not authorized to perform: dynamodb:Scan"
    });
    let canned = CannedError::new("Scan", 2, denied);
    let result =
        conflicted(&canned, &store).scheduled_sweep(Instant::now() + Duration::from_secs(60), "run-denied").await;
    assert!(
        matches!(&result, Err(SessionError::DynamoDb { code: Some(code), .. }) if code == "AccessDeniedException"),
        "{result:?}"
    );
    let saved = checkpoint(&store).await;
    assert!(!saved.contains_key("owner") && !saved.contains_key("lease_until_ms"), "the claim is released: {saved:?}");
    assert!(saved.contains_key("position"), "the first page's position is saved: {saved:?}");
    // The next run resumes there and finishes.
    let report = swept(store.scheduled_sweep(Instant::now() + Duration::from_secs(60), "run-next").await.unwrap());
    assert!(report.finished());
    assert_eq!(stored_count(&store, &expired).await, 0);
    assert_eq!(stored_count(&store, &live).await, live.len());
}
