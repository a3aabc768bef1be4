//! The library's one error type. Callers match on the variant; none of them
//! needs to read a message, and no message quotes session data.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::CancellationReason;

use crate::codec::CodecError;
use crate::config::ConfigError;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything an operation of the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session, or it has expired (whether or not TTL removed it yet).
    #[error("session not found")]
    NotFound,
    /// Another request holds the session's lock past `max_lock_wait_time`.
    #[error("session is locked by another request")]
    Locked,
    /// The caller's lock token no longer holds the lock: its lease ran out and
    /// another request took it, or a PHP write released it. Reading again
    /// cannot help; nothing was written.
    #[error("the lock token no longer holds the session's lock")]
    LockLost,
    /// The session kept changing under the caller until `max_lock_wait_time`.
    #[error("session was changed by another request")]
    Conflict,
    /// The session's data changed since the entity tag the caller sent.
    #[error("session data changed since the given entity tag")]
    PreconditionFailed,
    /// The serialized data is over `max_data_size`.
    #[error("session data is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Serialized size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Not a session id this store or PHP would mint.
    #[error("malformed session id")]
    InvalidId,
    /// Not a lock token this store gave out.
    #[error("malformed lock token")]
    InvalidToken,
    /// The stored data is in no format this store reads, or is damaged; it
    /// was left as it is.
    #[error("stored session data cannot be read: {reason}")]
    UnreadableData {
        /// What is wrong, without quoting the data.
        reason: String,
    },
    /// The data cannot be stored in the session's format (e.g. a key PHP's
    /// `php` serializer cannot hold); nothing was written.
    #[error("session data cannot be stored in the session's format: {0}")]
    Unrepresentable(#[source] CodecError),
    /// The write's [`WritePolicy`](crate::WritePolicy) refused the data; nothing was written.
    #[error(transparent)]
    Refused(#[from] crate::policy::Refusal),
    /// DynamoDB kept throttling after the SDK's retries.
    #[error("DynamoDB is throttling {operation}")]
    Throttled {
        /// The DynamoDB operation.
        operation: &'static str,
    },
    /// An option is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// DynamoDB could not be reached, timed out, answered with a server
    /// error or a transaction conflict, after the SDK's retries: worth
    /// retrying later.
    #[error("DynamoDB {operation} is unavailable ({})", code.as_deref().unwrap_or("no response"))]
    Unavailable {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The service's error code, when it answered.
        code: Option<String>,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
    /// Any other DynamoDB failure: a bug or a misconfigured table. `code` is
    /// the service's error code, which (unlike the message) never quotes
    /// request values, so it is safe to log.
    #[error("DynamoDB {operation} failed ({})", code.as_deref().unwrap_or("no error code"))]
    DynamoDb {
        /// The DynamoDB operation.
        operation: &'static str,
        /// The service's error code.
        code: Option<String>,
        /// The SDK's error.
        #[source]
        source: BoxError,
    },
}

/// Error codes (also transaction cancellation reasons) that mean "too much
/// traffic for the table's capacity".
pub(crate) const THROTTLING_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ProvisionedThroughputExceeded",
    "ThrottlingException",
    "ThrottlingError",
    "RequestLimitExceeded",
    "LimitExceededException",
];

/// Error codes that mean "retry shortly": another transaction or request
/// holds the item, or the service had a moment.
const TRANSIENT_CODES: &[&str] = &[
    "TransactionConflictException",
    "TransactionConflict",
    "TransactionInProgressException",
    "InternalServerError",
    "ServiceUnavailable",
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
            SdkError::ServiceError(se) => {
                se.raw().status().is_server_error() || code.as_deref().is_some_and(|c| TRANSIENT_CODES.contains(&c))
            }
            _ => false,
        };
        if transient {
            return SessionError::Unavailable { operation, code, source: Box::new(err) };
        }
        SessionError::DynamoDb { operation, code, source: Box::new(err) }
    }

    /// Throttled, for the reasons a transaction gave: None when no reason
    /// was throttling or a transient conflict (a condition failed instead).
    pub(crate) fn from_cancellation(operation: &'static str, reasons: &[CancellationReason]) -> Option<SessionError> {
        let codes = || reasons.iter().filter_map(|r| r.code());
        if codes().any(|c| THROTTLING_CODES.contains(&c)) {
            return Some(SessionError::Throttled { operation });
        }
        codes().find(|c| TRANSIENT_CODES.contains(c)).map(|c| SessionError::Unavailable {
            operation,
            code: Some(c.to_string()),
            source: format!("transaction cancelled: {c}").into(),
        })
    }

    /// DynamoDB throttled the request.
    pub fn is_throttled(&self) -> bool {
        matches!(self, SessionError::Throttled { .. })
    }

    /// Worth retrying later: throttled, unavailable, timed out or in conflict.
    pub fn is_transient(&self) -> bool {
        matches!(self, SessionError::Throttled { .. } | SessionError::Unavailable { .. })
    }

    /// Another transaction held the item: a retry after a short pause succeeds.
    pub(crate) fn is_transaction_conflict(&self) -> bool {
        matches!(self, SessionError::Unavailable { code: Some(code), .. } if code.starts_with("Transaction"))
    }
}
