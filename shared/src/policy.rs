//! What an untrusted writer (an HTTP client) may put in a session that PHP
//! reads: the [`WritePolicy`] a write is checked against, with the data
//! stored before it.
//!
//! PHP's `session_start()` unserializes the session, and unserializing an
//! object runs its class's magic methods (`__wakeup`, `__unserialize`,
//! `__destruct`, `Serializable::unserialize`): a client that can store an
//! `object`, `serializable` or `enum` value (a `$php` tag, see
//! [`crate::codec`]) in a session PHP reads can run code in the PHP app (PHP
//! object injection). References are refused with them. So a client's write
//! is checked as PHP's own `unserialize($data, ['allowed_classes' => false])`
//! would: it may carry such a value only exactly as the session already holds
//! it at the same place (data read and written back keeps PHP's objects), it
//! may replace or remove a key holding one, and it never edits into one. In
//! the `json` format a `$php` key is plain data nobody unserializes.
//!
//! Keys a PHP app trusts (its `is_admin`) can be made read-only for clients
//! ([`ProtectedKeys`]). The library's own callers are trusted
//! ([`WritePolicy::trusted`], the default).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::codec::{tag_kind, Data, DataFormat};

/// Why a write of client data was refused; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A new or changed PHP object, serializable object, enum or reference.
    #[error(
        "PHP objects, enums and references ($php tags object, serializable, enum, reference, \
         object_reference) may not be added or changed, only kept as stored: found at {path}"
    )]
    PhpObject {
        /// Where in the request body, as a JSON Pointer (RFC 6901).
        path: String,
    },
    /// A protected key would be added, changed or removed.
    #[error("the session key {key:?} is protected: it can be read, never added, changed or removed here")]
    ProtectedKey {
        /// The session key (a name the client sent or read).
        key: String,
    },
}

/// The rules a write of client data is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePolicy {
    /// Classes whose objects, serializable objects and enums may be stored new.
    pub allowed_classes: AllowedClasses,
    /// Top-level keys that may not be added, changed or removed.
    pub protected_keys: ProtectedKeys,
}

impl Default for WritePolicy {
    /// Trusted: everything allowed.
    fn default() -> WritePolicy {
        WritePolicy::trusted()
    }
}

impl WritePolicy {
    /// Everything allowed: code in the app itself.
    pub fn trusted() -> WritePolicy {
        WritePolicy { allowed_classes: AllowedClasses::Any, protected_keys: ProtectedKeys::default() }
    }

    /// The HTTP API's default for clients: no new PHP objects, no protected keys.
    pub fn untrusted() -> WritePolicy {
        WritePolicy { allowed_classes: AllowedClasses::none(), protected_keys: ProtectedKeys::default() }
    }

    /// Whether checking a write of `data` needs the data stored now (a write
    /// that would not read must read first): some keys are protected, or it
    /// carries a PHP object that may only be kept, never added.
    pub fn needs_stored(&self, data: &Data) -> bool {
        !self.protected_keys.is_empty()
            || (self.allowed_classes != AllowedClasses::Any && data.values().any(|v| self.refused_inside(v)))
    }

    /// Checks the data of a new session.
    pub fn check_new(&self, data: &Data, format: DataFormat) -> Result<(), Refusal> {
        self.check(&Data::new(), data, format)
    }

    /// Checks that writing `new` over `stored`, in `format`, follows the policy.
    pub fn check(&self, stored: &Data, new: &Data, format: DataFormat) -> Result<(), Refusal> {
        for key in stored.keys().chain(new.keys()) {
            if stored.get(key) != new.get(key) && self.protected_keys.matches(key) {
                return Err(Refusal::ProtectedKey { key: key.clone() });
            }
        }
        if !self.checks_tags(format) {
            return Ok(());
        }
        let mut path = Vec::new();
        let planted = new.iter().any(|(key, value)| {
            path.push(key.clone());
            let found = self.first_planted_object(value, stored.get(key), &mut path);
            if !found {
                path.pop();
            }
            found
        });
        match planted {
            true => Err(Refusal::PhpObject { path: pointer(&path) }),
            false => Ok(()),
        }
    }

    /// Checks a JSON merge patch (RFC 7396) of `stored` before it is applied:
    /// it may replace or remove a value holding a refused tag, never merge
    /// into one (edit its class, properties or payload). What the patch adds
    /// is checked on the result by [`WritePolicy::check`].
    pub fn check_patch(&self, stored: &Data, patch: &Data, format: DataFormat) -> Result<(), Refusal> {
        if !self.checks_tags(format) {
            return Ok(());
        }
        let mut path = Vec::new();
        match self.first_edit_into_object(patch, stored, &mut path) {
            true => Err(Refusal::PhpObject { path: pointer(&path) }),
            false => Ok(()),
        }
    }

    fn checks_tags(&self, format: DataFormat) -> bool {
        format != DataFormat::Json && self.allowed_classes != AllowedClasses::Any
    }

    /// Whether `value` is, or holds, a tag this policy refuses when new.
    fn refused_inside(&self, value: &Value) -> bool {
        self.refuses(value)
            || match value {
                Value::Array(items) => items.iter().any(|v| self.refused_inside(v)),
                Value::Object(map) => map.values().any(|v| self.refused_inside(v)),
                _ => false,
            }
    }

    /// Whether `value` is a tag this policy refuses when new.
    fn refuses(&self, value: &Value) -> bool {
        match tag_kind(value) {
            Some("object" | "serializable" | "enum") => {
                !value.get("class").and_then(Value::as_str).is_some_and(|class| self.allowed_classes.allows(class))
            }
            Some("reference" | "object_reference") => true,
            _ => false,
        }
    }

    /// Walks `new` and `stored` in step (by key and by index); true, with
    /// `path` at it, at the first refused tag that `stored` does not hold,
    /// unchanged, at the same place. An allowed class's object is looked into.
    fn first_planted_object(&self, new: &Value, stored: Option<&Value>, path: &mut Vec<String>) -> bool {
        if stored == Some(new) {
            return false;
        }
        if self.refuses(new) {
            return true;
        }
        let mut inside = |step: String, item: &Value, stored_item: Option<&Value>| {
            path.push(step);
            let found = self.first_planted_object(item, stored_item, path);
            if !found {
                path.pop();
            }
            found
        };
        match new {
            Value::Array(items) => {
                let stored = stored.and_then(Value::as_array);
                items.iter().enumerate().any(|(i, item)| inside(i.to_string(), item, stored.and_then(|s| s.get(i))))
            }
            Value::Object(map) => {
                let stored = stored.and_then(Value::as_object);
                map.iter().any(|(key, item)| inside(key.clone(), item, stored.and_then(|s| s.get(key))))
            }
            _ => false,
        }
    }

    /// True, with `path` at it, where `patch` merges into a refused tag of `stored`.
    fn first_edit_into_object(
        &self,
        patch: &Map<String, Value>,
        stored: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> bool {
        patch.iter().any(|(key, change)| {
            // Only an object merges into what is there; anything else replaces it.
            let (Value::Object(change), Some(target @ Value::Object(target_map))) = (change, stored.get(key)) else {
                return false;
            };
            path.push(key.clone());
            let found = self.refuses(target) || self.first_edit_into_object(change, target_map, path);
            if !found {
                path.pop();
            }
            found
        })
    }
}

/// A JSON Pointer (RFC 6901) of `steps`.
fn pointer(steps: &[String]) -> String {
    steps.iter().map(|step| format!("/{}", step.replace('~', "~0").replace('/', "~1"))).collect()
}

/// Classes whose objects (and serializable objects, enums) clients may store
/// new, as PHP's `unserialize()` option `allowed_classes`: `*` any, else a
/// comma-separated list of names (none by default). Names compare as PHP
/// compares class names, ignoring ASCII case; a leading `\` is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedClasses {
    /// Any class, and references: PHP object injection is the caller's risk.
    Any,
    /// Only these classes (lower case); references never.
    Only(Vec<String>),
}

impl AllowedClasses {
    /// No class at all.
    pub fn none() -> AllowedClasses {
        AllowedClasses::Only(Vec::new())
    }

    /// Whether objects of `class` may be stored new.
    pub fn allows(&self, class: &str) -> bool {
        match self {
            AllowedClasses::Any => true,
            AllowedClasses::Only(names) => names.iter().any(|name| name.eq_ignore_ascii_case(class)),
        }
    }
}

impl FromStr for AllowedClasses {
    type Err = String;

    fn from_str(raw: &str) -> Result<AllowedClasses, String> {
        match raw.trim() {
            "" => return Ok(AllowedClasses::none()),
            "*" => return Ok(AllowedClasses::Any),
            _ => {}
        }
        let names = raw.split(',').map(|name| name.trim().trim_start_matches('\\'));
        let names: Vec<String> = names.map(|name| name.to_ascii_lowercase()).collect();
        if names.iter().all(|name| is_class_name(name)) {
            Ok(AllowedClasses::Only(names))
        } else {
            Err("must be empty, * or PHP class names separated by commas".into())
        }
    }
}

impl fmt::Display for AllowedClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedClasses::Any => f.write_str("*"),
            AllowedClasses::Only(names) => f.write_str(&names.join(",")),
        }
    }
}

/// A PHP class name, namespaced or not (`App\Models\User`).
fn is_class_name(name: &str) -> bool {
    name.split('\\').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
    })
}

/// Top-level session keys clients may read but never add, change or
/// remove: a comma-separated list of names and `prefix*` patterns (none by
/// default). A key holds everything under it: protecting `user` protects
/// `user.role` (PHP's `$_SESSION['user']['role']`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedKeys(Vec<KeyPattern>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPattern {
    Exact(String),
    Prefix(String),
}

impl ProtectedKeys {
    /// No key protected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` is protected.
    pub fn matches(&self, key: &str) -> bool {
        self.0.iter().any(|pattern| match pattern {
            KeyPattern::Exact(name) => key == name,
            KeyPattern::Prefix(prefix) => key.starts_with(prefix.as_str()),
        })
    }
}

impl FromStr for ProtectedKeys {
    type Err = String;

    fn from_str(raw: &str) -> Result<ProtectedKeys, String> {
        if raw.trim().is_empty() {
            return Ok(ProtectedKeys::default());
        }
        let patterns = raw.split(',').map(str::trim).map(|item| match item.strip_suffix('*') {
            _ if item.is_empty() => Err("must be key names or prefix* patterns separated by commas, none empty"),
            Some(prefix) if prefix.contains('*') => Err("a * may only end a pattern"),
            Some(prefix) => Ok(KeyPattern::Prefix(prefix.to_string())),
            None if item.contains('*') => Err("a * may only end a pattern"),
            None => Ok(KeyPattern::Exact(item.to_string())),
        });
        Ok(ProtectedKeys(patterns.collect::<Result<_, _>>()?))
    }
}

impl fmt::Display for ProtectedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let patterns: Vec<String> = self
            .0
            .iter()
            .map(|pattern| match pattern {
                KeyPattern::Exact(name) => name.clone(),
                KeyPattern::Prefix(prefix) => format!("{prefix}*"),
            })
            .collect();
        f.write_str(&patterns.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(value: Value) -> Data {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn object(class: &str) -> Value {
        json!({"$php": "object", "class": class, "properties": {"cmd": "id"}})
    }

    const PHP_FORMATS: [DataFormat; 2] = [DataFormat::Php, DataFormat::PhpSerialize];

    #[test]
    fn new_objects_enums_and_references_are_refused_in_php_formats_only() {
        let policy = WritePolicy::untrusted();
        for (planted, path) in [
            (json!({"x": object("Gadget")}), "/x"),
            (json!({"x": {"deep": [1, object("Gadget")]}}), "/x/deep/1"),
            (json!({"x": {"$php": "serializable", "class": "Gadget", "data": "payload"}}), "/x"),
            (json!({"x": {"$php": "enum", "class": "Suit", "case": "Hearts"}}), "/x"),
            (json!({"x": [1, {"$php": "reference", "to": 2}]}), "/x/1"),
            (json!({"x": {"$php": "object_reference", "to": 1}}), "/x"),
            (json!({"x": {"$php": "array", "entries": [["k", object("Gadget")]]}}), "/x/entries/0/1"),
            (json!({"a/b~": object("Gadget")}), "/a~1b~0"),
        ] {
            let planted = data(planted);
            for format in PHP_FORMATS {
                let refused = Err(Refusal::PhpObject { path: path.into() });
                assert_eq!(policy.check_new(&planted, format), refused, "{planted:?}");
            }
            assert_eq!(policy.check_new(&planted, DataFormat::Json), Ok(()), "plain data in json");
            assert!(policy.needs_stored(&planted));
            assert_eq!(WritePolicy::trusted().check_new(&planted, DataFormat::Php), Ok(()));
        }
        let harmless = data(json!({"f": {"$php": "float", "value": "NAN"}, "b": {"$php": "bytes", "base64": "/w=="}}));
        assert_eq!(policy.check_new(&harmless, DataFormat::Php), Ok(()));
        assert!(!policy.needs_stored(&harmless));
    }

    #[test]
    fn objects_php_stored_may_be_written_back_unchanged_not_changed_or_moved() {
        let policy = WritePolicy::untrusted();
        let stored = data(json!({"user": object("User"), "n": 1}));
        let kept = data(json!({"user": object("User"), "n": 2}));
        assert_eq!(policy.check(&stored, &kept, DataFormat::Php), Ok(()));
        let changed = data(json!({"user": object("Gadget"), "n": 1}));
        assert_eq!(policy.check(&stored, &changed, DataFormat::Php), Err(Refusal::PhpObject { path: "/user".into() }));
        let moved = data(json!({"other": object("User"), "n": 1}));
        assert_eq!(policy.check(&stored, &moved, DataFormat::Php), Err(Refusal::PhpObject { path: "/other".into() }));
    }

    #[test]
    fn a_patch_may_replace_or_remove_a_stored_object_never_edit_into_it() {
        let policy = WritePolicy::untrusted();
        let stored = data(json!({"widget": object("User"), "list": [object("User")], "n": 1}));
        for (patch, path) in [
            (json!({"widget": {"class": "Gadget"}}), "/widget"),
            (json!({"widget": {"properties": {"name": object("Gadget")}}}), "/widget"),
            (json!({"widget": {"$php": null}}), "/widget"),
        ] {
            let refused = Err(Refusal::PhpObject { path: path.into() });
            assert_eq!(policy.check_patch(&stored, &data(patch.clone()), DataFormat::Php), refused, "{patch}");
        }
        for patch in [json!({"widget": null}), json!({"widget": "plain"}), json!({"list": [1]}), json!({"n": 2})] {
            assert_eq!(policy.check_patch(&stored, &data(patch.clone()), DataFormat::Php), Ok(()), "{patch}");
        }
        let allowed = WritePolicy { allowed_classes: "User".parse().unwrap(), ..WritePolicy::untrusted() };
        assert_eq!(allowed.check_patch(&stored, &data(json!({"widget": {"class": "x"}})), DataFormat::Php), Ok(()));
    }

    #[test]
    fn allowed_classes_follow_php_allowed_classes() {
        let policy = WritePolicy { allowed_classes: "\\App\\User, Suit".parse().unwrap(), ..WritePolicy::untrusted() };
        let ok = data(json!({"u": object("app\\user"), "e": {"$php": "enum", "class": "Suit", "case": "Hearts"}}));
        assert_eq!(policy.check_new(&ok, DataFormat::Php), Ok(()));
        let inside =
            data(json!({"u": {"$php": "object", "class": "App\\User", "properties": {"g": object("Gadget")}}}));
        let refused = Err(Refusal::PhpObject { path: "/u/properties/g".into() });
        assert_eq!(policy.check_new(&inside, DataFormat::Php), refused);
        let reference = data(json!({"u": [1, {"$php": "reference", "to": 2}]}));
        assert!(policy.check_new(&reference, DataFormat::Php).is_err(), "references need *");
        let any = WritePolicy { allowed_classes: "*".parse().unwrap(), ..WritePolicy::untrusted() };
        assert_eq!(any.check_new(&reference, DataFormat::Php), Ok(()));
        assert_eq!(any.check_new(&inside, DataFormat::Php), Ok(()));
        for bad in ["*,User", "User,,Suit", "1User", "App\\\\User", "User-1"] {
            assert!(bad.parse::<AllowedClasses>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<AllowedClasses>(), Ok(AllowedClasses::none()));
        assert_eq!("A\\B,c".parse::<AllowedClasses>().unwrap().to_string(), "a\\b,c");
    }

    #[test]
    fn protected_keys_cannot_be_added_changed_or_removed() {
        let keys: ProtectedKeys = "auth_*, is_admin".parse().unwrap();
        assert_eq!(keys.to_string(), "auth_*,is_admin");
        let policy = WritePolicy { protected_keys: keys, ..WritePolicy::untrusted() };
        let stored = data(json!({"auth_user": 7, "cart": []}));
        let check = |new: Value| policy.check(&stored, &data(new), DataFormat::Json);
        assert_eq!(check(json!({"auth_user": 7, "cart": [1]})), Ok(()));
        assert_eq!(check(json!({"auth_user": 8, "cart": []})), Err(Refusal::ProtectedKey { key: "auth_user".into() }));
        assert_eq!(check(json!({"cart": []})), Err(Refusal::ProtectedKey { key: "auth_user".into() }));
        let added = check(json!({"auth_user": 7, "cart": [], "is_admin": true}));
        assert_eq!(added, Err(Refusal::ProtectedKey { key: "is_admin".into() }));
        assert_eq!(check(json!({"auth_user": 7, "cart": [], "is_admin_not": true})), Ok(()), "exact names are exact");
        assert!(policy.needs_stored(&data(json!({}))));
        for bad in ["a,,b", "a*b", "**", " , "] {
            assert!(bad.parse::<ProtectedKeys>().is_err(), "{bad}");
        }
    }
}
