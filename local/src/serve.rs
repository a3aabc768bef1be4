//! What `sessions serve` serves around the API's router: its OpenAPI
//! document, and CORS as API Gateway answers it on AWS (the same rules,
//! `session_api::cors`, from the same options), so a front end developed
//! against the local server behaves the same once deployed.

use axum::http::{HeaderName, HeaderValue, Method};
use axum::Router;
use session_api::cors::{self, AllowedOrigins, CorsSettings};
use session_api::{router, ApiState};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The API's router with `/openapi.json` (naming the configured cookie) and,
/// when origins are set, CORS: preflights answered before the API, and the
/// CORS headers on its answers to allowed origins.
pub fn served_router(state: ApiState, cors: &CorsSettings) -> Router {
    let contract = axum::Json(session_api::openapi::document(state.cookie().name()));
    let app = router(state)
        .route(session_api::openapi::PATH, axum::routing::get(move || std::future::ready(contract.clone())));
    match cors_layer(cors) {
        Some(layer) => app.layer(layer),
        None => app,
    }
}

/// API Gateway's `CorsConfiguration` for these settings, as a tower-http
/// layer; None when no origin is allowed (no CORS at all, as on AWS).
pub fn cors_layer(settings: &CorsSettings) -> Option<CorsLayer> {
    let origins = match &settings.cors_allowed_origins {
        AllowedOrigins::None => return None,
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::Listed(origins) => AllowOrigin::list(
            origins.iter().map(|origin| HeaderValue::from_str(origin).expect("checked by CorsSettings")),
        ),
    };
    let methods = cors::ALLOW_METHODS.map(|method| Method::from_bytes(method.as_bytes()).expect("a method"));
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(cors::ALLOW_HEADERS.map(HeaderName::from_static))
            .expose_headers(cors::EXPOSE_HEADERS.map(HeaderName::from_static))
            .allow_credentials(settings.cors_allow_credentials)
            .max_age(cors::MAX_AGE),
    )
}
