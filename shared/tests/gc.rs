//! Garbage collection and table creation against a real DynamoDB-compatible
//! server. Capacity pacing against DynamoDB's real numbers is tested through
//! the simulator (`local/tests/faults.rs`); here the tables are big enough
//! that the budget never holds a sweep back unless a test says so.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use dynamodb_sessions::calls::counted;
use dynamodb_sessions::emulator::fixtures::{count_items, now, put_php_item, raw_item};
use dynamodb_sessions::emulator::{self, fixtures};
use dynamodb_sessions::gc::{Stop, CHECKPOINT_KEY};
use dynamodb_sessions::{
    CapacityBudget, Config, ConfigBuilder, GcReport, ScheduledSweep, SessionId, SessionStore, SweepOptions,
    TableCapacity, TableCreation,
};

/// A store on a fresh table of `capacity`.
async fn store_with(builder: ConfigBuilder, capacity: TableCapacity) -> SessionStore {
    let config = builder.table_name(fixtures::table_name("gc")).build().unwrap();
    let store = SessionStore::new(emulator::client(emulator::shared_endpoint()), config);
    assert_eq!(store.create_table(capacity).await.unwrap(), TableCreation::Created);
    store
}

/// A table whose GC budget (a share of 1000/1000) never holds a test back.
async fn roomy(builder: ConfigBuilder) -> SessionStore {
    store_with(builder, TableCapacity::Provisioned { read: 1000, write: 1000 }).await
}

const PLENTY: CapacityBudget = CapacityBudget { read_units_per_second: 1000.0, write_units_per_second: 1000.0 };

/// Seeds `live` sessions and `expired` ones, as PHP writes them; their ids.
async fn seed(store: &SessionStore, live: usize, expired: usize) -> (Vec<String>, Vec<String>) {
    let (mut live_ids, mut expired_ids) = (Vec::new(), Vec::new());
    for i in 0..live + expired {
        let sid = SessionId::generate().to_string();
        let is_live = i < live;
        put_php_item(store, &sid, "{}", if is_live { now() + 600 } else { now() - 10 }, false).await;
        if is_live {
            live_ids.push(sid)
        } else {
            expired_ids.push(sid)
        }
    }
    (live_ids, expired_ids)
}

/// The report serialized (as the GC function logs and returns it) holds no
/// key or id of any session.
fn assert_no_key_in(report: &impl serde::Serialize, debug: &impl std::fmt::Debug, ids: &[String]) {
    let json = serde_json::to_string(report).unwrap();
    let debug = format!("{debug:?}");
    for text in [&json, &debug] {
        assert!(!text.contains("PHPSESSID"), "{text}");
        for id in ids {
            assert!(!text.contains(id.as_str()), "{text}");
        }
    }
}

#[tokio::test]
async fn gc_pages_through_the_whole_table() {
    let store = roomy(Config::builder().gc_batch_size(4usize)).await;
    let (live, expired) = seed(&store, 23, 37).await;
    // A read budget of a few units a second keeps the pages small.
    let options = SweepOptions {
        page_size: Some(7),
        budget: Some(CapacityBudget { read_units_per_second: 2.0, write_units_per_second: 1000.0 }),
        ..Default::default()
    };
    let (report, calls) = counted(store.delete_expired(options)).await;
    let report = report.unwrap();
    assert!(report.finished(), "{report:?}");
    assert_eq!(report.stopped, Stop::Finished);
    assert!(report.resume_key().is_none());
    assert_eq!((report.scanned, report.deleted, report.skipped, report.gone), (60, 37, 0, 0));
    assert!(calls.iter().filter(|c| *c == "Scan").count() >= 2, "more than one page: {calls:?}");
    assert_eq!(calls.iter().filter(|c| *c == "DeleteItem").count(), 37, "one delete per expired session");
    for sid in &expired {
        assert!(raw_item(&store, sid).await.is_none());
    }
    for sid in &live {
        assert!(raw_item(&store, sid).await.is_some());
    }
    assert_no_key_in(&report, &report, &[live, expired].concat());
}

/// An expired item with `lock` and `lock_token` as given.
async fn put_expired(store: &SessionStore, lock: Option<i64>, token: Option<&str>) -> String {
    let sid = SessionId::generate().to_string();
    let mut item: HashMap<String, AttributeValue> = [
        ("id".to_string(), s(&store.config().item_key(&sid))),
        ("data".to_string(), s("{}")),
        ("expires".to_string(), n(now() - 5)),
    ]
    .into();
    if let Some(lock) = lock {
        item.insert("lock".into(), n(lock));
    }
    if let Some(token) = token {
        item.insert("lock_token".into(), s(token));
    }
    fixtures::put_raw(store, item).await;
    sid
}

#[tokio::test]
async fn gc_deletes_only_expired_sessions_without_a_live_lock() {
    let store = roomy(Config::builder()).await;
    let token = "tokentokentokentokento";
    let live_php_locked = SessionId::generate().to_string();
    put_php_item(&store, &live_php_locked, "{}", now() + 600, true).await;
    let (live, _) = seed(&store, 1, 0).await;
    let unlocked = put_expired(&store, None, None).await;
    // PHP's own GC never deletes under `lock` (its ScanFilter has `lock NULL`): neither do we.
    let php_locked = put_expired(&store, Some(1), None).await;
    let live_lease = put_expired(&store, Some(now_ms() + 60_000), Some(token)).await;
    let dead_lease = put_expired(&store, Some(now_ms() - 60_000), Some(token)).await;
    // PHP wrote over our lock (removing `lock`), leaving the token behind: no lock.
    let stale_token = put_expired(&store, None, Some(token)).await;

    let report = store.delete_expired(SweepOptions::default()).await.unwrap();
    assert_eq!((report.scanned, report.deleted, report.skipped, report.gone), (7, 3, 2, 0), "{report:?}");
    for kept in [&live_php_locked, &live[0], &php_locked, &live_lease] {
        assert!(raw_item(&store, kept).await.is_some(), "{kept}");
    }
    for deleted in [&unlocked, &dead_lease, &stale_token] {
        assert!(raw_item(&store, deleted).await.is_none(), "{deleted}");
    }
    let all = [live_php_locked, live[0].clone(), unlocked, php_locked, live_lease, dead_lease, stale_token];
    assert_no_key_in(&report, &report, &all);
}

/// A live session under `lock` (and `lock_token`) as given.
async fn put_live(store: &SessionStore, lock: i64, token: Option<&str>) -> String {
    let sid = put_expired(store, Some(lock), token).await;
    let mut item = raw_item(store, &sid).await.unwrap();
    item.insert("expires".into(), n(now() + 600));
    fixtures::put_raw(store, item).await;
    sid
}

#[tokio::test]
async fn gc_ends_run_out_leases_of_live_sessions_and_nothing_else() {
    let store = roomy(Config::builder()).await;
    let token = "tokentokentokentokento";
    let dead_lease = put_live(&store, now_ms() - 60_000, Some(token)).await;
    let live_lease = put_live(&store, now_ms() + 60_000, Some(token)).await;
    let php_locked = put_live(&store, 1, None).await;

    let report = store.delete_expired(SweepOptions::default()).await.unwrap();
    assert_eq!((report.leases_ended, report.deleted), (1, 0), "{report:?}");
    let ended = raw_item(&store, &dead_lease).await.expect("the session stays");
    assert!(!ended.contains_key("lock") && !ended.contains_key("lock_token"), "{ended:?}");
    let held = raw_item(&store, &live_lease).await.unwrap();
    assert!(held.contains_key("lock") && held.contains_key("lock_token"), "a lease not run out stays: {held:?}");
    assert_eq!(raw_item(&store, &php_locked).await.unwrap()["lock"], n(1), "PHP's lock is never touched");
    assert_no_key_in(&report, &report, &[dead_lease, live_lease, php_locked]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_happens_between_scan_and_delete_decides_and_is_counted_exactly() {
    let store = roomy(Config::builder()).await;
    let (_, expired) = seed(&store, 0, 5).await;
    // Once the scan has seen all five expired, before the first delete leaves:
    // PHP writes one (new expiry), we lock one, PHP locks one, someone deletes one.
    let (plain, ids) = (store.clone(), expired.clone());
    let hook = Hook::before("DeleteItem", 1, move || async move {
        php_write(&plain, &ids[0], r#"{"back":true}"#).await;
        let key = |sid: &str| plain.config().item_key(sid);
        set_raw(&plain, &key(&ids[1]), &[("lock", n(now_ms() + 60_000)), ("lock_token", s("tokentokentokentokento"))])
            .await;
        assert!(php_lock(&plain, &ids[2]).await);
        delete_raw(&plain, &key(&ids[3])).await;
    });
    let report = hooked(&store, &hook).delete_expired(SweepOptions::default()).await.unwrap();
    assert!(hook.fired());
    assert_eq!((report.scanned, report.deleted, report.skipped, report.gone), (5, 1, 3, 1), "{report:?}");
    assert!(raw_item(&store, &expired[0]).await.is_some(), "refreshed by PHP: kept");
    assert!(raw_item(&store, &expired[1]).await.is_some(), "locked by us: kept");
    assert!(raw_item(&store, &expired[2]).await.is_some(), "locked by PHP: kept");
    assert!(raw_item(&store, &expired[4]).await.is_none(), "still expired: deleted");
    assert_eq!(count_items(&store).await, 3);
}

#[tokio::test]
async fn gc_stops_at_its_deadline_and_resumes_where_it_stopped() {
    let store = roomy(Config::builder()).await;
    let (_, expired) = seed(&store, 0, 20).await;
    let (report, calls) = counted(store.delete_expired(SweepOptions {
        deadline: Some(Instant::now()),
        budget: Some(PLENTY),
        ..Default::default()
    }))
    .await;
    let report = report.unwrap();
    assert_eq!(report.stopped, Stop::Deadline);
    assert_eq!((report.scanned, report.deleted), (0, 0));
    assert!(calls.is_empty(), "past its deadline it sends nothing: {calls:?}");

    // A read budget so small that the first page's cost pushes the next
    // page past the deadline: one page, then a clean stop.
    let first = store
        .delete_expired(SweepOptions {
            page_size: Some(5),
            deadline: Some(Instant::now() + Duration::from_secs(60)),
            budget: Some(CapacityBudget { read_units_per_second: 0.001, write_units_per_second: 1000.0 }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.stopped, Stop::Deadline, "{first:?}");
    assert_eq!((first.scanned, first.deleted), (5, 5), "{first:?}");
    let resume = first.resume_key().cloned().expect("a position to resume from");
    let second = store
        .delete_expired(SweepOptions {
            start_after: Some(resume),
            page_size: Some(5),
            budget: Some(PLENTY),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(second.finished(), "{second:?}");
    assert_eq!((second.scanned, second.deleted), (15, 15), "it did not start over: {second:?}");
    assert_eq!(count_items(&store).await, 0);
    for sid in &expired {
        assert!(raw_item(&store, sid).await.is_none());
    }
}

#[tokio::test]
async fn gc_by_segment_covers_the_table_once() {
    let store = roomy(Config::builder()).await;
    seed(&store, 5, 30).await;
    let mut deleted = 0;
    let mut scanned = 0;
    for segment in 0..4 {
        let options = SweepOptions { segment: Some((segment, 4)), budget: Some(PLENTY), ..Default::default() };
        let report = store.delete_expired(options).await.unwrap();
        assert!(report.finished());
        deleted += report.deleted;
        scanned += report.scanned;
    }
    assert_eq!((scanned, deleted), (35, 30));
    assert_eq!(count_items(&store).await, 5);
}

#[tokio::test]
async fn create_table_sets_throughput_and_ttl_and_is_idempotent() {
    let store = fixtures::store(Config::builder()).await;
    let (client, config) = (store.client(), store.config());
    assert_eq!(
        store.create_table(TableCapacity::Provisioned { read: 5, write: 5 }).await.unwrap(),
        TableCreation::AlreadyExisted
    );
    let table = client.describe_table().table_name(&config.table_name).send().await.unwrap().table.unwrap();
    assert_eq!(table.table_status().unwrap().as_str(), "ACTIVE");
    let throughput = table.provisioned_throughput().unwrap();
    assert_eq!((throughput.read_capacity_units(), throughput.write_capacity_units()), (Some(5), Some(5)));
    assert_eq!(table.key_schema()[0].attribute_name(), "id");
    let ttl = client.describe_time_to_live().table_name(&config.table_name).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires"));
    assert_eq!(ttl.time_to_live_status().unwrap().as_str(), "ENABLED");
}

#[tokio::test]
async fn the_gc_budget_is_a_share_of_the_tables_capacity_or_the_on_demand_rate() {
    let provisioned =
        store_with(Config::builder().gc_capacity_share(0.5), TableCapacity::Provisioned { read: 8, write: 4 }).await;
    let budget = provisioned.gc_budget().await.unwrap();
    assert_eq!(budget, CapacityBudget { read_units_per_second: 4.0, write_units_per_second: 2.0 });

    let on_demand = store_with(Config::builder().gc_on_demand_rate(40.0), TableCapacity::OnDemand).await;
    let table = on_demand.client().describe_table().table_name(&on_demand.config().table_name).send().await.unwrap();
    let mode = table.table().and_then(|t| t.billing_mode_summary()).and_then(|b| b.billing_mode()).cloned();
    assert_eq!(mode.map(|m| m.as_str().to_string()).as_deref(), Some("PAY_PER_REQUEST"));
    let budget = on_demand.gc_budget().await.unwrap();
    assert_eq!(budget, CapacityBudget { read_units_per_second: 40.0, write_units_per_second: 40.0 });
    // A sweep without a budget of its own keeps to the table's, and says so.
    let report = provisioned.delete_expired(SweepOptions::default()).await.unwrap();
    assert_eq!(report.budget, CapacityBudget { read_units_per_second: 4.0, write_units_per_second: 2.0 });
}

mod scheduled {
    use super::*;

    async fn checkpoint(store: &SessionStore) -> HashMap<String, AttributeValue> {
        let config = store.config();
        store
            .client()
            .get_item()
            .table_name(&config.table_name)
            .key(&config.hash_key, s(CHECKPOINT_KEY))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default()
    }

    fn swept(outcome: ScheduledSweep) -> GcReport {
        match outcome {
            ScheduledSweep::Swept(report) => report,
            other => panic!("{other:?}"),
        }
    }

    fn in_seconds(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_sweep_resumes_from_its_checkpoint_on_the_next_run() {
        let store = roomy(Config::builder()).await;
        let (live, expired) = seed(&store, 3, 40).await;
        // The second page is held until the run's deadline has passed: the
        // run deletes nothing of it, and saves the position after the first
        // page (25 items).
        let deadline = in_seconds(3);
        let hook = Hook::before("Scan", 2, move || async move {
            tokio::time::sleep_until((deadline + Duration::from_millis(50)).into()).await;
        });
        let first = swept(hooked(&store, &hook).scheduled_sweep(deadline, "run-1").await.unwrap());
        assert!(hook.fired());
        assert_eq!(first.stopped, Stop::Deadline, "{first:?}");
        // Held past its attempt timeout the second Scan fails (a transient
        // failure, then the deadline); held less, it is read and its deletes
        // cut. Either way the position stays after the first page.
        assert!([25, 44].contains(&first.scanned), "{first:?}");
        assert!(first.deleted > 0, "{first:?}");
        let saved = checkpoint(&store).await;
        assert!(saved.get("position").and_then(|v| v.as_s().ok()).is_some(), "the position is saved: {saved:?}");
        assert!(!saved.contains_key("owner") && !saved.contains_key("lease_until_ms"), "the claim is released");

        let second = swept(store.scheduled_sweep(in_seconds(60), "run-2").await.unwrap());
        assert!(second.finished(), "{second:?}");
        assert_eq!(first.deleted + second.deleted, 40, "nothing deleted twice, nothing missed: {second:?}");
        // 43 sessions and the checkpoint item: the second run read only what
        // follows the first page, the page whose deletes the deadline cut.
        assert_eq!(second.scanned, 44 - 25, "the second run did not start over: {second:?}");
        let saved = checkpoint(&store).await;
        assert!(!saved.contains_key("position") && saved.contains_key("last_finished"), "{saved:?}");
        assert!(!saved.contains_key("owner"));
        assert_eq!(count_items(&store).await, 3 + 1, "live sessions and the checkpoint");
        for sid in &live {
            assert!(raw_item(&store, sid).await.is_some());
        }
        let outcome = ScheduledSweep::Swept(second.clone());
        assert_no_key_in(&outcome, &outcome, &[live, expired].concat());
    }

    #[tokio::test]
    async fn a_run_that_finds_another_in_progress_does_nothing() {
        let store = roomy(Config::builder()).await;
        seed(&store, 0, 5).await;
        set_raw(&store, CHECKPOINT_KEY, &[("owner", s("other-run")), ("lease_until_ms", n(now_ms() + 60_000))]).await;
        let (outcome, calls) = counted(store.scheduled_sweep(in_seconds(30), "late-run")).await;
        assert_eq!(outcome.unwrap(), ScheduledSweep::AnotherSweepRunning);
        assert_eq!(calls, ["UpdateItem"], "one refused claim, nothing else");
        assert_eq!(count_items(&store).await, 6, "nothing deleted");
        assert_eq!(checkpoint(&store).await["owner"], s("other-run"), "the other run's claim stands");
        // A claim whose lease ran out (its run crashed) is taken over.
        set_raw(&store, CHECKPOINT_KEY, &[("owner", s("crashed-run")), ("lease_until_ms", n(now_ms() - 1000))]).await;
        let report = swept(store.scheduled_sweep(in_seconds(30), "next-run").await.unwrap());
        assert_eq!(report.deleted, 5);
        assert!(!checkpoint(&store).await.contains_key("owner"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_runs_exactly_one_sweeps() {
        let store = roomy(Config::builder()).await;
        seed(&store, 0, 30).await;
        // The first run to scan waits until all four have sent their claim.
        let claims = Hook::before("UpdateItem", usize::MAX, || async {});
        let counter = claims.clone();
        let gate = Hook::before("Scan", 1, move || async move {
            let give_up = Instant::now() + Duration::from_secs(10);
            while counter.seen() < 4 && Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let client = client_with(|b| b.interceptor(claims.clone()).interceptor(gate.clone()));
        let shared = SessionStore::new(client, store.config().clone());
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let store = shared.clone();
                tokio::spawn(async move { store.scheduled_sweep(in_seconds(30), &format!("run-{i}")).await.unwrap() })
            })
            .collect();
        let mut reports = Vec::new();
        for run in runs {
            match run.await.unwrap() {
                ScheduledSweep::Swept(report) => reports.push(report),
                ScheduledSweep::AnotherSweepRunning => {}
            }
        }
        assert!(gate.fired() && claims.seen() >= 4);
        assert_eq!(reports.len(), 1, "exactly one run swept: {reports:?}");
        assert_eq!(reports[0].deleted, 30);
        assert!(!checkpoint(&store).await.contains_key("owner"));
    }
}

#[tokio::test]
async fn automatic_gc_runs_only_when_enabled_and_then_now_and_then() {
    for enabled in [false, true] {
        let store = fixtures::store(Config::builder().automatic_gc(enabled)).await;
        let (_, expired) = seed(&store, 0, 1).await;
        let mut runs = 0;
        // 1 request in 100 sweeps 1 segment in 16: 20,000 requests miss the
        // expired session with a chance of about e^-12.
        for _ in 0..20_000 {
            let (ran, calls) = counted(store.automatic_gc_step()).await;
            assert_eq!(ran.is_some(), !calls.is_empty(), "{calls:?}");
            if let Some(report) = ran {
                report.unwrap();
                runs += 1;
                if raw_item(&store, &expired[0]).await.is_none() {
                    break;
                }
            }
        }
        if enabled {
            assert!(runs > 0 && raw_item(&store, &expired[0]).await.is_none(), "runs: {runs}");
        } else {
            assert_eq!(runs, 0);
            assert!(raw_item(&store, &expired[0]).await.is_some());
        }
    }
}
