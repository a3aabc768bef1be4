//! Structured JSON logs for the functions and the local server, filtered by
//! `RUST_LOG` (default `info`). What is logged never includes session data
//! or a whole session id: see [`crate::SessionId::redacted`].

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber (once; later calls keep the first).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // try_init: a second call (tests, an embedding program) keeps the first.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
