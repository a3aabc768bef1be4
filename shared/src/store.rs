//! The session store: start, read, replace, merge-patch, destroy and
//! regenerate sessions kept one item each in DynamoDB (locking is in
//! [`crate::locking`], garbage collection in [`crate::gc`]).
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

use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use crate::budget::InBudget;
use crate::codec::{Data, DataFormat};
use crate::config::Config;
use crate::error::SessionError;
use crate::expr::{attr_n, attr_s, Expr, WithCondition, WithUpdate};
use crate::gc::CapacityBudget;
use crate::id::SessionId;
use crate::item::{
    conditions, new_item, random_marker, Encoding, Item, Now, Record, StoredData, P_DATA, P_EXP, VERSION, WRITE_IDS,
};
use crate::locking::{bind_lock_names, has_stale_lease, lock_free, LockToken, LockWait, WriteAccess, REMOVE_LOCK};
use crate::policy::WritePolicy;

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
}

/// The store: a DynamoDB client and the options, built once and cloned cheaply.
#[derive(Clone)]
pub struct SessionStore {
    client: Client,
    config: Arc<Config>,
    /// The GC budget, read from the table once.
    gc_budget: Arc<OnceLock<CapacityBudget>>,
}

/// The outcome of a conditional request: done, or refused with the item's
/// state at that moment (None when there was no item).
pub(crate) type Conditional<T> = Result<T, Option<Record>>;

impl SessionStore {
    /// A store on `client` with `config`. The client gets the config's
    /// timeouts and the SDK's standard retries.
    pub fn new(client: Client, config: Config) -> SessionStore {
        let client = crate::client::with_timeouts(&client, &config);
        SessionStore { client, config: Arc::new(config), gc_budget: Arc::default() }
    }

    /// The options.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The same store on another client (e.g. one with other timeouts).
    pub(crate) fn with_client(&self, client: Client) -> SessionStore {
        SessionStore { client, config: self.config.clone(), gc_budget: self.gc_budget.clone() }
    }

    pub(crate) fn cached_budget(&self) -> Option<CapacityBudget> {
        self.gc_budget.get().copied()
    }

    pub(crate) fn cache_budget(&self, budget: CapacityBudget) -> CapacityBudget {
        *self.gc_budget.get_or_init(|| budget)
    }

    fn key(&self, id: &SessionId) -> AttributeValue {
        attr_s(self.config.item_key(id.as_str()))
    }

    pub(crate) fn new_expiry(&self, now: Now) -> i64 {
        now.secs + self.config.session_lifetime.as_secs() as i64
    }

    pub(crate) fn update_item(&self, id: &SessionId) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.config.table_name).key(&self.config.hash_key, self.key(id))
    }

    pub(crate) fn session(
        &self,
        id: &SessionId,
        record: &Record,
        lock_token: Option<LockToken>,
    ) -> Result<Session, SessionError> {
        Ok(Session {
            id: id.clone(),
            data: record.decode_data(&self.config)?,
            expires: record.expires,
            etag: record.etag(),
            lock_token,
        })
    }

    /// Turns a conditional request's result into done, refused (with the
    /// item's old state: as returned with the failure, or read again when the
    /// server did not return it) or an error.
    pub(crate) async fn refused_or<T, E>(
        &self,
        operation: &'static str,
        id: &SessionId,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<Conditional<T>, SessionError>
    where
        E: ConditionFailure + aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match result {
            Ok(done) => Ok(Ok(done)),
            Err(err) => match err.as_service_error().and_then(ConditionFailure::old_item) {
                Some(Some(item)) => Ok(Err(Some(Record::decode(&self.config, &item)))),
                Some(None) => Ok(Err(self.fetch(id, true).await?)),
                None => Err(SessionError::dynamo(operation, err)),
            },
        }
    }

    /// Reads the item, if any.
    pub(crate) async fn fetch(&self, id: &SessionId, consistent: bool) -> Result<Option<Record>, SessionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table_name)
            .key(&self.config.hash_key, self.key(id))
            .consistent_read(consistent)
            .send()
            .in_budget()
            .await
            .map_err(|e| SessionError::dynamo("GetItem", e))?;
        Ok(out.item.map(|item| Record::decode(&self.config, &item)))
    }

    /// The live record, or NotFound (expired counts as absent, whatever TTL did).
    async fn fetch_live(&self, id: &SessionId, consistent: bool, now: Now) -> Result<Record, SessionError> {
        match self.fetch(id, consistent).await? {
            Some(record) if record.is_live(now) => Ok(record),
            _ => Err(SessionError::NotFound),
        }
    }

    /// Starts a new session with a fresh id, in the configured format; the
    /// put's condition means it can never overwrite an existing item.
    pub async fn create(&self, data: Data) -> Result<Session, SessionError> {
        let stored = Encoding::configured(&self.config).encode(&self.config, &data)?;
        let id = SessionId::generate();
        let now = Now::sample();
        let write_id = random_marker();
        let mut item =
            new_item(&self.config, self.config.item_key(id.as_str()), stored.as_ref(), self.new_expiry(now), now);
        item.insert(WRITE_IDS[0].into(), attr_s(&write_id));
        let result = self
            .client
            .put_item()
            .table_name(&self.config.table_name)
            .set_item(Some(item.clone()))
            .condition(conditions::absent(&self.config))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .in_budget()
            .await;
        match self.refused_or("PutItem", &id, result).await? {
            Ok(_) => {}
            Err(Some(old)) if conditions::written_by(&old, &write_id) => {}
            // A 190-bit id collides never in practice; if it did, it would
            // surface as Conflict rather than an overwrite.
            Err(_) => return Err(SessionError::Conflict),
        }
        self.session(&id, &Record::decode(&self.config, &item), None)
    }

    /// Reads a session without locking it: one GetItem, plus a small
    /// UpdateItem at most once per touch interval to push the expiry on.
    pub async fn load(&self, id: &SessionId) -> Result<Session, SessionError> {
        let now = Now::sample();
        let record = self.fetch_live(id, self.config.consistent_read, now).await?;
        let mut session = self.session(id, &record, None)?;
        if has_stale_lease(&record, now) {
            // A vanished holder's lease: end it, or PHP waits for it and then
            // starts with an empty session.
            if let Err(err) = self.end_stale_lease(self.key(id), &record).await {
                tracing::warn!(session = %id.redacted(), error = %err, "run-out lease not removed");
            }
        }
        let last_activity = record.expires - self.config.session_lifetime.as_secs() as i64;
        if now.secs - last_activity >= self.config.touch_interval.as_secs() as i64 {
            session.expires = self.touch(id, now).await.unwrap_or(record.expires);
        }
        Ok(session)
    }

    /// Pushes the expiry on without changing the data or the entity tag. A
    /// failure is logged and the read still answers: it was only a refresh.
    async fn touch(&self, id: &SessionId, now: Now) -> Option<i64> {
        let expires = self.new_expiry(now);
        let update = Expr::new(format!("SET {P_EXP} = :new_expires"))
            .name(P_EXP, &self.config.session_lifetime_attribute)
            .value(":new_expires", attr_n(expires));
        // Never move the expiry back, never bring a dead session back.
        let later = Expr::new(format!("{P_EXP} < :new_expires"))
            .name(P_EXP, &self.config.session_lifetime_attribute)
            .value(":new_expires", attr_n(expires));
        let result = self
            .update_item(id)
            .update(update)
            .condition(conditions::live(&self.config, now).and(later))
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
            Encoding::configured(&self.config).encode(&self.config, &data)
        {
            return Err(too_large);
        }
        match (&options.lock_token, &options.if_match) {
            // Unless the policy must compare the data with what is stored.
            (Some(token), None) if !options.policy.needs_stored(&data) => self.write_through(id, data, token).await,
            _ => self.update(id, options, |_, _| Ok(data.clone())).await,
        }
    }

    /// Applies a JSON merge patch (RFC 7396) to the stored data, retrying
    /// when another request wrote in between, so concurrent patches never
    /// lose an update.
    pub async fn patch(&self, id: &SessionId, patch: &Data, options: &WriteOptions) -> Result<Session, SessionError> {
        self.update(id, options, |stored, format| {
            options.policy.check_patch(stored, patch, format)?;
            let mut data = stored.clone();
            merge_patch(&mut data, patch);
            Ok(data)
        })
        .await
    }

    /// Read, change, conditional write; again while other writers get in
    /// between, up to `max_lock_wait_time`.
    async fn update(
        &self,
        id: &SessionId,
        options: &WriteOptions,
        change: impl Fn(&Data, DataFormat) -> Result<Data, SessionError>,
    ) -> Result<Session, SessionError> {
        let config = &self.config;
        let write_id = random_marker();
        let mut wait = LockWait::new(config);
        loop {
            let now = Now::sample();
            let record = self.fetch_live(id, true, now).await?;
            if options.if_match.as_ref().is_some_and(|tag| *tag != record.etag()) {
                return Err(SessionError::PreconditionFailed);
            }
            let guard = match WriteAccess::of(config, &record, options.lock_token.as_ref(), now) {
                WriteAccess::Allowed(guard) => guard,
                WriteAccess::LockLost => return Err(SessionError::LockLost),
                WriteAccess::Wait => {
                    self.wait_for_release(id, record, &mut wait).await?;
                    continue;
                }
            };
            let old = record.decode_data(config)?;
            let encoding = record.encoding(config)?;
            let data = change(&old, encoding.format)?;
            options.policy.check(&old, &data, encoding.format)?;
            let stored = encoding.encode(config, &data)?;
            match self.write_data(id, stored, guard, &write_id, now, Retries::ByCaller).await {
                Ok(Ok(session)) => return Ok(session),
                Ok(Err(Some(old))) if conditions::written_by(&old, &write_id) => return self.session(id, &old, None),
                Ok(Err(Some(old))) if !old.is_live(now) => return Err(SessionError::NotFound),
                Ok(Err(None)) => return Err(SessionError::NotFound),
                Ok(Err(Some(_))) if options.lock_token.is_some() => return Err(SessionError::LockLost),
                // Changed since our read: read again (after a pause that keeps
                // racing writers apart), and the ETag check above decides.
                Ok(Err(Some(_))) => wait.pause(None, SessionError::Conflict).await?,
                Err(error) if error.is_transient() => {
                    // A 5xx or a timeout: the write may have landed. Look at
                    // once, while its marker is still among the item's last;
                    // when too many writes followed to tell, the caller
                    // decides (503), rather than this applying it twice.
                    if !error.is_throttled() {
                        if let Some(current) = self.fetch(id, true).await? {
                            match conditions::landed(&record, &current, &write_id) {
                                Some(true) => return self.session(id, &current, None),
                                Some(false) => {}
                                None => return Err(error),
                            }
                        }
                    }
                    wait.pause(None, error).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The write of a lock holder: no read, the token says the encoding,
    /// conditional on the item binding the lock to that encoding. A token
    /// whose encoding is not the bound one (edited by a client) writes again
    /// in the bound one. Refused, it is done all the same when the item
    /// shows this token's write with these very data (the SDK's retry, or
    /// the client's after a 503, of a write that landed).
    async fn write_through(&self, id: &SessionId, data: Data, token: &LockToken) -> Result<Session, SessionError> {
        let now = Now::sample();
        let write_id = token.write_id();
        let mut token = token.clone();
        loop {
            let stored = token.encoding().encode(&self.config, &data)?;
            let guard = token.held_in_its_encoding();
            match self.write_data(id, stored.clone(), guard, write_id, now, Retries::BySdk).await? {
                Ok(session) => return Ok(session),
                Err(Some(old)) if conditions::written_by(&old, write_id) && old.data == stored => {
                    return self.session(id, &old, None)
                }
                Err(Some(old)) if old.is_live(now) => match token.bound_encoding(&old) {
                    Some(bound) if bound != token.encoding() => token = token.with_encoding(bound),
                    _ => return Err(SessionError::LockLost),
                },
                Err(_) => return Err(SessionError::NotFound),
            }
        }
    }

    /// The one data write: new data (or none), expiry, version, marker; the
    /// lock released; conditional on the session being live and `guard`.
    async fn write_data(
        &self,
        id: &SessionId,
        stored: Option<StoredData>,
        guard: Expr,
        write_id: &str,
        now: Now,
        retries: Retries,
    ) -> Result<Conditional<Session>, SessionError> {
        let config = &self.config;
        let (set_data, remove_data) = match stored {
            Some(_) => (format!("{P_DATA} = :data, "), ""),
            None => (String::new(), ", #data"),
        };
        let mut update = Expr::new(format!(
            "SET {set_data}{P_EXP} = :new_expires, #ver = if_not_exists(#ver, :zero) + :one, \
             #wid = :write_id, #wid2 = if_not_exists(#wid, :none), #wid3 = if_not_exists(#wid2, :none) \
             REMOVE {REMOVE_LOCK}{remove_data}"
        ))
        .name(P_DATA, &config.data_attribute)
        .name(P_EXP, &config.session_lifetime_attribute)
        .name("#ver", VERSION)
        .name("#wid", WRITE_IDS[0])
        .name("#wid2", WRITE_IDS[1])
        .name("#wid3", WRITE_IDS[2])
        .value(":new_expires", attr_n(self.new_expiry(now)))
        .value(":zero", attr_n(0))
        .value(":one", attr_n(1))
        .value(":write_id", attr_s(write_id))
        .value(":none", attr_s("-"));
        if let Some(stored) = &stored {
            update = update.value(":data", stored.attribute_value());
        }
        let request = self
            .update_item(id)
            .update(bind_lock_names(update))
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
        match self.refused_or("UpdateItem", id, result.map(|out| out.attributes.unwrap_or_default())).await? {
            Ok(item) => Ok(Ok(self.session(id, &Record::decode(config, &item), None)?)),
            Err(old) => Ok(Err(old)),
        }
    }

    /// Destroys a session; destroying an absent or expired one succeeds. A
    /// session another request has locked is waited for, then Locked; with
    /// the caller's token, a lock that is no longer the caller's is LockLost.
    pub async fn destroy(&self, id: &SessionId, lock_token: Option<&LockToken>) -> Result<(), SessionError> {
        let config = &self.config;
        let mut wait = LockWait::new(config);
        loop {
            let now = Now::sample();
            let dead = conditions::live(config, now).negate();
            let allowed = match lock_token {
                Some(token) => token.held(),
                None => lock_free(now),
            };
            let result = self
                .client
                .delete_item()
                .table_name(&config.table_name)
                .key(&config.hash_key, self.key(id))
                .condition(dead.or(allowed))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .in_budget()
                .await;
            match self.refused_or("DeleteItem", id, result).await? {
                Ok(_) | Err(None) => return Ok(()),
                Err(Some(_)) if lock_token.is_some() => return Err(SessionError::LockLost),
                Err(Some(old)) => self.wait_for_release(id, old, &mut wait).await?,
            }
        }
    }

    /// Gives the session a new id with the same data (its stored bytes, as
    /// they are) and removes the old item, in one transaction (PHP's
    /// `session_regenerate_id(true)`).
    pub async fn regenerate(&self, id: &SessionId, lock_token: Option<&LockToken>) -> Result<Session, SessionError> {
        let config = &self.config;
        // One new id and marker for every attempt: at most one attempt can
        // put the new item (it must be absent), and the item says it landed.
        let new_id = SessionId::generate();
        let write_id = random_marker();
        let mut wait = LockWait::new(config);
        let mut sent = false;
        loop {
            let now = Now::sample();
            let record = match self.fetch_live(id, true, now).await {
                Ok(record) => record,
                // Gone: perhaps because an attempt of ours landed.
                Err(SessionError::NotFound) if sent => {
                    return self.regenerated(&new_id, &write_id).await?.ok_or(SessionError::NotFound)
                }
                Err(err) => return Err(err),
            };
            let allowed = match WriteAccess::of(config, &record, lock_token, now) {
                WriteAccess::Allowed(guard) => guard,
                WriteAccess::LockLost => return Err(SessionError::LockLost),
                WriteAccess::Wait => {
                    self.wait_for_release(id, record, &mut wait).await?;
                    continue;
                }
            };
            // Refuse undecodable data before anything changes.
            let data = record.decode_data(config)?;
            let expires = self.new_expiry(now);
            let mut item = new_item(config, config.item_key(new_id.as_str()), record.data.as_ref(), expires, now);
            item.insert(WRITE_IDS[0].into(), attr_s(&write_id));
            let session = Session {
                id: new_id.clone(),
                data,
                expires,
                etag: Record::decode(config, &item).etag(),
                lock_token: None,
            };
            let put = Put::builder()
                .table_name(&config.table_name)
                .set_item(Some(item))
                .condition(conditions::absent(config))
                .build()
                .expect("table, item and condition are set");
            let delete = Delete::builder()
                .table_name(&config.table_name)
                .key(&config.hash_key, self.key(id))
                .condition(conditions::live(config, now).and(allowed))
                .build()
                .expect("table, key and condition are set");
            let transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().delete(delete).build())
                .client_request_token(random_marker());
            sent = true;
            match self.commit(transaction, &mut wait).await {
                Commit::Done => return Ok(session),
                // A condition failed: the old session changed, expired or was
                // locked since our read, or an earlier send landed. Look again.
                Commit::Refused => wait.pause(None, SessionError::Conflict).await?,
                Commit::Failed { error, maybe_landed: false } => return Err(error),
                Commit::Failed { error, maybe_landed: true } => {
                    return match self.regenerated(&new_id, &write_id).await {
                        Ok(Some(session)) => Ok(session),
                        _ => Err(error),
                    };
                }
            }
        }
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
    async fn regenerated(&self, new_id: &SessionId, write_id: &str) -> Result<Option<Session>, SessionError> {
        match self.fetch(new_id, true).await? {
            Some(record) if conditions::written_by(&record, write_id) => Ok(Some(self.session(new_id, &record, None)?)),
            _ => Ok(None),
        }
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

/// The old item a refused conditional request carries.
pub(crate) trait ConditionFailure {
    /// Some(item or None) when the condition failed; None for other errors.
    fn old_item(&self) -> Option<Option<Item>>;
}

macro_rules! condition_failure {
    ($($error:path),* $(,)?) => {$(
        impl ConditionFailure for $error {
            fn old_item(&self) -> Option<Option<Item>> {
                match self {
                    Self::ConditionalCheckFailedException(failed) => Some(failed.item.clone()),
                    _ => None,
                }
            }
        }
    )*};
}

condition_failure!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError,
);

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
