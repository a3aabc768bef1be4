//! A DynamoDB capacity and fault simulator: an HTTP proxy on loopback in front
//! of any DynamoDB-compatible endpoint (the embedded emulator by default) that
//! behaves as DynamoDB does under provisioned capacity and failures.
//!
//! - **Capacity** ([`CapacityConfig`]): per table, read and write token buckets
//!   at the provisioned rate with DynamoDB's burst credit; a request finding its
//!   bucket empty gets DynamoDB's `ProvisionedThroughputExceededException`
//!   (a cancelled transaction for TransactWrite/GetItems). Requests are charged
//!   what they consumed by DynamoDB's rules ([`cost`] lists each rule and
//!   where its number comes from). DescribeTable reports the simulated capacity.
//! - **Faults** ([`FaultConfig`]): 500s, 503s, throttling, latency, stalls,
//!   connection resets, and failures after the request was applied, each at a
//!   probability, from one seed.
//! - **Stats** ([`Stats`]): per table, units consumed, requests, throttles and
//!   faults; from [`RunningSimulator::stats`] or `GET /__simulator/stats`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sessions_local::simulator::{CapacityConfig, InitialCredit, Simulator, SimulatorConfig, Throughput};
//!
//! let upstream = dynamodb_sessions::emulator::start_in_background();
//! let config = SimulatorConfig::default()
//!     .capacity(CapacityConfig::new(Throughput::new(5, 5)).burst_seconds(0).initial_credit(InitialCredit::Empty))
//!     .faults("500=0.1:op=UpdateItem,seed=7".parse()?);
//! let simulator = Simulator::start(&upstream, config).await?;
//! let client = dynamodb_sessions::emulator::client(&simulator.url());
//! // ... drive the client ...
//! let stats = simulator.stats();
//! println!("{} writes throttled", stats.table("sessions").throttled_writes);
//! # Ok(()) }
//! ```

mod capacity;
pub mod cost;
mod faults;
mod proxy;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use capacity::{CapacityConfig, InitialCredit, TableCapacity, Throughput, DYNAMODB_BURST_SECONDS};
pub use faults::{FaultConfig, FaultKind, FaultRule, DEFAULT_STALL};

use capacity::{Access, Clock, Ledger};
use faults::FaultPlan;

/// A capacity or fault specification that does not parse or is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(String);

impl SpecError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The upstream URL is not a plain `http://host:port` URL.
    #[error("the upstream `{url}` is not an http://HOST:PORT URL: {reason}")]
    Upstream {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The fault or capacity settings are invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where to listen (default: a free loopback port).
    pub listen: SocketAddr,
    /// Capacity simulation; `None` leaves every table unlimited and DescribeTable untouched.
    pub capacity: Option<CapacityConfig>,
    /// Faults (default: none).
    pub faults: FaultConfig,
    /// Buckets refill only by [`RunningSimulator::advance_clock`], not with real time (exact tests).
    pub manual_clock: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            capacity: None,
            faults: FaultConfig::default(),
            manual_clock: false,
        }
    }
}

impl SimulatorConfig {
    /// Listens on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Simulates capacity as `capacity` says.
    pub fn capacity(mut self, capacity: CapacityConfig) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Injects `faults`.
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.faults = faults;
        self
    }

    /// Refills buckets only when told ([`RunningSimulator::advance_clock`]).
    pub fn manual_clock(mut self) -> Self {
        self.manual_clock = true;
        self
    }
}

/// What the simulator saw, per table and in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// DynamoDB requests received (each SDK attempt is one).
    pub requests: u64,
    /// Faults injected, by kind name (`500`, `reset`, `after-500`, ...).
    pub faults: BTreeMap<String, u64>,
    /// Per table, by name.
    pub tables: BTreeMap<String, TableStats>,
}

impl Stats {
    /// The stats of `table` (all zero if it was never used).
    pub fn table(&self, table: &str) -> TableStats {
        self.tables.get(table).cloned().unwrap_or_default()
    }

    /// Faults of kind `name` injected in all.
    pub fn faults_of(&self, name: &str) -> u64 {
        self.faults.get(name).copied().unwrap_or(0)
    }
}

/// What the simulator saw of one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableStats {
    /// Its simulated capacity (`5/5`, `on-demand`), `None` when unlimited.
    pub capacity: Option<String>,
    /// Requests naming it.
    pub requests: u64,
    /// Read capacity units consumed (charged).
    pub read_units: f64,
    /// Write capacity units consumed (charged).
    pub write_units: f64,
    /// Reads refused for capacity.
    pub throttled_reads: u64,
    /// Writes refused for capacity.
    pub throttled_writes: u64,
    /// Read units in its bucket now (negative: in debt); `None` when unlimited.
    pub read_credit: Option<f64>,
    /// Write units in its bucket now; `None` when unlimited.
    pub write_credit: Option<f64>,
    /// Faults injected into requests naming it, by kind name.
    pub faults: BTreeMap<String, u64>,
}

/// State shared by the proxy's connections and the control handle.
#[derive(Debug)]
struct Shared {
    clock: Clock,
    ledger: Mutex<Option<Ledger>>,
    faults: Mutex<FaultPlan>,
    stats: Mutex<Stats>,
}

impl Shared {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().expect("stats lock")
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Option<Ledger>> {
        self.ledger.lock().expect("capacity lock")
    }

    /// Counts a fault by its kind's name ([`FaultKind::name`]), in all and per table.
    fn count_fault(&self, name: &str, tables: &[String]) {
        let mut stats = self.stats();
        *stats.faults.entry(name.to_string()).or_default() += 1;
        for table in tables {
            *stats.tables.entry(table.clone()).or_default().faults.entry(name.to_string()).or_default() += 1;
        }
    }

    fn count_consumed(&self, table: &str, access: Access, units: f64) {
        let mut stats = self.stats();
        let entry = stats.tables.entry(table.to_string()).or_default();
        match access {
            Access::Read => entry.read_units += units,
            Access::Write => entry.write_units += units,
        }
    }

    fn snapshot(&self) -> Stats {
        let mut stats = self.stats().clone();
        let now = self.clock.now();
        if let Some(ledger) = self.ledger().as_mut() {
            for (name, table) in stats.tables.iter_mut() {
                table.capacity = ledger.capacity(name).map(|c| c.to_string());
                // Milli-units: real-time refill leaves long fractions nobody needs.
                let milli = |units: f64| (units * 1000.0).round() / 1000.0;
                table.read_credit = ledger.balance(name, Access::Read, now).map(milli);
                table.write_credit = ledger.balance(name, Access::Write, now).map(milli);
            }
        }
        stats
    }

    fn settings(&self) -> String {
        let capacity = match self.ledger().as_ref() {
            Some(ledger) => ledger.config().to_string(),
            None => "unlimited".to_string(),
        };
        let faults = self.faults.lock().expect("faults lock");
        let faults = if faults.config().rules.is_empty() { "none".to_string() } else { faults.config().to_string() };
        format!("capacity: {capacity}; faults: {faults}")
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Serves a simulator in front of `upstream_url` (`http://host:port`) from
    /// the current Tokio runtime, on `config.listen`.
    pub async fn start(upstream_url: &str, config: SimulatorConfig) -> Result<RunningSimulator, SimulatorError> {
        config.faults.validate()?;
        let upstream = proxy::Upstream::new(upstream_url)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimulatorError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| SimulatorError::Listen { addr: config.listen, source })?;
        let shared = Arc::new(Shared {
            clock: Clock::new(config.manual_clock),
            ledger: Mutex::new(config.capacity.map(Ledger::new)),
            faults: Mutex::new(FaultPlan::new(config.faults)),
            stats: Mutex::new(Stats::default()),
        });
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(proxy::serve(listener, upstream, shared.clone(), watch));
        Ok(RunningSimulator { addr, shared, shutdown })
    }
}

/// A simulator serving; stops (with its connections) when dropped.
#[derive(Debug)]
pub struct RunningSimulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl RunningSimulator {
    /// The endpoint to give DynamoDB clients (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { self.addr.ip().to_string() };
        format!("http://{host}:{}", self.addr.port())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the faults; the generator restarts from the new seed.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), SpecError> {
        faults.validate()?;
        *self.shared.faults.lock().expect("faults lock") = FaultPlan::new(faults);
        Ok(())
    }

    /// Gives `table` this capacity from now on (turning capacity simulation on
    /// if it was off), keeping the credit its buckets hold.
    pub fn set_capacity(&self, table: &str, capacity: TableCapacity) {
        let now = self.shared.clock.now();
        let mut ledger = self.shared.ledger();
        ledger.get_or_insert_with(|| Ledger::new(CapacityConfig::default())).set_override(table, capacity, now);
    }

    /// Moves the buckets' clock forward, as if the tables had been idle for `by`.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// What it has seen so far.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }

    /// Its settings in one line, for logs and start-up banners.
    pub fn settings(&self) -> String {
        self.shared.settings()
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
