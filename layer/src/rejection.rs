//! What a request gets when its session fails it: a JSON error with the
//! status a client can act on. An app that wants its own answers matches on
//! [`SessionRejection`] in its handlers, and answers a failed write-back
//! with [`SessionLayer::on_failed_write_back`](crate::SessionLayer::on_failed_write_back).

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dynamodb_sessions::SessionError;
use serde_json::json;

/// Why the session could not be read, changed or stored.
#[derive(Debug, thiserror::Error)]
pub enum SessionRejection {
    /// The handler asked for a [`Session`](crate::Session) on a route without
    /// the [`SessionLayer`](crate::SessionLayer).
    #[error("no session layer on this route")]
    NoLayer,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] SessionError),
    /// A change to a session the request took read-only ([`ReadOnlySession`](crate::ReadOnlySession)).
    #[error("the session was taken read-only")]
    ReadOnly,
    /// A value did not convert to or from JSON.
    #[error("a session value does not convert: {0}")]
    Value(serde_json::Error),
}

impl SessionRejection {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use SessionError::*;
        match self {
            SessionRejection::NoLayer | SessionRejection::ReadOnly => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            SessionRejection::Value(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            SessionRejection::Store(err) => match err {
                Throttled { .. } | Unavailable { .. } | Conflict => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                Locked => (StatusCode::LOCKED, "locked"),
                UnreadableData { .. } => (StatusCode::CONFLICT, "unreadable_data"),
                Unrepresentable(_) => (StatusCode::CONFLICT, "unrepresentable"),
                NotFound => (StatusCode::CONFLICT, "session_gone"),
                TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "session failed");
        }
        // Never session data: a store error's message names no value.
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_string(),
            _ => self.to_string(),
        };
        let mut response = (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response();
        if matches!(status, StatusCode::LOCKED | StatusCode::SERVICE_UNAVAILABLE) {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
