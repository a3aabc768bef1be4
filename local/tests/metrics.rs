//! The metrics line of a request DynamoDB throttles (the capacity and fault
//! simulator's `throttle` fault): every attempt the SDK made is counted as a
//! throttle, and the answer as a 503.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use dynamodb_sessions::emulator::fixtures::emf_problems;
use dynamodb_sessions::metrics;
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
    let value = |name: &str| line[name].as_f64().unwrap_or_else(|| panic!("{name} in {line}"));
    assert_eq!((value("Unavailable"), value("ServerErrors"), value("Requests")), (1.0, 1.0, 1.0));
    // Each PutItem the SDK sent was throttled, and it tried more than once.
    let throttled = service.simulator.stats().faults_of("throttle");
    assert!(value("DynamoDbCalls") > 1.0, "{line}");
    assert_eq!(value("DynamoDbThrottles"), value("DynamoDbCalls"), "{line}");
    assert_eq!(value("DynamoDbThrottles"), throttled as f64, "the simulator's count");
}
