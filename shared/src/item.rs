//! How a session is laid out as a DynamoDB item, and the expression
//! placeholders every request uses for its attribute names.
//!
//! The PHP handler writes four attributes (key, data, expires, lock = 1); this
//! store adds `version`, `lock_token`, `lock_until_ms` and `created`, and reads
//! an item without them as version 0 with, where `lock` is set, a lock that
//! has no lease (it holds until the session expires).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::SessionError;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const LOCK: &str = "lock";
pub(crate) const VERSION: &str = "version";
pub(crate) const LOCK_TOKEN: &str = "lock_token";
pub(crate) const LOCK_UNTIL_MS: &str = "lock_until_ms";
pub(crate) const CREATED: &str = "created";

/// Expression placeholders; none is a prefix of another.
pub(crate) const P_KEY: &str = "#key";
pub(crate) const P_DATA: &str = "#data";
pub(crate) const P_EXP: &str = "#exp";
pub(crate) const P_LOCK: &str = "#lock";
pub(crate) const P_VER: &str = "#ver";
pub(crate) const P_TOKEN: &str = "#ltok";
pub(crate) const P_LEASE: &str = "#lease";

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The attribute names behind the placeholders that `expressions` use.
/// DynamoDB refuses a request that declares a name it does not use.
pub(crate) fn names_for(config: &Config, expressions: &[&str]) -> HashMap<String, String> {
    let all = [
        (P_KEY, config.hash_key.as_str()),
        (P_DATA, config.data_attribute.as_str()),
        (P_EXP, config.session_lifetime_attribute.as_str()),
        (P_LOCK, LOCK),
        (P_VER, VERSION),
        (P_TOKEN, LOCK_TOKEN),
        (P_LEASE, LOCK_UNTIL_MS),
    ];
    all.iter()
        .filter(|(placeholder, _)| expressions.iter().any(|e| mentions(e, placeholder)))
        .map(|(placeholder, name)| (placeholder.to_string(), name.to_string()))
        .collect()
}

/// Whether `token` stands in `expression` as a whole word.
pub(crate) fn mentions(expression: &str, token: &str) -> bool {
    expression.match_indices(token).any(|(at, _)| {
        let next = expression[at + token.len()..].chars().next();
        !next.is_some_and(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    })
}

/// The state of a stored session item, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub data: Option<String>,
    pub expires: i64,
    pub version: u64,
    pub lock: Option<LockState>,
}

#[derive(Debug, Clone)]
pub(crate) struct LockState {
    pub token: Option<String>,
    /// None for a PHP-written lock, which has no lease.
    pub until_ms: Option<i64>,
}

impl Record {
    pub fn decode(config: &Config, item: &Item) -> Record {
        let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<f64>().ok());
        let lock = item.contains_key(LOCK).then(|| LockState {
            token: item.get(LOCK_TOKEN).and_then(|v| v.as_s().ok()).cloned(),
            until_ms: number(LOCK_UNTIL_MS).map(|v| v as i64),
        });
        Record {
            data: item.get(&config.data_attribute).and_then(|v| v.as_s().ok()).cloned(),
            // An item without an expiry is not a session this store serves.
            expires: number(&config.session_lifetime_attribute).map(|v| v as i64).unwrap_or(i64::MIN),
            version: number(VERSION).map(|v| v as u64).unwrap_or(0),
            lock,
        }
    }

    /// Live until the end of its `expires` second.
    pub fn is_live(&self, now_secs: i64) -> bool {
        self.expires >= now_secs
    }

    /// A lock that still excludes others: a lease not yet run out, or a PHP
    /// lock (no lease) on a live session.
    pub fn lock_is_live(&self, now_ms: i64) -> bool {
        match &self.lock {
            None => false,
            Some(LockState { until_ms: Some(until), .. }) => *until >= now_ms,
            Some(LockState { until_ms: None, .. }) => self.is_live(now_ms.div_euclid(1000)),
        }
    }

    pub fn held_by(&self, token: &str) -> bool {
        self.lock.as_ref().and_then(|l| l.token.as_deref()) == Some(token)
    }

    /// The stored data as a JSON object; an absent or empty string is `{}`,
    /// as PHP starts an empty session.
    pub fn data_object(&self) -> Result<Map<String, Value>, SessionError> {
        match self.data.as_deref() {
            None | Some("") => Ok(Map::new()),
            Some(raw) => match serde_json::from_str(raw) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(SessionError::UnreadableData),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_declared_only_when_used() {
        let config = Config::default();
        let names = names_for(&config, &["SET #lock = :one", "#lease < :now AND attribute_exists(#key)"]);
        let mut keys: Vec<_> = names.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["#key", "#lease", "#lock"]);
        assert_eq!(names["#key"], "id");
    }

    #[test]
    fn mentions_matches_whole_placeholders_only() {
        assert!(mentions("#lock = :x", "#lock"));
        assert!(!mentions("#locked = :x", "#lock"));
        assert!(mentions("a, #ver)", "#ver"));
    }

    #[test]
    fn php_item_decodes_as_version_0_with_a_lease_less_lock() {
        let config = Config::default();
        let item: Item = [
            ("id".to_string(), s("PHPSESSID_abc")),
            ("data".to_string(), s(r#"{"user.name":"jeremy"}"#)),
            ("expires".to_string(), n(2_000_000_000)),
            ("lock".to_string(), n(1)),
        ]
        .into_iter()
        .collect();
        let record = Record::decode(&config, &item);
        assert_eq!(record.version, 0);
        assert!(record.is_live(1_999_999_999));
        assert!(record.lock_is_live(1_999_999_999_000), "a PHP lock holds while the session lives");
        assert!(!record.lock_is_live(2_000_000_001_000), "and ends with it");
        assert_eq!(record.data_object().unwrap()["user.name"], "jeremy");
    }

    #[test]
    fn non_json_data_is_unreadable_not_empty() {
        let record = Record { data: Some("user.name|s:6:\"jeremy\";".into()), expires: 0, version: 0, lock: None };
        assert!(matches!(record.data_object(), Err(SessionError::UnreadableData)));
    }
}
