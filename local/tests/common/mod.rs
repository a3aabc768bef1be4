//! The whole service as `sessions serve --capacity ... --faults ...` runs it,
//! for tests: the API router served by `axum::serve` on a loopback port, its
//! store's SDK client pointed at the capacity and fault simulator, the
//! simulator in front of one embedded emulator per test binary. And a small
//! HTTP/1.1 client on a plain `TcpStream`: it sends what a test wrote, byte
//! for byte (unusual methods, raw paths, any header), and reads exactly one
//! response, telling a complete one from a dropped connection.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::emulator::{self, fixtures};
use dynamodb_sessions::{Config, SessionStore, TableCapacity};
use serde_json::Value;
use session_api::{router, ApiState, AutomaticGc, HttpSettings};
use sessions_local::simulator::{RunningSimulator, Simulator, SimulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one exchange may take before the harness calls it lost: far above
/// anything the service is configured to take, only so a hung test ends.
pub const EXCHANGE_BOUND: Duration = Duration::from_secs(60);

/// One emulator for the whole test binary; every test has its own table.
pub fn upstream() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(emulator::start_in_background)
}

/// The store's options as the service reads them, by environment variable
/// name (`("LOCKING_STRATEGY", "pessimistic")`), on a fresh table.
pub fn config(vars: &[(&str, &str)]) -> Config {
    let table = fixtures::table_name("api");
    Config::from_lookup(|name| match name {
        "TABLE_NAME" => Some(table.clone()),
        _ => vars.iter().find(|(var, _)| *var == name).map(|(_, value)| value.to_string()),
    })
    .expect("a valid test config")
}

/// `sessions serve`'s default request timeout (the API function's on Lambda).
pub const SERVE_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The service, serving.
pub struct Service {
    /// The simulator between the service and the emulator.
    pub simulator: RunningSimulator,
    /// The service's store: through the simulator, as the routes use it.
    pub store: SessionStore,
    /// The same table straight on the emulator, for seeding and checking:
    /// never throttled, never faulted, not counted by the simulator.
    pub direct: SessionStore,
    /// A client straight on the emulator without the store's timeouts (a
    /// full scan of a big table takes a while in a debug build).
    pub direct_client: Client,
    addr: SocketAddr,
}

impl Service {
    /// Starts the simulator with `simulation`, creates the table through it
    /// (5/5, as `sessions serve` does), and serves the API as `sessions serve`
    /// does (automatic GC after the response). The scheduled sweep of
    /// `sessions serve` is not started: tests run their sweeps themselves.
    pub async fn start(config: Config, simulation: SimulatorConfig) -> Service {
        Service::start_limited(config, simulation, SERVE_REQUEST_TIMEOUT).await
    }

    /// `start`, with requests answered within `request_timeout`.
    pub async fn start_limited(config: Config, simulation: SimulatorConfig, request_timeout: Duration) -> Service {
        let simulator = Simulator::start(upstream(), simulation).await.expect("the simulator starts");
        let direct_client = emulator::client(upstream());
        let direct = SessionStore::new(direct_client.clone(), config.clone());
        let store = SessionStore::new(emulator::client(&simulator.url()), config);
        store.create_table(TableCapacity::Provisioned { read: 5, write: 5 }).await.expect("the table");
        let state = ApiState::new(store.clone(), HttpSettings::default())
            .expect("default HTTP settings")
            .with_automatic_gc(AutomaticGc::Spawned)
            .with_request_time_limit(request_timeout);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("a port");
        let addr = listener.local_addr().expect("a bound port");
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        Service { simulator, store, direct, direct_client, addr }
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` on a connection of its own.
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let mut connection = HttpConnection::open(self.addr).await?;
        connection.send(request).await
    }

    /// `send`, for requests a test needs answered: a lost connection panics.
    pub async fn call(&self, request: &HttpRequest) -> HttpResponse {
        self.send(request).await.unwrap_or_else(|failure| panic!("{} {}: {failure}", request.method, request.target))
    }

    /// Every item of the table, read straight from the emulator, by key.
    pub async fn items(&self) -> HashMap<String, HashMap<String, AttributeValue>> {
        let config = self.direct.config();
        let mut items = HashMap::new();
        let mut start = None;
        loop {
            let page = self
                .direct_client
                .scan()
                .table_name(&config.table_name)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("a direct scan");
            for item in page.items.unwrap_or_default() {
                let key = item[&config.hash_key].as_s().expect("string keys").clone();
                items.insert(key, item);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }
}

/// One HTTP/1.1 request, as it goes on the wire. The client adds `Host`
/// and `Content-Length`, nothing else.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// The method token, as sent.
    pub method: String,
    /// The request target, as sent (origin form, or absolute form).
    pub target: String,
    /// Header names and values, as sent, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// `method target`, no headers, no body.
    pub fn new(method: &str, target: impl Into<String>) -> HttpRequest {
        HttpRequest { method: method.to_string(), target: target.into(), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> HttpRequest {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A JSON body, with its content type.
    pub fn json(self, value: &Value) -> HttpRequest {
        let mut request = self.header("content-type", "application/json");
        request.body = value.to_string().into_bytes();
        request
    }

    /// The bytes sent.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut bytes = format!("{} {} HTTP/1.1\r\nhost: {host}\r\n", self.method, self.target).into_bytes();
        for (name, value) in &self.headers {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes());
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as JSON; panics, showing the response, when it is not.
    pub fn expect_json(&self) -> Value {
        self.json().unwrap_or_else(|| panic!("the body is not JSON: {self}"))
    }

    /// `error.code` of a JSON error body `{"error": {"code", "message"}}`, if
    /// the body is one (both strings, the message not empty).
    pub fn error_code(&self) -> Option<String> {
        let json = self.json()?;
        let error = json.get("error")?;
        let code = error.get("code")?.as_str()?;
        let message = error.get("message")?.as_str()?;
        (!code.is_empty() && !message.is_empty()).then(|| code.to_string())
    }

    /// A 503 as the API promises it: `Retry-After` and a JSON error.
    pub fn is_retryable_unavailable(&self) -> bool {
        self.status == 503
            && self.header("retry-after").is_some()
            && self.error_code().as_deref() == Some("unavailable")
    }

    /// The server keeps the connection open after this response.
    pub fn keeps_alive(&self) -> bool {
        !self.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

impl fmt::Display for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        write!(f, "{} {:?} {body}", self.status, self.headers)
    }
}

/// An exchange that did not end in a complete response.
#[derive(Debug)]
pub struct HttpFailure {
    /// Bytes of the response received before it failed (0: none at all).
    pub received: usize,
    /// What happened.
    pub reason: String,
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no complete response ({} bytes received): {}", self.received, self.reason)
    }
}

impl From<std::io::Error> for HttpFailure {
    fn from(err: std::io::Error) -> HttpFailure {
        HttpFailure { received: 0, reason: err.to_string() }
    }
}

/// One client connection; requests on it go one at a time.
pub struct HttpConnection {
    stream: TcpStream,
    host: String,
    buffer: Vec<u8>,
    /// Bytes received since the current request was sent.
    received: usize,
    answered: u64,
}

impl HttpConnection {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> Result<HttpConnection, HttpFailure> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection { stream, host: addr.to_string(), buffer: Vec::new(), received: 0, answered: 0 })
    }

    /// Responses read on this connection so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Writes the request and reads its response (within [`EXCHANGE_BOUND`]).
    pub async fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, HttpFailure> {
        self.received = self.buffer.len();
        let exchange = async {
            self.stream.write_all(&request.to_bytes(&self.host)).await?;
            self.read_response(request.method == "HEAD").await
        };
        let response = match tokio::time::timeout(EXCHANGE_BOUND, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(self.failure("no answer in time"));
            }
        };
        self.answered += 1;
        Ok(response)
    }

    fn failure(&self, reason: impl Into<String>) -> HttpFailure {
        HttpFailure { received: self.received, reason: reason.into() }
    }

    /// Reads more bytes into the buffer; an error at end of stream.
    async fn fill(&mut self) -> Result<(), HttpFailure> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Err(self.failure("connection closed")),
            Ok(n) => {
                self.received += n;
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(err) => Err(self.failure(err.to_string())),
        }
    }

    /// Takes `n` bytes from the front of the buffer, reading as needed.
    async fn take(&mut self, n: usize) -> Result<Vec<u8>, HttpFailure> {
        while self.buffer.len() < n {
            self.fill().await?;
        }
        Ok(self.buffer.drain(..n).collect())
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    async fn line(&mut self) -> Result<Vec<u8>, HttpFailure> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = self.buffer.drain(..end + 2).take(end).collect();
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn read_response(&mut self, head_only: bool) -> Result<HttpResponse, HttpFailure> {
        loop {
            let status_line = String::from_utf8_lossy(&self.line().await?).into_owned();
            let status = match status_line.split(' ').collect::<Vec<_>>().as_slice() {
                [version, code, ..] if version.starts_with("HTTP/1.") => code.parse::<u16>().ok(),
                _ => None,
            }
            .ok_or_else(|| self.failure(format!("bad status line {status_line:?}")))?;
            let mut headers = Vec::new();
            loop {
                let line = self.line().await?;
                if line.is_empty() {
                    break;
                }
                let line = String::from_utf8_lossy(&line).into_owned();
                let (name, value) =
                    line.split_once(':').ok_or_else(|| self.failure(format!("bad header line {line:?}")))?;
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
            if (100..200).contains(&status) {
                continue; // an interim response; the final one follows
            }
            let mut response = HttpResponse { status, headers, body: Vec::new() };
            if head_only || status == 204 || status == 304 {
                return Ok(response);
            }
            if response.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
                loop {
                    let size_line = String::from_utf8_lossy(&self.line().await?).into_owned();
                    let size = size_line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(size, 16)
                        .map_err(|_| self.failure(format!("bad chunk size {size_line:?}")))?;
                    if size == 0 {
                        while !self.line().await?.is_empty() {} // trailers
                        return Ok(response);
                    }
                    let chunk = self.take(size).await?;
                    response.body.extend_from_slice(&chunk);
                    if !self.line().await?.is_empty() {
                        return Err(self.failure("a chunk without its CRLF"));
                    }
                }
            }
            match response.header("content-length").map(|v| v.parse::<usize>()) {
                Some(Ok(length)) => {
                    response.body = self.take(length).await?;
                    return Ok(response);
                }
                Some(Err(_)) => return Err(self.failure("bad content-length")),
                None => {
                    // Delimited by the end of the connection.
                    loop {
                        match self.fill().await {
                            Ok(()) => {}
                            Err(_) => {
                                response.body = std::mem::take(&mut self.buffer);
                                return Ok(response);
                            }
                        }
                    }
                }
            }
        }
    }
}
