//! What a request gets when its session fails it: a JSON error with the
//! status a client can act on (the HTTP API's, [`crate::http_error`]). An app
//! that wants its own answers matches on [`SessionRejection`] in its
//! handlers, and answers a failed write-back with
//! [`SessionLayer::on_failed_write_back`](crate::SessionLayer::on_failed_write_back).

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dynamodb_sessions::SessionError;
use serde_json::json;

use crate::http_error::{error_response, store_error_message, store_error_status};

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
    /// The status and the error code of the JSON body.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            // The app's own mistakes, not the client's.
            SessionRejection::NoLayer | SessionRejection::ReadOnly | SessionRejection::Value(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            // Read at the start of the request, gone by its write-back.
            SessionRejection::Store(SessionError::NotFound) => (StatusCode::CONFLICT, "session_gone"),
            SessionRejection::Store(err) => store_error_status(err),
        }
    }

    fn message(&self) -> Cow<'static, str> {
        match self {
            SessionRejection::Store(SessionError::NotFound) => "the session ended during the request".into(),
            SessionRejection::Store(err) => store_error_message(err),
            _ => "internal error".into(),
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "session failed");
        }
        error_response(status, json!({ "code": code, "message": self.message() }))
    }
}
