//! What HTTP clients may write (issue 19): no PHP objects, enums or
//! references that PHP's `session_start()` would unserialize (PHP object
//! injection), no protected keys, and bodies only as declared JSON. Each
//! refusal writes nothing and leaves no lock. The real-PHP side of the same
//! hole is in `php_interop.rs`; this file runs against both emulators.

mod common;

use common::{app_from_env, TestApp, TestResponse};
use dynamodb_sessions::emulator::fixtures::{self, count_items, now, put_php_item, raw_item};
use dynamodb_sessions::{SessionId, WriteOptions};
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");
const MERGE_PATCH: (&str, &str) = ("content-type", "application/merge-patch+json");
const PHP_FORMATS: [&str; 2] = ["php", "php_serialize"];

type Headers<'a> = Vec<(&'a str, &'a str)>;

fn gadget() -> Value {
    json!({"$php": "object", "class": "Gadget", "properties": {"cmd": "touch /tmp/pwned"}})
}

/// Bodies carrying a tag PHP would build an object or a reference from, and
/// the JSON Pointer of the tag.
fn php_object_bodies() -> Vec<(Value, &'static str)> {
    vec![
        (json!({"cart": {"items": [1, {"x": [gadget()]}]}}), "/cart/items/1/x/0"),
        (json!({"s": {"$php": "serializable", "class": "Gadget", "data": "payload"}}), "/s"),
        (json!({"e": [{"$php": "enum", "class": "Suit", "case": "Hearts"}]}), "/e/0"),
        (json!({"r": [1, {"$php": "reference", "to": 2}]}), "/r/1"),
        (json!({"o": {"$php": "object_reference", "to": 1}}), "/o"),
        (json!({"a": {"$php": "array", "entries": [["k", gadget()]]}}), "/a/entries/0/1"),
    ]
}

/// `w` holds an object PHP stored, `n` a number, in the session's format.
fn php_stored_object(format: &str) -> (&'static str, &'static str) {
    const OBJECT: &str = r#"O:4:"User":1:{s:4:"name";s:3:"ann";}"#;
    match format {
        "php" => (r#"w|O:4:"User":1:{s:4:"name";s:3:"ann";}n|i:1;"#, OBJECT),
        "php_serialize" => (r#"a:2:{s:1:"w";O:4:"User":1:{s:4:"name";s:3:"ann";}s:1:"n";i:1;}"#, OBJECT),
        other => panic!("no format {other}"),
    }
}

fn user() -> Value {
    json!({"$php": "object", "class": "User", "properties": {"name": "ann"}})
}

/// A session PHP wrote (`php_stored_object`), and its id.
async fn seed_php_session(app: &TestApp, format: &str) -> String {
    let sid = SessionId::generate().to_string();
    put_php_item(app.store(), &sid, php_stored_object(format).0, now() + 600, false).await;
    sid
}

/// The stored data, as text.
async fn stored(app: &TestApp, sid: &str) -> Option<String> {
    let item = raw_item(app.store(), sid).await.expect("the session's item");
    item.get(&app.config().data_attribute).map(|data| data.as_s().expect("data as S").clone())
}

async fn send(app: &TestApp, method: &str, uri: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
    app.call(method, uri, headers, Some(&body.to_string())).await
}

fn cookie(sid: &str) -> String {
    format!("PHPSESSID={sid}")
}

fn assert_refused(response: &TestResponse, status: u16, code: &str, what: &str) {
    assert_eq!((response.status.as_u16(), response.code().as_str()), (status, code), "{what}: {:?}", response.json());
}

#[tokio::test]
async fn every_route_that_takes_data_refuses_php_objects_and_writes_nothing() {
    for format in PHP_FORMATS {
        let app = app_from_env(&[("DATA_FORMAT", format), ("LOCKING_STRATEGY", "pessimistic")]).await;
        let sid = seed_php_session(&app, format).await;
        let before = stored(&app, &sid).await;
        let items = count_items(app.store()).await;
        let (by_id, session_cookie) = (format!("/sessions/{sid}"), cookie(&sid));
        let with_cookie = |content: (&'static str, &'static str)| vec![content, ("cookie", session_cookie.as_str())];
        for (body, path) in php_object_bodies() {
            let routes: Vec<(&str, &str, Headers)> = vec![
                ("POST", "/sessions", vec![JSON]),
                ("POST", "/session", vec![JSON]),
                ("POST", "/session", with_cookie(JSON)),
                ("PUT", &by_id, vec![JSON]),
                ("PATCH", &by_id, vec![MERGE_PATCH]),
                ("PUT", "/session", with_cookie(JSON)),
                ("PATCH", "/session", with_cookie(MERGE_PATCH)),
            ];
            for (method, uri, headers) in routes {
                let what = format!("{format}: {method} {uri} {body}");
                let response = send(&app, method, uri, &headers, &body).await;
                assert_refused(&response, 400, "php_object_refused", &what);
                assert_eq!(response.json()["error"]["path"], path, "{what}");
                assert_eq!(stored(&app, &sid).await, before, "{what}: nothing written");
                assert_eq!(count_items(app.store()).await, items, "{what}: no session created");
            }
        }
        let item = raw_item(app.store(), &sid).await.unwrap();
        assert!(!item.contains_key("lock"), "{format}: no lock left: {item:?}");
        assert_eq!(fixtures::stored_php_object_tags(app.config(), &item), [user()], "PHP's own object kept, alone");
    }
    // In the json format nobody unserializes: a `$php` key is plain data.
    let app = app_from_env(&[]).await;
    let created = send(&app, "POST", "/sessions", &[JSON], &json!({"g": gadget()})).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["data"]["g"], gadget());
}

#[tokio::test]
async fn a_patch_never_edits_into_an_object_php_stored() {
    for format in PHP_FORMATS {
        let app = app_from_env(&[("DATA_FORMAT", format)]).await;
        let sid = seed_php_session(&app, format).await;
        let before = stored(&app, &sid).await;
        for patch in [
            json!({"w": {"class": "Gadget"}}),
            json!({"w": {"properties": {"name": gadget()}}}),
            json!({"w": {"properties": {"name": "eve"}}}),
            json!({"w": {"$php": null}}),
            json!({"n": 2, "w": {"properties": {"cmd": "id"}}}),
        ] {
            let response = send(&app, "PATCH", &format!("/sessions/{sid}"), &[MERGE_PATCH], &patch).await;
            assert_refused(&response, 400, "php_object_refused", &format!("{format}: {patch}"));
            assert_eq!(response.json()["error"]["path"], "/w");
            assert_eq!(stored(&app, &sid).await, before, "{format}: {patch}: nothing written");
        }
    }
}

#[tokio::test]
async fn objects_php_stored_survive_other_writes_byte_for_byte() {
    for format in PHP_FORMATS {
        let app = app_from_env(&[("DATA_FORMAT", format), ("LOCKING_STRATEGY", "pessimistic")]).await;
        let (_, object) = php_stored_object(format);
        let sid = seed_php_session(&app, format).await;
        let by_id = format!("/sessions/{sid}");

        let patched = send(&app, "PATCH", &by_id, &[MERGE_PATCH], &json!({"n": 2})).await;
        assert_eq!(patched.status, 200, "{format}: {:?}", patched.json());
        assert!(stored(&app, &sid).await.unwrap().contains(object), "{format}: kept by a PATCH of another key");

        // A PUT sending back what it read, with a change elsewhere; with the lock too.
        let read = app.call("GET", &by_id, &[], None).await;
        let token = read.header("x-session-lock-token").expect("a locking read").to_string();
        let mut data = read.json()["data"].clone();
        assert_eq!(data["w"], user());
        data["n"] = json!(3);
        let put = send(&app, "PUT", &by_id, &[JSON, ("x-session-lock-token", &token)], &data).await;
        assert_eq!(put.status, 200, "{format}: {:?}", put.json());
        data["n"] = json!(4);
        let put = send(&app, "PUT", &by_id, &[JSON], &data).await;
        assert_eq!(put.status, 200, "{format}: {:?}", put.json());
        let after = stored(&app, &sid).await.unwrap();
        assert!(after.contains(object) && after.contains("i:4;"), "{format}: kept by PUTs echoing it: {after}");

        // Moved to another key, it is new there.
        let moved = send(&app, "PUT", &by_id, &[JSON], &json!({"other": user()})).await;
        assert_refused(&moved, 400, "php_object_refused", format);
        assert_eq!(moved.json()["error"]["path"], "/other");
        // Replacing or removing it is the client's right.
        let replaced = send(&app, "PATCH", &by_id, &[MERGE_PATCH], &json!({"w": "plain"})).await;
        assert_eq!(replaced.json()["data"], json!({"w": "plain", "n": 4}), "{format}");
        let removed = send(&app, "PATCH", &by_id, &[MERGE_PATCH], &json!({"w": null})).await;
        assert_eq!(removed.json()["data"], json!({"n": 4}), "{format}");
        assert!(!raw_item(app.store(), &sid).await.unwrap().contains_key("lock"));
    }
}

#[tokio::test]
async fn protected_keys_can_be_read_never_added_changed_or_removed() {
    let app = app_from_env(&[("PROTECTED_KEYS", "is_admin, auth_*")]).await;
    let owned = fixtures::data(json!({"is_admin": false, "auth_user": 7, "cart": []}));
    // The library's own callers (the app's code) are not limited.
    let sid = app.store().create(owned.clone()).await.unwrap().id.to_string();
    let by_id = format!("/sessions/{sid}");
    let before = stored(&app, &sid).await;
    let read = app.call("GET", &by_id, &[], None).await;
    assert_eq!(read.json()["data"], Value::Object(owned.clone()), "readable");

    let refused: Vec<(&str, &str, Headers, Value, &str)> = vec![
        ("PUT", &by_id, vec![JSON], json!({"auth_user": 7, "cart": [1]}), "is_admin"),
        ("PUT", &by_id, vec![JSON], json!({"is_admin": false, "auth_user": 8, "cart": []}), "auth_user"),
        ("PATCH", &by_id, vec![MERGE_PATCH], json!({"is_admin": true}), "is_admin"),
        ("PATCH", &by_id, vec![MERGE_PATCH], json!({"is_admin": null}), "is_admin"),
        ("PATCH", &by_id, vec![MERGE_PATCH], json!({"auth_role": "root"}), "auth_role"),
    ];
    for (method, uri, headers, body, key) in refused {
        let response = send(&app, method, uri, &headers, &body).await;
        assert_refused(&response, 403, "protected_key", &format!("{method} {body}"));
        assert!(response.json()["error"]["message"].as_str().unwrap().contains(key), "{:?}", response.json());
        assert_eq!(stored(&app, &sid).await, before, "{method} {body}: nothing written");
    }
    let items = count_items(app.store()).await;
    for uri in ["/sessions", "/session"] {
        let response = send(&app, "POST", uri, &[JSON], &json!({"auth_token": "x", "cart": []})).await;
        assert_refused(&response, 403, "protected_key", uri);
    }
    assert_eq!(count_items(app.store()).await, items, "no session created");

    let patched = send(&app, "PATCH", &by_id, &[MERGE_PATCH], &json!({"cart": [1]})).await;
    assert_eq!(patched.json()["data"], json!({"is_admin": false, "auth_user": 7, "cart": [1]}));
    let echoed = send(&app, "PUT", &by_id, &[JSON], &json!({"is_admin": false, "auth_user": 7, "cart": [2]})).await;
    assert_eq!(echoed.status, 200, "{:?}", echoed.json());
    let (id, admin) = (SessionId::parse(&sid).unwrap(), fixtures::data(json!({"is_admin": true})));
    let trusted = app.store().replace(&id, admin, &WriteOptions::default()).await;
    assert!(trusted.is_ok(), "the library's own write is not limited: {trusted:?}");
}

#[tokio::test]
async fn allowed_classes_let_named_classes_through() {
    let app = app_from_env(&[("DATA_FORMAT", "php"), ("PHP_ALLOWED_CLASSES", "User")]).await;
    let allowed = send(&app, "POST", "/sessions", &[JSON], &json!({"u": user()})).await;
    assert_eq!(allowed.status, 201, "{:?}", allowed.json());
    let refused = send(&app, "POST", "/sessions", &[JSON], &json!({"u": user(), "g": gadget()})).await;
    assert_refused(&refused, 400, "php_object_refused", "Gadget is not allowed");

    let app = app_from_env(&[("DATA_FORMAT", "php"), ("PHP_ALLOWED_CLASSES", "*")]).await;
    let any =
        send(&app, "POST", "/sessions", &[JSON], &json!({"g": gadget(), "r": [1, {"$php": "reference", "to": 2}]}))
            .await;
    assert_eq!(any.status, 201, "{:?}", any.json());
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_415_on_every_route_that_takes_one() {
    let app = app_from_env(&[]).await;
    let sid = app.store().create(fixtures::data(json!({"n": 1}))).await.unwrap().id.to_string();
    let (by_id, session_cookie) = (format!("/sessions/{sid}"), cookie(&sid));
    let before = stored(&app, &sid).await;
    let items = count_items(app.store()).await;
    let routes = [
        ("POST", "/sessions"),
        ("POST", "/session"),
        ("PUT", by_id.as_str()),
        ("PATCH", by_id.as_str()),
        ("PUT", "/session"),
        ("PATCH", "/session"),
    ];
    for (method, uri) in routes {
        for content_type in [None, Some("text/plain"), Some("text/x+json"), Some("multipart/form-data")] {
            let mut headers = vec![("cookie", session_cookie.as_str())];
            headers.extend(content_type.map(|value| ("content-type", value)));
            let response = send(&app, method, uri, &headers, &json!({"n": 2})).await;
            assert_refused(&response, 415, "unsupported_media_type", &format!("{method} {uri} {content_type:?}"));
        }
    }
    assert_eq!(stored(&app, &sid).await, before, "nothing written");
    assert_eq!(count_items(app.store()).await, items, "no session created");
    for content_type in ["application/json; charset=utf-8", "application/merge-patch+json", "application/vnd.app+json"]
    {
        let response = send(&app, "PATCH", &by_id, &[("content-type", content_type)], &json!({"n": 3})).await;
        assert_eq!(response.status, 200, "{content_type}");
    }
}
