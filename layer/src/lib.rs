//! Sessions in-process for axum and tower apps (README, "Sessions in your
//! own Rust Lambda"), on the [`dynamodb_sessions`] store: the session
//! cookie and its settings, shared with the HTTP API, and a lazy session
//! layer that writes back only the keys a request changed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::post, Router};
//! use dynamodb_sessions::{dynamodb_client, Config, SessionStore};
//! use dynamodb_sessions_axum::{HttpSettings, Session, SessionCookie, SessionLayer, SessionRejection};
//!
//! async fn count(session: Session) -> Result<String, SessionRejection> {
//!     let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
//!     session.insert("n", n).await?;
//!     Ok(n.to_string())
//! }
//!
//! let config = Config::from_env()?;
//! let cookie = SessionCookie::new(&config.session_name, HttpSettings::from_env()?);
//! let store = SessionStore::new(dynamodb_client(&config).await, config);
//! let app: Router = Router::new().route("/count", post(count)).layer(SessionLayer::new(store, cookie));
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod cookie;
pub mod http_error;
mod layer;
mod rejection;
mod session;
pub mod settings;
#[cfg(feature = "tower-sessions")]
pub mod tower_sessions_store;

pub use cookie::SessionCookie;
pub use layer::{SessionLayer, SessionService};
pub use rejection::SessionRejection;
pub use session::{ReadOnlySession, Session};
pub use settings::HttpSettings;
#[cfg(feature = "tower-sessions")]
pub use tower_sessions_store::TowerSessionsStore;
