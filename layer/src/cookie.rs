//! The session cookie, read and written with the `cookie` crate, with PHP's
//! `session.cookie_*` attributes ([`HttpSettings`]).

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use cookie::time::{Duration as CookieDuration, OffsetDateTime};
use cookie::Cookie;
use dynamodb_sessions::SessionId;

use crate::settings::HttpSettings;

/// Cookie name when `session_name` is empty (a cookie needs a name; the
/// item key is then the bare id).
pub const UNNAMED_SESSION_COOKIE: &str = "session";

/// The session cookie: its name (the library's `session_name`) and attributes.
#[derive(Debug, Clone)]
pub struct SessionCookie {
    name: String,
    settings: HttpSettings,
}

impl SessionCookie {
    /// The cookie named after `session_name` (or [`UNNAMED_SESSION_COOKIE`]
    /// when it is empty), with these attributes.
    pub fn new(session_name: &str, settings: HttpSettings) -> SessionCookie {
        let name = if session_name.is_empty() { UNNAMED_SESSION_COOKIE } else { session_name };
        SessionCookie { name: name.to_string(), settings }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Our cookie's value, from any `Cookie` header (API Gateway may send one
    /// joined header or several); None without it. Unparsable pairs are skipped.
    pub fn value(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == self.name)
            .map(|cookie| cookie.value_trimmed().to_string())
    }

    /// The cookie that carries a session. Lifetime 0 = a browser-session
    /// cookie (no `Max-Age` nor `Expires`), as in PHP.
    pub fn for_session(&self, id: &SessionId) -> Cookie<'static> {
        let mut cookie = self.build(id.to_string());
        let lifetime = self.settings.cookie_lifetime;
        if !lifetime.is_zero() {
            // Bounded by MAX_COOKIE_LIFETIME, so neither conversion can overflow.
            let lifetime = CookieDuration::try_from(lifetime).expect("cookie lifetime is bounded");
            cookie.set_max_age(lifetime);
            cookie.set_expires(OffsetDateTime::now_utc() + lifetime);
        }
        cookie
    }

    /// The cookie that makes the browser drop ours (same name, path and domain).
    pub fn removal(&self) -> Cookie<'static> {
        let mut cookie = self.build(String::new());
        cookie.make_removal();
        cookie
    }

    fn build(&self, value: String) -> Cookie<'static> {
        let s = &self.settings;
        let mut cookie = Cookie::build((self.name.clone(), value))
            .path(s.cookie_path.clone())
            .secure(s.cookie_secure)
            .http_only(s.cookie_http_only)
            .same_site(s.cookie_same_site)
            .build();
        if let Some(domain) = &s.cookie_domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use cookie::SameSite;
    use std::time::Duration;

    #[test]
    fn default_cookie_is_a_secure_http_only_lax_browser_session_cookie() {
        let id = SessionId::generate();
        let cookie = SessionCookie::new("PHPSESSID", HttpSettings::default()).for_session(&id);
        let parsed = Cookie::parse(cookie.to_string()).unwrap();
        assert_eq!((parsed.name(), parsed.value()), ("PHPSESSID", id.as_str()));
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!((parsed.secure(), parsed.http_only()), (Some(true), Some(true)));
        assert_eq!(parsed.same_site(), Some(SameSite::Lax));
        assert_eq!((parsed.max_age(), parsed.expires()), (None, None), "a browser-session cookie");
        assert_eq!(parsed.domain(), None);
    }

    #[test]
    fn configured_attributes_appear_and_the_removal_matches_them() {
        let settings = HttpSettings {
            cookie_lifetime: Duration::from_secs(3600),
            cookie_path: "/app".into(),
            cookie_domain: Some("example.com".into()),
            cookie_secure: false,
            cookie_http_only: false,
            cookie_same_site: SameSite::Strict,
            ..HttpSettings::default()
        };
        let cookies = SessionCookie::new("", settings);
        let cookie = Cookie::parse(cookies.for_session(&SessionId::generate()).to_string()).unwrap();
        assert_eq!(cookie.name(), UNNAMED_SESSION_COOKIE);
        assert_eq!((cookie.path(), cookie.domain()), (Some("/app"), Some("example.com")));
        assert_eq!(cookie.max_age(), Some(CookieDuration::seconds(3600)));
        let expires = cookie.expires_datetime().unwrap();
        assert!(expires > OffsetDateTime::now_utc() + CookieDuration::seconds(3500), "{expires}");
        assert_eq!((cookie.secure(), cookie.http_only()), (None, None));
        assert_eq!(cookie.same_site(), Some(SameSite::Strict));

        let removal = Cookie::parse(cookies.removal().to_string()).unwrap();
        assert_eq!((removal.name(), removal.value()), (UNNAMED_SESSION_COOKIE, ""));
        assert_eq!((removal.path(), removal.domain()), (Some("/app"), Some("example.com")));
        assert_eq!(removal.max_age(), Some(CookieDuration::ZERO));
        assert!(removal.expires_datetime().unwrap() < OffsetDateTime::now_utc());
    }

    #[test]
    fn reads_the_cookie_among_others_and_across_headers() {
        let cookies = SessionCookie::new("PHPSESSID", HttpSettings::default());
        let id = SessionId::generate();
        let mut headers = HeaderMap::new();
        assert_eq!(cookies.value(&headers), None);
        headers.append(COOKIE, HeaderValue::from_static("theme=dark; lang=en"));
        assert_eq!(cookies.value(&headers), None);
        headers.append(COOKIE, HeaderValue::from_str(&format!("other=1; PHPSESSID=\"{id}\"")).unwrap());
        assert_eq!(cookies.value(&headers).as_deref(), Some(id.as_str()));
        headers.insert(COOKIE, HeaderValue::from_static("broken; PHPSESSID=bad id"));
        assert_eq!(cookies.value(&headers).as_deref(), Some("bad id"), "read as sent; the id check refuses it");
    }
}
