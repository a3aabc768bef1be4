//! The session layer under pessimistic locking, against the embedded
//! emulator: the lock taken at the first use and released by the write-back,
//! by `write_close`, and on every other way out (an error response, a panic,
//! a timeout layer firing, the response future dropped); the calls each
//! request makes; concurrent increments with and without locking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Request};
use axum::http::header::COOKIE;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures::{self, put_session, raw_item};
use dynamodb_sessions::{Config, LockingStrategy, SessionId, SessionStore};
use dynamodb_sessions_axum::{HttpSettings, ReadOnlySession, Session, SessionCookie, SessionLayer, SessionRejection};
use serde_json::{json, Value};
use tokio::sync::{Barrier, Notify};
use tower::ServiceExt;

/// Where a handler tells the test how far it got, and waits for its go.
#[derive(Default)]
struct Gate {
    locked: Notify,
    go: Notify,
    took_the_lock: AtomicBool,
}

async fn counter(session: &Session) -> Result<u64, SessionRejection> {
    session.get::<u64>("n").await.map(Option::unwrap_or_default)
}

async fn read(session: Session) -> Result<String, SessionRejection> {
    Ok(counter(&session).await?.to_string())
}

async fn untouched() -> &'static str {
    "ok"
}

async fn read_only(session: ReadOnlySession) -> Result<String, SessionRejection> {
    Ok(session.get::<u64>("n").await?.unwrap_or_default().to_string())
}

async fn increment(session: Session) -> Result<String, SessionRejection> {
    let n = counter(&session).await? + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// An error response after a change: a response all the same (its changes
/// are stored, as PHP stores `$_SESSION` whatever the page printed).
async fn fail(session: Session) -> Result<(), StatusCode> {
    session.insert("failed", true).await.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Err(StatusCode::INTERNAL_SERVER_ERROR)
}

async fn panic(session: Session) -> &'static str {
    counter(&session).await.expect("the session reads");
    panic!("the handler fails while it holds the session's lock");
}

/// Takes the lock, says so, and never answers.
async fn hang(session: Session, Extension(gate): Extension<Arc<Gate>>) -> &'static str {
    counter(&session).await.expect("the session reads");
    gate.took_the_lock.store(true, Ordering::SeqCst);
    gate.locked.notify_one();
    std::future::pending().await
}

/// Reads, says so, and increments on its go.
async fn slow_increment(session: Session, Extension(gate): Extension<Arc<Gate>>) -> Result<(), SessionRejection> {
    let n = counter(&session).await? + 1;
    gate.locked.notify_one();
    gate.go.notified().await;
    session.insert("n", n).await
}

/// A long handler: changes, `write_close`, then works on until its go.
async fn long(session: Session, Extension(gate): Extension<Arc<Gate>>) -> Result<(), SessionRejection> {
    session.insert("long", true).await?;
    session.write_close().await?;
    gate.locked.notify_one();
    gate.go.notified().await;
    Ok(())
}

/// Reads, waits for the other request to read too, then increments: two
/// of these race on one key.
async fn racing_increment(
    session: Session,
    Extension(barrier): Extension<Arc<Barrier>>,
) -> Result<(), SessionRejection> {
    let n = counter(&session).await? + 1;
    barrier.wait().await;
    session.insert("n", n).await
}

struct App {
    router: Router,
    store: SessionStore,
    gate: Arc<Gate>,
}

impl App {
    /// The layer with pessimistic locking: a lock left behind holds for a
    /// minute, and a request waits at most `wait` for one, then 423.
    async fn locking(wait: Duration) -> App {
        App::locking_with_lease(wait, Duration::from_secs(60)).await
    }

    async fn locking_with_lease(wait: Duration, lease: Duration) -> App {
        let builder = fixtures::fast_locks()
            .locking_strategy(LockingStrategy::Pessimistic)
            .max_lock_wait_time(wait)
            .lock_lease(lease);
        App::new(fixtures::store(builder).await)
    }

    fn new(store: SessionStore) -> App {
        let gate = Arc::new(Gate::default());
        let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
        let router = Router::new()
            .route("/untouched", get(untouched))
            .route("/read", get(read))
            .route("/read-only", get(read_only))
            .route("/increment", post(increment))
            .route("/fail", post(fail))
            .route("/panic", post(panic))
            .route("/hang", post(hang))
            .route("/long", post(long))
            .route("/slow-increment", post(slow_increment))
            .route("/race", post(racing_increment))
            .layer(SessionLayer::new(store.clone(), cookie))
            .layer(Extension(gate.clone()))
            .layer(Extension(Arc::new(Barrier::new(2))));
        App { router, store, gate }
    }

    fn request(method: &str, path: &str, id: &SessionId) -> Request {
        let request = Request::builder().method(method).uri(path).header(COOKIE, format!("PHPSESSID={id}"));
        request.body(Body::empty()).unwrap()
    }

    /// The response to `method path` with `id`'s cookie, and the DynamoDB calls it made.
    async fn call(&self, method: &str, path: &str, id: &SessionId) -> (Response, Vec<String>) {
        let (response, calls) = counted(self.router.clone().oneshot(App::request(method, path, id))).await;
        (response.unwrap_or_else(|never| match never {}), calls)
    }

    async fn session(&self, data: Value) -> SessionId {
        let id = SessionId::generate();
        put_session(&self.store, id.as_str(), &data.to_string(), fixtures::now() + 3600, None).await;
        id
    }

    async fn stored(&self, id: &SessionId) -> Value {
        Value::Object(self.store.load(id).await.unwrap().data)
    }

    async fn is_locked(&self, id: &SessionId) -> bool {
        raw_item(&self.store, id.as_str()).await.expect("the session's item").contains_key("lock")
    }

    /// The lock is gone: the next locking request gets the session at once
    /// rather than 423 after its wait (the lease left would be a minute).
    async fn next_request_gets_the_lock(&self, id: &SessionId) {
        let (response, _) = self.call("POST", "/increment", id).await;
        assert_eq!(response.status(), StatusCode::OK, "the next request got the lock");
        assert!(!self.is_locked(id).await, "and released it");
    }
}

#[tokio::test]
async fn a_locked_request_makes_one_locking_call_and_one_that_writes_or_releases() {
    let app = App::locking(Duration::from_secs(1)).await;
    let id = app.session(json!({"n": 1})).await;

    let (response, calls) = app.call("POST", "/increment", &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, ["UpdateItem", "UpdateItem"], "the locking read, then the write-through");
    assert_eq!(app.stored(&id).await, json!({"n": 2}));
    assert!(!app.is_locked(&id).await, "the write released the lock");

    let (response, calls) = app.call("GET", "/read", &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, ["UpdateItem", "UpdateItem"], "the locking read, then the release");
    assert!(!app.is_locked(&id).await);

    let (_, calls) = app.call("GET", "/untouched", &id).await;
    assert!(calls.is_empty(), "an untouched session is never locked: {calls:?}");
    let (_, calls) = app.call("GET", "/read-only", &id).await;
    assert_eq!(calls, ["GetItem"], "a read-only request never locks");
}

#[tokio::test]
async fn concurrent_increments_with_locking_all_count() {
    let app = App::locking(Duration::from_secs(30)).await;
    let id = app.session(json!({"n": 0})).await;
    let requests = (0..50).map(|_| async { app.call("POST", "/increment", &id).await.0.status() });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|status| *status == StatusCode::OK), "{statuses:?}");
    assert_eq!(app.stored(&id).await, json!({"n": 50}), "each increment saw the one before");
    assert!(!app.is_locked(&id).await);
}

#[tokio::test]
async fn without_locking_the_last_writer_of_one_key_wins() {
    let app = App::new(fixtures::store(Config::builder()).await);
    let id = app.session(json!({"n": 0})).await;
    // Both read n = 0 before either writes; both write n = 1.
    let (first, second) = tokio::join!(app.call("POST", "/race", &id), app.call("POST", "/race", &id));
    assert_eq!((first.0.status(), second.0.status()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(app.stored(&id).await, json!({"n": 1}), "one increment is lost: locking is what prevents it");
}

#[tokio::test]
async fn an_error_response_releases_the_lock_and_stores_its_changes() {
    let app = App::locking(Duration::from_secs(5)).await;
    let id = app.session(json!({"n": 1})).await;
    let (response, _) = app.call("POST", "/fail", &id).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!app.is_locked(&id).await, "released with the response");
    assert_eq!(app.stored(&id).await, json!({"n": 1, "failed": true}));
    app.next_request_gets_the_lock(&id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_releases_the_lock_and_stores_nothing() {
    let app = App::locking(Duration::from_secs(5)).await;
    let id = app.session(json!({"n": 1})).await;
    let request = app.router.clone().oneshot(App::request("POST", "/panic", &id));
    let outcome = tokio::spawn(request).await;
    assert!(outcome.is_err_and(|err| err.is_panic()), "the panic goes on to the caller");
    assert!(!app.is_locked(&id).await, "released before the panic went on");
    assert_eq!(app.stored(&id).await, json!({"n": 1}));
    app.next_request_gets_the_lock(&id).await;
}

#[tokio::test]
async fn a_timeout_layer_firing_releases_the_lock() {
    let app = App::locking(Duration::from_secs(5)).await;
    let id = app.session(json!({"n": 1})).await;
    let timed = app.router.clone().layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(1),
    ));
    let response = timed.oneshot(App::request("POST", "/hang", &id)).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(app.gate.took_the_lock.load(Ordering::SeqCst), "the handler held the lock when the timeout fired");
    app.next_request_gets_the_lock(&id).await;
}

#[tokio::test]
async fn a_dropped_response_future_releases_the_lock() {
    let app = App::locking(Duration::from_secs(5)).await;
    let id = app.session(json!({"n": 1})).await;
    let request = app.router.clone().oneshot(App::request("POST", "/hang", &id));
    tokio::select! {
        _ = request => panic!("the handler never answers"),
        // The client went away once the handler held the lock: the future is dropped here.
        _ = app.gate.locked.notified() => {}
    }
    app.next_request_gets_the_lock(&id).await;
}

#[tokio::test]
async fn write_close_lets_the_next_request_go_while_the_handler_runs_on() {
    let app = App::locking(Duration::from_secs(5)).await;
    let id = app.session(json!({"n": 1})).await;
    let long = tokio::spawn(app.router.clone().oneshot(App::request("POST", "/long", &id)));
    app.gate.locked.notified().await;
    assert!(!app.is_locked(&id).await, "write_close released the lock");
    assert_eq!(app.stored(&id).await, json!({"n": 1, "long": true}), "and stored the change");

    app.next_request_gets_the_lock(&id).await;
    assert!(!long.is_finished(), "while the long handler still runs");
    app.gate.go.notify_one();
    assert_eq!(long.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(app.stored(&id).await, json!({"n": 2, "long": true}));
}

#[tokio::test]
async fn a_lock_taken_over_after_its_lease_answers_409_and_writes_nothing() {
    let app = App::locking_with_lease(Duration::from_secs(5), Duration::from_secs(1)).await;
    let id = app.session(json!({"n": 1})).await;
    let slow = tokio::spawn(app.router.clone().oneshot(App::request("POST", "/slow-increment", &id)));
    app.gate.locked.notified().await;

    // Another request waits out the slow one's lease, takes the lock over and increments.
    let (response, _) = app.call("POST", "/increment", &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    app.gate.go.notify_one();
    let response = slow.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "lock_lost");
    assert_eq!(app.stored(&id).await, json!({"n": 2}), "the slow request wrote nothing");
    assert!(!app.is_locked(&id).await);
}

#[tokio::test]
async fn a_lock_held_past_the_wait_answers_423_and_changes_nothing() {
    let app = App::locking(Duration::from_secs(1)).await;
    let id = SessionId::generate();
    // PHP holds it: `lock = 1`.
    fixtures::put_php_item(&app.store, id.as_str(), r#"{"n":1}"#, fixtures::now() + 3600, true).await;
    let (response, _) = app.call("POST", "/increment", &id).await;
    assert_eq!(response.status(), StatusCode::LOCKED);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(app.is_locked(&id).await, "PHP's lock stays");
    assert_eq!(app.stored(&id).await, json!({"n": 1}));
}
