//! Pessimistic locking, in one place: taking, waiting for and releasing a
//! session's lock (the rule that says whether a lock is live is
//! the `lease` module's).
//!
//! The PHP handler locks with `lock` = 1 (set by a conditional UpdateItem)
//! and releases by removing `lock` in its write. This store's lock is the
//! same attribute holding the end of a lease (epoch milliseconds), plus
//! `lock_token`. So:
//! - a lock is ours only while `lock` holds our lease *and* `lock_token` our
//!   token: a PHP write (which removes `lock`) ends it cleanly, and a stale
//!   `lock_token` left behind never makes a PHP lock look like ours;
//! - a PHP lock (`lock` = 1, no lease) is honoured until PHP removes it (an
//!   expired session is absent to the API anyway, and GC, like PHP's own,
//!   never deletes under a PHP lock: a long PHP request that outlives the
//!   expiry writes back only `expires` when its data did not change);
//!   ours is honoured until its lease runs out, when one waiter may take it
//!   over.
//!
//! Waiting costs little: after a refused attempt (1 write unit) a waiter
//! polls with eventually consistent reads (half a read unit each), backing
//! off from the configured retry time to [`MAX_POLL_INTERVAL`] and never past
//! the holder's lease, until `max_lock_wait_time`, then Locked.

use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use rand::Rng;

use crate::budget::{self, InBudget};
use crate::codec::{Data, DataFormat};
use crate::config::{Config, DataAttributeType};
use crate::error::SessionError;
use crate::expr::{attr_n, attr_s, Expr, WithCondition, WithUpdate};
use crate::id::SessionId;
use crate::item::{conditions, random_marker, Encoding, Now, Record};
use crate::items::{Items, Written};
use crate::lease::{exactly_this_lock, lease_end, lock_free, lock_is_live, PHP_LOCK};
use crate::schema::{bind_lock, lock_attributes, LOCK, LOCK_TOKEN, MARKER_LEN, P_EXP};

/// The longest pause between a waiter's polls.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The holder's proof of a lock: writing or unlocking with it releases it.
/// It carries the lease it was taken with and the session's encoding, so a
/// write through the lock needs no read first. The item's `lock_token` holds
/// the marker and the encoding (`<marker>.<encoding>`), so the encoding a
/// write-through uses is the one the server bound at locking, whatever a
/// client does to its copy.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken {
    marker: String,
    lease_until_ms: i64,
    encoding: Encoding,
}

impl LockToken {
    /// A lock attempt's token, taken at `now`: bound to the configured
    /// encoding, what most sessions hold (a session stored otherwise is
    /// bound again once locked).
    fn attempt(config: &Config, marker: &str, now: Now) -> LockToken {
        let lease_until_ms = now.millis + config.lock_lease.as_millis() as i64;
        LockToken { marker: marker.to_string(), lease_until_ms, encoding: Encoding::configured(config) }
    }

    /// The token as the HTTP API hands it out: `<marker>.<lease end>.<encoding>`.
    pub fn as_header_value(&self) -> String {
        format!("{}.{}.{}", self.marker, self.lease_until_ms, encoding_letters(self.encoding))
    }

    /// Accepts what [`LockToken::as_header_value`] gave out; anything else is
    /// InvalidToken.
    pub fn parse(raw: &str) -> Result<LockToken, SessionError> {
        let mut parts = raw.split('.');
        let (Some(marker), Some(lease), Some(encoding), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::InvalidToken);
        };
        let marker_ok =
            marker.len() == MARKER_LEN && marker.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let lease_until_ms = lease.parse::<i64>().ok().filter(|ms| *ms > PHP_LOCK && lease.len() <= 16);
        match (marker_ok, lease_until_ms, parse_encoding_letters(encoding)) {
            (true, Some(lease_until_ms), Some(encoding)) => {
                Ok(LockToken { marker: marker.to_string(), lease_until_ms, encoding })
            }
            _ => Err(SessionError::InvalidToken),
        }
    }

    /// The `lock_token` attribute and the lease's end, as the item holds them.
    #[cfg(feature = "emulator")]
    pub(crate) fn parts(&self) -> (String, i64) {
        (self.stored_value(), self.lease_until_ms)
    }

    pub(crate) fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// What the item's `lock_token` holds while this token's lock is taken.
    fn stored_value(&self) -> String {
        format!("{}.{}", self.marker, encoding_letters(self.encoding))
    }

    /// The `write_id` a write through this lock leaves. A token writes
    /// through once (the write releases the lock), so its own marker names
    /// that write: a client that sends it again after the answer was lost
    /// finds it, as the SDK's own retry does.
    pub(crate) fn write_id(&self) -> &str {
        &self.marker
    }

    /// Whether `record` shows this token's lock (whatever encoding it is
    /// bound to: the lock is the marker and the lease).
    pub(crate) fn holds(&self, record: &Record) -> bool {
        self.bound_encoding(record).is_some()
    }

    /// The encoding the item binds this token's lock to, if it shows that lock.
    pub(crate) fn bound_encoding(&self, record: &Record) -> Option<Encoding> {
        if record.lock != Some(self.lease_until_ms) {
            return None;
        }
        let stored = record.lock_token.as_deref()?;
        let letters = stored.strip_prefix(self.marker.as_str())?.strip_prefix('.')?;
        parse_encoding_letters(letters)
    }

    /// The same lock, bound to `encoding`.
    pub(crate) fn with_encoding(&self, encoding: Encoding) -> LockToken {
        LockToken { encoding, ..self.clone() }
    }

    /// The condition that the item holds this token's lock.
    pub(crate) fn held(&self) -> Expr {
        let (lock, token) = (LOCK.placeholder, LOCK_TOKEN.placeholder);
        bind_lock(Expr::new(format!("{lock} = :lease AND begins_with({token}, :token_marker)")))
            .value(":lease", attr_n(self.lease_until_ms))
            .value(":token_marker", attr_s(format!("{}.", self.marker)))
    }

    /// The condition that the item holds this token's lock, bound to this
    /// token's encoding: a write-through encodes with it.
    pub(crate) fn held_in_its_encoding(&self) -> Expr {
        exactly_this_lock(self.lease_until_ms, &self.stored_value())
    }
}

/// An encoding in two letters: the format (`j`son, `p`hp, php_`s`erialize)
/// and the attribute type (`S`, `B`).
fn encoding_letters(encoding: Encoding) -> String {
    let format = match encoding.format {
        DataFormat::Json => 'j',
        DataFormat::Php => 'p',
        DataFormat::PhpSerialize => 's',
    };
    let kind = match encoding.attribute_type {
        DataAttributeType::String => 'S',
        DataAttributeType::Binary => 'B',
    };
    format!("{format}{kind}")
}

fn parse_encoding_letters(letters: &str) -> Option<Encoding> {
    let format = match letters.as_bytes().first()? {
        b'j' => DataFormat::Json,
        b'p' => DataFormat::Php,
        b's' => DataFormat::PhpSerialize,
        _ => return None,
    };
    let attribute_type = match letters.get(1..)? {
        "S" => DataAttributeType::String,
        "B" => DataAttributeType::Binary,
        _ => return None,
    };
    Some(Encoding { format, attribute_type })
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(…)")
    }
}

/// What a write of a session read as `record` may do, given the caller's
/// lock token (if any).
pub(crate) enum WriteAccess {
    /// Go ahead, conditional on this: the token's lock still held, or (without
    /// a token) no live lock and the item exactly as read.
    Allowed(Expr),
    /// The token's lock is gone: reading again cannot help.
    LockLost,
    /// Someone else's lock is live: wait for it first.
    Wait,
}

impl WriteAccess {
    pub fn of(config: &Config, record: &Record, token: Option<&LockToken>, now: Now) -> WriteAccess {
        match token {
            Some(token) if token.holds(record) => WriteAccess::Allowed(token.held()),
            Some(_) => WriteAccess::LockLost,
            None if lock_is_live(record, now) => WriteAccess::Wait,
            None => WriteAccess::Allowed(lock_free(now).and(conditions::unchanged_since(config, record))),
        }
    }
}

/// A waiter's schedule: growing pauses, never past the wait's deadline.
pub(crate) struct LockWait {
    deadline: Instant,
    next_pause: Duration,
}

impl LockWait {
    pub fn new(config: &Config) -> LockWait {
        let (min, max) = (config.min_lock_retry.as_micros() as u64, config.max_lock_retry.as_micros() as u64);
        let first = Duration::from_micros(rand::rng().random_range(min..=max));
        // Never past the request's time budget either.
        LockWait { deadline: budget::clip(Instant::now() + config.max_lock_wait_time), next_pause: first }
    }

    /// Sleeps before the next look at a lock seen in `record` (woken early
    /// when the holder's lease ends), or returns `gave_up` when the deadline
    /// would pass.
    pub async fn pause(&mut self, record: Option<&Record>, gave_up: SessionError) -> Result<(), SessionError> {
        let mut pause = self.next_pause;
        if let Some(until) = record.and_then(lease_end) {
            let until_lease_end = Duration::from_millis(until.saturating_sub(Now::sample().millis).max(0) as u64 + 1);
            pause = pause.min(until_lease_end);
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Err(gave_up);
        }
        let pause = pause.min(self.deadline - now);
        tokio::time::sleep(pause).await;
        crate::metrics::note_lock_wait(pause);
        // Jittered growth, so waiters on one session drift apart.
        let grown = self.next_pause.mul_f64(rand::rng().random_range(1.5..2.5));
        self.next_pause = grown.min(MAX_POLL_INTERVAL);
        Ok(())
    }
}

/// A lock taken: the session as it is now, its data, and the holder's token.
pub(crate) struct Locked {
    pub record: Record,
    pub data: Data,
    pub token: LockToken,
}

/// How one attempt at a lock ended.
enum Attempt {
    Taken(Locked),
    /// Another request holds the lock: the item as seen.
    Held(Record),
}

/// What the locking UpdateItem found.
enum Taking {
    /// The lock is the attempt's: the item as it is now, and its expiry
    /// before (None when an earlier send of this attempt took the lock).
    Took {
        record: Record,
        expires_before: Option<i64>,
    },
    Held(Record),
    /// No live session.
    Gone,
}

/// Reads a session and takes its lock, waiting up to `max_lock_wait_time`
/// for another holder, then Locked: never an empty session. Data that
/// cannot be decoded is refused and the lock released before answering.
pub(crate) async fn load_and_lock(items: &Items, id: &SessionId) -> Result<Locked, SessionError> {
    let marker = random_marker();
    let mut wait = LockWait::new(items.config());
    loop {
        match try_lock(items, id, &marker).await? {
            Attempt::Taken(locked) => return Ok(locked),
            Attempt::Held(seen) => wait_for_release(items, id, seen, &mut wait).await?,
        }
    }
}

/// One attempt; on every error after the lock may have been taken, what
/// the attempt took is released before answering.
async fn try_lock(items: &Items, id: &SessionId, marker: &str) -> Result<Attempt, SessionError> {
    let now = Now::sample();
    let attempt = LockToken::attempt(items.config(), marker, now);
    let (record, expires_before) = match set_lock(items, id, &attempt, now).await {
        Ok(Taking::Took { record, expires_before }) => (record, expires_before),
        Ok(Taking::Held(seen)) => return Ok(Attempt::Held(seen)),
        Ok(Taking::Gone) => return Err(SessionError::NotFound),
        Err(err) => {
            // The attempt may have landed though its answer was lost: release
            // what it may have taken (only if it is this attempt's), so the
            // client's retry does not wait for its own orphaned lock.
            release_after_error(items, id, &attempt, None).await;
            return Err(err);
        }
    };
    match read_locked(items, id, &attempt, record).await {
        Ok(attempt) => Ok(attempt),
        Err(err) => {
            // Never leave a lock behind on an error, nor any other trace.
            release_after_error(items, id, &attempt, expires_before).await;
            Err(err)
        }
    }
}

/// The conditional UpdateItem that sets the lock (and refreshes the expiry)
/// and returns the item.
async fn set_lock(items: &Items, id: &SessionId, attempt: &LockToken, now: Now) -> Result<Taking, SessionError> {
    let config = items.config();
    let new_expires = items.new_expiry(now);
    // Taking the lock is activity: it refreshes the expiry, so a session
    // cannot expire under its holder.
    let (lock, token) = (LOCK.placeholder, LOCK_TOKEN.placeholder);
    let update = bind_lock(Expr::new(format!("SET {lock} = :lease, {token} = :token, {P_EXP} = :new_expires")))
        .name(P_EXP, &config.session_lifetime_attribute)
        .value(":lease", attr_n(attempt.lease_until_ms))
        .value(":token", attr_s(attempt.stored_value()))
        .value(":new_expires", attr_n(new_expires));
    // The item as it was (the new state is known), so that a failure
    // after taking the lock can put the expiry back too.
    let result = items
        .update_item(id)
        .update(update)
        .condition(conditions::live(config, now).and(lock_free(now)))
        .return_values(ReturnValue::AllOld)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .in_budget()
        .await;
    Ok(match items.written("UpdateItem", id, result.map(|out| out.attributes)).await? {
        Written::Done(before) => {
            let mut record = Record::decode(config, &before.unwrap_or_default());
            let expires_before = Some(record.expires);
            record.lock = Some(attempt.lease_until_ms);
            record.lock_token = Some(attempt.stored_value());
            record.expires = new_expires;
            record.stored_expires = Some(new_expires.to_string());
            Taking::Took { record, expires_before }
        }
        // Refused only because the SDK retried our own applied request:
        // the item shows our marker and lease, and the lock is ours.
        Written::Refused(old) if old.is_live(now) && attempt.holds(&old) => {
            Taking::Took { record: old, expires_before: None }
        }
        Written::Refused(old) if old.is_live(now) => Taking::Held(old),
        Written::Refused(_) | Written::NoItem => Taking::Gone,
    })
}

/// The data of a session just locked, with the lock bound to the session's
/// stored encoding: one more write, only for a session not stored in the
/// configured one.
async fn read_locked(
    items: &Items,
    id: &SessionId,
    attempt: &LockToken,
    record: Record,
) -> Result<Attempt, SessionError> {
    let config = items.config();
    let data = record.decode_data(config)?;
    let encoding = record.encoding(config)?;
    if encoding == attempt.encoding {
        return Ok(Attempt::Taken(Locked { record, data, token: attempt.clone() }));
    }
    let now = Now::sample();
    let bound = attempt.with_encoding(encoding);
    let update = LOCK_TOKEN
        .bound_in(Expr::new(format!("SET {} = :bound_token", LOCK_TOKEN.placeholder)))
        .value(":bound_token", attr_s(bound.stored_value()));
    let result = items
        .update_item(id)
        .update(update)
        .condition(conditions::live(config, now).and(attempt.held()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .in_budget()
        .await;
    match items.written("UpdateItem", id, result.map(|_| ())).await? {
        Written::Done(()) => Ok(Attempt::Taken(Locked { record, data, token: bound })),
        Written::Refused(old) if old.is_live(now) => Ok(Attempt::Held(old)),
        Written::Refused(_) | Written::NoItem => Err(SessionError::NotFound),
    }
}

/// Waits until `seen`'s lock looks released (polling with eventually
/// consistent reads) or its lease runs out; Locked at the deadline.
pub(crate) async fn wait_for_release(
    items: &Items,
    id: &SessionId,
    seen: Record,
    wait: &mut LockWait,
) -> Result<(), SessionError> {
    let mut seen = Some(seen);
    loop {
        wait.pause(seen.as_ref(), SessionError::Locked).await?;
        let now = Now::sample();
        match items.fetch(id, false).await {
            Ok(Some(record)) if record.is_live(now) && lock_is_live(&record, now) => seen = Some(record),
            // Free, or gone: the next attempt says which.
            Ok(_) => return Ok(()),
            // A poll only looks: one refused for capacity or a moment's
            // outage changes nothing, so keep waiting (to the deadline).
            Err(err) if err.is_transient() => {
                tracing::debug!(session = %id.redacted(), error = %err, "lock poll failed; still waiting")
            }
            Err(err) => return Err(err),
        }
    }
}

/// Releases the caller's lock without writing (taking it refreshed the
/// expiry already). Releasing a lock that is no longer the caller's
/// (already released, or taken over) succeeds: there is nothing of the
/// caller's left to release.
pub(crate) async fn unlock(items: &Items, id: &SessionId, token: &LockToken) -> Result<(), SessionError> {
    release(items, id, token, None).await
}

/// Removes the run-out lease `seen` shows on the item under `key`, so that
/// PHP can lock the session again; conditional on that very lease, so a
/// lock taken since stays (PHP's `lock = 1` is never touched). Returns
/// the write units it cost (a refusal costs one too).
pub(crate) async fn end_stale_lease(items: &Items, key: AttributeValue, seen: &Record) -> Result<f64, SessionError> {
    let (Some(lease), Some(token)) = (lease_end(seen), seen.lock_token.as_deref()) else {
        return Ok(0.0);
    };
    let result = items
        .update_key(key)
        .update(bind_lock(Expr::new(format!("REMOVE {}", lock_attributes()))))
        .condition(exactly_this_lock(lease, token))
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .in_budget()
        .await;
    match result {
        Ok(out) => Ok(out.consumed_capacity.and_then(|c| c.capacity_units).unwrap_or(1.0)),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(1.0),
        Err(err) => Err(SessionError::dynamo("UpdateItem", err)),
    }
}

/// Releases what a failed attempt may have taken, logging (never
/// answering with) a failed release: the caller answers the first error.
async fn release_after_error(items: &Items, id: &SessionId, token: &LockToken, expires: Option<i64>) {
    if let Err(release) = budget::cleanup(release(items, id, token, expires)).await {
        tracing::warn!(session = %id.redacted(), error = %release, "could not release a lock attempt");
    }
}

/// Removes the token's lock and, when given, sets the expiry back to what
/// it was before the lock was taken.
async fn release(items: &Items, id: &SessionId, token: &LockToken, expires: Option<i64>) -> Result<(), SessionError> {
    let config = items.config();
    let now = Now::sample();
    let update = match expires {
        None => Expr::new(format!("REMOVE {}", lock_attributes())),
        Some(expires) => Expr::new(format!("SET {P_EXP} = :old_expires REMOVE {}", lock_attributes()))
            .name(P_EXP, &config.session_lifetime_attribute)
            .value(":old_expires", attr_n(expires)),
    };
    let result = items
        .update_item(id)
        .update(bind_lock(update))
        .condition(conditions::live(config, now).and(token.held()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .in_budget()
        .await;
    match items.written("UpdateItem", id, result.map(|_| ())).await? {
        Written::Done(()) => Ok(()),
        Written::Refused(old) if old.is_live(now) => Ok(()),
        Written::Refused(_) | Written::NoItem => Err(SessionError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> LockToken {
        LockToken {
            marker: random_marker(),
            lease_until_ms: 1_764_150_000_000,
            encoding: Encoding { format: DataFormat::Php, attribute_type: DataAttributeType::Binary },
        }
    }

    #[test]
    fn tokens_round_trip_and_foreign_strings_are_refused() {
        let token = token();
        assert_eq!(LockToken::parse(&token.as_header_value()).unwrap(), token);
        for bad in ["", "not a token at all!", "a.b.c", &format!("{}.1.jS", random_marker()), "x".repeat(200).as_str()]
        {
            assert!(matches!(LockToken::parse(bad), Err(SessionError::InvalidToken)), "{bad}");
        }
        assert!(!format!("{token:?}").contains(&token.marker));
    }

    #[test]
    fn a_token_holds_only_its_own_lease() {
        let token = token();
        let ours = Record::locked(Some(token.lease_until_ms), Some(&token.stored_value()), 2_000_000_000);
        assert!(token.holds(&ours));
        // PHP wrote (removed `lock`), then locked again: the token left behind is not a lock.
        let php_relocked = Record::locked(Some(PHP_LOCK), Some(&token.stored_value()), 2_000_000_000);
        assert!(!token.holds(&php_relocked));
        let other = Record::locked(Some(token.lease_until_ms), Some("another.pB"), 2_000_000_000);
        assert!(!token.holds(&other));
        let bare_marker = Record::locked(Some(token.lease_until_ms), Some(&token.marker), 2_000_000_000);
        assert!(!token.holds(&bare_marker));
    }

    #[test]
    fn the_item_binds_the_encoding_not_the_token() {
        let token = token();
        let json = Encoding { format: DataFormat::Json, attribute_type: DataAttributeType::String };
        let edited = token.with_encoding(json);
        let ours = Record::locked(Some(token.lease_until_ms), Some(&token.stored_value()), 2_000_000_000);
        assert!(edited.holds(&ours), "the lock is the marker and the lease");
        assert_eq!(edited.bound_encoding(&ours), Some(token.encoding), "the item says the encoding");
        assert_eq!(edited.stored_value(), format!("{}.jS", token.marker));
    }
}
