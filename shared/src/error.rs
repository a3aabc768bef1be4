//! The library's one error type. Callers match on the variant; none of them
//! needs to read a message.

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
    #[error("DynamoDB {operation} failed: {source}")]
    DynamoDb {
        operation: &'static str,
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
    pub(crate) fn dynamo<E, R>(operation: &'static str, err: SdkError<E, R>) -> SessionError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        if err.code().is_some_and(|code| THROTTLING_CODES.contains(&code)) {
            return SessionError::Throttled { operation };
        }
        SessionError::DynamoDb { operation, source: Box::new(err) }
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, SessionError::Throttled { .. })
    }
}
