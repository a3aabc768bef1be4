//! The PHP values `serialize()` writes, as a tree between the byte format
//! (`parse`, `write`) and the JSON form (`json`), and the rules both sides share.

/// A value as `serialize()` writes it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// `N;`
    Null,
    /// `b:0;` / `b:1;`
    Bool(bool),
    /// `i:<int>;`
    Int(i64),
    /// `d:<float>;`
    Float(f64),
    /// `s:<len>:"<bytes>";`: bytes, not necessarily UTF-8.
    Str(Vec<u8>),
    /// `a:<n>:{<key><value>...}`, keys canonical as PHP keeps them.
    Array(Vec<(Key, Value)>),
    /// `O:<len>:"<class>":<n>:{<key><value>...}`: properties (or `__serialize()` data).
    Object { class: String, properties: Vec<(Key, Value)> },
    /// `C:<len>:"<class>":<len>:{<payload>}`: a `Serializable` object's own payload.
    Serializable { class: String, payload: Vec<u8> },
    /// `E:<len>:"<class>:<case>";`
    Enum { class: String, case: String },
    /// `R:<n>;`: a PHP reference (`&`) to value number n.
    Reference(u64),
    /// `r:<n>;`: the object that is value number n, again.
    ObjectReference(u64),
}

/// An array key or property name: `i:<int>;` or `s:<len>:"<bytes>";`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Int(i64),
    Str(Vec<u8>),
}

impl Key {
    /// The key PHP stores for a string array key: a canonical decimal integer
    /// (`0`, `-7`, not `07`, `-0` or `+7`) within 64 bits is an int key, as
    /// with PHP's `$a["7"]`; anything else stays a string.
    pub(super) fn array_key(bytes: Vec<u8>) -> Key {
        let canonical = match bytes.as_slice() {
            [b'0'] => true,
            [b'-', b'1'..=b'9', rest @ ..] | [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        match std::str::from_utf8(&bytes).ok().filter(|_| canonical).and_then(|text| text.parse().ok()) {
            Some(int) => Key::Int(int),
            None => Key::Str(bytes),
        }
    }

    /// The name the key is known by, for duplicate checks: PHP's objects turn
    /// int keys into names, so `i:0;` and `s:1:"0";` are the same property.
    pub(super) fn name(&self) -> Vec<u8> {
        match self {
            Key::Int(int) => int.to_string().into_bytes(),
            Key::Str(bytes) => bytes.clone(),
        }
    }
}

/// Whether PHP's `unserialize()` accepts `name` as a class name: bytes from
/// `[A-Za-z0-9_\\\x80-\xff]` (PHP's `zend_is_valid_class_name`), not empty, not
/// starting with `\` (PHP cannot look such a name up).
pub(super) fn is_class_name(name: &[u8]) -> bool {
    !name.is_empty() && name[0] != b'\\' && name.iter().all(|&b| b == b'\\' || is_label_byte(b))
}

/// Whether `name` is a PHP label (an enum case name): `[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*`.
pub(super) fn is_label(name: &[u8]) -> bool {
    name.first().is_some_and(|b| !b.is_ascii_digit()) && name.iter().all(|&b| is_label_byte(b))
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// PHP's numbering of values, which `R:`/`r:` refer to.
///
/// Every value is numbered from 1 in the order it is written (a container
/// before its elements), except `R:` entries; keys are not values. The
/// `php_serialize` session array is value 1; in the `php` format the session
/// variables' values are numbered across the whole session. A `C:` payload is
/// opaque: PHP numbers the values a nested `serialize()` wrote inside it, so
/// after one the numbers can only be checked to be positive.
#[derive(Debug)]
pub(super) struct Slots {
    /// Per numbered value: whether it is an object (`r:` must point to one).
    objects: Vec<bool>,
    exact: bool,
}

impl Slots {
    pub(super) fn new() -> Self {
        Slots { objects: Vec::new(), exact: true }
    }

    /// Numbers the next value; returns its number.
    pub(super) fn push(&mut self, is_object: bool) -> u64 {
        self.objects.push(is_object);
        self.objects.len() as u64
    }

    /// A `C:` payload was written: numbering is no longer known exactly.
    pub(super) fn payload_seen(&mut self) {
        self.exact = false;
    }

    /// Whether `R:<to>;` refers to an earlier value.
    pub(super) fn reference_ok(&self, to: u64) -> bool {
        to >= 1 && (!self.exact || to <= self.objects.len() as u64)
    }

    /// Whether `r:<to>;`, itself value number `own`, refers to an earlier object.
    pub(super) fn object_reference_ok(&self, to: u64, own: u64) -> bool {
        to >= 1 && (!self.exact || (to < own && self.objects[(to - 1) as usize]))
    }
}
