//! Writing `serialize()` text and the two PHP session formats, byte for byte
//! as PHP 8 writes them.

use super::float;
use super::value::{Key, Value};

/// PHP's `php` session format: `name|<value>` for each variable, no separator.
pub(super) fn php_session(variables: &[(&str, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in variables {
        out.extend_from_slice(name.as_bytes());
        out.push(b'|');
        write_value(&mut out, value);
    }
    out
}

/// PHP's `php_serialize` session format: the session as one serialized array.
pub(super) fn php_serialize_session(variables: &[(Key, Value)]) -> Vec<u8> {
    let mut out = b"a:".to_vec();
    write_entries(&mut out, variables);
    out
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"N;"),
        Value::Bool(value) => out.extend_from_slice(if *value { b"b:1;" } else { b"b:0;" }),
        Value::Int(int) => write_int(out, *int),
        Value::Float(value) => {
            out.extend_from_slice(b"d:");
            out.extend_from_slice(float::format(*value).as_bytes());
            out.push(b';');
        }
        Value::Str(bytes) => write_string(out, bytes),
        Value::Array(entries) => {
            out.extend_from_slice(b"a:");
            write_entries(out, entries);
        }
        Value::Object { class, properties } => {
            out.extend_from_slice(b"O:");
            write_quoted(out, class.as_bytes());
            out.push(b':');
            write_entries(out, properties);
        }
        Value::Serializable { class, payload } => {
            out.extend_from_slice(b"C:");
            write_quoted(out, class.as_bytes());
            out.extend_from_slice(format!(":{}:{{", payload.len()).as_bytes());
            out.extend_from_slice(payload);
            out.push(b'}');
        }
        Value::Enum { class, case } => {
            out.extend_from_slice(b"E:");
            write_quoted(out, format!("{class}:{case}").as_bytes());
            out.push(b';');
        }
        Value::Reference(to) => out.extend_from_slice(format!("R:{to};").as_bytes()),
        Value::ObjectReference(to) => out.extend_from_slice(format!("r:{to};").as_bytes()),
    }
}

/// `<n>:{<key><value>...}`, the body of `a:` and `O:`.
fn write_entries(out: &mut Vec<u8>, entries: &[(Key, Value)]) {
    out.extend_from_slice(format!("{}:{{", entries.len()).as_bytes());
    for (key, value) in entries {
        match key {
            Key::Int(int) => write_int(out, *int),
            Key::Str(bytes) => write_string(out, bytes),
        }
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_int(out: &mut Vec<u8>, int: i64) {
    out.extend_from_slice(format!("i:{int};").as_bytes());
}

fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(b"s:");
    write_quoted(out, bytes);
    out.push(b';');
}

/// `<len>:"<bytes>"`
fn write_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("{}:\"", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.push(b'"');
}
