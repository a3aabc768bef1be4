//! CORS on `sessions serve` (`served_router`): as API Gateway answers it with
//! the template's `CorsConfiguration` (drift.rs keeps the rules equal), and
//! none at all unless origins are set. The browser stage
//! (`scripts/browser.py`) drives the same from headless Chromium.

mod common;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use common::*;
use session_api::cors::CorsSettings;
use session_api::{ApiState, HttpSettings};
use sessions_local::serve::served_router;
use sessions_local::simulator::SimulatorConfig;
use tower::ServiceExt;

const FRONT_END: &str = "http://localhost:5173";

/// `sessions serve`'s router with these CORS settings, on a fresh table (kept by the service).
async fn served(cors: &CorsSettings) -> (Service, Router) {
    let service = Service::start(config(&[]), SimulatorConfig::default()).await;
    let app = served_router(ApiState::new(service.store.clone(), HttpSettings::default()).unwrap(), cors);
    (service, app)
}

async fn answer(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|value| value.to_str().unwrap())
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/session")
        .header("origin", origin)
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "content-type,x-session-lock-token")
        .body(Body::empty())
        .unwrap()
}

fn settings(origins: &str, credentials: &str) -> CorsSettings {
    let env = [("CORS_ALLOWED_ORIGINS", origins), ("CORS_ALLOW_CREDENTIALS", credentials)];
    CorsSettings::from_lookup(|name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_origin_gets_api_gateways_cors_with_credentials() {
    let (_service, app) = served(&settings(FRONT_END, "true")).await;
    let answered = answer(&app, preflight(FRONT_END)).await;
    assert!(answered.status().is_success(), "{}", answered.status());
    assert_eq!(header(&answered, "access-control-allow-origin"), Some(FRONT_END));
    assert_eq!(header(&answered, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&answered, "access-control-allow-methods"), Some("GET,POST,PUT,PATCH,DELETE"));
    assert_eq!(
        header(&answered, "access-control-allow-headers"),
        Some("authorization,content-type,if-match,x-session-lock-token")
    );
    assert_eq!(header(&answered, "access-control-max-age"), Some("600"));

    // The API's own answers carry it too, with the headers scripts may read.
    let create = Request::post("/sessions")
        .header("origin", FRONT_END)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let created = answer(&app, create).await;
    assert_eq!(created.status(), 201);
    assert_eq!(header(&created, "access-control-allow-origin"), Some(FRONT_END));
    assert_eq!(
        header(&created, "access-control-expose-headers"),
        Some("etag,location,retry-after,x-session-lock-token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_not_listed_and_the_default_get_no_cors() {
    let (_service, app) = served(&settings(FRONT_END, "true")).await;
    let answered = answer(&app, preflight("http://localhost:8081")).await;
    assert_eq!(header(&answered, "access-control-allow-origin"), None);
    // Off by default: the API answers OPTIONS itself (204 with Allow), no CORS.
    let (_service, app) = served(&CorsSettings::default()).await;
    let answered = answer(&app, preflight(FRONT_END)).await;
    assert_eq!(answered.status(), 204);
    assert_eq!(header(&answered, "access-control-allow-origin"), None);
    assert!(answered.headers().get("allow").is_some());
}
