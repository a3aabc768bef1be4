//! The routes of the HTTP API as one axum [`Router`], and their handlers: the
//! only place the session store is called. Nothing here depends on where
//! a request came from (API Gateway, either payload version, or a socket).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ETAG, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{middleware, Json, Router};
use cookie::Cookie;
use dynamodb_sessions::{LockToken, Session, SessionError, SessionId};
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{Addressed, JsonObject, LockTokenHeader, Preconditions, ReadOptions};
use crate::layer::per_request;
use crate::request::LOCK_TOKEN_HEADER;
use crate::state::ApiState;

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
/// A malformed request is 400 before an `If-Match` that can never match is 412.
async fn replace(
    State(api): State<ApiState>,
    addressed: Addressed,
    preconditions: Preconditions,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let (id, data) = (addressed.id()?, body.required()?);
    let options = preconditions.options()?;
    written(preconditions.judge(api.store().replace(&id, data, options).await))
}

/// PATCH: a JSON merge patch (RFC 7396) of the data.
async fn patch(
    State(api): State<ApiState>,
    addressed: Addressed,
    preconditions: Preconditions,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let (id, patch) = (addressed.id()?, body.required()?);
    let options = preconditions.options()?;
    written(preconditions.judge(api.store().patch(&id, &patch, options).await))
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
