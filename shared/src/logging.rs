//! Structured JSON logs for the functions and the local server, filtered by
//! `RUST_LOG` (default `info`; `target=level` pairs, e.g.
//! `info,aws_smithy_runtime=debug`). What is logged never includes session
//! data or a whole session id: see [`crate::SessionId::redacted`].

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON log subscriber (once; later calls keep the first).
pub fn init() {
    // `Targets` rather than `EnvFilter`: the same RUST_LOG syntax for levels
    // and targets, without a regex engine in every Lambda binary.
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => spec.parse::<Targets>().unwrap_or_else(|err| {
            eprintln!("RUST_LOG={spec:?} is not a log filter ({err}); logging at info");
            Targets::new().with_default(LevelFilter::INFO)
        }),
        _ => Targets::new().with_default(LevelFilter::INFO),
    };
    let json =
        tracing_subscriber::fmt::layer().json().with_current_span(false).with_span_list(false).with_target(false);
    // try_init: a second call (tests, an embedding program) keeps the first.
    let _ = tracing_subscriber::registry().with(json).with(filter).try_init();
}
