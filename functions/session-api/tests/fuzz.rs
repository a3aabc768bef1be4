//! Thousands of generated API Gateway events, most of them malformed, through
//! the whole Lambda function: none may panic or yield a 5xx, every bad one is
//! a 4xx, and every error is the JSON error shape. The sessions are in PHP's
//! format and bodies carry `$php` tags too: none is ever stored (the only PHP
//! object in the table is the one PHP stored in the live session).

mod common;

use base64::Engine;
use common::*;
use dynamodb_sessions::codec::DataFormat;
use dynamodb_sessions::emulator::fixtures::{self, now, put_php_item, raw_item, stored_php_object_tags};
use dynamodb_sessions::{Config, SessionId, SessionStore};
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
enum BodyCase {
    None,
    Object(String),
    NotObject(String),
    Text(String),
    Base64Bytes(Vec<u8>),
    InvalidBase64(String),
    /// A JSON object with a `$php` tag PHP would build an object from.
    Tagged(String),
}

/// The object PHP stored in the live session, at `w`: the one PHP object
/// the table may hold.
const PHP_STORED: &str = r#"w|O:4:"User":1:{s:4:"name";s:3:"ann";}n|i:1;"#;

fn php_stored_user() -> Value {
    json!({"$php": "object", "class": "User", "properties": {"name": "ann"}})
}

/// A tag PHP would build an object or a reference from (never of `User`).
fn php_object_tag() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[A-Z][a-z]{0,6}"
            .prop_map(|class| json!({"$php": "object", "class": format!("Evil{class}"), "properties": {"cmd": "id"}})),
        Just(json!({"$php": "object", "class": "EvilEmpty", "properties": []})),
        Just(json!({"$php": "serializable", "class": "EvilSerializable", "data": "payload"})),
        Just(json!({"$php": "enum", "class": "EvilSuit", "case": "Hearts"})),
        (1u32..4).prop_map(|to| json!({"$php": "reference", "to": to})),
        (1u32..4).prop_map(|to| json!({"$php": "object_reference", "to": to})),
    ]
}

/// A body carrying a tag at some depth, or reaching into the stored object.
fn tagged_body() -> impl Strategy<Value = String> {
    (php_object_tag(), "[a-z]{1,4}", 0usize..4, 0u8..3).prop_map(|(tag, key, depth, place)| {
        let mut value = tag;
        for level in 0..depth {
            value = if level % 2 == 0 { json!([1, value]) } else { json!({ "k": value }) };
        }
        let body = match place {
            0 => json!({ key: value }),
            1 => json!({"w": {"properties": {"name": value}}}),
            _ => json!({"n": 2, "w": {"class": "EvilClass"}, key: value}),
        };
        body.to_string()
    })
}

fn body_case() -> impl Strategy<Value = BodyCase> {
    prop_oneof![
        Just(BodyCase::None),
        "[a-z]{1,8}".prop_map(|k| BodyCase::Object(json!({ k: [1, "x", {"n": null}] }).to_string())),
        prop_oneof![
            Just("[1,2]".to_string()),
            Just("42".to_string()),
            Just("\"s\"".to_string()),
            Just("null".to_string()),
            Just("true".to_string())
        ]
        .prop_map(BodyCase::NotObject),
        ".{0,60}".prop_map(BodyCase::Text),
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(BodyCase::Base64Bytes),
        "[!@#$%^&*()]{1,20}".prop_map(BodyCase::InvalidBase64),
        tagged_body().prop_map(BodyCase::Tagged),
        // Edits into the stored object without a tag of its own.
        Just(BodyCase::Object(json!({"w": {"class": "EvilClass"}}).to_string())),
        Just(BodyCase::Object(json!({"w": {"$php": null}}).to_string())),
    ]
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![Just("LIVE".to_string()), "[A-Za-z0-9_-]{22,40}", "[A-Za-z0-9%!_ .~-]{0,30}",]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/sessions".to_string()),
        Just("/session".to_string()),
        Just("/session/lock".to_string()),
        Just("/session/regenerate".to_string()),
        segment().prop_map(|id| format!("/sessions/{id}")),
        segment().prop_map(|id| format!("/sessions/{id}/lock")),
        segment().prop_map(|id| format!("/sessions/{id}/regenerate")),
        "/[A-Za-z0-9/._-]{0,30}",
    ]
}

fn header_value(choices: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(choices).prop_map(|s| Some(s.to_string())),
        "[ -~]{0,20}".prop_map(Some)
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<String>,
    if_match: Option<String>,
    cookie: Option<String>,
    lock_token: Option<String>,
    body: BodyCase,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(&["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"][..]),
        path(),
        header_value(&[
            "application/json",
            "application/merge-patch+json",
            "text/plain",
            "application/json; charset=utf-8",
        ]),
        header_value(&["\"1\"", "*", "W/\"2\""]),
        header_value(&["PHPSESSID=LIVE", "PHPSESSID=", "a=b; PHPSESSID=x y"]),
        header_value(&["AAAAAAAAAAAAAAAAAAAAAA"]),
        body_case(),
    )
        .prop_map(|(method, path, content_type, if_match, cookie, lock_token, body)| Case {
            method,
            path,
            content_type,
            if_match,
            cookie,
            lock_token,
            body,
        })
}

/// Whether the case is certainly malformed, so it must be a 4xx whatever
/// the table holds.
fn certainly_bad(case: &Case, live: &str) -> bool {
    let path = case.path.replace("LIVE", live);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let allowed: &[&str] = match segments.as_slice() {
        ["sessions"] => &["POST"],
        ["sessions", _] => &["GET", "HEAD", "PUT", "PATCH", "DELETE"],
        ["sessions", _, "regenerate"] | ["session", "regenerate"] => &["POST"],
        ["sessions", _, "lock"] | ["session", "lock"] => &["DELETE"],
        ["session"] => &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        _ => return true, // no such route
    };
    if case.method == "OPTIONS" {
        // Asks what the route serves: 204, whatever the id (nothing is read).
        return matches!(case.body, BodyCase::InvalidBase64(_));
    }
    if !allowed.contains(&case.method) {
        return true;
    }
    if let ["sessions", id, ..] = segments.as_slice() {
        if SessionId::parse(id).is_err() {
            return true;
        }
    }
    if matches!(case.body, BodyCase::InvalidBase64(_)) {
        return true;
    }
    let json_content = case
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json") || c.starts_with("application/merge-patch+json"));
    let takes_data = matches!(
        (segments.as_slice(), case.method),
        (["sessions"] | ["session"], "POST") | (["sessions", _] | ["session"], "PUT" | "PATCH")
    );
    let blank = match &case.body {
        BodyCase::None => true,
        BodyCase::Text(text) => text.bytes().all(|b| b.is_ascii_whitespace()),
        BodyCase::Base64Bytes(bytes) => bytes.iter().all(u8::is_ascii_whitespace),
        _ => false,
    };
    // A body must declare JSON (415), and may carry no new PHP object (400).
    if takes_data && !blank && (!json_content || matches!(case.body, BodyCase::Tagged(_))) {
        return true;
    }
    let body_is_object = matches!(case.body, BodyCase::Object(_) | BodyCase::Tagged(_));
    matches!(case.method, "PUT" | "PATCH")
        && json_content
        && !body_is_object
        && !matches!(case.body, BodyCase::Text(ref t) if t.trim_start().starts_with('{'))
}

/// Every PHP object tag the session's item holds is PHP's own, at `w`.
async fn assert_no_object_planted(store: &SessionStore, sid: &str) -> Result<(), TestCaseError> {
    let Some(item) = raw_item(store, sid).await else { return Ok(()) };
    let tags = stored_php_object_tags(store.config(), &item);
    prop_assert!(tags.iter().all(|tag| *tag == php_stored_user()), "planted in {sid}: {tags:?}");
    Ok(())
}

fn event(case: &Case, live: &str) -> Value {
    let path = case.path.replace("LIVE", live);
    let mut headers = serde_json::Map::new();
    let mut add = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            headers.insert(name.into(), json!(v.replace("LIVE", live)));
        }
    };
    add("content-type", &case.content_type);
    add("if-match", &case.if_match);
    add("cookie", &case.cookie);
    add("x-session-lock-token", &case.lock_token);
    let (body, base64) = match &case.body {
        BodyCase::None => (Value::Null, false),
        BodyCase::Object(s) | BodyCase::NotObject(s) | BodyCase::Text(s) | BodyCase::Tagged(s) => (json!(s), false),
        BodyCase::Base64Bytes(bytes) => (json!(base64::engine::general_purpose::STANDARD.encode(bytes)), true),
        BodyCase::InvalidBase64(s) => (json!(s), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": case.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "fuzz"},
            "requestId": "fuzz", "routeKey": "$default", "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": base64
    })
}

#[test]
fn generated_requests_never_panic_or_5xx_and_bad_ones_are_4xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (app, live) = runtime.block_on(async {
        let app = app(Config::builder().data_format(DataFormat::Php)).await;
        let live = SessionId::generate().to_string();
        put_php_item(app.store(), &live, PHP_STORED, now() + 3600, false).await;
        (app, live)
    });
    let bad_seen = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&case(), |case| {
            let response = runtime.block_on(app.invoke(event(&case, &live)));
            let status = response["statusCode"].as_u64().unwrap();
            prop_assert!(status < 500, "{case:?} -> {response}");
            if certainly_bad(&case, &live) {
                bad_seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert!((400..500).contains(&status), "{case:?} -> {response}");
            }
            if (200..300).contains(&status) {
                let created = serde_json::from_str::<Value>(response["body"].as_str().unwrap_or("")).ok();
                let created = created.and_then(|body| body["id"].as_str().map(str::to_string));
                for sid in created.iter().chain([&live]) {
                    runtime.block_on(assert_no_object_planted(app.store(), sid))?;
                }
            }
            // A response to HEAD has no body, by HTTP's rules.
            if status >= 400 && case.method != "HEAD" {
                let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or(""))
                    .map_err(|e| TestCaseError::fail(format!("{case:?}: {e}")))?;
                prop_assert!(
                    body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                    "{case:?} -> {body}"
                );
            }
            Ok(())
        })
        .unwrap();
    let bad_seen = bad_seen.into_inner();
    assert!(bad_seen > 1000, "the generator mostly makes bad requests: {bad_seen}");
    // Whatever else the run created (regenerated ids included).
    let items = runtime.block_on(fixtures::all_items(app.store()));
    for item in &items {
        let tags = stored_php_object_tags(app.store().config(), item);
        assert!(tags.iter().all(|tag| *tag == php_stored_user()), "planted: {tags:?}");
    }
}
