//! Reading `serialize()` text and the two PHP session formats built on it.
//!
//! The grammar is PHP's `unserialize()` (ext/standard/var_unserializer.re)
//! without the parts PHP never writes (`S:` escaped strings, `o:`), and
//! stricter where PHP is lenient with data it never writes: trailing bytes,
//! duplicate keys and out-of-range integers are errors here (PHP ignores,
//! overwrites or clamps them). Every length and count is checked against the
//! remaining input before anything is allocated for it.

use std::collections::HashSet;

use super::error::{CodecError, Position};
use super::value::{is_class_name, is_label, Key, Slots, Value};
use super::{float, MAX_DEPTH};

/// The smallest array element: `i:0;N;`. Counts beyond remaining / this are refused.
const MIN_ELEMENT_LEN: usize = 6;
/// Room reserved ahead for an array's entries: a declared count is only a
/// claim, and nested arrays each claiming the whole input would multiply it.
const RESERVED_ENTRIES: usize = 16;

/// An item being read, for error messages.
#[derive(Clone, Copy)]
struct Item {
    what: &'static str,
    start: usize,
}

pub(super) struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    slots: Slots,
}

impl<'a> Parser<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        Parser { input, pos: 0, slots: Slots::new() }
    }

    /// PHP's `php` session format: `name|<value>` repeated, names without `|`.
    pub(super) fn php_session(mut self) -> Result<Vec<(String, Value)>, CodecError> {
        let mut variables = Vec::new();
        let mut seen = HashSet::new();
        while self.pos < self.input.len() {
            let start = self.pos;
            let Some(length) = self.input[start..].iter().position(|&b| b == b'|') else {
                return Err(CodecError::Truncated { what: "session variable", at: Position::Byte(start) });
            };
            let name = &self.input[start..start + length];
            let name = std::str::from_utf8(name)
                .map_err(|_| CodecError::NotUtf8 { what: "session variable name", at: Position::Byte(start) })?;
            if !seen.insert(name) {
                return Err(CodecError::DuplicateKey { at: Position::Byte(start) });
            }
            self.pos = start + length + 1;
            let value = self.value(0)?;
            variables.push((name.to_owned(), value));
        }
        Ok(variables)
    }

    /// PHP's `php_serialize` session format: one serialized array, its keys
    /// the session variables (int keys as decimal strings).
    pub(super) fn php_serialize_session(mut self) -> Result<Vec<(String, Value)>, CodecError> {
        if !self.input.starts_with(b"a") {
            // Not an array; but a broken array is reported as such below.
            return Err(match self.value(0) {
                Err(error) => error,
                Ok(_) => CodecError::NotAMap { format: super::DataFormat::PhpSerialize },
            });
        }
        let item = Item { what: "array", start: 0 };
        self.pos = 1;
        self.slots.push(false);
        self.expect(b':', "`:`", item)?;
        let count = self.count(item)?;
        self.expect(b':', "`:`", item)?;
        self.expect(b'{', "`{`", item)?;
        let mut variables = Vec::with_capacity(count.min(RESERVED_ENTRIES));
        let mut seen = HashSet::with_capacity(count.min(RESERVED_ENTRIES));
        for _ in 0..count {
            let key_start = self.pos;
            let key = self.key(item, false)?;
            if !seen.insert(key.clone()) {
                return Err(CodecError::DuplicateKey { at: Position::Byte(key_start) });
            }
            let name = match key {
                Key::Int(int) => int.to_string(),
                Key::Str(bytes) => String::from_utf8(bytes).map_err(|_| CodecError::NotUtf8 {
                    what: "session variable name",
                    at: Position::Byte(key_start),
                })?,
            };
            variables.push((name, self.value(0)?));
        }
        self.expect(b'}', "`}` after the declared number of elements", item)?;
        if self.pos < self.input.len() {
            return Err(CodecError::TrailingBytes { at: Position::Byte(self.pos) });
        }
        Ok(variables)
    }

    /// One value; `depth` counts the arrays and objects around it.
    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        let start = self.pos;
        let Some(&marker) = self.input.get(start) else {
            return Err(CodecError::Truncated { what: "value", at: Position::Byte(start) });
        };
        self.pos += 1;
        let item = |what| Item { what, start };
        if marker == b'R' {
            // A reference is the one item PHP does not number.
            let item = item("reference");
            self.expect(b':', "`:`", item)?;
            let to = self.uint(item)?;
            self.expect(b';', "`;`", item)?;
            if !self.slots.reference_ok(to) {
                return Err(CodecError::BadReference { at: Position::Byte(start), target: "value" });
            }
            return Ok(Value::Reference(to));
        }
        let own = self.slots.push(matches!(marker, b'O' | b'C' | b'E' | b'r'));
        match marker {
            b'N' => {
                self.expect(b';', "`;`", item("null"))?;
                Ok(Value::Null)
            }
            b'b' => {
                let item = item("boolean");
                self.expect(b':', "`:`", item)?;
                let value = match self.next(item)? {
                    b'0' => false,
                    b'1' => true,
                    _ => return Err(self.syntax(item, "`0` or `1`", self.pos - 1)),
                };
                self.expect(b';', "`;`", item)?;
                Ok(Value::Bool(value))
            }
            b'i' => {
                let item = item("integer");
                self.expect(b':', "`:`", item)?;
                let value = self.int(item)?;
                self.expect(b';', "`;`", item)?;
                Ok(Value::Int(value))
            }
            b'd' => {
                let item = item("float");
                self.expect(b':', "`:`", item)?;
                let from = self.pos;
                let Some(length) = self.input[from..].iter().position(|&b| b == b';') else {
                    return Err(self.truncated(item));
                };
                let value = float::parse(&self.input[from..from + length])
                    .ok_or(CodecError::Invalid { what: "float", at: Position::Byte(start) })?;
                self.pos = from + length + 1;
                Ok(Value::Float(value))
            }
            b's' => {
                let item = item("string");
                self.expect(b':', "`:`", item)?;
                let bytes = self.quoted(item)?.to_vec();
                self.expect(b';', "`;`", item)?;
                Ok(Value::Str(bytes))
            }
            b'a' => {
                let item = item("array");
                self.expect(b':', "`:`", item)?;
                let count = self.count(item)?;
                self.expect(b':', "`:`", item)?;
                self.expect(b'{', "`{`", item)?;
                Ok(Value::Array(self.entries(count, depth, item, false)?))
            }
            b'O' => {
                let item = item("object");
                self.expect(b':', "`:`", item)?;
                let class = self.class_name(item)?;
                self.expect(b':', "`:`", item)?;
                let count = self.count(item)?;
                self.expect(b':', "`:`", item)?;
                self.expect(b'{', "`{`", item)?;
                let properties = self.entries(count, depth, item, true)?;
                Ok(Value::Object { class, properties })
            }
            b'C' => {
                let item = item("serializable object");
                self.expect(b':', "`:`", item)?;
                let class = self.class_name(item)?;
                self.expect(b':', "`:`", item)?;
                let length = self.length(item)?;
                self.expect(b':', "`:`", item)?;
                self.expect(b'{', "`{`", item)?;
                let payload = self.take(length, item)?.to_vec();
                self.expect(b'}', "`}`", item)?;
                self.slots.payload_seen();
                Ok(Value::Serializable { class, payload })
            }
            b'E' => {
                let item = item("enum");
                self.expect(b':', "`:`", item)?;
                let name_start = self.pos;
                let name = self.quoted(item)?;
                let (class, case) = match name.iter().position(|&b| b == b':') {
                    Some(colon) if is_class_name(&name[..colon]) && is_label(&name[colon + 1..]) => {
                        (&name[..colon], &name[colon + 1..])
                    }
                    _ => return Err(CodecError::Invalid { what: "enum name", at: Position::Byte(name_start) }),
                };
                let utf8 = |bytes: &[u8]| {
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| CodecError::NotUtf8 { what: "enum name", at: Position::Byte(name_start) })
                };
                let (class, case) = (utf8(class)?, utf8(case)?);
                self.expect(b';', "`;`", item)?;
                Ok(Value::Enum { class, case })
            }
            b'r' => {
                let item = item("object reference");
                self.expect(b':', "`:`", item)?;
                let to = self.uint(item)?;
                self.expect(b';', "`;`", item)?;
                if !self.slots.object_reference_ok(to, own) {
                    return Err(CodecError::BadReference { at: Position::Byte(start), target: "object" });
                }
                Ok(Value::ObjectReference(to))
            }
            _ => Err(CodecError::Invalid { what: "type marker", at: Position::Byte(start) }),
        }
    }

    /// `count` keys and values, then `}`.
    fn entries(
        &mut self,
        count: usize,
        depth: usize,
        item: Item,
        object: bool,
    ) -> Result<Vec<(Key, Value)>, CodecError> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep { at: Position::Byte(item.start) });
        }
        let mut entries = Vec::with_capacity(count.min(RESERVED_ENTRIES));
        let mut seen = HashSet::with_capacity(count.min(RESERVED_ENTRIES));
        for _ in 0..count {
            let key_start = self.pos;
            let key = self.key(item, object)?;
            if !seen.insert(key.name()) {
                return Err(CodecError::DuplicateKey { at: Position::Byte(key_start) });
            }
            entries.push((key, self.value(depth)?));
        }
        self.expect(b'}', "`}` after the declared number of elements", item)?;
        Ok(entries)
    }

    /// An array key (made canonical as PHP does) or a property name (kept as written).
    fn key(&mut self, container: Item, object: bool) -> Result<Key, CodecError> {
        let start = self.pos;
        let marker = self.next(container)?;
        let item = Item { what: if object { "property name" } else { "array key" }, start };
        match marker {
            b'i' => {
                self.expect(b':', "`:`", item)?;
                let int = self.int(item)?;
                self.expect(b';', "`;`", item)?;
                Ok(Key::Int(int))
            }
            b's' => {
                self.expect(b':', "`:`", item)?;
                let bytes = self.quoted(item)?.to_vec();
                self.expect(b';', "`;`", item)?;
                Ok(if object { Key::Str(bytes) } else { Key::array_key(bytes) })
            }
            _ => Err(self.syntax(item, "`i` or `s`", start)),
        }
    }

    /// `<len>:"<name>"`, a class name PHP accepts.
    fn class_name(&mut self, item: Item) -> Result<String, CodecError> {
        let start = self.pos;
        let name = self.quoted(item)?;
        if !is_class_name(name) {
            return Err(CodecError::Invalid { what: "class name", at: Position::Byte(start) });
        }
        String::from_utf8(name.to_vec())
            .map_err(|_| CodecError::NotUtf8 { what: "class name", at: Position::Byte(start) })
    }

    /// `<len>:"<bytes>"`: the bytes, which may hold `"` and NUL.
    fn quoted(&mut self, item: Item) -> Result<&'a [u8], CodecError> {
        let length = self.length(item)?;
        self.expect(b':', "`:`", item)?;
        self.expect(b'"', "`\"`", item)?;
        let bytes = self.take(length, item)?;
        self.expect(b'"', "`\"` after the declared length", item)?;
        Ok(bytes)
    }

    /// A length that the remaining input can hold.
    fn length(&mut self, item: Item) -> Result<usize, CodecError> {
        let length = self.uint(item)?;
        match usize::try_from(length) {
            Ok(length) if length <= self.input.len() - self.pos => Ok(length),
            _ => Err(self.truncated(item)),
        }
    }

    /// An element count that the remaining input can hold.
    fn count(&mut self, item: Item) -> Result<usize, CodecError> {
        let start = self.pos;
        let count = self.uint(item)?;
        match usize::try_from(count) {
            Ok(count) if count <= (self.input.len() - self.pos) / MIN_ELEMENT_LEN => Ok(count),
            _ => Err(CodecError::CountTooLarge { at: Position::Byte(start) }),
        }
    }

    /// `[0-9]+` as a u64.
    fn uint(&mut self, item: Item) -> Result<u64, CodecError> {
        let start = self.pos;
        let digits = self.input[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(self.at_end_or_syntax(item, "a digit"));
        }
        self.pos += digits;
        let text = std::str::from_utf8(&self.input[start..self.pos]).unwrap_or_default();
        text.parse().map_err(|_| CodecError::OutOfRange { what: "number", at: Position::Byte(start) })
    }

    /// `[+-]?[0-9]+` as an i64.
    fn int(&mut self, item: Item) -> Result<i64, CodecError> {
        let start = self.pos;
        if matches!(self.input.get(start), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits = self.input[self.pos..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(self.at_end_or_syntax(item, "a digit"));
        }
        self.pos += digits;
        let text = std::str::from_utf8(&self.input[start..self.pos]).unwrap_or_default();
        text.parse().map_err(|_| CodecError::OutOfRange { what: "integer", at: Position::Byte(start) })
    }

    fn take(&mut self, length: usize, item: Item) -> Result<&'a [u8], CodecError> {
        let bytes = self.input.get(self.pos..self.pos + length).ok_or_else(|| self.truncated(item))?;
        self.pos += length;
        Ok(bytes)
    }

    fn next(&mut self, item: Item) -> Result<u8, CodecError> {
        let byte = *self.input.get(self.pos).ok_or_else(|| self.truncated(item))?;
        self.pos += 1;
        Ok(byte)
    }

    fn expect(&mut self, byte: u8, expected: &'static str, item: Item) -> Result<(), CodecError> {
        match self.input.get(self.pos) {
            Some(&found) if found == byte => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.at_end_or_syntax(item, expected)),
        }
    }

    fn at_end_or_syntax(&self, item: Item, expected: &'static str) -> CodecError {
        if self.pos >= self.input.len() {
            self.truncated(item)
        } else {
            self.syntax(item, expected, self.pos)
        }
    }

    fn truncated(&self, item: Item) -> CodecError {
        CodecError::Truncated { what: item.what, at: Position::Byte(item.start) }
    }

    fn syntax(&self, item: Item, expected: &'static str, at: usize) -> CodecError {
        CodecError::Syntax { what: item.what, expected, at: Position::Byte(at) }
    }
}
