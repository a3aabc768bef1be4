//! What the routes read from a request, each as an axum extractor whose
//! rejection is an [`ApiError`]: the session addressed, the JSON body, the
//! write preconditions, the lock token and the read options.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use dynamodb_sessions::schema::ETAG_LEN;
use dynamodb_sessions::{Data, LockToken, Session, SessionError, SessionId, WriteOptions};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::request::LOCK_TOKEN_HEADER;
use crate::state::ApiState;

/// The session a request addresses: the `{id}` of its path on the
/// `/sessions/{id}...` routes, the session cookie on the `/session...` ones.
#[derive(Debug)]
pub enum Addressed {
    /// An id was sent, well-formed or not.
    Sent(Result<SessionId, SessionError>),
    /// A cookie route, without the session cookie.
    NoCookie {
        /// The cookie's name.
        cookie: String,
    },
}

impl Addressed {
    /// The id, or why there is none: 400 when malformed, 404 without a cookie.
    pub fn id(self) -> Result<SessionId, ApiError> {
        match self {
            Addressed::Sent(id) => Ok(id?),
            Addressed::NoCookie { cookie } => Err(ApiError::NoCookie { cookie }),
        }
    }
}

impl FromRequestParts<ApiState> for Addressed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        // A segment that does not percent-decode to UTF-8 is no id either.
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Store(SessionError::InvalidId))?;
        if let Some((_, raw)) = params.iter().find(|(name, _)| *name == "id") {
            return Ok(Addressed::Sent(SessionId::parse(raw)));
        }
        let cookie = state.cookie();
        Ok(match cookie.value(&parts.headers) {
            Some(value) => Addressed::Sent(SessionId::parse(&value)),
            None => Addressed::NoCookie { cookie: cookie.name().to_string() },
        })
    }
}

/// The body as session data: a JSON object, or None when the body is empty.
/// Refused: a body over the limit (413), a content type other than JSON
/// (415; a body without a content type too: a cross-site form or
/// `text/plain` fetch must not pass as JSON), not UTF-8, not JSON, not an object.
#[derive(Debug)]
pub struct JsonObject(pub Option<Data>);

impl JsonObject {
    /// The data, for the routes where it is required.
    pub fn required(self) -> Result<Data, ApiError> {
        self.0.ok_or(ApiError::MissingBody)
    }
}

impl FromRequest<ApiState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, ApiError> {
        let json_content = request.headers().get(CONTENT_TYPE).map(|value| {
            let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit: state.body_limit() },
            _ => ApiError::UnreadableBody,
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject(None));
        }
        if json_content != Some(true) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::InvalidUtf8)?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(data)) => Ok(JsonObject(Some(data))),
            Ok(_) => Err(ApiError::NotAnObject),
            Err(err) => Err(ApiError::BadJson(err.to_string())),
        }
    }
}

/// A write's preconditions: `If-Match`, the lock token, and the API's write policy.
#[derive(Debug)]
pub struct Preconditions {
    /// What the store checks.
    options: WriteOptions,
    /// `If-Match: *`: the write needs a current session, or it is 412.
    if_match_any: bool,
    /// An `If-Match` no response of this API could have given: 412, once
    /// the request is otherwise well-formed (its 400s come first).
    unmatchable: bool,
}

impl Preconditions {
    /// What the store checks, or 412 when `If-Match` can never match.
    pub fn options(&self) -> Result<&WriteOptions, ApiError> {
        match self.unmatchable {
            true => Err(ApiError::InvalidIfMatch),
            false => Ok(&self.options),
        }
    }

    /// The write's outcome under `If-Match: *` (RFC 9110: false when there
    /// is no current representation), a session that is gone is 412, not 404.
    pub fn judge(&self, outcome: Result<Session, SessionError>) -> Result<Session, SessionError> {
        match outcome {
            Err(SessionError::NotFound) if self.if_match_any => Err(SessionError::PreconditionFailed),
            other => other,
        }
    }
}

impl FromRequestParts<ApiState> for Preconditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let lock_token = lock_token(&parts.headers)?;
        let (if_match, if_match_any, unmatchable) = match if_match(&parts.headers) {
            Ok(IfMatch::Absent) => (None, false, false),
            Ok(IfMatch::Any) => (None, true, false),
            Ok(IfMatch::Tag(tag)) => (Some(tag), false, false),
            Err(_) => (None, false, true),
        };
        let options = WriteOptions { if_match, lock_token, policy: state.write_policy().clone(), expires: None };
        Ok(Preconditions { options, if_match_any, unmatchable })
    }
}

/// The caller's lock token, if it sent one.
#[derive(Debug)]
pub struct LockTokenHeader(pub Option<LockToken>);

impl<S: Send + Sync> FromRequestParts<S> for LockTokenHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        lock_token(&parts.headers).map(LockTokenHeader)
    }
}

/// How a read is made: `?read_and_close=1` reads without locking (any
/// value but `0` and `false` counts, as does the bare flag).
#[derive(Debug, Default)]
pub struct ReadOptions {
    /// Read without taking the lock.
    pub read_and_close: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for ReadOptions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Params {
            read_and_close: Option<String>,
        }
        let Query(params) =
            Query::<Params>::try_from_uri(&parts.uri).map_err(|rejection| ApiError::BadQuery(rejection.body_text()))?;
        let read_and_close = params.read_and_close.is_some_and(|value| !matches!(value.as_str(), "0" | "false"));
        Ok(ReadOptions { read_and_close })
    }
}

/// An `If-Match` header.
#[derive(Debug, PartialEq)]
enum IfMatch {
    Absent,
    /// `*`: any data, as long as the session exists.
    Any,
    /// `"<etag>"`.
    Tag(String),
}

/// `If-Match: "<etag>"` or `*`. An entity tag this API gives out is
/// [`ETAG_LEN`] hex digits; anything else can never match (412), nor can a weak tag (`W/`):
/// `If-Match` compares strongly (RFC 9110).
fn if_match(headers: &HeaderMap) -> Result<IfMatch, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else { return Ok(IfMatch::Absent) };
    let raw = value.to_str().unwrap_or("").trim();
    if raw == "*" {
        return Ok(IfMatch::Any);
    }
    let tag = raw.trim_matches('"');
    let well_formed = tag.len() == ETAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| IfMatch::Tag(tag.to_ascii_lowercase())).ok_or(ApiError::InvalidIfMatch)
}

fn lock_token(headers: &HeaderMap) -> Result<Option<LockToken>, ApiError> {
    match headers.get(LOCK_TOKEN_HEADER) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|raw| LockToken::parse(raw.trim()).ok())
            .map(Some)
            .ok_or(ApiError::InvalidLockToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn if_match_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(if_match(&headers).unwrap(), IfMatch::Absent);
        let tag = "0123456789abcdef01234567";
        for (raw, expected) in [
            (format!("\"{tag}\""), IfMatch::Tag(tag.to_string())),
            (tag.to_uppercase(), IfMatch::Tag(tag.to_string())),
            ("*".to_string(), IfMatch::Any),
        ] {
            headers.insert(IF_MATCH, HeaderValue::from_str(&raw).unwrap());
            assert_eq!(if_match(&headers).unwrap(), expected, "{raw}");
        }
        for never_matches in ["\"abc\"".to_string(), format!("W/\"{tag}\"")] {
            headers.insert(IF_MATCH, HeaderValue::from_str(&never_matches).unwrap());
            assert!(matches!(if_match(&headers), Err(ApiError::InvalidIfMatch)), "{never_matches}");
        }
    }
}
