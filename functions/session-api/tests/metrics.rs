//! The metrics lines (CloudWatch Embedded Metric Format) the API emits: one
//! per request, valid by EMF's specification, with the request's route,
//! status, DynamoDB calls and lock waits, and nothing of the session.

mod common;

use std::time::Duration;

use common::*;
use dynamodb_sessions::emulator::fixtures::{emf_metric_names, emf_problems};
use dynamodb_sessions::{metrics, Config, LockingStrategy};
use serde_json::{json, Value};

const JSON: (&str, &str) = ("content-type", "application/json");

/// Every metric of a request's line, in order.
const REQUEST_METRICS: [&str; 12] = [
    "Requests",
    "Latency",
    "Unavailable",
    "ServerErrors",
    "ClientErrors",
    "Locked",
    "DynamoDbCalls",
    "DynamoDbThrottles",
    "DynamoDbReadUnits",
    "DynamoDbWriteUnits",
    "LockWaits",
    "LockWaitTime",
];

/// The one line `lines` holds, checked against EMF's rules and the request line's shape.
fn request_line(lines: &[Value]) -> &Value {
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    let line = &lines[0];
    assert_eq!(emf_problems(line), Vec::<String>::new(), "{line}");
    assert_eq!(emf_metric_names(line), REQUEST_METRICS, "{line}");
    let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert!(directives.iter().all(|directive| directive["Namespace"] == metrics::NAMESPACE));
    // Requests per route and status class, latency per route, 503s per
    // cause, each also in total; the rest in total only (few metrics: each is billed).
    assert_eq!(directives[0]["Dimensions"], json!([["Route", "StatusClass"], []]));
    assert_eq!(directives[1]["Dimensions"], json!([["Route"], []]));
    let unavailable = if line["Status"] == 503 { json!([["Cause"], []]) } else { json!([[]]) };
    assert_eq!(directives[2]["Dimensions"], unavailable);
    assert_eq!(directives[3]["Dimensions"], json!([[]]));
    assert_eq!(line["Cause"].is_string(), line["Status"] == 503, "a Cause on 503s only: {line}");
    line
}

fn assert_values(line: &Value, expected: &[(&str, f64)]) {
    for (name, value) in expected {
        assert_eq!(line[*name].as_f64(), Some(*value), "{name} in {line}");
    }
}

#[tokio::test]
async fn a_request_emits_one_line_with_its_route_status_and_calls() {
    let app = app(Config::builder()).await;
    let (created, lines) = metrics::captured(app.call("POST", "/sessions", &[JSON], Some(r#"{"a":1}"#))).await;
    assert_eq!(created.status, 201);
    let line = request_line(&lines);
    assert_eq!((&line["Route"], &line["Status"]), (&json!("POST /sessions"), &json!(201)));
    assert_eq!(line["StatusClass"], "2xx");
    // The request's id (made up off Lambda), and no trace: X-Ray did not trace it.
    assert!(line["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{line}");
    assert!(line.get("traceId").is_none(), "{line}");
    assert_values(
        line,
        &[
            ("Requests", 1.0),
            ("ServerErrors", 0.0),
            ("ClientErrors", 0.0),
            ("Locked", 0.0),
            ("Unavailable", 0.0),
            ("DynamoDbCalls", 1.0),
            ("DynamoDbThrottles", 0.0),
            // A small item: one write unit, as DynamoDB reported it.
            ("DynamoDbReadUnits", 0.0),
            ("DynamoDbWriteUnits", 1.0),
            ("LockWaits", 0.0),
            ("LockWaitTime", 0.0),
        ],
    );
    assert!(line["Latency"].as_f64().unwrap() > 0.0);
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert!(!line.to_string().contains(&id), "no session id in a metrics line: {line}");

    // The route's template, never its path; a client's made-up path or method
    // is one value, whatever it sends.
    let (_, lines) = metrics::captured(app.call("GET", &format!("/sessions/{id}"), &[], None)).await;
    let line = request_line(&lines);
    assert_eq!(line["Route"], "GET /sessions/{id}");
    // One strongly consistent read of a small item.
    assert_values(line, &[("DynamoDbCalls", 1.0), ("DynamoDbReadUnits", 1.0), ("DynamoDbWriteUnits", 0.0)]);
    let (_, lines) = metrics::captured(app.call("GET", &format!("/nowhere/{id}"), &[], None)).await;
    let line = request_line(&lines);
    assert_eq!((&line["Route"], &line["StatusClass"]), (&json!("unmatched"), &json!("4xx")));
    for (method, uri) in [("BREW", "/sessions"), ("GET", "/sessions"), ("OPTIONS", "/sessions")] {
        let (_, lines) = metrics::captured(app.call(method, uri, &[], None)).await;
        assert_eq!(request_line(&lines)["Route"], "other /sessions", "{method} {uri}");
    }
}

#[tokio::test]
async fn a_request_that_waits_for_a_lock_and_gives_up_emits_its_waits_and_423() {
    let builder =
        Config::builder().locking_strategy(LockingStrategy::Pessimistic).max_lock_wait_time(Duration::from_millis(300));
    let app = app(builder).await;
    let id = app.call("POST", "/sessions", &[JSON], Some("{}")).await.json()["id"].as_str().unwrap().to_string();
    let holder = app.call("GET", &format!("/sessions/{id}"), &[], None).await;
    assert!(holder.header("x-session-lock-token").is_some());

    let (waiter, lines) = metrics::captured(app.call("GET", &format!("/sessions/{id}"), &[], None)).await;
    assert_eq!(waiter.status, 423);
    let line = request_line(&lines);
    assert_values(line, &[("Locked", 1.0), ("ClientErrors", 1.0), ("ServerErrors", 0.0), ("Unavailable", 0.0)]);
    assert!(line["LockWaits"].as_f64().unwrap() >= 1.0, "{line}");
    let waited = line["LockWaitTime"].as_f64().unwrap();
    assert!(waited > 0.0 && waited <= 300.0, "waited within MAX_LOCK_WAIT_TIME: {line}");
}

#[tokio::test]
async fn a_request_line_names_the_invocation_and_its_trace() {
    use session_api::request::{RequestId, TraceId};
    let app = app(Config::builder()).await;
    // As the Lambda front marks a request of a traced invocation.
    let mut traced = request("POST", "/sessions", &[JSON], Some("{}"));
    traced.extensions_mut().insert(RequestId("invocation-1".into()));
    traced.extensions_mut().insert(TraceId("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into()));
    let (created, lines) = metrics::captured(app.send(traced)).await;
    assert_eq!(created.status, 201);
    let line = request_line(&lines);
    assert_eq!(line["requestId"], "invocation-1");
    assert_eq!(line["traceId"], "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
}
