//! The codec's error: what went wrong and where, never what the data said.

use std::fmt;

use super::{DataFormat, MAX_DEPTH};

/// Where a problem is: a byte offset in stored data (decoding), or a path of
/// entry positions in the JSON data (encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// A 0-based byte offset in the stored bytes.
    Byte(usize),
    /// 0-based entry positions from the session map down, e.g. `/2/0` is the
    /// first entry of the third session variable. Positions rather than keys,
    /// so no session data reaches a message (and from there a log).
    Entry(String),
}

impl Position {
    /// The position of an entry path.
    pub(super) fn entry(path: &[usize]) -> Self {
        Position::Entry(path.iter().map(|index| format!("/{index}")).collect())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Byte(offset) => write!(f, "byte {offset}"),
            Position::Entry(path) if path.is_empty() => f.write_str("the top level"),
            Position::Entry(path) => write!(f, "entry {path}"),
        }
    }
}

/// Why session data could not be decoded or encoded.
///
/// Messages name the kind of problem and its position only: never a value or
/// a key of the session.
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum CodecError {
    /// The data ends inside an item.
    #[error("truncated {what} at {at}")]
    Truncated {
        /// The item that is cut short ("string", "array", ...).
        what: &'static str,
        /// Where the item starts.
        at: Position,
    },
    /// A byte that the format does not allow at this place.
    #[error("invalid {what} at {at}: expected {expected}")]
    Syntax {
        /// The item being read.
        what: &'static str,
        /// What the format requires here.
        expected: &'static str,
        /// The offending byte.
        at: Position,
    },
    /// An item that is well-formed but not acceptable (a class name PHP
    /// refuses, an unknown type marker, bad base64...).
    #[error("invalid {what} at {at}")]
    Invalid {
        /// The item.
        what: &'static str,
        /// Where it starts.
        at: Position,
    },
    /// A number that does not fit (an integer beyond PHP's 64-bit range, a
    /// length beyond `usize`).
    #[error("{what} out of range at {at}")]
    OutOfRange {
        /// The number's role.
        what: &'static str,
        /// Where it starts.
        at: Position,
    },
    /// An element count larger than the remaining data could hold: refused
    /// before anything is allocated for it.
    #[error("element count at {at} exceeds what the data can hold")]
    CountTooLarge {
        /// Where the count starts.
        at: Position,
    },
    /// Arrays and objects nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("nesting deeper than {MAX_DEPTH} at {at}")]
    TooDeep {
        /// The container that is one level too deep.
        at: Position,
    },
    /// Bytes after the end of the data.
    #[error("trailing bytes at {at}")]
    TrailingBytes {
        /// The first byte after the data.
        at: Position,
    },
    /// The same key twice in one array, object or session.
    #[error("duplicate key at {at}")]
    DuplicateKey {
        /// The second occurrence.
        at: Position,
    },
    /// A reference (`R:`/`r:`) to a value number that is not an earlier value
    /// (or, for `r:`, not an object): PHP could not read it.
    #[error("reference at {at} points to no earlier {target}")]
    BadReference {
        /// The reference.
        at: Position,
        /// "value" (`R:`) or "object" (`r:`).
        target: &'static str,
    },
    /// A name the JSON form holds as a JSON string (a session variable name, a
    /// class or enum name) that is not UTF-8.
    #[error("{what} at {at} is not UTF-8, which the JSON form cannot hold")]
    NotUtf8 {
        /// The name's role.
        what: &'static str,
        /// Where it starts.
        at: Position,
    },
    /// Stored data whose top level is not a map of session variables (a JSON
    /// array, a serialized integer...).
    #[error("{format} data is not a map of session variables")]
    NotAMap {
        /// The format it was read as.
        format: DataFormat,
    },
    /// Stored data that is not valid JSON.
    #[error("invalid JSON at line {line} column {column}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A session variable name with a `|`, which PHP's `php` session format
    /// uses as its delimiter (PHP's `session_encode()` fails on it too).
    #[error("the session variable name at {at} contains `|`, which PHP's `php` session format cannot store")]
    PipeInName {
        /// The variable.
        at: Position,
    },
    /// A JSON object with a `$php` key that is not one of the documented tags.
    #[error("malformed `$php` tag at {at}: {reason}")]
    BadTag {
        /// The tag.
        at: Position,
        /// What is wrong with it.
        reason: &'static str,
    },
}
