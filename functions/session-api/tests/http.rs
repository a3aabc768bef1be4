//! The HTTP API's rules (PRODUCT.md) through the real handler and emulator.

mod common;

use std::time::Duration;

use common::*;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::{Config, LockingStrategy};
use serde_json::json;
use session_api::handle;

const JSON: (&str, &str) = ("content-type", "application/json");

fn session_cookie(response: &lambda_http::Response<lambda_http::Body>) -> String {
    header(response, "set-cookie").unwrap().split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_session_lives_and_dies_through_the_api() {
    let app = app(Config::builder()).await;
    let created = handle(&app, request("POST", "/sessions", &[JSON], Some(r#"{"user.name":"jeremy"}"#))).await;
    assert_eq!(created.status(), 201);
    let body = json(&created);
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"], json!({"user.name": "jeremy"}));
    assert!(body["expires"].as_i64().unwrap() > now());
    assert_eq!(header(&created, "location"), Some(format!("/sessions/{id}").as_str()));
    assert_eq!(header(&created, "etag"), Some("\"1\""));
    assert_eq!(session_cookie(&created), format!("PHPSESSID={id}"));

    let path = format!("/sessions/{id}");
    let (read, calls) = counted(handle(&app, request("GET", &path, &[], None))).await;
    assert_eq!(read.status(), 200);
    assert_eq!(calls, ["GetItem"], "a read is one GetItem");
    assert_eq!(json(&read)["data"], json!({"user.name": "jeremy"}));

    let stale = handle(&app, request("PUT", &path, &[JSON, ("if-match", "\"7\"")], Some("{}"))).await;
    assert_eq!(stale.status(), 412);
    let (replaced, calls) =
        counted(handle(&app, request("PUT", &path, &[JSON, ("if-match", "\"1\"")], Some(r#"{"a":1}"#)))).await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(calls, ["UpdateItem"], "a replace is one UpdateItem");
    assert_eq!(header(&replaced, "etag"), Some("\"2\""));

    let patched = handle(
        &app,
        request("PATCH", &path, &[("content-type", "application/merge-patch+json")], Some(r#"{"a":null,"b":2}"#)),
    )
    .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(json(&patched)["data"], json!({"b": 2}));

    let (deleted, calls) = counted(handle(&app, request("DELETE", &path, &[], None))).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(calls, ["DeleteItem"]);
    assert!(header(&deleted, "set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(handle(&app, request("DELETE", &path, &[], None)).await.status(), 204, "idempotent");
    assert_eq!(handle(&app, request("GET", &path, &[], None)).await.status(), 404);
    assert_eq!(handle(&app, request("PUT", &path, &[JSON], Some("{}"))).await.status(), 404, "never recreated");
}

#[tokio::test]
async fn the_cookie_routes_work_like_session_start() {
    let app = app(Config::builder()).await;
    let started = handle(&app, request("POST", "/session", &[], None)).await;
    assert_eq!(started.status(), 201);
    let cookie = session_cookie(&started);
    let id = json(&started)["id"].as_str().unwrap().to_string();

    let resumed =
        handle(&app, request("POST", "/session", &[("cookie", &format!("theme=dark; {cookie}"))], None)).await;
    assert_eq!(resumed.status(), 200, "a live cookie session is resumed");
    assert_eq!(json(&resumed)["id"], id.as_str());

    let put =
        handle(&app, request("PUT", "/session", &[JSON, ("cookie", &cookie)], Some(r#"{"user.role":"admin"}"#))).await;
    assert_eq!(put.status(), 200);
    let read = handle(&app, request("GET", "/session", &[("cookie", &cookie)], None)).await;
    assert_eq!(json(&read)["data"], json!({"user.role": "admin"}));

    let regenerated = handle(&app, request("POST", "/session/regenerate", &[("cookie", &cookie)], None)).await;
    assert_eq!(regenerated.status(), 201);
    let new_cookie = session_cookie(&regenerated);
    assert_ne!(new_cookie, cookie);
    assert_eq!(handle(&app, request("GET", "/session", &[("cookie", &cookie)], None)).await.status(), 404);
    assert_eq!(
        json(&handle(&app, request("GET", "/session", &[("cookie", &new_cookie)], None)).await)["data"],
        json!({"user.role": "admin"})
    );

    let gone = handle(&app, request("DELETE", "/session", &[("cookie", &new_cookie)], None)).await;
    assert_eq!(gone.status(), 204);
    assert!(header(&gone, "set-cookie").unwrap().starts_with("PHPSESSID=deleted;"));
    assert_eq!(handle(&app, request("GET", "/session", &[("cookie", &new_cookie)], None)).await.status(), 404);
    let (cookieless, calls) = counted(handle(&app, request("DELETE", "/session", &[], None))).await;
    assert_eq!(cookieless.status(), 204, "logging out without a session still clears the cookie");
    assert!(header(&cookieless, "set-cookie").unwrap().contains("Max-Age=0"));
    assert!(calls.is_empty());
}

#[tokio::test]
async fn a_client_never_chooses_its_id() {
    let app = app(Config::builder()).await;
    let chosen = "AttackerChosenId0000000000000000";
    let started = handle(&app, request("POST", "/session", &[("cookie", &format!("PHPSESSID={chosen}"))], None)).await;
    assert_eq!(started.status(), 201);
    assert_ne!(json(&started)["id"], chosen);
    assert_eq!(handle(&app, request("GET", &format!("/sessions/{chosen}"), &[], None)).await.status(), 404);
    // A malformed cookie: strict mode starts a new session too; elsewhere it is 400.
    assert_eq!(handle(&app, request("POST", "/session", &[("cookie", "PHPSESSID=bad id")], None)).await.status(), 201);
    assert_eq!(handle(&app, request("GET", "/session", &[("cookie", "PHPSESSID=bad id")], None)).await.status(), 400);
    assert_eq!(handle(&app, request("GET", "/session", &[], None)).await.status(), 404);
}

#[tokio::test]
async fn expired_sessions_are_404_before_ttl_runs() {
    let app = app(Config::builder()).await;
    let sid = "ExpiredExpiredExpiredExpired0001";
    seed(app.store.config(), sid, "{}", now() - 1, None).await;
    for method in ["GET", "DELETE"] {
        let status = handle(&app, request(method, &format!("/sessions/{sid}"), &[], None)).await.status();
        assert!(status == 404 || (method == "DELETE" && status == 204), "{method}: {status}");
    }
    assert_eq!(handle(&app, request("PATCH", &format!("/sessions/{sid}"), &[JSON], Some("{}"))).await.status(), 404);
    assert_eq!(handle(&app, request("POST", &format!("/sessions/{sid}/regenerate"), &[], None)).await.status(), 404);
}

#[tokio::test]
async fn pessimistic_reads_lock_and_writes_need_the_token() {
    let app = app(Config::builder()
        .locking_strategy(LockingStrategy::Pessimistic)
        .max_lock_wait_time(Duration::from_millis(200))
        .min_lock_retry(Duration::from_millis(5))
        .max_lock_retry(Duration::from_millis(10)))
    .await;
    let id = json(&handle(&app, request("POST", "/sessions", &[JSON], Some(r#"{"n":1}"#))).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/sessions/{id}");
    let locked = handle(&app, request("GET", &path, &[], None)).await;
    assert_eq!(locked.status(), 200);
    let token = header(&locked, "x-session-lock-token").unwrap().to_string();

    let waiter = handle(&app, request("GET", &path, &[], None)).await;
    assert_eq!(waiter.status(), 423);
    assert_eq!(header(&waiter, "retry-after"), Some("1"));
    let peek = handle(&app, request("GET", &format!("{path}?read_and_close=1"), &[], None)).await;
    assert_eq!(peek.status(), 200);
    assert!(header(&peek, "x-session-lock-token").is_none());
    assert_eq!(handle(&app, request("PUT", &path, &[JSON], Some(r#"{"n":2}"#))).await.status(), 423);
    assert_eq!(
        handle(&app, request("DELETE", &format!("{path}/lock"), &[], None)).await.status(),
        400,
        "unlock needs the token"
    );
    assert_eq!(
        handle(&app, request("DELETE", &format!("{path}/lock"), &[("x-session-lock-token", "???")], None))
            .await
            .status(),
        400
    );

    let written =
        handle(&app, request("PUT", &path, &[JSON, ("x-session-lock-token", &token)], Some(r#"{"n":2}"#))).await;
    assert_eq!(written.status(), 200, "the holder writes through and releases");
    let relocked = handle(&app, request("GET", &path, &[], None)).await;
    let token = header(&relocked, "x-session-lock-token").unwrap().to_string();
    assert_eq!(
        handle(&app, request("DELETE", &format!("{path}/lock"), &[("x-session-lock-token", &token)], None))
            .await
            .status(),
        204
    );
    assert_eq!(handle(&app, request("GET", &path, &[], None)).await.status(), 200, "released without writing");
}

#[tokio::test]
async fn bad_requests_get_4xx_json_errors_and_cost_no_dynamodb_call() {
    let app = app(Config::builder().max_data_size(1000usize)).await;
    let id = json(&handle(&app, request("POST", "/sessions", &[JSON], None)).await)["id"].as_str().unwrap().to_string();
    let path = format!("/sessions/{id}");
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(1500));
    let huge = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5000));
    // (method, path, headers, body, status, error code)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("GET", "/sessions/bad%20id!".into(), vec![], None, 400, "invalid_id"),
        ("GET", "/sessions/short".into(), vec![], None, 400, "invalid_id"),
        ("PUT", path.clone(), vec![JSON], Some("{\"a\":"), 400, "bad_json"),
        ("PUT", path.clone(), vec![JSON], Some("[1,2]"), 400, "not_an_object"),
        ("PUT", path.clone(), vec![JSON], Some("\"text\""), 400, "not_an_object"),
        ("PUT", path.clone(), vec![JSON], None, 400, "missing_body"),
        ("PATCH", path.clone(), vec![JSON], Some("null"), 400, "not_an_object"),
        ("PUT", path.clone(), vec![("content-type", "text/plain")], Some("{}"), 415, "unsupported_media_type"),
        ("PUT", path.clone(), vec![JSON, ("if-match", "nonsense")], Some("{}"), 412, "precondition_failed"),
        ("PUT", path.clone(), vec![JSON], Some(&huge), 413, "too_large"),
        ("POST", "/sessions".into(), vec![JSON], Some(&huge), 413, "too_large"),
        ("POST", path.clone(), vec![], None, 405, "method_not_allowed"),
        ("GET", "/sessions".into(), vec![], None, 405, "method_not_allowed"),
        ("GET", "/nowhere".into(), vec![], None, 404, "no_route"),
        ("DELETE", format!("{path}/lock"), vec![], None, 400, "missing_lock_token"),
    ];
    for (method, uri, headers, body, status, code) in cases {
        let (response, calls) = counted(handle(&app, request(method, &uri, &headers, body))).await;
        assert_eq!(response.status(), status, "{method} {uri}");
        assert_eq!(json(&response)["error"]["code"], code, "{method} {uri}");
        assert!(calls.is_empty(), "{method} {uri} made calls: {calls:?}");
    }
    // Data that parses but is over the limit once serialized: 413, nothing written.
    let (response, calls) = counted(handle(&app, request("PUT", &path, &[JSON], Some(&big)))).await;
    assert_eq!((response.status().as_u16(), calls.len()), (413, 0));
    assert_eq!(
        header(&handle(&app, request("POST", &path, &[], None)).await, "allow"),
        Some("GET, PUT, PATCH, DELETE")
    );
    let invalid_utf8 = lambda_http::http::Request::builder()
        .method("PUT")
        .uri(&path)
        .header("content-type", "application/json")
        .body(lambda_http::Body::Binary(vec![b'{', 0xff, 0xfe, b'}']))
        .unwrap();
    let response = handle(&app, invalid_utf8).await;
    assert_eq!((response.status().as_u16(), json(&response)["error"]["code"].as_str()), (400, Some("invalid_utf8")));
    assert_eq!(json(&handle(&app, request("GET", &path, &[], None)).await)["data"], json!({}), "nothing was written");
}

#[tokio::test]
async fn a_body_flagged_base64_that_is_not_is_a_400_through_lambda() {
    let app = app(Config::builder()).await;
    let event = json!({
        "version": "2.0", "routeKey": "POST /sessions", "rawPath": "/sessions", "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/sessions", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "requestId": "r", "routeKey": "POST /sessions", "stage": "$default", "accountId": "1", "apiId": "a",
                           "domainName": "x", "domainPrefix": "x", "time": "t", "timeEpoch": 0},
        "body": "this is not base64!!", "isBase64Encoded": true
    });
    let response = session_api::lambda::invoke(app.clone(), event.clone()).await.unwrap();
    assert_eq!(response["statusCode"], 400);
    let mut valid = event;
    valid["body"] = json!("eyJhIjoxfQ=="); // {"a":1}
    let response = session_api::lambda::invoke(app, valid).await.unwrap();
    assert_eq!(response["statusCode"], 201, "{response}");
}
