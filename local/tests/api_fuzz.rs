//! Over 10,000 generated HTTP requests against the whole service, over TCP
//! (issue #8, item 7): unusual methods, the seven routes with valid, invalid,
//! huge and percent-encoded ids, dot segments and query strings, up to 16 KB
//! of random headers (cookies, `If-Match`, lock tokens, content types), and
//! random bodies (JSON, not JSON, binary, over the size limit, `$php` tags).
//! Every request must get a complete response, never a 5xx, and every 4xx
//! must carry the JSON error `{"error": {"code", "message"}}`. Sessions are
//! stored in PHP's format, and at the end none holds a PHP object, enum or
//! reference: no client can plant one for PHP to unserialize.
//!
//! The generator is seeded: a failure names the seed and the request. Every
//! request is one HTTP/1.1 parsers accept (a few lenient forms included:
//! raw UTF-8 and stray `%` in paths); what is refused below the router, such
//! as a malformed request line or over 100 headers, is hyper's, not the API's.
//!
//! Connections are reused while the server keeps them open (it closes one
//! after a request whose body it did not read whole, or that asked it to).
//! A request that finds its reused connection already closed, before a single
//! byte of answer, is sent again on a new connection, as HTTP clients do; any
//! other failure to get a complete response fails the test.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use dynamodb_sessions::emulator::fixtures::stored_php_object_tags;
use dynamodb_sessions::SessionId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sessions_local::simulator::SimulatorConfig;

/// Requests in all.
const REQUESTS: usize = 10_400;
/// Connections sending at once.
const WORKERS: usize = 8;
/// The seed of the first worker; worker `w` uses `SEED + w`.
const SEED: u64 = 0x5e55_1075;
/// Most header bytes a request carries.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most headers a request carries (hyper refuses more than 100 with 431).
const MAX_HEADERS: usize = 90;

/// What the workers share: the ids and entity tags of live sessions, learnt
/// from the answers, so generated requests address real sessions too.
#[derive(Default)]
struct Known {
    ids: Vec<String>,
    etags: Vec<String>,
}

impl Known {
    fn learn(&mut self, response: &HttpResponse) {
        if let Some(id) = response.json().and_then(|body| body["id"].as_str().map(str::to_string)) {
            if self.ids.len() < 64 {
                self.ids.push(id);
            } else {
                let at = self.ids.len() / 2;
                self.ids[at] = id;
            }
        }
        if let Some(etag) = response.header("etag") {
            if self.etags.len() < 64 {
                self.etags.push(etag.to_string());
            }
        }
    }
}

/// `choices` picked from uniformly.
fn pick<'a, T: ?Sized>(rng: &mut StdRng, choices: &[&'a T]) -> &'a T {
    choices[rng.random_range(0..choices.len())]
}

/// `len` random bytes, drawn in bulk (a debug build draws one at a time slowly).
fn bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes[..]);
    bytes
}

/// `len` characters drawn from `alphabet` (ASCII).
fn text(rng: &mut StdRng, alphabet: &[u8], len: usize) -> String {
    bytes(rng, len).into_iter().map(|b| alphabet[b as usize % alphabet.len()] as char).collect()
}

const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz,-";
/// RFC 3986 `pchar` without percent-encoding: unreserved, sub-delims, `:` and `@`.
const PCHAR: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@";

fn method(rng: &mut StdRng) -> String {
    match rng.random_range(0..100) {
        0..20 => "GET".into(),
        20..40 => "POST".into(),
        40..50 => "PUT".into(),
        50..65 => "PATCH".into(),
        65..75 => "DELETE".into(),
        75..80 => "HEAD".into(),
        80..85 => "OPTIONS".into(),
        85..88 => "TRACE".into(),
        88..95 => pick(rng, &["PROPFIND", "PURGE", "LINK", "get", "Patch", "M-SEARCH", "X-HTTP-METHOD"]).into(),
        _ => {
            let len = rng.random_range(1..16);
            text(rng, TCHAR, len)
        }
    }
}

/// A path segment where an id goes: live, unknown, malformed, huge, encoded.
fn id_segment(rng: &mut StdRng, known: &Known) -> String {
    let live = || known.ids.first().cloned().unwrap_or_else(|| SessionId::generate().to_string());
    match rng.random_range(0..100) {
        0..30 if !known.ids.is_empty() => known.ids[rng.random_range(0..known.ids.len())].clone(),
        0..45 => SessionId::generate().to_string(),
        45..55 => {
            let len = rng.random_range(0..30);
            text(rng, ID_CHARS, len)
        }
        55..62 => {
            let len = rng.random_range(257..8_000);
            text(rng, ID_CHARS, len)
        }
        // Each character percent-encoded: the same id once decoded.
        62..68 => live().bytes().map(|b| format!("%{b:02X}")).collect(),
        68..80 => {
            pick(rng, &["..", ".", "%2e%2e", "%00", "%FF%FE", "%2F", "a%2Fb", "%zz", "%", "%C3%A9t%C3%A9", "é", "~"])
                .to_string()
        }
        _ => {
            let len = rng.random_range(1..60);
            text(rng, PCHAR, len)
        }
    }
}

fn query(rng: &mut StdRng) -> String {
    match rng.random_range(0..100) {
        0..60 => String::new(),
        60..70 => "?read_and_close=1".into(),
        70..75 => {
            pick(rng, &["?read_and_close", "?read_and_close=0", "?read_and_close=false", "?read_and_close=%FF"]).into()
        }
        75..80 => pick(rng, &["?", "?&&", "?=", "?read_and_close=1&read_and_close=0", "?a[b]=c", "?%"]).into(),
        _ => {
            let len = rng.random_range(1..200);
            format!("?{}", text(rng, b"abcdefghij0123456789=&%+-._~!$'()*,;:@/?", len))
        }
    }
}

fn target(rng: &mut StdRng, known: &Known, authority: &str) -> String {
    if rng.random_range(0..200) == 0 {
        return "*".into();
    }
    let id = id_segment(rng, known);
    let mut path = match rng.random_range(0..100) {
        0..15 => "/sessions".to_string(),
        15..40 => format!("/sessions/{id}"),
        40..48 => format!("/sessions/{id}/regenerate"),
        48..55 => format!("/sessions/{id}/lock"),
        55..70 => "/session".to_string(),
        70..75 => "/session/regenerate".to_string(),
        75..80 => "/session/lock".to_string(),
        80..90 => {
            let segments = rng.random_range(0..5);
            let mut path = String::new();
            for _ in 0..segments {
                let len = rng.random_range(0..20);
                path.push('/');
                path.push_str(&text(rng, PCHAR, len));
            }
            if path.is_empty() {
                "/".to_string()
            } else {
                path
            }
        }
        _ => pick(
            rng,
            &[
                "/",
                "/sessions/",
                "/session/",
                "//sessions",
                "/./sessions",
                "/sessions/../session",
                "/SESSIONS",
                "/sessions/x/y/z",
                "/session/lock/",
                "/sessions%2Fx",
            ],
        )
        .to_string(),
    };
    // Dot segments and doubled slashes inside a route.
    if rng.random_range(0..20) == 0 {
        let at = path.rfind('/').unwrap_or(0);
        path.insert_str(at, pick(rng, &["/.", "/..", "/", "/%2e"]));
    }
    path.push_str(&query(rng));
    if rng.random_range(0..50) == 0 {
        format!("http://{authority}{path}")
    } else {
        path
    }
}

fn lock_token(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => format!("{}.{}.jS", text(rng, ID_CHARS, 22), rng.random_range(2..4_000_000_000_000u64)),
        1 => format!("{}.{}.{}", text(rng, ID_CHARS, 22), rng.random_range(0..10), text(rng, TCHAR, 2)),
        2 => String::new(),
        _ => {
            let len = rng.random_range(1..100);
            text(rng, TCHAR, len)
        }
    }
}

/// A header value: visible ASCII with inner spaces, sometimes obs-text.
fn header_value(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut value: Vec<u8> = bytes(rng, len).into_iter().map(|b| 0x20 + b % 0x5f).collect();
    if rng.random_range(0..10) == 0 && !value.is_empty() {
        let at = rng.random_range(0..value.len());
        value[at] = rng.random_range(0x80..=0xff);
    }
    value
}

/// Names the client sets itself, or that change how the connection is used.
fn reserved(name: &str) -> bool {
    ["host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te", "trailer"]
        .contains(&name.to_ascii_lowercase().as_str())
}

fn headers(rng: &mut StdRng, known: &Known) -> Vec<(String, Vec<u8>)> {
    let mut headers = Vec::new();
    let budget = rng.random_range(0..=MAX_HEADER_BYTES);
    let mut used = 0;
    let sid = |rng: &mut StdRng| match known.ids.is_empty() {
        true => SessionId::generate().to_string(),
        false => known.ids[rng.random_range(0..known.ids.len())].clone(),
    };
    if rng.random_range(0..3) > 0 {
        let content_type = pick(
            rng,
            &[
                "application/json",
                "application/json; charset=utf-8",
                "application/merge-patch+json",
                "APPLICATION/JSON",
                "text/plain",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded",
                "",
                "json",
                "application/",
            ],
        );
        headers.push(("content-type".to_string(), content_type.as_bytes().to_vec()));
    }
    if rng.random_range(0..3) == 0 {
        let cookie = match rng.random_range(0..6) {
            0 => format!("PHPSESSID={}", sid(rng)),
            1 => format!("theme=dark; PHPSESSID={}; lang=en", sid(rng)),
            2 => format!("PHPSESSID=\"{}\"", sid(rng)),
            3 => format!("PHPSESSID={}", text(rng, PCHAR, 30)),
            4 => "PHPSESSID; =; ;;".to_string(),
            _ => String::from_utf8_lossy(&header_value(rng, 200)).into_owned(),
        };
        headers.push(("cookie".to_string(), cookie.into_bytes()));
        if rng.random_range(0..4) == 0 {
            headers.push(("Cookie".to_string(), format!("PHPSESSID={}", sid(rng)).into_bytes()));
        }
    }
    if rng.random_range(0..5) == 0 {
        let if_match = match rng.random_range(0..5) {
            0 if !known.etags.is_empty() => known.etags[rng.random_range(0..known.etags.len())].clone(),
            0 | 1 => format!("\"{}\"", text(rng, b"0123456789abcdef", 24)),
            2 => "*".to_string(),
            3 => format!("W/\"{}\"", text(rng, b"0123456789abcdef", 24)),
            _ => String::from_utf8_lossy(&header_value(rng, 40)).into_owned(),
        };
        headers.push(("if-match".to_string(), if_match.into_bytes()));
    }
    if rng.random_range(0..5) == 0 {
        headers.push(("x-session-lock-token".to_string(), lock_token(rng).into_bytes()));
    }
    if rng.random_range(0..20) == 0 {
        headers.push(("connection".to_string(), b"close".to_vec()));
    }
    used += headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>();
    while headers.len() < MAX_HEADERS && used < budget {
        let name_len = rng.random_range(1..40);
        let name = text(rng, TCHAR, name_len);
        if reserved(&name) {
            continue;
        }
        let room = budget.saturating_sub(used + name.len() + 4).max(1);
        let value_len = rng.random_range(0..room.min(4_096));
        let value = header_value(rng, value_len);
        used += name.len() + value.len() + 4;
        headers.push((name, value));
    }
    headers
}

/// A `$php` tag PHP would build an object or a reference from, nested or not.
fn php_object_tag(rng: &mut StdRng) -> Value {
    let tag = match rng.random_range(0..5) {
        0 => json!({"$php": "object", "class": "Gadget", "properties": {"cmd": "id"}}),
        1 => json!({"$php": "serializable", "class": "Gadget", "data": "x"}),
        2 => json!({"$php": "enum", "class": "Suit", "case": "Hearts"}),
        3 => json!({"$php": "reference", "to": 1}),
        _ => json!({"$php": "object_reference", "to": 1}),
    };
    match rng.random_range(0..3) {
        0 => tag,
        1 => json!([1, { "deep": [tag] }]),
        _ => json!({ "a": { "b": tag } }),
    }
}

fn body(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..100) {
        0..30 => Vec::new(),
        30..55 => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.random_range(0..8) {
                let key_len = rng.random_range(0..12);
                let key = text(rng, PCHAR, key_len);
                let value = match rng.random_range(0..7) {
                    6 => php_object_tag(rng),
                    0 => Value::Null,
                    1 => json!(rng.random::<i64>()),
                    2 => json!("ünï\u{0}cødé ✓"),
                    3 => json!([1, "x", { "n": null }]),
                    4 => json!({ "nested": { "deeper": [true, 1.5] } }),
                    _ => json!(text(rng, PCHAR, 40)),
                };
                object.insert(key, value);
            }
            Value::Object(object).to_string().into_bytes()
        }
        55..62 => pick(rng, &["[1,2]", "42", "\"s\"", "null", "true", "[]"]).as_bytes().to_vec(),
        62..72 => pick(rng, &["{", "{\"a\":", "{\"a\" 1}", "{'a':1}", "{\"a\":1}}", "\u{feff}{}", "{\"a\":1,}"])
            .as_bytes()
            .to_vec(),
        72..80 => {
            let len = rng.random_range(1..300);
            bytes(rng, len)
        }
        80..83 => b"   \r\n\t ".to_vec(),
        // A tag PHP would build an object or a reference from, somewhere.
        83..85 => json!({ "seed": 1, text(rng, PCHAR, 6): php_object_tag(rng) }).to_string().into_bytes(),
        // Over the data limit, under the body limit: refused before any call.
        85..88 => json!({ "big": "x".repeat(70_000) }).to_string().into_bytes(),
        // Over the body limit.
        88..90 => {
            let len = rng.random_range(140_000..300_000);
            match rng.random_range(0..2) {
                0 => json!({ "huge": "y".repeat(len) }).to_string().into_bytes(),
                _ => bytes(rng, len),
            }
        }
        _ => {
            let len = rng.random_range(1..500);
            text(rng, TCHAR, len).into_bytes()
        }
    }
}

/// What the fuzz saw.
#[derive(Default)]
struct Seen {
    by_status: BTreeMap<u16, u64>,
    by_code: BTreeMap<String, u64>,
    /// Requests resent after finding their reused connection closed.
    resent: u64,
    /// Connections opened.
    connections: u64,
    /// Requests that broke a rule, with the request and the answer.
    broken: Vec<String>,
}

fn describe(request: &HttpRequest) -> String {
    let target: String = request.target.chars().take(120).collect();
    let headers: Vec<String> = request
        .headers
        .iter()
        .take(6)
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(&v[..v.len().min(60)])))
        .collect();
    format!(
        "{} {target} ({} headers: {headers:?}; body {} bytes: {:?})",
        request.method,
        request.headers.len(),
        request.body.len(),
        String::from_utf8_lossy(&request.body[..request.body.len().min(60)])
    )
}

/// Checks one answer against the rules; None when it keeps them.
fn broken_rule(request: &HttpRequest, response: &HttpResponse) -> Option<String> {
    if response.status >= 500 {
        return Some(format!("a {}", response.status));
    }
    if (400..500).contains(&response.status) {
        if request.method == "HEAD" {
            let json = response.header("content-type").is_some_and(|v| v.starts_with("application/json"));
            return (!json).then(|| format!("a {} to HEAD without a JSON content type", response.status));
        }
        if response.error_code().is_none() {
            return Some(format!("a {} without the JSON error body", response.status));
        }
    }
    None
}

async fn worker(service: Arc<Service>, known: Arc<Mutex<Known>>, worker: usize, requests: usize) -> Seen {
    let mut rng = StdRng::seed_from_u64(SEED + worker as u64);
    let mut seen = Seen::default();
    let authority = service.addr().to_string();
    let mut connection: Option<HttpConnection> = None;
    for n in 0..requests {
        let request = {
            let known = known.lock().unwrap();
            let mut request = HttpRequest::new(&method(&mut rng), target(&mut rng, &known, &authority));
            request.headers = headers(&mut rng, &known);
            request.body = body(&mut rng);
            request
        };
        let mut answer = None;
        for _attempt in 0..2 {
            let reused = connection.is_some();
            let mut open = match connection.take() {
                Some(open) => open,
                None => {
                    seen.connections += 1;
                    match HttpConnection::open(service.addr()).await {
                        Ok(open) => open,
                        Err(failure) => {
                            answer = Some(Err(failure));
                            break;
                        }
                    }
                }
            };
            match open.send(&request).await {
                Ok(response) => {
                    if response.keeps_alive() {
                        connection = Some(open);
                    }
                    answer = Some(Ok(response));
                    break;
                }
                // Closed by the server after the previous answer: send again.
                Err(failure) if reused && failure.received == 0 => seen.resent += 1,
                Err(failure) => {
                    answer = Some(Err(failure));
                    break;
                }
            }
        }
        match answer.expect("an attempt was made") {
            Ok(response) => {
                *seen.by_status.entry(response.status).or_default() += 1;
                if let Some(code) = response.error_code() {
                    *seen.by_code.entry(code).or_default() += 1;
                }
                if let Some(rule) = broken_rule(&request, &response) {
                    seen.broken
                        .push(format!("worker {worker} request {n}: {rule}: {} -> {response}", describe(&request)));
                }
                if (200..300).contains(&response.status) {
                    known.lock().unwrap().learn(&response);
                }
            }
            Err(failure) => {
                seen.broken.push(format!("worker {worker} request {n}: {failure}: {}", describe(&request)));
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_generated_requests_get_complete_answers_and_no_5xx() {
    let service = Arc::new(Service::start(config(&[("DATA_FORMAT", "php")]), SimulatorConfig::default()).await);
    let known = Arc::new(Mutex::new(Known::default()));
    for i in 0..8 {
        let created = service.call(&HttpRequest::new("POST", "/sessions").json(&json!({ "seed": i }))).await;
        assert_eq!(created.status, 201, "{created}");
        known.lock().unwrap().learn(&created);
    }
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        workers.spawn(worker(service.clone(), known.clone(), w, REQUESTS / WORKERS));
    }
    let mut seen = Seen::default();
    let all = async {
        while let Some(done) = workers.join_next().await {
            let part = done.expect("a worker does not panic");
            for (status, n) in part.by_status {
                *seen.by_status.entry(status).or_default() += n;
            }
            for (code, n) in part.by_code {
                *seen.by_code.entry(code).or_default() += n;
            }
            seen.resent += part.resent;
            seen.connections += part.connections;
            seen.broken.extend(part.broken);
        }
    };
    tokio::time::timeout(Duration::from_secs(600), all).await.expect("the fuzz ends");

    let answered: u64 = seen.by_status.values().sum();
    let dynamodb_requests = service.simulator.stats().requests;
    println!(
        "{answered} requests answered on {} connections ({} resent after finding their reused connection closed); {dynamodb_requests} DynamoDB requests",
        seen.connections, seen.resent
    );
    println!("by status: {:?}", seen.by_status);
    println!("by error code: {:?}", seen.by_code);
    for broken in seen.broken.iter().take(20) {
        println!("  {broken}");
    }
    assert!(
        seen.broken.is_empty(),
        "{} requests broke a rule (seed {SEED:#x}); first: {:#?}",
        seen.broken.len(),
        &seen.broken[..seen.broken.len().min(5)]
    );
    assert!(answered >= 10_000, "only {answered} requests answered");
    let items = service.items().await;
    for item in items.values() {
        let planted = stored_php_object_tags(service.direct.config(), item);
        assert!(planted.is_empty(), "a client stored PHP objects: {planted:?}");
    }
    assert!(items.len() > 8, "the fuzz created sessions: {}", items.len());
    assert!(
        dynamodb_requests < answered / 2,
        "most requests should be refused before any DynamoDB call: {dynamodb_requests} calls for {answered} requests"
    );
}
