//! Structured JSON logs for the functions and the local server (on Lambda,
//! each line names its invocation's request id and X-Ray trace), filtered by
//! `RUST_LOG` (default `info`; `target=level` pairs, e.g.
//! `info,dynamodb_sessions=debug`). What is logged never includes session
//! data or a whole session id: see [`crate::SessionId::redacted`]. Our own
//! crates keep to that at every level; the crates beneath them (the AWS SDK,
//! HTTP, the Lambda runtime, the local emulator) log requests, paths and
//! items at debug and trace, so they are capped at `info` whatever
//! `RUST_LOG` asks.

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
    // The span list carries the Lambda runtime's span of the invocation
    // (`requestId`, and `xrayTraceId` when X-Ray traces it) into every line
    // logged while it runs; off Lambda there is none.
    let json = tracing_subscriber::fmt::layer().json().with_current_span(false).with_span_list(true).with_target(false);
    // try_init: a second call (tests, an embedding program) keeps the first.
    let _ = tracing_subscriber::registry().with(json).with(filter).with(dependencies_capped()).try_init();
}

/// Targets (prefixes) of the crates that log what passes through them.
const CAPPED_TARGETS: &[&str] =
    &["aws_", "hyper", "h2", "rustls", "tower", "axum", "lambda_runtime", "lambda_http", "dynoxide"];

/// A second filter: the crates of [`CAPPED_TARGETS`] at `info` at most.
fn dependencies_capped() -> Targets {
    CAPPED_TARGETS.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |targets, target| {
        targets.with_target(*target, LevelFilter::INFO)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_crates_beneath_ours_never_log_below_info() {
        let cap = dependencies_capped();
        for target in ["aws_smithy_runtime::client::orchestrator", "hyper::proto::h1::role", "dynoxide::server"] {
            assert!(!cap.would_enable(target, &Level::DEBUG), "{target}");
            assert!(cap.would_enable(target, &Level::INFO), "{target}");
        }
        assert!(cap.would_enable("dynamodb_sessions::store", &Level::TRACE), "ours are not capped");
    }
}
