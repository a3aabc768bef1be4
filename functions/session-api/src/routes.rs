//! The routes of the HTTP API as one axum [`Router`], and their handlers: the
//! only place the session store is called. Nothing here depends on where
//! a request came from (API Gateway, either payload version, or a socket).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ETAG, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{middleware, Json, Router};
use cookie::Cookie;
use dynamodb_sessions::{ConfigError, Data, LockToken, Session, SessionError, SessionId, SessionStore, WritePolicy};
use serde_json::json;

use crate::cookie::SessionCookie;
use crate::error::ApiError;
use crate::extract::{Addressed, JsonObject, LockTokenHeader, Preconditions, ReadOptions, LOCK_TOKEN_HEADER};
use crate::layer::{per_request, AutomaticGc};
use crate::settings::HttpSettings;

/// What every request shares, built once per process: the store, the
/// session cookie, and when automatic GC runs.
#[derive(Clone)]
pub struct ApiState(Arc<Shared>);

#[derive(Clone)]
struct Shared {
    store: SessionStore,
    cookie: SessionCookie,
    policy: WritePolicy,
    automatic_gc: AutomaticGc,
    request_time_limit: Option<Duration>,
}

impl ApiState {
    /// The state for `store`, with these settings (checked again here, for
    /// settings built by hand) and automatic GC [`AutomaticGc::BeforeReturning`].
    pub fn new(store: SessionStore, settings: HttpSettings) -> Result<ApiState, ConfigError> {
        settings.validate()?;
        settings.check_cookie_name(&store.config().session_name)?;
        let policy = settings.write_policy();
        let cookie = SessionCookie::new(&store.config().session_name, settings);
        let shared = Shared { store, cookie, policy, automatic_gc: AutomaticGc::default(), request_time_limit: None };
        Ok(ApiState(Arc::new(shared)))
    }

    /// The same state, with automatic GC run `when`.
    pub fn with_automatic_gc(self, when: AutomaticGc) -> ApiState {
        ApiState(Arc::new(Shared { automatic_gc: when, ..Arc::unwrap_or_clone(self.0) }))
    }

    /// The same state, each request without a deadline of its own (one not
    /// served on Lambda) answered within `limit` of its arrival.
    pub fn with_request_time_limit(self, limit: Duration) -> ApiState {
        ApiState(Arc::new(Shared { request_time_limit: Some(limit), ..Arc::unwrap_or_clone(self.0) }))
    }

    /// How long a request without a deadline of its own may take, if bounded.
    pub fn request_time_limit(&self) -> Option<Duration> {
        self.0.request_time_limit
    }

    /// The session store.
    pub fn store(&self) -> &SessionStore {
        &self.0.store
    }

    /// The session cookie.
    pub fn cookie(&self) -> &SessionCookie {
        &self.0.cookie
    }

    /// What clients' writes may change.
    pub fn write_policy(&self) -> &WritePolicy {
        &self.0.policy
    }

    /// Checks a client's data for a new session against the write policy.
    fn check_new(&self, data: &Data) -> Result<(), ApiError> {
        let format = self.store().config().data_format;
        Ok(self.write_policy().check_new(data, format).map_err(SessionError::from)?)
    }

    /// When automatic GC runs.
    pub fn automatic_gc(&self) -> AutomaticGc {
        self.0.automatic_gc
    }

    /// The largest body read: whitespace aside, a larger one cannot fit the
    /// data size limit.
    pub fn body_limit(&self) -> usize {
        self.store().config().max_data_size * 2 + 1024
    }
}

/// The whole API: the seven routes, JSON errors for unknown routes (404)
/// and methods (405, with `Allow`), `OPTIONS` on every route (204, with
/// `Allow`), the body limit, and the [`layer`](crate::layer) around every
/// request. Serve it with `axum::serve` or `lambda_http`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/sessions", post(create))
        .route("/sessions/{id}", get(read).put(replace).patch(patch).delete(destroy))
        .route("/sessions/{id}/regenerate", post(regenerate))
        .route("/sessions/{id}/lock", delete(unlock))
        .route("/session", get(read).post(start).put(replace).patch(patch).delete(destroy))
        .route("/session/regenerate", post(regenerate))
        .route("/session/lock", delete(unlock))
        .method_not_allowed_fallback(options_or_not_allowed)
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(state.body_limit()))
        .layer(middleware::from_fn_with_state(state.clone(), per_request))
        .with_state(state)
}

/// A method a route does not serve: 405, except `OPTIONS`, which asks what
/// it serves (204). When an authorizer guards the data routes, API Gateway
/// sends a CORS preflight here past it, and a preflight needs a 2xx. Axum
/// adds `Allow` to both.
async fn options_or_not_allowed(method: Method) -> Response {
    match method {
        Method::OPTIONS => StatusCode::NO_CONTENT.into_response(),
        _ => ApiError::MethodNotAllowed.into_response(),
    }
}

/// POST /sessions: a new session; the body, if any, is its data.
async fn create(State(api): State<ApiState>, JsonObject(data): JsonObject) -> Result<Response, ApiError> {
    let data = data.unwrap_or_default();
    api.check_new(&data)?;
    let session = api.store().create(data).await?;
    Ok(created(&api, &session))
}

/// POST /session, PHP's `session_start()`: resumes the cookie's live session,
/// or starts one. A stale, unknown or malformed cookie never names the new
/// session (strict mode).
async fn start(
    State(api): State<ApiState>,
    addressed: Addressed,
    options: ReadOptions,
    JsonObject(initial): JsonObject,
) -> Result<Response, ApiError> {
    let initial = initial.unwrap_or_default();
    // Refused whether or not it would be used: the answer does not depend on the cookie.
    api.check_new(&initial)?;
    if let Addressed::Sent(Ok(id)) = addressed {
        match load(&api, &id, !options.read_and_close).await {
            Err(SessionError::NotFound) => {}
            resumed => return Ok(session_response(StatusCode::OK, &resumed?)),
        }
    }
    let session = api.store().create(initial).await?;
    Ok(created(&api, &session))
}

/// GET: reads the session; with pessimistic locking also locks it, unless
/// `read_and_close=1`. HEAD, a safe method, never locks.
async fn read(
    State(api): State<ApiState>,
    method: Method,
    addressed: Addressed,
    options: ReadOptions,
) -> Result<Response, ApiError> {
    let id = addressed.id()?;
    let session = load(&api, &id, method == Method::GET && !options.read_and_close).await?;
    Ok(session_response(StatusCode::OK, &session))
}

/// PUT: replaces the data; honours `If-Match`; releases the caller's lock.
async fn replace(
    State(api): State<ApiState>,
    addressed: Addressed,
    preconditions: Preconditions,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let (id, data) = (addressed.id()?, body.required()?);
    written(preconditions.judge(api.store().replace(&id, data, &preconditions.options).await))
}

/// PATCH: a JSON merge patch (RFC 7396) of the data.
async fn patch(
    State(api): State<ApiState>,
    addressed: Addressed,
    preconditions: Preconditions,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let (id, patch) = (addressed.id()?, body.required()?);
    written(preconditions.judge(api.store().patch(&id, &patch, &preconditions.options).await))
}

/// DELETE: destroys the session (idempotent) and expires the cookie.
async fn destroy(
    State(api): State<ApiState>,
    addressed: Addressed,
    LockTokenHeader(token): LockTokenHeader,
) -> Result<Response, ApiError> {
    // Logging out without a session cookie still clears the cookie.
    if !matches!(addressed, Addressed::NoCookie { .. }) {
        api.store().destroy(&addressed.id()?, token.as_ref()).await?;
    }
    Ok(with_cookie(StatusCode::NO_CONTENT.into_response(), api.cookie().removal()))
}

/// POST .../regenerate: a new id, the same data, the old id gone.
async fn regenerate(
    State(api): State<ApiState>,
    addressed: Addressed,
    LockTokenHeader(token): LockTokenHeader,
) -> Result<Response, ApiError> {
    let id = addressed.id()?;
    let session = api.store().regenerate(&id, token.as_ref()).await?;
    Ok(created(&api, &session))
}

/// DELETE .../lock: releases the caller's lock without writing.
async fn unlock(
    State(api): State<ApiState>,
    addressed: Addressed,
    LockTokenHeader(token): LockTokenHeader,
) -> Result<Response, ApiError> {
    let id = addressed.id()?;
    let token = token.ok_or(ApiError::MissingLockToken)?;
    api.store().unlock(&id, &token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The answer to a PUT or PATCH.
fn written(result: Result<Session, SessionError>) -> Result<Response, ApiError> {
    Ok(session_response(StatusCode::OK, &result?))
}

/// A read, locking when `may_lock` and the locking strategy locks on read.
async fn load(api: &ApiState, id: &SessionId, may_lock: bool) -> Result<Session, SessionError> {
    if may_lock && api.store().config().locks_on_read() {
        api.store().load_and_lock(id).await
    } else {
        api.store().load(id).await
    }
}

/// The `ETag` of a session's data.
pub fn etag(session: &Session) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", session.etag)).expect("an entity tag is hex digits")
}

/// The value of the lock token header ([`LOCK_TOKEN_HEADER`]).
pub fn lock_token_header(token: &LockToken) -> HeaderValue {
    HeaderValue::from_str(&token.as_header_value()).expect("lock tokens are base64url, digits and dots")
}

/// `{id, data, expires}`, its ETag, and the lock token when the read took the lock.
fn session_response(status: StatusCode, session: &Session) -> Response {
    let body = json!({ "id": session.id.as_str(), "data": session.data, "expires": session.expires });
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(ETAG, etag(session));
    if let Some(token) = &session.lock_token {
        headers.insert(LOCK_TOKEN_HEADER, lock_token_header(token));
    }
    response
}

/// 201 for a session that has a new id: its `Location` and its cookie.
fn created(api: &ApiState, session: &Session) -> Response {
    let mut response = session_response(StatusCode::CREATED, session);
    let location = HeaderValue::from_str(&format!("/sessions/{}", session.id)).expect("ids are header-safe");
    response.headers_mut().insert(LOCATION, location);
    with_cookie(response, api.cookie().for_session(&session.id))
}

fn with_cookie(mut response: Response, cookie: Cookie<'static>) -> Response {
    let value = HeaderValue::from_str(&cookie.to_string()).expect("cookie attributes are checked at start-up");
    response.headers_mut().append(SET_COOKIE, value);
    response
}
