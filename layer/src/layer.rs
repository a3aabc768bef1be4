//! The tower layer around an app's routes: it hands each request a lazy
//! [`Session`], and once the handler's response is ready stores what the
//! request changed and sets or removes the cookie. A write-back that fails
//! replaces the handler's response: a client never sees a success for a
//! change that was not stored. The cookie change goes out either way: an id
//! regenerated earlier in the request is the only one left.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header::SET_COOKIE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use dynamodb_sessions::{SessionId, SessionStore};
use futures_util::FutureExt;
use tower::{Layer, Service};

use crate::cookie::SessionCookie;
use crate::rejection::SessionRejection;
use crate::session::{CookieChange, Session};

/// Sessions for the routes it wraps: `Router::new().route(...).layer(SessionLayer::new(store, cookie))`.
#[derive(Clone)]
pub struct SessionLayer(Arc<Shared>);

/// How the layer answers a request whose write-back failed.
type FailureResponse = dyn Fn(SessionRejection) -> Response + Send + Sync;

struct Shared {
    store: SessionStore,
    cookie: SessionCookie,
    failed_write_back: Box<FailureResponse>,
}

impl SessionLayer {
    /// The layer for `store`, with `cookie` (built once, from the same
    /// settings as the HTTP API's: [`SessionCookie::new`]).
    pub fn new(store: SessionStore, cookie: SessionCookie) -> SessionLayer {
        let failed_write_back = Box::new(IntoResponse::into_response);
        SessionLayer(Arc::new(Shared { store, cookie, failed_write_back }))
    }

    /// Answers a request whose write-back failed with `respond`'s response
    /// (an HTML page, the app's own error body) instead of the rejection's
    /// JSON. It replaces the handler's response either way: a client never
    /// sees a success for a change that was not stored.
    pub fn on_failed_write_back(
        self,
        respond: impl Fn(SessionRejection) -> Response + Send + Sync + 'static,
    ) -> SessionLayer {
        let (store, cookie) = (self.0.store.clone(), self.0.cookie.clone());
        SessionLayer(Arc::new(Shared { store, cookie, failed_write_back: Box::new(respond) }))
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService { inner, shared: self.0.clone() }
    }
}

/// The service [`SessionLayer`] wraps around the app's.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for SessionService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let shared = self.shared.clone();
        // A malformed id costs no call: it is a new session.
        let cookie_id = shared.cookie.value(request.headers()).and_then(|raw| SessionId::parse(&raw).ok());
        let session = Session::new(shared.store.clone(), cookie_id);
        request.extensions_mut().insert(session.clone());
        // The instance made ready by poll_ready serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let response = match AssertUnwindSafe(inner.call(request)).catch_unwind().await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) => {
                    session.abandon().await;
                    return Err(err);
                }
                Err(panic) => {
                    // Released here, before the panic goes on: a release left
                    // to a drop guard may not run before Lambda freezes.
                    session.abandon().await;
                    std::panic::resume_unwind(panic);
                }
            };
            let (cookie, stored) = session.finish().await;
            let response = match stored {
                Ok(()) => response,
                Err(err) => (shared.failed_write_back)(SessionRejection::Store(err)),
            };
            Ok(with_cookie(response, &shared.cookie, cookie))
        })
    }
}

/// `response` with the cookie change, if any.
fn with_cookie(mut response: Response, cookie: &SessionCookie, change: CookieChange) -> Response {
    let header = match change {
        CookieChange::Keep => return response,
        CookieChange::Set(id) => cookie.for_session(&id),
        CookieChange::Remove => cookie.removal(),
    };
    let value = HeaderValue::from_str(&header.to_string()).expect("a cookie the cookie crate built is a header value");
    response.headers_mut().append(SET_COOKIE, value);
    response
}
