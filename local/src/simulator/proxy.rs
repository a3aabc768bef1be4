//! The proxy: accepts connections, puts each DynamoDB request through the
//! faults and the capacity ledger, forwards it upstream (asking for
//! `ConsumedCapacity`), settles what it consumed, and answers as DynamoDB would.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::capacity::{Access, TableCapacity, Throughput};
use super::cost::{self, Demand};
use super::wire::{self, Body, DynamoError};
use super::{FaultKind, Shared, SimulatorError};

const TARGET_PREFIX: &str = "DynamoDB_20120810.";

/// The DynamoDB endpoint requests are forwarded to.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Uri,
}

/// An upstream answer, body read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    pub(crate) fn new(url: &str) -> Result<Self, SimulatorError> {
        let bad = |reason: &str| SimulatorError::Upstream { url: url.to_string(), reason: reason.to_string() };
        let base: Uri = url.trim().parse().map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if base.scheme_str() != Some("http") {
            return Err(bad(
                "only plain http is supported (the simulator edits request bodies, so it fronts emulators, not AWS)",
            ));
        }
        if base.authority().is_none() {
            return Err(bad("no host"));
        }
        if !matches!(base.path(), "" | "/") {
            return Err(bad("a path is not supported"));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self { client, base })
    }

    async fn send(&self, method: &Method, path: &str, headers: &HeaderMap, body: Bytes) -> Result<Answer, String> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.base.authority().expect("checked at start").clone())
            .path_and_query(path)
            .build()
            .map_err(|e| e.to_string())?;
        let mut request =
            Request::builder().method(method.clone()).uri(uri).body(Full::new(body)).map_err(|e| e.to_string())?;
        for (name, value) in headers {
            if !hop_by_hop(name) && name != HOST {
                request.headers_mut().append(name.clone(), value.clone());
            }
        }
        let response = self.client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION || name.as_str() == "keep-alive"
}

/// Accepts connections until the simulator is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    upstream: Upstream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let upstream = Arc::new(upstream);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, upstream.clone(), shared.clone(), stop.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// What to do with one request's connection.
enum Outcome {
    Answer(Response<Body>),
    /// Reset the connection without answering.
    Reset,
}

async fn connection(stream: TcpStream, upstream: Arc<Upstream>, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (reset, mut resets) = mpsc::channel::<()>(1);
    let service = service_fn(move |request| {
        let (upstream, shared, reset) = (upstream.clone(), shared.clone(), reset.clone());
        async move {
            match handle(&shared, &upstream, request).await {
                Outcome::Answer(response) => Ok::<_, Infallible>(response),
                Outcome::Reset => {
                    let _ = reset.send(()).await;
                    // Never answer: the connection is torn down under this request.
                    std::future::pending().await
                }
            }
        }
    });
    let mut conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = &mut conn => {}
        _ = resets.recv() => {
            // SO_LINGER 0: closing sends a TCP RST, as a dropped connection does.
            let parts = conn.into_parts();
            let _ = parts.io.inner().set_zero_linger();
        }
        _ = stop.changed() => {}
    }
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("SIMULATED{:043}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The tables a request names, each once, in order.
fn tables_named(operation: &str, body: &Map<String, Value>) -> Vec<String> {
    let mut tables: Vec<String> = match operation {
        "BatchGetItem" | "BatchWriteItem" => {
            body.get("RequestItems").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
        }
        "TransactGetItems" | "TransactWriteItems" => cost::transaction_tables(&Value::Object(body.clone())),
        _ => body.get("TableName").and_then(Value::as_str).map(|t| vec![t.to_string()]).unwrap_or_default(),
    };
    let mut seen = std::collections::HashSet::new();
    tables.retain(|t| seen.insert(t.clone()));
    tables
}

async fn handle(shared: &Shared, upstream: &Upstream, request: Request<Incoming>) -> Outcome {
    let id = request_id();
    if request.uri().path().starts_with("/__simulator") {
        return Outcome::Answer(control(shared, &request, &id));
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else { return Outcome::Reset };
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .map(str::to_string);
    let request_json = serde_json::from_slice::<Value>(&body).ok().and_then(|v| match v {
        Value::Object(map) => Some(map),
        _ => None,
    });
    match (operation, request_json) {
        (Some(operation), Some(json)) => Exchange { shared, upstream, parts, operation, json, id }.run().await,
        // Not a DynamoDB JSON request: passed through as it is.
        _ => Outcome::Answer(pass_through(upstream, &parts, body, &id).await),
    }
}

async fn pass_through(upstream: &Upstream, parts: &Parts, body: Bytes, id: &str) -> Response<Body> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match upstream.send(&parts.method, path, &parts.headers, body).await {
        Ok(answer) => relay(answer, None),
        Err(err) => wire::upstream_unreachable(&err, id),
    }
}

/// An upstream answer relayed, with `edited` as its body when the simulator changed it.
fn relay(answer: Answer, edited: Option<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(edited.clone().unwrap_or(answer.body)));
    *response.status_mut() = answer.status;
    for (name, value) in &answer.headers {
        if !hop_by_hop(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let Some(body) = edited {
        response.headers_mut().insert("x-amz-crc32", wire::crc32(&body));
    }
    response
}

fn control(shared: &Shared, request: &Request<Incoming>, id: &str) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/__simulator/stats") => {
            let body = serde_json::to_vec_pretty(&shared.snapshot()).expect("stats serialize");
            let mut response = wire::json_response(StatusCode::OK, body.into(), id);
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        (&Method::GET, "/__simulator/settings") => {
            let body = json!({"settings": shared.settings()}).to_string();
            let mut response = wire::json_response(StatusCode::OK, body.into(), id);
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        _ => {
            let body =
                json!({"message": "unknown simulator endpoint: GET /__simulator/stats or /__simulator/settings"});
            wire::json_response(StatusCode::NOT_FOUND, body.to_string().into(), id)
        }
    }
}

/// One DynamoDB request on its way through.
struct Exchange<'a> {
    shared: &'a Shared,
    upstream: &'a Upstream,
    parts: Parts,
    operation: String,
    json: Map<String, Value>,
    id: String,
}

impl Exchange<'_> {
    async fn run(mut self) -> Outcome {
        let tables = tables_named(&self.operation, &self.json);
        {
            let mut stats = self.shared.stats();
            stats.requests += 1;
            for table in &tables {
                stats.tables.entry(table.clone()).or_default().requests += 1;
            }
        }

        let decision = self.shared.faults.lock().expect("faults lock").decide(&self.operation, &tables);
        if !decision.latency.is_zero() {
            self.shared.count_fault("latency", &tables);
            tokio::time::sleep(decision.latency).await;
        }
        if let Some(fault) = decision.fault {
            let before = match fault {
                FaultKind::InternalServerError => {
                    Some(Outcome::Answer(DynamoError::InternalServerError.response(&self.id)))
                }
                FaultKind::ServiceUnavailable => {
                    Some(Outcome::Answer(DynamoError::ServiceUnavailable.response(&self.id)))
                }
                FaultKind::Throttling => Some(Outcome::Answer(DynamoError::Throttling.response(&self.id))),
                FaultKind::ProvisionedThroughputExceeded => {
                    Some(Outcome::Answer(DynamoError::ProvisionedThroughputExceeded.response(&self.id)))
                }
                FaultKind::Reset => Some(Outcome::Reset),
                FaultKind::Stall { hold } => {
                    self.shared.count_fault(fault.name(), &tables);
                    tokio::time::sleep(hold).await;
                    return Outcome::Reset;
                }
                FaultKind::AppliedLate { after } => {
                    self.shared.count_fault(fault.name(), &tables);
                    // Detached from this connection: the client gives up first.
                    let (upstream, method, headers) =
                        (self.upstream.clone(), self.parts.method.clone(), self.parts.headers.clone());
                    let path = self.parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
                    let body = Bytes::from(serde_json::to_vec(&self.json).expect("JSON serializes"));
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        if let Err(err) = upstream.send(&method, &path, &headers, body).await {
                            tracing::warn!(error = %err, "simulator: a late request did not reach the upstream");
                        }
                    });
                    tokio::time::sleep(after + Duration::from_millis(100)).await;
                    return Outcome::Reset;
                }
                _ => None,
            };
            if let Some(outcome) = before {
                self.shared.count_fault(fault.name(), &tables);
                return outcome;
            }
        }

        let demand = cost::demand(&self.operation, &Value::Object(self.json.clone()));
        if let Some(demand) = &demand {
            self.learn_billing_modes(demand).await;
            if let Err(throttled) = self.admit(demand) {
                return Outcome::Answer(self.throttled(demand, &throttled));
            }
        }

        let (added_capacity, added_old_item) = self.ask_for_what_is_metered();
        let forwarded = Bytes::from(serde_json::to_vec(&self.json).expect("JSON serializes"));
        let path = self.parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let answer = match self.upstream.send(&self.parts.method, &path, &self.parts.headers, forwarded).await {
            Ok(answer) => answer,
            Err(err) => {
                if let Some(demand) = &demand {
                    self.settle(demand, &[]);
                }
                return Outcome::Answer(wire::upstream_unreachable(&err, &self.id));
            }
        };

        let mut answer_json = serde_json::from_slice::<Value>(&answer.body).ok();
        let mut edited = false;
        if let (Some(demand), Some(body)) = (&demand, answer_json.as_mut()) {
            let consumed = self.consumed(demand, answer.status, body);
            self.settle(demand, &consumed);
            if added_capacity && body.as_object_mut().and_then(|o| o.remove("ConsumedCapacity")).is_some() {
                edited = true;
            }
            if added_old_item
                && !answer.status.is_success()
                && body.as_object_mut().and_then(|o| o.remove("Item")).is_some()
            {
                edited = true;
            }
        } else if let Some(demand) = &demand {
            // An answer that is not JSON: charged its minimum.
            self.settle(demand, &demand.tables);
        }
        if answer.status.is_success() {
            if let Some(body) = answer_json.as_mut() {
                edited |= self.follow_table_changes(body);
            }
        }

        match decision.fault {
            Some(fault @ FaultKind::InternalServerErrorAfterApplied) => {
                self.shared.count_fault(fault.name(), &tables);
                return Outcome::Answer(DynamoError::InternalServerError.response(&self.id));
            }
            Some(fault @ FaultKind::ResetAfterApplied) => {
                self.shared.count_fault(fault.name(), &tables);
                return Outcome::Reset;
            }
            _ => {}
        }
        let edited = edited.then(|| Bytes::from(serde_json::to_vec(&answer_json).expect("JSON serializes")));
        Outcome::Answer(relay(answer, edited))
    }

    /// Asks the upstream for `ConsumedCapacity` and, on conditional writes, for
    /// the item a failed condition found; returns which were added (and so are
    /// removed from the answer).
    fn ask_for_what_is_metered(&mut self) -> (bool, bool) {
        let asked =
            |json: &Map<String, Value>, key: &str| json.get(key).and_then(Value::as_str).unwrap_or("NONE") != "NONE";
        let added_capacity = cost::reports_capacity(&self.operation) && !asked(&self.json, "ReturnConsumedCapacity");
        if added_capacity {
            self.json.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
        }
        // Legacy `Expected` conditions are left alone (a failure there is charged 1 unit).
        let added_old_item = cost::is_conditional_write(&self.operation)
            && self.json.contains_key("ConditionExpression")
            && !asked(&self.json, "ReturnValuesOnConditionCheckFailure");
        if added_old_item {
            self.json.insert("ReturnValuesOnConditionCheckFailure".into(), "ALL_OLD".into());
        }
        (added_capacity, added_old_item)
    }

    /// Asks the upstream (uncounted) how tables are billed when the default
    /// capacity would apply, so `PAY_PER_REQUEST` tables stay unlimited.
    async fn learn_billing_modes(&self, demand: &Demand) {
        let unknown: Vec<String> = match self.shared.ledger().as_ref() {
            Some(ledger) => {
                demand.tables.iter().map(|(t, _)| t.clone()).filter(|t| ledger.needs_billing_mode(t)).collect()
            }
            None => return,
        };
        for table in unknown {
            let mut headers = self.parts.headers.clone();
            headers.insert("x-amz-target", HeaderValue::from_static("DynamoDB_20120810.DescribeTable"));
            let body = Bytes::from(json!({ "TableName": table }).to_string());
            let Ok(answer) = self.upstream.send(&Method::POST, "/", &headers, body).await else { continue };
            if !answer.status.is_success() {
                continue;
            }
            let described = serde_json::from_slice::<Value>(&answer.body).unwrap_or_default();
            let on_demand = described["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST";
            let now = self.shared.clock.now();
            if let Some(ledger) = self.shared.ledger().as_mut() {
                ledger.note_billing_mode(&table, on_demand, now);
            }
        }
    }

    /// Debits each table's minimum, or refuses with the tables that had no credit.
    fn admit(&self, demand: &Demand) -> Result<(), Vec<String>> {
        let now = self.shared.clock.now();
        let mut ledger = self.shared.ledger();
        let Some(ledger) = ledger.as_mut() else { return Ok(()) };
        let (mut admitted, mut throttled) = (Vec::new(), Vec::new());
        for (table, minimum) in &demand.tables {
            if ledger.admit(table, demand.access, *minimum, now) {
                admitted.push((table, *minimum));
            } else {
                throttled.push(table.clone());
            }
        }
        if throttled.is_empty() {
            return Ok(());
        }
        for (table, minimum) in admitted {
            ledger.charge(table, demand.access, -minimum, now);
        }
        Err(throttled)
    }

    fn throttled(&self, demand: &Demand, throttled: &[String]) -> Response<Body> {
        {
            let mut stats = self.shared.stats();
            for table in throttled {
                let entry = stats.tables.entry(table.clone()).or_default();
                match demand.access {
                    Access::Read => entry.throttled_reads += 1,
                    Access::Write => entry.throttled_writes += 1,
                }
            }
        }
        if demand.transaction {
            let actions = cost::transaction_tables(&Value::Object(self.json.clone()));
            wire::transaction_throttled(&actions, throttled, &self.id)
        } else {
            DynamoError::ProvisionedThroughputExceeded.response(&self.id)
        }
    }

    /// What the request consumed, per table, by the rules in [`cost`].
    fn consumed(&self, demand: &Demand, status: StatusCode, answer: &Value) -> Vec<(String, f64)> {
        if status.is_success() {
            // An upstream that does not report capacity: the minimum.
            return cost::consumed(answer).unwrap_or_else(|| demand.tables.clone());
        }
        let error = answer.get("__type").and_then(Value::as_str).unwrap_or_default();
        if cost::is_conditional_write(&self.operation) && error.ends_with("ConditionalCheckFailedException") {
            // DynamoDB charges a failed condition the existing item's size in
            // write units (1 when there is none); the answer carries no
            // ConsumedCapacity, so it is sized here from the old item.
            let units = answer
                .get("Item")
                .and_then(Value::as_object)
                .map_or(1.0, |item| cost::write_units(cost::item_size(item)));
            return demand.tables.iter().map(|(table, _)| (table.clone(), units)).collect();
        }
        Vec::new()
    }

    /// Settles the minimum debited at admission to what was `consumed`.
    fn settle(&self, demand: &Demand, consumed: &[(String, f64)]) {
        let now = self.shared.clock.now();
        for (table, minimum) in &demand.tables {
            let used: f64 = consumed.iter().filter(|(t, _)| t == table).map(|(_, units)| units).sum();
            if let Some(ledger) = self.shared.ledger().as_mut() {
                ledger.charge(table, demand.access, used - minimum, now);
            }
            self.shared.count_consumed(table, demand.access, used);
        }
    }

    /// Keeps the ledger in step with CreateTable/UpdateTable/DeleteTable through
    /// the simulator, and makes DescribeTable report the simulated capacity.
    /// Returns whether the answer was edited.
    fn follow_table_changes(&self, answer: &mut Value) -> bool {
        let Some(table) = self.json.get("TableName").and_then(Value::as_str) else { return false };
        let now = self.shared.clock.now();
        let mut ledger = self.shared.ledger();
        let Some(ledger) = ledger.as_mut() else { return false };
        match self.operation.as_str() {
            "CreateTable" | "UpdateTable" => {
                if self.operation == "CreateTable" {
                    ledger.forget(table);
                }
                if let Some(declared) = declared_capacity(&self.json) {
                    ledger.declare(table, declared, now);
                }
                false
            }
            "DeleteTable" => {
                ledger.forget(table);
                false
            }
            "DescribeTable" => match ledger.capacity(table) {
                Some(capacity) => describe_as(answer, capacity),
                None => false,
            },
            _ => false,
        }
    }
}

/// The capacity a CreateTable/UpdateTable request declares, if it does.
fn declared_capacity(request: &Map<String, Value>) -> Option<TableCapacity> {
    if request.get("BillingMode").and_then(Value::as_str) == Some("PAY_PER_REQUEST") {
        return Some(TableCapacity::OnDemand);
    }
    let throughput = request.get("ProvisionedThroughput")?;
    let units = |key: &str| throughput.get(key)?.as_u64().and_then(|n| u32::try_from(n).ok());
    Some(TableCapacity::Provisioned(Throughput::new(units("ReadCapacityUnits")?, units("WriteCapacityUnits")?)))
}

/// Rewrites a DescribeTable answer to report `capacity`.
fn describe_as(answer: &mut Value, capacity: TableCapacity) -> bool {
    let Some(table) = answer.get_mut("Table").and_then(Value::as_object_mut) else { return false };
    let (read, write, mode) = match capacity {
        TableCapacity::Provisioned(t) => (t.read, t.write, "PROVISIONED"),
        TableCapacity::OnDemand => (0, 0, "PAY_PER_REQUEST"),
    };
    let throughput = table.entry("ProvisionedThroughput").or_insert_with(|| json!({}));
    if let Some(throughput) = throughput.as_object_mut() {
        throughput.insert("ReadCapacityUnits".into(), read.into());
        throughput.insert("WriteCapacityUnits".into(), write.into());
    }
    let summary = table.entry("BillingModeSummary").or_insert_with(|| json!({}));
    if let Some(summary) = summary.as_object_mut() {
        summary.insert("BillingMode".into(), mode.into());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_capacity_reads_provisioned_throughput_or_pay_per_request() {
        let provisioned = json!({"ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}});
        assert_eq!(
            declared_capacity(provisioned.as_object().unwrap()),
            Some(TableCapacity::Provisioned(Throughput::new(3, 4)))
        );
        let on_demand = json!({"BillingMode": "PAY_PER_REQUEST"});
        assert_eq!(declared_capacity(on_demand.as_object().unwrap()), Some(TableCapacity::OnDemand));
        assert_eq!(declared_capacity(json!({"TableName": "t"}).as_object().unwrap()), None);
    }

    #[test]
    fn describe_table_reports_the_simulated_capacity() {
        let mut answer = json!({"Table": {"TableName": "t", "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5, "NumberOfDecreasesToday": 0}}});
        assert!(describe_as(&mut answer, TableCapacity::Provisioned(Throughput::new(1, 2))));
        assert_eq!(answer["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"], 1);
        assert_eq!(answer["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"], 2);
        assert_eq!(answer["Table"]["ProvisionedThroughput"]["NumberOfDecreasesToday"], 0);
        assert!(describe_as(&mut answer, TableCapacity::OnDemand));
        assert_eq!(answer["Table"]["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(answer["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"], 0);
    }

    #[test]
    fn upstream_urls_must_be_plain_http() {
        assert!(Upstream::new("http://127.0.0.1:8000").is_ok());
        assert!(Upstream::new("http://localhost:8000/").is_ok());
        for bad in ["https://dynamodb.us-east-1.amazonaws.com", "127.0.0.1:8000", "http://host:1/x", "not a url"] {
            assert!(matches!(Upstream::new(bad), Err(SimulatorError::Upstream { .. })), "{bad}");
        }
    }
}
