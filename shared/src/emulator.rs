//! A local DynamoDB for development and tests: dynoxide, an embeddable
//! DynamoDB emulator, served over HTTP on loopback, and a client for it.
//! Behind the `emulator` feature, so Lambda builds do not carry it.

use std::net::SocketAddr;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;

use crate::calls::CallCounter;

/// Serves an in-memory emulator on `addr` from the current Tokio runtime and
/// returns its URL.
pub async fn start(addr: SocketAddr) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot start the DynamoDB emulator on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let db = dynoxide::Database::memory().map_err(|e| e.to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db));
    let host = if bound.ip().is_unspecified() { "127.0.0.1".to_string() } else { bound.ip().to_string() };
    Ok(format!("http://{host}:{}", bound.port()))
}

/// Serves an in-memory emulator on a free loopback port from a thread of its
/// own (so it outlives any one runtime, as tests need) and returns its URL.
pub fn start_in_background() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a Tokio runtime for the emulator");
        runtime.block_on(async move {
            let url = start(SocketAddr::from(([127, 0, 0, 1], 0))).await;
            tx.send(url).expect("the caller waits for the URL");
            std::future::pending::<()>().await
        });
    });
    rx.recv().expect("the emulator thread answers").expect("the emulator starts")
}

/// A client for a local endpoint (the emulator or moto), which takes any
/// credentials and region.
pub fn client(url: &str) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local-emulator"))
        .endpoint_url(url)
        .interceptor(CallCounter)
        .build();
    Client::from_conf(config)
}

/// The endpoint tests share: `DYNAMODB_TEST_ENDPOINT` when set (the test
/// command points it at moto), else an emulator started once per process.
pub fn shared_endpoint() -> &'static str {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("DYNAMODB_TEST_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => start_in_background(),
    })
}
