//! The session store: start, read, replace, merge-patch, destroy and
//! regenerate sessions kept one item each in DynamoDB; and the public face
//! of locking ([`crate::locking`]) and garbage collection ([`crate::gc`]),
//! which the store calls and which never call it back.
//!
//! Every write is one conditional request, so nothing is ever half-written.
//! A write without the caller's lock reads first and is conditional on the
//! item being exactly as read (our version, PHP's expiry and data), so a
//! concurrent write of either language is never lost: the write reads again
//! and retries. A write with the caller's lock token needs no read: the lock
//! itself guarantees nothing changed. Every data write carries a marker
//! (`write_id`, with the two before it kept), so a write whose answer was
//! lost recognises its own effect instead of applying it twice: a lock
//! holder's through the SDK's retry (refused, it returns the item), any
//! other's by reading the item at once, before it writes again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use crate::budget::InBudget;
use crate::codec::{Data, DataFormat};
use crate::config::Config;
use crate::error::SessionError;
use crate::expr::{attr_n, attr_s, Expr, WithCondition, WithUpdate};
use crate::gc::{CapacityBudget, Gc, GcReport, ScheduledSweep, SweepOptions};
use crate::id::SessionId;
use crate::item::{conditions, new_item, random_marker, Encoding, Now, Record, StoredData};
use crate::items::{Items, Written};
use crate::lease::{has_stale_lease, lock_free};
use crate::locking::{self, end_stale_lease, wait_for_release, LockToken, LockWait, Locked, WriteAccess};
use crate::policy::WritePolicy;
use crate::schema::{bind_lock, lock_attributes, P_DATA, P_EXP, VERSION, WRITE_IDS};

/// One session as a caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session id (not the item key).
    pub id: SessionId,
    /// The session's data, decoded.
    pub data: Data,
    /// Epoch seconds after which the session is dead.
    pub expires: i64,
    /// The entity tag of the data: send it back in [`WriteOptions::if_match`].
    pub etag: String,
    /// Set when this read took the session's lock.
    pub lock_token: Option<LockToken>,
}

/// Preconditions of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Refuse with PreconditionFailed unless the data's entity tag is this one.
    pub if_match: Option<String>,
    /// The caller's lock; the write releases it.
    pub lock_token: Option<LockToken>,
    /// What the data may change (the default, trusted, allows anything).
    pub policy: WritePolicy,
    /// The expiry to store (epoch seconds) instead of now + `session_lifetime`:
    /// an app that keeps its own (a tower-sessions record's `expiry_date`).
    pub expires: Option<i64>,
}

/// A session read to be changed later (an in-process layer's first access):
/// the session, and the item's state the change's conditional write starts
/// from, so a request that reads and then changes costs one read and one
/// write.
#[derive(Debug, Clone)]
pub struct Loaded {
    session: Session,
    read: Record,
}

impl Loaded {
    /// The session as read.
    pub fn session(&self) -> &Session {
        &self.session
    }
}

/// Changes to some keys of a session's data: a key set to a value, or
/// removed (`None`). Keys not named keep what is stored.
pub type KeyChanges = Vec<(String, Option<Value>)>;

/// The store: a DynamoDB client and the options, built once and cloned cheaply.
#[derive(Clone)]
pub struct SessionStore {
    items: Items,
    gc: Gc,
}

/// What a data write stamps on the item besides the data: the write's
/// marker and the new expiry.
#[derive(Clone, Copy)]
struct Stamp<'a> {
    write_id: &'a str,
    expires: i64,
}

/// What one attempt of a retry loop decided.
enum Retry<T> {
    Done(T),
    /// Go again after a pause; this error when no time is left.
    Again(SessionError),
}

impl SessionStore {
    /// A store on `client` with `config`. The client gets the config's
    /// timeouts and the SDK's standard retries.
    pub fn new(client: Client, config: Config) -> SessionStore {
        let client = crate::client::with_timeouts(&client, &config);
        let items = Items::new(client, Arc::new(config));
        SessionStore { gc: Gc::new(items.clone()), items }
    }

    /// The options.
    pub fn config(&self) -> &Config {
        self.items.config()
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        self.items.client()
    }

    fn session(&self, id: &SessionId, record: &Record, lock_token: Option<LockToken>) -> Result<Session, SessionError> {
        Ok(Session {
            id: id.clone(),
            data: record.decode_data(self.config())?,
            expires: record.expires,
            etag: record.etag(),
            lock_token,
        })
    }

    /// Starts a new session with a fresh id, in the configured format; the
    /// put's condition means it can never overwrite an existing item.
    pub async fn create(&self, data: Data) -> Result<Session, SessionError> {
        let expires = self.items.new_expiry(Now::sample());
        self.create_as(&SessionId::generate(), data, expires).await
    }

    /// Starts a new session under an id the caller chose (a tower-sessions
    /// id), expiring at `expires` (epoch seconds). Conflict when an item has
    /// that id already: it is never overwritten.
    pub async fn create_as(&self, id: &SessionId, data: Data, expires: i64) -> Result<Session, SessionError> {
        let config = self.config();
        let stored = Encoding::configured(config).encode(config, &data)?;
        let now = Now::sample();
        let write_id = random_marker();
        let mut item = new_item(config, config.item_key(id.as_str()), stored.as_ref(), expires, now);
        item.insert(WRITE_IDS[0].name.into(), attr_s(&write_id));
        let result = self
            .client()
            .put_item()
            .table_name(&config.table_name)
            .set_item(Some(item.clone()))
            .condition(conditions::absent(config))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .in_budget()
            .await;
        match self.items.written("PutItem", id, result).await? {
            Written::Done(_) => {}
            Written::Refused(old) if conditions::written_by(&old, &write_id) => {}
            // An id in use is Conflict, never an overwrite (ours, of 190
            // bits, never collide in practice; a caller's may).
            Written::Refused(_) | Written::NoItem => return Err(SessionError::Conflict),
        }
        self.session(id, &Record::decode(config, &item), None)
    }

    /// Reads a live session and nothing else: one GetItem, no touch (for an
    /// app that keeps its own expiry, as tower-sessions does).
    pub async fn load_untouched(&self, id: &SessionId) -> Result<Session, SessionError> {
        let record = self.items.fetch_live(id, self.config().consistent_read, Now::sample()).await?;
        self.session(id, &record, None)
    }

    /// Reads a session without locking it: one GetItem, plus a small
    /// UpdateItem at most once per touch interval to push the expiry on.
    pub async fn load(&self, id: &SessionId) -> Result<Session, SessionError> {
        Ok(self.load_for_change(id).await?.session)
    }

    /// Reads a session as [`load`](SessionStore::load) does, keeping what
    /// [`change_keys`](SessionStore::change_keys) needs to write without
    /// reading again.
    pub async fn load_for_change(&self, id: &SessionId) -> Result<Loaded, SessionError> {
        let config = self.config();
        let now = Now::sample();
        let mut record = self.items.fetch_live(id, config.consistent_read, now).await?;
        let mut session = self.session(id, &record, None)?;
        if has_stale_lease(&record, now) {
            // A vanished holder's lease: end it, or PHP waits for it and then
            // starts with an empty session.
            if let Err(err) = end_stale_lease(&self.items, self.items.key(id), &record).await {
                tracing::warn!(session = %id.redacted(), error = %err, "run-out lease not removed");
            }
        }
        let last_activity = record.expires - config.session_lifetime.as_secs() as i64;
        if now.secs - last_activity >= config.touch_interval.as_secs() as i64 {
            if let Some(expires) = self.touch(id, now).await {
                // The item as it is now, for a later write's condition.
                record.expires = expires;
                record.stored_expires = Some(expires.to_string());
            }
            session.expires = record.expires;
        }
        Ok(Loaded { session, read: record })
    }

    /// Pushes the expiry on without changing the data or the entity tag. A
    /// failure is logged and the read still answers: it was only a refresh.
    async fn touch(&self, id: &SessionId, now: Now) -> Option<i64> {
        let config = self.config();
        let expires = self.items.new_expiry(now);
        let update = Expr::new(format!("SET {P_EXP} = :new_expires"))
            .name(P_EXP, &config.session_lifetime_attribute)
            .value(":new_expires", attr_n(expires));
        // Never move the expiry back, never bring a dead session back.
        let later = Expr::new(format!("{P_EXP} < :new_expires"))
            .name(P_EXP, &config.session_lifetime_attribute)
            .value(":new_expires", attr_n(expires));
        let result = self
            .items
            .update_item(id)
            .update(update)
            .condition(conditions::live(config, now).and(later))
            .send()
            .in_budget()
            .await;
        match result {
            Ok(_) => Some(expires),
            Err(e) => {
                let err = SessionError::dynamo("UpdateItem", e);
                tracing::warn!(session = %id.redacted(), error = %err, "expiry refresh skipped");
                None
            }
        }
    }

    /// Replaces the data. With the caller's lock token it writes through the
    /// lock and releases it (one request); without, it reads first, keeps the
    /// stored format, and writes only if nothing changed since the read.
    pub async fn replace(&self, id: &SessionId, data: Data, options: &WriteOptions) -> Result<Session, SessionError> {
        // Data over the limit in the configured format costs no call.
        if let Err(too_large @ SessionError::TooLarge { .. }) =
            Encoding::configured(self.config()).encode(self.config(), &data)
        {
            return Err(too_large);
        }
        match (&options.lock_token, &options.if_match) {
            // Unless the policy must compare the data with what is stored.
            (Some(token), None) if !options.policy.needs_stored(&data) => {
                self.write_through(id, data, token, options.expires).await
            }
            _ => self.update(id, None, options, |_, _| Ok(data.clone())).await,
        }
    }

    /// Sets and removes some keys of a session read with
    /// [`load_for_change`](SessionStore::load_for_change), leaving the other
    /// keys as they are stored: one conditional write on the item as read;
    /// when another writer got in between, read again and apply the same
    /// changes to what is stored then (as [`patch`](SessionStore::patch)).
    /// A session read with [`lock_for_change`](SessionStore::lock_for_change)
    /// is written by its lock's holder, releasing the lock in the same write
    /// (LockLost, nothing written, if the lock was taken over).
    pub async fn change_keys(
        &self,
        loaded: &Loaded,
        changes: &KeyChanges,
        options: &WriteOptions,
    ) -> Result<Session, SessionError> {
        // A locked read's change is its holder's write: it releases the lock.
        let with_lock;
        let options = match &loaded.session.lock_token {
            Some(token) => {
                with_lock = WriteOptions { lock_token: Some(token.clone()), ..options.clone() };
                &with_lock
            }
            None => options,
        };
        self.update(&loaded.session.id, Some(loaded.read.clone()), options, |stored, _| {
            let mut data = stored.clone();
            for (key, value) in changes {
                match value {
                    Some(value) => data.insert(key.clone(), value.clone()),
                    None => data.shift_remove(key),
                };
            }
            Ok(data)
        })
        .await
    }

    /// Applies a JSON merge patch (RFC 7396) to the stored data, retrying
    /// when another request wrote in between, so concurrent patches never
    /// lose an update.
    pub async fn patch(&self, id: &SessionId, patch: &Data, options: &WriteOptions) -> Result<Session, SessionError> {
        self.update(id, None, options, |stored, format| {
            options.policy.check_patch(stored, patch, format)?;
            let mut data = stored.clone();
            merge_patch(&mut data, patch);
            Ok(data)
        })
        .await
    }

    /// Read, change, conditional write; again while other writers get in
    /// between, up to `max_lock_wait_time`. The first attempt starts from
    /// `read`, when given and still live, instead of reading.
    async fn update(
        &self,
        id: &SessionId,
        mut read: Option<Record>,
        options: &WriteOptions,
        change: impl Fn(&Data, DataFormat) -> Result<Data, SessionError>,
    ) -> Result<Session, SessionError> {
        let write_id = random_marker();
        let mut wait = LockWait::new(self.config());
        loop {
            let now = Now::sample();
            let record = match read.take().filter(|record| record.is_live(now)) {
                Some(record) => record,
                None => self.items.fetch_live(id, true, now).await?,
            };
            if options.if_match.as_ref().is_some_and(|tag| *tag != record.etag()) {
                return Err(SessionError::PreconditionFailed);
            }
            let guard = match WriteAccess::of(self.config(), &record, options.lock_token.as_ref(), now) {
                WriteAccess::Allowed(guard) => guard,
                WriteAccess::LockLost => return Err(SessionError::LockLost),
                WriteAccess::Wait => {
                    wait_for_release(&self.items, id, record, &mut wait).await?;
                    continue;
                }
            };
            let stored = self.changed(&record, options, &change)?;
            let expires = options.expires.unwrap_or_else(|| self.items.new_expiry(now));
            let stamp = Stamp { write_id: &write_id, expires };
            let written = self.write_data(id, stored, guard, stamp, now, Retries::ByCaller).await;
            match self.judge_update(id, &record, written, &write_id, now, options).await? {
                Retry::Done(session) => return Ok(session),
                // Changed since our read: read again (after a pause that keeps
                // racing writers apart), and the ETag check above decides.
                Retry::Again(error) => wait.pause(None, error).await?,
            }
        }
    }

    /// The data `change` makes of `record`'s, checked against the write
    /// policy and encoded as the session is stored.
    fn changed(
        &self,
        record: &Record,
        options: &WriteOptions,
        change: impl Fn(&Data, DataFormat) -> Result<Data, SessionError>,
    ) -> Result<Option<StoredData>, SessionError> {
        let config = self.config();
        let old = record.decode_data(config)?;
        let encoding = record.encoding(config)?;
        let data = change(&old, encoding.format)?;
        options.policy.check(&old, &data, encoding.format)?;
        encoding.encode(config, &data)
    }

    /// What the end of an update's write (of the session read as `read`,
    /// marked `write_id`) means.
    async fn judge_update(
        &self,
        id: &SessionId,
        read: &Record,
        written: Result<Written<Record>, SessionError>,
        write_id: &str,
        now: Now,
        options: &WriteOptions,
    ) -> Result<Retry<Session>, SessionError> {
        match written {
            Ok(Written::Done(record)) => Ok(Retry::Done(self.session(id, &record, None)?)),
            Ok(Written::Refused(old)) if conditions::written_by(&old, write_id) => {
                Ok(Retry::Done(self.session(id, &old, None)?))
            }
            Ok(Written::Refused(old)) if !old.is_live(now) => Err(SessionError::NotFound),
            Ok(Written::NoItem) => Err(SessionError::NotFound),
            Ok(Written::Refused(_)) if options.lock_token.is_some() => Err(SessionError::LockLost),
            Ok(Written::Refused(_)) => Ok(Retry::Again(SessionError::Conflict)),
            Err(error) if error.is_transient() => self.judge_unknown_write(id, read, write_id, error).await,
            Err(error) => Err(error),
        }
    }

    /// A 5xx or a timeout: the write may have landed. Look at once, while
    /// its marker is still among the item's last; when too many writes
    /// followed to tell, the caller decides (503), rather than this applying
    /// it twice.
    async fn judge_unknown_write(
        &self,
        id: &SessionId,
        read: &Record,
        write_id: &str,
        error: SessionError,
    ) -> Result<Retry<Session>, SessionError> {
        if !error.is_throttled() {
            if let Some(current) = self.items.fetch(id, true).await? {
                match conditions::landed(read, &current, write_id) {
                    Some(true) => return Ok(Retry::Done(self.session(id, &current, None)?)),
                    Some(false) => {}
                    None => return Err(error),
                }
            }
        }
        Ok(Retry::Again(error))
    }

    /// The write of a lock holder: no read, the token says the encoding,
    /// conditional on the item binding the lock to that encoding. A token
    /// whose encoding is not the bound one (edited by a client) writes again
    /// in the bound one. Refused, it is done all the same when the item
    /// shows this token's write with these very data (the SDK's retry, or
    /// the client's after a 503, of a write that landed).
    async fn write_through(
        &self,
        id: &SessionId,
        data: Data,
        token: &LockToken,
        expires: Option<i64>,
    ) -> Result<Session, SessionError> {
        let now = Now::sample();
        let write_id = token.write_id();
        let mut token = token.clone();
        loop {
            let stored = token.encoding().encode(self.config(), &data)?;
            let guard = token.held_in_its_encoding();
            let stamp = Stamp { write_id, expires: expires.unwrap_or_else(|| self.items.new_expiry(now)) };
            match self.write_data(id, stored.clone(), guard, stamp, now, Retries::BySdk).await? {
                Written::Done(record) => return self.session(id, &record, None),
                Written::Refused(old) if conditions::written_by(&old, write_id) && old.data == stored => {
                    return self.session(id, &old, None)
                }
                Written::Refused(old) if old.is_live(now) => match token.bound_encoding(&old) {
                    Some(bound) if bound != token.encoding() => token = token.with_encoding(bound),
                    _ => return Err(SessionError::LockLost),
                },
                Written::Refused(_) | Written::NoItem => return Err(SessionError::NotFound),
            }
        }
    }

    /// The one data write: new data (or none), expiry, version, marker; the
    /// lock released; conditional on the session being live and `guard`.
    /// Done, it returns the item as written.
    async fn write_data(
        &self,
        id: &SessionId,
        stored: Option<StoredData>,
        guard: Expr,
        stamp: Stamp<'_>,
        now: Now,
        retries: Retries,
    ) -> Result<Written<Record>, SessionError> {
        let config = self.config();
        let request = self
            .items
            .update_item(id)
            .update(self.data_update(stored.as_ref(), stamp))
            .condition(conditions::live(config, now).and(guard))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let result = match retries {
            Retries::BySdk => request.send().in_budget().await,
            Retries::ByCaller => {
                let no_retries = aws_sdk_dynamodb::config::Builder::default().retry_config(RetryConfig::disabled());
                request.customize().config_override(no_retries).send().in_budget().await
            }
        };
        let result = result.map(|out| Record::decode(config, &out.attributes.unwrap_or_default()));
        self.items.written("UpdateItem", id, result).await
    }

    /// The update of a data write: the data set (or removed when empty),
    /// the expiry pushed on, the version bumped, `write_id` newest of the
    /// markers, the lock removed.
    fn data_update(&self, stored: Option<&StoredData>, stamp: Stamp<'_>) -> Expr {
        let config = self.config();
        let (set_data, remove_data) = match stored {
            Some(_) => (format!("{P_DATA} = :data, "), String::new()),
            None => (String::new(), format!(", {P_DATA}")),
        };
        let ver = VERSION.placeholder;
        let [wid, wid2, wid3] = WRITE_IDS.map(|attribute| attribute.placeholder);
        let lock = lock_attributes();
        let mut update = Expr::new(format!(
            "SET {set_data}{P_EXP} = :new_expires, {ver} = if_not_exists({ver}, :zero) + :one, \
             {wid} = :write_id, {wid2} = if_not_exists({wid}, :none), {wid3} = if_not_exists({wid2}, :none) \
             REMOVE {lock}{remove_data}"
        ))
        .name(P_DATA, &config.data_attribute)
        .name(P_EXP, &config.session_lifetime_attribute)
        .value(":new_expires", attr_n(stamp.expires))
        .value(":zero", attr_n(0))
        .value(":one", attr_n(1))
        .value(":write_id", attr_s(stamp.write_id))
        .value(":none", attr_s("-"));
        update = WRITE_IDS.iter().fold(VERSION.bound_in(bind_lock(update)), |update, wid| wid.bound_in(update));
        match stored {
            Some(stored) => update.value(":data", stored.attribute_value()),
            None => update,
        }
    }

    /// Destroys a session; destroying an absent or expired one succeeds. A
    /// session another request has locked is waited for, then Locked; with
    /// the caller's token, a lock that is no longer the caller's is LockLost.
    pub async fn destroy(&self, id: &SessionId, lock_token: Option<&LockToken>) -> Result<(), SessionError> {
        let config = self.config();
        let mut wait = LockWait::new(config);
        loop {
            let now = Now::sample();
            let dead = conditions::live(config, now).negate();
            let allowed = match lock_token {
                Some(token) => token.held(),
                None => lock_free(now),
            };
            let result = self
                .items
                .delete_key(self.items.key(id))
                .condition(dead.or(allowed))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .in_budget()
                .await;
            match self.items.written("DeleteItem", id, result).await? {
                Written::Done(_) | Written::NoItem => return Ok(()),
                Written::Refused(_) if lock_token.is_some() => return Err(SessionError::LockLost),
                Written::Refused(old) => wait_for_release(&self.items, id, old, &mut wait).await?,
            }
        }
    }

    /// Gives the session a new id with the same data (its stored bytes, as
    /// they are) and removes the old item, in one transaction (PHP's
    /// `session_regenerate_id(true)`).
    pub async fn regenerate(&self, id: &SessionId, lock_token: Option<&LockToken>) -> Result<Session, SessionError> {
        Ok(self.regenerate_from(id, lock_token, None).await?.session)
    }

    /// [`regenerate`](Self::regenerate) of a session as
    /// [`load_for_change`](Self::load_for_change) read it: the first attempt
    /// goes on that read (its transaction is refused if the item changed
    /// since), so a regenerate right after a read costs no second read. The
    /// new session comes back as written, ready for
    /// [`change_keys`](Self::change_keys) without a read either.
    pub async fn regenerate_loaded(&self, loaded: &Loaded) -> Result<Loaded, SessionError> {
        let lock_token = loaded.session.lock_token.as_ref();
        self.regenerate_from(&loaded.session.id, lock_token, Some(loaded.read.clone())).await
    }

    /// Regenerates `id`, reading it first unless `read` holds it as read.
    async fn regenerate_from(
        &self,
        id: &SessionId,
        lock_token: Option<&LockToken>,
        mut read: Option<Record>,
    ) -> Result<Loaded, SessionError> {
        // One new id and marker for every attempt: at most one attempt can
        // put the new item (it must be absent), and the item says it landed.
        let new_id = SessionId::generate();
        let write_id = random_marker();
        let mut wait = LockWait::new(self.config());
        let mut sent = false;
        loop {
            let now = Now::sample();
            let fetched = match read.take() {
                Some(record) => Ok(record),
                None => self.items.fetch_live(id, true, now).await,
            };
            let record = match fetched {
                Ok(record) => record,
                // Gone: perhaps because an attempt of ours landed.
                Err(SessionError::NotFound) if sent => {
                    return self.regenerated(&new_id, &write_id).await?.ok_or(SessionError::NotFound)
                }
                Err(err) => return Err(err),
            };
            let allowed = match WriteAccess::of(self.config(), &record, lock_token, now) {
                WriteAccess::Allowed(guard) => guard,
                WriteAccess::LockLost => return Err(SessionError::LockLost),
                WriteAccess::Wait => {
                    wait_for_release(&self.items, id, record, &mut wait).await?;
                    continue;
                }
            };
            let (regenerated, transaction) = self.regeneration(id, &record, allowed, &new_id, &write_id, now)?;
            sent = true;
            match self.commit(transaction, &mut wait).await {
                Commit::Done => return Ok(regenerated),
                // A condition failed: the old session changed, expired or was
                // locked since our read, or an earlier send landed. Look again.
                Commit::Refused => wait.pause(None, SessionError::Conflict).await?,
                Commit::Failed { error, maybe_landed: false } => return Err(error),
                Commit::Failed { error, maybe_landed: true } => {
                    return self.regenerated(&new_id, &write_id).await.ok().flatten().ok_or(error)
                }
            }
        }
    }

    /// The session as `new_id` with `record`'s data, as the transaction will
    /// write it, and that transaction: it puts the new item (only if absent)
    /// and deletes the old one (only if live and `allowed`).
    fn regeneration(
        &self,
        id: &SessionId,
        record: &Record,
        allowed: Expr,
        new_id: &SessionId,
        write_id: &str,
        now: Now,
    ) -> Result<(Loaded, TransactWriteItemsFluentBuilder), SessionError> {
        let config = self.config();
        // Refuse undecodable data before anything changes.
        let data = record.decode_data(config)?;
        let expires = self.items.new_expiry(now);
        let mut item = new_item(config, config.item_key(new_id.as_str()), record.data.as_ref(), expires, now);
        item.insert(WRITE_IDS[0].name.into(), attr_s(write_id));
        let read = Record::decode(config, &item);
        let session = Session { id: new_id.clone(), data, expires, etag: read.etag(), lock_token: None };
        let put = Put::builder()
            .table_name(&config.table_name)
            .set_item(Some(item))
            .condition(conditions::absent(config))
            .build()
            .expect("table, item and condition are set");
        let delete = Delete::builder()
            .table_name(&config.table_name)
            .key(&config.hash_key, self.items.key(id))
            .condition(conditions::live(config, now).and(allowed))
            .build()
            .expect("table, key and condition are set");
        let transaction = self
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .client_request_token(random_marker());
        Ok((Loaded { session, read }, transaction))
    }

    /// Sends a transaction until its outcome is known: after a conflict, a
    /// timeout or a server error it is sent again as it is, with the same
    /// `ClientRequestToken` (DynamoDB answers a resend of a transaction that
    /// landed with success, for 10 minutes, and one still in progress with
    /// TransactionInProgress), until `wait`'s deadline.
    async fn commit(&self, transaction: TransactWriteItemsFluentBuilder, wait: &mut LockWait) -> Commit {
        let mut maybe_landed = false;
        loop {
            let err = match transaction.clone().send().in_budget().await {
                Ok(_) => return Commit::Done,
                Err(err) => err,
            };
            let error = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    match SessionError::from_cancellation("TransactWriteItems", cancelled.cancellation_reasons()) {
                        Some(error) => error,
                        None => return Commit::Refused,
                    }
                }
                _ => SessionError::dynamo("TransactWriteItems", err),
            };
            // Throttling and conflicts are refusals before anything happened;
            // a timeout or a 5xx may have landed.
            let unknown = error.is_transient() && !error.is_throttled() && !error.is_transaction_conflict();
            maybe_landed |= unknown;
            let resend = unknown || error.is_transaction_conflict();
            if !resend {
                return Commit::Failed { error, maybe_landed };
            }
            if let Err(error) = wait.pause(None, error).await {
                return Commit::Failed { error, maybe_landed };
            }
        }
    }

    /// The session regenerated as `new_id`, if a transaction marked
    /// `write_id` put it.
    async fn regenerated(&self, new_id: &SessionId, write_id: &str) -> Result<Option<Loaded>, SessionError> {
        match self.items.fetch(new_id, true).await? {
            Some(read) if conditions::written_by(&read, write_id) => {
                Ok(Some(Loaded { session: self.session(new_id, &read, None)?, read }))
            }
            _ => Ok(None),
        }
    }

    /// Reads a session and takes its lock, waiting up to `max_lock_wait_time`
    /// for another holder, then Locked: never an empty session. Data that
    /// cannot be decoded is refused and the lock released before answering.
    pub async fn load_and_lock(&self, id: &SessionId) -> Result<Session, SessionError> {
        Ok(self.lock_for_change(id).await?.session)
    }

    /// [`load_and_lock`](Self::load_and_lock) for a change later (an
    /// in-process layer's first access under pessimistic locking): the
    /// locking read, one conditional UpdateItem that returns the item. The
    /// lock goes with the [`Loaded`]: [`change_keys`](Self::change_keys)
    /// writes through and releases it, [`unlock`](Self::unlock) releases it.
    pub async fn lock_for_change(&self, id: &SessionId) -> Result<Loaded, SessionError> {
        let Locked { record, data, token } = locking::load_and_lock(&self.items, id).await?;
        let session =
            Session { id: id.clone(), data, expires: record.expires, etag: record.etag(), lock_token: Some(token) };
        Ok(Loaded { session, read: record })
    }

    /// Releases the caller's lock without writing (taking it refreshed the
    /// expiry already). Releasing a lock that is no longer the caller's
    /// (already released, or taken over) succeeds: there is nothing of the
    /// caller's left to release.
    pub async fn unlock(&self, id: &SessionId, token: &LockToken) -> Result<(), SessionError> {
        locking::unlock(&self.items, id, token).await
    }

    /// The capacity a sweep may use, read once per store with DescribeTable:
    /// `gc_capacity_share` of a provisioned table's units, or
    /// `gc_on_demand_rate` on an on-demand table.
    pub async fn gc_budget(&self) -> Result<CapacityBudget, SessionError> {
        self.gc.budget().await
    }

    /// Sweeps expired sessions (see [`crate::gc`]) within the GC budget, from
    /// `options.start_after` to the end or the deadline.
    pub async fn delete_expired(&self, options: SweepOptions) -> Result<GcReport, SessionError> {
        self.gc.delete_expired(options).await
    }

    /// PHP's automatic GC, bounded: by chance (1 in
    /// [`AUTOMATIC_GC_DIVISOR`](crate::gc::AUTOMATIC_GC_DIVISOR)) a short
    /// sweep of one random scan segment. None when it did not run. A large
    /// table is only partly swept this way: the scheduled sweep is the one
    /// that finishes it.
    pub async fn automatic_gc_step(&self) -> Option<Result<GcReport, SessionError>> {
        self.gc.automatic_step().await
    }

    /// Sweeps every `period` forever (for a long-running server), each sweep
    /// stopping before the next is due.
    pub async fn continuously_delete_expired(&self, period: Duration) {
        self.gc.continuously_delete_expired(period).await
    }

    /// One scheduled run: claims the checkpoint (a lease that ends at the
    /// deadline, so a crashed run never blocks the next), sweeps from the
    /// saved position until the table ends or the deadline, and, on every
    /// way out (errors included), saves where it got to and releases the
    /// claim before returning.
    pub async fn scheduled_sweep(&self, deadline: Instant, run_id: &str) -> Result<ScheduledSweep, SessionError> {
        self.gc.scheduled_sweep(deadline, run_id).await
    }
}

/// How a transaction sent until its outcome is known ended.
enum Commit {
    Done,
    /// A condition failed (which an earlier send's landing can cause too).
    Refused,
    Failed {
        error: SessionError,
        /// An earlier send timed out or met a server error: it may have landed.
        maybe_landed: bool,
    },
}

/// RFC 7396 JSON merge patch of an object, keeping the order of the keys
/// that stay (PHP's session order): a removed key closes its gap instead of
/// taking the last key into its place.
fn merge_patch(target: &mut Data, patch: &Data) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.shift_remove(key);
            }
            Value::Object(inner) => {
                let slot = target.entry(key.clone()).or_insert_with(|| Value::Object(Data::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Data::new());
                }
                if let Value::Object(existing) = slot {
                    merge_patch(existing, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// Who sends a data write again when its outcome is unknown (a 5xx, a
/// timeout after it was sent).
#[derive(Clone, Copy)]
enum Retries {
    /// The SDK's retry: a lock holder's writes are the only ones, so its
    /// marker is still on the item when the retry's refusal returns it.
    BySdk,
    /// The caller, after a read at once: among concurrent writers, others
    /// land during the SDK's backoff and push the marker out of the item's
    /// last three, and the retry would apply the change a second time.
    ByCaller,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(value: Value) -> Data {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396_and_keeps_the_order() {
        let mut target = data(json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "d": "keep", "e": 5}));
        merge_patch(&mut target, &data(json!({"a": null, "b": {"x": null, "z": 3}, "c": {"n": 1}, "f": null})));
        assert_eq!(Value::Object(target.clone()), json!({"b": {"y": 2, "z": 3}, "c": {"n": 1}, "d": "keep", "e": 5}));
        let keys: Vec<&str> = target.keys().map(String::as_str).collect();
        assert_eq!(keys, ["b", "c", "d", "e"], "a removed key does not move the last key into its place");
    }
}
