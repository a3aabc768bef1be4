//! The rule that says whether a session's lock is live, which the store,
//! locking and GC all judge by, as a Rust predicate and as a condition.
//!
//! The PHP handler locks with `lock` = 1 and releases by removing `lock` in
//! its write. Our lock is the same attribute holding the end of a lease
//! (epoch milliseconds), plus `lock_token`. A PHP lock is honoured until PHP
//! removes it; ours until its lease runs out.

use crate::expr::{attr_n, attr_s, Expr};
use crate::item::{Now, Record};
use crate::schema::{bind_lock, LOCK, LOCK_TOKEN};

/// The `lock` value the PHP handler writes.
pub(crate) const PHP_LOCK: i64 = 1;

/// The liveness rule, as a Rust predicate (its condition twin is [`lock_free`]):
/// a PHP lock, or a lease of ours not yet run out.
pub(crate) fn lock_is_live(record: &Record, now: Now) -> bool {
    match record.lock {
        None => false,
        Some(until) => until == PHP_LOCK || until >= now.millis,
    }
}

/// The liveness rule, as a condition: no live lock (see [`lock_is_live`]).
pub(crate) fn lock_free(now: Now) -> Expr {
    LOCK.bound_in(Expr::new(format!("attribute_not_exists({})", LOCK.placeholder))).or(stale_lease(now))
}

/// A lease of ours has run out, but its `lock` is still there: PHP, which
/// locks only when `lock` is absent, waits for it until someone removes it.
pub(crate) fn stale_lease(now: Now) -> Expr {
    let lock = LOCK.placeholder;
    LOCK.bound_in(Expr::new(format!("{lock} < :now_ms AND {lock} <> :php_lock")))
        .value(":now_ms", attr_n(now.millis))
        .value(":php_lock", attr_n(PHP_LOCK))
}

/// Whether `record` holds a lease of ours that has run out (see [`stale_lease`]).
pub(crate) fn has_stale_lease(record: &Record, now: Now) -> bool {
    lease_end(record).is_some_and(|until| until < now.millis)
}

/// When a lock seen in `record` may end by itself: our lease's end; a PHP
/// lock has no lease.
pub(crate) fn lease_end(record: &Record) -> Option<i64> {
    record.lock.filter(|until| *until != PHP_LOCK)
}

/// The condition that the item holds exactly this lock: this lease and this
/// whole `lock_token`.
pub(crate) fn exactly_this_lock(lease_until_ms: i64, lock_token: &str) -> Expr {
    bind_lock(Expr::new(format!("{} = :lease AND {} = :token", LOCK.placeholder, LOCK_TOKEN.placeholder)))
        .value(":lease", attr_n(lease_until_ms))
        .value(":token", attr_s(lock_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lock: Option<i64>, expires: i64) -> Record {
        Record::locked(lock, lock.map(|_| "t"), expires)
    }

    #[test]
    fn the_liveness_rule() {
        let now = Now { secs: 1000, millis: 1_000_000 };
        assert!(!lock_is_live(&record(None, 2000), now));
        assert!(lock_is_live(&record(Some(PHP_LOCK), 2000), now), "a PHP lock holds while the session lives");
        assert!(lock_is_live(&record(Some(PHP_LOCK), 1000), now), "and after: PHP may still write it back");
        assert!(lock_is_live(&record(Some(1_000_000), 2000), now), "a lease holds to its last millisecond");
        assert!(!lock_is_live(&record(Some(999_999), 2000), now));
        assert!(has_stale_lease(&record(Some(999_999), 2000), now));
        assert!(!has_stale_lease(&record(Some(PHP_LOCK), 2000), now), "a PHP lock has no lease to run out");
    }
}
