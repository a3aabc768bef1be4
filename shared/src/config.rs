//! Options of the PHP DynamoDB session handler, with its defaults, plus the
//! few this store adds (lock lease, touch interval, data size, GC budget,
//! DynamoDB timeouts). Declared once, in the table below.
//!
//! Library users build a [`Config`] with [`Config::builder`]; the Lambda
//! functions read it from environment variables named after each option in
//! upper case ([`Config::from_env`]). Either way a bad value is a
//! [`ConfigError`] naming the variable and the value: nothing falls back.
//! Every duration and size has an upper bound, and a default derived from
//! another option (the touch interval, the lock retry bounds, the attempt
//! timeout) follows that option, so a valid choice never fails because of a
//! default.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::codec::DataFormat;
use crate::options::bounds::within;
use crate::options::kinds;
pub use crate::options::ConfigError;
use crate::schema;

/// DynamoDB's item limit is 400 KB including attribute names and the other
/// attributes; this leaves room for the key, expiry, version and lock.
pub const MAX_DATA_SIZE_LIMIT: usize = 390_000;

const SECOND: Duration = Duration::from_secs(1);
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
/// Lambda's longest run; no wait or lease needs to be longer.
const FIFTEEN_MINUTES: Duration = Duration::from_secs(900);
/// How long the PHP handler waits for a lock by default (`max_lock_wait_time`).
const PHP_DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How reads lock a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockingStrategy {
    /// No locking: last writer wins, unless it sends the ETag it read.
    Null,
    /// A read takes a lock that other readers wait for, as in the PHP handler.
    Pessimistic,
}

impl FromStr for LockingStrategy {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "null" | "" => Ok(LockingStrategy::Null),
            // The seed spells it "pessemistic"; PHP configurations in the wild do too.
            "pessimistic" | "pessemistic" => Ok(LockingStrategy::Pessimistic),
            _ => Err("must be null or pessimistic".into()),
        }
    }
}

impl fmt::Display for LockingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockingStrategy::Null => "null",
            LockingStrategy::Pessimistic => "pessimistic",
        })
    }
}

/// The DynamoDB type of the data attribute (the PHP SDK's `data_attribute_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataAttributeType {
    /// `S`, the PHP SDK's default.
    String,
    /// `B`.
    Binary,
}

impl FromStr for DataAttributeType {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "string" => Ok(DataAttributeType::String),
            "binary" => Ok(DataAttributeType::Binary),
            _ => Err("must be string or binary".into()),
        }
    }
}

impl fmt::Display for DataAttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataAttributeType::String => "string",
            DataAttributeType::Binary => "binary",
        })
    }
}

crate::declare_options! {
    /// The store's settings. Build with [`Config::builder`] or read with
    /// [`Config::from_env`].
    pub struct Config;
    /// Builds a [`Config`]; `build` applies the defaults and every check.
    pub struct ConfigBuilder(given);

    /// DynamoDB table holding the sessions.
    table_name: String, env "TABLE_NAME", kind kinds::text, default "sessions".into(), check |v| table_name_rule(v);
    /// Name of the table's hash key attribute.
    hash_key: String, env "HASH_KEY", kind kinds::text, default "id".into(), check |v| attribute_name_rule(v);
    /// Lifetime of an inactive session (PHP's `session.gc_maxlifetime`).
    session_lifetime: Duration, env "SESSION_LIFETIME", kind kinds::whole_seconds, default Duration::from_secs(1440),
        check |v| within(v, SECOND..=10 * YEAR, "(seconds)");
    /// Strongly consistent reads (`false` halves a read's cost but may serve a just-written session stale).
    consistent_read: bool, env "CONSISTENT_READ", kind kinds::flag, default true;
    /// `null`, or `pessimistic`: a read locks the session until the write that follows.
    locking_strategy: LockingStrategy, env "LOCKING_STRATEGY", kind kinds::choice, default LockingStrategy::Null;
    /// Session requests occasionally run a small, time-bounded GC step.
    automatic_gc: bool, env "AUTOMATIC_GC", kind kinds::flag, default false;
    /// Conditional deletes a GC sweep sends together (1 to 25).
    gc_batch_size: usize, env "GC_BATCH_SIZE", kind kinds::count, default 25, check |v| within(v, 1..=25, "");
    /// Pause between GC batches, on top of the capacity budget.
    gc_operation_delay: Duration, env "GC_OPERATION_DELAY", kind kinds::seconds, default Duration::ZERO,
        check |v| within(v, Duration::ZERO..=Duration::from_secs(300), "");
    /// Share of the table's provisioned read and write capacity a GC sweep may use (0 to 1].
    gc_capacity_share: f64, env "GC_CAPACITY_SHARE", kind kinds::number, default 0.2,
        check |v| if *v > 0.0 && *v <= 1.0 { Ok(()) } else { Err("must be more than 0 and at most 1".into()) };
    /// Capacity units per second a GC sweep may use on an on-demand (PAY_PER_REQUEST) table.
    gc_on_demand_rate: f64, env "GC_ON_DEMAND_RATE", kind kinds::number, default 25.0,
        check |v| within(v, 1.0..=40_000.0, "units per second");
    /// How long a read waits for another request's lock before giving up (423).
    max_lock_wait_time: Duration, env "MAX_LOCK_WAIT_TIME", kind kinds::seconds, default Duration::from_secs(10),
        check |v| within(v, Duration::ZERO..=FIFTEEN_MINUTES, "");
    /// Shortest first pause of a lock waiter.
    min_lock_retry: Duration, env "MIN_LOCK_RETRY_MICROTIME", kind kinds::micros,
        default given.max_lock_retry.map_or(Duration::from_micros(10_000), |max| {
            max.clamp(Duration::from_millis(1), Duration::from_micros(10_000))
        }),
        check |v| within(v, Duration::from_millis(1)..=Duration::from_secs(10), ""), empty "derived";
    /// Longest first pause of a lock waiter.
    max_lock_retry: Duration, env "MAX_LOCK_RETRY_MICROTIME", kind kinds::micros,
        default min_lock_retry.max(Duration::from_micros(50_000)),
        check |v| within(v, Duration::from_millis(1)..=Duration::from_secs(10), ""), empty "derived";
    /// Cookie name and key prefix; empty = the key is the bare id.
    session_name: String, env "SESSION_NAME", kind kinds::text, default "PHPSESSID".into(), check |v| session_name_rule(v);
    /// Attribute holding the serialized session data.
    data_attribute: String, env "DATA_ATTRIBUTE", kind kinds::text, default "data".into(), check |v| attribute_name_rule(v);
    /// Attribute holding the expiry (epoch seconds); also the table's TTL attribute.
    session_lifetime_attribute: String, env "SESSION_LIFETIME_ATTRIBUTE", kind kinds::text, default "expires".into(),
        check |v| attribute_name_rule(v);
    /// DynamoDB type written for the data attribute: `string` (S) or `binary` (B); both are read.
    data_attribute_type: DataAttributeType, env "DATA_ATTRIBUTE_TYPE", kind kinds::choice, default DataAttributeType::String;
    /// Serialization of sessions created here: `json`, `php` or `php_serialize`; reads accept all three.
    data_format: DataFormat, env "DATA_FORMAT", kind kinds::choice, default DataFormat::Json;
    /// How long a lock holds before one waiter may take it over (a crashed holder never locks for good).
    /// The default ends within PHP's default wait (10 s), and less than the lifetime.
    lock_lease: Duration, env "LOCK_LEASE", kind kinds::seconds,
        default PHP_DEFAULT_LOCK_WAIT.min(session_lifetime / 2),
        check |v| within(v, Duration::from_millis(100)..=FIFTEEN_MINUTES, ""), empty "derived";
    /// A read refreshes the expiry at most once per interval (0 = every read, as PHP).
    touch_interval: Duration, env "TOUCH_INTERVAL", kind kinds::whole_seconds,
        default Duration::from_secs(60.min(session_lifetime.as_secs() / 2)), empty "derived";
    /// Largest serialized session data, in bytes.
    max_data_size: usize, env "MAX_DATA_SIZE", kind kinds::count, default 65_536,
        check |v| within(v, 1..=MAX_DATA_SIZE_LIMIT, "bytes (a DynamoDB item holds 400 KB)");
    /// Longest a DynamoDB call may take, retries included; then the request answers 503.
    dynamodb_operation_timeout: Duration, env "DYNAMODB_OPERATION_TIMEOUT", kind kinds::seconds,
        default Duration::from_secs(3), check |v| within(v, Duration::from_millis(100)..=Duration::from_secs(60), "");
    /// Longest one attempt of a DynamoDB call may take before the SDK retries it.
    dynamodb_attempt_timeout: Duration, env "DYNAMODB_ATTEMPT_TIMEOUT", kind kinds::seconds,
        default dynamodb_operation_timeout.min(SECOND),
        check |v| within(v, Duration::from_millis(50)..=Duration::from_secs(60), ""), empty "derived";
    /// CloudWatch namespace of the functions' metrics (one per stack when several share an account and region).
    metrics_namespace: String, env "METRICS_NAMESPACE", kind kinds::text, default crate::metrics::NAMESPACE.into(),
        check |v| metrics_namespace_rule(v);
}

fn metrics_namespace_rule(name: &str) -> Result<(), String> {
    // CloudWatch's rule: 1 to 255 characters, not starting with `AWS/`.
    let ok = (1..=255).contains(&name.len())
        && !name.starts_with("AWS/")
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-/#:".contains(ch));
    ok.then_some(()).ok_or_else(|| "must be 1 to 255 characters of A-Z a-z 0-9 . _ - / # :, not starting AWS/".into())
}

fn table_name_rule(name: &str) -> Result<(), String> {
    let ok = (3..=255).contains(&name.len()) && name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch));
    ok.then_some(()).ok_or_else(|| "must be 3 to 255 characters of A-Z a-z 0-9 _ . -".into())
}

fn attribute_name_rule(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("must be an attribute name of 1 to 255 characters".into());
    }
    if schema::ADDED.iter().any(|added| added.name == name) {
        let reserved: Vec<&str> = schema::ADDED.iter().map(|added| added.name).collect();
        return Err(format!("is reserved; the store uses {reserved:?}"));
    }
    Ok(())
}

fn session_name_rule(name: &str) -> Result<(), String> {
    let ok = name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        && (name.is_empty() || !name.chars().all(|ch| ch.is_ascii_digit()));
    ok.then_some(()).ok_or_else(|| "must be empty or cookie-safe (A-Z a-z 0-9 _ . -), not only digits".into())
}

impl Config {
    /// Checks the rules between options (each option's own bounds are
    /// checked by the builder).
    fn check_relations(&self) -> Result<(), ConfigError> {
        let attributes = [
            ("HASH_KEY", &self.hash_key),
            ("DATA_ATTRIBUTE", &self.data_attribute),
            ("SESSION_LIFETIME_ATTRIBUTE", &self.session_lifetime_attribute),
        ];
        for (i, (variable, name)) in attributes.iter().enumerate() {
            if attributes[..i].iter().any(|(_, other)| other == name) {
                return Err(ConfigError::new(variable, name, "must differ from the other attribute names"));
            }
        }
        if self.min_lock_retry > self.max_lock_retry {
            return Err(ConfigError::new(
                "MIN_LOCK_RETRY_MICROTIME",
                self.min_lock_retry.as_micros(),
                format!("must not exceed MAX_LOCK_RETRY_MICROTIME ({})", self.max_lock_retry.as_micros()),
            ));
        }
        if self.touch_interval >= self.session_lifetime {
            return Err(ConfigError::new(
                "TOUCH_INTERVAL",
                self.touch_interval.as_secs(),
                format!("must be less than SESSION_LIFETIME ({})", self.session_lifetime.as_secs()),
            ));
        }
        // Taking the lock pushes the expiry one lifetime on: a longer lease
        // would let the session expire under its holder.
        if self.lock_lease >= self.session_lifetime {
            return Err(ConfigError::new(
                "LOCK_LEASE",
                crate::options::kinds::seconds::render(&self.lock_lease),
                format!("must be less than SESSION_LIFETIME ({})", self.session_lifetime.as_secs()),
            ));
        }
        if self.dynamodb_attempt_timeout > self.dynamodb_operation_timeout {
            return Err(ConfigError::new(
                "DYNAMODB_ATTEMPT_TIMEOUT",
                crate::options::kinds::seconds::render(&self.dynamodb_attempt_timeout),
                "must not exceed DYNAMODB_OPERATION_TIMEOUT",
            ));
        }
        Ok(())
    }

    /// Whether a read takes the session's lock (`locking_strategy=pessimistic`).
    pub fn locks_on_read(&self) -> bool {
        self.locking_strategy == LockingStrategy::Pessimistic
    }

    /// The hash key value of a session id, built exactly as the PHP SDK builds
    /// it: `trim(session_name . '_' . id, '_')`.
    pub fn item_key(&self, id: &str) -> String {
        format!("{}_{}", self.session_name, id).trim_matches('_').to_string()
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
        assert_eq!(c.data_attribute_type, DataAttributeType::String);
        assert_eq!(c.data_format, DataFormat::Json);
        assert_eq!(c.touch_interval, Duration::from_secs(60));
        assert_eq!(c.lock_lease, PHP_DEFAULT_LOCK_WAIT, "a run-out lease ends within PHP's default wait");
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
            ("GC_CAPACITY_SHARE", "0.5"),
            ("GC_ON_DEMAND_RATE", "100"),
            ("MAX_LOCK_WAIT_TIME", "3"),
            ("MIN_LOCK_RETRY_MICROTIME", "1000"),
            ("MAX_LOCK_RETRY_MICROTIME", "2000"),
            ("SESSION_NAME", ""),
            ("DATA_ATTRIBUTE", "payload"),
            ("SESSION_LIFETIME_ATTRIBUTE", "ttl"),
            ("DATA_ATTRIBUTE_TYPE", "binary"),
            ("DATA_FORMAT", "php_serialize"),
            ("LOCK_LEASE", "5"),
            ("TOUCH_INTERVAL", "0"),
            ("MAX_DATA_SIZE", "1000"),
            ("DYNAMODB_OPERATION_TIMEOUT", "8"),
            ("DYNAMODB_ATTEMPT_TIMEOUT", "2.5"),
            ("METRICS_NAMESPACE", "Sessions/prod"),
        ])
        .unwrap();
        let expected = Config {
            table_name: "my-sessions".into(),
            hash_key: "pk".into(),
            session_lifetime: Duration::from_secs(600),
            consistent_read: false,
            locking_strategy: LockingStrategy::Pessimistic,
            automatic_gc: true,
            gc_batch_size: 10,
            gc_operation_delay: Duration::from_millis(500),
            gc_capacity_share: 0.5,
            gc_on_demand_rate: 100.0,
            max_lock_wait_time: Duration::from_secs(3),
            min_lock_retry: Duration::from_micros(1000),
            max_lock_retry: Duration::from_micros(2000),
            session_name: "".into(),
            data_attribute: "payload".into(),
            session_lifetime_attribute: "ttl".into(),
            data_attribute_type: DataAttributeType::Binary,
            data_format: DataFormat::PhpSerialize,
            lock_lease: Duration::from_secs(5),
            touch_interval: Duration::ZERO,
            max_data_size: 1000,
            dynamodb_operation_timeout: Duration::from_secs(8),
            metrics_namespace: "Sessions/prod".into(),
            dynamodb_attempt_timeout: Duration::from_millis(2500),
        };
        assert_eq!(c, expected);
        assert_eq!(c.to_env().len(), Config::OPTIONS.len(), "every option was set above");
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
            (&[("SESSION_LIFETIME", "99999999999999999")], "SESSION_LIFETIME", "99999999999999999"),
            (&[("CONSISTENT_READ", "maybe")], "CONSISTENT_READ", "maybe"),
            (&[("LOCKING_STRATEGY", "optimistic")], "LOCKING_STRATEGY", "optimistic"),
            (&[("AUTOMATIC_GC", "2")], "AUTOMATIC_GC", "2"),
            (&[("GC_BATCH_SIZE", "0")], "GC_BATCH_SIZE", "0"),
            (&[("GC_BATCH_SIZE", "26")], "GC_BATCH_SIZE", "26"),
            (&[("METRICS_NAMESPACE", "AWS/Lambda")], "METRICS_NAMESPACE", "AWS/Lambda"),
            (&[("METRICS_NAMESPACE", "sessions prod")], "METRICS_NAMESPACE", "sessions prod"),
            (&[("GC_OPERATION_DELAY", "-1")], "GC_OPERATION_DELAY", "-1"),
            (&[("GC_OPERATION_DELAY", "soon")], "GC_OPERATION_DELAY", "soon"),
            (&[("GC_OPERATION_DELAY", "1e300")], "GC_OPERATION_DELAY", "1e300"),
            (&[("GC_CAPACITY_SHARE", "0")], "GC_CAPACITY_SHARE", "0"),
            (&[("GC_CAPACITY_SHARE", "1.5")], "GC_CAPACITY_SHARE", "1.5"),
            (&[("GC_ON_DEMAND_RATE", "0.5")], "GC_ON_DEMAND_RATE", "0.5"),
            (&[("MAX_LOCK_WAIT_TIME", "-1")], "MAX_LOCK_WAIT_TIME", "-1"),
            (&[("MAX_LOCK_WAIT_TIME", "1e20")], "MAX_LOCK_WAIT_TIME", "1e20"),
            (&[("MIN_LOCK_RETRY_MICROTIME", "x")], "MIN_LOCK_RETRY_MICROTIME", "x"),
            (&[("MIN_LOCK_RETRY_MICROTIME", "0")], "MIN_LOCK_RETRY_MICROTIME", "0"),
            (&[("MAX_LOCK_RETRY_MICROTIME", "0")], "MAX_LOCK_RETRY_MICROTIME", "0"),
            (
                &[("MIN_LOCK_RETRY_MICROTIME", "60000"), ("MAX_LOCK_RETRY_MICROTIME", "50000")],
                "MIN_LOCK_RETRY_MICROTIME",
                "60000",
            ),
            (&[("SESSION_NAME", "my session")], "SESSION_NAME", "my session"),
            (&[("SESSION_NAME", "123")], "SESSION_NAME", "123"),
            (&[("DATA_ATTRIBUTE_TYPE", "blob")], "DATA_ATTRIBUTE_TYPE", "blob"),
            (&[("DATA_FORMAT", "xml")], "DATA_FORMAT", "xml"),
            (&[("LOCK_LEASE", "0")], "LOCK_LEASE", "0"),
            (&[("LOCK_LEASE", "1e12")], "LOCK_LEASE", "1e12"),
            (&[("TOUCH_INTERVAL", "1440")], "TOUCH_INTERVAL", "1440"),
            // A locked session would expire under its holder.
            (&[("SESSION_LIFETIME", "60"), ("LOCK_LEASE", "60")], "LOCK_LEASE", "60"),
            (&[("MAX_DATA_SIZE", "0")], "MAX_DATA_SIZE", "0"),
            (&[("MAX_DATA_SIZE", "400001")], "MAX_DATA_SIZE", "400001"),
            (&[("DYNAMODB_OPERATION_TIMEOUT", "0")], "DYNAMODB_OPERATION_TIMEOUT", "0"),
            (&[("DYNAMODB_ATTEMPT_TIMEOUT", "5")], "DYNAMODB_ATTEMPT_TIMEOUT", "5"),
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
    fn a_default_follows_the_options_it_derives_from() {
        // A short lifetime alone: the touch interval follows it.
        let short = from(&[("SESSION_LIFETIME", "2")]).unwrap();
        assert_eq!(short.touch_interval, Duration::from_secs(1));
        assert_eq!(from(&[("SESSION_LIFETIME", "1")]).unwrap().touch_interval, Duration::ZERO);
        // One retry bound alone: the other follows it.
        let slow = from(&[("MIN_LOCK_RETRY_MICROTIME", "60000")]).unwrap();
        assert_eq!(slow.max_lock_retry, Duration::from_micros(60_000));
        let fast = from(&[("MAX_LOCK_RETRY_MICROTIME", "5000")]).unwrap();
        assert_eq!(fast.min_lock_retry, Duration::from_micros(5000));
        // A short operation timeout alone: the attempt timeout follows it.
        let quick = from(&[("DYNAMODB_OPERATION_TIMEOUT", "0.5")]).unwrap();
        assert_eq!(quick.dynamodb_attempt_timeout, Duration::from_millis(500));
    }

    #[test]
    fn a_derived_option_set_empty_is_derived() {
        // What SAM passes for a template parameter left empty ("Empty:
        // derived"): not an error, the same as unset.
        let empty = from(&[
            ("SESSION_LIFETIME", "2"),
            ("TOUCH_INTERVAL", ""),
            ("LOCK_LEASE", ""),
            ("MIN_LOCK_RETRY_MICROTIME", ""),
            ("MAX_LOCK_RETRY_MICROTIME", ""),
            ("DYNAMODB_ATTEMPT_TIMEOUT", ""),
        ])
        .unwrap();
        assert_eq!(empty, from(&[("SESSION_LIFETIME", "2")]).unwrap());
        assert_eq!(empty.lock_lease, Duration::from_secs(1), "half a short lifetime");
        // Any other option set empty is still a bad value.
        let err = from(&[("MAX_LOCK_WAIT_TIME", "")]).unwrap_err();
        assert_eq!(err.variable, "MAX_LOCK_WAIT_TIME");
    }

    #[test]
    fn the_largest_values_are_safe_to_compute_with() {
        let c = from(&[
            ("SESSION_LIFETIME", &(10 * 365 * 24 * 3600).to_string()),
            ("LOCK_LEASE", "900"),
            ("MAX_LOCK_WAIT_TIME", "900"),
            ("MAX_LOCK_RETRY_MICROTIME", "10000000"),
        ])
        .unwrap();
        let now_ms = i64::MAX / 4;
        assert!(now_ms.checked_add(c.session_lifetime.as_millis() as i64).is_some());
        assert!(std::time::Instant::now().checked_add(c.max_lock_wait_time).is_some());
    }

    #[test]
    fn to_env_round_trips() {
        let custom =
            from(&[("GC_OPERATION_DELAY", "0.25"), ("LOCKING_STRATEGY", "pessimistic"), ("DATA_FORMAT", "php")])
                .unwrap();
        for config in [Config::default(), custom] {
            let env: HashMap<String, String> = config.to_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(Config::from_lookup(|name| env.get(name).cloned()).unwrap(), config);
            let names: Vec<&str> = config.to_env().iter().map(|(k, _)| *k).collect();
            let declared: Vec<&str> = Config::OPTIONS.iter().map(|o| o.variable).collect();
            assert_eq!(names, declared);
        }
    }

    #[test]
    fn builder_applies_the_same_checks() {
        let err = Config::builder().gc_batch_size(26usize).build().unwrap_err();
        assert_eq!((err.variable, err.value.as_str()), ("GC_BATCH_SIZE", "26"));
        let err = Config::builder().table_name("t1").build().unwrap_err();
        assert_eq!(err.variable, "TABLE_NAME", "t1 is shorter than 3 characters");
    }

    #[test]
    fn item_keys_are_built_as_the_php_sdk_builds_them() {
        let php = Config::default();
        assert_eq!(php.item_key("abc"), "PHPSESSID_abc");
        let bare = Config::builder().session_name("").build().unwrap();
        assert_eq!(bare.item_key("abc"), "abc");
        let underscored = Config::builder().session_name("_app_").build().unwrap();
        assert_eq!(underscored.item_key("abc"), "app__abc");
    }

    #[test]
    fn every_declared_variable_is_read() {
        // Setting each variable to a bad value must be noticed, so none is ignored.
        for option in Config::OPTIONS {
            let bad_value = match option.variable {
                "SESSION_NAME" | "TABLE_NAME" | "METRICS_NAMESPACE" => "bad name!",
                "HASH_KEY" | "DATA_ATTRIBUTE" | "SESSION_LIFETIME_ATTRIBUTE" => "",
                _ => "not-a-value",
            };
            let err = from(&[(option.variable, bad_value)]).expect_err(option.variable);
            assert_eq!(err.variable, option.variable);
            assert!(!option.doc.trim().is_empty(), "{} has a doc comment", option.variable);
        }
    }
}
