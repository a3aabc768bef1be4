//! The HTTP session API (README, "HTTP API"): one axum [`Router`](axum::Router)
//! ([`router`]) served on Lambda behind API Gateway ([`lambda`]) and on a
//! socket by `sessions serve`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use dynamodb_sessions::{dynamodb_client, Config, SessionStore};
//! use session_api::{router, ApiState, HttpSettings};
//! let config = Config::from_env()?;
//! let store = SessionStore::new(dynamodb_client(&config).await, config);
//! let app = router(ApiState::new(store, HttpSettings::from_env()?)?);
//! session_api::lambda::run(app).await
//! # }
//! ```

#![deny(missing_docs)]

pub mod cors;
pub mod error;
pub mod extract;
pub mod lambda;
pub mod layer;
pub mod openapi;
pub mod request;
pub mod routes;
pub mod state;

pub use dynamodb_sessions_axum::{cookie, settings, HttpSettings, SessionCookie};
pub use error::ApiError;
pub use request::LOCK_TOKEN_HEADER;
pub use routes::router;
pub use state::{ApiState, AutomaticGc};
