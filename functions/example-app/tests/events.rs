//! The example app's files in events/ (`app-*`) through its function (the
//! Lambda adapter and its router) against the emulator, seeded with the
//! fixture sessions of events/expected.json: each answers the status given
//! there, which the `sam local invoke` stage checks too. (session-api's
//! events test checks that every event file has a status.)

use std::path::PathBuf;

use dynamodb_sessions::emulator::fixtures;
use dynamodb_sessions::{Config, LockToken, SessionStore};
use dynamodb_sessions_axum::{HttpSettings, SessionCookie, SessionLayer};
use serde_json::Value;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// A fresh table holding the fixture sessions, as `sessions seed-events` puts them.
async fn seeded_store(expected: &Value) -> SessionStore {
    // A locked session is waited for 1 s here (the function's default is longer).
    let store = fixtures::store(Config::builder().max_lock_wait_time(std::time::Duration::from_secs(1))).await;
    for fixture in expected["sessions"].as_array().unwrap() {
        let data = serde_json::to_string(&fixture["data"]).unwrap();
        let token = fixture["locked_by"].as_str().map(|raw| LockToken::parse(raw).expect("a well-formed token"));
        let id = fixture["id"].as_str().unwrap();
        fixtures::put_session(&store, id, &data, fixtures::now() + 600, token.as_ref()).await;
    }
    store
}

#[tokio::test]
async fn every_app_event_answers_its_status() {
    let expected = read_json("expected.json");
    let events: Vec<(&String, &Value)> =
        expected["status"].as_object().unwrap().iter().filter(|(name, _)| name.starts_with("app-")).collect();
    assert!(events.len() >= 9, "the app's events: {events:?}");
    for (name, status) in events {
        let store = seeded_store(&expected).await;
        let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
        let router = example_app::router(SessionLayer::new(store, cookie));
        let response = session_api::lambda::invoke(router, read_json(name)).await.unwrap();
        assert_eq!(&response["statusCode"], status, "{name}: {response}");
        let body: Value = match response["body"].as_str() {
            Some(text) if !text.is_empty() => serde_json::from_str(text).unwrap(),
            _ => Value::Null,
        };
        if status.as_u64() >= Some(400) {
            assert!(body["error"]["code"].is_string(), "{name}: a JSON error: {body}");
        }
        let set_cookie = response["cookies"].as_array().and_then(|cookies| cookies.first()).and_then(Value::as_str);
        match name.as_str() {
            "app-sign-in.json" => {
                let cookie = set_cookie.expect("sign-in sets the new id's cookie");
                assert!(!cookie.contains("Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe"), "a new id, never the old one");
                assert_eq!(body["user"], "amy");
            }
            "app-sign-out.json" => assert!(set_cookie.is_some_and(|c| c.starts_with("PHPSESSID=;")), "{response}"),
            "app-cart.json" => assert_eq!(body["cart"], serde_json::json!(["tea", "jam"])),
            _ => {}
        }
    }
}
