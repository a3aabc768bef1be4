//! Every refusal the API answers, as one type: a store error (its status and
//! message shared with the session layer, `dynamodb_sessions_axum::http_error`),
//! and the request rejections (body, headers, routing).
//! The body is always `{"error": {"code", "message"}}` (with `path` for
//! `php_object_refused`).

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dynamodb_sessions::{Refusal, SessionError};
use dynamodb_sessions_axum::http_error::{error_response, store_error_message, store_error_status, UnavailableCause};
use serde_json::json;

use crate::request::{current_request_id, LOCK_TOKEN_HEADER};

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What the store refused, or failed at.
    #[error(transparent)]
    Store(#[from] SessionError),
    /// `If-Match` that no response of this API could have given.
    #[error("If-Match is not an ETag of this API")]
    InvalidIfMatch,
    /// A lock token header that is not one.
    #[error("malformed lock token")]
    InvalidLockToken,
    /// Releasing a lock needs the holder's token.
    #[error("send the {LOCK_TOKEN_HEADER} header")]
    MissingLockToken,
    /// A `/session` route without the session cookie.
    #[error("no {cookie} cookie")]
    NoCookie {
        /// The cookie's name.
        cookie: String,
    },
    /// PUT and PATCH need the data.
    #[error("send the session data as a JSON object")]
    MissingBody,
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    BadJson(String),
    /// The body is JSON, but not an object.
    #[error("session data must be a JSON object")]
    NotAnObject,
    /// The body is not UTF-8.
    #[error("the body is not UTF-8")]
    InvalidUtf8,
    /// API Gateway flagged the body as base64, and it is not.
    #[error("the body is flagged base64 but is not")]
    InvalidBase64,
    /// The body is larger than any session data could be.
    #[error("the body is over {limit} bytes")]
    BodyTooLarge {
        /// The largest body read, in bytes.
        limit: usize,
    },
    /// The body could not be read (the connection failed).
    #[error("the body could not be read")]
    UnreadableBody,
    /// A body with a content type other than JSON.
    #[error("send application/json")]
    UnsupportedMediaType,
    /// A query string the route cannot read.
    #[error("bad query string: {0}")]
    BadQuery(String),
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    /// The route exists; the method does not (the `Allow` header lists those that do).
    #[error("method not allowed on this route; see the Allow header")]
    MethodNotAllowed,
}

impl ApiError {
    /// The status and the error code of the JSON body.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Store(err) => store_error_status(err),
            ApiError::InvalidIfMatch => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            ApiError::InvalidLockToken => (StatusCode::BAD_REQUEST, "invalid_lock_token"),
            ApiError::MissingLockToken => (StatusCode::BAD_REQUEST, "missing_lock_token"),
            ApiError::NoCookie { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MissingBody => (StatusCode::BAD_REQUEST, "missing_body"),
            ApiError::BadJson(_) => (StatusCode::BAD_REQUEST, "bad_json"),
            ApiError::NotAnObject => (StatusCode::BAD_REQUEST, "not_an_object"),
            ApiError::InvalidUtf8 => (StatusCode::BAD_REQUEST, "invalid_utf8"),
            ApiError::InvalidBase64 => (StatusCode::BAD_REQUEST, "invalid_base64"),
            ApiError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnreadableBody => (StatusCode::BAD_REQUEST, "unreadable_body"),
            ApiError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "bad_query"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        }
    }

    /// The message a client reads: never internals, never session data.
    fn message(&self) -> Cow<'static, str> {
        match self {
            // The client gets the request id to quote; the log has the rest.
            ApiError::Store(SessionError::Config(_) | SessionError::DynamoDb { .. }) => {
                format!("internal error (request id {})", current_request_id().unwrap_or_default()).into()
            }
            ApiError::Store(err) => store_error_message(err),
            other => other.to_string().into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The whole error goes to the log; the client gets the request id.
            tracing::error!(error = %self, "internal error");
        }
        let mut error = json!({ "code": code, "message": self.message() });
        if let ApiError::Store(SessionError::Refused(Refusal::PhpObject { path })) = &self {
            // Where in the body, for the client to fix its request.
            error["path"] = path.as_str().into();
        }
        let mut response = error_response(status, error);
        if let ApiError::Store(err) = &self {
            // For the request's metrics line.
            if let Some(cause) = UnavailableCause::of(err) {
                response.extensions_mut().insert(cause);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamodb_sessions::ConfigError;
    use serde_json::Value;

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn every_store_error_maps_to_its_status() {
        let cases: Vec<(SessionError, u16, &str)> = vec![
            (SessionError::NotFound, 404, "not_found"),
            (SessionError::Locked, 423, "locked"),
            (SessionError::LockLost, 409, "lock_lost"),
            (SessionError::Conflict, 503, "busy"),
            (SessionError::PreconditionFailed, 412, "precondition_failed"),
            (SessionError::TooLarge { size: 2, limit: 1 }, 413, "too_large"),
            (SessionError::InvalidId, 400, "invalid_id"),
            (SessionError::InvalidToken, 400, "invalid_lock_token"),
            (SessionError::UnreadableData { reason: "truncated string at byte 7".into() }, 409, "unreadable_data"),
            (
                SessionError::Unrepresentable(dynamodb_sessions::codec::CodecError::PipeInName {
                    at: dynamodb_sessions::codec::Position::Entry("/0".into()),
                }),
                409,
                "unrepresentable",
            ),
            (SessionError::Throttled { operation: "GetItem" }, 503, "unavailable"),
            (
                SessionError::Unavailable { operation: "GetItem", code: None, source: "timeout".into() },
                503,
                "unavailable",
            ),
            (
                SessionError::Unavailable {
                    operation: "UpdateItem",
                    code: Some("TransactionConflictException".into()),
                    source: "conflict".into(),
                },
                503,
                "unavailable",
            ),
            (
                SessionError::DynamoDb {
                    operation: "GetItem",
                    code: Some("ValidationException".into()),
                    source: "bug".into(),
                },
                500,
                "internal",
            ),
            (
                SessionError::Config(ConfigError { variable: "X", value: "y".into(), reason: "z".into() }),
                500,
                "internal",
            ),
        ];
        for (err, status, code) in cases {
            let response =
                crate::request::with_request_id("req-1", async { ApiError::from(err).into_response() }).await;
            assert_eq!(response.status().as_u16(), status);
            let retry = response.headers().get(axum::http::header::RETRY_AFTER).is_some();
            assert_eq!(retry, status == 423 || status == 503, "Retry-After on {status}");
            let body = body(response).await;
            assert_eq!(body["error"]["code"], code);
            let message = body["error"]["message"].as_str().unwrap();
            if status == 500 {
                assert!(
                    message.contains("req-1") && !message.contains("ValidationException") && !message.contains("bug"),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn a_503_carries_its_cause_for_the_metrics() {
        let cases: Vec<(SessionError, Option<&str>)> = vec![
            (SessionError::Throttled { operation: "GetItem" }, Some("throttled")),
            (SessionError::Conflict, Some("busy")),
            (
                SessionError::Unavailable {
                    operation: "TransactWriteItems",
                    code: Some("TransactionConflictException".into()),
                    source: "conflict".into(),
                },
                Some("busy"),
            ),
            (
                SessionError::Unavailable { operation: "GetItem", code: None, source: "timeout".into() },
                Some("no_answer"),
            ),
            (
                SessionError::Unavailable {
                    operation: "UpdateItem",
                    code: Some("InternalServerError".into()),
                    source: "5xx".into(),
                },
                Some("server_error"),
            ),
            (SessionError::Locked, None),
            (SessionError::NotFound, None),
        ];
        for (err, cause) in cases {
            let response = ApiError::from(err).into_response();
            assert_eq!(response.status() == StatusCode::SERVICE_UNAVAILABLE, cause.is_some());
            let carried = response.extensions().get::<UnavailableCause>().map(|UnavailableCause(cause)| *cause);
            assert_eq!(carried, cause);
            assert!(cause.is_none_or(|cause| UnavailableCause::ALL.contains(&cause)), "{cause:?} is listed");
        }
    }
}
