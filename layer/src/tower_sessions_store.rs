//! The sessions table as a `tower-sessions` store (feature `tower-sessions`):
//! an app on tower-sessions moves to it by changing the line that builds its
//! store, `SessionManagerLayer::new(TowerSessionsStore::new(store))`.
//!
//! Each call is one of the store's own: `create` never overwrites an item
//! (a new id on a collision); `save` writes only a session that is still
//! live, so one deleted or expired meanwhile is never brought back; `load`
//! answers `None` for an expired item, whatever TTL has done, and never
//! touches it (the app's `Expiry` decides); `delete` of an absent session
//! succeeds; `delete_expired` is the capacity-paced, conditional sweep. The
//! data is stored in the table's format (`DATA_FORMAT`; an item keeps the
//! format it has), and the record's `expiry_date` is the item's `expires`.
//!
//! A tower-sessions id is 22 URL-safe base64 characters. PHP's alphabet has
//! `,` where base64url has `_`, so the item is the session of the same id
//! with `_` written `,` ([`session_id`]): PHP reads it under that id.

use std::fmt;

use async_trait::async_trait;
use dynamodb_sessions::{Data, SessionError, SessionId, SessionStore, SweepOptions, WriteOptions};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion};

/// Ids `create` tries before giving up: a 128-bit id collides never in
/// practice, so a second collision in a row means something else is wrong.
const CREATE_ATTEMPTS: usize = 3;

/// The store for tower-sessions' `SessionManagerLayer`. Cloned cheaply.
#[derive(Clone)]
pub struct TowerSessionsStore(SessionStore);

impl TowerSessionsStore {
    /// tower-sessions on `store`'s table, with its options.
    pub fn new(store: SessionStore) -> TowerSessionsStore {
        TowerSessionsStore(store)
    }
}

impl fmt::Debug for TowerSessionsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TowerSessionsStore").field(&self.0.config().table_name).finish()
    }
}

/// The session id under which a tower-sessions id is stored: its text with
/// `_` as `,` (PHP's alphabet).
pub fn session_id(id: &Id) -> SessionId {
    SessionId::parse(&id.to_string().replace('_', ",")).expect("22 base64url characters, `_` as `,`, are an id")
}

fn expires(record: &Record) -> i64 {
    record.expiry_date.unix_timestamp()
}

fn data(record: &Record) -> Data {
    record.data.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
}

fn failed(err: SessionError) -> session_store::Error {
    match err {
        SessionError::UnreadableData { .. } => session_store::Error::Decode(err.to_string()),
        SessionError::Unrepresentable(_) | SessionError::TooLarge { .. } => {
            session_store::Error::Encode(err.to_string())
        }
        err => session_store::Error::Backend(err.to_string()),
    }
}

#[async_trait]
impl session_store::SessionStore for TowerSessionsStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            match self.0.create_as(&session_id(&record.id), data(record), expires(record)).await {
                Ok(_) => return Ok(()),
                Err(SessionError::Conflict) => record.id = Id::default(),
                Err(err) => return Err(failed(err)),
            }
        }
        Err(session_store::Error::Backend(format!("no free session id in {CREATE_ATTEMPTS} attempts")))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let options = WriteOptions { expires: Some(expires(record)), ..Default::default() };
        match self.0.replace(&session_id(&record.id), data(record), &options).await {
            Ok(_) => Ok(()),
            // Deleted (signed out in another tab) or expired since this
            // request loaded it: it stays gone.
            Err(SessionError::NotFound) => Ok(()),
            Err(err) => Err(failed(err)),
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let session = match self.0.load_untouched(&session_id(id)).await {
            Ok(session) => session,
            Err(SessionError::NotFound) => return Ok(None),
            Err(err) => return Err(failed(err)),
        };
        let expiry_date = OffsetDateTime::from_unix_timestamp(session.expires)
            .map_err(|err| session_store::Error::Decode(format!("expires: {err}")))?;
        Ok(Some(Record { id: *id, data: session.data.into_iter().collect(), expiry_date }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.destroy(&session_id(id), None).await.map_err(failed)
    }
}

#[async_trait]
impl ExpiredDeletion for TowerSessionsStore {
    /// One sweep of the whole table, paced to the table's GC capacity share.
    /// It deletes only what is still expired and unlocked at its delete.
    async fn delete_expired(&self) -> session_store::Result<()> {
        let report = self.0.delete_expired(SweepOptions::default()).await.map_err(failed)?;
        tracing::info!(deleted = report.deleted, finished = report.finished(), "expired sessions deleted");
        Ok(())
    }
}
