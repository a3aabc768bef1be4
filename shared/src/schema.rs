//! The item's schema in one place: the attributes this store adds to the
//! PHP handler's four (key, data, expires, `lock`), each with the
//! placeholder every expression names it by, and the lengths of the values
//! it mints. The reserved attribute names and the lock's `REMOVE` clause are
//! derived from here.

use crate::expr::Expr;

/// An attribute this store writes, under a fixed name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attribute {
    /// Its name in the item.
    pub name: &'static str,
    /// Its placeholder in every expression.
    pub placeholder: &'static str,
}

impl Attribute {
    const fn new(name: &'static str, placeholder: &'static str) -> Attribute {
        Attribute { name, placeholder }
    }

    /// `expr` with this attribute's placeholder bound.
    pub fn bound_in(self, expr: Expr) -> Expr {
        expr.name(self.placeholder, self.name)
    }
}

/// 1 for a PHP lock (PHP's own attribute), else the end of our lease (epoch ms).
pub(crate) const LOCK: Attribute = Attribute::new("lock", "#lock");
/// The holder's marker and the encoding the lock is bound to.
pub(crate) const LOCK_TOKEN: Attribute = Attribute::new("lock_token", "#ltok");
/// Bumped by each of our data writes.
pub(crate) const VERSION: Attribute = Attribute::new("version", "#ver");
/// The markers of the last writes, newest first.
pub(crate) const WRITE_IDS: [Attribute; 3] =
    [Attribute::new("write_id", "#wid"), Attribute::new("write_id_2", "#wid2"), Attribute::new("write_id_3", "#wid3")];
/// When the session was created (epoch seconds).
pub(crate) const CREATED: Attribute = Attribute::new("created", "#created");

/// The attributes this store adds beside the PHP handler's: no option may
/// give the key, the data or the expiry one of their names.
pub(crate) const ADDED: [Attribute; 7] = [LOCK, LOCK_TOKEN, VERSION, WRITE_IDS[0], WRITE_IDS[1], WRITE_IDS[2], CREATED];

/// Placeholders of the attributes whose names are options (`hash_key`,
/// `data_attribute`, `session_lifetime_attribute`).
pub(crate) const P_KEY: &str = "#key";
pub(crate) const P_DATA: &str = "#data";
pub(crate) const P_EXP: &str = "#exp";

/// The scheduled sweep's checkpoint: an item of its own in the sessions
/// table, under a key no session has ('#' never appears in one), without
/// an expiry, so neither a sweep nor TTL removes it.
pub(crate) mod checkpoint {
    use super::Attribute;

    /// Its key.
    pub const KEY: &str = "#gc-checkpoint";
    /// The run that holds the claim.
    pub const OWNER: Attribute = Attribute::new("owner", "#owner");
    /// When the claim ends by itself (epoch ms), so a crashed run never
    /// blocks the next.
    pub const CLAIM: Attribute = Attribute::new("lease_until_ms", "#claim");
    /// The last key of the last page swept, while a sweep is unfinished.
    pub const POSITION: Attribute = Attribute::new("position", "#position");
    /// When a sweep last reached the end of the table (epoch seconds).
    pub const FINISHED: Attribute = Attribute::new("last_finished", "#finished");
}

/// Random bytes in a marker (a lock token's, a write's id)...
pub(crate) const MARKER_BYTES: usize = 16;
/// ...written as this many unpadded base64url characters.
pub const MARKER_LEN: usize = (MARKER_BYTES * 4).div_ceil(3);
/// Bytes of the data's digest an entity tag keeps...
pub(crate) const ETAG_BYTES: usize = 12;
/// ...written as this many hex digits.
pub const ETAG_LEN: usize = 2 * ETAG_BYTES;

/// The attributes a lock of either kind is made of, as an update's `REMOVE`
/// list; bind it with [`bind_lock`].
pub(crate) fn lock_attributes() -> String {
    format!("{}, {}", LOCK.placeholder, LOCK_TOKEN.placeholder)
}

/// `expr` with the lock's placeholders bound.
pub(crate) fn bind_lock(expr: Expr) -> Expr {
    LOCK_TOKEN.bound_in(LOCK.bound_in(expr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lengths_follow_from_the_bytes() {
        assert_eq!(MARKER_LEN, 22);
        assert_eq!(ETAG_LEN, 24);
        let names: Vec<&str> = ADDED.iter().map(|a| a.name).collect();
        assert_eq!(names, ["lock", "lock_token", "version", "write_id", "write_id_2", "write_id_3", "created"]);
    }
}
