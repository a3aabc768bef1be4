//! Shared set-up for the API tests: the router on a fresh table of the test
//! endpoint (embedded dynoxide, or moto via DYNAMODB_TEST_ENDPOINT) per test,
//! driven with `tower::ServiceExt::oneshot` or through the Lambda adapter.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use dynamodb_sessions::{create_sessions_table, emulator, Config, ConfigBuilder, SessionStore};
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

/// The API with these HTTP settings and automatic GC timing.
pub async fn app_with(builder: ConfigBuilder, settings: HttpSettings, gc: AutomaticGc) -> TestApp {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("api-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let config = builder.table_name(name).build().unwrap();
    let client = emulator::client(emulator::shared_endpoint());
    create_sessions_table(&client, &config, 5, 5).await.unwrap();
    TestApp::new(ApiState::new(SessionStore::new(client, config), settings).unwrap().with_automatic_gc(gc))
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

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Writes a session item under a fixed id, as the events expect.
pub async fn seed(config: &Config, sid: &str, data: &str, expires: i64, lock_token: Option<&str>) {
    let client = emulator::client(emulator::shared_endpoint());
    let mut put = client
        .put_item()
        .table_name(&config.table_name)
        .item(&config.hash_key, AttributeValue::S(config.item_key(sid)))
        .item(&config.data_attribute, AttributeValue::S(data.into()))
        .item(&config.session_lifetime_attribute, AttributeValue::N(expires.to_string()))
        .item("version", AttributeValue::N("1".into()));
    if let Some(token) = lock_token {
        put = put
            .item("lock", AttributeValue::N("1".into()))
            .item("lock_token", AttributeValue::S(token.into()))
            .item("lock_until_ms", AttributeValue::N(((now() + 60) * 1000).to_string()));
    }
    put.send().await.unwrap();
}
