//! The sessions table as a tower-sessions store, against the embedded
//! emulator: tower-sessions' counter example on it, expiry, `cycle_id` and
//! `flush`, a `create` that never overwrites, a `save` that never brings a
//! deleted session back, and `delete_expired` sparing a session refreshed
//! after its scan.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use dynamodb_sessions::emulator::fixtures::{self, count_items, intercepted, put_session, raw_item, Hook};
use dynamodb_sessions::{Config, SessionStore};
use dynamodb_sessions_axum::tower_sessions_store::session_id;
use dynamodb_sessions_axum::TowerSessionsStore;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;
use tower_sessions::session::{Id, Record};
use tower_sessions::{ExpiredDeletion, Expiry, Session, SessionManagerLayer, SessionStore as _};

const COUNTER_KEY: &str = "counter";

/// tower-sessions' counter example, as its README has it.
async fn counter(session: Session) -> impl IntoResponse {
    let counter: usize = session.get(COUNTER_KEY).await.unwrap().unwrap_or_default();
    session.insert(COUNTER_KEY, counter + 1).await.unwrap();
    format!("Current count: {counter}")
}

async fn cycle(session: Session) -> impl IntoResponse {
    session.cycle_id().await.unwrap();
}

async fn flush(session: Session) -> impl IntoResponse {
    session.flush().await.unwrap();
}

struct App {
    router: Router,
    store: SessionStore,
}

impl App {
    async fn new() -> App {
        let store = fixtures::store(Config::builder()).await;
        // The one line an app changes: the store it gives the layer.
        let layer = SessionManagerLayer::new(TowerSessionsStore::new(store.clone()))
            .with_secure(false)
            .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
        let router = Router::new()
            .route("/", get(counter))
            .route("/cycle", post(cycle))
            .route("/flush", post(flush))
            .layer(layer);
        App { router, store }
    }

    /// The body and the id of the Set-Cookie, if any.
    async fn call(&self, method: &str, path: &str, id: Option<&str>) -> (String, Option<String>) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(id) = id {
            request = request.header(COOKIE, format!("id={id}"));
        }
        let response: Response = self.router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let cookie = response.headers().get(SET_COOKIE).map(|header| {
            let pair = header.to_str().unwrap().split(';').next().unwrap().to_string();
            pair.strip_prefix("id=").expect("tower-sessions' cookie").to_string()
        });
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), cookie)
    }

    async fn stored(&self, id: &str) -> Option<Value> {
        let id: Id = id.parse().unwrap();
        let session = self.store.load(&session_id(&id)).await.ok()?;
        Some(Value::Object(session.data))
    }
}

fn record(id: Id, data: Value, expiry_date: OffsetDateTime) -> Record {
    let Value::Object(data) = data else { panic!("an object") };
    Record { id, data: data.into_iter().collect(), expiry_date }
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

#[tokio::test]
async fn the_counter_example_counts_across_requests() {
    let app = App::new().await;
    let (body, cookie) = app.call("GET", "/", None).await;
    assert_eq!(body, "Current count: 0");
    let id = cookie.expect("a new session's cookie");
    for n in 1..=3 {
        let (body, _) = app.call("GET", "/", Some(&id)).await;
        assert_eq!(body, format!("Current count: {n}"));
    }
    assert_eq!(app.stored(&id).await, Some(json!({"counter": 4})));
    let item = raw_item(&app.store, session_id(&id.parse().unwrap()).as_str()).await.unwrap();
    let expires: i64 = item["expires"].as_n().unwrap().parse().unwrap();
    let hour_from_now = OffsetDateTime::now_utc().unix_timestamp() + 3600;
    assert!((hour_from_now - 5..=hour_from_now).contains(&expires), "the app's expiry is the item's: {expires}");
}

#[tokio::test]
async fn cycle_id_moves_the_data_and_flush_deletes() {
    let app = App::new().await;
    let (_, cookie) = app.call("GET", "/", None).await;
    let id = cookie.unwrap();
    let (_, cookie) = app.call("POST", "/cycle", Some(&id)).await;
    let new_id = cookie.expect("the new id's cookie");
    assert_ne!(new_id, id);
    assert_eq!(app.stored(&id).await, None, "the old id is gone");
    assert_eq!(app.stored(&new_id).await, Some(json!({"counter": 1})), "the data moved");

    app.call("POST", "/flush", Some(&new_id)).await;
    assert_eq!(app.stored(&new_id).await, None);
}

#[tokio::test]
async fn an_expired_item_loads_as_none_whatever_ttl_has_done() {
    let app = App::new().await;
    let store = TowerSessionsStore::new(app.store.clone());
    let id = Id::default();
    put_session(&app.store, session_id(&id).as_str(), r#"{"counter":5}"#, fixtures::now() - 1, None).await;
    assert!(raw_item(&app.store, session_id(&id).as_str()).await.is_some(), "the item is still there");
    assert_eq!(store.load(&id).await.unwrap(), None);
    let (body, cookie) = app.call("GET", "/", Some(&id.to_string())).await;
    assert_eq!(body, "Current count: 0", "a new session");
    assert_ne!(cookie.as_deref(), Some(id.to_string().as_str()));
}

#[tokio::test]
async fn create_never_overwrites_and_save_never_brings_a_session_back() {
    let app = App::new().await;
    let store = TowerSessionsStore::new(app.store.clone());
    let taken = Id::default();
    store.create(&mut record(taken, json!({"a": 1}), in_an_hour())).await.unwrap();

    let mut colliding = record(taken, json!({"b": 2}), in_an_hour());
    store.create(&mut colliding).await.unwrap();
    assert_ne!(colliding.id, taken, "a new id on a collision");
    assert_eq!(app.stored(&taken.to_string()).await, Some(json!({"a": 1})), "the first session is untouched");
    assert_eq!(app.stored(&colliding.id.to_string()).await, Some(json!({"b": 2})));

    // Loaded by one request, deleted by another (sign-out), then saved by the first.
    let loaded = store.load(&taken).await.unwrap().expect("live");
    store.delete(&taken).await.unwrap();
    store.delete(&taken).await.unwrap();
    store.save(&record(taken, json!({"a": 2}), in_an_hour())).await.unwrap();
    assert_eq!(store.load(&loaded.id).await.unwrap(), None, "still deleted");
    assert!(raw_item(&app.store, session_id(&taken).as_str()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_expired_spares_a_session_refreshed_after_the_scan() {
    let app = App::new().await;
    let store = TowerSessionsStore::new(app.store.clone());
    let expired = [Id::default(), Id::default(), Id::default()];
    for id in expired {
        let an_hour_ago = OffsetDateTime::now_utc() - Duration::hours(1);
        store.create(&mut record(id, json!({"n": 1}), an_hour_ago)).await.unwrap();
    }
    let live = Id::default();
    store.create(&mut record(live, json!({"n": 1}), in_an_hour())).await.unwrap();

    // Between the scan and the first delete, another writer (PHP) refreshes one.
    let (plain, refreshed) = (app.store.clone(), session_id(&expired[0]));
    let hook = Hook::before("DeleteItem", 1, move || async move {
        put_session(&plain, refreshed.as_str(), r#"{"n":2}"#, fixtures::now() + 3600, None).await;
    });
    let hooked = SessionStore::new(intercepted(app.store.client(), hook.clone()), app.store.config().clone());
    TowerSessionsStore::new(hooked).delete_expired().await.unwrap();
    assert!(hook.fired());
    assert_eq!(store.load(&expired[0]).await.unwrap().map(|r| r.data["n"].clone()), Some(json!(2)), "kept");
    for id in &expired[1..] {
        assert!(raw_item(&app.store, session_id(id).as_str()).await.is_none(), "still expired: deleted");
    }
    assert!(store.load(&live).await.unwrap().is_some());
    assert_eq!(count_items(&app.store).await, 2);
}

#[test]
fn ids_use_phps_alphabet() {
    for _ in 0..1000 {
        let id = Id::default();
        let stored = session_id(&id);
        assert_eq!(stored.as_str().len(), 22);
        assert!(stored.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b','), "{stored:?}");
        assert_eq!(stored.as_str().replace(',', "_"), id.to_string(), "the same id");
    }
}

#[tokio::test]
async fn continuously_delete_expired_sweeps_on_its_period() {
    let app = App::new().await;
    let store = TowerSessionsStore::new(app.store.clone());
    let expired = Id::default();
    store.create(&mut record(expired, json!({"n": 1}), OffsetDateTime::now_utc() - Duration::hours(1))).await.unwrap();
    let sweeper = tokio::spawn(store.clone().continuously_delete_expired(std::time::Duration::from_millis(50)));
    // Bounded: a sweep every 50 ms; the first within a second on any machine.
    let mut gone = false;
    for _ in 0..200 {
        if raw_item(&app.store, session_id(&expired).as_str()).await.is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!sweeper.is_finished(), "the sweeper runs on until it is stopped");
    sweeper.abort();
    assert!(gone, "the expired session was swept");
}
