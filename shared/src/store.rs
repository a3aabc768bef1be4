//! The session store: start, read, replace, merge-patch, destroy, regenerate
//! and unlock sessions kept one item each in DynamoDB.
//!
//! Every write is one conditional request, so nothing is ever half-written:
//! the condition says the session exists and is live, the caller may pass
//! the lock, and (when the caller says so) the version is the one it read.
//! When a condition fails, the item's old state (returned with the failure)
//! tells which of NotFound, Locked and Conflict it was.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde_json::{Map, Value};

use crate::config::{Config, LockingStrategy};
use crate::error::SessionError;
use crate::id::SessionId;
use crate::item::*;
use crate::locking::{self, LockToken};

pub type Data = Map<String, Value>;

/// One session as a caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub data: Data,
    /// Epoch seconds after which the session is dead.
    pub expires: i64,
    /// Bumped by every data write; the HTTP API's ETag.
    pub version: u64,
    /// Set when this read took the session's lock.
    pub lock_token: Option<LockToken>,
}

/// Preconditions of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Refuse with Conflict unless the stored version is this one.
    pub expected_version: Option<u64>,
    /// The caller's lock; the write releases it.
    pub lock_token: Option<LockToken>,
}

#[derive(Clone)]
pub struct SessionStore {
    client: Client,
    config: Arc<Config>,
}

impl SessionStore {
    pub fn new(client: Client, config: Config) -> SessionStore {
        SessionStore { client, config: Arc::new(config) }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether a read takes the session's lock (`locking_strategy=pessimistic`).
    pub fn locks_on_read(&self) -> bool {
        self.config.locking_strategy == LockingStrategy::Pessimistic
    }

    fn key(&self, id: &SessionId) -> (String, aws_sdk_dynamodb::types::AttributeValue) {
        (self.config.hash_key.clone(), s(self.config.item_key(id.as_str())))
    }

    fn new_expiry(&self) -> i64 {
        now_secs() + self.config.session_lifetime.as_secs() as i64
    }

    /// Serializes data, refusing it before any call when it is over the limit.
    pub fn encode(&self, data: &Data) -> Result<String, SessionError> {
        let encoded = serde_json::to_string(data).expect("a JSON map always serializes");
        if encoded.len() > self.config.max_data_size {
            return Err(SessionError::TooLarge { size: encoded.len(), limit: self.config.max_data_size });
        }
        Ok(encoded)
    }

    fn session(&self, id: &SessionId, record: &Record, lock_token: Option<LockToken>) -> Result<Session, SessionError> {
        Ok(Session {
            id: id.clone(),
            data: record.data_object()?,
            expires: record.expires,
            version: record.version,
            lock_token,
        })
    }

    /// Starts a new session with a fresh id; the put's condition means it can
    /// never overwrite an existing item.
    pub async fn create(&self, data: Data) -> Result<Session, SessionError> {
        let encoded = self.encode(&data)?;
        let id = SessionId::generate();
        let expires = self.new_expiry();
        let (key_name, key) = self.key(&id);
        let condition = format!("attribute_not_exists({P_KEY})");
        self.client
            .put_item()
            .table_name(&self.config.table_name)
            .item(key_name, key)
            .item(&self.config.data_attribute, s(encoded))
            .item(&self.config.session_lifetime_attribute, n(expires))
            .item(VERSION, n(1))
            .item(CREATED, n(now_secs()))
            .set_expression_attribute_names(Some(names_for(&self.config, &[&condition])))
            .condition_expression(condition)
            .send()
            .await
            // A 192-bit id collides never in practice; if it did, the condition
            // failure surfaces as Conflict rather than an overwrite.
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_conditional_check_failed_exception() => SessionError::Conflict,
                _ => SessionError::dynamo("PutItem", e),
            })?;
        Ok(Session { id, data, expires, version: 1, lock_token: None })
    }

    async fn fetch(&self, id: &SessionId, consistent: bool) -> Result<Option<Record>, SessionError> {
        let (key_name, key) = self.key(id);
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table_name)
            .key(key_name, key)
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| SessionError::dynamo("GetItem", e))?;
        Ok(out.item.map(|item| Record::decode(&self.config, &item)))
    }

    /// The live record, or NotFound (expired counts as absent, whatever TTL did).
    async fn fetch_live(&self, id: &SessionId, consistent: bool) -> Result<Record, SessionError> {
        match self.fetch(id, consistent).await? {
            Some(record) if record.is_live(now_secs()) => Ok(record),
            _ => Err(SessionError::NotFound),
        }
    }

    /// Reads a session without locking it. Costs one GetItem, plus one small
    /// UpdateItem at most once per touch interval to push the expiry on.
    pub async fn load(&self, id: &SessionId) -> Result<Session, SessionError> {
        let record = self.fetch_live(id, self.config.consistent_read).await?;
        let mut session = self.session(id, &record, None)?;
        let last_activity = record.expires - self.config.session_lifetime.as_secs() as i64;
        if now_secs() - last_activity >= self.config.touch_interval.as_secs() as i64 {
            session.expires = self.touch(id).await.unwrap_or(record.expires);
        }
        Ok(session)
    }

    /// Pushes the expiry on without changing the data or the version. A
    /// failure is logged and the read still answers: it was only a refresh.
    async fn touch(&self, id: &SessionId) -> Option<i64> {
        let expires = self.new_expiry();
        let (key_name, key) = self.key(id);
        let update = format!("SET {P_EXP} = :exp");
        // Never move the expiry back, never bring a dead session back.
        let condition = format!("attribute_exists({P_KEY}) AND {P_EXP} >= :now AND {P_EXP} < :exp");
        let result = self
            .client
            .update_item()
            .table_name(&self.config.table_name)
            .key(key_name, key)
            .set_expression_attribute_names(Some(names_for(&self.config, &[&update, &condition])))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":now", n(now_secs()))
            .update_expression(update)
            .condition_expression(condition)
            .send()
            .await;
        match result {
            Ok(_) => Some(expires),
            Err(e) => {
                let err = SessionError::dynamo("UpdateItem", e);
                tracing::warn!(session = %id.redacted(), error = %err, "touch skipped");
                None
            }
        }
    }

    /// Reads a session and takes its lock, waiting with jittered retries up to
    /// `max_lock_wait_time`, then Locked: never an empty session.
    pub async fn load_and_lock(&self, id: &SessionId) -> Result<Session, SessionError> {
        let token = LockToken::generate();
        let deadline = Instant::now() + self.config.max_lock_wait_time;
        loop {
            match self.try_lock(id, &token).await {
                Err(SessionError::Locked) => {
                    wait_before_retry(&self.config, deadline).await.ok_or(SessionError::Locked)?
                }
                done => return done,
            }
        }
    }

    /// One attempt: a conditional UpdateItem that sets the lock and returns
    /// the item, as the PHP handler's acquire does.
    async fn try_lock(&self, id: &SessionId, token: &LockToken) -> Result<Session, SessionError> {
        let now_ms = now_millis();
        let lease_until = now_ms + self.config.lock_lease.as_millis() as i64;
        let update = format!("SET {P_LOCK} = :one, {P_TOKEN} = :token, {P_LEASE} = :lease, {P_EXP} = :exp");
        let condition = format!("attribute_exists({P_KEY}) AND {P_EXP} >= :now AND {}", locking::lock_condition(None));
        let (key_name, key) = self.key(id);
        let out = self
            .client
            .update_item()
            .table_name(&self.config.table_name)
            .key(key_name, key)
            .set_expression_attribute_names(Some(names_for(&self.config, &[&update, &condition])))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":token", s(token.as_str()))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":exp", n(self.new_expiry()))
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":now_ms", n(now_ms))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result_item(result_or_failure(out)) {
            Ok(item) => self.session(id, &Record::decode(&self.config, &item), Some(token.clone())),
            Err(failure) => Err(self.explain(id, failure, &WriteOptions::default(), now_ms).await),
        }
    }

    /// Replaces the data. Releases the caller's lock when it passes its token.
    pub async fn replace(&self, id: &SessionId, data: Data, options: &WriteOptions) -> Result<Session, SessionError> {
        let encoded = self.encode(&data)?;
        self.write_data(id, encoded, options).await
    }

    /// Applies a JSON merge patch (RFC 7396). Without an expected version it
    /// re-reads and retries on Conflict (and waits on Locked) up to
    /// `max_lock_wait_time`, so concurrent patches never lose an update.
    pub async fn patch(&self, id: &SessionId, patch: &Data, options: &WriteOptions) -> Result<Session, SessionError> {
        let deadline = Instant::now() + self.config.max_lock_wait_time;
        loop {
            let record = self.fetch_live(id, true).await?;
            if options.expected_version.is_some_and(|v| v != record.version) {
                return Err(SessionError::Conflict);
            }
            let mut data = Value::Object(record.data_object()?);
            json_patch::merge(&mut data, &Value::Object(patch.clone()));
            let Value::Object(data) = data else { unreachable!("merging an object patch keeps an object") };
            let encoded = self.encode(&data)?;
            let attempt =
                WriteOptions { expected_version: Some(record.version), lock_token: options.lock_token.clone() };
            match self.write_data(id, encoded, &attempt).await {
                Err(SessionError::Conflict) if options.expected_version.is_none() => {
                    // Someone wrote between our read and write: read again.
                    wait_before_retry(&self.config, deadline).await.ok_or(SessionError::Conflict)?
                }
                Err(SessionError::Locked) if options.lock_token.is_none() => {
                    wait_before_retry(&self.config, deadline).await.ok_or(SessionError::Locked)?
                }
                done => return done,
            }
        }
    }

    async fn write_data(
        &self,
        id: &SessionId,
        encoded: String,
        options: &WriteOptions,
    ) -> Result<Session, SessionError> {
        let update = format!(
            "SET {P_DATA} = :data, {P_EXP} = :exp, {P_VER} = if_not_exists({P_VER}, :zero) + :one REMOVE {P_LOCK}, {P_TOKEN}, {P_LEASE}"
        );
        let mut condition = format!(
            "attribute_exists({P_KEY}) AND {P_EXP} >= :now AND {}",
            locking::lock_condition(options.lock_token.as_ref())
        );
        let now_ms = now_millis();
        let (key_name, key) = self.key(id);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.config.table_name)
            .key(key_name, key)
            .expression_attribute_values(":data", s(encoded))
            .expression_attribute_values(":exp", n(self.new_expiry()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_secs()));
        match &options.lock_token {
            Some(token) => request = request.expression_attribute_values(":token", s(token.as_str())),
            None => request = request.expression_attribute_values(":now_ms", n(now_ms)),
        }
        match options.expected_version {
            // A PHP-written item has no version attribute: it is version 0.
            Some(0) => condition.push_str(&format!(" AND attribute_not_exists({P_VER})")),
            Some(version) => {
                condition.push_str(&format!(" AND {P_VER} = :version"));
                request = request.expression_attribute_values(":version", n(version));
            }
            None => {}
        }
        let out = request
            .set_expression_attribute_names(Some(names_for(&self.config, &[&update, &condition])))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result_item(result_or_failure(out)) {
            Ok(item) => self.session(id, &Record::decode(&self.config, &item), None),
            Err(failure) => Err(self.explain(id, failure, options, now_ms).await),
        }
    }

    /// Destroys a session; destroying an absent one succeeds. A session that
    /// someone else has locked is Locked.
    pub async fn destroy(&self, id: &SessionId, lock_token: Option<&LockToken>) -> Result<(), SessionError> {
        let mut condition = format!(
            "attribute_not_exists({P_KEY}) OR {P_EXP} < :now OR attribute_not_exists({P_LOCK}) OR {P_LEASE} < :now_ms"
        );
        let (key_name, key) = self.key(id);
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.config.table_name)
            .key(key_name, key)
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":now_ms", n(now_millis()));
        if let Some(token) = lock_token {
            condition.push_str(&format!(" OR {P_TOKEN} = :token"));
            request = request.expression_attribute_values(":token", s(token.as_str()));
        }
        request
            .set_expression_attribute_names(Some(names_for(&self.config, &[&condition])))
            .condition_expression(condition)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_conditional_check_failed_exception() => SessionError::Locked,
                _ => SessionError::dynamo("DeleteItem", e),
            })?;
        Ok(())
    }

    /// Gives the session a new id with the same data and removes the old
    /// item, in one transaction (PHP's `session_regenerate_id(true)`).
    pub async fn regenerate(&self, id: &SessionId, lock_token: Option<&LockToken>) -> Result<Session, SessionError> {
        let record = self.fetch_live(id, true).await?;
        let options = WriteOptions { expected_version: Some(record.version), lock_token: lock_token.cloned() };
        if record.lock_is_live(now_millis()) && !lock_token.is_some_and(|t| record.held_by(t.as_str())) {
            return Err(SessionError::Locked);
        }
        let data = record.data_object()?;
        let encoded = self.encode(&data)?;
        let new_id = SessionId::generate();
        let expires = self.new_expiry();
        let (key_name, new_key) = self.key(&new_id);
        let put_condition = format!("attribute_not_exists({P_KEY})");
        let put = Put::builder()
            .table_name(&self.config.table_name)
            .item(&key_name, new_key)
            .item(&self.config.data_attribute, s(encoded))
            .item(&self.config.session_lifetime_attribute, n(expires))
            .item(VERSION, n(1))
            .item(CREATED, n(now_secs()))
            .set_expression_attribute_names(Some(names_for(&self.config, &[&put_condition])))
            .condition_expression(put_condition)
            .build()
            .expect("table, item and condition are set");

        let version_condition = match record.version {
            0 => format!("attribute_not_exists({P_VER})"),
            _ => format!("{P_VER} = :version"),
        };
        let delete_condition = format!(
            "attribute_exists({P_KEY}) AND {P_EXP} >= :now AND {version_condition} AND {}",
            locking::lock_condition(lock_token)
        );
        let (_, old_key) = self.key(id);
        let mut delete = Delete::builder()
            .table_name(&self.config.table_name)
            .key(&key_name, old_key)
            .set_expression_attribute_names(Some(names_for(&self.config, &[&delete_condition])))
            .expression_attribute_values(":now", n(now_secs()));
        if record.version != 0 {
            delete = delete.expression_attribute_values(":version", n(record.version));
        }
        delete = match lock_token {
            Some(token) => delete.expression_attribute_values(":token", s(token.as_str())),
            None => delete.expression_attribute_values(":now_ms", n(now_millis())),
        };
        let delete = delete.condition_expression(delete_condition).build().expect("table, key and condition are set");

        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Session { id: new_id, data, expires, version: 1, lock_token: None }),
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_transaction_canceled_exception() => {
                    Err(self.explain(id, Failure::Condition(None), &options, now_millis()).await)
                }
                _ => Err(SessionError::dynamo("TransactWriteItems", e)),
            },
        }
    }

    /// Releases the caller's lock without writing. Unlocking a session that
    /// holds no lock succeeds; one that someone else holds is Locked.
    pub async fn unlock(&self, id: &SessionId, token: &LockToken) -> Result<(), SessionError> {
        let update = format!("REMOVE {P_LOCK}, {P_TOKEN}, {P_LEASE}");
        let condition = format!("attribute_exists({P_KEY}) AND {P_EXP} >= :now AND {P_TOKEN} = :token");
        let (key_name, key) = self.key(id);
        let out = self
            .client
            .update_item()
            .table_name(&self.config.table_name)
            .key(key_name, key)
            .set_expression_attribute_names(Some(names_for(&self.config, &[&update, &condition])))
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":token", s(token.as_str()))
            .update_expression(update)
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result_or_failure(out) {
            Ok(_) => Ok(()),
            Err(failure) => match self
                .explain(
                    id,
                    failure,
                    &WriteOptions { expected_version: None, lock_token: Some(token.clone()) },
                    now_millis(),
                )
                .await
            {
                // No lock at all: nothing to release.
                SessionError::Conflict => Ok(()),
                err => Err(err),
            },
        }
    }

    /// Says why a conditional write failed, from the item's old state (as
    /// returned with the failure, or read again when it was not), judged at
    /// `now_ms`, the time the request's condition used: judged later, a lease
    /// that had not run out then could look run out.
    async fn explain(&self, id: &SessionId, failure: Failure, options: &WriteOptions, now_ms: i64) -> SessionError {
        let old = match failure {
            Failure::Condition(Some(item)) => Some(Record::decode(&self.config, &item)),
            Failure::Condition(None) => match self.fetch(id, true).await {
                Ok(record) => record,
                Err(err) => return err,
            },
            Failure::Other(err) => return err,
        };
        let Some(old) = old.filter(|r| r.is_live(now_ms.div_euclid(1000))) else {
            return SessionError::NotFound;
        };
        let holds_lock = options.lock_token.as_ref().is_some_and(|t| old.held_by(t.as_str()));
        if old.lock_is_live(now_ms) && !holds_lock {
            return SessionError::Locked;
        }
        // Either the version moved on, or the caller's lock was taken over and
        // released since: both mean the session changed under the caller.
        SessionError::Conflict
    }
}

/// Sleeps a jittered retry delay unless that would pass the deadline; None
/// means the wait is over.
async fn wait_before_retry(config: &Config, deadline: Instant) -> Option<()> {
    let delay = locking::retry_delay(config);
    if Instant::now() + delay > deadline {
        return None;
    }
    tokio::time::sleep(delay).await;
    Some(())
}

/// Why a conditional write did not go through.
enum Failure {
    /// The condition failed; the item's old state when DynamoDB returned it.
    Condition(Option<Item>),
    Other(SessionError),
}

fn result_or_failure(
    out: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<UpdateItemOutput, Failure> {
    out.map_err(|e| match e {
        SdkError::ServiceError(ref se) => match se.err() {
            UpdateItemError::ConditionalCheckFailedException(ccf) => Failure::Condition(ccf.item.clone()),
            _ => Failure::Other(SessionError::dynamo("UpdateItem", e)),
        },
        _ => Failure::Other(SessionError::dynamo("UpdateItem", e)),
    })
}

fn result_item(out: Result<UpdateItemOutput, Failure>) -> Result<Item, Failure> {
    out.map(|o| o.attributes.unwrap_or_default())
}
