//! A DynamoDB session store with the PHP SDK session handler's table layout,
//! options and defaults, so PHP and Rust can share one table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dynamodb_sessions::SessionError> {
//! use dynamodb_sessions::{Config, SessionStore, create_sessions_table};
//! let config = Config::from_env()?;
//! let client = dynamodb_sessions::dynamodb_client().await;
//! create_sessions_table(&client, &config, 5, 5).await?;
//! let store = SessionStore::new(client, config);
//! let mut data = serde_json::Map::new();
//! data.insert("user.name".into(), "jeremy".into());
//! let session = store.create(data).await?;
//! let again = store.load(&session.id).await?;
//! assert_eq!(again.data["user.name"], "jeremy");
//! # Ok(()) }
//! ```

pub mod calls;
pub mod codec;
pub mod config;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
pub mod gc;
pub mod id;
mod item;
pub mod locking;
pub mod logging;
pub mod store;
pub mod table;

pub use config::{Config, ConfigBuilder, ConfigError, CookieConfig, LockingStrategy, SameSite};
pub use error::SessionError;
pub use gc::{garbage_collect, GcOptions, GcReport};
pub use id::SessionId;
pub use locking::LockToken;
pub use store::{Data, Session, SessionStore, WriteOptions};
pub use table::{create_sessions_table, TableCreation};

/// A DynamoDB client from the standard AWS configuration chain (region,
/// credentials, and the `AWS_ENDPOINT_URL_DYNAMODB` endpoint override).
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&shared).interceptor(calls::CallCounter);
    // `sam local` passes an unset template variable as "": that means no override.
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|url| url.trim().is_empty()) {
        config.set_endpoint_url(None);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}
