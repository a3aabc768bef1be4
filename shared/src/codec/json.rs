//! The JSON form of PHP values: the mapping documented on the module
//! (`super`), both ways. PHP to JSON cannot fail; JSON to PHP checks
//! everything PHP would refuse.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{Map, Number, Value as Json};

use super::error::{CodecError, Position};
use super::value::{is_class_name, is_label, Key, Slots, Value};
use super::{float, MAX_DEPTH};

/// The key that makes a JSON object a tag.
const TAG: &str = "$php";

/// The kind of tag `json` is (`"object"`, `"float"`, ...), if it is one.
pub fn tag_kind(json: &Json) -> Option<&str> {
    json.as_object()?.get(TAG)?.as_str()
}

/// A PHP value as JSON.
pub(super) fn to_json(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(value) => Json::Bool(value),
        Value::Int(int) => Json::from(int),
        Value::Float(value) => match Number::from_f64(value) {
            Some(number) => Json::Number(number),
            None => tag("float", [("value", float::format(value).into())]),
        },
        Value::Str(bytes) => bytes_to_json(bytes),
        Value::Array(entries) => array_to_json(entries),
        Value::Object { class, properties } => {
            let all_names =
                properties.iter().all(|(key, _)| matches!(key, Key::Str(name) if std::str::from_utf8(name).is_ok()));
            let properties = if all_names { map(properties) } else { pairs(properties) };
            tag("object", [("class", class.into()), ("properties", properties)])
        }
        Value::Serializable { class, payload } => {
            tag("serializable", [("class", class.into()), ("data", bytes_to_json(payload))])
        }
        Value::Enum { class, case } => tag("enum", [("class", class.into()), ("case", case.into())]),
        Value::Reference(to) => tag("reference", [("to", to.into())]),
        Value::ObjectReference(to) => tag("object_reference", [("to", to.into())]),
    }
}

/// A list as a JSON array; an array whose keys JSON can hold (and that has no
/// `$php` key) as a JSON object; any other as an `array` tag.
fn array_to_json(entries: Vec<(Key, Value)>) -> Json {
    if entries.iter().enumerate().all(|(index, (key, _))| *key == Key::Int(index as i64)) {
        return Json::Array(entries.into_iter().map(|(_, value)| to_json(value)).collect());
    }
    let as_map = entries.iter().all(|(key, _)| match key {
        Key::Int(_) => true,
        Key::Str(name) => name != TAG.as_bytes() && std::str::from_utf8(name).is_ok(),
    });
    if as_map {
        map(entries)
    } else {
        tag("array", [("entries", pairs(entries))])
    }
}

/// Entries as a JSON object; the caller checked that every key is an int or UTF-8.
fn map(entries: Vec<(Key, Value)>) -> Json {
    let entries = entries.into_iter().map(|(key, value)| {
        let name = match key {
            Key::Int(int) => int.to_string(),
            Key::Str(name) => String::from_utf8_lossy(&name).into_owned(),
        };
        (name, to_json(value))
    });
    Json::Object(entries.collect())
}

/// Entries as `[[key, value], ...]`: an int key as a JSON integer, a string key
/// as a JSON string (or bytes tag).
fn pairs(entries: Vec<(Key, Value)>) -> Json {
    let pair = |(key, value)| {
        let key = match key {
            Key::Int(int) => Json::from(int),
            Key::Str(bytes) => bytes_to_json(bytes),
        };
        Json::Array(vec![key, to_json(value)])
    };
    Json::Array(entries.into_iter().map(pair).collect())
}

/// A UTF-8 string as itself, other bytes as a `bytes` tag.
fn bytes_to_json(bytes: Vec<u8>) -> Json {
    match String::from_utf8(bytes) {
        Ok(text) => Json::String(text),
        Err(error) => tag("bytes", [("base64", BASE64.encode(error.into_bytes()).into())]),
    }
}

fn tag<const N: usize>(kind: &str, fields: [(&str, Json); N]) -> Json {
    let mut tag = Map::with_capacity(N + 1);
    tag.insert(TAG.into(), kind.into());
    tag.extend(fields.map(|(name, value)| (name.to_owned(), value)));
    Json::Object(tag)
}

/// JSON to PHP values, in the order PHP numbers them (so references are checked
/// as PHP would resolve them), tracking the entry path for error positions.
pub(super) struct FromJson {
    slots: Slots,
    path: Vec<usize>,
}

impl FromJson {
    pub(super) fn new() -> Self {
        FromJson { slots: Slots::new(), path: Vec::new() }
    }

    /// The `php_serialize` session array is value number 1.
    pub(super) fn number_session_array(&mut self) {
        self.slots.push(false);
    }

    /// The value of the session variable at position `index`.
    pub(super) fn variable(&mut self, index: usize, json: &Json) -> Result<Value, CodecError> {
        self.path.push(index);
        let value = self.value(json, 0)?;
        self.path.pop();
        Ok(value)
    }

    /// The position of the entry being converted.
    pub(super) fn at(&self) -> Position {
        Position::entry(&self.path)
    }

    fn value(&mut self, json: &Json, depth: usize) -> Result<Value, CodecError> {
        if let Json::Object(tag) = json {
            if tag.contains_key(TAG) {
                return self.tagged(tag, depth);
            }
        }
        self.slots.push(false);
        Ok(match json {
            Json::Null => Value::Null,
            Json::Bool(value) => Value::Bool(*value),
            Json::Number(number) => match (number.as_i64(), number.as_f64()) {
                (Some(int), _) => Value::Int(int),
                (None, Some(value)) if !number.is_u64() => Value::Float(value),
                _ => return Err(CodecError::OutOfRange { what: "integer", at: self.at() }),
            },
            Json::String(text) => Value::Str(text.as_bytes().to_vec()),
            Json::Array(items) => {
                let depth = self.enter(depth)?;
                let mut entries = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    self.path.push(index);
                    entries.push((Key::Int(index as i64), self.value(item, depth)?));
                    self.path.pop();
                }
                Value::Array(entries)
            }
            Json::Object(map) => {
                let depth = self.enter(depth)?;
                let mut entries = Vec::with_capacity(map.len());
                for (index, (name, item)) in map.iter().enumerate() {
                    self.path.push(index);
                    entries.push((Key::array_key(name.as_bytes().to_vec()), self.value(item, depth)?));
                    self.path.pop();
                }
                Value::Array(entries)
            }
        })
    }

    fn tagged(&mut self, tag: &Map<String, Json>, depth: usize) -> Result<Value, CodecError> {
        let kind = tag[TAG].as_str().ok_or_else(|| self.bad_tag("`$php` is not a string"))?;
        let fields: &[&str] = match kind {
            "bytes" => &["base64"],
            "float" => &["value"],
            "array" => &["entries"],
            "object" => &["class", "properties"],
            "serializable" => &["class", "data"],
            "enum" => &["class", "case"],
            "reference" | "object_reference" => &["to"],
            _ => return Err(self.bad_tag("unknown `$php` kind")),
        };
        if tag.len() != fields.len() + 1 || !fields.iter().all(|field| tag.contains_key(*field)) {
            return Err(self.bad_tag("missing or unexpected fields for its kind"));
        }
        match kind {
            "reference" => {
                let to = self.index(&tag["to"])?;
                if !self.slots.reference_ok(to) {
                    return Err(CodecError::BadReference { at: self.at(), target: "value" });
                }
                return Ok(Value::Reference(to));
            }
            "object_reference" => {
                let own = self.slots.push(true);
                let to = self.index(&tag["to"])?;
                if !self.slots.object_reference_ok(to, own) {
                    return Err(CodecError::BadReference { at: self.at(), target: "object" });
                }
                return Ok(Value::ObjectReference(to));
            }
            _ => {}
        }
        self.slots.push(matches!(kind, "object" | "serializable" | "enum"));
        Ok(match kind {
            "bytes" => Value::Str(self.base64(&tag["base64"])?),
            "float" => match tag["value"].as_str() {
                Some("INF") => Value::Float(f64::INFINITY),
                Some("-INF") => Value::Float(f64::NEG_INFINITY),
                Some("NAN") => Value::Float(f64::NAN),
                _ => return Err(self.bad_tag("`value` is not \"INF\", \"-INF\" or \"NAN\"")),
            },
            "array" => {
                let depth = self.enter(depth)?;
                Value::Array(self.pairs(&tag["entries"], depth, false)?)
            }
            "object" => {
                let class = self.class(&tag["class"])?;
                let depth = self.enter(depth)?;
                let properties = match &tag["properties"] {
                    Json::Object(properties) => {
                        let mut entries = Vec::with_capacity(properties.len());
                        for (index, (name, item)) in properties.iter().enumerate() {
                            self.path.push(index);
                            entries.push((Key::Str(name.as_bytes().to_vec()), self.value(item, depth)?));
                            self.path.pop();
                        }
                        entries
                    }
                    pairs => self.pairs(pairs, depth, true)?,
                };
                Value::Object { class, properties }
            }
            "serializable" => {
                let class = self.class(&tag["class"])?;
                let payload =
                    self.bytes(&tag["data"]).ok_or_else(|| self.bad_tag("`data` is not a string or bytes tag"))?;
                self.slots.payload_seen();
                Value::Serializable { class, payload }
            }
            "enum" => {
                let class = self.class(&tag["class"])?;
                let case = tag["case"].as_str().filter(|case| is_label(case.as_bytes()));
                let case = case.ok_or_else(|| self.bad_tag("`case` is not a PHP name"))?;
                Value::Enum { class, case: case.to_owned() }
            }
            _ => unreachable!("every kind is listed above"),
        })
    }

    /// `[[key, value], ...]`: array keys made canonical as PHP does, property
    /// names kept as given.
    fn pairs(&mut self, json: &Json, depth: usize, object: bool) -> Result<Vec<(Key, Value)>, CodecError> {
        let items = json.as_array().ok_or_else(|| self.bad_tag("entries are not a list of [key, value] pairs"))?;
        let mut entries = Vec::with_capacity(items.len());
        let mut seen = HashSet::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            self.path.push(index);
            let Some([key, value]) = item.as_array().map(Vec::as_slice) else {
                return Err(self.bad_tag("an entry is not a [key, value] pair"));
            };
            let key = match (key.as_i64(), self.bytes(key)) {
                (Some(int), _) => Key::Int(int),
                (None, Some(bytes)) if object => Key::Str(bytes),
                (None, Some(bytes)) => Key::array_key(bytes),
                (None, None) => return Err(self.bad_tag("a key is not an integer, a string or a bytes tag")),
            };
            if !seen.insert(key.name()) {
                return Err(CodecError::DuplicateKey { at: self.at() });
            }
            entries.push((key, self.value(value, depth)?));
            self.path.pop();
        }
        Ok(entries)
    }

    /// A JSON string or a `bytes` tag, as bytes; `None` for anything else.
    fn bytes(&self, json: &Json) -> Option<Vec<u8>> {
        match json {
            Json::String(text) => Some(text.as_bytes().to_vec()),
            Json::Object(tag) if tag.len() == 2 && tag.get(TAG).is_some_and(|kind| kind == "bytes") => {
                BASE64.decode(tag.get("base64")?.as_str()?).ok()
            }
            _ => None,
        }
    }

    fn base64(&self, json: &Json) -> Result<Vec<u8>, CodecError> {
        let text = json.as_str().ok_or_else(|| self.bad_tag("`base64` is not a string"))?;
        BASE64.decode(text).map_err(|_| self.bad_tag("`base64` is not valid base64"))
    }

    fn class(&self, json: &Json) -> Result<String, CodecError> {
        let class = json.as_str().filter(|class| is_class_name(class.as_bytes()));
        Ok(class.ok_or_else(|| self.bad_tag("`class` is not a PHP class name"))?.to_owned())
    }

    fn index(&self, json: &Json) -> Result<u64, CodecError> {
        json.as_u64().filter(|to| *to >= 1).ok_or_else(|| self.bad_tag("`to` is not a positive integer"))
    }

    /// One level deeper, within [`MAX_DEPTH`].
    fn enter(&self, depth: usize) -> Result<usize, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep { at: self.at() });
        }
        Ok(depth + 1)
    }

    fn bad_tag(&self, reason: &'static str) -> CodecError {
        CodecError::BadTag { at: self.at(), reason }
    }
}
