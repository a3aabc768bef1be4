//! The HTTP API's own options: the session cookie's attributes, PHP's
//! `session.cookie_*` settings. They belong here, not in the storage
//! library, which never sees a cookie (the cookie's *name* is the library's
//! `session_name`, because it is also the key prefix).
//!
//! Read once at start-up from environment variables ([`HttpSettings::from_env`]);
//! a bad value is a [`ConfigError`] naming the variable and the value.

use std::time::Duration;

use cookie::SameSite;
use dynamodb_sessions::ConfigError;

/// Environment variable names, one per option.
pub const ENV_VARS: &[&str] =
    &["COOKIE_LIFETIME", "COOKIE_PATH", "COOKIE_DOMAIN", "COOKIE_SECURE", "COOKIE_HTTP_ONLY", "COOKIE_SAME_SITE"];

/// Longest cookie lifetime: browsers keep a cookie 400 days at most (RFC 6265bis).
pub const MAX_COOKIE_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

/// Attributes of the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// `COOKIE_LIFETIME` (seconds): 0 = a browser-session cookie (no `Max-Age`), as in PHP.
    pub cookie_lifetime: Duration,
    /// `COOKIE_PATH`.
    pub cookie_path: String,
    /// `COOKIE_DOMAIN`: empty = a host-only cookie.
    pub cookie_domain: Option<String>,
    /// `COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// `COOKIE_HTTP_ONLY`.
    pub cookie_http_only: bool,
    /// `COOKIE_SAME_SITE`: `Strict`, `Lax` or `None`.
    pub cookie_same_site: SameSite,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            cookie_lifetime: Duration::ZERO,
            cookie_path: "/".into(),
            cookie_domain: None,
            cookie_secure: true,
            cookie_http_only: true,
            cookie_same_site: SameSite::Lax,
        }
    }
}

fn invalid(variable: &'static str, value: impl ToString, reason: impl Into<String>) -> ConfigError {
    ConfigError { variable, value: value.to_string(), reason: reason.into() }
}

impl HttpSettings {
    /// Reads every option from the process environment.
    pub fn from_env() -> Result<HttpSettings, ConfigError> {
        HttpSettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every option through `lookup` (a variable name to its value): an
    /// unset variable takes the default, a set one must parse and be valid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<HttpSettings, ConfigError> {
        let flag = |variable: &'static str, value: String| match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(variable, &value, "must be true or false")),
        };
        let mut s = HttpSettings::default();
        if let Some(v) = lookup("COOKIE_LIFETIME") {
            let seconds = v
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid("COOKIE_LIFETIME", &v, "must be a whole number of seconds, 0 or more"))?;
            s.cookie_lifetime = Duration::from_secs(seconds);
        }
        if let Some(v) = lookup("COOKIE_PATH") {
            s.cookie_path = v;
        }
        if let Some(v) = lookup("COOKIE_DOMAIN") {
            s.cookie_domain = (!v.is_empty()).then_some(v);
        }
        if let Some(v) = lookup("COOKIE_SECURE") {
            s.cookie_secure = flag("COOKIE_SECURE", v)?;
        }
        if let Some(v) = lookup("COOKIE_HTTP_ONLY") {
            s.cookie_http_only = flag("COOKIE_HTTP_ONLY", v)?;
        }
        if let Some(v) = lookup("COOKIE_SAME_SITE") {
            s.cookie_same_site = match v.trim().to_ascii_lowercase().as_str() {
                "strict" => SameSite::Strict,
                "lax" => SameSite::Lax,
                "none" => SameSite::None,
                _ => return Err(invalid("COOKIE_SAME_SITE", &v, "must be Strict, Lax or None")),
            };
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks what a single parse cannot (ranges, characters, relations).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cookie_lifetime > MAX_COOKIE_LIFETIME {
            return Err(invalid(
                "COOKIE_LIFETIME",
                self.cookie_lifetime.as_secs(),
                format!("must be at most {} seconds (400 days, the most browsers keep)", MAX_COOKIE_LIFETIME.as_secs()),
            ));
        }
        let cookie_text_ok = |s: &str| s.chars().all(|ch| ch.is_ascii_graphic() && !";,\\\"".contains(ch));
        if !self.cookie_path.starts_with('/') || !cookie_text_ok(&self.cookie_path) {
            return Err(invalid(
                "COOKIE_PATH",
                &self.cookie_path,
                "must start with / and hold no spaces, ; , \\ or \"",
            ));
        }
        if let Some(domain) = &self.cookie_domain {
            if !cookie_text_ok(domain) {
                return Err(invalid("COOKIE_DOMAIN", domain, "must hold no spaces, ; , \\ or \""));
            }
        }
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err(invalid(
                "COOKIE_SAME_SITE",
                "None",
                "browsers reject SameSite=None without COOKIE_SECURE=true",
            ));
        }
        Ok(())
    }

    /// These settings as environment variables (the inverse of
    /// [`HttpSettings::from_env`]), in the order of [`ENV_VARS`]: what the SAM
    /// template's defaults must be.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("COOKIE_LIFETIME", self.cookie_lifetime.as_secs().to_string()),
            ("COOKIE_PATH", self.cookie_path.clone()),
            ("COOKIE_DOMAIN", self.cookie_domain.clone().unwrap_or_default()),
            ("COOKIE_SECURE", self.cookie_secure.to_string()),
            ("COOKIE_HTTP_ONLY", self.cookie_http_only.to_string()),
            ("COOKIE_SAME_SITE", self.cookie_same_site.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<HttpSettings, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        HttpSettings::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_are_a_secure_http_only_lax_browser_session_cookie() {
        let s = from(&[]).unwrap();
        assert_eq!(s, HttpSettings::default());
        assert_eq!(s.cookie_lifetime, Duration::ZERO);
        assert_eq!(s.cookie_path, "/");
        assert_eq!(s.cookie_domain, None);
        assert!(s.cookie_secure && s.cookie_http_only);
        assert_eq!(s.cookie_same_site, SameSite::Lax);
    }

    #[test]
    fn every_variable_is_read() {
        let s = from(&[
            ("COOKIE_LIFETIME", "3600"),
            ("COOKIE_PATH", "/app"),
            ("COOKIE_DOMAIN", "example.com"),
            ("COOKIE_SECURE", "false"),
            ("COOKIE_HTTP_ONLY", "off"),
            ("COOKIE_SAME_SITE", "strict"),
        ])
        .unwrap();
        assert_eq!(s.cookie_lifetime, Duration::from_secs(3600));
        assert_eq!(s.cookie_path, "/app");
        assert_eq!(s.cookie_domain.as_deref(), Some("example.com"));
        assert!(!s.cookie_secure && !s.cookie_http_only);
        assert_eq!(s.cookie_same_site, SameSite::Strict);
        assert_eq!(from(&[("COOKIE_DOMAIN", "")]).unwrap().cookie_domain, None, "empty = host-only");
    }

    #[test]
    fn every_bad_value_names_its_variable_and_value() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("COOKIE_LIFETIME", "-1")], "COOKIE_LIFETIME", "-1"),
            (&[("COOKIE_LIFETIME", "34560001")], "COOKIE_LIFETIME", "34560001"),
            (&[("COOKIE_LIFETIME", "99999999999999999999")], "COOKIE_LIFETIME", "99999999999999999999"),
            (&[("COOKIE_PATH", "app")], "COOKIE_PATH", "app"),
            (&[("COOKIE_PATH", "/a b")], "COOKIE_PATH", "/a b"),
            (&[("COOKIE_DOMAIN", "a;b")], "COOKIE_DOMAIN", "a;b"),
            (&[("COOKIE_SECURE", "sometimes")], "COOKIE_SECURE", "sometimes"),
            (&[("COOKIE_HTTP_ONLY", "")], "COOKIE_HTTP_ONLY", ""),
            (&[("COOKIE_SAME_SITE", "Loose")], "COOKIE_SAME_SITE", "Loose"),
            (&[("COOKIE_SAME_SITE", "None"), ("COOKIE_SECURE", "false")], "COOKIE_SAME_SITE", "None"),
        ];
        for (env, variable, value) in cases {
            let err = from(env).expect_err(&format!("{env:?} should be refused"));
            assert_eq!((err.variable, err.value.as_str()), (*variable, *value), "{env:?}");
            let message = err.to_string();
            assert!(message.contains(variable) && message.contains(&format!("{value:?}")), "{message}");
        }
        assert!(from(&[("COOKIE_LIFETIME", "34560000")]).is_ok(), "400 days is allowed");
    }

    #[test]
    fn to_env_round_trips_and_follows_env_vars() {
        let custom = from(&[("COOKIE_DOMAIN", "example.com"), ("COOKIE_SAME_SITE", "None")]).unwrap();
        for settings in [HttpSettings::default(), custom] {
            let env: HashMap<String, String> = settings.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(HttpSettings::from_lookup(|name| env.get(name).cloned()).unwrap(), settings);
            let names: Vec<&str> = settings.to_env().iter().map(|(k, _)| *k).collect();
            assert_eq!(names, ENV_VARS);
        }
    }
}
