//! Garbage collection and table creation against a real DynamoDB-compatible server.

mod common;

use std::time::{Duration, Instant};

use common::*;
use dynamodb_sessions::gc::Sweeper;
use dynamodb_sessions::{create_sessions_table, garbage_collect, Config, GcOptions, SessionId, TableCreation};

async fn seed(
    client: &aws_sdk_dynamodb::Client,
    config: &Config,
    live: usize,
    expired: usize,
) -> (Vec<String>, Vec<String>) {
    let (mut live_ids, mut expired_ids) = (Vec::new(), Vec::new());
    for i in 0..live + expired {
        let sid = SessionId::generate().to_string();
        let is_live = i < live;
        put_php_item(client, config, &sid, "{}", if is_live { now() + 600 } else { now() - 10 }, false).await;
        if is_live {
            live_ids.push(sid)
        } else {
            expired_ids.push(sid)
        }
    }
    (live_ids, expired_ids)
}

#[tokio::test]
async fn gc_pages_through_the_whole_table() {
    let (client, config) = setup(Config::builder().gc_batch_size(4usize)).await;
    let (live, expired) = seed(&client, &config, 23, 37).await;
    let options = GcOptions { page_size: Some(7), ..Default::default() };
    let report = garbage_collect(&client, &config, options).await.unwrap();
    assert!(report.finished);
    assert_eq!(report.resume_after, None);
    assert_eq!(report.scanned, 60);
    assert_eq!(report.deleted, 37);
    assert_eq!(report.skipped, 0);
    for sid in &expired {
        assert!(raw_item(&client, &config, sid).await.is_none());
    }
    for sid in &live {
        assert!(raw_item(&client, &config, sid).await.is_some());
    }
}

#[tokio::test]
async fn a_session_refreshed_between_scan_and_delete_survives() {
    let (client, config) = setup(Config::builder()).await;
    let (_, expired) = seed(&client, &config, 0, 3).await;
    let mut sweeper = Sweeper::new(&client, &config, None);
    let page = sweeper.scan_page(None, None, None).await.unwrap();
    assert_eq!(page.expired.len(), 3);
    // After the scan, one session is written again (as a PHP client would,
    // whose write does not check expiry) and one is locked with a live lease.
    let refreshed = config.item_key(&expired[0]);
    client
        .update_item()
        .table_name(&config.table_name)
        .key("id", s(&refreshed))
        .update_expression("SET expires = :e")
        .expression_attribute_values(":e", n(now() + 1440))
        .send()
        .await
        .unwrap();
    let locked = config.item_key(&expired[1]);
    client
        .update_item()
        .table_name(&config.table_name)
        .key("id", s(&locked))
        .update_expression("SET #l = :one, lock_until_ms = :until")
        .expression_attribute_names("#l", "lock")
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":until", n((now() + 60) * 1000))
        .send()
        .await
        .unwrap();
    assert!(sweeper.delete_expired(&page.expired).await.unwrap());
    assert_eq!(sweeper.report.deleted, 1);
    assert_eq!(sweeper.report.skipped, 2);
    assert!(raw_item(&client, &config, &expired[0]).await.is_some(), "refreshed session kept");
    assert!(raw_item(&client, &config, &expired[1]).await.is_some(), "live lock kept");
    assert!(raw_item(&client, &config, &expired[2]).await.is_none());
}

#[tokio::test]
async fn gc_skips_live_locks_and_collects_dead_ones_and_php_items() {
    let (client, config) = setup(Config::builder()).await;
    let key = |sid: &str| config.item_key(sid);
    let put = |sid: String, lease: Option<i64>, php_lock: bool| {
        let client = client.clone();
        let config = config.clone();
        async move {
            let mut request = client
                .put_item()
                .table_name(&config.table_name)
                .item("id", s(&config.item_key(&sid)))
                .item("data", s("{}"))
                .item("expires", n(now() - 5));
            if php_lock || lease.is_some() {
                request = request.item("lock", n(1));
            }
            if let Some(until) = lease {
                request = request.item("lock_until_ms", n(until)).item("lock_token", s("tokentokentokentoken"));
            }
            request.send().await.unwrap();
            sid
        }
    };
    let live_lease = put(SessionId::generate().to_string(), Some((now() + 60) * 1000), false).await;
    let dead_lease = put(SessionId::generate().to_string(), Some((now() - 60) * 1000), false).await;
    let php_locked = put(SessionId::generate().to_string(), None, true).await;
    let report = garbage_collect(&client, &config, GcOptions::default()).await.unwrap();
    assert_eq!((report.deleted, report.skipped), (2, 1));
    assert!(raw_item(&client, &config, &live_lease).await.is_some());
    assert!(raw_item(&client, &config, &dead_lease).await.is_none());
    assert!(
        raw_item(&client, &config, &php_locked).await.is_none(),
        "an expired PHP session's lock died with it: {}",
        key(&php_locked)
    );
}

#[tokio::test]
async fn gc_stops_at_its_deadline_and_resumes_where_it_stopped() {
    let (client, config) = setup(Config::builder()).await;
    let (_, expired) = seed(&client, &config, 0, 20).await;
    let out_of_time = GcOptions { deadline: Some(Instant::now()), page_size: Some(5), ..Default::default() };
    let report = garbage_collect(&client, &config, out_of_time).await.unwrap();
    assert!(!report.finished);
    assert_eq!(report.deleted, 0);

    // Take one page by hand, then resume after it: only the rest is swept.
    let mut sweeper = Sweeper::new(&client, &config, None);
    let first = sweeper.scan_page(None, Some(5), None).await.unwrap();
    let resume = GcOptions { start_after: first.next.clone(), page_size: Some(5), ..Default::default() };
    let report = garbage_collect(&client, &config, resume).await.unwrap();
    assert!(report.finished);
    assert_eq!(report.deleted, 15);
    assert_eq!(count_items(&client, &config).await, 5);
    let left: Vec<_> = first.expired.iter().map(|k| k.trim_start_matches("PHPSESSID_").to_string()).collect();
    for sid in &left {
        assert!(expired.contains(sid));
        assert!(raw_item(&client, &config, sid).await.is_some());
    }
}

#[tokio::test]
async fn gc_operation_delay_spaces_out_batches() {
    let (client, config) =
        setup(Config::builder().gc_batch_size(2usize).gc_operation_delay(Duration::from_millis(100))).await;
    seed(&client, &config, 0, 6).await;
    let started = Instant::now();
    let report = garbage_collect(&client, &config, GcOptions::default()).await.unwrap();
    assert_eq!(report.deleted, 6);
    // Three batches of two: at least two pauses between them.
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test]
async fn gc_by_segment_covers_the_table_once() {
    let (client, config) = setup(Config::builder()).await;
    seed(&client, &config, 5, 30).await;
    let mut deleted = 0;
    for segment in 0..4 {
        let options = GcOptions { segment: Some((segment, 4)), ..Default::default() };
        deleted += garbage_collect(&client, &config, options).await.unwrap().deleted;
    }
    assert_eq!(deleted, 30);
    assert_eq!(count_items(&client, &config).await, 5);
}

#[tokio::test]
async fn create_sessions_table_sets_throughput_and_ttl_and_is_idempotent() {
    let client = client();
    let config = Config::builder().table_name(table_name("ct")).build().unwrap();
    assert_eq!(create_sessions_table(&client, &config, 5, 5).await.unwrap(), TableCreation::Created);
    let table = client.describe_table().table_name(&config.table_name).send().await.unwrap().table.unwrap();
    assert_eq!(table.table_status().unwrap().as_str(), "ACTIVE");
    let throughput = table.provisioned_throughput().unwrap();
    assert_eq!((throughput.read_capacity_units(), throughput.write_capacity_units()), (Some(5), Some(5)));
    assert_eq!(table.key_schema()[0].attribute_name(), "id");
    let ttl = client.describe_time_to_live().table_name(&config.table_name).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires"));
    assert_eq!(ttl.time_to_live_status().unwrap().as_str(), "ENABLED");
    assert_eq!(create_sessions_table(&client, &config, 5, 5).await.unwrap(), TableCreation::AlreadyExisted);
}

mod scheduled {
    use super::*;
    use dynamodb_sessions::gc::{scheduled_sweep, ScheduledSweep, CHECKPOINT_KEY};

    async fn checkpoint(
        client: &aws_sdk_dynamodb::Client,
        config: &Config,
    ) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        client
            .get_item()
            .table_name(&config.table_name)
            .key("id", s(CHECKPOINT_KEY))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap_or_default()
    }

    fn swept(outcome: ScheduledSweep) -> dynamodb_sessions::GcReport {
        match outcome {
            ScheduledSweep::Swept(report) => report,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stopped_sweep_resumes_from_its_checkpoint_on_the_next_run() {
        let (client, config) =
            setup(Config::builder().gc_batch_size(5usize).gc_operation_delay(Duration::from_millis(150))).await;
        seed(&client, &config, 3, 40).await;
        // Pages of 5 with a pause after each: 400 ms is a few pages, not all 9.
        let short = GcOptions {
            page_size: Some(5),
            deadline: Some(Instant::now() + Duration::from_millis(400)),
            ..Default::default()
        };
        let first = swept(scheduled_sweep(&client, &config, short, "run-1").await.unwrap());
        assert!(!first.finished, "{first:?}");
        assert!(first.deleted > 0 && first.deleted < 40, "{first:?}");
        let saved = checkpoint(&client, &config).await;
        assert_eq!(saved.get("position").and_then(|v| v.as_s().ok()), first.resume_after.as_ref());
        assert!(!saved.contains_key("owner"), "the claim is released");

        let fast = Config { gc_operation_delay: Duration::ZERO, ..config.clone() };
        let second = swept(
            scheduled_sweep(&client, &fast, GcOptions { page_size: Some(5), ..Default::default() }, "run-2")
                .await
                .unwrap(),
        );
        assert!(second.finished);
        assert_eq!(first.deleted + second.deleted, 40, "the second run did not start over: {second:?}");
        assert!(second.scanned < 44, "it resumed after the saved position: {second:?}");
        let saved = checkpoint(&client, &config).await;
        assert!(!saved.contains_key("position") && saved.contains_key("last_finished"));
        assert_eq!(count_items(&client, &config).await, 3 + 1, "live sessions and the checkpoint");
    }

    #[tokio::test]
    async fn a_run_that_finds_another_in_progress_does_nothing() {
        let (client, config) = setup(Config::builder()).await;
        seed(&client, &config, 0, 5).await;
        client
            .put_item()
            .table_name(&config.table_name)
            .item("id", s(CHECKPOINT_KEY))
            .item("owner", s("other-run"))
            .item("lease_until_ms", n((now() + 60) * 1000))
            .send()
            .await
            .unwrap();
        let outcome = scheduled_sweep(&client, &config, GcOptions::default(), "late-run").await.unwrap();
        assert_eq!(outcome, ScheduledSweep::AnotherSweepRunning);
        assert_eq!(count_items(&client, &config).await, 6, "nothing deleted");
        // A claim whose lease ran out (its run crashed) is taken over.
        client
            .put_item()
            .table_name(&config.table_name)
            .item("id", s(CHECKPOINT_KEY))
            .item("owner", s("crashed-run"))
            .item("lease_until_ms", n((now() - 1) * 1000))
            .send()
            .await
            .unwrap();
        let report = swept(scheduled_sweep(&client, &config, GcOptions::default(), "next-run").await.unwrap());
        assert_eq!(report.deleted, 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_runs_do_not_double_the_work() {
        let (client, config) = setup(Config::builder().gc_operation_delay(Duration::from_millis(50))).await;
        seed(&client, &config, 0, 30).await;
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let (client, config) = (client.clone(), config.clone());
                tokio::spawn(async move {
                    let options = GcOptions { page_size: Some(5), ..Default::default() };
                    scheduled_sweep(&client, &config, options, &format!("run-{i}")).await.unwrap()
                })
            })
            .collect();
        let mut swept_runs = 0;
        for run in runs {
            if let ScheduledSweep::Swept(report) = run.await.unwrap() {
                swept_runs += 1;
                assert_eq!(report.deleted, 30);
            }
        }
        assert_eq!(swept_runs, 1, "exactly one run swept");
    }
}

#[tokio::test]
async fn automatic_gc_runs_only_when_enabled_and_then_now_and_then() {
    use dynamodb_sessions::calls::counted;
    use dynamodb_sessions::gc::automatic_gc_step;
    for enabled in [false, true] {
        let (client, config) = setup(Config::builder().automatic_gc(enabled)).await;
        let (_, expired) = seed(&client, &config, 0, 1).await;
        let mut runs = 0;
        // 1 request in 100 sweeps 1 segment in 16: 20,000 requests miss the
        // expired session with a chance of about e^-12.
        for _ in 0..20_000 {
            let (ran, calls) = counted(automatic_gc_step(&client, &config)).await;
            assert_eq!(ran.is_some(), !calls.is_empty());
            if ran.is_some() {
                runs += 1;
                if raw_item(&client, &config, &expired[0]).await.is_none() {
                    break;
                }
            }
        }
        if enabled {
            assert!(runs > 0 && raw_item(&client, &config, &expired[0]).await.is_none(), "runs: {runs}");
        } else {
            assert_eq!(runs, 0);
            assert!(raw_item(&client, &config, &expired[0]).await.is_some());
        }
    }
}
