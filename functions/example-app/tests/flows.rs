//! The example app's flows through `lambda_http` (API Gateway payload 2.0
//! events, as on Lambda), on the embedded emulator: sign in → counter →
//! cart → sign in again (a new id; the old cookie is refused) → sign out.

use dynamodb_sessions::emulator::fixtures;
use dynamodb_sessions::{Config, LockingStrategy, SessionStore};
use dynamodb_sessions_axum::{HttpSettings, SessionCookie, SessionLayer};
use serde_json::{json, Value};

struct App {
    store: SessionStore,
}

/// What the app answered: status, JSON body, and the session cookie it set
/// (`Some("")` for a removal).
struct Reply {
    status: u64,
    body: Value,
    cookie: Option<String>,
}

impl App {
    async fn new(builder: dynamodb_sessions::ConfigBuilder) -> App {
        App { store: fixtures::store(builder).await }
    }

    async fn call(&self, method: &str, path: &str, session: Option<&str>, body: Option<Value>) -> Reply {
        let cookie = SessionCookie::new(&self.store.config().session_name, HttpSettings::default());
        let router = example_app::router(SessionLayer::new(self.store.clone(), cookie));
        let cookies: Vec<String> = session.map(|id| format!("PHPSESSID={id}")).into_iter().collect();
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "cookies": cookies, "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                               "requestId": "r", "routeKey": "$default", "stage": "$default", "accountId": "1", "apiId": "a",
                               "domainName": "x", "domainPrefix": "x", "time": "t", "timeEpoch": 0},
            "body": body.map(|body| body.to_string()), "isBase64Encoded": false
        });
        let response = session_api::lambda::invoke(router, event).await.unwrap();
        let cookie = response["cookies"].as_array().and_then(|set| set.first()).map(|set_cookie| {
            let pair = set_cookie.as_str().unwrap().split(';').next().unwrap();
            pair.strip_prefix("PHPSESSID=").expect("the session cookie").to_string()
        });
        let body = match response["body"].as_str() {
            Some(text) if !text.is_empty() => serde_json::from_str(text).unwrap(),
            _ => Value::Null,
        };
        Reply { status: response["statusCode"].as_u64().unwrap(), body, cookie }
    }
}

#[tokio::test]
async fn sign_in_count_fill_the_cart_sign_in_again_and_sign_out() {
    let app = App::new(Config::builder()).await;

    let visitor = app.call("POST", "/app/counter", None, None).await;
    assert_eq!((visitor.status, &visitor.body["count"]), (200, &json!(1)));
    let first = visitor.cookie.expect("a new session's cookie");
    let refused = app.call("POST", "/app/cart", Some(&first), Some(json!({"item": "tea"}))).await;
    assert_eq!((refused.status, &refused.body["error"]["code"]), (401, &json!("signed_out")));

    let signed_in = app.call("POST", "/app/sign-in", Some(&first), Some(json!({"user": "amy"}))).await;
    assert_eq!(signed_in.status, 200);
    assert_eq!(signed_in.body, json!({"user": "amy", "count": 1, "cart": []}), "the visit's count kept");
    let second = signed_in.cookie.expect("sign-in gives a new id");
    assert_ne!(second, first);

    app.call("POST", "/app/counter", Some(&second), None).await;
    let cart = app.call("POST", "/app/cart", Some(&second), Some(json!({"item": "tea"}))).await;
    assert_eq!(cart.body, json!({"user": "amy", "count": 2, "cart": ["tea"]}));

    // Signing in again (another user on the same browser): a new id again,
    // and the cookie from before is refused: a fresh, signed-out visitor.
    let again = app.call("POST", "/app/sign-in", Some(&second), Some(json!({"user": "bob"}))).await;
    let third = again.cookie.expect("a new id");
    assert_eq!(again.body["user"], "bob");
    let old = app.call("GET", "/app", Some(&second), None).await;
    assert_eq!(old.body, json!({"user": null, "count": 0, "cart": []}), "the old id is gone");
    let old_cart = app.call("POST", "/app/cart", Some(&second), Some(json!({"item": "jam"}))).await;
    assert_eq!(old_cart.status, 401);

    let out = app.call("POST", "/app/sign-out", Some(&third), None).await;
    assert_eq!((out.status, out.cookie.as_deref()), (204, Some("")), "the cookie is expired");
    let after = app.call("GET", "/app", Some(&third), None).await;
    assert_eq!(after.body, json!({"user": null, "count": 0, "cart": []}));
}

#[tokio::test]
async fn a_malformed_body_is_a_json_400_and_changes_nothing() {
    let app = App::new(Config::builder()).await;
    let first = app.call("POST", "/app/counter", None, None).await.cookie.unwrap();
    let bad = app.call("POST", "/app/sign-in", Some(&first), Some(json!({"name": "amy"}))).await;
    assert_eq!((bad.status, &bad.body["error"]["code"]), (400, &json!("bad_request")));
    let empty = app.call("POST", "/app/sign-in", Some(&first), Some(json!({"user": " "}))).await;
    assert_eq!(empty.status, 400);
    let unchanged = app.call("GET", "/app", Some(&first), None).await;
    assert_eq!((unchanged.body["user"].clone(), unchanged.cookie), (Value::Null, None), "still the same visitor");
}

#[tokio::test]
async fn a_locked_session_answers_423() {
    let builder = fixtures::fast_locks()
        .locking_strategy(LockingStrategy::Pessimistic)
        .max_lock_wait_time(std::time::Duration::from_secs(1));
    let app = App::new(builder).await;
    let id = dynamodb_sessions::SessionId::generate();
    // Another request (a PHP page) holds the session.
    fixtures::put_php_item(&app.store, id.as_str(), r#"{"count":3}"#, fixtures::now() + 600, true).await;
    let locked = app.call("POST", "/app/counter", Some(id.as_str()), None).await;
    assert_eq!((locked.status, &locked.body["error"]["code"]), (423, &json!("locked")));
}
