//! The HTTP options shared by the HTTP API and the session layer: the
//! session cookie's attributes, PHP's `session.cookie_*` settings, and what
//! HTTP clients may write (the [`WritePolicy`]: PHP objects, protected
//! keys). They are not the storage library's, which never sees a cookie
//! (the cookie's *name* is the library's `session_name`, because it is also
//! the key prefix).
//!
//! Read once at start-up from environment variables ([`HttpSettings::from_env`]);
//! a bad value is a [`ConfigError`] naming the variable and the value.

use std::time::Duration;

use cookie::SameSite;
use dynamodb_sessions::options::bounds::within;
use dynamodb_sessions::options::kinds;
use dynamodb_sessions::policy::{AllowedClasses, ProtectedKeys};
use dynamodb_sessions::{ConfigError, WritePolicy};

/// Longest cookie lifetime: browsers keep a cookie 400 days at most (RFC 6265bis).
pub const MAX_COOKIE_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

dynamodb_sessions::declare_options! {
    /// Attributes of the session cookie, and what clients may write.
    pub struct HttpSettings;
    /// Builds [`HttpSettings`]; `build` applies the defaults and every check.
    pub struct HttpSettingsBuilder(given);

    /// Cookie lifetime in seconds: 0 = a browser-session cookie (no `Max-Age`), as in PHP.
    cookie_lifetime: Duration, env "COOKIE_LIFETIME", kind kinds::whole_seconds, default Duration::ZERO,
        check |v| within(v, Duration::ZERO..=MAX_COOKIE_LIFETIME, "(400 days, the most browsers keep)");
    /// Cookie `Path`.
    cookie_path: String, env "COOKIE_PATH", kind kinds::text, default "/".into(),
        check |v| if v.starts_with('/') && cookie_text(v) { Ok(()) } else {
            Err("must start with / and hold no spaces, ; , \\ or \"".into())
        };
    /// Cookie `Domain`: empty = a host-only cookie.
    cookie_domain: Option<String>, env "COOKIE_DOMAIN", kind kinds::optional_text, default None,
        check |v| if v.as_deref().is_none_or(cookie_text) { Ok(()) } else {
            Err("must hold no spaces, ; , \\ or \"".into())
        };
    /// Cookie `Secure`.
    cookie_secure: bool, env "COOKIE_SECURE", kind kinds::flag, default true;
    /// Cookie `HttpOnly`.
    cookie_http_only: bool, env "COOKIE_HTTP_ONLY", kind kinds::flag, default true;
    /// Cookie `SameSite`: `Strict`, `Lax` or `None`.
    cookie_same_site: SameSite, env "COOKIE_SAME_SITE", kind same_site, default SameSite::Lax;
    /// Dangerous: classes whose PHP objects (and enums) clients may store new, which PHP's `session_start()`
    /// unserializes, running their magic methods: comma-separated names, `*` any (and references); empty: none.
    php_allowed_classes: AllowedClasses, env "PHP_ALLOWED_CLASSES", kind kinds::choice, default AllowedClasses::none();
    /// Session keys clients may read but never add, change or remove: comma-separated names and `prefix*` patterns.
    protected_keys: ProtectedKeys, env "PROTECTED_KEYS", kind kinds::choice, default ProtectedKeys::default();
}

/// Text a cookie attribute can hold as it is.
fn cookie_text(s: &str) -> bool {
    s.chars().all(|ch| ch.is_ascii_graphic() && !";,\\\"".contains(ch))
}

/// `SameSite` in the environment: `Strict`, `Lax` or `None`, any case.
mod same_site {
    use cookie::SameSite;

    pub fn parse(raw: &str) -> Result<SameSite, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(SameSite::Strict),
            "lax" => Ok(SameSite::Lax),
            "none" => Ok(SameSite::None),
            _ => Err("must be Strict, Lax or None".into()),
        }
    }

    pub fn render(value: &SameSite) -> String {
        value.to_string()
    }
}

impl HttpSettings {
    /// What a client's write may change.
    pub fn write_policy(&self) -> WritePolicy {
        WritePolicy { allowed_classes: self.php_allowed_classes.clone(), protected_keys: self.protected_keys.clone() }
    }

    /// The browser's rules for a cookie name's prefix (RFC 6265bis): a
    /// `__Secure-` cookie needs Secure; a `__Host-` one also Path `/` and no
    /// Domain, so no sibling domain can set or shadow it (session fixation).
    /// A browser drops a prefixed cookie that breaks them: refused here.
    pub fn check_cookie_name(&self, session_name: &str) -> Result<(), ConfigError> {
        let host = session_name.starts_with("__Host-");
        if (host || session_name.starts_with("__Secure-")) && !self.cookie_secure {
            return Err(ConfigError::new("COOKIE_SECURE", "false", format!("a {session_name} cookie must be Secure")));
        }
        if host && self.cookie_path != "/" {
            return Err(ConfigError::new("COOKIE_PATH", &self.cookie_path, "a __Host- cookie's path must be /"));
        }
        if let (true, Some(domain)) = (host, &self.cookie_domain) {
            return Err(ConfigError::new("COOKIE_DOMAIN", domain, "a __Host- cookie has no Domain"));
        }
        Ok(())
    }

    fn check_relations(&self) -> Result<(), ConfigError> {
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err(ConfigError::new(
                "COOKIE_SAME_SITE",
                "None",
                "browsers reject SameSite=None without COOKIE_SECURE=true",
            ));
        }
        Ok(())
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
    fn a_prefixed_cookie_name_follows_the_browsers_rules() {
        let defaults = from(&[]).unwrap();
        defaults.check_cookie_name("__Host-PHPSESSID").expect("Secure, Path /, no Domain: the defaults");
        defaults.check_cookie_name("__Secure-PHPSESSID").unwrap();
        for (pairs, name, variable) in [
            (&[("COOKIE_SECURE", "false")][..], "__Secure-PHPSESSID", "COOKIE_SECURE"),
            (&[("COOKIE_SECURE", "false")][..], "__Host-PHPSESSID", "COOKIE_SECURE"),
            (&[("COOKIE_PATH", "/app")][..], "__Host-PHPSESSID", "COOKIE_PATH"),
            (&[("COOKIE_DOMAIN", "example.com")][..], "__Host-PHPSESSID", "COOKIE_DOMAIN"),
        ] {
            let err = from(pairs).unwrap().check_cookie_name(name).expect_err(name);
            assert_eq!(err.variable, variable, "{pairs:?}");
        }
        from(&[("COOKIE_PATH", "/app")]).unwrap().check_cookie_name("PHPSESSID").expect("no prefix, no rule");
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
        assert_eq!(s.write_policy(), WritePolicy::untrusted(), "clients store no new PHP objects, no key protected");
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
            ("PHP_ALLOWED_CLASSES", "App\\User"),
            ("PROTECTED_KEYS", "is_admin,auth_*"),
        ])
        .unwrap();
        assert!(s.php_allowed_classes.allows("app\\user") && !s.php_allowed_classes.allows("Gadget"));
        assert!(s.protected_keys.matches("auth_user") && s.protected_keys.matches("is_admin"));
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
            (&[("PHP_ALLOWED_CLASSES", "User,*")], "PHP_ALLOWED_CLASSES", "User,*"),
            (&[("PHP_ALLOWED_CLASSES", "User;Gadget")], "PHP_ALLOWED_CLASSES", "User;Gadget"),
            (&[("PROTECTED_KEYS", "role,,is_admin")], "PROTECTED_KEYS", "role,,is_admin"),
            (&[("PROTECTED_KEYS", "a*b")], "PROTECTED_KEYS", "a*b"),
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
        let custom = from(&[
            ("COOKIE_DOMAIN", "example.com"),
            ("COOKIE_SAME_SITE", "None"),
            ("PHP_ALLOWED_CLASSES", "User,Cart"),
            ("PROTECTED_KEYS", "role,auth_*"),
        ])
        .unwrap();
        for settings in [HttpSettings::default(), custom] {
            let env: HashMap<String, String> = settings.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(HttpSettings::from_lookup(|name| env.get(name).cloned()).unwrap(), settings);
            let names: Vec<&str> = settings.to_env().iter().map(|(k, _)| *k).collect();
            let declared: Vec<&str> = HttpSettings::OPTIONS.iter().map(|o| o.variable).collect();
            assert_eq!(names, declared);
        }
    }
}
