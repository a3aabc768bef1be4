//! The API's CORS rules, one set for the two places that apply them: API
//! Gateway on AWS (template.yaml's `CorsConfiguration`, from the parameters
//! `CorsAllowedOrigins` and `CorsAllowCredentials`) and `sessions serve`
//! locally (`CORS_ALLOWED_ORIGINS`, `CORS_ALLOW_CREDENTIALS`), so a front
//! end built against the local server meets the same rules once deployed.
//! The function never answers CORS itself: on Lambda, API Gateway does.
//! `local/tests/drift.rs` keeps the template's the same as these.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use dynamodb_sessions::options::kinds;
use dynamodb_sessions::ConfigError;

use crate::request::LOCK_TOKEN_HEADER;

/// The methods a browser may call the API with from another origin.
pub const ALLOW_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// The request headers it may send.
pub const ALLOW_HEADERS: [&str; 4] = ["authorization", "content-type", "if-match", LOCK_TOKEN_HEADER];
/// The response headers its scripts may read (besides the CORS-safelisted ones).
pub const EXPOSE_HEADERS: [&str; 4] = ["etag", "location", "retry-after", LOCK_TOKEN_HEADER];
/// How long a browser may keep a preflight's answer.
pub const MAX_AGE: Duration = Duration::from_secs(600);

dynamodb_sessions::declare_options! {
    /// Which browser origins may call the API, and whether with the session cookie.
    pub struct CorsSettings;
    /// Builds [`CorsSettings`]; `build` applies the defaults and every check.
    pub struct CorsSettingsBuilder(given);

    /// Origins a browser app may call the API from, comma separated (`http://localhost:5173`), or `*`; empty: no CORS.
    cors_allowed_origins: AllowedOrigins, env "CORS_ALLOWED_ORIGINS", kind kinds::choice, default AllowedOrigins::None;
    /// Let cross-origin browser requests carry the session cookie (the `/session` routes); needs listed origins, not `*`.
    cors_allow_credentials: bool, env "CORS_ALLOW_CREDENTIALS", kind kinds::flag, default false;
}

impl CorsSettings {
    fn check_relations(&self) -> Result<(), ConfigError> {
        if self.cors_allow_credentials && !matches!(self.cors_allowed_origins, AllowedOrigins::Listed(_)) {
            return Err(ConfigError::new(
                "CORS_ALLOW_CREDENTIALS",
                "true",
                "browsers send credentials only to listed origins; set CORS_ALLOWED_ORIGINS to them (not empty, not *)",
            ));
        }
        Ok(())
    }
}

/// `CORS_ALLOWED_ORIGINS`: none (no CORS), any, or a list, as the
/// template's `CorsAllowedOrigins` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// No CORS: same-origin callers and servers only.
    None,
    /// `*`: any origin, without credentials.
    Any,
    /// These origins (`scheme://host[:port]`).
    Listed(Vec<String>),
}

impl FromStr for AllowedOrigins {
    type Err = String;

    /// The template parameter's pattern: `^$|^\*$|^https?://[^,\s]+(,https?://[^,\s]+)*$`.
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "" => return Ok(AllowedOrigins::None),
            "*" => return Ok(AllowedOrigins::Any),
            _ => {}
        }
        let origin = |origin: &str| {
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            rest.is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
        };
        let origins: Vec<String> = raw.split(',').map(str::to_string).collect();
        match origins.iter().find(|candidate| !origin(candidate)) {
            Some(bad) => Err(format!("{bad:?} is not an origin: give http(s)://host[:port], comma separated, or *")),
            None => Ok(AllowedOrigins::Listed(origins)),
        }
    }
}

impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedOrigins::None => Ok(()),
            AllowedOrigins::Any => f.write_str("*"),
            AllowedOrigins::Listed(origins) => f.write_str(&origins.join(",")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<CorsSettings, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CorsSettings::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn origins_read_as_the_template_takes_them() {
        assert_eq!(from(&[]).unwrap().cors_allowed_origins, AllowedOrigins::None, "off by default");
        let listed = from(&[("CORS_ALLOWED_ORIGINS", "http://localhost:5173,https://app.example.com")]).unwrap();
        let expected = vec!["http://localhost:5173".to_string(), "https://app.example.com".to_string()];
        assert_eq!(listed.cors_allowed_origins, AllowedOrigins::Listed(expected));
        assert_eq!(listed.to_env()[0].1, "http://localhost:5173,https://app.example.com");
        assert_eq!(from(&[("CORS_ALLOWED_ORIGINS", "*")]).unwrap().cors_allowed_origins, AllowedOrigins::Any);
        for bad in ["localhost:5173", "http://a.example, http://b.example", "http://", "http://a,", "ftp://a"] {
            let err = from(&[("CORS_ALLOWED_ORIGINS", bad)]).expect_err(bad);
            assert_eq!((err.variable, err.value.as_str()), ("CORS_ALLOWED_ORIGINS", bad));
        }
    }

    #[test]
    fn credentials_need_listed_origins() {
        for origins in ["", "*"] {
            let err =
                from(&[("CORS_ALLOWED_ORIGINS", origins), ("CORS_ALLOW_CREDENTIALS", "true")]).expect_err(origins);
            assert_eq!(err.variable, "CORS_ALLOW_CREDENTIALS", "{origins:?}");
        }
        let settings =
            from(&[("CORS_ALLOWED_ORIGINS", "http://localhost:5173"), ("CORS_ALLOW_CREDENTIALS", "true")]).unwrap();
        assert!(settings.cors_allow_credentials);
    }
}
