//! `sessions`: the session API on this machine, and the operators' commands.
//!
//!   sessions serve          the API on 127.0.0.1:$PORT (default 3000), against
//!                           an embedded DynamoDB emulator unless
//!                           AWS_ENDPOINT_URL_DYNAMODB is set; sweeps on a timer.
//!                           --capacity/--faults put the DynamoDB simulator
//!                           (capacity limits, faults) in front of it; its
//!                           OpenAPI document at /openapi.json; CORS as API
//!                           Gateway's (CORS_ALLOWED_ORIGINS, CORS_ALLOW_CREDENTIALS)
//!   sessions create-table   create_sessions_table(read, write) on the configured table
//!   sessions gc             one full sweep; prints its report as JSON
//!   sessions seed-events    put the sessions the files in events/ name into the
//!                           local server's table (see events/expected.json)
//!
//! Options come from the same environment variables as the Lambda functions.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use dynamodb_sessions::{dynamodb_client, emulator, logging, Config, SessionStore, SweepOptions, TableCapacity};
use session_api::cors::CorsSettings;
use session_api::{ApiState, AutomaticGc, HttpSettings};
use sessions_local::serve::served_router;
use sessions_local::simulator::{
    self, CapacityConfig, FaultConfig, InitialCredit, RunningSimulator, Simulator, SimulatorConfig,
};

mod fixtures;

#[derive(Parser)]
#[command(name = "sessions", about = "DynamoDB sessions: local server and operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP session API locally.
    Serve {
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        #[arg(long, env = "HOST", default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port of the embedded DynamoDB emulator (when AWS_ENDPOINT_URL_DYNAMODB is unset).
        #[arg(long, env = "DYNAMODB_PORT", default_value_t = 8000)]
        dynamodb_port: u16,
        /// Address the embedded emulator listens on (0.0.0.0 lets `sam local invoke` containers reach it).
        #[arg(long, env = "DYNAMODB_HOST", default_value = "127.0.0.1")]
        dynamodb_host: IpAddr,
        /// Seconds between GC sweeps.
        #[arg(long, env = "GC_INTERVAL", default_value_t = 60)]
        gc_interval: u64,
        /// Seconds a request may take, as the API function's timeout on
        /// Lambda (template.yaml): its work ends a second earlier, with 503.
        #[arg(long, env = "REQUEST_TIMEOUT", default_value_t = 20.0)]
        request_timeout: f64,
        #[command(flatten)]
        simulate: SimulateArgs,
    },
    /// Create the sessions table (no-op when it exists), wait until ACTIVE, enable TTL.
    CreateTable {
        /// Provisioned read capacity units.
        #[arg(long, default_value_t = 5)]
        read: i64,
        /// Provisioned write capacity units.
        #[arg(long, default_value_t = 5)]
        write: i64,
        /// On-demand billing (PAY_PER_REQUEST) instead of provisioned capacity.
        #[arg(long, conflicts_with_all = ["read", "write"])]
        on_demand: bool,
    },
    /// Sweep expired sessions once, to the end of the table, within the GC capacity budget.
    Gc,
    /// Put the sessions the files in events/ name (ids fixed in them) into the
    /// table, replacing those there, so that each event answers the status
    /// events/expected.json gives it. Creates the table if it is missing.
    SeedEvents {
        /// DynamoDB to seed: by default the local server's embedded emulator.
        /// Any credentials are sent: meant for local emulators only.
        #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB", default_value = "http://127.0.0.1:8000")]
        endpoint: String,
    },
}

/// The DynamoDB simulator in front of the server's DynamoDB. With either
/// `--capacity` or `--faults` it listens where the emulator would
/// (DYNAMODB_HOST:DYNAMODB_PORT) and the emulator moves to a free loopback port.
#[derive(Args)]
struct SimulateArgs {
    /// Simulate provisioned capacity: READ/WRITE units per second for every
    /// table, then optional TABLE=READ/WRITE or TABLE=on-demand entries
    /// (e.g. `5/5`, `5/5,audit=on-demand`). The sessions table is created with
    /// it. Throttled requests get DynamoDB's ProvisionedThroughputExceededException.
    #[arg(long, env = "SIMULATE_CAPACITY", value_parser = |s: &str| s.parse::<CapacityConfig>())]
    capacity: Option<CapacityConfig>,
    /// Seconds of unused capacity a table keeps as burst credit (DynamoDB: 300; 0: none).
    #[arg(long, env = "SIMULATE_BURST_SECONDS", default_value_t = 300, requires = "capacity")]
    burst_seconds: u32,
    /// Burst credit at start: `full` (a table idle for a while) or `empty`.
    #[arg(long, env = "SIMULATE_INITIAL_CREDIT", default_value = "full", requires = "capacity",
          value_parser = |s: &str| s.parse::<InitialCredit>())]
    initial_credit: InitialCredit,
    /// Inject faults: `KIND=VALUE[:QUALIFIER]...` items, comma-separated, and `seed=N`.
    #[arg(
        long,
        env = "SIMULATE_FAULTS",
        value_parser = |s: &str| s.parse::<FaultConfig>(),
        long_help = "Inject faults, each at a probability, reproducibly from one seed. Comma-separated items \
KIND=VALUE[:QUALIFIER]..., and seed=N (default 0).

Kinds (VALUE is a probability in [0, 1] unless said):
  500          HTTP 500 InternalServerError
  503          HTTP 503 ServiceUnavailable
  throttle     HTTP 400 ThrottlingException
  ptee         HTTP 400 ProvisionedThroughputExceededException
  latency      VALUE is a delay (20ms) or a range (10ms..50ms), added before forwarding
  stall        no answer for :for=DURATION (default 60s), then the connection dropped
  reset        the TCP connection reset, no answer
  after-500    the request applied, then HTTP 500 instead of its answer
  after-reset  the request applied, then the connection reset
  late         no answer; the request applied :after=DURATION (default 2s) later, then the connection reset

Qualifiers: op=UpdateItem|PutItem (only these operations), table=NAME|NAME,
times=N (at most N faults), skip=N (the first N requests pass), p=P (latency: its probability), for=DURATION (stall),
after=DURATION (late).
Durations take ms, s or m.

Example: --faults \"500=0.05,throttle=0.1:op=UpdateItem,latency=5ms..20ms,seed=7\""
    )]
    faults: Option<FaultConfig>,
}

impl SimulateArgs {
    fn config(&self, listen: SocketAddr) -> Option<SimulatorConfig> {
        if self.capacity.is_none() && self.faults.is_none() {
            return None;
        }
        let capacity =
            self.capacity.clone().map(|c| c.burst_seconds(self.burst_seconds).initial_credit(self.initial_credit));
        Some(SimulatorConfig { listen, capacity, faults: self.faults.clone().unwrap_or_default(), manual_clock: false })
    }

    /// The capacity to create `table` with: its simulated capacity, else 5/5.
    fn table_capacity(&self, table: &str) -> TableCapacity {
        let capacity = self.capacity.as_ref();
        match capacity.and_then(|c| c.tables.get(table).copied()) {
            Some(simulator::TableCapacity::Provisioned(t)) => {
                TableCapacity::Provisioned { read: t.read.into(), write: t.write.into() }
            }
            Some(simulator::TableCapacity::OnDemand) => TableCapacity::OnDemand,
            None => capacity.and_then(|c| c.default).map_or(TableCapacity::Provisioned { read: 5, write: 5 }, |t| {
                TableCapacity::Provisioned { read: t.read.into(), write: t.write.into() }
            }),
        }
    }
}

async fn start_simulator(upstream: &str, config: SimulatorConfig) -> Result<RunningSimulator, String> {
    let simulator = Simulator::start(upstream, config).await.map_err(|e| format!("{e} (set DYNAMODB_PORT)"))?;
    println!("DynamoDB simulator: {} in front of {upstream}", simulator.url());
    println!("  {}", simulator.settings());
    println!("  stats: curl {}/__simulator/stats", simulator.url());
    Ok(simulator)
}

#[tokio::main]
async fn main() {
    logging::init();
    if let Err(message) = run(Cli::parse()).await {
        eprintln!("sessions: {message}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve { port, host, dynamodb_port, dynamodb_host, gc_interval, request_timeout, simulate } => {
            let request_timeout = Duration::try_from_secs_f64(request_timeout)
                .ok()
                .filter(|limit| (Duration::from_secs(2)..=Duration::from_secs(900)).contains(limit))
                .ok_or_else(|| {
                    format!("--request-timeout (REQUEST_TIMEOUT) {request_timeout}: must be 2 to 900 seconds")
                })?;
            let settings = HttpSettings::from_env().map_err(|e| e.to_string())?;
            let cors = CorsSettings::from_env().map_err(|e| e.to_string())?;
            let dynamodb_addr = SocketAddr::new(dynamodb_host, dynamodb_port);
            let simulation = simulate.config(dynamodb_addr);
            // Kept for the server's lifetime: dropping it stops the simulator.
            let mut simulator = None;
            let client = match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
                Ok(url) if !url.trim().is_empty() => {
                    println!("DynamoDB: {url} (AWS_ENDPOINT_URL_DYNAMODB)");
                    let client = dynamodb_client(&config).await;
                    match simulation {
                        Some(simulation) => {
                            let running = simulator.insert(start_simulator(url.trim(), simulation).await?);
                            let config = client.config().to_builder().endpoint_url(running.url()).build();
                            aws_sdk_dynamodb::Client::from_conf(config)
                        }
                        None => client,
                    }
                }
                _ => {
                    // Behind a simulator, the emulator takes a free loopback port.
                    let emulator_addr = match simulation {
                        Some(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
                        None => dynamodb_addr,
                    };
                    let url = emulator::start(emulator_addr).await.map_err(|e| format!("{e} (set DYNAMODB_PORT)"))?;
                    println!("DynamoDB: embedded emulator at {url} (in memory)");
                    match simulation {
                        Some(simulation) => {
                            emulator::client(&simulator.insert(start_simulator(&url, simulation).await?).url())
                        }
                        None => emulator::client(&url),
                    }
                }
            };
            let capacity = simulate.table_capacity(&config.table_name);
            let store = SessionStore::new(client, config);
            store.create_table(capacity).await.map_err(|e| e.to_string())?;
            let sweeper = store.clone();
            tokio::spawn(
                async move { sweeper.continuously_delete_expired(Duration::from_secs(gc_interval.max(1))).await },
            );
            // A long-lived server: automatic GC steps run after the response.
            let state = ApiState::new(store, settings)
                .map_err(|e| e.to_string())?
                .with_automatic_gc(AutomaticGc::Spawned)
                .with_request_time_limit(request_timeout);
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, port))
                .await
                .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("Session API: http://{addr}  (try: curl -i http://{addr}/sessions -H 'content-type: application/json' -d '{{\"user.name\":\"jeremy\"}}')");
            let app = served_router(state, &cors);
            let served = axum::serve(listener, app).await.map_err(|e| e.to_string());
            drop(simulator);
            served
        }
        Command::CreateTable { read, write, on_demand } => {
            let capacity = if on_demand { TableCapacity::OnDemand } else { TableCapacity::Provisioned { read, write } };
            let table = config.table_name.clone();
            let store = SessionStore::new(dynamodb_client(&config).await, config);
            let outcome = store.create_table(capacity).await.map_err(|e| e.to_string())?;
            println!("{table}: {outcome:?}");
            Ok(())
        }
        Command::SeedEvents { endpoint } => {
            let table = config.table_name.clone();
            let store = SessionStore::new(emulator::client(&endpoint), config);
            store
                .create_table(TableCapacity::Provisioned { read: 5, write: 5 })
                .await
                .map_err(|e| format!("{e} (is `sessions serve` running?)"))?;
            let written = fixtures::seed_events(&store).await?;
            println!("{table}: {written} event fixture sessions put at {endpoint}");
            Ok(())
        }
        Command::Gc => {
            let store = SessionStore::new(dynamodb_client(&config).await, config);
            let report = store.delete_expired(SweepOptions::default()).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&report).expect("a report serializes"));
            Ok(())
        }
    }
}
