//! The metrics lines of requests under the capacity and fault simulator: a
//! request DynamoDB throttles (the `throttle` fault) counts every attempt
//! the SDK made as a throttle and its answer as a 503 caused by throttling;
//! the capacity the lines report is what the simulator charged the table.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use dynamodb_sessions::emulator::fixtures::emf_problems;
use dynamodb_sessions::metrics;
use serde_json::{json, Value};
use session_api::{router, ApiState, HttpSettings};
use sessions_local::simulator::SimulatorConfig;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_request_emits_its_throttles_and_its_503() {
    let service = Service::start(config(&[]), SimulatorConfig::default()).await;
    let app = router(ApiState::new(service.store.clone(), HttpSettings::default()).unwrap());
    service.simulator.set_faults("throttle=1:op=PutItem,seed=1".parse().unwrap()).unwrap();

    let request = Request::post("/sessions").header("content-type", "application/json").body(Body::from("{}")).unwrap();
    let (response, lines) = metrics::captured(app.oneshot(request)).await;
    assert_eq!(response.unwrap().status(), 503);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(emf_problems(line), Vec::<String>::new(), "{line}");
    assert_eq!(line["Route"], "POST /sessions");
    assert_eq!((&line["StatusClass"], &line["Cause"]), (&json!("5xx"), &json!("throttled")));
    let value = |name: &str| line[name].as_f64().unwrap_or_else(|| panic!("{name} in {line}"));
    assert_eq!((value("Unavailable"), value("ServerErrors"), value("Requests")), (1.0, 1.0, 1.0));
    // Each PutItem the SDK sent was throttled, and it tried more than once.
    let throttled = service.simulator.stats().faults_of("throttle");
    assert!(value("DynamoDbCalls") > 1.0, "{line}");
    assert_eq!(value("DynamoDbThrottles"), value("DynamoDbCalls"), "{line}");
    assert_eq!(value("DynamoDbThrottles"), throttled as f64, "the simulator's count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_request_lines_report_is_what_the_table_was_charged() {
    let service = Service::start(config(&[]), SimulatorConfig::default()).await;
    let app = router(ApiState::new(service.store.clone(), HttpSettings::default()).unwrap());
    let table = service.store.config().table_name.clone();
    let call = |method: &str, uri: String, body: Option<String>| {
        let request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
        let request = request.body(body.map_or_else(Body::empty, Body::from)).unwrap();
        metrics::captured(app.clone().oneshot(request))
    };
    let units = |lines: &[Value]| {
        assert_eq!(lines.len(), 1, "{lines:?}");
        (lines[0]["DynamoDbReadUnits"].as_f64().unwrap(), lines[0]["DynamoDbWriteUnits"].as_f64().unwrap())
    };

    let before = service.simulator.stats().table(&table);
    // About 3 KB of data: a write costs more than one unit.
    let data = format!(r#"{{"text":"{}"}}"#, "x".repeat(3000));
    let (created, lines) = call("POST", "/sessions".into(), Some(data.clone())).await;
    let created = created.unwrap();
    assert_eq!(created.status(), 201);
    let id = created.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_string();
    let mut reported = vec![units(&lines)];
    for (method, uri, body) in [
        ("GET", format!("/sessions/{id}"), None),
        ("PATCH", format!("/sessions/{id}"), Some(r#"{"n":1}"#.to_string())),
        ("POST", format!("/sessions/{id}/regenerate"), None),
    ] {
        let (response, lines) = call(method, uri, body).await;
        assert!(response.unwrap().status().is_success(), "{method}");
        reported.push(units(&lines));
    }
    let after = service.simulator.stats().table(&table);
    let (read, write) = reported.iter().fold((0.0, 0.0), |(r, w), (read, write)| (r + read, w + write));
    assert!(reported[0].0 == 0.0 && reported[0].1 >= 3.0, "a 3 KB PutItem: {reported:?}");
    assert!(reported[1].0 > 0.0 && reported[1].1 == 0.0, "a read: {reported:?}");
    assert_eq!(read, after.read_units - before.read_units, "read units: {reported:?}");
    assert_eq!(write, after.write_units - before.write_units, "write units: {reported:?}");
}
