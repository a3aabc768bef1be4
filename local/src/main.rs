//! `sessions`: the session API on this machine, and the operators' commands.
//!
//!   sessions serve          the API on 127.0.0.1:$PORT (default 3000), against
//!                           an embedded DynamoDB emulator unless
//!                           AWS_ENDPOINT_URL_DYNAMODB is set; sweeps on a timer
//!   sessions create-table   create_sessions_table(read, write) on the configured table
//!   sessions gc             one full sweep; prints its report as JSON
//!   sessions seed-events    put the sessions the files in events/ name into the
//!                           local server's table (see events/expected.json)
//!
//! Options come from the same environment variables as the Lambda functions.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dynamodb_sessions::{
    create_sessions_table, dynamodb_client, emulator, garbage_collect, logging, Config, GcOptions, SessionStore,
};
use session_api::App;

mod fixtures;
mod server;

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
    },
    /// Create the sessions table (no-op when it exists), wait until ACTIVE, enable TTL.
    CreateTable {
        #[arg(long, default_value_t = 5)]
        read: i64,
        #[arg(long, default_value_t = 5)]
        write: i64,
    },
    /// Sweep expired sessions once, to the end of the table.
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
        Command::Serve { port, host, dynamodb_port, dynamodb_host, gc_interval } => {
            let client = match std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
                Ok(url) if !url.trim().is_empty() => {
                    println!("DynamoDB: {url} (AWS_ENDPOINT_URL_DYNAMODB)");
                    dynamodb_client().await
                }
                _ => {
                    let url = emulator::start(SocketAddr::new(dynamodb_host, dynamodb_port))
                        .await
                        .map_err(|e| format!("{e} (set DYNAMODB_PORT)"))?;
                    println!("DynamoDB: embedded emulator at {url} (in memory)");
                    emulator::client(&url)
                }
            };
            create_sessions_table(&client, &config, 5, 5).await.map_err(|e| e.to_string())?;
            let store = SessionStore::new(client, config);
            tokio::spawn(sweep_forever(store.clone(), Duration::from_secs(gc_interval.max(1))));
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, port))
                .await
                .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("Session API: http://{addr}  (try: curl -i http://{addr}/sessions -H 'content-type: application/json' -d '{{\"user.name\":\"jeremy\"}}')");
            server::serve(App::new(store), listener).await.map_err(|e| e.to_string())
        }
        Command::CreateTable { read, write } => {
            let outcome = create_sessions_table(&dynamodb_client().await, &config, read, write)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}: {outcome:?}", config.table_name);
            Ok(())
        }
        Command::SeedEvents { endpoint } => {
            let client = emulator::client(&endpoint);
            create_sessions_table(&client, &config, 5, 5)
                .await
                .map_err(|e| format!("{e} (is `sessions serve` running?)"))?;
            let written = fixtures::seed_events(&client, &config).await?;
            println!("{}: {written} event fixture sessions put at {endpoint}", config.table_name);
            Ok(())
        }
        Command::Gc => {
            let report = garbage_collect(&dynamodb_client().await, &config, GcOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&report).expect("a report serializes"));
            Ok(())
        }
    }
}

async fn sweep_forever(store: SessionStore, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        let options = GcOptions { deadline: Some(Instant::now() + every), ..Default::default() };
        match garbage_collect(store.client(), store.config(), options).await {
            Ok(report) => report.log("gc sweep"),
            Err(err) => tracing::warn!(error = %err, "gc sweep failed"),
        }
    }
}
