//! The library's one error type. Callers match on the variant; none of them
//! needs to read a message.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::config::ConfigError;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session, or it has expired (whether or not TTL removed it yet).
    #[error("session not found")]
    NotFound,
    /// Another request holds the session's lock (past `max_lock_wait_time`,
    /// or the caller's token is not the holder's).
    #[error("session is locked by another request")]
    Locked,
    /// The session changed since the version the caller read.
    #[error("session was changed by another request")]
    Conflict,
    #[error("session data is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed session id")]
    InvalidId,
    /// The stored data is not a JSON object (written by another serializer).
    #[error("stored session data is not a JSON object")]
    UnreadableData,
    /// DynamoDB kept throttling after the SDK's retries.
    #[error("DynamoDB is throttling {operation}")]
    Throttled { operation: &'static str },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// DynamoDB could not be reached or answered with a server error, after
    /// the SDK's retries: worth retrying later.
    #[error("DynamoDB {operation} is unavailable")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// Any other DynamoDB failure. `code` is the service's error code, which
    /// (unlike the message) never quotes request values, so it is safe to log.
    #[error("DynamoDB {operation} failed ({})", code.as_deref().unwrap_or("no error code"))]
    DynamoDb {
        operation: &'static str,
        code: Option<String>,
        #[source]
        source: BoxError,
    },
}

const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
];

impl SessionError {
    /// Maps an SDK failure that no caller handles specially.
    pub(crate) fn dynamo<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> SessionError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        if code.as_deref().is_some_and(|code| THROTTLING_CODES.contains(&code)) {
            return SessionError::Throttled { operation };
        }
        let transient = match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(se) => se.raw().status().is_server_error(),
            _ => false,
        };
        if transient {
            return SessionError::Unavailable { operation, source: Box::new(err) };
        }
        SessionError::DynamoDb { operation, code, source: Box::new(err) }
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, SessionError::Throttled { .. })
    }
}
