//! What every request shares, built once per process: the store, the
//! session cookie, the write policy, and when automatic GC runs.

use std::sync::Arc;
use std::time::Duration;

use dynamodb_sessions::{ConfigError, Data, SessionError, SessionStore, WritePolicy};
use dynamodb_sessions_axum::{HttpSettings, SessionCookie};

use crate::error::ApiError;

/// When automatic GC (the library's `automatic_gc` option) runs: only ever
/// after a successful response, never on an error path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutomaticGc {
    /// Before the response is handed back, bounded by the library's step
    /// budget: on Lambda nothing runs once the response is out.
    #[default]
    BeforeReturning,
    /// In a task of its own, the response already on its way (a long-lived
    /// server, such as `sessions serve`).
    Spawned,
}

/// What every request shares, built once per process: the store, the
/// session cookie, and when automatic GC runs.
#[derive(Clone)]
pub struct ApiState(Arc<Shared>);

#[derive(Clone)]
struct Shared {
    store: SessionStore,
    cookie: SessionCookie,
    policy: WritePolicy,
    automatic_gc: AutomaticGc,
    request_time_limit: Option<Duration>,
}

impl ApiState {
    /// The state for `store`, with these settings (checked again here, for
    /// settings built by hand) and automatic GC [`AutomaticGc::BeforeReturning`].
    pub fn new(store: SessionStore, settings: HttpSettings) -> Result<ApiState, ConfigError> {
        settings.validate()?;
        settings.check_cookie_name(&store.config().session_name)?;
        let policy = settings.write_policy();
        let cookie = SessionCookie::new(&store.config().session_name, settings);
        let shared = Shared { store, cookie, policy, automatic_gc: AutomaticGc::default(), request_time_limit: None };
        Ok(ApiState(Arc::new(shared)))
    }

    /// The same state, with automatic GC run `when`.
    pub fn with_automatic_gc(self, when: AutomaticGc) -> ApiState {
        ApiState(Arc::new(Shared { automatic_gc: when, ..Arc::unwrap_or_clone(self.0) }))
    }

    /// The same state, each request without a deadline of its own (one not
    /// served on Lambda) answered within `limit` of its arrival.
    pub fn with_request_time_limit(self, limit: Duration) -> ApiState {
        ApiState(Arc::new(Shared { request_time_limit: Some(limit), ..Arc::unwrap_or_clone(self.0) }))
    }

    /// How long a request without a deadline of its own may take, if bounded.
    pub fn request_time_limit(&self) -> Option<Duration> {
        self.0.request_time_limit
    }

    /// The session store.
    pub fn store(&self) -> &SessionStore {
        &self.0.store
    }

    /// The session cookie.
    pub fn cookie(&self) -> &SessionCookie {
        &self.0.cookie
    }

    /// What clients' writes may change.
    pub fn write_policy(&self) -> &WritePolicy {
        &self.0.policy
    }

    /// Checks a client's data for a new session against the write policy.
    pub(crate) fn check_new(&self, data: &Data) -> Result<(), ApiError> {
        let format = self.store().config().data_format;
        Ok(self.write_policy().check_new(data, format).map_err(SessionError::from)?)
    }

    /// When automatic GC runs.
    pub fn automatic_gc(&self) -> AutomaticGc {
        self.0.automatic_gc
    }

    /// The largest body read: whitespace aside, a larger one cannot fit the
    /// data size limit.
    pub fn body_limit(&self) -> usize {
        self.store().config().max_data_size * 2 + 1024
    }
}
