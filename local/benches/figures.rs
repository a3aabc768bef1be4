//! Figures, counted and measured (never asserted): DynamoDB requests per
//! route, and what a GC sweep costs, against the embedded emulator (or
//! `DYNAMODB_TEST_ENDPOINT`). Run: `cargo bench -p sessions-local --bench figures`.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::{
    create_sessions_table, emulator, garbage_collect, Config, ConfigBuilder, GcOptions, LockingStrategy, SessionStore,
};
use lambda_http::http::Request as HttpRequest;
use lambda_http::{Body, Request};
use session_api::{handle, App};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn app(builder: ConfigBuilder, name: &str) -> App {
    let config = builder.table_name(format!("bench-{name}-{}", std::process::id())).build().unwrap();
    let client = emulator::client(emulator::shared_endpoint());
    create_sessions_table(&client, &config, 5, 5).await.unwrap();
    App::new(SessionStore::new(client, config))
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let mut builder = HttpRequest::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(if body.is_empty() { Body::Empty } else { Body::Text(body.into()) }).unwrap()
}

async fn row(app: &App, label: &str, req: Request) -> lambda_http::Response<Body> {
    let (response, calls) = counted(handle(app, req)).await;
    println!("  {label:<44} {:>3}  {:<2} {}", response.status().as_u16(), calls.len(), calls.join(" + "));
    response
}

fn id_of(response: &lambda_http::Response<Body>) -> String {
    let Body::Text(text) = response.body() else { panic!("no body") };
    serde_json::from_str::<serde_json::Value>(text).unwrap()["id"].as_str().unwrap().to_string()
}

/// Seeds `total` sessions of ~200 bytes, `expired` of them expired.
async fn seed(config: &Config, total: usize, expired: usize) {
    let client = emulator::client(emulator::shared_endpoint());
    let data = format!(r#"{{"user.name":"jeremy","cart":"{}"}}"#, "x".repeat(120));
    let items: Vec<WriteRequest> = (0..total)
        .map(|i| {
            let expires = if i < expired { now() - 60 } else { now() + 1440 };
            let put = PutRequest::builder()
                .item(&config.hash_key, AttributeValue::S(config.item_key(&format!("bench{i:027}"))))
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
            let out = client.batch_write_item().set_request_items(Some(batch)).send().await.unwrap();
            pending = out.unprocessed_items;
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this
    // binary too (`test = false` does not stop it there), without the flag.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("figures: run by `cargo bench -p sessions-local --bench figures`; nothing to test");
        return;
    }
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
    let token = locked.headers()["x-session-lock-token"].to_str().unwrap().to_string();
    row(
        &locking,
        "DELETE /sessions/{id}/lock",
        request("DELETE", &format!("{path}/lock"), &[("x-session-lock-token", &token)], ""),
    )
    .await;
    let locked = handle(&locking, request("GET", &path, &[], "")).await;
    let token = locked.headers()["x-session-lock-token"].to_str().unwrap().to_string();
    row(
        &locking,
        "PUT /sessions/{id} (write through, unlock)",
        request("PUT", &path, &[json[0], ("x-session-lock-token", &token)], "{}"),
    )
    .await;
    row(&locking, "GET /sessions/{id}?read_and_close=1", request("GET", &format!("{path}?read_and_close=1"), &[], ""))
        .await;

    println!("\nGC sweep of 10,000 sessions (~200 B each), 10% expired:");
    let gc = app(Config::builder(), "gc").await;
    seed(gc.store.config(), 10_000, 1_000).await;
    let started = Instant::now();
    let (report, calls) = counted(garbage_collect(gc.store.client(), gc.store.config(), GcOptions::default())).await;
    let report = report.unwrap();
    let scans = calls.iter().filter(|c| *c == "Scan").count();
    println!(
        "  scanned {}, deleted {}, skipped {}; {} Scan pages + {} DeleteItem; consumed {:.1} capacity units (emulator's count); {:.2} s",
        report.scanned, report.deleted, report.skipped, scans, calls.len() - scans, report.consumed_capacity, started.elapsed().as_secs_f64()
    );

    println!("\nGC under a 5 WCU budget (GC_BATCH_SIZE=5, GC_OPERATION_DELAY=1 s), 50 expired sessions:");
    let budget =
        app(Config::builder().gc_batch_size(5usize).gc_operation_delay(Duration::from_secs(1)), "budget").await;
    seed(budget.store.config(), 50, 50).await;
    let started = Instant::now();
    let report = garbage_collect(budget.store.client(), budget.store.config(), GcOptions::default()).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!("  deleted {} in {seconds:.1} s: {:.1} deletes/s", report.deleted, report.deleted as f64 / seconds);
}
