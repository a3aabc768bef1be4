//! Every file in events/ goes through the real function (the Lambda adapter
//! and router, or the GC handler) against the emulator, seeded with the
//! sessions the events name, and must produce the status it is meant to.
//! A new file without an entry here fails the suite.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use common::*;
use dynamodb_sessions::gc::ScheduledSweep;
use dynamodb_sessions::{Config, LockingStrategy};
use lambda_http::{Context, LambdaEvent};
use serde_json::Value;

const LIVE: &str = "Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe";
const REGENERATE: &str = "Rg3nRg3nRg3nRg3nRg3nRg3nRg3nRg3n";
const DELETE: &str = "De1eteMeDe1eteMeDe1eteMeDe1eteMe";
/// The token events/api-unlock.json sends: its lease runs to 2100.
const UNLOCK_TOKEN: &str = "hT9vQ2mXcL4sWz8bN1rY7g.4102444800000.jS";
const LIVE_DATA: &str = r#"{"user.name":"jeremy","user.role":"admin"}"#;

/// What each event must produce: an HTTP status, or a GC sweep.
fn expected() -> BTreeMap<&'static str, u16> {
    BTreeMap::from([
        ("api-create.json", 201),
        ("api-create-cookie.json", 201),
        ("api-read.json", 200),
        ("api-read-cookie.json", 200),
        ("api-read-and-close.json", 200),
        ("api-replace.json", 200),
        ("api-patch.json", 200),
        ("api-replace-stale-if-match.json", 412),
        ("api-replace-bad-json.json", 400),
        ("api-delete.json", 204),
        ("api-regenerate.json", 201),
        ("api-unlock.json", 204),
        ("api-read-not-found.json", 404),
        ("api-read-malformed-id.json", 400),
        ("api-rest-v1-read.json", 200),
        ("gc-scheduled.json", 0),
    ])
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn event_files() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let event =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, event)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

#[test]
fn every_event_file_has_an_expected_outcome() {
    let expected = expected();
    let files = event_files();
    for (name, _) in &files {
        assert!(expected.contains_key(name.as_str()), "events/{name} has no expected status in tests/events.rs");
    }
    for name in expected.keys() {
        assert!(files.iter().any(|(f, _)| f == name), "tests/events.rs expects events/{name}, which is missing");
    }
}

async fn seeded_app(builder: dynamodb_sessions::ConfigBuilder, unlock_case: bool) -> TestApp {
    let app = app(builder).await;
    let token = unlock_case.then_some(UNLOCK_TOKEN);
    seed(&app, LIVE, LIVE_DATA, now() + 600, token).await;
    seed(&app, REGENERATE, LIVE_DATA, now() + 600, None).await;
    seed(&app, DELETE, LIVE_DATA, now() + 600, None).await;
    app
}

fn response_headers(response: &Value) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    if let Some(map) = response["headers"].as_object() {
        for (k, v) in map {
            headers.insert(k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_string());
        }
    }
    if let Some(map) = response["multiValueHeaders"].as_object() {
        for (k, v) in map {
            headers.insert(k.to_ascii_lowercase(), v[0].as_str().unwrap_or_default().to_string());
        }
    }
    headers
}

#[tokio::test]
async fn every_api_event_produces_its_status_through_the_lambda_adapter() {
    let expected = expected();
    for (name, event) in event_files().into_iter().filter(|(n, _)| n.starts_with("api-")) {
        let app = seeded_app(Config::builder(), name == "api-unlock.json").await;
        let response = app.invoke(event).await;
        let status = response["statusCode"].as_u64().unwrap() as u16;
        assert_eq!(status, expected[name.as_str()], "{name}: {response}");
        let body: Value = match response["body"].as_str() {
            Some(text) if !text.is_empty() => {
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: body not JSON: {e}"))
            }
            _ => Value::Null,
        };
        if status >= 400 {
            assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{name}: {body}");
        }
        if status == 201 {
            let cookie = response["cookies"][0]
                .as_str()
                .map(str::to_string)
                .or_else(|| response_headers(&response).get("set-cookie").cloned());
            assert!(cookie.unwrap_or_default().starts_with("PHPSESSID="), "{name}: {response}");
        }
        if name == "api-unlock.json" {
            let raw = app
                .store()
                .client()
                .get_item()
                .table_name(&app.config().table_name)
                .key("id", aws_sdk_dynamodb::types::AttributeValue::S(format!("PHPSESSID_{LIVE}")))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            assert!(!raw.contains_key("lock"), "the unlock event released the lock");
        }
        if name == "api-patch.json" {
            assert_eq!(body["data"], serde_json::json!({"user.name": "jeremy", "cart": {"items": 2}}));
        }
    }
}

#[tokio::test]
async fn with_pessimistic_locking_the_read_event_locks_and_read_and_close_does_not() {
    let events: BTreeMap<_, _> = event_files().into_iter().collect();
    let builder = || Config::builder().locking_strategy(LockingStrategy::Pessimistic);
    let app = seeded_app(builder(), false).await;
    let read = app.invoke(events["api-read-and-close.json"].clone()).await;
    assert_eq!(read["statusCode"], 200);
    assert!(!response_headers(&read).contains_key("x-session-lock-token"));
    let locked = app.invoke(events["api-read.json"].clone()).await;
    assert_eq!(locked["statusCode"], 200);
    assert!(response_headers(&locked).contains_key("x-session-lock-token"), "{locked}");
}

#[tokio::test]
async fn the_scheduled_event_sweeps_expired_unlocked_sessions_only() {
    let events: BTreeMap<_, _> = event_files().into_iter().collect();
    let event: EventBridgeEvent<Value> = serde_json::from_value(events["gc-scheduled.json"].clone()).unwrap();
    assert_eq!(event.detail_type, "Scheduled Event");
    let app = app(Config::builder()).await;
    let config = app.config().clone();
    let expired = ["Ex1redEx1redEx1redEx1redEx1red01", "Ex1redEx1redEx1redEx1redEx1red02"];
    seed(&app, LIVE, LIVE_DATA, now() + 600, None).await;
    seed(&app, expired[0], "{}", now() - 60, None).await;
    seed(&app, expired[1], "{}", now() - 60, None).await;
    // Expired, but its holder is mid-request: the lease is live.
    seed(&app, "L0ckedL0ckedL0ckedL0ckedL0cked01", "{}", now() - 60, Some(UNLOCK_TOKEN)).await;

    let mut context = Context::default();
    context.request_id = "test-run".into();
    context.deadline = (now() as u64 + 60) * 1000;
    let outcome = session_gc::handle(app.store(), LambdaEvent::new(event, context)).await.unwrap();
    let ScheduledSweep::Swept(report) = outcome else { panic!("{outcome:?}") };
    assert!(report.finished());
    assert_eq!((report.deleted, report.skipped), (2, 1));
    let store = app.store();
    assert!(store.load(&LIVE.parse().unwrap()).await.is_ok());
    assert!(
        store.load(&"L0ckedL0ckedL0ckedL0ckedL0cked01".parse().unwrap()).await.is_err(),
        "expired is absent to readers"
    );
    let remaining = store.client().scan().table_name(&config.table_name).send().await.unwrap().count;
    assert_eq!(remaining, 3, "live + locked + the checkpoint item");
}
