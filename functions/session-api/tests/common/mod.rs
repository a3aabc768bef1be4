//! Shared set-up for the API tests: the router on a fresh table of the test
//! endpoint (embedded dynoxide, or moto via DYNAMODB_TEST_ENDPOINT) per test,
//! driven with `tower::ServiceExt::oneshot` or through the Lambda adapter.

#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use dynamodb_sessions::emulator::fixtures;
use dynamodb_sessions::{Config, ConfigBuilder, LockToken, SessionStore};
use session_api::{router, ApiState, AutomaticGc, HttpSettings};
use tower::ServiceExt;

/// The API on a table of its own.
#[derive(Clone)]
pub struct TestApp {
    pub state: ApiState,
    pub router: Router,
}

/// The API with default HTTP settings, for `builder`'s options.
pub async fn app(builder: ConfigBuilder) -> TestApp {
    app_with(builder, HttpSettings::default(), AutomaticGc::default()).await
}

/// The API configured as the Lambda function is, by environment variable
/// names (`("LOCKING_STRATEGY", "pessimistic")`, `("PROTECTED_KEYS", "role")`),
/// on a fresh table.
pub async fn app_from_env(vars: &[(&str, &str)]) -> TestApp {
    let table = fixtures::table_name("api");
    let config = Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        _ => vars.iter().find(|(var, _)| *var == name).map(|(_, value)| value.to_string()),
    })
    .unwrap();
    let settings =
        HttpSettings::from_lookup(|name| vars.iter().find(|(var, _)| *var == name).map(|(_, v)| v.to_string()))
            .unwrap();
    let store = fixtures::store_for(config).await;
    TestApp::new(ApiState::new(store, settings).unwrap())
}

/// The API with these HTTP settings and automatic GC timing.
pub async fn app_with(builder: ConfigBuilder, settings: HttpSettings, gc: AutomaticGc) -> TestApp {
    let store = fixtures::store(builder).await;
    TestApp::new(ApiState::new(store, settings).unwrap().with_automatic_gc(gc))
}

impl TestApp {
    /// The API for `state`.
    pub fn new(state: ApiState) -> TestApp {
        TestApp { router: router(state.clone()), state }
    }

    pub fn store(&self) -> &SessionStore {
        self.state.store()
    }

    pub fn config(&self) -> &Config {
        self.store().config()
    }

    /// One request through the router, its body read whole.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        TestResponse { status: parts.status, headers: parts.headers, body }
    }

    /// `send` of a request built from its parts.
    pub async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> TestResponse {
        self.send(request(method, uri, headers, body)).await
    }

    /// One API Gateway event through the whole Lambda function.
    pub async fn invoke(&self, event: serde_json::Value) -> serde_json::Value {
        session_api::lambda::invoke(self.router.clone(), event).await.expect("the event deserializes")
    }
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.map(|b| Body::from(b.to_string())).unwrap_or_default()).unwrap()
}

#[allow(unused_imports)]
pub use fixtures::now;

/// Writes a session item under a fixed id, as the events expect; locked by
/// `lock_token` (a token as the API hands it out) when given.
pub async fn seed(app: &TestApp, sid: &str, data: &str, expires: i64, lock_token: Option<&str>) {
    let token = lock_token.map(|raw| LockToken::parse(raw).expect("a well-formed test token"));
    fixtures::put_session(app.store(), sid, data, expires, token.as_ref()).await;
}
