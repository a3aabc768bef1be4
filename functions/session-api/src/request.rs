//! What a request carries besides its route, set by the fronts and read
//! below the routes: its id (and the task-local that scopes it), its
//! deadline, the undecodable-body flag, and the lock token's header name.

use std::future::Future;
use std::time::Instant;

/// Request and response header carrying the lock token.
pub const LOCK_TOKEN_HEADER: &str = "x-session-lock-token";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A request's id, for its log line and a 500's message. The Lambda front
/// sets the invocation's; without one, a random one is made.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The invocation's X-Ray trace id, set by the Lambda front when X-Ray traces it.
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

/// When the request must be answered by, set by a front that knows (the
/// Lambda invocation's deadline). Without one, the state's request time
/// limit applies, from the request's arrival.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(pub Instant);

/// Set by a front on a request whose body it could not decode (API Gateway
/// flagged it base64 and it is not): the request is refused with 400.
#[derive(Debug, Clone, Copy)]
pub struct UndecodableBody;

/// The id of the request being served (inside the per-request middleware).
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` as the request `request_id`.
pub async fn with_request_id<F: Future>(request_id: &str, work: F) -> F::Output {
    REQUEST_ID.scope(request_id.to_string(), work).await
}
