//! The session layer against the embedded emulator: exactly the DynamoDB
//! calls a request needs, key-level write-back under concurrency, new and
//! expired sessions, regenerate and destroy.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use cookie::Cookie;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures::{self, put_session};
use dynamodb_sessions::{Config, ConfigBuilder, SessionId, SessionStore};
use dynamodb_sessions_axum::{HttpSettings, ReadOnlySession, Session, SessionCookie, SessionLayer, SessionRejection};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn untouched() -> &'static str {
    "ok"
}

async fn read(session: Session) -> Result<String, SessionRejection> {
    Ok(session.get::<Value>("n").await?.map(|n| n.to_string()).unwrap_or_default())
}

async fn set(session: Session, Path((key, value)): Path<(String, String)>) -> Result<(), SessionRejection> {
    session.insert(&key, value).await
}

async fn remove(session: Session, Path(key): Path<String>) -> Result<(), SessionRejection> {
    session.remove::<Value>(&key).await.map(drop)
}

async fn read_only(session: ReadOnlySession, writer: Session) -> Result<String, SessionRejection> {
    let n = session.get::<Value>("n").await?;
    // A change through the same request's `Session` is refused.
    let refused = matches!(writer.insert("n", 99).await, Err(SessionRejection::ReadOnly));
    Ok(format!("{} {refused}", n.unwrap_or_default()))
}

async fn regenerate(session: Session) -> Result<(), SessionRejection> {
    session.regenerate().await
}

/// Sign-in as apps write it: a change, a new id, another change.
async fn sign_in(session: Session, Path(user): Path<String>) -> Result<(), SessionRejection> {
    session.insert("visits", 2).await?;
    session.regenerate().await?;
    session.insert("user", user).await
}

async fn destroy(session: Session) -> Result<(), SessionRejection> {
    session.destroy().await
}

struct App {
    router: Router,
    store: SessionStore,
}

impl App {
    async fn new(builder: ConfigBuilder) -> App {
        let store = fixtures::store(builder).await;
        let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
        let router = Router::new()
            .route("/untouched", get(untouched))
            .route("/read", get(read))
            .route("/set/{key}/{value}", post(set))
            .route("/remove/{key}", post(remove))
            .route("/read-only", get(read_only))
            .route("/regenerate", post(regenerate))
            .route("/sign-in/{user}", post(sign_in))
            .route("/destroy", post(destroy))
            .layer(SessionLayer::new(store.clone(), cookie));
        App { router, store }
    }

    /// The response to `method path` with the session cookie `id`, and the
    /// DynamoDB calls it made.
    async fn call(&self, method: &str, path: &str, id: Option<&str>) -> (Response, Vec<String>) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(id) = id {
            request = request.header(COOKIE, format!("PHPSESSID={id}"));
        }
        let (response, calls) = counted(self.router.clone().oneshot(request.body(Body::empty()).unwrap())).await;
        (response.unwrap_or_else(|never| match never {}), calls)
    }
}

/// The id a response's Set-Cookie gives, if any (None for a removal).
fn cookie_id(response: &Response) -> Option<String> {
    let header = response.headers().get(SET_COOKIE)?.to_str().unwrap();
    let cookie = Cookie::parse(header.to_string()).unwrap();
    (!cookie.value().is_empty()).then(|| cookie.value().to_string())
}

async fn stored(store: &SessionStore, id: &str) -> Option<Value> {
    let session = store.load(&SessionId::parse(id).unwrap()).await.ok()?;
    Some(Value::Object(session.data))
}

async fn session_with(app: &App, data: Value) -> String {
    let id = SessionId::generate();
    put_session(&app.store, id.as_str(), &data.to_string(), fixtures::now() + 3600, None).await;
    id.to_string()
}

#[tokio::test]
async fn each_request_makes_only_the_calls_it_needs() {
    let app = App::new(Config::builder()).await;
    let id = session_with(&app, json!({"n": 1})).await;

    let (response, calls) = app.call("GET", "/untouched", Some(&id)).await;
    assert_eq!((response.status(), calls.len()), (StatusCode::OK, 0), "an untouched session costs nothing");
    assert!(response.headers().get(SET_COOKIE).is_none());

    let (response, calls) = app.call("GET", "/read", Some(&id)).await;
    assert_eq!(calls, ["GetItem"], "a read within the touch interval: one read, no write");
    assert!(response.headers().get(SET_COOKIE).is_none(), "the id did not change");

    let (response, calls) = app.call("POST", "/set/n/2", Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, ["GetItem", "UpdateItem"], "a change: one read, one conditional write");
    assert_eq!(stored(&app.store, &id).await, Some(json!({"n": "2"})));

    let (response, calls) = app.call("POST", "/set/a/1", None).await;
    assert_eq!(calls, ["PutItem"], "a new session: one write");
    let new_id = cookie_id(&response).expect("a new session's cookie");
    assert_eq!(stored(&app.store, &new_id).await, Some(json!({"a": "1"})));

    let (response, calls) = app.call("GET", "/read", None).await;
    assert_eq!((calls.len(), response.headers().get(SET_COOKIE)), (0, None), "no cookie, nothing stored: no call");

    let (_, calls) = app.call("GET", "/read", Some("bad id!")).await;
    assert!(calls.is_empty(), "a malformed cookie id costs no call: {calls:?}");
}

#[tokio::test]
async fn concurrent_requests_changing_different_keys_all_land() {
    let app = App::new(Config::builder()).await;
    let id = session_with(&app, json!({"a": 1})).await;
    let requests = (0..50).map(|i| {
        let (app, id) = (&app, &id);
        async move { app.call("POST", &format!("/set/k{i}/{i}"), Some(id)).await.0.status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let data = stored(&app.store, &id).await.unwrap();
    for i in 0..50 {
        assert_eq!(data[format!("k{i}")], json!(i.to_string()), "key k{i} was lost: {data}");
    }
    assert_eq!(data["a"], 1);

    // One removes a key while another sets a different one: both land.
    let (removed, set) =
        tokio::join!(app.call("POST", "/remove/a", Some(&id)), app.call("POST", "/set/b/2", Some(&id)));
    assert_eq!((removed.0.status(), set.0.status()), (StatusCode::OK, StatusCode::OK));
    let data = stored(&app.store, &id).await.unwrap();
    assert!(data.get("a").is_none(), "the removal landed: {data}");
    assert_eq!(data["b"], "2", "the other change landed: {data}");
}

#[tokio::test]
async fn an_expired_or_unknown_cookie_gets_a_new_session_never_its_id() {
    let app = App::new(Config::builder()).await;
    let expired = SessionId::generate();
    put_session(&app.store, expired.as_str(), r#"{"secret":1}"#, fixtures::now() - 10, None).await;
    for id in [expired.to_string(), SessionId::generate().to_string()] {
        let (response, _) = app.call("GET", "/read", Some(&id)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let (response, _) = app.call("POST", "/set/x/1", Some(&id)).await;
        let new_id = cookie_id(&response).expect("a new id");
        assert_ne!(new_id, id, "never the client's id");
        assert_eq!(stored(&app.store, &new_id).await, Some(json!({"x": "1"})), "a new, empty session");
    }
}

#[tokio::test]
async fn regenerate_moves_the_data_and_destroy_removes_the_cookie() {
    let app = App::new(Config::builder()).await;
    let id = session_with(&app, json!({"user": "jeremy"})).await;
    let (response, calls) = app.call("POST", "/regenerate", Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, ["GetItem", "TransactWriteItems"], "one read, one transaction");
    let new_id = cookie_id(&response).expect("the new id's cookie");
    assert_eq!(stored(&app.store, &id).await, None, "the old id is gone");
    assert_eq!(stored(&app.store, &new_id).await, Some(json!({"user": "jeremy"})));

    // Changes before and after the new id land on it, in one write, with no second read.
    let id = session_with(&app, json!({"visits": 1, "cart": [7]})).await;
    let (response, calls) = app.call("POST", "/sign-in/amy", Some(&id)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, ["GetItem", "TransactWriteItems", "UpdateItem"]);
    let signed_in = cookie_id(&response).expect("the new id's cookie");
    assert_eq!(stored(&app.store, &id).await, None, "the old id is gone");
    assert_eq!(stored(&app.store, &signed_in).await, Some(json!({"visits": 2, "cart": [7], "user": "amy"})));

    let (response, _) = app.call("POST", "/destroy", Some(&new_id)).await;
    let removal = Cookie::parse(response.headers()[SET_COOKIE].to_str().unwrap().to_string()).unwrap();
    assert_eq!((removal.name(), removal.value()), ("PHPSESSID", ""));
    assert!(removal.expires_datetime().unwrap() < cookie::time::OffsetDateTime::now_utc(), "the cookie expired");
    assert_eq!(stored(&app.store, &new_id).await, None, "the item is gone");
}

#[tokio::test]
async fn a_read_only_session_reads_and_never_writes() {
    let app = App::new(Config::builder()).await;
    let id = session_with(&app, json!({"n": 5})).await;
    let (response, calls) = app.call("GET", "/read-only", Some(&id)).await;
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert_eq!(&body[..], b"5 true", "read, and the change refused");
    assert_eq!(calls, ["GetItem"], "no write");
    assert_eq!(stored(&app.store, &id).await, Some(json!({"n": 5})));

    // A touch is due on every read with TOUCH_INTERVAL=0: read-only still refreshes the expiry.
    let touching = App::new(Config::builder().touch_interval(std::time::Duration::ZERO)).await;
    let id = SessionId::generate();
    // Last active 440 s ago (the default lifetime is 1440 s).
    put_session(&touching.store, id.as_str(), r#"{"n":5}"#, fixtures::now() + 1000, None).await;
    let (_, calls) = touching.call("GET", "/read-only", Some(id.as_str())).await;
    assert_eq!(calls, ["GetItem", "UpdateItem"], "the store's touch, and nothing else");
}
