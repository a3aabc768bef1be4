//! The session of the request being served, as a handler sees it: read at
//! its first use (and locked there under pessimistic locking), changed key
//! by key, and written back (only the keys that changed, releasing the lock)
//! by the [`SessionLayer`](crate::SessionLayer) once the handler's response
//! is ready, or earlier by [`Session::write_close`]. A request that ends any
//! other way (a panic, a timeout, its future dropped) releases the lock too.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dynamodb_sessions::{
    Data, KeyChanges, Loaded, LockToken, LockingStrategy, SessionError, SessionId, SessionStore, WriteOptions,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::rejection::SessionRejection;

/// The request's session, an extractor: `async fn handler(session: Session)`.
/// Cloned cheaply; every clone is the same session.
#[derive(Clone)]
pub struct Session(Arc<Mutex<Handle>>);

/// What the layer must tell the browser once the request is done.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CookieChange {
    Keep,
    Set(SessionId),
    Remove,
}

pub(crate) struct Handle {
    store: SessionStore,
    /// The id the request's cookie named, when well-formed.
    cookie_id: Option<SessionId>,
    state: State,
    /// Keys set (`Some`) or removed (`None`) and not yet stored, each once.
    changes: KeyChanges,
    cookie: CookieChange,
    /// Taken as a [`ReadOnlySession`]: nothing is written back.
    read_only: bool,
}

enum State {
    /// Not read yet (or written and released by `write_close`): a request
    /// that never uses its session costs nothing.
    Unread,
    /// The stored session, as read; with its lock token while this request
    /// holds its lock.
    Stored(Box<Loaded>),
    /// No session yet (no cookie, or an unknown or expired id): one is
    /// created if the request stores something.
    New,
    /// Destroyed by this request.
    Destroyed,
}

impl Session {
    pub(crate) fn new(store: SessionStore, cookie_id: Option<SessionId>) -> Session {
        let handle = Handle {
            store,
            cookie_id,
            state: State::Unread,
            changes: Vec::new(),
            cookie: CookieChange::Keep,
            read_only: false,
        };
        Session(Arc::new(Mutex::new(handle)))
    }

    /// The value of `key`, if the session holds one.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionRejection> {
        let mut handle = self.0.lock().await;
        handle.read().await?;
        match handle.value(key) {
            None => Ok(None),
            Some(value) => Ok(Some(serde_json::from_value(value).map_err(SessionRejection::Value)?)),
        }
    }

    /// Sets `key` to `value`.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionRejection> {
        let value = serde_json::to_value(value).map_err(SessionRejection::Value)?;
        let mut handle = self.writable().await?;
        handle.read().await?;
        handle.change(key, Some(value));
        Ok(())
    }

    /// Removes `key`, returning what it held.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionRejection> {
        let mut handle = self.writable().await?;
        handle.read().await?;
        let old = handle.value(key);
        if old.is_some() {
            handle.change(key, None);
        }
        match old {
            None => Ok(None),
            Some(value) => Ok(Some(serde_json::from_value(value).map_err(SessionRejection::Value)?)),
        }
    }

    /// Removes every key.
    pub async fn clear(&self) -> Result<(), SessionRejection> {
        let mut handle = self.writable().await?;
        handle.read().await?;
        for key in handle.data().keys().cloned().collect::<Vec<_>>() {
            handle.change(&key, None);
        }
        Ok(())
    }

    /// The session's id; None while it is new (it gets one when stored).
    pub async fn id(&self) -> Result<Option<SessionId>, SessionRejection> {
        let mut handle = self.0.lock().await;
        handle.read().await?;
        Ok(match &handle.state {
            State::Stored(loaded) => Some(loaded.session().id.clone()),
            _ => None,
        })
    }

    /// Gives the session a new id, with the same data, the old id gone, in
    /// one transaction (PHP's `session_regenerate_id(true)`): on sign-in.
    /// It goes on the item as this request read it (no second read); changes
    /// made before or after are written to the new id with the response.
    pub async fn regenerate(&self) -> Result<(), SessionRejection> {
        let mut handle = self.writable().await?;
        handle.read().await?;
        let State::Stored(loaded) = &handle.state else { return Ok(()) };
        let regenerated = handle.store.regenerate_loaded(loaded).await?;
        let new_id = regenerated.session().id.clone();
        handle.cookie_id = Some(new_id.clone());
        handle.cookie = CookieChange::Set(new_id);
        handle.state = State::Stored(Box::new(regenerated));
        Ok(())
    }

    /// Stores what the request changed and releases the session's lock now,
    /// as PHP's `session_write_close()`: a long handler lets the user's other
    /// requests go on. A later use of the session reads (and locks) it again.
    pub async fn write_close(&self) -> Result<(), SessionRejection> {
        let mut handle = self.0.lock().await;
        Ok(handle.write_back_and_release().await?)
    }

    /// Destroys the session (its item gone, the cookie expired).
    pub async fn destroy(&self) -> Result<(), SessionRejection> {
        let mut handle = self.writable().await?;
        if let Some(id) = handle.cookie_id.take() {
            // The lock this request holds, if any, goes with the item.
            let token = handle.held_lock().map(|(_, token)| token);
            handle.store.destroy(&id, token.as_ref()).await?;
            handle.cookie = CookieChange::Remove;
        }
        handle.changes.clear();
        handle.state = State::Destroyed;
        Ok(())
    }

    /// The handle, for a change: refused when the request took its session
    /// read-only.
    async fn writable(&self) -> Result<tokio::sync::MutexGuard<'_, Handle>, SessionRejection> {
        let handle = self.0.lock().await;
        match handle.read_only {
            true => Err(SessionRejection::ReadOnly),
            false => Ok(handle),
        }
    }

    /// Stores what the request changed and releases its lock; what the
    /// browser must be told, whether or not that worked (an id regenerated
    /// earlier in the request is the session's id either way).
    pub(crate) async fn finish(&self) -> (CookieChange, Result<(), SessionError>) {
        let mut handle = self.0.lock().await;
        let stored = handle.write_back_and_release().await;
        (handle.cookie.clone(), stored)
    }

    /// Releases the lock without storing anything: the handler panicked.
    pub(crate) async fn abandon(&self) {
        let mut handle = self.0.lock().await;
        handle.changes.clear();
        handle.release().await;
    }
}

impl Handle {
    /// Reads the session at its first use: the cookie's session if it is
    /// live, else a new one (never under the client's id).
    async fn read(&mut self) -> Result<(), SessionError> {
        if !matches!(self.state, State::Unread) {
            return Ok(());
        }
        let locking = self.store.config().locking_strategy == LockingStrategy::Pessimistic && !self.read_only;
        self.state = match &self.cookie_id {
            None => State::New,
            Some(id) if locking => match self.store.lock_for_change(id).await {
                Ok(loaded) => State::Stored(Box::new(loaded)),
                Err(SessionError::NotFound) => State::New,
                Err(err) => return Err(err),
            },
            Some(id) => match self.store.load_for_change(id).await {
                Ok(loaded) => State::Stored(Box::new(loaded)),
                Err(SessionError::NotFound) => State::New,
                Err(err) => return Err(err),
            },
        };
        Ok(())
    }

    /// The data as stored when read.
    fn data(&self) -> Data {
        match &self.state {
            State::Stored(loaded) => loaded.session().data.clone(),
            _ => Data::new(),
        }
    }

    /// The value of `key` with this request's changes applied.
    fn value(&self, key: &str) -> Option<Value> {
        match self.changes.iter().find(|(changed, _)| changed == key) {
            Some((_, value)) => value.clone(),
            None => self.data().get(key).cloned(),
        }
    }

    fn change(&mut self, key: &str, value: Option<Value>) {
        match self.changes.iter_mut().find(|(changed, _)| changed == key) {
            Some(change) => change.1 = value,
            None => self.changes.push((key.to_string(), value)),
        }
    }

    /// The session's id and lock token while this request holds its lock.
    fn held_lock(&self) -> Option<(SessionId, LockToken)> {
        match &self.state {
            State::Stored(loaded) => {
                let session = loaded.session();
                Some((session.id.clone(), session.lock_token.clone()?))
            }
            _ => None,
        }
    }

    /// Stores the pending changes and releases the lock; when the write
    /// fails, the lock is released all the same.
    async fn write_back_and_release(&mut self) -> Result<(), SessionError> {
        let stored = self.write_back().await;
        self.release().await;
        stored
    }

    /// Releases the lock this request holds, if any (without writing).
    async fn release(&mut self) {
        if let Some((id, token)) = self.held_lock() {
            unlock_or_log(&self.store, &id, &token).await;
            self.state = State::Unread;
        }
    }

    /// Stores the pending changes: into the stored session (only the keys
    /// changed, merged into what is stored then; a locked session's write
    /// releases its lock), or as a new session.
    async fn write_back(&mut self) -> Result<(), SessionError> {
        if self.changes.is_empty() {
            return Ok(());
        }
        match &self.state {
            State::Stored(loaded) => {
                self.store.change_keys(loaded, &self.changes, &WriteOptions::default()).await?;
                self.state = State::Unread;
            }
            State::New => {
                let data: Data =
                    self.changes.iter().filter_map(|(key, value)| Some((key.clone(), value.clone()?))).collect();
                if !data.is_empty() {
                    let session = self.store.create(data).await?;
                    self.cookie = CookieChange::Set(session.id.clone());
                    self.cookie_id = Some(session.id);
                    self.state = State::Unread;
                }
            }
            State::Unread | State::Destroyed => {}
        }
        self.changes.clear();
        Ok(())
    }
}

impl Drop for Handle {
    /// The request ended without going back through the layer (a timeout
    /// layer fired, the client went away: its future was dropped). A lock
    /// still held is released by the runtime, as no one can await here.
    fn drop(&mut self) {
        let Some((id, token)) = self.held_lock() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        runtime.spawn(async move { unlock_or_log(&store, &id, &token).await });
    }
}

/// Releases a lock; a release that fails is logged, and the lock's lease
/// ends it.
async fn unlock_or_log(store: &SessionStore, id: &SessionId, token: &LockToken) {
    if let Err(err) = store.unlock(id, token).await {
        tracing::warn!(session = %id.redacted(), error = %err, "session lock not released; its lease ends it");
    }
}

/// The request's session, read only (PHP's `read_and_close`): it reads as
/// [`Session`] does (touching the expiry at most once per touch interval)
/// and never writes; a [`Session`] of the same request is refused changes.
#[derive(Clone)]
pub struct ReadOnlySession(Session);

impl ReadOnlySession {
    /// The value of `key`, if the session holds one.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionRejection> {
        self.0.get(key).await
    }

    /// The session's id; None when there is no session.
    pub async fn id(&self) -> Result<Option<SessionId>, SessionRejection> {
        self.0.id().await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReadOnlySession {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state).await?;
        session.0.lock().await.read_only = true;
        Ok(ReadOnlySession(session))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or(SessionRejection::NoLayer)
    }
}
