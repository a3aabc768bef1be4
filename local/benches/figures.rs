//! Figures, counted and measured (never asserted): DynamoDB requests per
//! route and what a GC sweep costs, against the embedded emulator; then, on
//! a 5/5 table in the capacity simulator, the API's success rate and latency
//! with and without a concurrent sweep (paced, and unpaced as sweeps were
//! before), the sweep's rate, and what a lock waiter costs per second (ours,
//! and one that retries a conditional write as the PHP SDK's handler does).
//! Then one user action and the example app's (sign in, add to the cart,
//! read it) side by side: in process with the session layer, with
//! tower-sessions on our store, and through the HTTP API.
//! Run: `cargo bench -p sessions-local --bench figures`.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::Router;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures;
use dynamodb_sessions::{
    emulator, CapacityBudget, Config, ConfigBuilder, LockingStrategy, SessionStore, SweepOptions, TableCapacity,
};
use dynamodb_sessions_axum::{Session, SessionCookie, SessionLayer, SessionRejection};
use session_api::{router, ApiState, HttpSettings};
use sessions_local::simulator::{
    CapacityConfig, InitialCredit, RunningSimulator, Simulator, SimulatorConfig, Throughput,
};
use tower::ServiceExt;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct App {
    state: ApiState,
    router: Router,
}

async fn app(builder: ConfigBuilder, name: &str) -> App {
    let config = builder.table_name(format!("bench-{name}-{}", std::process::id())).build().unwrap();
    let store = SessionStore::new(emulator::client(emulator::shared_endpoint()), config);
    store.create_table(TableCapacity::Provisioned { read: 5, write: 5 }).await.unwrap();
    let state = ApiState::new(store, HttpSettings::default()).unwrap();
    App { router: router(state.clone()), state }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

/// Status, headers and the whole body of one request through the router.
async fn handle(app: &App, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let response = app.router.clone().oneshot(req).await.unwrap_or_else(|never| match never {});
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, axum::body::to_bytes(body, usize::MAX).await.unwrap())
}

async fn row(app: &App, label: &str, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let (response, calls) = counted(handle(app, req)).await;
    println!("  {label:<44} {:>3}  {:<2} {}", response.0.as_u16(), calls.len(), calls.join(" + "));
    response
}

fn id_of(response: &(StatusCode, axum::http::HeaderMap, Bytes)) -> String {
    serde_json::from_slice::<serde_json::Value>(&response.2).unwrap()["id"].as_str().unwrap().to_string()
}

/// The user action of [`one_user_action`], as an app's handler: read `n`,
/// store `n + 1`.
async fn increment(session: Session) -> Result<String, SessionRejection> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    Ok(n.to_string())
}

/// Runs `action` `RUNS` times: the DynamoDB calls of the last run, and the
/// median wall time.
async fn measured<F: std::future::Future<Output = ()>>(mut action: impl FnMut() -> F) -> (Vec<String>, Duration) {
    const RUNS: usize = 50;
    let mut times = Vec::with_capacity(RUNS);
    let mut calls = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        calls = counted(action()).await.1;
        times.push(started.elapsed());
    }
    times.sort();
    (calls, times[RUNS / 2])
}

/// One user action (read the session, change one key), side by side: in
/// process with the session layer, and through the HTTP API (GET, then
/// PATCH). Capacity units follow from the calls for an item under 1 KB:
/// a consistent read 1 RCU, a write 1 WCU.
async fn one_user_action() {
    println!("\nOne user action (read the session, change one key), median of 50, embedded emulator:");
    let api = app(Config::builder(), "action").await;
    let store = api.state.store().clone();
    let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
    let layered =
        Router::new().route("/action", axum::routing::post(increment)).layer(SessionLayer::new(store, cookie));
    let json = [("content-type", "application/json")];
    let id = id_of(&handle(&api, request("POST", "/sessions", &json, r#"{"n":0}"#)).await);
    let cookie = format!("PHPSESSID={id}");
    let (calls, median) = measured(|| {
        let (layered, cookie) = (layered.clone(), cookie.clone());
        async move {
            let response = layered.oneshot(request("POST", "/action", &[("cookie", &cookie)], "")).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    })
    .await;
    print_action("in process (SessionLayer)", "none beyond the app's own", &calls, median);
    let path = format!("/sessions/{id}");
    let (calls, median) = measured(|| {
        let (api, path) = (&api, path.clone());
        async move {
            let read = handle(api, request("GET", &path, &[], "")).await;
            let n = serde_json::from_slice::<serde_json::Value>(&read.2).unwrap()["data"]["n"].as_u64().unwrap();
            let patch = format!(r#"{{"n":{}}}"#, n + 1);
            assert_eq!(handle(api, request("PATCH", &path, &json, &patch)).await.0, StatusCode::OK);
        }
    })
    .await;
    print_action("through the HTTP API (GET + PATCH)", "2 API Gateway requests, 2 invocations", &calls, median);
}

fn print_action(label: &str, in_aws: &str, calls: &[String], median: Duration) {
    let (reads, writes) = units(calls);
    println!(
        "  {label:<36} {} calls ({}), {reads} RCU + {writes} WCU, {:.2} ms; in AWS: {in_aws}",
        calls.len(),
        calls.join(" + "),
        median.as_secs_f64() * 1000.0
    );
}

/// Seeds `total` sessions of ~200 bytes (keys `{prefix}0…`) straight on the
/// emulator at `upstream` (around any simulator, so seeding spends none of
/// the table's capacity); those for which `expired(i)` holds are expired.
async fn seed_on(upstream: &str, config: &Config, prefix: &str, total: usize, expired: impl Fn(usize) -> bool) {
    let client = emulator::client(upstream);
    let data = format!(r#"{{"user.name":"jeremy","cart":"{}"}}"#, "x".repeat(120));
    let items: Vec<WriteRequest> = (0..total)
        .map(|i| {
            let expires = if expired(i) { now() - 60 } else { now() + 1440 };
            let put = PutRequest::builder()
                .item(&config.hash_key, AttributeValue::S(config.item_key(&format!("{prefix}{i:027}"))))
                .item(&config.data_attribute, AttributeValue::S(data.clone()))
                .item(&config.session_lifetime_attribute, AttributeValue::N(expires.to_string()))
                .item("version", AttributeValue::N("1".into()))
                .build()
                .unwrap();
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    for chunk in items.chunks(25) {
        let mut pending = Some(std::collections::HashMap::from([(config.table_name.clone(), chunk.to_vec())]));
        while let Some(batch) = pending.filter(|b| !b.is_empty()) {
            pending = client.batch_write_item().set_request_items(Some(batch)).send().await.unwrap().unprocessed_items;
        }
    }
}

/// Seeds `total` sessions, the first `expired` of them expired.
async fn seed(config: &Config, total: usize, expired: usize) {
    seed_on(emulator::shared_endpoint(), config, "bench", total, |i| i < expired).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too (`test = false` does not stop it there), without the flag.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("figures: run by `cargo bench -p sessions-local --bench figures`; nothing to test");
        return;
    }
    requests_per_route().await;
    one_user_action().await;
    example_app_actions().await;
    capacity_figures().await;
}

async fn requests_per_route() {
    println!("DynamoDB requests per route (status, count, operations):");
    let plain = app(Config::builder(), "plain").await;
    let json = [("content-type", "application/json")];
    let created = row(&plain, "POST /sessions", request("POST", "/sessions", &json, r#"{"user.name":"jeremy"}"#)).await;
    let id = id_of(&created);
    let path = format!("/sessions/{id}");
    row(&plain, "GET /sessions/{id} (touched < interval ago)", request("GET", &path, &[], "")).await;
    row(&plain, "PUT /sessions/{id}", request("PUT", &path, &json, r#"{"a":1}"#)).await;
    row(&plain, "PATCH /sessions/{id}", request("PATCH", &path, &json, r#"{"b":2}"#)).await;
    let regenerated =
        row(&plain, "POST /sessions/{id}/regenerate", request("POST", &format!("{path}/regenerate"), &[], "")).await;
    let path = format!("/sessions/{}", id_of(&regenerated));
    row(&plain, "DELETE /sessions/{id}", request("DELETE", &path, &[], "")).await;
    row(&plain, "GET /sessions/{id} (unknown)", request("GET", &path, &[], "")).await;
    row(&plain, "GET /sessions/{id} (malformed id)", request("GET", "/sessions/bad!", &[], "")).await;
    let touching = app(Config::builder().touch_interval(Duration::ZERO), "touch").await;
    let id = id_of(&handle(&touching, request("POST", "/sessions", &json, "")).await);
    row(
        &touching,
        "GET /sessions/{id} (touch due, TOUCH_INTERVAL=0)",
        request("GET", &format!("/sessions/{id}"), &[], ""),
    )
    .await;

    let locking = app(Config::builder().locking_strategy(LockingStrategy::Pessimistic), "lock").await;
    let id = id_of(&handle(&locking, request("POST", "/sessions", &json, "")).await);
    let path = format!("/sessions/{id}");
    let locked = row(&locking, "GET /sessions/{id} (pessimistic: lock)", request("GET", &path, &[], "")).await;
    let token = locked.1["x-session-lock-token"].to_str().unwrap().to_string();
    row(
        &locking,
        "DELETE /sessions/{id}/lock",
        request("DELETE", &format!("{path}/lock"), &[("x-session-lock-token", &token)], ""),
    )
    .await;
    let locked = handle(&locking, request("GET", &path, &[], "")).await;
    let token = locked.1["x-session-lock-token"].to_str().unwrap().to_string();
    row(
        &locking,
        "PUT /sessions/{id} (write through, unlock)",
        request("PUT", &path, &[json[0], ("x-session-lock-token", &token)], "{}"),
    )
    .await;
    row(&locking, "GET /sessions/{id}?read_and_close=1", request("GET", &format!("{path}?read_and_close=1"), &[], ""))
        .await;

    println!("\nGC sweep of 10,000 sessions (~200 B each), 10% expired, with no capacity limit:");
    let gc = app(Config::builder(), "gc").await;
    seed(gc.state.store().config(), 10_000, 1_000).await;
    let started = Instant::now();
    let unlimited = CapacityBudget { read_units_per_second: 1e6, write_units_per_second: 1e6 };
    let options = SweepOptions { budget: Some(unlimited), ..Default::default() };
    let (report, calls) = counted(gc.state.store().delete_expired(options)).await;
    let report = report.unwrap();
    let scans = calls.iter().filter(|c| *c == "Scan").count();
    println!(
        "  scanned {}, deleted {}, skipped {}; {} Scan pages + {} DeleteItem; {:.1} RCU + {:.1} WCU (emulator's count); {:.2} s",
        report.scanned,
        report.deleted,
        report.skipped,
        scans,
        calls.len() - scans,
        report.read_units,
        report.write_units,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// A 5/5 table in the capacity simulator.

const MIX_SECONDS: u64 = 30;
const REQUESTS_PER_SECOND: u64 = 4;
const SWEPT_SESSIONS: usize = 20_000;

/// An API on a fresh table behind a 5/5 simulator with one second of burst
/// (so what a sweep takes shows within seconds, not after five minutes).
async fn simulated(name: &str, upstream: &str, builder: ConfigBuilder) -> (App, RunningSimulator) {
    let capacity = CapacityConfig::new(Throughput::new(5, 5)).burst_seconds(0).initial_credit(InitialCredit::Full);
    let sim = Simulator::start(upstream, SimulatorConfig::default().capacity(capacity)).await.unwrap();
    let config = builder.table_name(format!("cap-{name}-{}", std::process::id())).build().unwrap();
    let store = SessionStore::new(emulator::client(&sim.url()), config);
    store.create_table(TableCapacity::Provisioned { read: 5, write: 5 }).await.unwrap();
    let state = ApiState::new(store, HttpSettings::default()).unwrap();
    (App { router: router(state.clone()), state }, sim)
}

/// Latencies and outcomes of an API mix.
#[derive(Default)]
struct Mix {
    latencies: Vec<Duration>,
    ok: usize,
    unavailable: usize,
    other: usize,
}

impl Mix {
    fn line(&mut self, label: &str) {
        self.latencies.sort();
        let at = |q: f64| self.latencies[((self.latencies.len() - 1) as f64 * q) as usize];
        let total = self.ok + self.unavailable + self.other;
        println!(
            "  {label:<40} {:>6.2} % ok  ({} requests, {} x 503, {} other)  p50 {:>6.1} ms  p99 {:>7.1} ms",
            100.0 * self.ok as f64 / total as f64,
            total,
            self.unavailable,
            self.other,
            at(0.5).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0
        );
    }
}

/// A steady mix for `seconds`: reads, patches, creates and replaces of 50
/// live sessions, `REQUESTS_PER_SECOND` of them a second.
async fn api_mix(app: &App, upstream: &str, seconds: u64) -> Mix {
    let json = [("content-type", "application/json")];
    // The live sessions, written on the emulator itself (no capacity spent).
    let direct = SessionStore::new(emulator::client(upstream), app.state.store().config().clone());
    let mut ids = Vec::new();
    for _ in 0..50 {
        let id = dynamodb_sessions::SessionId::generate();
        fixtures::put_session(&direct, id.as_str(), r#"{"n":0}"#, now() + 1440, None).await;
        ids.push(id);
    }
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / REQUESTS_PER_SECOND));
    let mut tasks = Vec::new();
    for i in 0..seconds * REQUESTS_PER_SECOND {
        ticks.tick().await;
        let router = app.router.clone();
        let path = format!("/sessions/{}", ids[i as usize % ids.len()]);
        let req = match i % 10 {
            0..=4 => request("GET", &path, &[], ""),
            5..=7 => request("PATCH", &path, &json, &format!(r#"{{"n":{i}}}"#)),
            8 => request("POST", "/sessions", &json, r#"{"n":0}"#),
            _ => request("PUT", &path, &json, &format!(r#"{{"n":{i}}}"#)),
        };
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = router.oneshot(req).await.unwrap_or_else(|never| match never {});
            (response.status(), started.elapsed())
        }));
    }
    let mut mix = Mix::default();
    for task in tasks {
        let (status, latency) = task.await.unwrap();
        mix.latencies.push(latency);
        match status.as_u16() {
            200..=299 => mix.ok += 1,
            503 => mix.unavailable += 1,
            _ => mix.other += 1,
        }
    }
    mix
}

/// Seeds `total` sessions on the emulator itself, `expired` of them expired,
/// spread through the table as they are in life.
async fn seed_upstream(upstream: &str, config: &Config, total: usize, expired: usize) {
    seed_on(upstream, config, "sweep", total, |i| i % (total / expired.max(1)) == 0).await;
}

/// The API mix next to a sweep of `SWEPT_SESSIONS` with `budget` (None: the
/// table's GC budget), both for `MIX_SECONDS`.
async fn mix_with_sweep(label: &str, upstream: &str, budget: Option<CapacityBudget>) {
    let (app, sim) = simulated(label, upstream, Config::builder()).await;
    let store = app.state.store().clone();
    seed_upstream(upstream, store.config(), SWEPT_SESSIONS, SWEPT_SESSIONS / 10).await;
    let deadline = Instant::now() + Duration::from_secs(MIX_SECONDS);
    let sweep = tokio::spawn(async move {
        store.delete_expired(SweepOptions { deadline: Some(deadline), budget, ..Default::default() }).await
    });
    let mut mix = api_mix(&app, upstream, MIX_SECONDS).await;
    let report = sweep.await.unwrap().unwrap();
    mix.line(&format!("API with a {label} sweep"));
    let seconds = report.duration_ms as f64 / 1000.0;
    let stats = sim.stats().table(&app.state.store().config().table_name);
    println!(
        "  {:<40} scanned {:>6.0}/s, deleted {:>5.1}/s; used {:.1} RCU/s, {:.1} WCU/s (budget {:.1}/{:.1}); table throttled {} reads, {} writes",
        format!("  the {label} sweep ({seconds:.0} s)"),
        report.scanned as f64 / seconds,
        report.deleted as f64 / seconds,
        report.read_units / seconds,
        report.write_units / seconds,
        report.budget.read_units_per_second,
        report.budget.write_units_per_second,
        stats.throttled_reads,
        stats.throttled_writes,
    );
}

/// Five waiters on a session locked for `HOLD`: the capacity they spend per
/// second each, waiting as this store waits and as the PHP SDK's handler
/// waits (a failed conditional UpdateItem per retry, 10 to 50 ms apart).
async fn lock_wait_cost(upstream: &str) {
    const WAITERS: usize = 5;
    const HOLD: Duration = Duration::from_secs(5);
    let builder = Config::builder()
        .locking_strategy(LockingStrategy::Pessimistic)
        .max_lock_wait_time(HOLD + Duration::from_secs(5));
    for php_style in [false, true] {
        let label = if php_style { "PHP SDK-style waiter" } else { "our waiter" };
        let (app, sim) = simulated(if php_style { "php-wait" } else { "wait" }, upstream, builder.clone()).await;
        let store = app.state.store().clone();
        let session = store.create(Default::default()).await.unwrap();
        let held = store.load_and_lock(&session.id).await.unwrap();
        let table = store.config().table_name.clone();
        let before = sim.stats().table(&table);
        let started = Instant::now();
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (store, id) = (store.clone(), session.id.clone());
                tokio::spawn(async move {
                    if php_style {
                        php_style_wait(&store, &id, HOLD).await;
                    } else if let Ok(s) = store.load_and_lock(&id).await {
                        store.unlock(&id, s.lock_token.as_ref().unwrap()).await.unwrap();
                    }
                })
            })
            .collect();
        tokio::time::sleep(HOLD).await;
        // While the lock is held: what waiting costs.
        let during = sim.stats().table(&table);
        let held_for = started.elapsed().as_secs_f64();
        store.unlock(&session.id, held.lock_token.as_ref().unwrap()).await.unwrap();
        for waiter in waiters {
            waiter.await.unwrap();
        }
        // After the release: the waiters take the lock one after another.
        let after = sim.stats().table(&table);
        let per = |units: f64| units / WAITERS as f64 / held_for;
        println!(
            "  {label:<40} while held: {:.2} RCU + {:.2} WCU per waiter per second; hand-over of {} waiters: {:.0} RCU + {:.0} WCU; throttled {} writes",
            per(during.read_units - before.read_units),
            per(during.write_units - before.write_units),
            WAITERS,
            after.read_units - during.read_units,
            after.write_units - during.write_units,
            after.throttled_writes - before.throttled_writes,
        );
    }
}

/// The PHP SDK's LockingSessionConnection: retry `UpdateItem` with
/// `Expected: {lock: {Exists: false}}` every 10 to 50 ms until `within`.
async fn php_style_wait(store: &SessionStore, id: &dynamodb_sessions::SessionId, within: Duration) {
    let config = store.config();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let attempt = store
            .client()
            .update_item()
            .table_name(&config.table_name)
            .key(&config.hash_key, AttributeValue::S(config.item_key(id.as_str())))
            .update_expression("SET #lock = :one")
            .condition_expression("attribute_not_exists(#lock)")
            .expression_attribute_names("#lock", "lock")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        if attempt.is_ok() {
            return;
        }
        let pause = 10 + (Instant::now().elapsed().subsec_nanos() % 41) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

async fn capacity_figures() {
    println!("\nOn a 5/5 table in the capacity simulator (burst credit: 1 s), API mix of {REQUESTS_PER_SECOND} req/s for {MIX_SECONDS} s:");
    let upstream = emulator::start_in_background();
    let (app, _sim) = simulated("alone", &upstream, Config::builder()).await;
    api_mix(&app, &upstream, MIX_SECONDS).await.line("API alone");
    mix_with_sweep("paced", &upstream, None).await;
    // As sweeps were before: as fast as the table answers, 25 deletes at once.
    let unpaced = CapacityBudget { read_units_per_second: 10_000.0, write_units_per_second: 10_000.0 };
    mix_with_sweep("unpaced", &upstream, Some(unpaced)).await;
    println!("\nWaiting for a lock held {} s, on a 5/5 table:", 5);
    lock_wait_cost(&upstream).await;
}

/// Capacity units of `calls` on items under 1 KB: a consistent read 1 RCU, a
/// write 1 WCU, and a transaction of two writes (regenerate: put the new
/// id, delete the old) 2 x 2 WCU, as DynamoDB bills transactions double.
fn units(calls: &[String]) -> (usize, usize) {
    calls.iter().fold((0, 0), |(reads, writes), call| match call.as_str() {
        "GetItem" => (reads + 1, writes),
        "TransactWriteItems" => (reads, writes + 4),
        _ => (reads, writes + 1),
    })
}

/// One step of a user's visit, measured: the calls of the last run and the median time.
struct Step {
    calls: Vec<String>,
    times: Vec<Duration>,
}

impl Step {
    fn new() -> Step {
        Step { calls: Vec::new(), times: Vec::new() }
    }

    async fn run<T>(&mut self, work: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let (output, calls) = counted(work).await;
        self.times.push(started.elapsed());
        self.calls = calls;
        output
    }

    fn print(&mut self, label: &str, in_aws: &str) {
        self.times.sort();
        let (reads, writes) = units(&self.calls);
        let median = self.times[self.times.len() / 2].as_secs_f64() * 1000.0;
        println!(
            "    {label:<12} {} calls ({}), {reads} RCU + {writes} WCU, {median:.2} ms; in AWS: {in_aws}",
            self.calls.len(),
            self.calls.join(" + ")
        );
    }
}

/// The example app's routes as a tower-sessions app writes them, on our
/// store (`TowerSessionsStore`).
fn tower_sessions_app(store: &SessionStore) -> Router {
    use tower_sessions::{Session, SessionManagerLayer};
    async fn sign_in(session: Session) -> StatusCode {
        session.cycle_id().await.unwrap();
        session.insert("user", "amy").await.unwrap();
        StatusCode::OK
    }
    async fn add_to_cart(session: Session) -> StatusCode {
        let mut cart: Vec<String> = session.get("cart").await.unwrap().unwrap_or_default();
        cart.push("tea".into());
        session.insert("cart", cart).await.unwrap();
        StatusCode::OK
    }
    async fn read_cart(session: Session) -> String {
        let cart: Vec<String> = session.get("cart").await.unwrap().unwrap_or_default();
        cart.len().to_string()
    }
    let store = dynamodb_sessions_axum::TowerSessionsStore::new(store.clone());
    Router::new()
        .route("/app/sign-in", axum::routing::post(sign_in))
        .route("/app/cart", axum::routing::post(add_to_cart).get(read_cart))
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

/// The cookie value of a response's Set-Cookie named `name`, if any.
fn set_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let header = headers.get(axum::http::header::SET_COOKIE)?.to_str().unwrap();
    let value = header.split(';').next()?.strip_prefix(&format!("{name}="))?;
    (!value.is_empty()).then(|| value.to_string())
}

/// The example app's user actions (sign in, add to the cart, read the
/// cart), each request side by side: in process with the session layer (the
/// app itself), with tower-sessions on our store, and through the HTTP API.
async fn example_app_actions() {
    const RUNS: usize = 30;
    println!("\nThe example app's user actions, per request, median of {RUNS}, embedded emulator:");
    let api = app(Config::builder(), "example").await;
    let store = api.state.store().clone();
    let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
    let json = [("content-type", "application/json")];
    // A visitor with a session (a first counter click) before each sign-in.
    let visitor = |router: Router, name: &'static str| async move {
        let response = router.oneshot(request("POST", "/app/counter", &[], "")).await.unwrap();
        set_cookie(response.headers(), name).expect("a new session")
    };
    let send = |router: &Router, method: &str, path: &str, cookie: &str, body: &'static str| {
        let req = request(method, path, &[("cookie", cookie), json[0]], body);
        router.clone().oneshot(req)
    };

    println!("  in process (SessionLayer, the example app):");
    let layered = example_app::router(SessionLayer::new(store.clone(), cookie));
    let (mut sign_in, mut add, mut read) = (Step::new(), Step::new(), Step::new());
    for _ in 0..RUNS {
        let id = visitor(layered.clone(), "PHPSESSID").await;
        let cookie = format!("PHPSESSID={id}");
        let response = sign_in.run(send(&layered, "POST", "/app/sign-in", &cookie, r#"{"user":"amy"}"#)).await;
        let cookie = format!("PHPSESSID={}", set_cookie(response.unwrap().headers(), "PHPSESSID").unwrap());
        add.run(send(&layered, "POST", "/app/cart", &cookie, r#"{"item":"tea"}"#)).await.unwrap();
        read.run(send(&layered, "GET", "/app", &cookie, "")).await.unwrap();
    }
    sign_in.print("sign in", "the app's own request only");
    add.print("add to cart", "the app's own request only");
    read.print("read cart", "the app's own request only");

    println!("  tower-sessions on our store (TowerSessionsStore):");
    let towered = tower_sessions_app(&store);
    let (mut sign_in, mut add, mut read) = (Step::new(), Step::new(), Step::new());
    for _ in 0..RUNS {
        let response = towered.clone().oneshot(request("POST", "/app/cart", &[], "")).await.unwrap();
        let cookie = format!("id={}", set_cookie(response.headers(), "id").unwrap());
        let response = sign_in.run(send(&towered, "POST", "/app/sign-in", &cookie, "")).await;
        let cookie = format!("id={}", set_cookie(response.unwrap().headers(), "id").unwrap());
        add.run(send(&towered, "POST", "/app/cart", &cookie, "")).await.unwrap();
        read.run(send(&towered, "GET", "/app/cart", &cookie, "")).await.unwrap();
    }
    sign_in.print("sign in", "the app's own request only");
    add.print("add to cart", "the app's own request only");
    read.print("read cart", "the app's own request only");

    println!("  through the HTTP API (the app calls it per step):");
    let (mut sign_in, mut add, mut read) = (Step::new(), Step::new(), Step::new());
    for _ in 0..RUNS {
        let id = id_of(&handle(&api, request("POST", "/sessions", &json, r#"{"count":1}"#)).await);
        let new_id = sign_in
            .run(async {
                let regenerated = handle(&api, request("POST", &format!("/sessions/{id}/regenerate"), &[], "")).await;
                let new_id = id_of(&regenerated);
                let path = format!("/sessions/{new_id}");
                handle(&api, request("PATCH", &path, &json, r#"{"user":"amy"}"#)).await;
                new_id
            })
            .await;
        let path = format!("/sessions/{new_id}");
        add.run(async {
            handle(&api, request("GET", &path, &[], "")).await;
            handle(&api, request("PATCH", &path, &json, r#"{"cart":["tea"]}"#)).await;
        })
        .await;
        read.run(handle(&api, request("GET", &path, &[], ""))).await;
    }
    sign_in.print("sign in", "2 API Gateway requests, 2 invocations (regenerate, PATCH) + the app's own");
    add.print("add to cart", "2 API Gateway requests, 2 invocations (GET, PATCH) + the app's own");
    read.print("read cart", "1 API Gateway request, 1 invocation (GET) + the app's own");
}
