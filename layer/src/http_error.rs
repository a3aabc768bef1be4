//! The JSON error a client gets, one shape and one mapping for the HTTP API
//! and the session layer: `{"error": {"code", "message"}}` with the status a
//! client can act on, and `Retry-After` where trying again helps.

use std::borrow::Cow;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dynamodb_sessions::{Refusal, SessionError};
use serde_json::{json, Value};

/// The status and error code of what the store refused, or failed at.
pub fn store_error_status(err: &SessionError) -> (StatusCode, &'static str) {
    use SessionError::*;
    match err {
        NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Locked => (StatusCode::LOCKED, "locked"),
        LockLost => (StatusCode::CONFLICT, "lock_lost"),
        // Other writers kept getting in first until max_lock_wait_time:
        // busy, not a conflict the client could resolve.
        Conflict => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        InvalidId => (StatusCode::BAD_REQUEST, "invalid_id"),
        InvalidToken => (StatusCode::BAD_REQUEST, "invalid_lock_token"),
        UnreadableData { .. } => (StatusCode::CONFLICT, "unreadable_data"),
        Unrepresentable(_) => (StatusCode::CONFLICT, "unrepresentable"),
        Refused(Refusal::PhpObject { .. }) => (StatusCode::BAD_REQUEST, "php_object_refused"),
        Refused(Refusal::ProtectedKey { .. }) => (StatusCode::FORBIDDEN, "protected_key"),
        Throttled { .. } | Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Config(_) | DynamoDb { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// Why a 503 was answered, as the metrics' `Cause` dimension: an extension
/// on the error response (the client reads only `unavailable` or `busy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnavailableCause(pub &'static str);

impl UnavailableCause {
    /// Every cause there is (each is one metric, billed monthly).
    pub const ALL: [&'static str; 4] = ["throttled", "busy", "no_answer", "server_error"];

    /// The cause of a store error answered 503: DynamoDB throttled; other
    /// writers or transactions kept the item busy; no answer in time (or no
    /// connection); DynamoDB answered with a server error. None otherwise.
    pub fn of(err: &SessionError) -> Option<UnavailableCause> {
        let cause = match err {
            SessionError::Throttled { .. } => "throttled",
            SessionError::Conflict => "busy",
            SessionError::Unavailable { code: Some(code), .. } if code.starts_with("Transaction") => "busy",
            SessionError::Unavailable { code: None, .. } => "no_answer",
            SessionError::Unavailable { code: Some(_), .. } => "server_error",
            _ => return None,
        };
        Some(UnavailableCause(cause))
    }
}

/// What a client reads about a store error: never internals, never session data.
pub fn store_error_message(err: &SessionError) -> Cow<'static, str> {
    use SessionError::*;
    match err {
        NotFound => "no such session, or it has expired".into(),
        Locked => "the session is locked by another request".into(),
        LockLost => "the lock token no longer holds the session's lock; nothing was written".into(),
        Conflict => "the session is too busy: other requests kept changing it; retry shortly".into(),
        PreconditionFailed => "the session data changed since that ETag; read it again".into(),
        TooLarge { size, limit } => format!("session data is {size} bytes; the limit is {limit}").into(),
        InvalidId => "malformed session id".into(),
        InvalidToken => "malformed lock token".into(),
        UnreadableData { reason } => {
            format!("the stored session data cannot be read and was left unchanged: {reason}").into()
        }
        Unrepresentable(reason) => {
            format!("the data cannot be stored in the session's format; nothing was written: {reason}").into()
        }
        Refused(refusal) => format!("{refusal}; nothing was written").into(),
        Throttled { .. } | Unavailable { .. } => "the session table is busy; retry shortly".into(),
        Config(_) | DynamoDb { .. } => "internal error".into(),
    }
}

/// The response `{"error": error}` with `status`, and `Retry-After: 1` on
/// 423 and 503 (a lock or a busy table: trying again helps).
pub fn error_response(status: StatusCode, error: Value) -> Response {
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    if matches!(status, StatusCode::LOCKED | StatusCode::SERVICE_UNAVAILABLE) {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
