//! Every file in events/ goes through the real function (the Lambda adapter
//! and handler, or the GC handler) against the emulator, seeded with the
//! sessions the events name, and must produce the status it is meant to.
//! Both lists live in events/expected.json, which the `sam local invoke`
//! stage (scripts/sam_local_invoke.py) reads too. A new event file without
//! an entry there fails the suite.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use dynamodb_sessions::emulator::fixtures::{emf_metric_names, emf_problems};
use dynamodb_sessions::gc::ScheduledSweep;
use dynamodb_sessions::{metrics, Config, LockingStrategy};
use lambda_http::{Context, LambdaEvent};
use serde_json::Value;

const LIVE: &str = "Xq7Zb2Lr9TkW4mNc8VpY3sHd6FgJ1aQe";
const LIVE_DATA: &str = r#"{"user.name":"jeremy","user.role":"admin"}"#;
/// Files in events/ that are not events.
const NOT_EVENTS: [&str; 1] = ["expected.json"];

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// events/expected.json: the fixture sessions and each event's outcome.
fn expected() -> Value {
    let text = std::fs::read_to_string(events_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/expected.json: {e}"))
}

/// Each event's expected outcome: an HTTP status, or "swept" for a GC event.
fn outcomes() -> BTreeMap<String, Value> {
    expected()["status"].as_object().expect("expected.json has a status map").clone().into_iter().collect()
}

fn event_files() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !NOT_EVENTS.iter().any(|n| p.ends_with(n)))
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
    let expected = outcomes();
    let files = event_files();
    for (name, _) in &files {
        assert!(expected.contains_key(name.as_str()), "events/{name} has no status in events/expected.json");
    }
    for name in expected.keys() {
        assert!(files.iter().any(|(f, _)| f == name), "events/expected.json names events/{name}, which is missing");
    }
}

/// A fresh table holding the fixture sessions of events/expected.json, as
/// `sessions seed-events` puts them.
async fn seeded_app(builder: dynamodb_sessions::ConfigBuilder) -> TestApp {
    let app = app(builder).await;
    for fixture in expected()["sessions"].as_array().expect("expected.json has a sessions list") {
        let id = fixture["id"].as_str().unwrap();
        let data = serde_json::to_string(&fixture["data"]).unwrap();
        seed(&app, id, &data, now() + 600, fixture["locked_by"].as_str()).await;
    }
    app
}

/// Whether the fixture session `id` still holds a lock.
async fn is_locked(app: &TestApp, id: &str) -> bool {
    let item = app
        .store()
        .client()
        .get_item()
        .table_name(&app.config().table_name)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S(format!("PHPSESSID_{id}")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.contains_key("lock")
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
    let expected = outcomes();
    for (name, event) in event_files().into_iter().filter(|(n, _)| n.starts_with("api-")) {
        let app = seeded_app(Config::builder()).await;
        let response = app.invoke(event).await;
        let status = response["statusCode"].as_u64().unwrap();
        assert_eq!(Some(status), expected[&name].as_u64(), "{name}: {response}");
        let body: Value = match response["body"].as_str() {
            Some(text) if !text.is_empty() => {
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: body not JSON: {e}"))
            }
            _ => Value::Null,
        };
        let headers = response_headers(&response);
        if status >= 400 {
            assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{name}: {body}");
        }
        if status == 201 {
            let cookie =
                response["cookies"][0].as_str().map(str::to_string).or_else(|| headers.get("set-cookie").cloned());
            assert!(cookie.unwrap_or_default().starts_with("PHPSESSID="), "{name}: {response}");
        }
        match name.as_str() {
            "api-unlock.json" | "api-cookie-unlock.json" => {
                assert!(!is_locked(&app, "Un1ockMeUn1ockMeUn1ockMeUn1ockMe").await, "{name} released the lock")
            }
            "api-replace-write-through.json" => {
                assert!(!is_locked(&app, "Wr1teThr0ughWr1teThr0ughWr1teThr").await, "{name} released the lock")
            }
            "api-replace-locked.json" => {
                assert!(headers.contains_key("retry-after"), "{name}: {response}");
                assert!(is_locked(&app, "L0ckedL0ckedL0ckedL0ckedL0cked01").await, "{name}: the holder keeps the lock");
            }
            "api-method-not-allowed.json" => assert!(headers.contains_key("allow"), "{name}: {response}"),
            "api-patch.json" => {
                assert_eq!(body["data"], serde_json::json!({"user.name": "jeremy", "cart": {"items": 2}}))
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn with_pessimistic_locking_the_read_event_locks_and_read_and_close_does_not() {
    let events: BTreeMap<_, _> = event_files().into_iter().collect();
    let builder = || Config::builder().locking_strategy(LockingStrategy::Pessimistic);
    let app = seeded_app(builder()).await;
    let read = app.invoke(events["api-read-and-close.json"].clone()).await;
    assert_eq!(read["statusCode"], 200);
    assert!(!response_headers(&read).contains_key("x-session-lock-token"));
    let locked = app.invoke(events["api-read.json"].clone()).await;
    assert_eq!(locked["statusCode"], 200);
    assert!(response_headers(&locked).contains_key("x-session-lock-token"), "{locked}");
}

/// Runs the GC handler on `event` against a table with one live, two expired
/// and one expired-but-locked session; only the two expired unlocked go.
async fn sweep_with(event: Value) {
    let app = app(Config::builder()).await;
    let config = app.config().clone();
    let expired = ["Ex1redEx1redEx1redEx1redEx1red01", "Ex1redEx1redEx1redEx1redEx1red02"];
    seed(&app, LIVE, LIVE_DATA, now() + 600, None).await;
    seed(&app, expired[0], "{}", now() - 60, None).await;
    seed(&app, expired[1], "{}", now() - 60, None).await;
    // Expired, but its holder is mid-request: the lease is live (to 2100).
    seed(&app, "L0ckedL0ckedL0ckedL0ckedL0cked01", "{}", now() - 60, Some("s0meb0dyE1sesT0kenXXXX.4102444800000.jS"))
        .await;

    let mut context = Context::default();
    context.request_id = "test-run".into();
    context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
    context.deadline = (now() as u64 + 60) * 1000;
    let (outcome, lines) = metrics::captured(session_gc::handle(app.store(), LambdaEvent::new(event, context))).await;
    let ScheduledSweep::Swept(report) = outcome.unwrap() else { panic!("another sweep ran") };
    assert!(report.finished());
    assert_eq!((report.deleted, report.skipped), (2, 1));
    // Its metrics line: what it did, and that it finished the table.
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(emf_problems(line), Vec::<String>::new(), "{line}");
    // The invocation and its trace, for the way from a metric to its logs and trace.
    assert_eq!(line["requestId"], "test-run");
    assert_eq!(line["traceId"], "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    let sweep_metrics = [
        ("SweepScanned", report.scanned as f64),
        ("SweepDeleted", 2.0),
        ("SweepSkipped", 1.0),
        ("SweepGone", 0.0),
        ("SweepLeasesEnded", 0.0),
        ("SweepReadUnits", report.read_units),
        ("SweepWriteUnits", report.write_units),
        ("SweepTransientFailures", 0.0),
        ("SweepDuration", report.duration_ms as f64),
        ("SweepFinished", 1.0),
        ("SweepFailed", 0.0),
    ];
    assert_eq!(emf_metric_names(line), sweep_metrics.map(|(name, _)| name));
    for (name, value) in sweep_metrics {
        assert_eq!(line[name].as_f64(), Some(value), "{name} in {line}");
    }
    assert!(report.scanned >= 4 && report.write_units > 0.0, "{report:?}");
    assert_eq!(line["Stopped"], "finished");
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([[]]), "totals only");
    let store = app.store();
    assert!(store.load(&LIVE.parse().unwrap()).await.is_ok());
    assert!(
        store.load(&"L0ckedL0ckedL0ckedL0ckedL0cked01".parse().unwrap()).await.is_err(),
        "expired is absent to readers"
    );
    let remaining = store.client().scan().table_name(&config.table_name).send().await.unwrap().count;
    assert_eq!(remaining, 3, "live + locked + the checkpoint item");
}

#[tokio::test]
async fn every_gc_event_sweeps_expired_unlocked_sessions_only() {
    let expected = outcomes();
    for (name, event) in event_files().into_iter().filter(|(n, _)| n.starts_with("gc-")) {
        assert_eq!(expected[&name], "swept", "{name}");
        sweep_with(event).await;
    }
}
