//! PHP and this service sharing one table (issue 7), with real `php`; and
//! PHP and the in-process session layer (`dynamodb-sessions-axum`) sharing it.
//!
//! `tests/php/session.php` plays scripted PHP requests through
//! `tests/php/DynamoDbSessionHandler.php`, a stand-in for the AWS SDK for PHP
//! v3 session handler that sends the SDK's exact requests (see its header),
//! against the same DynamoDB endpoint as the API under test. Each test is one
//! mixed-writer scenario a PHP team relies on: what one side writes the other
//! reads, locks hold across both, and nothing is lost, emptied or left locked.
//!
//! PHP runs as a child process printing one JSON line per DynamoDB call and
//! per step; a test can hold a PHP request mid-way (`wait`) and act on the
//! API meanwhile. Lock waits are kept to 1-2 s; nothing here asserts a time.
//!
//! Run: `cargo test -p session-api --test php_interop` (needs `php` 8 CLI on
//! PATH; a missing `php` fails every test, it never skips them). By hand:
//! `php tests/php/session.php '{"endpoint":..., "table":..., "actions":[...]}'`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::Extension;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use common::{app_from_env, now, TestApp as App};
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures::{intercepted, Hook};
use dynamodb_sessions::{emulator, SessionStore, SweepOptions};
use dynamodb_sessions_axum::tower_sessions_store::{self, TowerSessionsStore};
use dynamodb_sessions_axum::{HttpSettings, Session, SessionCookie, SessionLayer, SessionRejection};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// The API side: every call goes through `call`, the one place to change when
// the tests drive a Router instead of `handle`.

/// What the API answered.
struct Reply {
    status: u16,
    body: Value,
    lock_token: Option<String>,
}

async fn call(app: &App, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Reply {
    let body = body.map(Value::to_string);
    let response = app.call(method, path, headers, body.as_deref()).await;
    Reply {
        status: response.status.as_u16(),
        body: response.json(),
        lock_token: response.header("x-session-lock-token").map(str::to_string),
    }
}

const JSON_BODY: (&str, &str) = ("content-type", "application/json");

async fn create(app: &App, data: &Value) -> Reply {
    call(app, "POST", "/sessions", &[JSON_BODY], Some(data)).await
}

async fn get(app: &App, sid: &str) -> Reply {
    call(app, "GET", &format!("/sessions/{sid}"), &[], None).await
}

async fn put(app: &App, sid: &str, data: &Value, lock_token: Option<&str>) -> Reply {
    let mut headers = vec![JSON_BODY];
    headers.extend(lock_token.map(|token| ("x-session-lock-token", token)));
    call(app, "PUT", &format!("/sessions/{sid}"), &headers, Some(data)).await
}

async fn patch(app: &App, sid: &str, merge_patch: &Value) -> Reply {
    let headers = [("content-type", "application/merge-patch+json")];
    call(app, "PATCH", &format!("/sessions/{sid}"), &headers, Some(merge_patch)).await
}

async fn unlock(app: &App, sid: &str, lock_token: &str) -> Reply {
    call(app, "DELETE", &format!("/sessions/{sid}/lock"), &[("x-session-lock-token", lock_token)], None).await
}

async fn delete(app: &App, sid: &str) -> Reply {
    call(app, "DELETE", &format!("/sessions/{sid}"), &[], None).await
}

/// Our sweep, as the scheduled GC function runs it.
async fn our_gc(app: &App) {
    let report = app.store().delete_expired(SweepOptions::default()).await.unwrap();
    assert!(report.finished(), "{report:?}");
}

/// Pessimistic locking with a short wait, as environment variables.
fn locking(max_lock_wait_time: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("LOCKING_STRATEGY", "pessimistic"),
        ("MAX_LOCK_WAIT_TIME", max_lock_wait_time),
        ("MIN_LOCK_RETRY_MICROTIME", "5000"),
        ("MAX_LOCK_RETRY_MICROTIME", "20000"),
    ]
}

// ---------------------------------------------------------------------------
// The table itself, read and seeded directly.

type Item = HashMap<String, AttributeValue>;

/// The item key of a session id as the PHP SDK builds it: `trim(name . '_' . id, '_')`.
fn php_key(app: &App, sid: &str) -> AttributeValue {
    let name = &app.store().config().session_name;
    AttributeValue::S(format!("{name}_{sid}").trim_matches('_').to_string())
}

/// The session's item, looked up by PHP's key.
async fn raw(app: &App, sid: &str) -> Option<Item> {
    let config = app.store().config();
    let out = app
        .store()
        .client()
        .get_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, php_key(app, sid))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
}

/// The stored `data` as text (S, or B read as bytes).
fn stored_data(item: &Item) -> String {
    match item.get("data") {
        Some(AttributeValue::S(text)) => text.clone(),
        Some(AttributeValue::B(bytes)) => String::from_utf8_lossy(bytes.as_ref()).into_owned(),
        other => panic!("no data attribute: {other:?}"),
    }
}

fn php_lock(item: &Item) -> Option<&AttributeValue> {
    item.get("lock")
}

/// Moves a session's expiry, as time passing would (no other attribute touched).
async fn set_expires(app: &App, sid: &str, expires: i64) {
    let config = app.store().config();
    app.store()
        .client()
        .update_item()
        .table_name(&config.table_name)
        .key(&config.hash_key, php_key(app, sid))
        .update_expression("SET #e = :e")
        .expression_attribute_names("#e", &config.session_lifetime_attribute)
        .expression_attribute_values(":e", AttributeValue::N(expires.to_string()))
        .send()
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// The PHP side.

const SESSION_PHP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/php/session.php");
/// A guard against a hung child only; no test waits anywhere near this.
const PHP_SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// A PHP application on the test's table: its serializer and SDK handler options.
#[derive(Clone)]
struct PhpApp {
    endpoint: String,
    table: String,
    serializer: &'static str,
    handler: serde_json::Map<String, Value>,
    ini: serde_json::Map<String, Value>,
    gadgets: Option<String>,
}

impl PhpApp {
    fn new(app: &App, serializer: &'static str) -> PhpApp {
        PhpApp {
            endpoint: emulator::shared_endpoint().to_string(),
            table: app.store().config().table_name.clone(),
            serializer,
            handler: Default::default(),
            ini: Default::default(),
            gadgets: None,
        }
    }

    /// The app defines gadgets.php's classes, which leave a file in `dir`
    /// when PHP runs their magic methods.
    fn gadgets(mut self, dir: &Gadgets) -> PhpApp {
        self.gadgets = Some(dir.0.display().to_string());
        self
    }

    /// An SDK handler option (`locking`, `max_lock_wait_time`, `session_lifetime`, ...).
    fn option(mut self, name: &str, value: impl Into<Value>) -> PhpApp {
        self.handler.insert(name.into(), value.into());
        self
    }

    /// The SDK's locking connection, waiting up to `max_lock_wait_time` seconds.
    fn locking(self, max_lock_wait_time: u64) -> PhpApp {
        self.option("locking", true).option("max_lock_wait_time", max_lock_wait_time)
    }

    fn ini(mut self, name: &str, value: &str) -> PhpApp {
        self.ini.insert(name.into(), value.into());
        self
    }

    fn spawn(&self, actions: Value) -> Php {
        let script = json!({
            "endpoint": self.endpoint,
            "table": self.table,
            "serialize_handler": self.serializer,
            "handler": self.handler,
            "ini": self.ini,
            "gadgets": self.gadgets,
            "actions": actions,
        });
        Php::spawn(&script)
    }

    /// Runs a request to the end.
    fn run(&self, actions: Value) -> PhpRun {
        self.spawn(actions).finish()
    }

    /// A new PHP session with `values` (an object, or `[key, value]` pairs in
    /// order; none: an empty session, `{id, expires}`), and its id.
    fn new_session(&self, values: Value) -> String {
        let run = self.run(json!([{"create_id": true}, {"start": {}}, {"set": values}, {"write_close": true}]));
        assert_clean(run.step("start"));
        run.step("start")["id"].as_str().unwrap().to_string()
    }
}

/// A running `php session.php`.
struct Php {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<Value>,
}

impl Php {
    fn spawn(script: &Value) -> Php {
        let mut child = Command::new("php")
            .arg(SESSION_PHP)
            .arg(script.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `php` ({e}): the PHP interop tests need the PHP 8 CLI \
                     (Debian: apt-get install php-cli); they are never skipped"
                )
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Php { child, stdin, lines, seen: Vec::new() }
    }

    /// The next line PHP printed, None once it has exited.
    fn next(&mut self) -> Option<Value> {
        match self.lines.recv_timeout(PHP_SILENCE_LIMIT) {
            Ok(line) => {
                let event: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("php printed a non-JSON line ({e}): {line}"));
                self.seen.push(event.clone());
                Some(event)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("php printed nothing for {PHP_SILENCE_LIMIT:?}; so far: {:#?}", self.seen)
            }
        }
    }

    /// Reads on until an event matches.
    fn until(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next() {
                Some(event) if matches(&event) => return event,
                Some(_) => {}
                None => {
                    let stderr = self.stderr();
                    panic!("php ended before {what}; it printed: {:#?}{stderr}", self.seen)
                }
            }
        }
    }

    /// Until the request blocks on a `wait` step.
    fn until_waiting(&mut self) {
        self.until("its wait step", |e| e["waiting"] == true);
    }

    /// Until a lock attempt has failed: PHP is now waiting for the lock.
    fn until_lock_refused(&mut self) {
        self.until("a refused lock attempt", |e| e["call"]["error"] == "ConditionalCheckFailedException");
    }

    /// Lets a `wait` step go on.
    fn resume(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        if text.is_empty() {
            text
        } else {
            format!("\nstderr:\n{text}")
        }
    }

    /// Reads to the end; the request must have finished cleanly.
    fn finish(mut self) -> PhpRun {
        self.stdin = None;
        while self.next().is_some() {}
        let status = self.child.wait().unwrap();
        let done = self.seen.last().is_some_and(|e| e["done"] == true);
        if !status.success() || !done {
            let stderr = self.stderr();
            panic!("php failed ({status}); it printed: {:#?}{stderr}", self.seen);
        }
        PhpRun { events: self.seen }
    }

    /// Reads to the end of a request that killed itself (`crash`).
    fn finish_crashed(mut self) -> PhpRun {
        self.stdin = None;
        while self.next().is_some() {}
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the request was to die holding its lock; it printed: {:#?}", self.seen);
        PhpRun { events: self.seen }
    }
}

/// Everything a finished PHP request printed.
struct PhpRun {
    events: Vec<Value>,
}

impl PhpRun {
    fn steps(&self, action: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["action"] == action).collect()
    }

    fn step(&self, action: &str) -> &Value {
        self.steps(action).into_iter().next().unwrap_or_else(|| panic!("no {action} step in {:#?}", self.events))
    }
}

/// A step PHP took without a warning or an error (e.g. "Failed to decode session object").
fn assert_clean(step: &Value) {
    assert_eq!(step["warnings"], json!([]), "PHP warned during {}: {step:#}", step["action"]);
    assert_eq!(step["error"], Value::Null, "PHP failed during {}: {step:#}", step["action"]);
    if step["action"] == "start" {
        assert_eq!(step["result"], true, "session_start() failed: {step:#}");
    }
}

/// `$_SESSION` after a step, as JSON (PHP prints an empty array as `[]`).
fn session(step: &Value) -> Value {
    match &step["session"] {
        Value::Array(items) if items.is_empty() => json!({}),
        other => other.clone(),
    }
}

/// `session_encode()` after a step: the session in PHP's own serializer format.
fn encoded(step: &Value) -> String {
    let b64 = step["encoded_b64"].as_str().unwrap_or_else(|| panic!("no session_encode() in {step:#}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

/// What PHP's own serializer makes of `{"user.name": "jeremy", "n": 3}`.
fn jeremy_in(serializer: &str) -> &'static str {
    match serializer {
        "php" => r#"user.name|s:6:"jeremy";n|i:3;"#,
        "php_serialize" => r#"a:2:{s:9:"user.name";s:6:"jeremy";s:1:"n";i:3;}"#,
        other => panic!("no such serializer {other}"),
    }
}

// ---------------------------------------------------------------------------
// 0. The stand-in sends what the SDK sends: pinned here so it cannot drift.

/// The requests of a step's DynamoDB calls, each with the time-dependent
/// number (the new `expires`, or the Scan's `now`) replaced by `"<time>"`
/// once checked to lie within `lifetime` of the step's clock.
fn requests(step: &Value, lifetime: i64) -> Vec<Value> {
    let clock = step["time"].as_i64();
    step["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut request = c["request"].clone();
            let timed = ["/AttributeUpdates/expires/Value/N", "/ScanFilter/expires/AttributeValueList/0/N"];
            for path in timed {
                let Some(n) = request.pointer_mut(path) else { continue };
                let at: i64 = n.as_str().unwrap().parse().unwrap();
                let base = clock.unwrap_or_else(now);
                assert!((base - 30..=base + 30).contains(&(at - lifetime)), "{at} is not now + {lifetime}");
                *n = json!("<time>");
            }
            request
        })
        .collect()
}

#[tokio::test]
async fn the_php_stand_in_sends_the_sdk_requests() {
    let app = app_from_env(&[]).await;
    let table = app.store().config().table_name.clone();
    let sid = "standinstandinstandin00001";
    let key = json!({"id": {"S": format!("PHPSESSID_{sid}")}});
    let get_item = json!({"TableName": table, "Key": key, "ConsistentRead": true});
    let update = |data: Option<Value>| {
        let mut updates = json!({"expires": {"Value": {"N": "<time>"}}, "lock": {"Action": "DELETE"}});
        if let Some(data) = data {
            updates["data"] = data;
        }
        json!({"TableName": table, "Key": key, "AttributeUpdates": updates})
    };

    let php = PhpApp::new(&app, "php").option("session_lifetime", 600);
    let run = php.run(json!([
        {"id": sid}, {"start": {}}, {"set": {"n": 1}}, {"write_close": true},
        {"start": {}}, {"write_close": true},
        {"start": {}}, {"unset": ["n"]}, {"write_close": true},
        {"start": {}}, {"destroy": true},
    ]));
    let (starts, closes) = (run.steps("start"), run.steps("write_close"));
    assert_eq!(requests(starts[0], 0), [get_item], "a read is GetItem, ConsistentRead per option");
    assert_eq!(requests(closes[0], 600), [update(Some(json!({"Value": {"S": "n|i:1;"}})))]);
    assert_eq!(requests(closes[1], 600), [update(None)], "unchanged data is not sent again");
    assert_eq!(requests(closes[2], 600), [update(Some(json!({"Action": "DELETE"})))], "empty data is removed");
    let destroy = run.step("destroy");
    assert_eq!(requests(destroy, 0), [json!({"TableName": table, "Key": key})]);
    assert_eq!(destroy["calls"][0]["op"], "DeleteItem");

    let locking = PhpApp::new(&app, "php").locking(1).option("session_lifetime", 600);
    let run = locking.run(json!([{"id": sid}, {"start": {}}, {"set": {"n": 1}}]));
    let lock = json!({
        "TableName": table, "Key": key,
        "Expected": {"lock": {"Exists": false}},
        "AttributeUpdates": {"lock": {"Value": {"N": "1"}}},
        "ReturnValues": "ALL_NEW",
    });
    assert_eq!(requests(run.step("start"), 0), [lock], "a locking read is the legacy conditional UpdateItem");
    assert_eq!(run.step("start")["calls"][0]["op"], "UpdateItem");
    assert_eq!(requests(run.step("end"), 600), [update(Some(json!({"Value": {"S": "n|i:1;"}})))]);

    let binary = PhpApp::new(&app, "php").option("session_lifetime", 600).option("data_attribute_type", "binary");
    let run = binary.run(json!([{"id": sid}, {"start": {}}, {"set": {"n": 2}}]));
    let b64 = base64::engine::general_purpose::STANDARD.encode("n|i:2;");
    assert_eq!(requests(run.step("end"), 600), [update(Some(json!({"Value": {"B": b64}})))]);

    let expired = PhpApp::new(&app, "php").option("session_lifetime", -60);
    let run = expired.run(json!([{"id": sid}, {"start": {}}, {"set": {"n": 3}}, {"write_close": true},
                                 {"garbage_collect": true}]));
    let gc = run.step("garbage_collect");
    let ops: Vec<&Value> = gc["calls"].as_array().unwrap().iter().map(|c| &c["op"]).collect();
    assert_eq!(ops, ["Scan", "BatchWriteItem"]);
    assert_eq!(
        requests(gc, 0),
        [
            json!({"TableName": table, "AttributesToGet": ["id"], "ScanFilter": {
                "expires": {"ComparisonOperator": "LT", "AttributeValueList": [{"N": "<time>"}]},
                "lock": {"ComparisonOperator": "NULL"},
            }}),
            json!({"RequestItems": {table.clone(): [{"DeleteRequest": {"Key": key}}]}}),
        ]
    );
    assert!(raw(&app, sid).await.is_none(), "PHP's GC deleted the expired session");
}

// ---------------------------------------------------------------------------
// 1. PHP writes, the API reads and patches, PHP reads the patch, and the
//    stored data stays in PHP's format (the service's own DATA_FORMAT is the
//    default, json: a write keeps the format an item already has).

async fn php_writes_the_api_reads_and_patches(serializer: &'static str) {
    let app = app_from_env(&[]).await;
    let php = PhpApp::new(&app, serializer);
    let sid = php.new_session(json!([["user.name", "jeremy"], ["n", 3]]));
    let stored = stored_data(&raw(&app, &sid).await.expect("PHP wrote its session"));
    assert_eq!(stored, jeremy_in(serializer), "the stand-in writes PHP's format (harness check)");

    let read = get(&app, &sid).await;
    assert_eq!(read.status, 200, "GET of a session PHP wrote ({serializer}): {}", read.body);
    assert_eq!(read.body["data"], json!({"user.name": "jeremy", "n": 3}));

    let patched = patch(&app, &sid, &json!({"n": 4, "user.role": "admin"})).await;
    assert_eq!(patched.status, 200, "PATCH of a session PHP wrote: {}", patched.body);
    assert_eq!(patched.body["data"], json!({"user.name": "jeremy", "n": 4, "user.role": "admin"}));

    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_clean(start);
    assert_eq!(session(start), json!({"user.name": "jeremy", "n": 4, "user.role": "admin"}));
    let stored = stored_data(&raw(&app, &sid).await.unwrap());
    assert_eq!(stored, encoded(start), "the patched data is exactly what PHP's {serializer} serializer writes");
}

#[tokio::test]
async fn php_writes_the_api_reads_and_patches_php_serializer() {
    php_writes_the_api_reads_and_patches("php").await;
}

#[tokio::test]
async fn php_writes_the_api_reads_and_patches_php_serialize_serializer() {
    php_writes_the_api_reads_and_patches("php_serialize").await;
}

// ---------------------------------------------------------------------------
// 2. The API creates, in each DATA_FORMAT; PHP reads what matches its
//    serialize_handler.

fn varied_values() -> Value {
    json!({
        "user.name": "jeremy",
        "n": 3,
        "ratio": 0.5,
        "admin": false,
        "nothing": null,
        "tags": ["a", "b"],
        "profile": {"city": "Zürich", "zip": 8001},
    })
}

async fn the_api_creates_and_php_reads(format: &'static str) {
    let app = app_from_env(&[("DATA_FORMAT", format)]).await;
    let created = create(&app, &varied_values()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sid = created.body["id"].as_str().unwrap().to_string();
    let stored = stored_data(&raw(&app, &sid).await.unwrap());

    let run = PhpApp::new(&app, format).run(json!([{"cookie": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_clean(start);
    assert_eq!(session(start), varied_values(), "PHP ({format}) reads what the API created");
    assert_eq!(stored, encoded(start), "DATA_FORMAT={format} stores exactly what PHP's serializer writes");
}

#[tokio::test]
async fn the_api_creates_in_json_by_default_and_reads_it_back() {
    let app = app_from_env(&[("DATA_FORMAT", "json")]).await;
    let created = create(&app, &varied_values()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let sid = created.body["id"].as_str().unwrap();
    let stored: Value = serde_json::from_str(&stored_data(&raw(&app, sid).await.unwrap())).unwrap();
    assert_eq!(stored, varied_values(), "DATA_FORMAT=json stores a JSON object");
    assert_eq!(get(&app, sid).await.body["data"], varied_values());
}

#[tokio::test]
async fn the_api_creates_in_php_format_and_php_reads() {
    the_api_creates_and_php_reads("php").await;
}

#[tokio::test]
async fn the_api_creates_in_php_serialize_format_and_php_reads() {
    the_api_creates_and_php_reads("php_serialize").await;
}

// ---------------------------------------------------------------------------
// 3. A PHP request holds its lock: a locking API read waits and answers 423,
//    and changes nothing (PHP's lock stays); once PHP closes, the API locks.

#[tokio::test]
async fn a_php_lock_holds_off_a_locking_api_read() {
    let app = app_from_env(&locking("1")).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!({}));
    let mut holder = php.clone().locking(10).spawn(json!([{"id": sid}, {"start": {}}, {"wait": true}]));
    holder.until_waiting();
    let held = raw(&app, &sid).await.unwrap();
    assert_eq!(php_lock(&held), Some(&AttributeValue::N("1".into())), "PHP holds its lock (harness check)");

    let read = get(&app, &sid).await;
    assert_eq!(read.status, 423, "a locking read while PHP holds the lock: {}", read.body);
    assert_eq!(raw(&app, &sid).await.unwrap(), held, "the refused read left PHP's lock and the session as they were");

    holder.resume();
    assert_clean(holder.finish().step("start"));
    let after = raw(&app, &sid).await.unwrap();
    assert_eq!(php_lock(&after), None, "PHP's close released its lock");
    let read = get(&app, &sid).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert!(read.lock_token.is_some(), "the API locks the session once PHP is done");
}

// ---------------------------------------------------------------------------
// 4. The API holds the lock: a locking PHP read waits, and gets the session
//    once the API writes through with its token, or unlocks.

enum Release {
    WriteThrough,
    Unlock,
}

async fn php_waits_for_the_api_lock(serializer: &'static str, release: Release) {
    let mut env = locking("1");
    env.push(("DATA_FORMAT", serializer));
    let app = app_from_env(&env).await;
    let php = PhpApp::new(&app, serializer);
    let sid = php.new_session(json!({}));
    let locked = get(&app, &sid).await;
    assert_eq!(locked.status, 200, "{}", locked.body);
    let token = locked.lock_token.expect("a locking read returns its token");

    // PHP gives up after 30 s; the lock is released as soon as PHP is seen waiting.
    let mut waiter = php.clone().locking(30).spawn(json!([{"id": sid}, {"start": {}}]));
    waiter.until_lock_refused();
    let expected = match release {
        Release::WriteThrough => {
            let written = put(&app, &sid, &json!({"user.name": "jeremy"}), Some(&token)).await;
            assert_eq!(written.status, 200, "{}", written.body);
            json!({"user.name": "jeremy"})
        }
        Release::Unlock => {
            let unlocked = unlock(&app, &sid, &token).await;
            assert_eq!(unlocked.status, 204, "{}", unlocked.body);
            json!({})
        }
    };
    let run = waiter.finish();
    let start = run.step("start");
    let attempts = start["calls"].as_array().unwrap();
    assert_eq!(attempts[0]["error"], "ConditionalCheckFailedException", "PHP waited for the API's lock");
    assert_eq!(attempts.last().unwrap()["error"], Value::Null, "then PHP took the lock: {start:#}");
    assert_clean(start);
    assert_eq!(session(start), expected, "PHP reads what the lock holder left");
    let after = raw(&app, &sid).await.unwrap();
    assert_eq!(php_lock(&after), None, "PHP's close released the lock");
    if matches!(release, Release::WriteThrough) {
        assert_eq!(stored_data(&after), encoded(start), "the write-through stored PHP's {serializer} format");
    }
}

#[tokio::test]
async fn php_waits_for_the_api_lock_until_a_write_through_php_serializer() {
    php_waits_for_the_api_lock("php", Release::WriteThrough).await;
}

#[tokio::test]
async fn php_waits_for_the_api_lock_until_a_write_through_php_serialize_serializer() {
    php_waits_for_the_api_lock("php_serialize", Release::WriteThrough).await;
}

#[tokio::test]
async fn php_waits_for_the_api_lock_until_it_is_released() {
    php_waits_for_the_api_lock("php", Release::Unlock).await;
}

// ---------------------------------------------------------------------------
// 5. PHP writes (without locking) over the API's lock: PHP's write removes
//    `lock`, which ends our lock; our old token must not write through after
//    that, nor under a later PHP lock, and our old lease must not let a
//    reader take a PHP lock over.

#[tokio::test]
async fn a_php_write_over_our_lock_voids_our_token() {
    let app = app_from_env(&locking("1")).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!({}));
    let locked = get(&app, &sid).await;
    let token = locked.lock_token.expect("a locking read returns its token");

    let run = php.run(json!([{"id": sid}, {"start": {}}, {"set": {"n": 1}}, {"write_close": true}]));
    assert_clean(run.step("start"));
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), "n|i:1;", "PHP wrote (harness check)");

    let stale = put(&app, &sid, &json!({"n": 2}), Some(&token)).await;
    assert!(
        [409, 423].contains(&stale.status),
        "a write-through with a token PHP's write ended must be refused, got {}: {}",
        stale.status,
        stale.body
    );
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), "n|i:1;", "nothing PHP wrote is lost");
    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    assert_eq!(session(run.step("start")), json!({"n": 1}));
}

#[tokio::test]
async fn a_stale_token_or_lease_never_overrides_a_php_lock() {
    let mut env = locking("2");
    env.push(("LOCK_LEASE", "1"));
    let app = app_from_env(&env).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!({}));
    let token = get(&app, &sid).await.lock_token.expect("a locking read returns its token");
    // A PHP request reads and closes: its write removes `lock` (and only that).
    assert_clean(php.run(json!([{"id": sid}, {"start": {}}])).step("start"));
    // A locking PHP request takes the lock and holds it.
    let mut holder =
        php.clone().locking(10).spawn(json!([{"id": sid}, {"start": {}}, {"wait": true}, {"set": {"n": 1}}]));
    holder.until_waiting();
    let held = raw(&app, &sid).await.unwrap();
    assert_eq!(php_lock(&held), Some(&AttributeValue::N("1".into())), "PHP holds its lock (harness check)");

    // Our old lease (1 s) runs out while this read waits (2 s): it must still wait for PHP.
    let reader = get(&app, &sid).await;
    assert_eq!(reader.status, 423, "a reader took over PHP's live lock: {}", reader.body);
    let stale = put(&app, &sid, &json!({"n": 2}), Some(&token)).await;
    assert_eq!(
        (stale.status, stale.body["error"]["code"].as_str()),
        (409, Some("lock_lost")),
        "an old token must not write through under PHP's lock: {}",
        stale.body
    );
    assert_eq!(raw(&app, &sid).await.unwrap(), held, "PHP's lock and the session are as PHP left them");

    holder.resume();
    holder.finish();
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), "n|i:1;", "the PHP request that held the lock wrote");
}

// ---------------------------------------------------------------------------
// 6. PHP's GC and ours, on one table, delete only expired, unlocked sessions.

/// Sessions of both kinds, by what GC must do with them.
struct GcSeed {
    keep: Vec<(&'static str, String)>,
    delete: Vec<(&'static str, String)>,
}

async fn seed_for_gc(app: &App) -> GcSeed {
    let php = PhpApp::new(app, "php");
    let past = now() - 60;
    let php_live = php.new_session(json!({"a": 1}));
    let php_expired = php.clone().option("session_lifetime", -60).new_session(json!({"a": 1}));
    let php_locked_expired = php.new_session(json!({"a": 1}));
    // A PHP request that died holding its lock, on a session that then expired.
    php.clone().locking(1).spawn(json!([{"id": php_locked_expired}, {"start": {}}, {"crash": true}])).finish_crashed();
    set_expires(app, &php_locked_expired, past).await;
    assert!(php_lock(&raw(app, &php_locked_expired).await.unwrap()).is_some(), "harness: PHP's lock stayed");

    let ours = |reply: Reply| reply.body["id"].as_str().unwrap().to_string();
    let ours_live = ours(create(app, &json!({"a": 1})).await);
    let ours_expired = ours(create(app, &json!({"a": 1})).await);
    set_expires(app, &ours_expired, past).await;
    let ours_locked_expired = ours(create(app, &json!({"a": 1})).await);
    assert!(get(app, &ours_locked_expired).await.lock_token.is_some(), "harness: our lock is taken");
    set_expires(app, &ours_locked_expired, past).await;
    GcSeed {
        keep: vec![
            ("live PHP session", php_live),
            ("expired PHP session under PHP's lock", php_locked_expired),
            ("live API session", ours_live),
            ("expired API session under our live lock", ours_locked_expired),
        ],
        delete: vec![("expired PHP session", php_expired), ("expired API session", ours_expired)],
    }
}

async fn assert_swept(app: &App, seed: &GcSeed, gc: &str) {
    for (what, sid) in &seed.keep {
        assert!(raw(app, sid).await.is_some(), "{gc} deleted the {what}");
    }
    for (what, sid) in &seed.delete {
        assert!(raw(app, sid).await.is_none(), "{gc} left the {what}");
    }
}

#[tokio::test]
async fn php_gc_deletes_only_expired_unlocked_sessions() {
    let app = app_from_env(&locking("1")).await;
    let seed = seed_for_gc(&app).await;
    let run = PhpApp::new(&app, "php").run(json!([{"garbage_collect": true}]));
    assert_clean(run.step("garbage_collect"));
    assert_swept(&app, &seed, "PHP's GC").await;
}

#[tokio::test]
async fn our_gc_deletes_only_expired_unlocked_sessions() {
    let app = app_from_env(&locking("1")).await;
    let seed = seed_for_gc(&app).await;
    our_gc(&app).await;
    assert_swept(&app, &seed, "our GC").await;
}

// ---------------------------------------------------------------------------
// 7. Ids: PHP's are served here, ours name the same item in PHP.

#[tokio::test]
async fn php_minted_ids_are_served_over_http() {
    let app = app_from_env(&[]).await;
    // (session.sid_bits_per_character, session.sid_length): PHP's built-in
    // default, Debian's php.ini, the widest alphabet, and the length bounds.
    for (bits, length) in [("4", 32), ("5", 26), ("6", 32), ("5", 22), ("6", 256)] {
        let php = PhpApp::new(&app, "php")
            .ini("session.sid_bits_per_character", bits)
            .ini("session.sid_length", &length.to_string());
        let three_sessions: Vec<Value> = (0..3)
            .flat_map(|_| [json!({"create_id": true}), json!({"start": {}}), json!({"write_close": true})])
            .collect();
        let run = php.run(Value::Array(three_sessions));
        for start in run.steps("start") {
            assert_clean(start);
            let sid = start["id"].as_str().unwrap();
            assert_eq!(sid.len(), length, "harness: PHP minted a {length}-character id");
            let read = get(&app, sid).await;
            assert_eq!(read.status, 200, "a PHP id ({bits} bits per character, {length} long): {}", read.body);
            assert_eq!(read.body["data"], json!({}));
            assert_eq!(delete(&app, sid).await.status, 204);
            assert!(raw(&app, sid).await.is_none(), "the API deleted the item PHP wrote (same key)");
        }
    }
}

#[tokio::test]
async fn service_minted_ids_name_the_same_item_in_php() {
    // PHP's key is trim(name . '_' . id, '_'): an id ending in '_' names
    // another item there. A base64url id ends so 1 time in 64 (100 ids: 79%),
    // and holds '_' or '-' 2 times in 3, which the check on the alphabet
    // after the PHP round catches every time.
    const IDS: usize = 100;
    let app = app_from_env(&[("DATA_FORMAT", "php")]).await;
    let mut creating = tokio::task::JoinSet::new();
    for _ in 0..IDS {
        let app = app.clone();
        creating.spawn(async move { create(&app, &json!({})).await });
    }
    let mut ids = Vec::new();
    for created in creating.join_all().await {
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.body["id"].as_str().unwrap().to_string());
    }
    let actions: Vec<Value> = ids
        .iter()
        .flat_map(|sid| [json!({"cookie": sid}), json!({"start": {}}), json!({"write_close": true})])
        .collect();
    let run = PhpApp::new(&app, "php").run(Value::Array(actions));
    let starts = run.steps("start");
    assert_eq!(starts.len(), IDS);
    let missed: Vec<String> = ids
        .iter()
        .zip(&starts)
        .filter(|(_, start)| start["calls"][0]["response"]["Item"].is_null())
        .map(|(sid, _)| format!("…{}", &sid[sid.len() - 3..]))
        .collect();
    assert!(missed.is_empty(), "PHP looked up another item for {} of {IDS} ids (ends: {missed:?})", missed.len());
    let unsafe_ids = ids.iter().filter(|sid| !sid.bytes().all(|b| b.is_ascii_alphanumeric())).count();
    assert_eq!(unsafe_ids, 0, "ids minted here must use only [A-Za-z0-9]");
}

// ---------------------------------------------------------------------------
// 8. A locking read of data no format decodes is 409 and leaves no lock:
//    a PHP request right after takes the lock at once.

#[tokio::test]
async fn an_undecodable_session_answers_409_and_leaves_no_lock() {
    let app = app_from_env(&locking("1")).await;
    let sid = "0123456789abcdefghijklmnopqrstuv";
    let config = app.store().config();
    app.store()
        .client()
        .put_item()
        .table_name(&config.table_name)
        .item(&config.hash_key, php_key(&app, sid))
        // A string length that does not match: neither PHP nor JSON reads this.
        .item(&config.data_attribute, AttributeValue::S(r#"user.name|s:60:"jeremy";"#.into()))
        .item(&config.session_lifetime_attribute, AttributeValue::N((now() + 600).to_string()))
        .send()
        .await
        .unwrap();
    let before = raw(&app, sid).await.unwrap();

    let read = get(&app, sid).await;
    assert_eq!(read.status, 409, "{}", read.body);
    assert_eq!(raw(&app, sid).await.unwrap(), before, "the refused read changed nothing and left no lock");
    let again = get(&app, sid).await;
    assert_eq!(again.status, 409, "a second locking read is refused the same way, not locked out: {}", again.body);

    let run = PhpApp::new(&app, "php").locking(1).run(json!([{"id": sid}, {"start": {}}]));
    let first_attempt = &run.step("start")["calls"][0];
    assert_eq!(first_attempt["error"], Value::Null, "PHP took the lock at once: {first_attempt:#}");
}

// ---------------------------------------------------------------------------
// 9. data_attribute_type = binary: PHP's B data is read (never as empty) and
//    a write here keeps it B and PHP's format.

#[tokio::test]
async fn binary_php_data_is_read_patched_and_kept_binary() {
    let app = app_from_env(&[("DATA_ATTRIBUTE_TYPE", "binary"), ("DATA_FORMAT", "php")]).await;
    let php = PhpApp::new(&app, "php").option("data_attribute_type", "binary");
    let sid = php.new_session(json!([["user.name", "jeremy"], ["n", 3]]));
    let item = raw(&app, &sid).await.unwrap();
    assert!(matches!(item.get("data"), Some(AttributeValue::B(_))), "harness: PHP stored B data");

    let read = get(&app, &sid).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["data"], json!({"user.name": "jeremy", "n": 3}), "B data read as it is, never as empty");
    let patched = patch(&app, &sid, &json!({"n": 4})).await;
    assert_eq!(patched.status, 200, "{}", patched.body);

    let item = raw(&app, &sid).await.unwrap();
    assert!(matches!(item.get("data"), Some(AttributeValue::B(_))), "a write here keeps data B: {item:?}");
    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    assert_clean(run.step("start"));
    assert_eq!(session(run.step("start")), json!({"user.name": "jeremy", "n": 4}));
}

// ---------------------------------------------------------------------------
// 10. PHP object injection (issue 19): what a client writes over HTTP never
//     makes PHP's session_start() build an object of the client's choosing.
//     The gadget classes (tests/php/gadgets.php) leave a file when PHP runs
//     their magic methods.

/// A fresh directory for the gadgets' files, removed at the end.
struct Gadgets(std::path::PathBuf);

impl Gadgets {
    fn new() -> Gadgets {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("php-gadgets-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Gadgets(dir)
    }

    /// The magic methods PHP ran so far.
    fn fired(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Gadgets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Payloads, each nested deep inside arrays, and the JSON Pointer of its tag.
fn injections() -> Vec<(Value, &'static str)> {
    let deep = |tag: Value| json!({"cart": {"items": [1, {"meta": [tag]}]}});
    vec![
        (deep(json!({"$php": "object", "class": "Gadget", "properties": {"cmd": "id"}})), "/cart/items/1/meta/0"),
        (deep(json!({"$php": "object", "class": "UnserializeGadget", "properties": {}})), "/cart/items/1/meta/0"),
        (deep(json!({"$php": "serializable", "class": "SerializableGadget", "data": "x"})), "/cart/items/1/meta/0"),
        (deep(json!({"$php": "enum", "class": "Suit", "case": "Hearts"})), "/cart/items/1/meta/0"),
        (json!({"a": [1, {"$php": "reference", "to": 2}]}), "/a/1"),
    ]
}

async fn a_php_object_posted_over_http_never_runs_in_php(serializer: &'static str) {
    let gadgets = Gadgets::new();
    let php = |app: &App| PhpApp::new(app, serializer).gadgets(&gadgets);

    // The hole, opened on purpose: with PHP_ALLOWED_CLASSES=* the object is
    // stored and PHP runs its magic methods (so this test can tell).
    let open = app_from_env(&[("DATA_FORMAT", serializer), ("PHP_ALLOWED_CLASSES", "*")]).await;
    let planted = create(&open, &injections()[0].0).await;
    assert_eq!(planted.status, 201, "{}", planted.body);
    let run = php(&open).run(json!([{"cookie": planted.body["id"]}, {"start": {}}]));
    assert_eq!(run.step("start")["result"], true);
    assert_eq!(gadgets.fired(), ["Gadget.__destruct", "Gadget.__wakeup"], "harness: the gadget fires when stored");
    std::fs::remove_dir_all(&gadgets.0).and_then(|_| std::fs::create_dir(&gadgets.0)).unwrap();

    // The default: refused, nothing stored for PHP to read.
    let app = app_from_env(&[("DATA_FORMAT", serializer)]).await;
    for (body, path) in injections() {
        let refused = create(&app, &body).await;
        assert_eq!((refused.status, &refused.body["error"]["code"]), (400, &json!("php_object_refused")), "{body}");
        assert_eq!(refused.body["error"]["path"], path, "{body}");
        assert_eq!(refused.body["id"], Value::Null, "no session for the attacker's cookie");
    }
    assert_eq!(fixtures_count(&app).await, 0, "nothing was stored");
    assert!(gadgets.fired().is_empty(), "{:?}", gadgets.fired());
}

async fn fixtures_count(app: &App) -> usize {
    dynamodb_sessions::emulator::fixtures::count_items(app.store()).await
}

#[tokio::test]
async fn a_php_object_posted_over_http_never_runs_in_php_php_serializer() {
    a_php_object_posted_over_http_never_runs_in_php("php").await;
}

#[tokio::test]
async fn a_php_object_posted_over_http_never_runs_in_php_php_serialize_serializer() {
    a_php_object_posted_over_http_never_runs_in_php("php_serialize").await;
}

/// PHP's own object, of a class the test PHP app does not define (it reads
/// back as `__PHP_Incomplete_Class` and is written back as it was).
const PHP_USER: &str = r#"O:4:"User":1:{s:4:"name";s:3:"ann";}"#;

async fn a_patch_never_plants_or_edits_objects_in_a_php_session(serializer: &'static str) {
    let gadgets = Gadgets::new();
    let app = app_from_env(&[]).await; // the format is PHP's, whatever DATA_FORMAT says
    let php = PhpApp::new(&app, serializer).gadgets(&gadgets);
    let run =
        php.run(json!([{"create_id": true}, {"start": {}}, {"set_serialized": {"w": PHP_USER}}, {"set": {"n": 1}}]));
    let sid = run.step("start")["id"].as_str().unwrap().to_string();
    let before = stored_data(&raw(&app, &sid).await.unwrap());
    assert!(before.contains(PHP_USER), "harness: PHP stored its object: {before}");

    let gadget = json!({"$php": "object", "class": "Gadget", "properties": {"cmd": "id"}});
    let mut patches: Vec<(Value, &str)> = injections();
    patches.push((json!({"w": {"class": "Gadget"}}), "/w"));
    patches.push((json!({"w": {"properties": {"name": gadget}}}), "/w"));
    for (body, path) in patches {
        let refused = patch(&app, &sid, &body).await;
        assert_eq!((refused.status, &refused.body["error"]["code"]), (400, &json!("php_object_refused")), "{body}");
        assert_eq!(refused.body["error"]["path"], path, "{body}");
        assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), before, "{body}: nothing written");
    }

    // A PATCH of another key, then a PUT echoing what it read: PHP's object
    // stays byte for byte.
    assert_eq!(patch(&app, &sid, &json!({"n": 2})).await.status, 200);
    let mut data = get(&app, &sid).await.body["data"].clone();
    data["n"] = json!(3);
    let echoed = put(&app, &sid, &data, None).await;
    assert_eq!(echoed.status, 200, "{}", echoed.body);
    let after = stored_data(&raw(&app, &sid).await.unwrap());
    assert!(after.contains(PHP_USER), "PHP's object kept byte for byte: {after}");

    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_eq!(start["result"], true, "{start:#}");
    assert_eq!(session(start)["n"], 3);
    let export = start["export"].as_str().unwrap();
    assert!(export.contains("__PHP_Incomplete_Class_Name' => 'User'") && export.contains("'ann'"), "{export}");
    assert!(gadgets.fired().is_empty(), "PHP ran no gadget: {:?}", gadgets.fired());
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), encoded(start), "what PHP writes back is what we kept");
}

#[tokio::test]
async fn a_patch_never_plants_or_edits_objects_in_a_php_session_php_serializer() {
    a_patch_never_plants_or_edits_objects_in_a_php_session("php").await;
}

#[tokio::test]
async fn a_patch_never_plants_or_edits_objects_in_a_php_session_php_serialize_serializer() {
    a_patch_never_plants_or_edits_objects_in_a_php_session("php_serialize").await;
}

// ---------------------------------------------------------------------------
// 11. A client takes our lock and vanishes (issue 21, item 1). PHP locks only
//     when `lock` is absent: unless the run-out lease is removed, PHP waits
//     its whole max_lock_wait_time, then starts with an empty session and its
//     write replaces the data. Our sweep and our next read remove it; a PHP
//     lock is never touched.

enum LeaseEnder {
    OurSweep,
    OurNextRead,
}

async fn an_abandoned_lease_of_ours_ends_for_php(ender: LeaseEnder) {
    let mut env = locking("1");
    env.push(("LOCK_LEASE", "1"));
    let app = app_from_env(&env).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!([["user.name", "jeremy"], ["n", 3]]));
    // A PHP request holding its lock on another session, live.
    let php_locked = "phplockedphplockedphplocked0001";
    dynamodb_sessions::emulator::fixtures::put_php_item(app.store(), php_locked, "n|i:1;", now() + 600, true).await;

    let locked = get(&app, &sid).await;
    assert!(locked.lock_token.is_some(), "the client took the lock: {}", locked.body);
    tokio::time::sleep(Duration::from_millis(1_300)).await; // past the lease; the client never comes back
    assert!(php_lock(&raw(&app, &sid).await.unwrap()).is_some(), "harness: the run-out lease is still there");
    match ender {
        LeaseEnder::OurSweep => {
            let report = app.store().delete_expired(SweepOptions::default()).await.unwrap();
            assert!(report.finished() && report.leases_ended == 1 && report.deleted == 0, "{report:?}");
        }
        LeaseEnder::OurNextRead => {
            let read = call(&app, "GET", &format!("/sessions/{sid}?read_and_close=1"), &[], None).await;
            assert_eq!(read.status, 200, "{}", read.body);
        }
    }
    assert_eq!(php_lock(&raw(&app, &sid).await.unwrap()), None, "the run-out lease is gone");
    assert_eq!(
        php_lock(&raw(&app, php_locked).await.unwrap()),
        Some(&AttributeValue::N("1".into())),
        "PHP's lock stays"
    );

    let run = php.clone().locking(1).run(json!([{"id": sid}, {"start": {}}, {"set": {"n": 4}}]));
    let start = run.step("start");
    assert_eq!(start["calls"][0]["error"], Value::Null, "PHP took the lock at once: {start:#}");
    assert_clean(start);
    assert_eq!(session(start), json!({"user.name": "jeremy", "n": 3}), "PHP gets the data, not an empty session");
    let after = raw(&app, &sid).await.unwrap();
    assert_eq!(stored_data(&after), r#"user.name|s:6:"jeremy";n|i:4;"#, "PHP's write kept the data");
    assert_eq!(php_lock(&after), None, "PHP's close released its lock");
}

#[tokio::test]
async fn an_abandoned_lease_of_ours_ends_for_php_at_our_sweep() {
    an_abandoned_lease_of_ours_ends_for_php(LeaseEnder::OurSweep).await;
}

#[tokio::test]
async fn an_abandoned_lease_of_ours_ends_for_php_at_our_next_read() {
    an_abandoned_lease_of_ours_ends_for_php(LeaseEnder::OurNextRead).await;
}

// ---------------------------------------------------------------------------
// 12. The encoding letters in a lock token are the client's copy; the item
//     binds the lock to the session's stored encoding (issue 21, item 2). A
//     token edited from PHP's format to JSON still writes PHP's format, so
//     PHP reads the data back instead of deleting the session.

async fn an_edited_token_writes_in_the_stored_format(configured_format: &'static str) {
    let mut env = locking("1");
    env.push(("DATA_FORMAT", configured_format));
    let app = app_from_env(&env).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!([["user.name", "jeremy"]]));
    let token = get(&app, &sid).await.lock_token.expect("a locking read returns its token");
    assert!(token.ends_with(".pS"), "the token names the stored format, PHP's");
    let edited = format!("{}jS", &token[..token.len() - 2]);

    let written = put(&app, &sid, &json!({"user.name": "jeremy", "n": 5}), Some(&edited)).await;
    assert_eq!(written.status, 200, "{}", written.body);
    let after = raw(&app, &sid).await.unwrap();
    assert_eq!(stored_data(&after), r#"user.name|s:6:"jeremy";n|i:5;"#, "the write kept PHP's format");
    assert_eq!(php_lock(&after), None, "the write released the lock");
    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    assert_clean(run.step("start"));
    assert_eq!(session(run.step("start")), json!({"user.name": "jeremy", "n": 5}), "PHP reads the write back");
}

#[tokio::test]
async fn an_edited_token_writes_in_the_stored_format_configured_php() {
    an_edited_token_writes_in_the_stored_format("php").await;
}

#[tokio::test]
async fn an_edited_token_writes_in_the_stored_format_configured_json() {
    // The lock is bound to PHP's format after it is taken (one more write).
    an_edited_token_writes_in_the_stored_format("json").await;
}

// ---------------------------------------------------------------------------
// 13. The in-process session layer (dynamodb-sessions-axum) on a table PHP
//     shares: a Rust route reads what PHP wrote under PHP's own id, changes
//     keys in the item's format, and creates in DATA_FORMAT; PHP reads it.
//     Under pessimistic locking each side waits for the other's lock and
//     then reads the other's write.

/// A Rust route that counts and promotes: `n` + 1 and `user.role` set.
async fn promote(session: Session) -> Result<String, SessionRejection> {
    let n = session.get::<u64>("n").await?.unwrap_or(0) + 1;
    session.insert("n", n).await?;
    session.insert("user.role", "admin").await?;
    Ok(n.to_string())
}

/// Where a Rust handler says it holds the session, and waits for its go.
#[derive(Default)]
struct Gate {
    holding: Notify,
    go: Notify,
}

/// Reads the session (taking its lock under pessimistic locking), then
/// waits for the test's go before promoting.
async fn hold_then_promote(
    session: Session,
    Extension(gate): Extension<Arc<Gate>>,
) -> Result<String, SessionRejection> {
    session.get::<Value>("n").await?;
    gate.holding.notify_one();
    gate.go.notified().await;
    promote(session).await
}

/// The Rust app: `/promote` and `/hold`, through the layer on `store`.
fn rust_app(store: &SessionStore, gate: Arc<Gate>) -> Router {
    let cookie = SessionCookie::new(&store.config().session_name, HttpSettings::default());
    Router::new()
        .route("/promote", post(promote))
        .route("/hold", post(hold_then_promote))
        .layer(SessionLayer::new(store.clone(), cookie))
        .layer(Extension(gate))
}

/// What the Rust app answered.
struct LayerReply {
    status: u16,
    body: String,
    /// The id a Set-Cookie gave, if any.
    new_id: Option<String>,
    calls: Vec<String>,
}

/// `POST path` through `app` with the session cookie `sid`.
async fn through_the_layer(app: Router, path: &'static str, sid: Option<String>) -> LayerReply {
    let mut request = axum::http::Request::builder().method("POST").uri(path);
    if let Some(sid) = sid {
        request = request.header("cookie", format!("PHPSESSID={sid}"));
    }
    let (response, calls) = counted(app.oneshot(request.body(axum::body::Body::empty()).unwrap())).await;
    let response = response.unwrap_or_else(|never| match never {});
    let new_id = response.headers().get("set-cookie").map(|header| {
        let pair = header.to_str().unwrap().split(';').next().unwrap();
        pair.strip_prefix("PHPSESSID=").expect("the session cookie").to_string()
    });
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    LayerReply { status, body: String::from_utf8(body.to_vec()).unwrap(), new_id, calls }
}

async fn promote_through_the_layer(app: &App, sid: Option<&str>) -> LayerReply {
    through_the_layer(rust_app(app.store(), Arc::default()), "/promote", sid.map(str::to_string)).await
}

async fn php_writes_the_layer_reads_and_changes_keys(serializer: &'static str) {
    let app = app_from_env(&[]).await;
    let php = PhpApp::new(&app, serializer);
    let sid = php.new_session(json!([["user.name", "jeremy"], ["n", 3]]));

    let reply = promote_through_the_layer(&app, Some(&sid)).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "4"), "the Rust route read PHP's session ({serializer})");
    assert_eq!(reply.new_id, None, "PHP's id is served as it is");
    assert_eq!(reply.calls, ["GetItem", "UpdateItem"]);

    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_clean(start);
    assert_eq!(session(start), json!({"user.name": "jeremy", "n": 4, "user.role": "admin"}));
    let stored = stored_data(&raw(&app, &sid).await.unwrap());
    assert_eq!(stored, encoded(start), "the layer's write is exactly what PHP's {serializer} serializer writes");
}

#[tokio::test]
async fn php_writes_the_layer_reads_and_changes_keys_php_serializer() {
    php_writes_the_layer_reads_and_changes_keys("php").await;
}

#[tokio::test]
async fn php_writes_the_layer_reads_and_changes_keys_php_serialize_serializer() {
    php_writes_the_layer_reads_and_changes_keys("php_serialize").await;
}

async fn the_layer_creates_and_php_reads(format: &'static str) {
    let app = app_from_env(&[("DATA_FORMAT", format)]).await;
    let reply = promote_through_the_layer(&app, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.calls, ["PutItem"], "a new session: one write");
    let sid = reply.new_id.expect("a new session's cookie");

    let run = PhpApp::new(&app, format).run(json!([{"cookie": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_clean(start);
    assert_eq!(session(start), json!({"n": 1, "user.role": "admin"}), "PHP ({format}) reads what the layer created");
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), encoded(start));
}

#[tokio::test]
async fn the_layer_creates_in_php_format_and_php_reads() {
    the_layer_creates_and_php_reads("php").await;
}

#[tokio::test]
async fn the_layer_creates_in_php_serialize_format_and_php_reads() {
    the_layer_creates_and_php_reads("php_serialize").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_php_lock_holds_off_the_layer_until_php_has_written() {
    let app = app_from_env(&locking("10")).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!([["user.name", "jeremy"], ["n", 3]]));
    let script = json!([{"id": sid}, {"start": {}}, {"wait": true}, {"set": {"n": 10}}, {"write_close": true}]);
    let mut holder = php.clone().locking(10).spawn(script);
    holder.until_waiting();

    // PHP goes on (n = 10, then its close releases the lock) just before
    // the Rust request's first look while it waits for that lock.
    let php_done = Arc::new(std::sync::Mutex::new(None));
    let hook = Hook::before("GetItem", 1, {
        let php_done = php_done.clone();
        move || async move {
            let run = tokio::task::spawn_blocking(move || {
                holder.resume();
                holder.finish()
            });
            *php_done.lock().unwrap() = Some(run.await.unwrap());
        }
    });
    let store = SessionStore::new(intercepted(app.store().client(), hook.clone()), app.config().clone());
    let reply = through_the_layer(rust_app(&store, Arc::default()), "/promote", Some(sid.clone())).await;
    assert!(hook.fired(), "the Rust request waited for PHP's lock: {:?}", reply.calls);
    assert_eq!((reply.status, reply.body.as_str()), (200, "11"), "then it read PHP's write");
    assert_clean(php_done.lock().unwrap().take().expect("PHP ran").step("start"));

    let run = php.run(json!([{"id": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_clean(start);
    assert_eq!(session(start), json!({"user.name": "jeremy", "n": 11, "user.role": "admin"}));
    let after = raw(&app, &sid).await.unwrap();
    assert_eq!((stored_data(&after), php_lock(&after)), (encoded(start), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_waits_for_the_layers_lock_and_reads_its_write() {
    // DATA_FORMAT as the PHP app's: the lock is bound to the stored format
    // as it is taken (with the default, json, one more write binds it).
    let mut env = locking("10");
    env.push(("DATA_FORMAT", "php"));
    let app = app_from_env(&env).await;
    let php = PhpApp::new(&app, "php");
    let sid = php.new_session(json!([["user.name", "jeremy"], ["n", 3]]));
    let gate = Arc::new(Gate::default());
    let rust = tokio::spawn(through_the_layer(rust_app(app.store(), gate.clone()), "/hold", Some(sid.clone())));
    gate.holding.notified().await;
    assert!(php_lock(&raw(&app, &sid).await.unwrap()).is_some(), "the Rust request holds the lock");

    // PHP gives up after 30 s; the Rust request goes on as soon as PHP is seen waiting.
    let mut waiter = php.clone().locking(30).spawn(json!([{"id": sid}, {"start": {}}]));
    waiter.until_lock_refused();
    gate.go.notify_one();
    let reply = rust.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "4"));
    assert_eq!(reply.calls, ["UpdateItem", "UpdateItem"], "the locking read, then the write-through");

    let run = tokio::task::spawn_blocking(move || waiter.finish()).await.unwrap();
    let start = run.step("start");
    let attempts = start["calls"].as_array().unwrap();
    assert_eq!(attempts[0]["error"], "ConditionalCheckFailedException", "PHP waited for the Rust request's lock");
    assert_clean(start);
    assert_eq!(session(start), json!({"user.name": "jeremy", "n": 4, "user.role": "admin"}), "PHP reads its write");
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), encoded(start), "in PHP's own format");
}

// ---------------------------------------------------------------------------
// 14. The table as a tower-sessions store: a session a tower-sessions app
//     creates on a `php`-format table is PHP's to read, under the same id
//     with `_` written `,`.

#[tokio::test]
async fn a_tower_sessions_session_on_a_php_table_is_read_by_php() {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore as _;

    let app = app_from_env(&[("DATA_FORMAT", "php")]).await;
    let store = TowerSessionsStore::new(app.store().clone());
    let Value::Object(data) = json!({"user.name": "jeremy", "n": 3}) else { unreachable!() };
    let expiry_date = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let mut record = Record { id: Id::default(), data: data.into_iter().collect(), expiry_date };
    store.create(&mut record).await.unwrap();

    let sid = tower_sessions_store::session_id(&record.id).to_string();
    let run = PhpApp::new(&app, "php").run(json!([{"id": sid}, {"start": {}}]));
    let start = run.step("start");
    assert_clean(start);
    assert_eq!(session(start), json!({"user.name": "jeremy", "n": 3}));
    assert_eq!(stored_data(&raw(&app, &sid).await.unwrap()), encoded(start), "stored in PHP's own format");
}
