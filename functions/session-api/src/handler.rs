//! The HTTP adapter: routes a request to the session store and maps every
//! outcome, errors included, to a status and a JSON body. Nothing here talks
//! to DynamoDB directly, and nothing here depends on where the request came
//! from (API Gateway payload 2.0 or 1.0, or the local server).

use std::time::Instant;

use dynamodb_sessions::calls::counted;
use dynamodb_sessions::gc::automatic_gc_step;
use dynamodb_sessions::{Data, LockToken, Session, SessionError, SessionId, SessionStore, WriteOptions};
use lambda_http::http::header::{ALLOW, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION, RETRY_AFTER, SET_COOKIE};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};

use crate::cookie;

/// Request and response header carrying the lock token.
pub const LOCK_TOKEN_HEADER: &str = "x-session-lock-token";
/// Set by the Lambda adapter when API Gateway flagged a body as base64 that
/// was not (see `lambda.rs`).
pub const INVALID_BASE64_HEADER: &str = "x-sessions-invalid-base64-body";

/// Built once per process; shared by every request.
#[derive(Clone)]
pub struct App {
    pub store: SessionStore,
}

impl App {
    pub fn new(store: SessionStore) -> App {
        App { store }
    }
}

/// Which session a route addresses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target<'a> {
    Path(&'a str),
    Cookie,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Route<'a> {
    Collection,
    One(Target<'a>),
    Regenerate(Target<'a>),
    Lock(Target<'a>),
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Option<Route<'a>> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["sessions"] => Some(Route::Collection),
            ["sessions", id] => Some(Route::One(Target::Path(id))),
            ["sessions", id, "regenerate"] => Some(Route::Regenerate(Target::Path(id))),
            ["sessions", id, "lock"] => Some(Route::Lock(Target::Path(id))),
            ["session"] => Some(Route::One(Target::Cookie)),
            ["session", "regenerate"] => Some(Route::Regenerate(Target::Cookie)),
            ["session", "lock"] => Some(Route::Lock(Target::Cookie)),
            _ => None,
        }
    }

    fn allowed(&self) -> &'static [Method] {
        match self {
            Route::Collection | Route::Regenerate(_) => &[Method::POST],
            Route::One(Target::Path(_)) => &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
            Route::One(Target::Cookie) => &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
            Route::Lock(_) => &[Method::DELETE],
        }
    }

    /// The route's template, for logs (never the id itself).
    fn template(&self) -> &'static str {
        match self {
            Route::Collection => "/sessions",
            Route::One(Target::Path(_)) => "/sessions/{id}",
            Route::Regenerate(Target::Path(_)) => "/sessions/{id}/regenerate",
            Route::Lock(Target::Path(_)) => "/sessions/{id}/lock",
            Route::One(Target::Cookie) => "/session",
            Route::Regenerate(Target::Cookie) => "/session/regenerate",
            Route::Lock(Target::Cookie) => "/session/lock",
        }
    }
}

/// Why a request was refused before it reached the store.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { status, code, message: message.into() }
}

type Outcome = Result<Response<Body>, Refusal>;

impl From<SessionError> for Refusal {
    /// The one place a store error becomes a status.
    fn from(err: SessionError) -> Refusal {
        use SessionError::*;
        match err {
            NotFound => refuse(StatusCode::NOT_FOUND, "not_found", "no such session, or it has expired"),
            Locked => refuse(StatusCode::LOCKED, "locked", "the session is locked by another request"),
            Conflict => {
                refuse(StatusCode::CONFLICT, "conflict", "the session was changed by another request; read it again")
            }
            TooLarge { size, limit } => refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("session data is {size} bytes; the limit is {limit}"),
            ),
            InvalidId => refuse(StatusCode::BAD_REQUEST, "invalid_id", "malformed session id"),
            UnreadableData => refuse(
                StatusCode::CONFLICT,
                "unreadable_data",
                "the stored session data is not a JSON object (written by another serializer)",
            ),
            Throttled { .. } | Unavailable { .. } => {
                refuse(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the session table is busy; retry shortly")
            }
            err @ (Config(_) | DynamoDb { .. }) => {
                tracing::error!(error = %err, "internal error");
                refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// Serves one request. Never fails: every outcome is a response.
pub async fn handle(app: &App, request: Request) -> Response<Body> {
    let started = Instant::now();
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(|| SessionId::generate().as_str()[..12].to_string());
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_string(),
        raw => raw.to_string(),
    };
    let route = Route::parse(&path);
    let (outcome, calls) = counted(dispatch(app, route, &request)).await;
    let response = outcome.unwrap_or_else(|refusal| error_response(&refusal, &request_id));
    tracing::info!(
        request_id,
        method = %request.method(),
        route = route.map(|r| r.template()).unwrap_or("unknown"),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        dynamodb_calls = calls.len(),
        "request"
    );
    if let Some(result) = automatic_gc_step(app.store.client(), app.store.config()).await {
        match result {
            Ok(report) => report.log("automatic gc step"),
            Err(err) => tracing::warn!(error = %err, "automatic gc step failed"),
        }
    }
    response
}

async fn dispatch(app: &App, route: Option<Route<'_>>, request: &Request) -> Outcome {
    let route = route.ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no_route", "no such route"))?;
    let method = request.method();
    if !route.allowed().contains(method) {
        let allow = route.allowed().iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        let refusal = refuse(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("allowed: {allow}"));
        let mut response = error_response(&refusal, "");
        response.headers_mut().insert(ALLOW, header(&allow));
        return Ok(response);
    }
    if request.headers().contains_key(INVALID_BASE64_HEADER) {
        return Err(refuse(StatusCode::BAD_REQUEST, "invalid_base64", "the body is flagged base64 but is not"));
    }
    let store = &app.store;
    let cookies = cookie::Cookies::new(store.config());
    match (route, method.clone()) {
        (Route::Collection, _) => {
            let data = json_body(request, store, true)?.unwrap_or_default();
            let session = store.create(data).await?;
            Ok(created(&session, &cookies))
        }
        (Route::One(Target::Cookie), Method::POST) => {
            // session_start(): resume the cookie's live session, or start one.
            // A stale, unknown or malformed cookie never names the new session.
            let initial = json_body(request, store, true)?.unwrap_or_default();
            if let Some(Ok(id)) = cookies.session_id(request.headers()) {
                match read(store, &id, request).await {
                    Err(SessionError::NotFound) => {}
                    resumed => return Ok(session_response(StatusCode::OK, &resumed?)),
                }
            }
            let session = store.create(initial).await?;
            Ok(created(&session, &cookies))
        }
        (Route::One(target), Method::GET) => {
            let id = session_id(target, request, &cookies)?;
            Ok(session_response(StatusCode::OK, &read(store, &id, request).await?))
        }
        (Route::One(target), Method::PUT) => {
            let id = session_id(target, request, &cookies)?;
            let options = write_options(request)?;
            let data = json_body(request, store, false)?.unwrap_or_default();
            let session = store.replace(&id, data, &options).await.map_err(|e| precondition(e, &options))?;
            Ok(session_response(StatusCode::OK, &session))
        }
        (Route::One(target), Method::PATCH) => {
            let id = session_id(target, request, &cookies)?;
            let options = write_options(request)?;
            let patch = json_body(request, store, false)?.unwrap_or_default();
            let session = store.patch(&id, &patch, &options).await.map_err(|e| precondition(e, &options))?;
            Ok(session_response(StatusCode::OK, &session))
        }
        (Route::One(target), Method::DELETE) => {
            let id = match target {
                // Deleting without a session cookie still clears the cookie.
                Target::Cookie if !cookies.present(request.headers()) => None,
                _ => Some(session_id(target, request, &cookies)?),
            };
            if let Some(id) = id {
                store.destroy(&id, lock_token(request)?.as_ref()).await?;
            }
            let mut response = empty(StatusCode::NO_CONTENT);
            response.headers_mut().append(SET_COOKIE, header(&cookies.expired()));
            Ok(response)
        }
        (Route::Regenerate(target), _) => {
            let id = session_id(target, request, &cookies)?;
            let session = store.regenerate(&id, lock_token(request)?.as_ref()).await?;
            Ok(created(&session, &cookies))
        }
        (Route::Lock(target), _) => {
            let id = session_id(target, request, &cookies)?;
            let token = lock_token(request)?.ok_or_else(|| {
                refuse(StatusCode::BAD_REQUEST, "missing_lock_token", format!("send the {LOCK_TOKEN_HEADER} header"))
            })?;
            store.unlock(&id, &token).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Route::One(_), _) => unreachable!("methods were checked against the route"),
    }
}

/// GET: read (and with pessimistic locking, lock unless `read_and_close=1`).
async fn read(store: &SessionStore, id: &SessionId, request: &Request) -> Result<Session, SessionError> {
    if store.locks_on_read() && !query_flag(request, "read_and_close") {
        store.load_and_lock(id).await
    } else {
        store.load(id).await
    }
}

fn session_id(target: Target<'_>, request: &Request, cookies: &cookie::Cookies<'_>) -> Result<SessionId, Refusal> {
    match target {
        Target::Path(raw) => Ok(SessionId::parse(raw)?),
        Target::Cookie => match cookies.session_id(request.headers()) {
            Some(parsed) => Ok(parsed?),
            None => Err(refuse(StatusCode::NOT_FOUND, "not_found", format!("no {} cookie", cookies.name()))),
        },
    }
}

/// A Conflict on a write that named its version is a failed precondition.
fn precondition(err: SessionError, options: &WriteOptions) -> Refusal {
    match err {
        SessionError::Conflict if options.expected_version.is_some() => {
            refuse(StatusCode::PRECONDITION_FAILED, "precondition_failed", "If-Match does not match the session's ETag")
        }
        other => other.into(),
    }
}

fn write_options(request: &Request) -> Result<WriteOptions, Refusal> {
    Ok(WriteOptions { expected_version: if_match(request.headers())?, lock_token: lock_token(request)? })
}

/// `If-Match: "3"` (or `W/"3"`, or `*` for any version).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Refusal> {
    let Some(value) = headers.get(IF_MATCH) else { return Ok(None) };
    let raw = value.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.trim_start_matches("W/").trim_matches('"').parse::<u64>().map(Some).map_err(|_| {
        refuse(StatusCode::PRECONDITION_FAILED, "precondition_failed", "If-Match is not an ETag of this API")
    })
}

fn lock_token(request: &Request) -> Result<Option<LockToken>, Refusal> {
    match request.headers().get(LOCK_TOKEN_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|raw| LockToken::parse(raw.trim()).ok())
            .map(Some)
            .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "invalid_lock_token", "malformed lock token")),
    }
}

fn query_flag(request: &Request, name: &str) -> bool {
    request.uri().query().unwrap_or("").split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == name && !matches!(value, "0" | "false")
    })
}

/// The body as a JSON object. None when empty and `optional`; a body that is
/// too large, not JSON, not UTF-8 or not an object is refused.
fn json_body(request: &Request, store: &SessionStore, optional: bool) -> Result<Option<Data>, Refusal> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(None)
        } else {
            Err(refuse(StatusCode::BAD_REQUEST, "missing_body", "send the session data as a JSON object"))
        };
    }
    if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
        let essence = content_type.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json"));
        }
    }
    // Whitespace aside, a body larger than this cannot fit the data limit.
    let limit = store.config().max_data_size * 2 + 1024;
    if bytes.len() > limit {
        return Err(SessionError::TooLarge { size: bytes.len(), limit: store.config().max_data_size }.into());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "invalid_utf8", "the body is not UTF-8"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(refuse(StatusCode::BAD_REQUEST, "not_an_object", "session data must be a JSON object")),
        Err(err) => Err(refuse(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not JSON: {err}"))),
    }
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("header values are built from checked ASCII")
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::Text(body.to_string()))
        .expect("status and headers are valid")
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(Body::Empty).expect("status is valid")
}

fn session_response(status: StatusCode, session: &Session) -> Response<Body> {
    let body = json!({ "id": session.id.as_str(), "data": session.data, "expires": session.expires });
    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    headers.insert(ETAG, header(&format!("\"{}\"", session.version)));
    if let Some(token) = &session.lock_token {
        headers.insert(LOCK_TOKEN_HEADER, header(token.as_str()));
    }
    response
}

fn created(session: &Session, cookies: &cookie::Cookies<'_>) -> Response<Body> {
    let mut response = session_response(StatusCode::CREATED, session);
    let headers = response.headers_mut();
    headers.insert(LOCATION, header(&format!("/sessions/{}", session.id)));
    headers.append(SET_COOKIE, header(&cookies.for_session(&session.id)));
    response
}

fn error_response(refusal: &Refusal, request_id: &str) -> Response<Body> {
    let message = match refusal.status {
        StatusCode::INTERNAL_SERVER_ERROR => format!("{} (request id {request_id})", refusal.message),
        _ => refusal.message.clone(),
    };
    let mut response = json_response(refusal.status, &json!({ "error": { "code": refusal.code, "message": message } }));
    if matches!(refusal.status, StatusCode::LOCKED | StatusCode::SERVICE_UNAVAILABLE) {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse("/sessions"), Some(Route::Collection));
        assert_eq!(Route::parse("/sessions/"), Some(Route::Collection));
        assert_eq!(Route::parse("/sessions/abc"), Some(Route::One(Target::Path("abc"))));
        assert_eq!(Route::parse("/sessions/abc/lock"), Some(Route::Lock(Target::Path("abc"))));
        assert_eq!(Route::parse("/session/regenerate"), Some(Route::Regenerate(Target::Cookie)));
        assert_eq!(Route::parse("/"), None);
        assert_eq!(Route::parse("/sessions/a/b/c"), None);
        assert_eq!(Route::parse("/other"), None);
    }

    #[test]
    fn every_store_error_maps_to_its_status() {
        use dynamodb_sessions::ConfigError;
        let cases: Vec<(SessionError, u16)> = vec![
            (SessionError::NotFound, 404),
            (SessionError::Locked, 423),
            (SessionError::Conflict, 409),
            (SessionError::TooLarge { size: 2, limit: 1 }, 413),
            (SessionError::InvalidId, 400),
            (SessionError::UnreadableData, 409),
            (SessionError::Throttled { operation: "GetItem" }, 503),
            (SessionError::Unavailable { operation: "GetItem", source: "timeout".into() }, 503),
            (
                SessionError::DynamoDb {
                    operation: "GetItem",
                    code: Some("ValidationException".into()),
                    source: "bug".into(),
                },
                500,
            ),
            (SessionError::Config(ConfigError { variable: "X", value: "y".into(), reason: "z".into() }), 500),
        ];
        for (err, status) in cases {
            let response = error_response(&Refusal::from(err), "req-1");
            assert_eq!(response.status().as_u16(), status);
            let retry = response.headers().get(RETRY_AFTER).is_some();
            assert_eq!(retry, status == 423 || status == 503, "Retry-After on {status}");
            let Body::Text(body) = response.body() else { panic!() };
            let body: Value = serde_json::from_str(body).unwrap();
            assert!(body["error"]["code"].is_string());
            if status == 500 {
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("req-1") && !message.contains("ValidationException") && !message.contains("bug"),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn if_match_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers).unwrap(), None);
        for (raw, expected) in [("\"3\"", Some(3)), ("W/\"4\"", Some(4)), ("5", Some(5)), ("*", None)] {
            headers.insert(IF_MATCH, HeaderValue::from_static(raw));
            assert_eq!(if_match(&headers).unwrap(), expected, "{raw}");
        }
        headers.insert(IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(if_match(&headers).unwrap_err().status, StatusCode::PRECONDITION_FAILED);
    }
}
