//! Options of the PHP DynamoDB session handler, with its defaults, plus the
//! few this store adds (lock lease, touch interval, data size). The cookie's
//! attributes belong to the HTTP API (`session-api`), not to storage.
//!
//! Library users build a [`Config`] with [`Config::builder`]; the Lambda
//! functions read it from environment variables named after each option in
//! upper case ([`Config::from_env`]). Either way a bad value is a
//! [`ConfigError`] naming the variable and the value: nothing falls back.

use std::fmt;
use std::time::Duration;

/// Environment variable names, one per option, in the order of PRODUCT.md.
pub const ENV_VARS: &[&str] = &[
    "TABLE_NAME",
    "HASH_KEY",
    "SESSION_LIFETIME",
    "CONSISTENT_READ",
    "LOCKING_STRATEGY",
    "AUTOMATIC_GC",
    "GC_BATCH_SIZE",
    "GC_OPERATION_DELAY",
    "MAX_LOCK_WAIT_TIME",
    "MIN_LOCK_RETRY_MICROTIME",
    "MAX_LOCK_RETRY_MICROTIME",
    "SESSION_NAME",
    "DATA_ATTRIBUTE",
    "SESSION_LIFETIME_ATTRIBUTE",
    "LOCK_LEASE",
    "TOUCH_INTERVAL",
    "MAX_DATA_SIZE",
];

/// DynamoDB's item limit is 400 KB including attribute names and the other
/// attributes; this leaves room for the key, expiry, version and lock.
pub const MAX_DATA_SIZE_LIMIT: usize = 390_000;

/// Attribute names this store adds beside the PHP handler's four.
pub(crate) const RESERVED_ATTRIBUTES: &[&str] = &["lock", "version", "lock_token", "lock_until_ms", "created"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockingStrategy {
    /// No locking: last writer wins, unless it sends the version it read.
    Null,
    /// A read takes a lock that other readers wait for, as in the PHP handler.
    Pessimistic,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub table_name: String,
    pub hash_key: String,
    /// Lifetime of an inactive session.
    pub session_lifetime: Duration,
    pub consistent_read: bool,
    pub locking_strategy: LockingStrategy,
    pub automatic_gc: bool,
    pub gc_batch_size: usize,
    pub gc_operation_delay: Duration,
    pub max_lock_wait_time: Duration,
    pub min_lock_retry: Duration,
    pub max_lock_retry: Duration,
    /// Cookie name and key prefix; empty = the key is the bare id.
    pub session_name: String,
    pub data_attribute: String,
    pub session_lifetime_attribute: String,
    /// How long a lock holds before one waiter may take it over.
    pub lock_lease: Duration,
    /// A read refreshes the expiry at most once per interval (0 = every read).
    pub touch_interval: Duration,
    /// Largest serialized session data, in bytes.
    pub max_data_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            table_name: "sessions".into(),
            hash_key: "id".into(),
            session_lifetime: Duration::from_secs(1440),
            consistent_read: true,
            locking_strategy: LockingStrategy::Null,
            automatic_gc: false,
            gc_batch_size: 25,
            gc_operation_delay: Duration::ZERO,
            max_lock_wait_time: Duration::from_secs(10),
            min_lock_retry: Duration::from_micros(10_000),
            max_lock_retry: Duration::from_micros(50_000),
            session_name: "PHPSESSID".into(),
            data_attribute: "data".into(),
            session_lifetime_attribute: "expires".into(),
            lock_lease: Duration::from_secs(30),
            touch_interval: Duration::from_secs(60),
            max_data_size: 65_536,
        }
    }
}

/// A bad option value: which variable, what it held, and why it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

fn bad(variable: &'static str, value: impl fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError { variable, value: value.to_string(), reason: reason.into() }
}

impl Config {
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder { config: Config::default() }
    }

    /// Reads every option from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every option through `lookup` (a variable name to its value);
    /// an unset variable takes the default, a set one must parse.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let get = |name: &'static str| lookup(name).map(|v| (name, v));

        if let Some((_, v)) = get("TABLE_NAME") {
            c.table_name = v;
        }
        if let Some((_, v)) = get("HASH_KEY") {
            c.hash_key = v;
        }
        if let Some((n, v)) = get("SESSION_LIFETIME") {
            c.session_lifetime = Duration::from_secs(parse_u64(n, &v)?);
        }
        if let Some((n, v)) = get("CONSISTENT_READ") {
            c.consistent_read = parse_bool(n, &v)?;
        }
        if let Some((n, v)) = get("LOCKING_STRATEGY") {
            c.locking_strategy = parse_strategy(n, &v)?;
        }
        if let Some((n, v)) = get("AUTOMATIC_GC") {
            c.automatic_gc = parse_bool(n, &v)?;
        }
        if let Some((n, v)) = get("GC_BATCH_SIZE") {
            c.gc_batch_size = parse_u64(n, &v)? as usize;
        }
        if let Some((n, v)) = get("GC_OPERATION_DELAY") {
            c.gc_operation_delay = parse_seconds(n, &v)?;
        }
        if let Some((n, v)) = get("MAX_LOCK_WAIT_TIME") {
            c.max_lock_wait_time = parse_seconds(n, &v)?;
        }
        if let Some((n, v)) = get("MIN_LOCK_RETRY_MICROTIME") {
            c.min_lock_retry = Duration::from_micros(parse_u64(n, &v)?);
        }
        if let Some((n, v)) = get("MAX_LOCK_RETRY_MICROTIME") {
            c.max_lock_retry = Duration::from_micros(parse_u64(n, &v)?);
        }
        if let Some((_, v)) = get("SESSION_NAME") {
            c.session_name = v;
        }
        if let Some((_, v)) = get("DATA_ATTRIBUTE") {
            c.data_attribute = v;
        }
        if let Some((_, v)) = get("SESSION_LIFETIME_ATTRIBUTE") {
            c.session_lifetime_attribute = v;
        }
        if let Some((n, v)) = get("LOCK_LEASE") {
            c.lock_lease = parse_seconds(n, &v)?;
        }
        if let Some((n, v)) = get("TOUCH_INTERVAL") {
            c.touch_interval = Duration::from_secs(parse_u64(n, &v)?);
        }
        if let Some((n, v)) = get("MAX_DATA_SIZE") {
            c.max_data_size = parse_u64(n, &v)? as usize;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every rule that a single parse cannot (ranges, relations).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let table_ok = (3..=255).contains(&self.table_name.len())
            && self.table_name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
        if !table_ok {
            return Err(bad("TABLE_NAME", &self.table_name, "must be 3 to 255 characters of A-Z a-z 0-9 _ . -"));
        }
        let attributes = [
            ("HASH_KEY", &self.hash_key),
            ("DATA_ATTRIBUTE", &self.data_attribute),
            ("SESSION_LIFETIME_ATTRIBUTE", &self.session_lifetime_attribute),
        ];
        for (i, (variable, name)) in attributes.iter().enumerate() {
            if name.is_empty() || name.len() > 255 {
                return Err(bad(variable, name, "must be an attribute name of 1 to 255 characters"));
            }
            if RESERVED_ATTRIBUTES.contains(&name.as_str()) {
                return Err(bad(variable, name, format!("is reserved; the store uses {RESERVED_ATTRIBUTES:?}")));
            }
            if attributes[..i].iter().any(|(_, other)| other == name) {
                return Err(bad(variable, name, "must differ from the other attribute names"));
            }
        }
        if self.session_lifetime.is_zero() {
            return Err(bad("SESSION_LIFETIME", 0, "must be at least 1 second"));
        }
        if !(1..=25).contains(&self.gc_batch_size) {
            return Err(bad("GC_BATCH_SIZE", self.gc_batch_size, "must be between 1 and 25"));
        }
        if self.max_lock_retry.is_zero() {
            return Err(bad("MAX_LOCK_RETRY_MICROTIME", 0, "must be at least 1 microsecond"));
        }
        if self.min_lock_retry > self.max_lock_retry {
            return Err(bad(
                "MIN_LOCK_RETRY_MICROTIME",
                self.min_lock_retry.as_micros(),
                format!("must not exceed MAX_LOCK_RETRY_MICROTIME ({})", self.max_lock_retry.as_micros()),
            ));
        }
        let name_ok = self.session_name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
            && (self.session_name.is_empty() || !self.session_name.chars().all(|ch| ch.is_ascii_digit()));
        if !name_ok {
            return Err(bad(
                "SESSION_NAME",
                &self.session_name,
                "must be empty or cookie-safe (A-Z a-z 0-9 _ . -), not only digits",
            ));
        }
        if self.lock_lease.is_zero() {
            return Err(bad("LOCK_LEASE", 0, "must be more than 0 seconds"));
        }
        if self.touch_interval >= self.session_lifetime {
            return Err(bad(
                "TOUCH_INTERVAL",
                self.touch_interval.as_secs(),
                format!("must be less than SESSION_LIFETIME ({})", self.session_lifetime.as_secs()),
            ));
        }
        if !(1..=MAX_DATA_SIZE_LIMIT).contains(&self.max_data_size) {
            return Err(bad(
                "MAX_DATA_SIZE",
                self.max_data_size,
                format!("must be between 1 and {MAX_DATA_SIZE_LIMIT} bytes (a DynamoDB item holds 400 KB)"),
            ));
        }
        Ok(())
    }

    /// This config as environment variables (the inverse of [`Config::from_env`]),
    /// in the order of [`ENV_VARS`]: what the SAM template's defaults must be.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let seconds = |d: Duration| {
            let s = d.as_secs_f64();
            if s.fract() == 0.0 {
                format!("{}", s as u64)
            } else {
                format!("{s}")
            }
        };
        vec![
            ("TABLE_NAME", self.table_name.clone()),
            ("HASH_KEY", self.hash_key.clone()),
            ("SESSION_LIFETIME", self.session_lifetime.as_secs().to_string()),
            ("CONSISTENT_READ", self.consistent_read.to_string()),
            (
                "LOCKING_STRATEGY",
                match self.locking_strategy {
                    LockingStrategy::Null => "null".into(),
                    LockingStrategy::Pessimistic => "pessimistic".into(),
                },
            ),
            ("AUTOMATIC_GC", self.automatic_gc.to_string()),
            ("GC_BATCH_SIZE", self.gc_batch_size.to_string()),
            ("GC_OPERATION_DELAY", seconds(self.gc_operation_delay)),
            ("MAX_LOCK_WAIT_TIME", seconds(self.max_lock_wait_time)),
            ("MIN_LOCK_RETRY_MICROTIME", self.min_lock_retry.as_micros().to_string()),
            ("MAX_LOCK_RETRY_MICROTIME", self.max_lock_retry.as_micros().to_string()),
            ("SESSION_NAME", self.session_name.clone()),
            ("DATA_ATTRIBUTE", self.data_attribute.clone()),
            ("SESSION_LIFETIME_ATTRIBUTE", self.session_lifetime_attribute.clone()),
            ("LOCK_LEASE", seconds(self.lock_lease)),
            ("TOUCH_INTERVAL", self.touch_interval.as_secs().to_string()),
            ("MAX_DATA_SIZE", self.max_data_size.to_string()),
        ]
    }

    /// The hash key value of a session id: `<session_name>_<id>`, as PHP writes it.
    pub fn item_key(&self, id: &str) -> String {
        if self.session_name.is_empty() {
            id.to_string()
        } else {
            format!("{}_{}", self.session_name, id)
        }
    }
}

fn parse_u64(variable: &'static str, value: &str) -> Result<u64, ConfigError> {
    value.trim().parse::<u64>().map_err(|_| bad(variable, value, "must be a whole number, 0 or more"))
}

fn parse_seconds(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let seconds: f64 = value.trim().parse().map_err(|_| bad(variable, value, "must be a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| bad(variable, value, "must be a number of seconds, 0 or more"))
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(variable, value, "must be true or false")),
    }
}

fn parse_strategy(variable: &'static str, value: &str) -> Result<LockingStrategy, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "null" | "" => Ok(LockingStrategy::Null),
        // The seed spells it "pessemistic"; PHP configurations in the wild do too.
        "pessimistic" | "pessemistic" => Ok(LockingStrategy::Pessimistic),
        _ => Err(bad(variable, value, "must be null or pessimistic")),
    }
}

/// Builds a [`Config`] for library users; `build` applies the same checks as
/// the environment does.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

macro_rules! setters {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.config.$name = value.into();
            self
        })*
    };
}

impl ConfigBuilder {
    setters! {
        table_name: String,
        hash_key: String,
        session_lifetime: Duration,
        consistent_read: bool,
        locking_strategy: LockingStrategy,
        automatic_gc: bool,
        gc_batch_size: usize,
        gc_operation_delay: Duration,
        max_lock_wait_time: Duration,
        min_lock_retry: Duration,
        max_lock_retry: Duration,
        session_name: String,
        data_attribute: String,
        session_lifetime_attribute: String,
        lock_lease: Duration,
        touch_interval: Duration,
        max_data_size: usize,
    }

    pub fn build(self) -> Result<Config, ConfigError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_php_handlers() {
        let c = from(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.table_name, "sessions");
        assert_eq!(c.hash_key, "id");
        assert_eq!(c.session_lifetime, Duration::from_secs(1440));
        assert!(c.consistent_read);
        assert_eq!(c.locking_strategy, LockingStrategy::Null);
        assert!(!c.automatic_gc);
        assert_eq!(c.gc_batch_size, 25);
        assert_eq!(c.gc_operation_delay, Duration::ZERO);
        assert_eq!(c.max_lock_wait_time, Duration::from_secs(10));
        assert_eq!(c.min_lock_retry, Duration::from_micros(10_000));
        assert_eq!(c.max_lock_retry, Duration::from_micros(50_000));
        assert_eq!(c.session_name, "PHPSESSID");
        assert_eq!(c.data_attribute, "data");
        assert_eq!(c.session_lifetime_attribute, "expires");
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("TABLE_NAME", "my-sessions"),
            ("HASH_KEY", "pk"),
            ("SESSION_LIFETIME", "600"),
            ("CONSISTENT_READ", "false"),
            ("LOCKING_STRATEGY", "pessemistic"),
            ("AUTOMATIC_GC", "true"),
            ("GC_BATCH_SIZE", "10"),
            ("GC_OPERATION_DELAY", "0.5"),
            ("MAX_LOCK_WAIT_TIME", "3"),
            ("MIN_LOCK_RETRY_MICROTIME", "1000"),
            ("MAX_LOCK_RETRY_MICROTIME", "2000"),
            ("SESSION_NAME", ""),
            ("DATA_ATTRIBUTE", "payload"),
            ("SESSION_LIFETIME_ATTRIBUTE", "ttl"),
            ("LOCK_LEASE", "5"),
            ("TOUCH_INTERVAL", "0"),
            ("MAX_DATA_SIZE", "1000"),
        ])
        .unwrap();
        assert_eq!(c.table_name, "my-sessions");
        assert_eq!(c.hash_key, "pk");
        assert_eq!(c.session_lifetime, Duration::from_secs(600));
        assert!(!c.consistent_read);
        assert_eq!(c.locking_strategy, LockingStrategy::Pessimistic);
        assert!(c.automatic_gc);
        assert_eq!(c.gc_batch_size, 10);
        assert_eq!(c.gc_operation_delay, Duration::from_millis(500));
        assert_eq!(c.max_lock_wait_time, Duration::from_secs(3));
        assert_eq!(c.min_lock_retry, Duration::from_micros(1000));
        assert_eq!(c.max_lock_retry, Duration::from_micros(2000));
        assert_eq!(c.session_name, "");
        assert_eq!(c.item_key("abc"), "abc");
        assert_eq!(c.data_attribute, "payload");
        assert_eq!(c.session_lifetime_attribute, "ttl");
        assert_eq!(c.lock_lease, Duration::from_secs(5));
        assert_eq!(c.touch_interval, Duration::ZERO);
        assert_eq!(c.max_data_size, 1000);
    }

    #[test]
    fn every_bad_value_names_its_variable_and_value() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("TABLE_NAME", "")], "TABLE_NAME", ""),
            (&[("TABLE_NAME", "bad name")], "TABLE_NAME", "bad name"),
            (&[("HASH_KEY", "")], "HASH_KEY", ""),
            (&[("HASH_KEY", "lock")], "HASH_KEY", "lock"),
            (&[("DATA_ATTRIBUTE", "id")], "DATA_ATTRIBUTE", "id"),
            (&[("SESSION_LIFETIME_ATTRIBUTE", "version")], "SESSION_LIFETIME_ATTRIBUTE", "version"),
            (&[("SESSION_LIFETIME", "-5")], "SESSION_LIFETIME", "-5"),
            (&[("SESSION_LIFETIME", "0")], "SESSION_LIFETIME", "0"),
            (&[("SESSION_LIFETIME", "ten")], "SESSION_LIFETIME", "ten"),
            (&[("CONSISTENT_READ", "maybe")], "CONSISTENT_READ", "maybe"),
            (&[("LOCKING_STRATEGY", "optimistic")], "LOCKING_STRATEGY", "optimistic"),
            (&[("AUTOMATIC_GC", "2")], "AUTOMATIC_GC", "2"),
            (&[("GC_BATCH_SIZE", "0")], "GC_BATCH_SIZE", "0"),
            (&[("GC_BATCH_SIZE", "26")], "GC_BATCH_SIZE", "26"),
            (&[("GC_OPERATION_DELAY", "-1")], "GC_OPERATION_DELAY", "-1"),
            (&[("GC_OPERATION_DELAY", "soon")], "GC_OPERATION_DELAY", "soon"),
            (&[("MAX_LOCK_WAIT_TIME", "-1")], "MAX_LOCK_WAIT_TIME", "-1"),
            (&[("MIN_LOCK_RETRY_MICROTIME", "x")], "MIN_LOCK_RETRY_MICROTIME", "x"),
            (&[("MAX_LOCK_RETRY_MICROTIME", "0"), ("MIN_LOCK_RETRY_MICROTIME", "0")], "MAX_LOCK_RETRY_MICROTIME", "0"),
            (&[("MIN_LOCK_RETRY_MICROTIME", "60000")], "MIN_LOCK_RETRY_MICROTIME", "60000"),
            (&[("SESSION_NAME", "my session")], "SESSION_NAME", "my session"),
            (&[("SESSION_NAME", "123")], "SESSION_NAME", "123"),
            (&[("LOCK_LEASE", "0")], "LOCK_LEASE", "0"),
            (&[("TOUCH_INTERVAL", "1440")], "TOUCH_INTERVAL", "1440"),
            (&[("MAX_DATA_SIZE", "0")], "MAX_DATA_SIZE", "0"),
            (&[("MAX_DATA_SIZE", "400001")], "MAX_DATA_SIZE", "400001"),
        ];
        for (env, variable, value) in cases {
            let err = from(env).expect_err(&format!("{env:?} should be refused"));
            assert_eq!(err.variable, *variable, "{env:?}");
            assert_eq!(err.value, *value, "{env:?}");
            let message = err.to_string();
            assert!(message.contains(variable) && message.contains(&format!("{value:?}")), "{message}");
        }
    }

    #[test]
    fn to_env_round_trips_and_follows_env_vars() {
        let custom = from(&[("GC_OPERATION_DELAY", "0.25"), ("LOCKING_STRATEGY", "pessimistic")]).unwrap();
        for config in [Config::default(), custom] {
            let env: HashMap<String, String> = config.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(Config::from_lookup(|name| env.get(name).cloned()).unwrap(), config);
            let names: Vec<&str> = config.to_env().iter().map(|(k, _)| *k).collect();
            assert_eq!(names, ENV_VARS);
        }
    }

    #[test]
    fn builder_applies_the_same_checks() {
        let err = Config::builder().gc_batch_size(26usize).build().unwrap_err();
        assert_eq!(err.variable, "GC_BATCH_SIZE");
        let c = Config::builder()
            .table_name("t1")
            .locking_strategy(LockingStrategy::Pessimistic)
            .session_lifetime(Duration::from_secs(60))
            .touch_interval(Duration::ZERO)
            .build();
        assert_eq!(c.unwrap_err().variable, "TABLE_NAME", "t1 is shorter than 3 characters");
    }

    #[test]
    fn env_var_list_covers_every_option_once() {
        let mut names = ENV_VARS.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ENV_VARS.len());
        // Setting each listed variable to a bad value must be noticed, so none is ignored.
        for name in ENV_VARS {
            let bad_value = match *name {
                "SESSION_NAME" | "TABLE_NAME" => "bad name!",
                "HASH_KEY" | "DATA_ATTRIBUTE" | "SESSION_LIFETIME_ATTRIBUTE" => "",
                _ => "not-a-value",
            };
            let err = from(&[(name, bad_value)]).expect_err(name);
            assert_eq!(err.variable, *name);
        }
    }
}
