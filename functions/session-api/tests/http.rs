//! The HTTP API's rules (README) through the real router and emulator.

mod common;

use std::time::Duration;

use common::*;
use cookie::time::OffsetDateTime;
use cookie::{Cookie, SameSite};
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures::logs_of;
use dynamodb_sessions::{Config, LockingStrategy};
use serde_json::{json, Value};
use session_api::{AutomaticGc, HttpSettings};

const JSON: (&str, &str) = ("content-type", "application/json");

/// The `Set-Cookie` of a response, parsed.
fn set_cookie(response: &TestResponse) -> Cookie<'static> {
    Cookie::parse(response.header("set-cookie").expect("a Set-Cookie").to_string()).unwrap()
}

/// `name=value`, as a browser sends the cookie back.
fn cookie_pair(response: &TestResponse) -> String {
    let cookie = set_cookie(response);
    format!("{}={}", cookie.name(), cookie.value())
}

#[tokio::test]
async fn a_session_lives_and_dies_through_the_api() {
    let app = app(Config::builder()).await;
    let created = app.call("POST", "/sessions", &[JSON], Some(r#"{"user.name":"jeremy"}"#)).await;
    assert_eq!(created.status, 201);
    let body = created.json();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"], json!({"user.name": "jeremy"}));
    assert!(body["expires"].as_i64().unwrap() > now());
    assert_eq!(created.header("location"), Some(format!("/sessions/{id}").as_str()));
    let etag = created.header("etag").unwrap().to_string();
    assert!(etag.len() == 26 && etag.starts_with('"') && etag.ends_with('"'), "an opaque entity tag: {etag}");
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(cookie_pair(&created), format!("PHPSESSID={id}"));

    let path = format!("/sessions/{id}");
    let (read, calls) = counted(app.call("GET", &path, &[], None)).await;
    assert_eq!(read.status, 200);
    assert_eq!(calls, ["GetItem"], "a read is one GetItem");
    assert_eq!(read.json()["data"], json!({"user.name": "jeremy"}));

    assert_eq!(read.header("etag"), Some(etag.as_str()), "a read does not change the entity tag");

    let stale = app.call("PUT", &path, &[JSON, ("if-match", "\"0123456789abcdef01234567\"")], Some("{}")).await;
    assert_eq!((stale.status.as_u16(), stale.code().as_str()), (412, "precondition_failed"));
    let (replaced, calls) = counted(app.call("PUT", &path, &[JSON, ("if-match", &etag)], Some(r#"{"a":1}"#))).await;
    assert_eq!(replaced.status, 200);
    assert_eq!(calls, ["GetItem", "UpdateItem"], "a replace without the lock reads, then writes if nothing changed");
    assert_ne!(replaced.header("etag"), Some(etag.as_str()));
    let again = app.call("PUT", &path, &[JSON, ("if-match", &etag)], Some("{}")).await;
    assert_eq!(again.status, 412, "the old entity tag no longer matches");
    // If-Match compares strongly (RFC 9110): a weak tag never matches.
    let current = replaced.header("etag").unwrap().to_string();
    let weak = app.call("PUT", &path, &[JSON, ("if-match", &format!("W/{current}"))], Some("{}")).await;
    assert_eq!((weak.status.as_u16(), weak.code().as_str()), (412, "precondition_failed"));
    let any = app.call("PUT", &path, &[JSON, ("if-match", "*")], Some(r#"{"a":1}"#)).await;
    assert_eq!(any.status, 200, "`*` matches any data of a live session");

    let merge_patch = ("content-type", "application/merge-patch+json");
    let patched = app.call("PATCH", &path, &[merge_patch], Some(r#"{"a":null,"b":2}"#)).await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["data"], json!({"b": 2}));

    let (deleted, calls) = counted(app.call("DELETE", &path, &[], None)).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(calls, ["DeleteItem"]);
    assert_eq!(set_cookie(&deleted).max_age(), Some(cookie::time::Duration::ZERO));
    assert_eq!(app.call("DELETE", &path, &[], None).await.status, 204, "idempotent");
    assert_eq!(app.call("GET", &path, &[], None).await.status, 404);
    assert_eq!(app.call("PUT", &path, &[JSON], Some("{}")).await.status, 404, "never recreated");
    // `If-Match: *` holds only while the session exists (RFC 9110).
    let any = app.call("PUT", &path, &[JSON, ("if-match", "*")], Some("{}")).await;
    assert_eq!((any.status.as_u16(), any.code().as_str()), (412, "precondition_failed"));
}

#[tokio::test]
async fn the_cookie_routes_work_like_session_start() {
    let app = app(Config::builder()).await;
    let started = app.call("POST", "/session", &[], None).await;
    assert_eq!(started.status, 201);
    let cookie = cookie_pair(&started);
    let id = started.json()["id"].as_str().unwrap().to_string();

    let resumed = app.call("POST", "/session", &[("cookie", &format!("theme=dark; {cookie}"))], None).await;
    assert_eq!(resumed.status, 200, "a live cookie session is resumed");
    assert_eq!(resumed.json()["id"], id.as_str());
    assert!(resumed.header("set-cookie").is_none(), "the cookie already names it");

    let put = app.call("PUT", "/session", &[JSON, ("cookie", &cookie)], Some(r#"{"user.role":"admin"}"#)).await;
    assert_eq!(put.status, 200);
    let read = app.call("GET", "/session", &[("cookie", &cookie)], None).await;
    assert_eq!(read.json()["data"], json!({"user.role": "admin"}));

    let regenerated = app.call("POST", "/session/regenerate", &[("cookie", &cookie)], None).await;
    assert_eq!(regenerated.status, 201);
    let new_cookie = cookie_pair(&regenerated);
    assert_ne!(new_cookie, cookie);
    assert_eq!(app.call("GET", "/session", &[("cookie", &cookie)], None).await.status, 404);
    let read = app.call("GET", "/session", &[("cookie", &new_cookie)], None).await;
    assert_eq!(read.json()["data"], json!({"user.role": "admin"}));

    let gone = app.call("DELETE", "/session", &[("cookie", &new_cookie)], None).await;
    assert_eq!(gone.status, 204);
    let removal = set_cookie(&gone);
    assert_eq!((removal.name(), removal.value(), removal.path()), ("PHPSESSID", "", Some("/")));
    assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    assert!(removal.expires_datetime().unwrap() < OffsetDateTime::now_utc());
    assert_eq!(app.call("GET", "/session", &[("cookie", &new_cookie)], None).await.status, 404);
    let (cookieless, calls) = counted(app.call("DELETE", "/session", &[], None)).await;
    assert_eq!(cookieless.status, 204, "logging out without a session still clears the cookie");
    assert_eq!(set_cookie(&cookieless).max_age(), Some(cookie::time::Duration::ZERO));
    assert!(calls.is_empty());
    let nameless = app.call("GET", "/session", &[], None).await;
    assert_eq!((nameless.status.as_u16(), nameless.code().as_str()), (404, "not_found"));
    assert!(nameless.json()["error"]["message"].as_str().unwrap().contains("PHPSESSID"));
}

#[tokio::test]
async fn cookie_attributes_come_from_the_http_settings() {
    let settings = HttpSettings {
        cookie_lifetime: Duration::from_secs(3600),
        cookie_path: "/app".into(),
        cookie_domain: Some("example.com".into()),
        cookie_secure: true,
        cookie_http_only: false,
        cookie_same_site: SameSite::Strict,
        ..HttpSettings::default()
    };
    let app = app_with(Config::builder().session_name(""), settings, AutomaticGc::default()).await;
    let created = app.call("POST", "/sessions", &[], None).await;
    let cookie = set_cookie(&created);
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!((cookie.name(), cookie.value()), ("session", id.as_str()), "an empty session_name: `session`");
    assert_eq!((cookie.path(), cookie.domain()), (Some("/app"), Some("example.com")));
    assert_eq!((cookie.secure(), cookie.http_only()), (Some(true), None));
    assert_eq!(cookie.same_site(), Some(SameSite::Strict));
    assert_eq!(cookie.max_age(), Some(cookie::time::Duration::seconds(3600)));
    assert!(cookie.expires_datetime().unwrap() > OffsetDateTime::now_utc() + cookie::time::Duration::seconds(3500));

    let read = app.call("GET", "/session", &[("cookie", &format!("session=\"{id}\""))], None).await;
    assert_eq!(read.status, 200, "the cookie is read by the same name (quotes trimmed)");
    let removal = set_cookie(&app.call("DELETE", "/session", &[("cookie", &format!("session={id}"))], None).await);
    assert_eq!((removal.path(), removal.domain()), (Some("/app"), Some("example.com")), "removes the same cookie");
}

#[tokio::test]
async fn a_client_never_chooses_its_id() {
    let app = app(Config::builder()).await;
    let chosen = "AttackerChosenId0000000000000000";
    let started = app.call("POST", "/session", &[("cookie", &format!("PHPSESSID={chosen}"))], None).await;
    assert_eq!(started.status, 201);
    assert_ne!(started.json()["id"], chosen);
    assert_eq!(app.call("GET", &format!("/sessions/{chosen}"), &[], None).await.status, 404);
    // A malformed cookie: strict mode starts a new session too; elsewhere it is 400.
    assert_eq!(app.call("POST", "/session", &[("cookie", "PHPSESSID=bad id")], None).await.status, 201);
    assert_eq!(app.call("GET", "/session", &[("cookie", "PHPSESSID=bad id")], None).await.status, 400);
    assert_eq!(app.call("GET", "/session", &[], None).await.status, 404);
}

#[tokio::test]
async fn expired_sessions_are_404_before_ttl_runs() {
    let app = app(Config::builder()).await;
    let sid = "ExpiredExpiredExpiredExpired0001";
    seed(&app, sid, "{}", now() - 1, None).await;
    for method in ["GET", "DELETE"] {
        let status = app.call(method, &format!("/sessions/{sid}"), &[], None).await.status;
        assert!(status == 404 || (method == "DELETE" && status == 204), "{method}: {status}");
    }
    assert_eq!(app.call("PATCH", &format!("/sessions/{sid}"), &[JSON], Some("{}")).await.status, 404);
    assert_eq!(app.call("POST", &format!("/sessions/{sid}/regenerate"), &[], None).await.status, 404);
}

#[tokio::test]
async fn pessimistic_reads_lock_and_writes_need_the_token() {
    let app = app(Config::builder()
        .locking_strategy(LockingStrategy::Pessimistic)
        .max_lock_wait_time(Duration::from_millis(200))
        .min_lock_retry(Duration::from_millis(5))
        .max_lock_retry(Duration::from_millis(10)))
    .await;
    let created = app.call("POST", "/sessions", &[JSON], Some(r#"{"n":1}"#)).await;
    let path = format!("/sessions/{}", created.json()["id"].as_str().unwrap());
    let head = app.call("HEAD", &path, &[], None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty() && head.header("x-session-lock-token").is_none(), "HEAD never locks");
    let locked = app.call("GET", &path, &[], None).await;
    assert_eq!(locked.status, 200);
    let token = locked.header("x-session-lock-token").unwrap().to_string();

    let waiter = app.call("GET", &path, &[], None).await;
    assert_eq!((waiter.status.as_u16(), waiter.code().as_str()), (423, "locked"));
    assert_eq!(waiter.header("retry-after"), Some("1"));
    let peek = app.call("GET", &format!("{path}?read_and_close=1"), &[], None).await;
    assert_eq!(peek.status, 200);
    assert!(peek.header("x-session-lock-token").is_none());
    assert_eq!(app.call("PUT", &path, &[JSON], Some(r#"{"n":2}"#)).await.status, 423);
    let unlock = format!("{path}/lock");
    let no_token = app.call("DELETE", &unlock, &[], None).await;
    assert_eq!((no_token.status.as_u16(), no_token.code().as_str()), (400, "missing_lock_token"));
    let bad_token = app.call("DELETE", &unlock, &[("x-session-lock-token", "???")], None).await;
    assert_eq!((bad_token.status.as_u16(), bad_token.code().as_str()), (400, "invalid_lock_token"));

    let written = app.call("PUT", &path, &[JSON, ("x-session-lock-token", &token)], Some(r#"{"n":2}"#)).await;
    assert_eq!(written.status, 200, "the holder writes through and releases");
    let relocked = app.call("GET", &path, &[], None).await;
    let token = relocked.header("x-session-lock-token").unwrap().to_string();
    assert_eq!(app.call("DELETE", &unlock, &[("x-session-lock-token", &token)], None).await.status, 204);
    assert_eq!(app.call("GET", &path, &[], None).await.status, 200, "released without writing");
}

#[tokio::test]
async fn bad_requests_get_4xx_json_errors_and_cost_no_dynamodb_call() {
    let app = app(Config::builder().max_data_size(1000usize)).await;
    let id = app.call("POST", "/sessions", &[JSON], None).await.json()["id"].as_str().unwrap().to_string();
    let path = format!("/sessions/{id}");
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(1500));
    let huge = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5000));
    // (method, path, headers, body, status, error code)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("GET", "/sessions/bad%20id!".into(), vec![], None, 400, "invalid_id"),
        ("GET", "/sessions/short".into(), vec![], None, 400, "invalid_id"),
        ("GET", "/sessions/%FF%FE".into(), vec![], None, 400, "invalid_id"),
        ("PUT", path.clone(), vec![JSON], Some("{\"a\":"), 400, "bad_json"),
        ("PUT", path.clone(), vec![JSON], Some("[1,2]"), 400, "not_an_object"),
        ("PUT", path.clone(), vec![JSON], Some("\"text\""), 400, "not_an_object"),
        ("PUT", path.clone(), vec![JSON], None, 400, "missing_body"),
        ("PATCH", path.clone(), vec![JSON], Some("null"), 400, "not_an_object"),
        ("PUT", path.clone(), vec![("content-type", "text/plain")], Some("{}"), 415, "unsupported_media_type"),
        (
            "POST",
            "/sessions".into(),
            vec![("content-type", "application/xml")],
            Some("<a/>"),
            415,
            "unsupported_media_type",
        ),
        ("PUT", path.clone(), vec![JSON, ("if-match", "nonsense")], Some("{}"), 412, "precondition_failed"),
        ("PATCH", path.clone(), vec![JSON, ("if-match", "W/\"x\"")], Some("{}"), 412, "precondition_failed"),
        // A malformed request is 400 before an If-Match that never matches is 412 (Schemathesis found 412 first).
        ("PUT", path.clone(), vec![JSON, ("if-match", "nonsense")], Some("false"), 400, "not_an_object"),
        ("PUT", path.clone(), vec![JSON, ("if-match", "nonsense")], None, 400, "missing_body"),
        (
            "PATCH",
            path.clone(),
            vec![JSON, ("if-match", "nonsense"), ("x-session-lock-token", "L")],
            Some("{}"),
            400,
            "invalid_lock_token",
        ),
        ("PUT", path.clone(), vec![JSON], Some(&huge), 413, "too_large"),
        ("POST", "/sessions".into(), vec![JSON], Some(&huge), 413, "too_large"),
        ("POST", path.clone(), vec![], None, 405, "method_not_allowed"),
        ("GET", "/sessions".into(), vec![], None, 405, "method_not_allowed"),
        ("GET", "/nowhere".into(), vec![], None, 404, "no_route"),
        ("GET", "/sessions/a/b/c".into(), vec![], None, 404, "no_route"),
        ("DELETE", format!("{path}/lock"), vec![], None, 400, "missing_lock_token"),
        ("GET", format!("{path}?read_and_close=1&read_and_close=2"), vec![], None, 400, "bad_query"),
    ];
    for (method, uri, headers, body, status, code) in cases {
        let (response, calls) = counted(app.call(method, &uri, &headers, body)).await;
        assert_eq!(response.status, status, "{method} {uri}");
        assert_eq!(response.header("content-type"), Some("application/json"), "{method} {uri}");
        assert_eq!(response.code(), code, "{method} {uri}");
        assert!(response.json()["error"]["message"].is_string(), "{method} {uri}");
        assert!(calls.is_empty(), "{method} {uri} made calls: {calls:?}");
    }
    // Data that parses but is over the limit once serialized: 413, nothing written.
    let (response, calls) = counted(app.call("PUT", &path, &[JSON], Some(&big))).await;
    assert_eq!((response.status.as_u16(), response.code().as_str(), calls.len()), (413, "too_large", 0));
    let invalid_utf8 = axum::http::Request::builder()
        .method("PUT")
        .uri(&path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(vec![b'{', 0xff, 0xfe, b'}']))
        .unwrap();
    let response = app.send(invalid_utf8).await;
    assert_eq!((response.status.as_u16(), response.code().as_str()), (400, "invalid_utf8"));
    assert_eq!(app.call("GET", &path, &[], None).await.json()["data"], json!({}), "nothing was written");
}

#[tokio::test]
async fn a_wrong_method_is_405_with_allow_and_a_json_body() {
    let app = app(Config::builder()).await;
    let id = app.call("POST", "/sessions", &[], None).await.json()["id"].as_str().unwrap().to_string();
    let allowed = [
        ("/sessions", "POST"),
        (&format!("/sessions/{id}") as &str, "GET,HEAD,PUT,PATCH,DELETE"),
        (&format!("/sessions/{id}/regenerate"), "POST"),
        (&format!("/sessions/{id}/lock"), "DELETE"),
        ("/session", "GET,HEAD,POST,PUT,PATCH,DELETE"),
        ("/session/regenerate", "POST"),
        ("/session/lock", "DELETE"),
    ];
    for (path, allow) in allowed {
        let response = app.call("TRACE", path, &[], None).await;
        assert_eq!(response.status, 405, "{path}");
        assert_eq!(response.header("allow"), Some(allow), "{path}");
        assert_eq!(response.code(), "method_not_allowed", "{path}");
        assert!(response.json()["error"]["message"].as_str().unwrap().contains("Allow"));
    }
}

#[tokio::test]
async fn options_answers_204_with_allow_and_touches_nothing() {
    // A CORS preflight reaches the function when an authorizer guards the
    // data routes (template.yaml): it needs a 2xx, and must cost nothing.
    let app = app(Config::builder()).await;
    let id = app.call("POST", "/sessions", &[], None).await.json()["id"].as_str().unwrap().to_string();
    for (path, allow) in [
        ("/sessions".to_string(), "POST"),
        (format!("/sessions/{id}"), "GET,HEAD,PUT,PATCH,DELETE"),
        (format!("/sessions/{id}/lock"), "DELETE"),
        ("/session".to_string(), "GET,HEAD,POST,PUT,PATCH,DELETE"),
    ] {
        let (response, calls) = counted(app.call("OPTIONS", &path, &[], None)).await;
        assert_eq!(response.status, 204, "{path}");
        assert_eq!(response.header("allow"), Some(allow), "{path}");
        assert!(calls.is_empty(), "OPTIONS {path} made calls: {calls:?}");
    }
    assert_eq!(app.call("OPTIONS", "/nowhere", &[], None).await.status, 404);
}

#[tokio::test]
async fn every_response_is_no_store() {
    let app = app(Config::builder().locking_strategy(LockingStrategy::Pessimistic)).await;
    let created = app.call("POST", "/sessions", &[], None).await;
    let id = created.json()["id"].as_str().unwrap().to_string();
    let locked = app.call("GET", &format!("/sessions/{id}"), &[], None).await;
    assert!(locked.header("x-session-lock-token").is_some());
    let responses = [
        ("a new session and its cookie", created),
        ("session data and a lock token", locked),
        ("a cookie removal", app.call("DELETE", "/session", &[], None).await),
        ("an error", app.call("GET", "/nowhere", &[], None).await),
    ];
    for (what, response) in responses {
        assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
    }
}

#[tokio::test]
async fn automatic_gc_runs_before_returning_a_success_and_never_on_an_error() {
    // 1 request in AUTOMATIC_GC_DIVISOR (100) runs a step: in 1500 requests,
    // missing every one has a chance of 3e-7.
    const REQUESTS: usize = 1500;
    let app =
        app_with(Config::builder().automatic_gc(true), HttpSettings::default(), AutomaticGc::BeforeReturning).await;
    let (_, calls) = counted(async {
        for _ in 0..REQUESTS {
            assert_eq!(app.call("GET", "/sessions/bad!", &[], None).await.status, 400);
        }
    })
    .await;
    assert!(calls.is_empty(), "an error response never runs GC: {} calls", calls.len());
    let (_, calls) = counted(async {
        for _ in 0..REQUESTS {
            assert_eq!(app.call("OPTIONS", "/sessions", &[], None).await.status, 204);
        }
    })
    .await;
    assert!(calls.is_empty(), "a preflight (OPTIONS) never runs GC: {} calls", calls.len());
    // A success without a DynamoDB call of its own: logging out without a cookie.
    let (_, calls) = counted(async {
        for _ in 0..REQUESTS {
            assert_eq!(app.call("DELETE", "/session", &[], None).await.status, 204);
        }
    })
    .await;
    assert!(calls.iter().any(|call| call == "Scan"), "successes run GC steps before returning: {calls:?}");
}

#[tokio::test]
async fn spawned_automatic_gc_stays_off_the_response_path() {
    const REQUESTS: usize = 1500;
    let app = app_with(Config::builder().automatic_gc(true), HttpSettings::default(), AutomaticGc::Spawned).await;
    let (_, calls) = counted(async {
        for _ in 0..REQUESTS {
            assert_eq!(app.call("DELETE", "/session", &[], None).await.status, 204);
        }
    })
    .await;
    assert!(calls.is_empty(), "the steps ran in tasks of their own: {calls:?}");
}

/// A payload 2.0 event, as an HTTP API sends it.
fn http_api_event(method: &str, raw_path: &str, stage: &str, body: Value, base64: bool) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "requestId": "r", "routeKey": "$default", "stage": stage, "accountId": "1", "apiId": "a",
                           "domainName": "x", "domainPrefix": "x", "time": "t", "timeEpoch": 0},
        "body": body, "isBase64Encoded": base64
    })
}

#[tokio::test]
async fn a_body_flagged_base64_that_is_not_is_a_400_through_lambda() {
    let app = app(Config::builder()).await;
    let event = http_api_event("POST", "/sessions", "$default", json!("this is not base64!!"), true);
    let response = app.invoke(event.clone()).await;
    assert_eq!(response["statusCode"], 400);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_base64");
    let mut valid = event;
    valid["body"] = json!("eyJhIjoxfQ=="); // {"a":1}
    let response = app.invoke(valid.clone()).await;
    assert_eq!(response["statusCode"], 201, "{response}");
    // Only the Lambda front marks a body undecodable; a client cannot.
    valid["headers"]["x-sessions-invalid-base64-body"] = json!("1");
    assert_eq!(app.invoke(valid).await["statusCode"], 201);
}

#[tokio::test]
async fn both_payload_versions_route_whatever_the_stage() {
    let app = app(Config::builder()).await;
    let id = "Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe";
    seed(&app, id, r#"{"n":1}"#, now() + 600, None).await;
    // REST API (payload 1.0): `path` has no stage, which lambda_http adds to the URI.
    let rest: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/api-rest-v1-read.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rest["requestContext"]["stage"], "prod");
    assert_eq!(rest["path"], format!("/sessions/{id}"));
    let response = app.invoke(rest.clone()).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let mut unknown = rest;
    unknown["path"] = json!("/prod/nowhere");
    assert_eq!(app.invoke(unknown).await["statusCode"], 404);
    // HTTP API (payload 2.0): a named stage leads `rawPath`; `$default` does not.
    let named = http_api_event("GET", &format!("/prod/sessions/{id}"), "prod", Value::Null, false);
    assert_eq!(app.invoke(named).await["statusCode"], 200);
    let default = http_api_event("GET", &format!("/sessions/{id}"), "$default", Value::Null, false);
    assert_eq!(app.invoke(default).await["statusCode"], 200);
    let mut with_query = http_api_event("GET", &format!("/prod/sessions/{id}"), "prod", Value::Null, false);
    with_query["rawQueryString"] = json!("read_and_close=1");
    assert_eq!(app.invoke(with_query).await["statusCode"], 200);
}

#[tokio::test]
async fn each_request_logs_one_line_with_its_route_template_and_never_the_id() {
    let app = app(Config::builder()).await;
    let id = app.call("POST", "/sessions", &[], None).await.json()["id"].as_str().unwrap().to_string();
    let lines = logs_of(async {
        app.call("PUT", &format!("/sessions/{id}"), &[JSON], Some(r#"{"secret":"hunter2"}"#)).await;
        app.call("GET", "/session", &[("cookie", &format!("PHPSESSID={id}"))], None).await;
        app.call("TRACE", &format!("/sessions/{id}/lock"), &[], None).await;
        app.call("GET", &format!("/elsewhere/{id}"), &[], None).await;
    })
    .await;
    let requests: Vec<_> = lines.iter().filter(|line| line["fields"]["message"] == "request").collect();
    let seen: Vec<_> = requests
        .iter()
        .map(|line| {
            let fields = &line["fields"];
            assert!(fields["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{line}");
            assert!(fields["duration_ms"].is_number(), "{line}");
            (fields["method"].as_str().unwrap(), fields["route"].as_str().unwrap(), fields["status"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("PUT", "/sessions/{id}", 200),
            ("GET", "/session", 200),
            ("TRACE", "/sessions/{id}/lock", 405),
            ("GET", "unknown", 404)
        ]
    );
    assert_eq!(requests[0]["fields"]["dynamodb_calls"], 2, "a PUT without the lock reads, then writes");
    let all = serde_json::to_string(&lines).unwrap();
    assert!(!all.contains(&id) && !all.contains("hunter2"), "no session id or data in the logs: {all}");
}

#[tokio::test]
async fn a_500_carries_the_request_id_and_no_internals() {
    // A table that does not exist: DynamoDB answers ResourceNotFoundException, a bug on our side.
    let config = Config::builder().table_name("no-such-table-here").build().unwrap();
    let client = dynamodb_sessions::emulator::client(dynamodb_sessions::emulator::shared_endpoint());
    let store = dynamodb_sessions::SessionStore::new(client, config);
    let app = TestApp::new(session_api::ApiState::new(store, HttpSettings::default()).unwrap());
    let mut response = None;
    let lines = logs_of(async {
        response = Some(app.call("GET", "/sessions/Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe", &[], None).await);
    })
    .await;
    let response = response.unwrap();
    assert_eq!((response.status.as_u16(), response.code().as_str()), (500, "internal"));
    let message = response.json()["error"]["message"].as_str().unwrap().to_string();
    let logged = lines.iter().find(|line| line["fields"]["message"] == "request").unwrap();
    let request_id = logged["fields"]["request_id"].as_str().unwrap();
    assert_eq!(message, format!("internal error (request id {request_id})"));
    assert!(lines.iter().any(|line| line["fields"]["message"] == "internal error"), "the cause is logged");
}
