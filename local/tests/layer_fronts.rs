//! The in-process session layer (`dynamodb-sessions-axum`) behind the
//! fronts an app uses: one handler through `lambda_http` (API Gateway payload
//! 2.0 and REST v1 events) and through `axum::serve` over TCP, sharing one
//! session; and a write-back that DynamoDB throttles, through the fault
//! simulator, answering 503 instead of the handler's 200.

use std::sync::OnceLock;

use axum::response::{Html, IntoResponse};
use axum::routing::post;
use axum::Router;
use dynamodb_sessions::emulator::{self, fixtures};
use dynamodb_sessions::{Config, SessionId, SessionStore};
use dynamodb_sessions_axum::{HttpSettings, Session, SessionCookie, SessionLayer, SessionRejection};
use serde_json::{json, Value};
use sessions_local::simulator::{RunningSimulator, Simulator, SimulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn upstream() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(emulator::start_in_background)
}

/// Counts in the session: the handler a tower-sessions app would write.
async fn count(session: Session) -> Result<String, SessionRejection> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

fn app(store: &SessionStore) -> Router {
    app_with(layer(store))
}

fn layer(store: &SessionStore) -> SessionLayer {
    let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
    SessionLayer::new(store.clone(), cookie)
}

/// Sign-in: a new id, then the user stored under it.
async fn sign_in(session: Session) -> Result<(), SessionRejection> {
    session.regenerate().await?;
    session.insert("user", "amy").await
}

fn app_with(layer: SessionLayer) -> Router {
    Router::new().route("/count", post(count)).route("/sign-in", post(sign_in)).layer(layer)
}

/// A payload 2.0 event (HTTP API), with the cookies API Gateway passes apart.
fn http_api_event(path: &str, cookies: &[String]) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "cookies": cookies, "headers": {},
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "requestId": "r", "routeKey": "$default", "stage": "$default", "accountId": "1", "apiId": "a",
                           "domainName": "x", "domainPrefix": "x", "time": "t", "timeEpoch": 0},
        "isBase64Encoded": false
    })
}

/// A REST API (payload 1.0) event, the cookie in its header.
fn rest_event(path: &str, cookie: &str) -> Value {
    json!({
        "resource": "/{proxy+}", "path": path, "httpMethod": "POST",
        "headers": {"Cookie": cookie}, "multiValueHeaders": {"Cookie": [cookie]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null, "pathParameters": null,
        "stageVariables": null, "body": null, "isBase64Encoded": false,
        "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": "POST", "path": format!("/prod{path}"),
                           "stage": "prod", "requestId": "r", "accountId": "1", "apiId": "a",
                           "identity": {"sourceIp": "127.0.0.1"}, "protocol": "HTTP/1.1"}
    })
}

/// One request over TCP to `addr`; the status and body.
async fn over_tcp(addr: std::net::SocketAddr, cookie: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /count HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn one_session_through_both_lambda_payloads_and_tcp() {
    let store = fixtures::store_on(emulator::client(upstream()), Config::builder()).await;

    // Payload 2.0: a new session, its cookie in the response's `cookies`.
    let response = session_api::lambda::invoke(app(&store), http_api_event("/count", &[])).await.unwrap();
    assert_eq!((response["statusCode"].as_u64(), response["body"].as_str()), (Some(200), Some("1")), "{response}");
    let set_cookie = response["cookies"][0].as_str().expect("the session cookie").to_string();
    let pair = set_cookie.split(';').next().unwrap().to_string();
    let id = pair.strip_prefix("PHPSESSID=").expect("the session's cookie").to_string();
    assert!(SessionId::parse(&id).is_ok());

    let response =
        session_api::lambda::invoke(app(&store), http_api_event("/count", std::slice::from_ref(&pair))).await.unwrap();
    assert_eq!(response["body"], "2", "the cookie names the same session: {response}");
    assert_eq!(response["cookies"], json!([]), "no Set-Cookie when the id did not change");

    // REST v1: the cookie in a header; the stage in the path is lambda_http's.
    let response = session_api::lambda::invoke(app(&store), rest_event("/count", &pair)).await.unwrap();
    assert_eq!((response["statusCode"].as_u64(), response["body"].as_str()), (Some(200), Some("3")), "{response}");

    // axum::serve over TCP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_for_tcp = store.clone();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(&store_for_tcp)).await });
    assert_eq!(over_tcp(addr, &pair).await, (200, "4".to_string()));

    let stored = store.load(&SessionId::parse(&id).unwrap()).await.unwrap();
    assert_eq!(stored.data["n"], 4);
}

/// A store whose every UpdateItem DynamoDB throttles, and a session in it
/// holding `n = 7`.
async fn throttled_write_backs() -> (RunningSimulator, SessionStore, SessionId) {
    let faults = "throttle=1:op=UpdateItem".parse().unwrap();
    let simulator = Simulator::start(upstream(), SimulatorConfig { faults, ..Default::default() }).await.unwrap();
    let store = fixtures::store_on(emulator::client(&simulator.url()), Config::builder()).await;
    let id = SessionId::generate();
    fixtures::put_session(&store, id.as_str(), r#"{"n":7}"#, fixtures::now() + 600, None).await;
    (simulator, store, id)
}

/// The session's `n`, read past the simulator.
async fn stored_n(store: &SessionStore, id: &SessionId) -> Value {
    let direct = SessionStore::new(emulator::client(upstream()), store.config().clone());
    direct.load(id).await.unwrap().data["n"].clone()
}

#[tokio::test]
async fn a_throttled_write_back_answers_503_not_the_handlers_success() {
    let (_simulator, store, id) = throttled_write_backs().await;
    let pair = format!("PHPSESSID={id}");
    let response = session_api::lambda::invoke(app(&store), http_api_event("/count", &[pair])).await.unwrap();
    assert_eq!(response["statusCode"], 503, "never the handler's 200: {response}");
    assert_eq!(response["headers"]["retry-after"], "1");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(stored_n(&store, &id).await, 7, "nothing was stored");
}

#[tokio::test]
async fn a_failed_write_back_after_regenerate_still_tells_the_new_id() {
    let (_simulator, store, id) = throttled_write_backs().await;
    let pair = format!("PHPSESSID={id}");
    let response = session_api::lambda::invoke(app(&store), http_api_event("/sign-in", &[pair])).await.unwrap();
    assert_eq!(response["statusCode"], 503, "the user was not stored: {response}");
    let set_cookie = response["cookies"][0].as_str().expect("the new id's cookie, or the client is logged out");
    let new_id = set_cookie.split(';').next().unwrap().strip_prefix("PHPSESSID=").unwrap();
    assert_ne!(new_id, id.as_str());
    assert_eq!(stored_n(&store, &SessionId::parse(new_id).unwrap()).await, 7, "the data moved to the new id");
}

#[tokio::test]
async fn an_app_answers_a_failed_write_back_its_own_way() {
    let (_simulator, store, id) = throttled_write_backs().await;
    let page = |rejection: SessionRejection| {
        let status = rejection.into_response().status();
        (status, Html("<p>Not saved. Please try again.</p>")).into_response()
    };
    let app = app_with(layer(&store).on_failed_write_back(page));
    let pair = format!("PHPSESSID={id}");
    let response = session_api::lambda::invoke(app, http_api_event("/count", &[pair])).await.unwrap();
    assert_eq!(response["statusCode"], 503, "the rejection's status, the app's body: {response}");
    assert_eq!(response["headers"]["content-type"], "text/html; charset=utf-8");
    assert_eq!(response["body"], "<p>Not saved. Please try again.</p>");
    assert_eq!(stored_n(&store, &id).await, 7, "nothing was stored");
}
