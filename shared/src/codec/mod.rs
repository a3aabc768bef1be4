//! Session data as PHP stores it, so PHP apps (the AWS SDK for PHP's DynamoDB
//! `SessionHandler`) and this store can share sessions.
//!
//! A session's `data` attribute holds one of three [`DataFormat`]s:
//!
//! | format | what PHP writes | empty session |
//! |---|---|---|
//! | `json` | (this store's default) a JSON object | `{}` |
//! | `php` | PHP's default `session.serialize_handler`: `name|<serialize()d value>` per variable, no separator; names cannot contain `|` | nothing (PHP deletes `data`) |
//! | `php_serialize` | the whole `$_SESSION` array `serialize()`d: `a:<n>:{<key><value>...}` | `a:0:{}` |
//!
//! [`decode`] turns stored bytes into the session's variables as JSON
//! ([`Data`]); [`encode`] writes them back. Empty stored bytes decode to an
//! empty session in every format.
//!
//! # The JSON form of PHP values
//!
//! Lossless both ways: a session PHP wrote, decoded and encoded again
//! unchanged, is byte for byte what PHP wrote. What JSON cannot hold exactly
//! is a small tagged object, a JSON object with a `$php` key:
//!
//! | PHP value (`serialize()` text) | JSON |
//! |---|---|
//! | `N;` | `null` |
//! | `b:0;` / `b:1;` | `false` / `true` |
//! | `i:42;` | `42` (JSON integers beyond 64 bits are refused) |
//! | `d:0.5;`, `d:1;`, `d:-0;` | `0.5`, `1.0`, `-0.0`: always a JSON number with a `.` or exponent, so it stays a float |
//! | `d:INF;`, `d:-INF;`, `d:NAN;` | `{"$php":"float","value":"INF"}` (`"-INF"`, `"NAN"`) |
//! | `s:5:"héllo";` (UTF-8) | `"héllo"` |
//! | `s:2:"<ff><00>";` (not UTF-8) | `{"$php":"bytes","base64":"/wA="}` |
//! | `a:2:{i:0;s:1:"a";i:1;s:1:"b";}`: a list (keys 0..n-1 in order), `a:0:{}` | `["a","b"]`, `[]` |
//! | `a:2:{s:1:"x";i:1;i:7;i:2;}`: any other array | `{"x":1,"7":2}`: int keys as decimal strings, order kept |
//! | an array with a `$php` key or a non-UTF-8 key | `{"$php":"array","entries":[["$php",1],[7,2],[{"$php":"bytes","base64":"/w=="},3]]}` |
//! | `O:3:"Foo":2:{s:1:"a";i:1;s:6:"<00>Foo<00>b";i:2;}` | `{"$php":"object","class":"Foo","properties":{"a":1,"\u0000Foo\u0000b":2}}`: names as PHP writes them (private `\0Class\0name`, protected `\0*\0name`) |
//! | an object with an int or non-UTF-8 property key (`__serialize()` data) | `"properties": [[0,"x"],["a",1]]`: `[key, value]` pairs |
//! | `C:3:"Foo":5:{hello}` (`Serializable`) | `{"$php":"serializable","class":"Foo","data":"hello"}` (`data` a bytes tag if not UTF-8) |
//! | `E:11:"Suit:Hearts";` | `{"$php":"enum","class":"Suit","case":"Hearts"}` |
//! | `R:2;` (a PHP reference, `&`) | `{"$php":"reference","to":2}` |
//! | `r:2;` (the same object again) | `{"$php":"object_reference","to":2}` |
//!
//! Rules that follow from PHP:
//! - Array keys are PHP's: a JSON object key that is a canonical decimal
//!   integer (`7`, `-1`, not `07`) is an int key, as in PHP's `$a["7"]`. So a
//!   JSON object with keys `"0"`..`"n-1"` in order is stored as a list and reads
//!   back as a JSON array, and a nested `{}` reads back as `[]`. In `[key, value]`
//!   pairs, a JSON integer is an int key and a string a string key (for
//!   arrays, made canonical the same way; for object properties, kept as is).
//! - References count values as PHP does: every value from 1 in the order
//!   written (a container before its elements), except `reference` entries
//!   themselves; keys do not count. In `php_serialize` the session array is
//!   value 1; in `php` the numbering runs across all variables of the session.
//!   A reference must point to an earlier value (`object_reference`: to an
//!   object, enum or `serializable`). After a `serializable` value PHP's numbers
//!   include whatever its payload holds, so only `to >= 1` is checked there.
//! - The top level is the session, never a tag: its keys are the variable names.
//!   For `php_serialize` they are array keys (so `"7"` is the int key 7); for
//!   `php` they are names as written (PHP keeps `"7"` a string there, and a
//!   name may start with `!`), and a name with `|` is refused, as PHP's
//!   `session_encode()` refuses it.
//! - Refused, as PHP could not read them back or JSON cannot hold them: a
//!   malformed or unknown tag, class names PHP refuses, integers beyond 64
//!   bits, nesting deeper than [`MAX_DEPTH`]; on decoding, non-UTF-8 session
//!   variable, class or enum names, duplicate keys, trailing bytes, and
//!   references to values that do not exist.
//! - In the `json` format a `$php` key has no meaning: JSON is stored as given.
//!
//! # Detecting a stored format
//!
//! [`DataFormat::detect`] tries full parses, in this order: `json` (a JSON
//! object), `php_serialize` (one serialized array and nothing after it), `php`
//! (`name|value` pairs to the end). The first that reads the whole input wins;
//! a prefix is never trusted (a `php` variable name may begin with `{` or
//! `a:`). Data that PHP wrote in one format does not read completely in an
//! earlier one, short of a contrived variable name holding a whole JSON object
//! or serialized array.

mod error;
mod float;
mod json;
mod parse;
mod value;
mod write;

use std::fmt;
use std::str::FromStr;

pub use error::{CodecError, Position};
pub use json::tag_kind;

/// A session's variables, `$_SESSION` as JSON (see the module docs for the
/// JSON form of PHP values).
pub type Data = serde_json::Map<String, serde_json::Value>;

/// How deep arrays and objects may nest inside a session variable. PHP's own
/// `unserialize_max_depth` is 4096; session data this deep is refused as bad
/// data rather than read with deep recursion.
pub const MAX_DEPTH: usize = 128;

/// How a session's `data` attribute is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataFormat {
    /// A JSON object.
    Json,
    /// PHP's default session serializer: `name|<serialized value>` per variable.
    Php,
    /// PHP's `php_serialize` session serializer: one serialized array.
    PhpSerialize,
}

impl DataFormat {
    /// All formats, in detection order.
    pub const ALL: [DataFormat; 3] = [DataFormat::Json, DataFormat::PhpSerialize, DataFormat::Php];

    /// The format's name: `json`, `php` or `php_serialize` (PHP's handler names).
    pub const fn as_str(self) -> &'static str {
        match self {
            DataFormat::Json => "json",
            DataFormat::Php => "php",
            DataFormat::PhpSerialize => "php_serialize",
        }
    }

    /// The format of stored bytes: the first format (in the order `json`,
    /// `php_serialize`, `php`) that decodes them completely. `None` for bytes
    /// that are none of the three, and for empty bytes, which are an empty
    /// session in every format (no format to keep: use the configured one).
    pub fn detect(stored: &[u8]) -> Option<DataFormat> {
        if stored.is_empty() {
            return None;
        }
        DataFormat::ALL.into_iter().find(|format| decode(*format, stored).is_ok())
    }
}

impl fmt::Display for DataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data format name that is not `json`, `php` or `php_serialize`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown data format `{0}`: expected json, php or php_serialize")]
pub struct UnknownDataFormat(pub String);

impl FromStr for DataFormat {
    type Err = UnknownDataFormat;

    /// `json`, `php` or `php_serialize`, in any case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DataFormat::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownDataFormat(name.to_owned()))
    }
}

/// Reads stored session data in `format`. Empty bytes are an empty session.
pub fn decode(format: DataFormat, stored: &[u8]) -> Result<Data, CodecError> {
    if stored.is_empty() {
        return Ok(Data::new());
    }
    let variables = match format {
        DataFormat::Json => {
            let json: serde_json::Value = serde_json::from_slice(stored)
                .map_err(|error| CodecError::Json { line: error.line(), column: error.column() })?;
            return match json {
                serde_json::Value::Object(data) => Ok(data),
                _ => Err(CodecError::NotAMap { format }),
            };
        }
        DataFormat::Php => parse::Parser::new(stored).php_session()?,
        DataFormat::PhpSerialize => parse::Parser::new(stored).php_serialize_session()?,
    };
    Ok(variables.into_iter().map(|(name, value)| (name, json::to_json(value))).collect())
}

/// Writes session data in `format`, as PHP would: an empty session is empty
/// bytes in `php`, `a:0:{}` in `php_serialize`, `{}` in `json`.
pub fn encode(format: DataFormat, data: &Data) -> Result<Vec<u8>, CodecError> {
    let mut values = json::FromJson::new();
    match format {
        DataFormat::Json => Ok(serde_json::to_vec(data).expect("a map with string keys always serializes")),
        DataFormat::Php => {
            let mut variables = Vec::with_capacity(data.len());
            for (index, (name, json)) in data.iter().enumerate() {
                if name.contains('|') {
                    return Err(CodecError::PipeInName { at: Position::entry(&[index]) });
                }
                variables.push((name.as_str(), values.variable(index, json)?));
            }
            Ok(write::php_session(&variables))
        }
        DataFormat::PhpSerialize => {
            values.number_session_array();
            let mut variables = Vec::with_capacity(data.len());
            for (index, (name, json)) in data.iter().enumerate() {
                let key = value::Key::array_key(name.as_bytes().to_vec());
                variables.push((key, values.variable(index, json)?));
            }
            Ok(write::php_serialize_session(&variables))
        }
    }
}

#[cfg(test)]
mod tests;
