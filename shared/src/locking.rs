//! Pessimistic locking, as the PHP handler's `PessimisticLockingStrategy`
//! does it (a `lock` attribute set by a conditional UpdateItem), plus a token
//! that only the holder knows and a lease after which one waiter may take
//! the lock over, so a crashed holder never locks a session for good.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use rand::Rng;

use crate::config::Config;
use crate::error::SessionError;
use crate::item::{P_LEASE, P_LOCK, P_TOKEN};

/// The holder's proof of a lock; writing or unlocking with it releases it.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    pub(crate) fn generate() -> LockToken {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random generator is unavailable");
        LockToken(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts what [`LockToken::as_str`] gave out; anything else cannot match.
    pub fn parse(raw: &str) -> Result<LockToken, SessionError> {
        let well_formed =
            (16..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| LockToken(raw.to_string())).ok_or(SessionError::Locked)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(…)")
    }
}

/// Condition that lets a request through the lock: the holder's token, or,
/// without one, no lock or a lease that has run out (a PHP lock has no lease,
/// so it never runs out while the session lives).
pub(crate) fn lock_condition(token: Option<&LockToken>) -> String {
    match token {
        Some(_) => format!("{P_TOKEN} = :token"),
        None => format!("(attribute_not_exists({P_LOCK}) OR {P_LEASE} < :now_ms)"),
    }
}

/// A random pause between the min and max retry times, as the PHP handler
/// waits, so waiters do not retry in step.
pub(crate) fn retry_delay(config: &Config) -> Duration {
    let (min, max) = (config.min_lock_retry.as_micros() as u64, config.max_lock_retry.as_micros() as u64);
    Duration::from_micros(rand::rng().random_range(min..=max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_stay_between_min_and_max() {
        let config = Config::default();
        for _ in 0..1000 {
            let d = retry_delay(&config);
            assert!(d >= config.min_lock_retry && d <= config.max_lock_retry, "{d:?}");
        }
    }

    #[test]
    fn tokens_round_trip_and_foreign_strings_are_refused() {
        let token = LockToken::generate();
        assert_eq!(LockToken::parse(token.as_str()).unwrap(), token);
        assert!(LockToken::parse("").is_err());
        assert!(LockToken::parse("not a token at all!").is_err());
        assert!(!format!("{token:?}").contains(token.as_str()));
    }
}
