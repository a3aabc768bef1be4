//! The Lambda side: API Gateway events in, API Gateway responses out, through
//! `lambda_http`'s adapter, with one repair in front of it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use base64::Engine;
use lambda_http::http::{HeaderMap, HeaderValue};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::util::MapRequest;
use lambda_http::tower::ServiceExt;
use lambda_http::{Adapter, Body, Context, LambdaEvent, Request, Response, Service};

use crate::handler::{handle, App, INVALID_BASE64_HEADER};

/// The handler as a tower service of `http` requests.
#[derive(Clone)]
pub struct HandlerService {
    app: App,
}

impl Service<Request> for HandlerService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let app = self.app.clone();
        Box::pin(async move { Ok(handle(&app, request).await) })
    }
}

type Repair = fn(LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest>;

/// The whole function: an API Gateway event in, its response out.
pub type LambdaService = MapRequest<Adapter<'static, Response<Body>, HandlerService>, Repair>;

pub fn service(app: App) -> LambdaService {
    Adapter::from(HandlerService { app }).map_request(mark_invalid_base64 as Repair)
}

pub async fn run(app: App) -> Result<(), lambda_http::Error> {
    lambda_http::lambda_runtime::run(service(app)).await
}

/// Runs one event through the whole function, as the Lambda runtime would,
/// and returns the response as API Gateway receives it (for tests and tools).
pub async fn invoke(app: App, event: serde_json::Value) -> Result<serde_json::Value, serde_json::Error> {
    let payload: LambdaRequest = serde_json::from_value(event)?;
    let response = service(app).oneshot(LambdaEvent::new(payload, Context::default())).await.expect("infallible");
    serde_json::to_value(response)
}

/// `lambda_http` panics on a body flagged base64 that is not base64; this
/// drops such a body and marks the request, so the handler answers 400.
fn mark_invalid_base64(mut event: LambdaEvent<LambdaRequest>) -> LambdaEvent<LambdaRequest> {
    fn repair(is_base64: &mut bool, body: &mut Option<String>, headers: &mut HeaderMap) {
        let valid = body.as_deref().is_none_or(|b| base64::engine::general_purpose::STANDARD.decode(b).is_ok());
        if *is_base64 && !valid {
            *is_base64 = false;
            *body = None;
            headers.insert(INVALID_BASE64_HEADER, HeaderValue::from_static("1"));
        }
    }
    match &mut event.payload {
        LambdaRequest::ApiGatewayV2(ag) => repair(&mut ag.is_base64_encoded, &mut ag.body, &mut ag.headers),
        LambdaRequest::ApiGatewayV1(ag) => repair(&mut ag.is_base64_encoded, &mut ag.body, &mut ag.headers),
        #[allow(unreachable_patterns)]
        _ => {}
    }
    event
}
