//! A DynamoDB session store with the PHP SDK session handler's table layout,
//! options and defaults, so PHP and Rust can share one table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dynamodb_sessions::SessionError> {
//! use dynamodb_sessions::{dynamodb_client, Config, SessionStore, TableCapacity};
//! let config = Config::from_env()?;
//! let store = SessionStore::new(dynamodb_client(&config).await, config);
//! store.create_table(TableCapacity::Provisioned { read: 5, write: 5 }).await?;
//! let mut data = dynamodb_sessions::Data::new();
//! data.insert("user.name".into(), "jeremy".into());
//! let session = store.create(data).await?;
//! let again = store.load(&session.id).await?;
//! assert_eq!(again.data["user.name"], "jeremy");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod budget;
pub mod calls;
mod client;
pub mod codec;
pub mod config;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
mod expr;
pub mod gc;
pub mod id;
mod item;
mod items;
mod lease;
pub mod locking;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod policy;
pub mod schema;
pub mod store;
pub mod table;

pub use client::dynamodb_client;

/// The README's Rust examples, compiled as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use codec::{Data, DataFormat};
pub use config::{Config, ConfigBuilder, DataAttributeType, LockingStrategy};
pub use error::SessionError;
pub use gc::{CapacityBudget, GcReport, ScheduledSweep, SweepOptions};
pub use id::SessionId;
pub use locking::LockToken;
pub use options::ConfigError;
pub use policy::{Refusal, WritePolicy};
pub use store::{KeyChanges, Loaded, Session, SessionStore, WriteOptions};
pub use table::{TableCapacity, TableCreation};
