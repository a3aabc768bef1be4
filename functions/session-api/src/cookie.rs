//! The session cookie, with PHP's `session.cookie_*` attributes.

use std::time::{Duration, SystemTime};

use dynamodb_sessions::{Config, SessionError, SessionId};
use lambda_http::http::header::COOKIE;
use lambda_http::http::HeaderMap;

/// Cookie name when `session_name` is empty (a cookie needs a name; the
/// item key is then the bare id).
pub const UNNAMED_SESSION_COOKIE: &str = "session";

pub struct Cookies<'a> {
    config: &'a Config,
}

impl<'a> Cookies<'a> {
    pub fn new(config: &'a Config) -> Cookies<'a> {
        Cookies { config }
    }

    pub fn name(&self) -> &str {
        match self.config.session_name.as_str() {
            "" => UNNAMED_SESSION_COOKIE,
            name => name,
        }
    }

    /// The value of our cookie, from any `Cookie` header (API Gateway may
    /// send one joined header or several).
    fn value<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| name.trim() == self.name())
            .map(|(_, value)| value.trim().trim_matches('"'))
    }

    pub fn present(&self, headers: &HeaderMap) -> bool {
        self.value(headers).is_some()
    }

    /// None without our cookie; a malformed one is InvalidId.
    pub fn session_id(&self, headers: &HeaderMap) -> Option<Result<SessionId, SessionError>> {
        self.value(headers).map(SessionId::parse)
    }

    /// `Set-Cookie` for a session. Lifetime 0 = a browser-session cookie.
    pub fn for_session(&self, id: &SessionId) -> String {
        let lifetime = self.config.cookie.lifetime;
        let max_age = (!lifetime.is_zero()).then(|| (lifetime.as_secs(), SystemTime::now() + lifetime));
        self.render(id.as_str(), max_age)
    }

    /// `Set-Cookie` that makes the browser drop the cookie.
    pub fn expired(&self) -> String {
        self.render("deleted", Some((0, SystemTime::UNIX_EPOCH + Duration::from_secs(1))))
    }

    fn render(&self, value: &str, max_age: Option<(u64, SystemTime)>) -> String {
        let c = &self.config.cookie;
        let mut out = format!("{}={}; Path={}", self.name(), value, c.path);
        if let Some(domain) = &c.domain {
            out.push_str(&format!("; Domain={domain}"));
        }
        if let Some((seconds, expires)) = max_age {
            out.push_str(&format!("; Max-Age={seconds}; Expires={}", httpdate::fmt_http_date(expires)));
        }
        if c.secure {
            out.push_str("; Secure");
        }
        if c.http_only {
            out.push_str("; HttpOnly");
        }
        out.push_str(&format!("; SameSite={}", c.same_site));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamodb_sessions::{CookieConfig, SameSite};
    use lambda_http::http::HeaderValue;

    #[test]
    fn default_cookie_is_a_secure_browser_session_cookie() {
        let config = Config::default();
        let id = SessionId::generate();
        let cookie = Cookies::new(&config).for_session(&id);
        assert_eq!(cookie, format!("PHPSESSID={id}; Path=/; Secure; HttpOnly; SameSite=Lax"));
        assert!(!cookie.contains("Max-Age"));
    }

    #[test]
    fn configured_attributes_appear() {
        let config = Config::builder()
            .cookie(CookieConfig {
                lifetime: Duration::from_secs(3600),
                path: "/app".into(),
                domain: Some("example.com".into()),
                secure: false,
                http_only: false,
                same_site: SameSite::Strict,
            })
            .build()
            .unwrap();
        let cookie = Cookies::new(&config).for_session(&SessionId::generate());
        assert!(cookie.contains("; Path=/app; Domain=example.com; Max-Age=3600; Expires="), "{cookie}");
        assert!(cookie.ends_with("GMT; SameSite=Strict"), "{cookie}");
        let expired = Cookies::new(&config).expired();
        assert!(
            expired
                .starts_with("PHPSESSID=deleted; Path=/app; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970"),
            "{expired}"
        );
    }

    #[test]
    fn reads_the_cookie_among_others_and_across_headers() {
        let config = Config::default();
        let cookies = Cookies::new(&config);
        let id = SessionId::generate();
        let mut headers = HeaderMap::new();
        assert!(cookies.session_id(&headers).is_none());
        headers.append(COOKIE, HeaderValue::from_static("theme=dark; lang=en"));
        headers.append(COOKIE, HeaderValue::from_str(&format!("other=1; PHPSESSID={id}")).unwrap());
        assert_eq!(cookies.session_id(&headers).unwrap().unwrap(), id);
        headers.insert(COOKIE, HeaderValue::from_static("PHPSESSID=bad id"));
        assert!(matches!(cookies.session_id(&headers), Some(Err(SessionError::InvalidId))));
    }
}
