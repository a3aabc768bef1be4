//! Item I/O, below the store, locking and GC, which all read and write
//! through it: the client and options, reading an item, the requests on a
//! session's key, and what a conditional request's refusal says.

use std::sync::Arc;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::budget::InBudget;
use crate::config::Config;
use crate::error::SessionError;
use crate::expr::attr_s;
use crate::id::SessionId;
use crate::item::{Item, Now, Record};

/// The table's items, as the store's parts reach them. Cloned cheaply.
#[derive(Clone)]
pub(crate) struct Items {
    client: Client,
    config: Arc<Config>,
}

/// How a conditional request ended.
#[derive(Debug)]
pub(crate) enum Written<T> {
    /// Applied; the request's output.
    Done(T),
    /// Refused: the item as it was then.
    Refused(Record),
    /// Refused: there was no item.
    NoItem,
}

impl Items {
    pub fn new(client: Client, config: Arc<Config>) -> Items {
        Items { client, config }
    }

    /// The same items through another client (e.g. with other timeouts).
    pub fn with_client(&self, client: Client) -> Items {
        Items { client, config: self.config.clone() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The key of the item holding session `id`.
    pub fn key(&self, id: &SessionId) -> AttributeValue {
        attr_s(self.config.item_key(id.as_str()))
    }

    /// The expiry a write at `now` gives a session.
    pub fn new_expiry(&self, now: Now) -> i64 {
        now.secs + self.config.session_lifetime.as_secs() as i64
    }

    /// An UpdateItem on the item under `key`.
    pub fn update_key(&self, key: AttributeValue) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.config.table_name).key(&self.config.hash_key, key)
    }

    /// An UpdateItem on session `id`'s item.
    pub fn update_item(&self, id: &SessionId) -> UpdateItemFluentBuilder {
        self.update_key(self.key(id))
    }

    /// A DeleteItem of the item under `key`.
    pub fn delete_key(&self, key: AttributeValue) -> DeleteItemFluentBuilder {
        self.client.delete_item().table_name(&self.config.table_name).key(&self.config.hash_key, key)
    }

    /// Reads session `id`'s item, if any.
    pub async fn fetch(&self, id: &SessionId, consistent: bool) -> Result<Option<Record>, SessionError> {
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
    pub async fn fetch_live(&self, id: &SessionId, consistent: bool, now: Now) -> Result<Record, SessionError> {
        match self.fetch(id, consistent).await? {
            Some(record) if record.is_live(now) => Ok(record),
            _ => Err(SessionError::NotFound),
        }
    }

    /// Names a conditional request's end: done, refused with the item's old
    /// state (as returned with the failure, or read again when the server
    /// did not return it), or an error.
    pub async fn written<T, E>(
        &self,
        operation: &'static str,
        id: &SessionId,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<Written<T>, SessionError>
    where
        E: ConditionFailure + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let err = match result {
            Ok(done) => return Ok(Written::Done(done)),
            Err(err) => err,
        };
        match err.as_service_error().and_then(ConditionFailure::old_item) {
            Some(Some(item)) => Ok(Written::Refused(Record::decode(&self.config, &item))),
            Some(None) => match self.fetch(id, true).await? {
                Some(record) => Ok(Written::Refused(record)),
                None => Ok(Written::NoItem),
            },
            None => Err(SessionError::dynamo(operation, err)),
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
