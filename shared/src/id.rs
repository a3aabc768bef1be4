//! Session ids: minted from the OS's secure random generator, checked before
//! any DynamoDB call. Ids minted here and ids PHP mints are valid on both
//! sides: only `[A-Za-z0-9]` here (never a `_`, which the PHP SDK's
//! `trim(name . '_' . id, '_')` would cut off the key), and PHP's alphabets
//! (`[0-9a-f]`, `[0-9a-v]`, `[0-9a-zA-Z,-]`) accepted.

use std::fmt;
use std::str::FromStr;

use crate::error::SessionError;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters per minted id: 32 of 62 symbols is 190 bits, well over the 128 asked for.
const ID_LEN: usize = 32;
/// PHP's own ids are 22 to 256 characters.
const MIN_LEN: usize = 22;
const MAX_LEN: usize = 256;

/// A well-formed session id (not the item key: see [`crate::Config::item_key`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh id: 32 characters of `[A-Za-z0-9]` from the OS's generator,
    /// each drawn without bias (bytes of 248 and over are drawn again).
    pub fn generate() -> SessionId {
        let mut id = String::with_capacity(ID_LEN);
        while id.len() < ID_LEN {
            let mut bytes = [0u8; 48];
            getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
            let unbiased = bytes.iter().filter(|b| **b < 248).map(|b| ALPHABET[(*b % 62) as usize] as char);
            id.extend(unbiased.take(ID_LEN - id.len()));
        }
        SessionId(id)
    }

    /// Accepts ours and PHP's (`[0-9a-zA-Z,-]`, 22 to 256 characters).
    pub fn parse(raw: &str) -> Result<SessionId, SessionError> {
        let well_formed = (MIN_LEN..=MAX_LEN).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b',');
        if well_formed {
            Ok(SessionId(raw.to_string()))
        } else {
            Err(SessionError::InvalidId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first characters only, for logs: a whole id is a bearer credential.
    pub fn redacted(&self) -> String {
        format!("{}…", &self.0[..6])
    }
}

impl FromStr for SessionId {
    type Err = SessionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionId::parse(s)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug shows only the redacted form, so a stray `{:?}` never logs an id.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_ids_are_long_unique_and_cookie_safe() {
        let ids: HashSet<String> = (0..1000).map(|_| SessionId::generate().0).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 32, "32 characters of 62 = 190 bits");
            assert!(SessionId::parse(id).is_ok());
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        // Every symbol turns up, so none is missing from the draw.
        let symbols: HashSet<char> = ids.iter().flat_map(|id| id.chars()).collect();
        assert_eq!(symbols.len(), 62);
    }

    #[test]
    fn php_ids_are_accepted() {
        // PHP's defaults (32 hex), sid_bits_per_character=5 and 6.
        assert!(SessionId::parse("0123456789abcdef0123456789abcdef").is_ok());
        assert!(SessionId::parse("8v2qj1lcd0u4ofs3i4q9hn0c7r").is_ok());
        assert!(SessionId::parse("abcdef0123456789abcdef0123456789,-AZ").is_ok());
    }

    #[test]
    fn malformed_ids_are_refused() {
        for raw in [
            "",
            "short",
            "has space in it 0123456789",
            "semi;colon0123456789012345",
            "ü0123456789012345678901234",
            &"a".repeat(257),
            "../../../../etc/passwd0000",
        ] {
            assert!(matches!(SessionId::parse(raw), Err(SessionError::InvalidId)), "{raw:?}");
        }
    }

    #[test]
    fn debug_and_redacted_hide_the_id() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.as_str()));
        assert!(!id.redacted().contains(id.as_str()));
    }
}
