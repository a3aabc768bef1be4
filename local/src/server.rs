//! The local server: the same handler behind a plain HTTP listener.

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::Request as AxumRequest;
use axum::response::Response as AxumResponse;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};

use session_api::{handle, App};

/// Largest request body read; Lambda's own payload limit is 6 MB.
const MAX_BODY: usize = 6 * 1024 * 1024;

pub async fn serve(app: App, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let router = axum::Router::new().fallback(move |request: AxumRequest| {
        let app = app.clone();
        async move { serve_one(&app, request).await }
    });
    axum::serve(listener, router).await
}

async fn serve_one(app: &App, request: AxumRequest) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return AxumResponse::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .header("content-type", "application/json")
                .body(AxumBody::from(r#"{"error":{"code":"too_large","message":"request body too large"}}"#))
                .expect("valid response")
        }
    };
    let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes.to_vec()) };
    let response = handle(app, Request::from_parts(parts, body)).await;
    to_axum(response)
}

fn to_axum(response: Response<Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    AxumResponse::from_parts(parts, body)
}
