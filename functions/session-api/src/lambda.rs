//! The Lambda front: API Gateway events (HTTP API payload 2.0, REST API
//! payload 1.0) in, API Gateway responses out, through `lambda_http`'s
//! adapter around the [`router`](crate::router), with two repairs:
//!
//! - in front of the adapter, a body flagged base64 that is not base64 is
//!   dropped and the request marked (`lambda_http` would panic decoding it),
//!   so the API answers 400;
//! - behind it, the routes see the event's own path: `lambda_http` puts
//!   `/{stage}` in front of the URI's path, which no route has.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use base64::Engine;
use lambda_http::http::uri::{PathAndQuery, Uri};
use lambda_http::http::{HeaderMap, HeaderValue};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::tower::util::MapRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Context, LambdaEvent, Request, RequestExt};

use crate::request::{RequestDeadline, RequestId, TraceId, UndecodableBody};

/// Marks a request whose body was dropped by [`mark_invalid_base64`]; only
/// this front sets it (a client's own is removed).
const INVALID_BASE64_HEADER: &str = "x-sessions-invalid-base64-body";

type Repair = fn(LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest>;
type Prepare = fn(Request) -> Request;

/// The whole function as a service: an API Gateway event in, its response out.
pub type LambdaService = MapRequest<Adapter<'static, axum::response::Response, MapRequest<Router, Prepare>>, Repair>;

/// The function around `router`.
pub fn service(router: Router) -> LambdaService {
    let http = ServiceExt::<Request>::map_request(router, prepare as Prepare);
    Adapter::from(http).map_request(mark_invalid_base64 as Repair)
}

/// Serves `router` on the Lambda Runtime API until the sandbox ends.
pub async fn run(router: Router) -> Result<(), lambda_http::Error> {
    lambda_http::lambda_runtime::run(service(router)).await
}

/// Runs one event through the whole function, as the Lambda runtime would,
/// and returns the response as API Gateway receives it (for tests and tools).
pub async fn invoke(router: Router, event: serde_json::Value) -> Result<serde_json::Value, serde_json::Error> {
    let payload: LambdaRequest = serde_json::from_value(event)?;
    let response = service(router).oneshot(LambdaEvent::new(payload, Context::default())).await;
    serde_json::to_value(response.unwrap_or_else(|never| match never {}))
}

/// `lambda_http` panics on a body flagged base64 that is not base64; this
/// drops such a body and marks the request, so the API answers 400.
fn mark_invalid_base64(mut event: LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest> {
    fn repair(is_base64: &mut bool, body: &mut Option<String>, headers: &mut HeaderMap) {
        headers.remove(INVALID_BASE64_HEADER);
        let valid = body.as_deref().is_none_or(|b| base64::engine::general_purpose::STANDARD.decode(b).is_ok());
        if *is_base64 && !valid {
            *is_base64 = false;
            *body = None;
            headers.insert(INVALID_BASE64_HEADER, HeaderValue::from_static("1"));
        }
    }
    match &mut event.payload {
        LambdaRequest::ApiGatewayV2(ag) => repair(&mut ag.is_base64_encoded, &mut ag.body, &mut ag.headers),
        LambdaRequest::ApiGatewayV1(ag) => {
            // lambda_http merges both header maps.
            ag.multi_value_headers.remove(INVALID_BASE64_HEADER);
            repair(&mut ag.is_base64_encoded, &mut ag.body, &mut ag.headers)
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
    event
}

/// The request as the router expects it: routed on the event's own path,
/// with the invocation's request id, and the base64 mark as an extension.
fn prepare(mut request: Request) -> Request {
    if let Some(uri) = route_path(&request).and_then(|path| with_path(request.uri(), &path)) {
        *request.uri_mut() = uri;
    }
    let invocation = request.lambda_context_ref().map(|context| context.request_id.clone());
    if let Some(id) = invocation.filter(|id| !id.is_empty()) {
        request.extensions_mut().insert(RequestId(id));
    }
    let trace = request.lambda_context_ref().and_then(|context| context.xray_trace_id.clone());
    if let Some(trace) = trace.filter(|trace| !trace.is_empty()) {
        request.extensions_mut().insert(TraceId(trace));
    }
    // The invocation's deadline, epoch ms. One already past is no deadline:
    // 0 when invoked by hand (as in tests), a duration from some emulators
    // (`cargo lambda watch` sends 600000).
    let deadline_ms = request.lambda_context_ref().map_or(0, |context| context.deadline);
    let now_ms = epoch_millis();
    if deadline_ms > now_ms {
        let left = Duration::from_millis(deadline_ms - now_ms);
        request.extensions_mut().insert(RequestDeadline(Instant::now() + left));
    }
    if request.headers_mut().remove(INVALID_BASE64_HEADER).is_some() {
        request.extensions_mut().insert(UndecodableBody);
    }
    request
}

fn epoch_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// The event's path without the stage: a REST API event's `path` never has
/// it; an HTTP API event's `rawPath` starts with a named stage (not `$default`).
fn route_path(request: &Request) -> Option<String> {
    let raw = request.raw_http_path();
    let path = match request.request_context_ref()? {
        RequestContext::ApiGatewayV1(_) => raw,
        RequestContext::ApiGatewayV2(context) => match context.stage.as_deref() {
            Some(stage) if stage != "$default" => without_stage(raw, stage),
            _ => raw,
        },
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    // Percent-encoded the way lambda_http encodes the URI, so that any path
    // API Gateway sends makes a valid URI (which matches no route if odd).
    let url = url::Url::parse(&format!("http://localhost{path}")).ok()?;
    Some(url.path().to_string())
}

fn without_stage<'a>(path: &'a str, stage: &str) -> &'a str {
    match path.strip_prefix('/').and_then(|rest| rest.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_stage_is_taken_off_the_front_only() {
        assert_eq!(without_stage("/prod/sessions/abc", "prod"), "/sessions/abc");
        assert_eq!(without_stage("/prod", "prod"), "/");
        assert_eq!(without_stage("/production/sessions", "prod"), "/production/sessions");
        assert_eq!(without_stage("/sessions", "prod"), "/sessions");
        assert_eq!(without_stage("/sessions/sessions", "sessions"), "/sessions");
    }

    #[test]
    fn the_invocations_ids_name_the_request() {
        let mut context = Context::default();
        context.request_id = "invocation-1".into();
        context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
        let prepared = prepare(Request::default().with_lambda_context(context));
        assert_eq!(prepared.extensions().get::<RequestId>().map(|RequestId(id)| id.as_str()), Some("invocation-1"));
        let trace = prepared.extensions().get::<TraceId>().map(|TraceId(trace)| trace.as_str());
        assert_eq!(trace, Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"));
        // Not traced: no trace id.
        let prepared = prepare(Request::default().with_lambda_context(Context::default()));
        assert!(prepared.extensions().get::<TraceId>().is_none());
    }

    #[test]
    fn the_invocations_deadline_becomes_the_requests() {
        let mut context = Context::default();
        context.deadline = epoch_millis() + 5_000;
        let prepared = prepare(Request::default().with_lambda_context(context));
        let RequestDeadline(deadline) = *prepared.extensions().get::<RequestDeadline>().expect("a deadline");
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(3) && left <= Duration::from_secs(5), "{left:?}");
        for not_a_deadline in [0, 600_000] {
            let mut context = Context::default();
            context.deadline = not_a_deadline;
            let prepared = prepare(Request::default().with_lambda_context(context));
            assert!(prepared.extensions().get::<RequestDeadline>().is_none(), "{not_a_deadline} is no deadline");
        }
    }
}
