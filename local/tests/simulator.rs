//! The DynamoDB simulator in front of a real emulator (dynoxide over HTTP),
//! driven with the real AWS SDK client: DynamoDB's capacity numbers, throttling
//! as DynamoDB answers it, and each fault as the SDK sees it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput, Put,
    PutRequest, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TransactWriteItem,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use dynamodb_sessions::emulator;
use sessions_local::simulator::{
    CapacityConfig, FaultConfig, FaultKind, FaultRule, InitialCredit, RunningSimulator, Simulator, SimulatorConfig,
    TableCapacity, Throughput,
};

/// One dynoxide emulator for the whole test binary; every test has its own tables.
fn upstream() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(emulator::start_in_background)
}

fn table_name(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn start(config: SimulatorConfig) -> RunningSimulator {
    Simulator::start(upstream(), config).await.expect("the simulator starts")
}

/// An SDK client that makes exactly one attempt per call.
fn one_attempt(url: &str) -> Client {
    with(url, |b| b.retry_config(RetryConfig::disabled()))
}

fn with(
    url: &str,
    customize: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
) -> Client {
    Client::from_conf(customize(emulator::client(url).config().to_builder()).build())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// Creates a table keyed by `id` (a string), provisioned `read`/`write`, or on demand.
async fn create_table(client: &Client, name: &str, capacity: Option<(i64, i64)>) {
    let mut request = client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap());
    request = match capacity {
        Some((read, write)) => request.provisioned_throughput(
            ProvisionedThroughput::builder().read_capacity_units(read).write_capacity_units(write).build().unwrap(),
        ),
        None => request.billing_mode(BillingMode::PayPerRequest),
    };
    request.send().await.expect("the table is created");
}

/// An item keyed `id` whose DynamoDB size is exactly `bytes`: "id" + the key,
/// plus "pad" + a string filling the rest.
fn item_of_size(id: &str, bytes: usize) -> std::collections::HashMap<String, AttributeValue> {
    let fixed = "id".len() + id.len() + "pad".len();
    assert!(bytes >= fixed, "{bytes} bytes cannot hold the key");
    [("id".to_string(), s(id)), ("pad".to_string(), s(&"x".repeat(bytes - fixed)))].into()
}

async fn put(client: &Client, table: &str, id: &str, bytes: usize) {
    client.put_item().table_name(table).set_item(Some(item_of_size(id, bytes))).send().await.expect("put");
}

/// Read and write units the simulator charged `table` while `f` ran.
async fn charged<F: std::future::Future>(sim: &RunningSimulator, table: &str, f: F) -> (f64, f64) {
    let before = sim.stats().table(table);
    f.await;
    let after = sim.stats().table(table);
    (after.read_units - before.read_units, after.write_units - before.write_units)
}

// ---------------------------------------------------------------------------
// Capacity numbers, by DynamoDB's rules
// ---------------------------------------------------------------------------

#[tokio::test]
async fn capacity_get_item_is_charged_per_4kb_and_half_when_eventually_consistent() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("get");
    create_table(&client, &table, Some((5, 5))).await;
    put(&client, &table, "small", 1000).await;
    put(&client, &table, "big", 5 * 1024).await;

    let get = |id: &'static str, consistent: bool| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client.get_item().table_name(&table).key("id", s(id)).consistent_read(consistent).send().await.expect("get")
        }
    };
    assert_eq!(charged(&sim, &table, get("small", true)).await, (1.0, 0.0));
    assert_eq!(charged(&sim, &table, get("small", false)).await, (0.5, 0.0));
    assert_eq!(charged(&sim, &table, get("big", true)).await, (2.0, 0.0), "5 KB: two 4 KB units");
    assert_eq!(charged(&sim, &table, get("big", false)).await, (1.0, 0.0));
    assert_eq!(charged(&sim, &table, get("missing", true)).await, (1.0, 0.0), "a miss still costs the minimum");
    assert_eq!(charged(&sim, &table, get("missing", false)).await, (0.5, 0.0));

    // ConsumedCapacity is the simulator's to ask for: a client that did not
    // ask gets none, one that did gets DynamoDB's figure.
    let plain = get("big", true).await;
    assert!(plain.consumed_capacity().is_none());
    let asked = client
        .get_item()
        .table_name(&table)
        .key("id", s("big"))
        .consistent_read(true)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.consumed_capacity().and_then(|c| c.capacity_units()), Some(2.0));
}

#[tokio::test]
async fn capacity_writes_are_charged_per_kb_on_the_larger_of_before_and_after() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("put");
    create_table(&client, &table, Some((5, 5))).await;

    assert_eq!(charged(&sim, &table, put(&client, &table, "a", 1024)).await, (0.0, 1.0), "exactly 1 KB");
    assert_eq!(charged(&sim, &table, put(&client, &table, "b", 2560)).await, (0.0, 3.0), "2.5 KB: three units");
    assert_eq!(
        charged(&sim, &table, put(&client, &table, "b", 100)).await,
        (0.0, 3.0),
        "shrinking pays for the old item"
    );
    let grow = client
        .update_item()
        .table_name(&table)
        .key("id", s("a"))
        .update_expression("SET more = :m")
        .expression_attribute_values(":m", s(&"y".repeat(2000)))
        .send();
    assert_eq!(charged(&sim, &table, async { grow.await.unwrap() }).await, (0.0, 3.0), "1 KB grown to 3 KB");
    let delete = client.delete_item().table_name(&table).key("id", s("a")).send();
    assert_eq!(
        charged(&sim, &table, async { delete.await.unwrap() }).await,
        (0.0, 3.0),
        "a delete pays for the old item"
    );
    let delete_missing = client.delete_item().table_name(&table).key("id", s("nothing")).send();
    assert_eq!(charged(&sim, &table, async { delete_missing.await.unwrap() }).await, (0.0, 1.0));
}

#[tokio::test]
async fn capacity_a_failed_conditional_write_still_pays_for_the_existing_item() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("cond");
    create_table(&client, &table, Some((5, 5))).await;
    put(&client, &table, "big", 2560).await;

    let failing_update = |id: &'static str| {
        client
            .update_item()
            .table_name(&table)
            .key("id", s(id))
            .update_expression("SET v = :v")
            .condition_expression("attribute_not_exists(id) OR v = :other")
            .expression_attribute_values(":v", s("new"))
            .expression_attribute_values(":other", s("never"))
            .send()
    };
    let (_, units) = charged(&sim, &table, async {
        let err = failing_update("big").await.unwrap_err();
        assert_eq!(err.code(), Some("ConditionalCheckFailedException"));
        // The simulator asked for the old item to size it; the client did not.
        let aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed) =
            err.into_service_error()
        else {
            panic!("not a failed condition")
        };
        assert!(failed.item().is_none());
    })
    .await;
    assert_eq!(units, 3.0, "a 2.5 KB item: three units, though nothing was written");

    // A condition that fails on a missing item: one unit.
    let (_, units) = charged(&sim, &table, async {
        let err = client
            .put_item()
            .table_name(&table)
            .set_item(Some(item_of_size("ghost", 5000)))
            .condition_expression("attribute_exists(id)")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ConditionalCheckFailedException"));
    })
    .await;
    assert_eq!(units, 1.0);

    // A client that asks for the old item still gets it.
    let err = client
        .update_item()
        .table_name(&table)
        .key("id", s("big"))
        .update_expression("SET v = :v")
        .condition_expression("attribute_not_exists(id)")
        .expression_attribute_values(":v", s("new"))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err();
    let aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(old) =
        err.into_service_error()
    else {
        panic!("not a failed condition")
    };
    assert_eq!(old.item().and_then(|i| i.get("id")), Some(&s("big")));
}

#[tokio::test]
async fn capacity_transactions_cost_double() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("tx");
    create_table(&client, &table, Some((5, 5))).await;
    let put_of = |id: &str, bytes| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&table).set_item(Some(item_of_size(id, bytes))).build().unwrap())
            .build()
    };
    let transaction =
        client.transact_write_items().transact_items(put_of("one", 1000)).transact_items(put_of("three", 2500)).send();
    let (_, units) = charged(&sim, &table, async { transaction.await.unwrap() }).await;
    assert_eq!(units, 2.0 * (1.0 + 3.0));
}

#[tokio::test]
async fn capacity_scan_is_charged_by_the_bytes_scanned_per_page() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("scan");
    create_table(&client, &table, Some((5, 5))).await;
    for i in 0..10 {
        put(&client, &table, &format!("item-{i}"), 1000).await;
    }
    // 10 000 bytes scanned: 3 units of 4 KB, halved for an eventually consistent scan.
    let scan = client.scan().table_name(&table).send();
    let (units, _) = charged(&sim, &table, async { assert_eq!(scan.await.unwrap().count(), 10) }).await;
    assert_eq!(units, 1.5);
    let strong = client.scan().table_name(&table).consistent_read(true).send();
    assert_eq!(charged(&sim, &table, async { strong.await.unwrap() }).await.0, 3.0);
    // A filter that returns nothing still reads everything.
    let filtered = client
        .scan()
        .table_name(&table)
        .consistent_read(true)
        .filter_expression("id = :none")
        .expression_attribute_values(":none", s("none"))
        .send();
    let (units, _) = charged(&sim, &table, async { assert_eq!(filtered.await.unwrap().count(), 0) }).await;
    assert_eq!(units, 3.0);
    // A page of 5 items: 5 000 bytes, 2 units.
    let page = client.scan().table_name(&table).consistent_read(true).limit(5).send();
    assert_eq!(charged(&sim, &table, async { page.await.unwrap() }).await.0, 2.0);
}

#[tokio::test]
async fn capacity_batch_writes_are_charged_per_item() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("batch");
    create_table(&client, &table, Some((5, 5))).await;
    let request = |id: &str, bytes| {
        WriteRequest::builder()
            .put_request(PutRequest::builder().set_item(Some(item_of_size(id, bytes))).build().unwrap())
            .build()
    };
    let batch = client
        .batch_write_item()
        .request_items(&table, vec![request("a", 500), request("b", 1500), request("c", 2500)])
        .send();
    let (_, units) =
        charged(&sim, &table, async { assert!(batch.await.unwrap().unprocessed_items().is_none_or(|u| u.is_empty())) })
            .await;
    assert_eq!(units, 1.0 + 2.0 + 3.0, "each item rounded up on its own");
}

#[tokio::test]
async fn capacity_reads_of_several_items_round_each_item_or_each_page() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("reads");
    create_table(&client, &table, Some((5, 5))).await;
    put(&client, &table, "a", 1500).await;
    put(&client, &table, "b", 6500).await;

    // BatchGetItem: each item rounded up on its own (4 KB + 8 KB), not the sum (8 KB).
    let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
        .keys([("id".to_string(), s("a"))].into())
        .keys([("id".to_string(), s("b"))].into())
        .consistent_read(true)
        .build()
        .unwrap();
    let batch = client.batch_get_item().request_items(&table, keys).send();
    assert_eq!(charged(&sim, &table, async { batch.await.unwrap() }).await, (3.0, 0.0));

    // A projection returns less but reads the whole item.
    let projected =
        client.get_item().table_name(&table).key("id", s("b")).projection_expression("id").consistent_read(true).send();
    assert_eq!(charged(&sim, &table, async { projected.await.unwrap() }).await, (2.0, 0.0));

    // Query: the item it reads, by 4 KB.
    let query = client
        .query()
        .table_name(&table)
        .key_condition_expression("id = :id")
        .expression_attribute_values(":id", s("b"))
        .consistent_read(true)
        .send();
    assert_eq!(charged(&sim, &table, async { query.await.unwrap() }).await, (2.0, 0.0));

    // TransactGetItems: twice a strongly consistent read, per item.
    let get = |id: &str| {
        aws_sdk_dynamodb::types::TransactGetItem::builder()
            .get(aws_sdk_dynamodb::types::Get::builder().table_name(&table).key("id", s(id)).build().unwrap())
            .build()
    };
    let transaction = client.transact_get_items().transact_items(get("a")).transact_items(get("b")).send();
    assert_eq!(charged(&sim, &table, async { transaction.await.unwrap() }).await, (2.0 * (1.0 + 2.0), 0.0));
}

/// Items of every attribute type, sized by DynamoDB's rules to `bytes`.
fn rich_item(id: &str, bytes: usize) -> std::collections::HashMap<String, AttributeValue> {
    use aws_sdk_dynamodb::primitives::Blob;
    let mut item: std::collections::HashMap<String, AttributeValue> = [
        ("id".to_string(), s(id)),                                      // 2 + len(id)
        ("n".to_string(), AttributeValue::N("-123.4500".into())),       // 1 + (2 + 1 + 1 + 1) = 6
        ("b".to_string(), AttributeValue::B(Blob::new(vec![0u8; 10]))), // 1 + 10
        ("t".to_string(), AttributeValue::Bool(true)),                  // 1 + 1
        ("z".to_string(), AttributeValue::Null(true)),                  // 1 + 1
        ("l".to_string(), AttributeValue::L(vec![s("ab"), AttributeValue::N("7".into())])), // 1 + 3 + 3 + 3
        ("m".to_string(), AttributeValue::M([("k".to_string(), s("v"))].into())), // 1 + 3 + 3
        ("ss".to_string(), AttributeValue::Ss(vec!["a".into(), "bc".into()])), // 2 + 3
        ("ns".to_string(), AttributeValue::Ns(vec!["1".into(), "22".into()])), // 2 + 2 + 2
    ]
    .into();
    let fixed = 2 + id.len() + 6 + 11 + 2 + 2 + 10 + 7 + 5 + 6 + "pad".len();
    item.insert("pad".to_string(), s(&"x".repeat(bytes - fixed)));
    item
}

#[tokio::test]
async fn capacity_the_simulators_item_sizes_agree_with_the_upstreams() {
    // The simulator sizes items itself only for failed conditional writes; at a
    // KB boundary, for every attribute type, its figure must match the
    // upstream's for the same item.
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("sizes");
    create_table(&client, &table, Some((5, 5))).await;
    for (id, bytes, units) in [("at", 2048, 2.0), ("over", 2049, 3.0)] {
        let write = client.put_item().table_name(&table).set_item(Some(rich_item(id, bytes))).send();
        assert_eq!(charged(&sim, &table, async { write.await.unwrap() }).await.1, units, "upstream, {bytes} bytes");
        let refused = client
            .put_item()
            .table_name(&table)
            .set_item(Some(rich_item(id, 100)))
            .condition_expression("attribute_not_exists(id)")
            .send();
        let (_, computed) = charged(&sim, &table, async { refused.await.unwrap_err() }).await;
        assert_eq!(computed, units, "simulator, {bytes} bytes");
    }
}

// ---------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------

/// Capacity `read`/`write` on every table, no burst, empty buckets, a clock
/// that moves only when the test says.
fn strict(read: u32, write: u32) -> SimulatorConfig {
    SimulatorConfig::default()
        .capacity(
            CapacityConfig::new(Throughput::new(read, write)).burst_seconds(0).initial_credit(InitialCredit::Empty),
        )
        .manual_clock()
}

/// How many of `n` one-attempt small (1 WCU) writes get through, asserting
/// every refusal is DynamoDB's throttling error.
async fn writes_accepted(client: &Client, table: &str, n: usize) -> usize {
    writes_of_size_accepted(client, table, n, 100).await
}

async fn writes_of_size_accepted(client: &Client, table: &str, n: usize, bytes: usize) -> usize {
    let mut accepted = 0;
    for i in 0..n {
        match client.put_item().table_name(table).set_item(Some(item_of_size(&format!("w{i}"), bytes))).send().await {
            Ok(_) => accepted += 1,
            Err(err) => assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"), "{err:?}"),
        }
    }
    accepted
}

#[tokio::test]
async fn throttling_answers_as_dynamodb_once_the_units_are_spent() {
    let sim = start(strict(5, 5)).await;
    let client = one_attempt(&sim.url());
    let table = table_name("spent");
    create_table(&client, &table, Some((5, 5))).await;

    let err = client.put_item().table_name(&table).set_item(Some(item_of_size("x", 100))).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"));
    assert!(err.message().unwrap().contains("provisioned throughput for the table was exceeded"), "{err:?}");
    let raw = err.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 400);

    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(writes_accepted(&client, &table, 8).await, 5, "one second at 5 WCU");
    sim.advance_clock(Duration::from_secs(2));
    assert_eq!(writes_accepted(&client, &table, 15).await, 5, "no burst: idle time beyond a second is lost");

    // Reads have their own bucket: spending writes leaves reads alone.
    sim.advance_clock(Duration::from_secs(1));
    let read = client.get_item().table_name(&table).key("id", s("w0")).consistent_read(true).send().await;
    assert!(read.is_ok(), "{read:?}");
    let stats = sim.stats().table(&table);
    assert_eq!(stats.throttled_writes, 1 + 3 + 10);
    assert_eq!(stats.throttled_reads, 0);
    assert_eq!(stats.capacity.as_deref(), Some("5/5"));
}

#[tokio::test]
async fn throttling_the_sdk_retries_a_throttled_request_as_throttling() {
    let sim = start(strict(5, 5)).await;
    let table = table_name("retried");
    create_table(&one_attempt(&sim.url()), &table, Some((5, 5))).await;
    let retrying = with(&sim.url(), |b| {
        b.retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
    });
    let err = retrying.put_item().table_name(&table).set_item(Some(item_of_size("x", 100))).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"));
    let stats = sim.stats();
    assert_eq!(stats.table(&table).throttled_writes, 3, "the SDK tried three times");

    // Capacity coming back mid-retry: the retry succeeds.
    sim.set_faults("ptee=1:times=2:op=PutItem".parse().unwrap()).unwrap();
    sim.set_capacity(&table, TableCapacity::OnDemand);
    retrying.put_item().table_name(&table).set_item(Some(item_of_size("y", 100))).send().await.expect("third attempt");
    assert_eq!(sim.stats().faults_of("ptee"), 2);
}

#[tokio::test]
async fn throttling_keeps_the_accepted_rate_within_the_provisioned_rate() {
    // Real time: a tight loop for about two seconds at 5 WCU, no burst, empty
    // buckets. Counts are asserted with margins; no elapsed time of our own.
    let config = SimulatorConfig::default()
        .capacity(CapacityConfig::new(Throughput::new(5, 5)).burst_seconds(0).initial_credit(InitialCredit::Empty));
    let sim = start(config).await;
    let client = one_attempt(&sim.url());
    let table = table_name("rate");
    // Started before the table exists, so every unit its bucket ever gets was made within the window.
    let started = Instant::now();
    create_table(&client, &table, Some((5, 5))).await;
    let (mut accepted, mut throttled) = (0u32, 0u32);
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        i += 1;
        match client.put_item().table_name(&table).set_item(Some(item_of_size(&format!("r{i}"), 100))).send().await {
            Ok(_) => accepted += 1,
            Err(err) => {
                assert_eq!(err.code(), Some("ProvisionedThroughputExceededException"));
                throttled += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let ceiling = (5.0 * seconds).floor() as u32 + 2;
    assert!(accepted <= ceiling, "{accepted} writes in {seconds:.2}s at 5 WCU (at most {ceiling})");
    assert!(accepted >= 4, "the provisioned rate is served: {accepted} in {seconds:.2}s");
    assert!(throttled > accepted, "a tight loop outruns 5 WCU: {throttled} throttled");
    assert_eq!(sim.stats().table(&table).throttled_writes, u64::from(throttled));
}

#[tokio::test]
async fn throttling_burst_credit_accumulates_while_idle_up_to_300_seconds() {
    let config = SimulatorConfig::default()
        .capacity(CapacityConfig::new(Throughput::new(1, 1)).initial_credit(InitialCredit::Empty))
        .manual_clock();
    let sim = start(config).await;
    let client = one_attempt(&sim.url());
    let table = table_name("burst");
    create_table(&client, &table, Some((1, 1))).await;
    sim.advance_clock(Duration::from_secs(10));
    assert_eq!(writes_accepted(&client, &table, 12).await, 10, "ten idle seconds at 1 WCU");
    sim.advance_clock(Duration::from_secs(3600));
    // 10 KB writes, 10 WCU each: 30 of them spend 300 units.
    assert_eq!(writes_of_size_accepted(&client, &table, 35, 10 * 1024).await, 30, "an idle hour keeps 300 s worth");
}

#[tokio::test]
async fn throttling_a_large_write_leaves_the_bucket_in_debt() {
    let sim = start(strict(5, 5)).await;
    let client = one_attempt(&sim.url());
    let table = table_name("debt");
    create_table(&client, &table, Some((5, 5))).await;
    sim.advance_clock(Duration::from_secs(1));
    put(&client, &table, "big", 20 * 1024).await; // 20 WCU against 5 of credit
    assert_eq!(sim.stats().table(&table).write_credit, Some(-15.0));
    sim.advance_clock(Duration::from_secs(3));
    assert_eq!(writes_accepted(&client, &table, 1).await, 0, "3 s repay 15 units: still nothing");
    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(writes_accepted(&client, &table, 10).await, 5);
}

#[tokio::test]
async fn throttling_a_transaction_is_cancelled_not_retried() {
    let sim = start(strict(5, 5)).await;
    let table = table_name("txthrottle");
    create_table(&one_attempt(&sim.url()), &table, Some((5, 5))).await;
    let client = with(&sim.url(), |b| b.retry_config(RetryConfig::standard().with_max_attempts(3)));
    let put_of = |id: &str| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&table).set_item(Some(item_of_size(id, 100))).build().unwrap())
            .build()
    };
    let before = sim.stats().table(&table).requests;
    let err =
        client.transact_write_items().transact_items(put_of("a")).transact_items(put_of("b")).send().await.unwrap_err();
    assert_eq!(err.code(), Some("TransactionCanceledException"));
    let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
        cancelled,
    ) = err.into_service_error()
    else {
        panic!("not a cancelled transaction")
    };
    let codes: Vec<_> = cancelled.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
    assert_eq!(codes, ["ProvisionedThroughputExceeded", "ProvisionedThroughputExceeded"]);
    assert_eq!(sim.stats().table(&table).requests - before, 1, "the SDK does not retry a cancelled transaction");
}

#[tokio::test]
async fn throttling_spares_on_demand_tables_and_describe_table_reports_the_simulated_capacity() {
    let sim = start(strict(1, 1)).await;
    let client = one_attempt(&sim.url());

    let on_demand = table_name("ondemand");
    create_table(&client, &on_demand, None).await;
    assert_eq!(writes_accepted(&client, &on_demand, 20).await, 20, "PAY_PER_REQUEST is never throttled");
    let described = client.describe_table().table_name(&on_demand).send().await.unwrap();
    let billing = described.table().and_then(|t| t.billing_mode_summary()).and_then(|b| b.billing_mode());
    assert_eq!(billing, Some(&BillingMode::PayPerRequest));

    // Created through the simulator: what it asked for.
    let asked = table_name("asked");
    create_table(&client, &asked, Some((3, 4))).await;
    let throughput = |t: &aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput| {
        let p = t.table().and_then(|t| t.provisioned_throughput()).unwrap();
        (p.read_capacity_units(), p.write_capacity_units())
    };
    assert_eq!(throughput(&client.describe_table().table_name(&asked).send().await.unwrap()), (Some(3), Some(4)));

    // Created behind the simulator's back with 5/5: the default, 1/1.
    let direct = emulator::client(upstream());
    let behind = table_name("behind");
    create_table(&direct, &behind, Some((5, 5))).await;
    assert_eq!(throughput(&client.describe_table().table_name(&behind).send().await.unwrap()), (Some(1), Some(1)));
    // ... and unlimited if it is PAY_PER_REQUEST upstream.
    let behind_on_demand = table_name("behindod");
    create_table(&direct, &behind_on_demand, None).await;
    assert_eq!(writes_accepted(&client, &behind_on_demand, 5).await, 5);

    // Set at run time: reported and enforced.
    sim.set_capacity(&behind, TableCapacity::Provisioned(Throughput::new(11, 12)));
    assert_eq!(throughput(&client.describe_table().table_name(&behind).send().await.unwrap()), (Some(11), Some(12)));
    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(writes_accepted(&client, &behind, 20).await, 12);
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

/// What one call came back with, as a test can compare it.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Ok,
    Service { status: u16, code: String },
    Dispatch,
    Timeout,
    Other(String),
}

fn seen<O, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<O, SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
) -> Seen {
    match result {
        Ok(_) => Seen::Ok,
        Err(SdkError::ServiceError(err)) => Seen::Service {
            status: err.raw().status().as_u16(),
            code: err.err().code().unwrap_or_default().to_string(),
        },
        Err(SdkError::DispatchFailure(_)) => Seen::Dispatch,
        Err(SdkError::TimeoutError(_)) => Seen::Timeout,
        Err(other) => Seen::Other(format!("{other:?}")),
    }
}

/// Sends `n` one-attempt GetItems through a fresh simulator with `faults`;
/// returns what each saw and the simulator.
async fn run_gets(faults: &str, n: usize) -> (Vec<Seen>, RunningSimulator) {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let table = table_name("faults");
    create_table(&client, &table, None).await;
    sim.set_faults(faults.parse().unwrap()).unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..n {
        outcomes.push(seen(client.get_item().table_name(&table).key("id", s("k")).send().await));
    }
    (outcomes, sim)
}

#[tokio::test]
async fn faults_each_kind_lands_at_its_probability_and_the_same_seed_repeats_it() {
    let cases = [
        ("500", Seen::Service { status: 500, code: "InternalServerError".into() }),
        ("503", Seen::Service { status: 503, code: "ServiceUnavailable".into() }),
        ("throttle", Seen::Service { status: 400, code: "ThrottlingException".into() }),
        ("ptee", Seen::Service { status: 400, code: "ProvisionedThroughputExceededException".into() }),
        ("reset", Seen::Dispatch),
        ("after-500", Seen::Service { status: 500, code: "InternalServerError".into() }),
        ("after-reset", Seen::Dispatch),
    ];
    for (kind, expected) in cases {
        let spec = format!("{kind}=0.3,seed=11");
        let (outcomes, sim) = run_gets(&spec, 40).await;
        let hits = outcomes.iter().filter(|o| **o == expected).count();
        assert_eq!(hits + outcomes.iter().filter(|o| **o == Seen::Ok).count(), 40, "{kind}: {outcomes:?}");
        assert_eq!(sim.stats().faults_of(kind), hits as u64, "{kind}");
        // 40 draws at p = 0.3: 12 expected; the seed fixes the count, the range checks the rate.
        assert!((4..=21).contains(&hits), "{kind}: {hits} of 40 at p = 0.3");
        if matches!(kind, "500" | "after-reset") {
            let (again, _) = run_gets(&spec, 40).await;
            assert_eq!(again, outcomes, "{kind}: the same seed, the same faults");
        }
    }
    let (never, _) = run_gets("500=0,reset=0,seed=3", 30).await;
    assert!(never.iter().all(|o| *o == Seen::Ok));
}

#[tokio::test]
async fn faults_the_sdk_retries_what_dynamodb_would_have_it_retry() {
    let sim = start(SimulatorConfig::default()).await;
    let table = table_name("retry");
    create_table(&one_attempt(&sim.url()), &table, None).await;
    let retrying = with(&sim.url(), |b| {
        b.retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
    });
    for kind in ["500", "503", "throttle", "ptee", "reset"] {
        sim.set_faults(format!("{kind}=1:times=2").parse().unwrap()).unwrap();
        let before = sim.stats().requests;
        let result = retrying.get_item().table_name(&table).key("id", s("k")).send().await;
        assert!(result.is_ok(), "{kind}: retried to success: {result:?}");
        assert_eq!(sim.stats().requests - before, 3, "{kind}: two faults, then the answer");
    }
}

#[tokio::test]
async fn faults_a_stall_ends_in_the_sdks_timeout() {
    let sim = start(SimulatorConfig::default()).await;
    let table = table_name("stall");
    create_table(&one_attempt(&sim.url()), &table, None).await;
    sim.set_faults("stall=1:for=30s:op=GetItem".parse().unwrap()).unwrap();
    let impatient = with(&sim.url(), |b| {
        b.retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(Duration::from_millis(300)).build())
    });
    let stalled = seen(impatient.get_item().table_name(&table).key("id", s("k")).send().await);
    assert_eq!(stalled, Seen::Timeout);
    assert_eq!(sim.stats().faults_of("stall"), 1);
    // Latency long enough to outlast the timeout has the same effect, on PutItem only.
    sim.set_faults("latency=30s:op=PutItem".parse().unwrap()).unwrap();
    let slow = seen(impatient.put_item().table_name(&table).set_item(Some(item_of_size("x", 100))).send().await);
    assert_eq!(slow, Seen::Timeout);
    // Other operations are not delayed (asked with no timeout: our own speed is not under test).
    let patient = one_attempt(&sim.url());
    assert_eq!(seen(patient.get_item().table_name(&table).key("id", s("k")).send().await), Seen::Ok);
    assert_eq!(sim.stats().faults_of("latency"), 1);
}

#[tokio::test]
async fn faults_are_filtered_by_operation_and_table() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let (hit, spared) = (table_name("hit"), table_name("spared"));
    create_table(&client, &hit, None).await;
    create_table(&client, &spared, None).await;
    sim.set_faults(
        FaultConfig::seeded(1)
            .rule(FaultRule::new(FaultKind::InternalServerError, 1.0).operations(["UpdateItem"]).tables([hit.clone()])),
    )
    .unwrap();
    let update = |table: &str| {
        client
            .update_item()
            .table_name(table)
            .key("id", s("k"))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", s("1"))
            .send()
    };
    assert_eq!(seen(update(&hit).await), Seen::Service { status: 500, code: "InternalServerError".into() });
    assert_eq!(seen(update(&spared).await), Seen::Ok);
    assert_eq!(seen(client.put_item().table_name(&hit).set_item(Some(item_of_size("k", 100))).send().await), Seen::Ok);
    let stats = sim.stats();
    assert_eq!(stats.table(&hit).faults.get("500"), Some(&1));
    assert!(stats.table(&spared).faults.is_empty());
}

#[tokio::test]
async fn faults_after_apply_leave_the_write_applied_upstream() {
    let sim = start(SimulatorConfig::default()).await;
    let client = one_attempt(&sim.url());
    let direct = emulator::client(upstream());
    let table = table_name("after");
    create_table(&client, &table, None).await;

    for (kind, expected) in [
        ("after-500", Seen::Service { status: 500, code: "InternalServerError".into() }),
        ("after-reset", Seen::Dispatch),
    ] {
        sim.set_faults(format!("{kind}=1:op=PutItem:times=1").parse().unwrap()).unwrap();
        let id = format!("landed-{kind}");
        let answer = seen(client.put_item().table_name(&table).set_item(Some(item_of_size(&id, 100))).send().await);
        assert_eq!(answer, expected, "{kind}");
        let stored = direct.get_item().table_name(&table).key("id", s(&id)).consistent_read(true).send().await.unwrap();
        assert!(stored.item().is_some(), "{kind}: the write landed though the client saw a failure");
    }

    // The hazard the library must handle: the SDK retries a create-if-absent
    // that already landed, and the retry finds its own write.
    sim.set_faults("after-500=1:op=PutItem:times=1".parse().unwrap()).unwrap();
    let retrying = with(&sim.url(), |b| {
        b.retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
    });
    let create = retrying
        .put_item()
        .table_name(&table)
        .set_item(Some(item_of_size("once", 100)))
        .condition_expression("attribute_not_exists(id)")
        .send()
        .await;
    assert_eq!(seen(create), Seen::Service { status: 400, code: "ConditionalCheckFailedException".into() });
    assert_eq!(sim.stats().faults_of("after-500"), 2);
}

#[tokio::test]
async fn stats_are_served_as_json_on_the_same_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = SimulatorConfig::default()
        .capacity(CapacityConfig::new(Throughput::new(5, 5)))
        .faults("ptee=1:op=GetItem:times=1,seed=2".parse().unwrap());
    let sim = start(config).await;
    let client = one_attempt(&sim.url());
    let table = table_name("stats");
    create_table(&client, &table, Some((5, 5))).await;
    put(&client, &table, "k", 2000).await;
    let _ = client.get_item().table_name(&table).key("id", s("k")).send().await;

    let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    stream.write_all(b"GET /__simulator/stats HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let stats: serde_json::Value = serde_json::from_str(body).unwrap();
    let entry = &stats["tables"][&table];
    assert_eq!(entry["write_units"], 2.0);
    assert_eq!(entry["capacity"], "5/5");
    assert_eq!(entry["faults"]["ptee"], 1);
    assert_eq!(stats["faults"]["ptee"], 1);
    assert_eq!(stats["requests"], 3);
}

// ---------------------------------------------------------------------------
// `sessions serve --capacity/--faults`
// ---------------------------------------------------------------------------

/// `sessions serve` with `args`, ports chosen by the system.
fn serve(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sessions"));
    command
        .arg("serve")
        .args(args)
        .env("PORT", "0")
        .env("DYNAMODB_PORT", "0")
        .env("TABLE_NAME", "sessions")
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("SIMULATE_CAPACITY")
        .env_remove("SIMULATE_FAULTS")
        .stdin(std::process::Stdio::null());
    command
}

#[test]
fn serve_refuses_bad_simulator_flags_naming_the_flag() {
    for (args, flag) in [
        (&["--capacity", "5/0"][..], "--capacity"),
        (&["--capacity", "five"][..], "--capacity"),
        (&["--faults", "500=2"][..], "--faults"),
        (&["--faults", "latency=20"][..], "--faults"),
        (&["--capacity", "5/5", "--burst-seconds", "soon"][..], "--burst-seconds"),
        (&["--capacity", "5/5", "--initial-credit", "half"][..], "--initial-credit"),
        (&["--request-timeout", "1"][..], "--request-timeout"),
    ] {
        let output = serve(args).output().expect("sessions runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_puts_the_simulator_in_front_and_prints_its_settings() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = serve(&["--capacity", "7/9", "--faults", "500=0.5:op=PutItem,seed=3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sessions starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("Session API:");
        banner.push(line);
        if done {
            break;
        }
    }
    let printed = banner.join("\n");
    let simulator = printed
        .lines()
        .find_map(|l| l.strip_prefix("DynamoDB simulator: http://"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no simulator line in:\n{printed}"))
        .to_string();
    assert!(printed.contains("every table 7/9 RCU/WCU"), "{printed}");
    assert!(printed.contains("500=0.5:op=PutItem,seed=3"), "{printed}");

    let mut stream = std::net::TcpStream::connect(&simulator).unwrap();
    stream.write_all(b"GET /__simulator/stats HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    child.kill().expect("the server stops");
    let _ = child.wait();
    let (_, body) = raw.split_once("\r\n\r\n").unwrap();
    let stats: serde_json::Value = serde_json::from_str(body).unwrap();
    // The server created its table through the simulator, with the simulated capacity.
    assert_eq!(stats["tables"]["sessions"]["capacity"], "7/9", "{stats}");
}
