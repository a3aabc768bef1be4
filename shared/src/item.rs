//! How a session is laid out as a DynamoDB item, the state read back from
//! one ([`Record`]), and the conditions about that state every write uses.
//!
//! The PHP handler writes four attributes: the key, `data` (S, or B with
//! `data_attribute_type=binary`), `expires` and, while it holds a lock,
//! `lock` = 1. This store adds `version` (bumped by each of its data writes),
//! `lock_token` (with `lock` holding the lease's end: see [`crate::lease`]),
//! `write_id`, `write_id_2`, `write_id_3` (markers of its last three writes,
//! so a retried write recognises its own effect) and `created`, all named in
//! [`crate::schema`]. An item without them reads as version 0.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::codec::{self, Data, DataFormat};
use crate::config::{Config, DataAttributeType};
use crate::error::SessionError;
use crate::expr::{attr_n, attr_s, Expr};
use crate::schema::{CREATED, ETAG_BYTES, LOCK, LOCK_TOKEN, MARKER_BYTES, P_DATA, P_EXP, P_KEY, VERSION, WRITE_IDS};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// One clock reading, taken once per operation so every condition and
/// judgement of that operation agrees on what "now" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    pub secs: i64,
    pub millis: i64,
}

impl Now {
    pub fn sample() -> Now {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Now { secs: millis.div_euclid(1000), millis }
    }
}

/// The serialized data as stored, with its DynamoDB type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredData {
    pub bytes: Vec<u8>,
    pub attribute_type: DataAttributeType,
}

impl StoredData {
    pub fn attribute_value(&self) -> AttributeValue {
        match self.attribute_type {
            // Encoders only emit UTF-8 for S (see `encode`); a B read as S is never written back as S.
            DataAttributeType::String => AttributeValue::S(String::from_utf8_lossy(&self.bytes).into_owned()),
            DataAttributeType::Binary => AttributeValue::B(Blob::new(self.bytes.clone())),
        }
    }
}

/// How a session's data is written: the format and the attribute type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub format: DataFormat,
    pub attribute_type: DataAttributeType,
}

impl Encoding {
    /// What sessions created here use.
    pub fn configured(config: &Config) -> Encoding {
        Encoding { format: config.data_format, attribute_type: config.data_attribute_type }
    }

    /// Serializes data, refusing it before any call when it is over the limit
    /// or cannot be held in the format. None for empty data in a format that
    /// stores it as nothing (PHP deletes the attribute of an empty session).
    pub fn encode(&self, config: &Config, data: &Data) -> Result<Option<StoredData>, SessionError> {
        let bytes = codec::encode(self.format, data).map_err(SessionError::Unrepresentable)?;
        if bytes.len() > config.max_data_size {
            return Err(SessionError::TooLarge { size: bytes.len(), limit: config.max_data_size });
        }
        // A PHP string holds any bytes; DynamoDB's S only UTF-8: such data goes to B.
        let attribute_type = match std::str::from_utf8(&bytes) {
            Ok(_) => self.attribute_type,
            Err(_) => DataAttributeType::Binary,
        };
        Ok((!bytes.is_empty()).then_some(StoredData { bytes, attribute_type }))
    }
}

/// The state of a stored session item, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub data: Option<StoredData>,
    /// Epoch seconds, rounded up: `expires > now` holds exactly when the
    /// stored number's does, fractional or not.
    pub expires: i64,
    /// The expiry as stored (a number's text), which conditions compare
    /// with: another writer may store a fraction.
    pub stored_expires: Option<String>,
    pub version: u64,
    /// The `lock` attribute: 1 for a PHP lock, else the end of our lease (epoch ms).
    pub lock: Option<i64>,
    pub lock_token: Option<String>,
    /// Markers of the last writes of ours, newest first.
    pub write_ids: Vec<String>,
}

impl Record {
    pub fn decode(config: &Config, item: &Item) -> Record {
        let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<f64>().ok());
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let data = match item.get(&config.data_attribute) {
            Some(AttributeValue::S(s)) => {
                Some(StoredData { bytes: s.clone().into_bytes(), attribute_type: DataAttributeType::String })
            }
            Some(AttributeValue::B(b)) => {
                Some(StoredData { bytes: b.clone().into_inner(), attribute_type: DataAttributeType::Binary })
            }
            _ => None,
        };
        Record {
            data,
            // An item without an expiry is not a session this store serves.
            expires: number(&config.session_lifetime_attribute).map_or(i64::MIN, |v| v.ceil() as i64),
            stored_expires: item.get(&config.session_lifetime_attribute).and_then(|v| v.as_n().ok()).cloned(),
            version: number(VERSION.name).map_or(0, |v| v as u64),
            lock: number(LOCK.name).map(|v| v as i64),
            lock_token: text(LOCK_TOKEN.name),
            write_ids: WRITE_IDS.iter().filter_map(|attribute| text(attribute.name)).collect(),
        }
    }

    /// Live while `expires` is in the future, as the PHP handler reads it
    /// (`expires <= time()` is expired), whatever TTL has done yet.
    pub fn is_live(&self, now: Now) -> bool {
        self.expires > now.secs
    }

    /// The format and type to write this session's data back in: what it
    /// holds (so a PHP session stays readable by PHP), or the configured
    /// format when it holds nothing yet.
    pub fn encoding(&self, config: &Config) -> Result<Encoding, SessionError> {
        match self.data.as_ref().filter(|d| !d.bytes.is_empty()) {
            None => Ok(Encoding::configured(config)),
            Some(data) => {
                let format = DataFormat::detect(&data.bytes).ok_or(SessionError::UnreadableData {
                    reason: "the stored data is neither JSON nor one of PHP's session formats".into(),
                })?;
                let attribute_type = match data.attribute_type {
                    // Keep S only when the configured type is S too; B stays B.
                    DataAttributeType::String => config.data_attribute_type,
                    DataAttributeType::Binary => DataAttributeType::Binary,
                };
                Ok(Encoding { format, attribute_type })
            }
        }
    }

    /// The stored data as a JSON object; absent or empty data is `{}`, as PHP
    /// starts an empty session. Data that does not decode is an error, never
    /// an empty session.
    pub fn decode_data(&self, config: &Config) -> Result<Data, SessionError> {
        let Some(data) = self.data.as_ref().filter(|d| !d.bytes.is_empty()) else {
            return Ok(Data::new());
        };
        let encoding = self.encoding(config)?;
        codec::decode(encoding.format, &data.bytes)
            .map_err(|err| SessionError::UnreadableData { reason: err.to_string() })
    }

    /// The entity tag of the session's data: changes with every write of
    /// ours (the version) and every change of the bytes (a PHP write), not
    /// with a mere refresh of the expiry.
    pub fn etag(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.version.to_be_bytes());
        if let Some(data) = &self.data {
            hash.update([matches!(data.attribute_type, DataAttributeType::Binary) as u8]);
            hash.update(&data.bytes);
        }
        let digest = hash.finalize();
        digest[..ETAG_BYTES].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
impl Record {
    /// A session item without data, at version 1, with this lock and expiry.
    pub fn locked(lock: Option<i64>, lock_token: Option<&str>, expires: i64) -> Record {
        Record {
            data: None,
            expires,
            stored_expires: Some(expires.to_string()),
            version: 1,
            lock,
            lock_token: lock_token.map(str::to_string),
            write_ids: Vec::new(),
        }
    }
}

/// Conditions about an item's session, built once here.
pub(crate) mod conditions {
    use super::*;

    /// The session exists and has not expired at `now`.
    pub fn live(config: &Config, now: Now) -> Expr {
        Expr::new(format!("attribute_exists({P_KEY}) AND {P_EXP} > :now"))
            .name(P_KEY, &config.hash_key)
            .name(P_EXP, &config.session_lifetime_attribute)
            .value(":now", attr_n(now.secs))
    }

    /// The item is a session that has expired at `now` (an item without an
    /// expiry, like the GC checkpoint, is none).
    pub fn expired(config: &Config, now: Now) -> Expr {
        Expr::new(format!("attribute_exists({P_KEY}) AND {P_EXP} <= :now"))
            .name(P_KEY, &config.hash_key)
            .name(P_EXP, &config.session_lifetime_attribute)
            .value(":now", attr_n(now.secs))
    }

    /// No item under the key yet.
    pub fn absent(config: &Config) -> Expr {
        Expr::new(format!("attribute_not_exists({P_KEY})")).name(P_KEY, &config.hash_key)
    }

    /// The item is still exactly as `record` read it: the same version (ours),
    /// expiry and data (what PHP's writes change).
    pub fn unchanged_since(config: &Config, record: &Record) -> Expr {
        let ver = VERSION.placeholder;
        let version = VERSION.bound_in(match record.version {
            0 => Expr::new(format!("attribute_not_exists({ver})")),
            v => Expr::new(format!("{ver} = :read_version")).value(":read_version", attr_n(v)),
        });
        let expires = match &record.stored_expires {
            None => Expr::new(format!("attribute_not_exists({P_EXP})")),
            Some(stored) => {
                Expr::new(format!("{P_EXP} = :read_expires")).value(":read_expires", AttributeValue::N(stored.clone()))
            }
        }
        .name(P_EXP, &config.session_lifetime_attribute);
        let data = match &record.data {
            None => Expr::new(format!("attribute_not_exists({P_DATA})")),
            Some(data) => Expr::new(format!("{P_DATA} = :read_data")).value(":read_data", data.attribute_value()),
        }
        .name(P_DATA, &config.data_attribute);
        version.and(expires).and(data)
    }

    /// The write marked `write_id` is one of the item's last three: it
    /// landed, even if other writes followed before its retry was refused.
    pub fn written_by(record: &Record, write_id: &str) -> bool {
        record.write_ids.iter().any(|id| id == write_id)
    }

    /// Whether the write marked `write_id`, conditional on the item being as
    /// `read`, is in `current`: None when more writes of ours landed since
    /// `read` than the item remembers, so it cannot be told. (PHP's writes
    /// move neither the version nor the markers.)
    pub fn landed(read: &Record, current: &Record, write_id: &str) -> Option<bool> {
        if written_by(current, write_id) {
            Some(true)
        } else if current.version.saturating_sub(read.version) <= WRITE_IDS.len() as u64 {
            Some(false)
        } else {
            None
        }
    }
}

/// A fresh random marker (128 bits) for tokens and write ids.
pub(crate) fn random_marker() -> String {
    use base64::Engine;
    let mut bytes = [0u8; MARKER_BYTES];
    getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The attributes of a new session item.
pub(crate) fn new_item(config: &Config, key: String, data: Option<&StoredData>, expires: i64, now: Now) -> Item {
    let mut item: Item = [
        (config.hash_key.clone(), attr_s(key)),
        (config.session_lifetime_attribute.clone(), attr_n(expires)),
        (VERSION.name.to_string(), attr_n(1)),
        (CREATED.name.to_string(), attr_n(now.secs)),
    ]
    .into();
    if let Some(data) = data {
        item.insert(config.data_attribute.clone(), data.attribute_value());
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn php_item(data: AttributeValue, locked: bool) -> Item {
        let mut item: Item = [
            ("id".to_string(), attr_s("PHPSESSID_abc")),
            ("data".to_string(), data),
            ("expires".to_string(), attr_n(2_000_000_000)),
        ]
        .into();
        if locked {
            item.insert("lock".into(), attr_n(1));
        }
        item
    }

    #[test]
    fn a_php_item_decodes_as_version_0_with_its_lock() {
        let record = Record::decode(&Config::default(), &php_item(attr_s(r#"{"user.name":"jeremy"}"#), true));
        assert_eq!(record.version, 0);
        assert_eq!(record.lock, Some(1));
        assert!(record.is_live(Now { secs: 1_999_999_999, millis: 1_999_999_999_000 }));
        assert!(!record.is_live(Now { secs: 2_000_000_000, millis: 2_000_000_000_000 }), "expires <= now is expired");
        assert_eq!(record.decode_data(&Config::default()).unwrap()["user.name"], "jeremy");
    }

    #[test]
    fn a_binary_data_attribute_is_read_not_taken_as_empty() {
        let item = php_item(AttributeValue::B(Blob::new(br#"{"n":3}"#.to_vec())), false);
        let record = Record::decode(&Config::default(), &item);
        assert_eq!(record.decode_data(&Config::default()).unwrap()["n"], 3);
        assert_eq!(record.encoding(&Config::default()).unwrap().attribute_type, DataAttributeType::Binary);
    }

    #[test]
    fn undecodable_data_is_an_error_not_an_empty_session() {
        let record = Record::decode(&Config::default(), &php_item(attr_s("\u{1}garbage"), false));
        assert!(matches!(record.decode_data(&Config::default()), Err(SessionError::UnreadableData { .. })));
    }

    #[test]
    fn the_etag_follows_the_data_and_version_not_the_expiry() {
        let config = Config::default();
        let a = Record::decode(&config, &php_item(attr_s("{}"), false));
        let mut touched = a.clone();
        touched.expires += 60;
        assert_eq!(a.etag(), touched.etag());
        let mut rewritten = a.clone();
        rewritten.data = Some(StoredData { bytes: b"{\"a\":1}".to_vec(), attribute_type: DataAttributeType::String });
        assert_ne!(a.etag(), rewritten.etag());
        let mut bumped = a.clone();
        bumped.version += 1;
        assert_ne!(a.etag(), bumped.etag());
    }
}
