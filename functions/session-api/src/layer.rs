//! What every request goes through, around its route: its id, its log
//! line and metrics line, `Cache-Control: no-store`, the undecodable-body
//! refusal, and automatic GC after a successful response, timed as the front
//! chooses.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::metrics::{self, RequestMetrics};
use dynamodb_sessions::{budget, SessionId, SessionStore};
use dynamodb_sessions_axum::http_error::UnavailableCause;

use crate::error::ApiError;
use crate::request::{with_request_id, RequestDeadline, RequestId, TraceId, UndecodableBody};
use crate::state::{ApiState, AutomaticGc};

/// Time held back from a request's deadline: the budget its work gets ends
/// this much earlier, so the answer (and a release after a failure) is out
/// before the front gives up on it.
pub const HELD_BACK: Duration = Duration::from_secs(1);

/// The middleware around every route (see the module doc).
pub(crate) async fn per_request(State(api): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = match request.extensions().get::<RequestId>() {
        Some(RequestId(id)) => id.clone(),
        None => SessionId::generate().as_str()[..12].to_string(),
    };
    let method = request.method().clone();
    // The route's template, never the path: a path holds a session id.
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string());
    let trace_id = request.extensions().get::<TraceId>().map(|TraceId(trace)| trace.clone());
    let undecodable = request.extensions().get::<UndecodableBody>().is_some();
    // The end of the request's budget: its deadline, less what is held back.
    let budget_end = match request.extensions().get::<RequestDeadline>() {
        Some(RequestDeadline(deadline)) => Some(*deadline),
        None => api.request_time_limit().map(|limit| started + limit),
    }
    .map(|deadline| deadline.checked_sub(HELD_BACK).unwrap_or(started));
    let work = async move {
        if undecodable {
            ApiError::InvalidBase64.into_response()
        } else {
            next.run(request).await
        }
    };
    let work = with_request_id(&request_id, counted(metrics::observed(work)));
    let ((mut response, stats), calls) = match budget_end {
        Some(end) => budget::within(end, work).await,
        None => work.await,
    };
    // Responses carry session data, lock tokens and cookies: no cache may keep one.
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::info!(
        request_id,
        method = %method,
        route = route.as_deref().unwrap_or("unknown"),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        dynamodb_calls = calls.len(),
        "request"
    );
    let route = route_dimension(&method, route.as_deref(), response.status());
    RequestMetrics {
        route: &route,
        status: response.status().as_u16(),
        unavailable_cause: response.extensions().get::<UnavailableCause>().map(|UnavailableCause(cause)| *cause),
        latency: started.elapsed(),
        dynamodb_calls: calls.len(),
        stats,
    }
    .line()
    .of_invocation(&request_id, trace_id.as_deref())
    .emit(&api.store().config().metrics_namespace);
    // A preflight (OPTIONS) touched no session: it starts no GC either.
    if response.status().is_success() && method != Method::OPTIONS {
        match api.automatic_gc() {
            // Within what is left of the request's budget.
            AutomaticGc::BeforeReturning => match budget_end {
                Some(end) => budget::within(end, automatic_gc(api.store().clone())).await,
                None => automatic_gc(api.store().clone()).await,
            },
            AutomaticGc::Spawned => drop(tokio::spawn(automatic_gc(api.store().clone()))),
        }
    }
    response
}

/// The metrics' `Route`: the method and the route's template for what the
/// route serves; `other <template>` for the rest (OPTIONS, a 405, a method
/// a client made up), `unmatched` off every route. A fixed set whatever a
/// client sends: each value is a metric, billed monthly.
fn route_dimension(method: &Method, template: Option<&str>, status: StatusCode) -> String {
    const SERVED: &[Method] = &[Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    match template {
        Some(template) if SERVED.contains(method) && status != StatusCode::METHOD_NOT_ALLOWED => {
            format!("{method} {template}")
        }
        Some(template) => format!("other {template}"),
        None => "unmatched".to_string(),
    }
}

/// The one call into the library's automatic GC: by chance, a short sweep step.
async fn automatic_gc(store: SessionStore) {
    match store.automatic_gc_step().await {
        None => {}
        Some(Ok(report)) => report.log("automatic gc step"),
        Some(Err(err)) => tracing::warn!(error = %err, "automatic gc step failed"),
    }
}
