//! A local DynamoDB for development and tests: dynoxide, an embeddable
//! DynamoDB emulator, served over HTTP on loopback, and a client for it.
//! Behind the `emulator` feature, so Lambda builds do not carry it; with
//! [`fixtures`] for the tests of every crate.

use std::net::SocketAddr;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;

use crate::calls::CallCounter;

/// Serves an in-memory emulator on `addr` from the current Tokio runtime and
/// returns its URL.
pub async fn start(addr: SocketAddr) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot start the DynamoDB emulator on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let db = dynoxide::Database::memory().map_err(|e| e.to_string())?;
    tokio::spawn(dynoxide::server::serve_on(listener, db));
    let host = if bound.ip().is_unspecified() { "127.0.0.1".to_string() } else { bound.ip().to_string() };
    Ok(format!("http://{host}:{}", bound.port()))
}

/// Serves an in-memory emulator on a free loopback port from a thread of its
/// own (so it outlives any one runtime, as tests need) and returns its URL.
pub fn start_in_background() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a Tokio runtime for the emulator");
        runtime.block_on(async move {
            let url = start(SocketAddr::from(([127, 0, 0, 1], 0))).await;
            tx.send(url).expect("the caller waits for the URL");
            std::future::pending::<()>().await
        });
    });
    rx.recv().expect("the emulator thread answers").expect("the emulator starts")
}

/// A client for a local endpoint (the emulator or moto), which takes any
/// credentials and region.
pub fn client(url: &str) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local-emulator"))
        .endpoint_url(url)
        .interceptor(CallCounter)
        .build();
    Client::from_conf(config)
}

/// The endpoint tests share: `DYNAMODB_TEST_ENDPOINT` when set (the test
/// command points it at moto), else an emulator started once per process.
pub fn shared_endpoint() -> &'static str {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("DYNAMODB_TEST_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => start_in_background(),
    })
}

/// Test fixtures on a real server: a fresh table per test, and items written
/// as the PHP handler writes them, for this crate's tests and the others'.
pub mod fixtures {
    use std::collections::HashMap;
    use std::fmt;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodb::Client;

    use crate::config::{Config, ConfigBuilder};
    use crate::lease::PHP_LOCK;
    use crate::schema::{LOCK, LOCK_TOKEN, VERSION};
    use crate::table::TableCapacity;
    use crate::{LockToken, SessionStore};

    /// A unique table name, so tests can share one server.
    pub fn table_name(prefix: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// A store on a fresh 5/5 table of the shared test endpoint.
    pub async fn store(builder: ConfigBuilder) -> SessionStore {
        store_on(super::client(super::shared_endpoint()), builder).await
    }

    /// A store on a fresh 5/5 table reached through `client`.
    pub async fn store_on(client: Client, builder: ConfigBuilder) -> SessionStore {
        let config = builder.table_name(table_name("t")).build().expect("a valid test config");
        create(SessionStore::new(client, config)).await
    }

    /// A store for `config` (whose table name should be a fresh
    /// [`table_name`]) on a new 5/5 table of the shared test endpoint.
    pub async fn store_for(config: Config) -> SessionStore {
        create(SessionStore::new(super::client(super::shared_endpoint()), config)).await
    }

    async fn create(store: SessionStore) -> SessionStore {
        store.create_table(TableCapacity::Provisioned { read: 5, write: 5 }).await.expect("the test table");
        store
    }

    /// Test configs wait briefly for locks so failures are quick.
    pub fn fast_locks() -> ConfigBuilder {
        Config::builder()
            .max_lock_wait_time(Duration::from_secs(20))
            .min_lock_retry(Duration::from_millis(1))
            .max_lock_retry(Duration::from_millis(5))
    }

    /// Epoch seconds now.
    pub fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64
    }

    /// Writes an item as the PHP handler would: key, data (S), expires and,
    /// when locked, `lock` = 1.
    pub async fn put_php_item(store: &SessionStore, sid: &str, data: &str, expires: i64, locked: bool) {
        let config = store.config();
        let mut item: HashMap<String, AttributeValue> = [
            (config.hash_key.clone(), AttributeValue::S(config.item_key(sid))),
            (config.session_lifetime_attribute.clone(), AttributeValue::N(expires.to_string())),
        ]
        .into();
        if !data.is_empty() {
            item.insert(config.data_attribute.clone(), AttributeValue::S(data.into()));
        }
        if locked {
            item.insert(LOCK.name.into(), AttributeValue::N(PHP_LOCK.to_string()));
        }
        put_raw(store, item).await;
    }

    /// Writes session `sid` as this store writes it (version 1), `data`
    /// stored as it is, and, with a token, locked by that token's lease.
    pub async fn put_session(store: &SessionStore, sid: &str, data: &str, expires: i64, lock: Option<&LockToken>) {
        let config = store.config();
        let mut item: HashMap<String, AttributeValue> = [
            (config.hash_key.clone(), AttributeValue::S(config.item_key(sid))),
            (config.data_attribute.clone(), AttributeValue::S(data.into())),
            (config.session_lifetime_attribute.clone(), AttributeValue::N(expires.to_string())),
            (VERSION.name.into(), AttributeValue::N("1".into())),
        ]
        .into();
        if let Some(token) = lock {
            let (lock_token, lease_until_ms) = token.parts();
            item.insert(LOCK.name.into(), AttributeValue::N(lease_until_ms.to_string()));
            item.insert(LOCK_TOKEN.name.into(), AttributeValue::S(lock_token));
        }
        put_raw(store, item).await;
    }

    /// Writes `item` as it is.
    pub async fn put_raw(store: &SessionStore, item: HashMap<String, AttributeValue>) {
        let config = store.config();
        store.client().put_item().table_name(&config.table_name).set_item(Some(item)).send().await.expect("put");
    }

    /// The stored item of session `sid`, read consistently.
    pub async fn raw_item(store: &SessionStore, sid: &str) -> Option<HashMap<String, AttributeValue>> {
        let config = store.config();
        store
            .client()
            .get_item()
            .table_name(&config.table_name)
            .key(&config.hash_key, AttributeValue::S(config.item_key(sid)))
            .consistent_read(true)
            .send()
            .await
            .expect("get")
            .item
    }

    /// Items in the table (sessions and the GC checkpoint alike).
    pub async fn count_items(store: &SessionStore) -> usize {
        all_items(store).await.len()
    }

    /// Every item in the table, read with a Scan.
    pub async fn all_items(store: &SessionStore) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = store
                .client()
                .scan()
                .table_name(&store.config().table_name)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return items,
            }
        }
    }

    /// The `$php` tags PHP would build an object or a reference from
    /// (`object`, `serializable`, `enum`, `reference`, `object_reference`)
    /// in the data stored in `item`, in any format, outermost first: what a
    /// test compares with what it let in.
    pub fn stored_php_object_tags(config: &Config, item: &HashMap<String, AttributeValue>) -> Vec<serde_json::Value> {
        let stored: &[u8] = match item.get(&config.data_attribute) {
            Some(AttributeValue::S(text)) => text.as_bytes(),
            Some(AttributeValue::B(bytes)) => bytes.as_ref(),
            _ => return Vec::new(),
        };
        let Some(format) = crate::codec::DataFormat::detect(stored) else {
            panic!("stored data in no known format: {:?}", String::from_utf8_lossy(stored));
        };
        if format == crate::codec::DataFormat::Json {
            return Vec::new(); // a `$php` key is plain data there
        }
        let data = crate::codec::decode(format, stored).expect("stored data decodes");
        let mut found = Vec::new();
        let mut pending: Vec<serde_json::Value> = data.into_iter().map(|(_, value)| value).collect();
        while let Some(value) = pending.pop() {
            let kind = crate::codec::tag_kind(&value);
            if matches!(kind, Some("object" | "serializable" | "enum" | "reference" | "object_reference")) {
                found.push(value);
                continue;
            }
            match value {
                serde_json::Value::Array(items) => pending.extend(items),
                serde_json::Value::Object(map) => pending.extend(map.into_iter().map(|(_, value)| value)),
                _ => {}
            }
        }
        found
    }

    /// A JSON object literal as session data.
    pub fn data(value: serde_json::Value) -> crate::Data {
        match value {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// An action the [`Hook`] runs.
    type Action = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

    /// An interceptor that, just before the `nth` request of `operation`
    /// leaves (1-based, each SDK attempt counted), runs an action to
    /// completion, once. The intercepted request waits for it, so whatever
    /// the action writes is in the table before that request reaches it:
    /// races made deterministic. Needs a multi-threaded runtime (the action
    /// runs with `block_in_place`).
    #[derive(Clone)]
    pub struct Hook(Arc<HookState>);

    struct HookState {
        operation: &'static str,
        nth: usize,
        seen: AtomicUsize,
        action: Mutex<Option<Action>>,
    }

    impl Hook {
        /// Runs `action` before the `nth` request of `operation`.
        pub fn before<F>(operation: &'static str, nth: usize, action: impl FnOnce() -> F + Send + 'static) -> Hook
        where
            F: Future<Output = ()> + Send + 'static,
        {
            let action: Action = Box::new(move || Box::pin(action()));
            Hook(Arc::new(HookState { operation, nth, seen: AtomicUsize::new(0), action: Mutex::new(Some(action)) }))
        }

        /// Whether the action ran.
        pub fn fired(&self) -> bool {
            self.0.action.lock().expect("not poisoned").is_none()
        }

        /// Requests of the operation seen so far.
        pub fn seen(&self) -> usize {
            self.0.seen.load(Ordering::SeqCst)
        }
    }

    impl fmt::Debug for Hook {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Hook(before {} #{})", self.0.operation, self.0.nth)
        }
    }

    impl Intercept for Hook {
        fn name(&self) -> &'static str {
            "Hook"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            if operation_of(context) != self.0.operation {
                return Ok(());
            }
            if self.0.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.0.nth {
                let action = self.0.action.lock().expect("not poisoned").take();
                if let Some(action) = action {
                    // A task of its own, so the action's requests are not
                    // counted with the intercepted operation's (`calls::counted`).
                    let handle = tokio::runtime::Handle::current();
                    let done = tokio::task::block_in_place(|| handle.block_on(handle.spawn(action())));
                    done.expect("the hook's action");
                }
            }
            Ok(())
        }
    }

    /// An interceptor that keeps the JSON body of every request of one
    /// operation, to see what was asked of DynamoDB.
    #[derive(Debug, Clone)]
    pub struct RequestLog {
        operation: &'static str,
        bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    }

    impl RequestLog {
        /// Keeps the requests of `operation` (`"Scan"`, `"GetItem"`, ...).
        pub fn of(operation: &'static str) -> RequestLog {
            RequestLog { operation, bodies: Arc::default() }
        }

        /// The bodies kept so far, in order.
        pub fn bodies(&self) -> Vec<serde_json::Value> {
            self.bodies.lock().expect("not poisoned").clone()
        }

        /// Forgets the bodies kept so far.
        pub fn clear(&self) {
            self.bodies.lock().expect("not poisoned").clear();
        }
    }

    impl Intercept for RequestLog {
        fn name(&self) -> &'static str {
            "RequestLog"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            if operation_of(context) == self.operation {
                let body = context.request().body().bytes().and_then(|b| serde_json::from_slice(b).ok());
                self.bodies.lock().expect("not poisoned").push(body.unwrap_or_default());
            }
            Ok(())
        }
    }

    /// The JSON log lines `work` writes (on a current-thread runtime, as
    /// `#[tokio::test]`'s, everything it polls logs here).
    pub async fn logs_of(work: impl Future<Output = ()>) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // Callsites cache whether anyone listens; another test thread may have
        // cached "no one" while it had no subscriber. Ask again.
        tracing::callsite::rebuild_interest_cache();
        work.await;
        drop(guard);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// `client` with `interceptor` added.
    pub fn intercepted(client: &Client, interceptor: impl Intercept + 'static) -> Client {
        Client::from_conf(client.config().to_builder().interceptor(interceptor).build())
    }

    /// The DynamoDB operation of a request ("DynamoDB_20120810.GetItem" -> "GetItem").
    fn operation_of<'a>(context: &'a BeforeTransmitInterceptorContextRef<'_>) -> &'a str {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        target.rsplit('.').next().unwrap_or_default()
    }

    /// What is wrong with `line` as an Embedded Metric Format line (empty:
    /// nothing), by the specification's rules: the `_aws` root with a
    /// millisecond `Timestamp` and `CloudWatchMetrics` directives, each with a
    /// `Namespace`, dimension sets of at most 30 names that each name a string
    /// member, and at most 100 metrics that each name a number member, with a
    /// known unit.
    pub fn emf_problems(line: &serde_json::Value) -> Vec<String> {
        const UNITS: &[&str] = &[
            "Seconds",
            "Microseconds",
            "Milliseconds",
            "Bytes",
            "Kilobytes",
            "Megabytes",
            "Gigabytes",
            "Terabytes",
            "Bits",
            "Kilobits",
            "Megabits",
            "Gigabits",
            "Terabits",
            "Percent",
            "Count",
            "Bytes/Second",
            "Kilobytes/Second",
            "Megabytes/Second",
            "Gigabytes/Second",
            "Terabytes/Second",
            "Bits/Second",
            "Kilobits/Second",
            "Megabits/Second",
            "Gigabits/Second",
            "Terabits/Second",
            "Count/Second",
            "None",
        ];
        let mut problems = Vec::new();
        let aws = &line["_aws"];
        if aws["Timestamp"].as_u64().is_none_or(|ms| ms <= 1_000_000_000_000) {
            problems.push(format!("_aws.Timestamp is not epoch milliseconds: {}", aws["Timestamp"]));
        }
        let Some(directives) = aws["CloudWatchMetrics"].as_array().filter(|d| !d.is_empty()) else {
            problems.push("no _aws.CloudWatchMetrics directives".into());
            return problems;
        };
        for directive in directives {
            if directive["Namespace"].as_str().is_none_or(|ns| !(1..=255).contains(&ns.len())) {
                problems.push(format!("bad Namespace: {}", directive["Namespace"]));
            }
            for set in directive["Dimensions"].as_array().into_iter().flatten() {
                let names = set.as_array().cloned().unwrap_or_default();
                if names.len() > 30 {
                    problems.push(format!("a dimension set of {} names", names.len()));
                }
                for name in names {
                    let name = name.as_str().unwrap_or_default();
                    if !line[name].is_string() {
                        problems.push(format!("dimension {name} is not a string member"));
                    }
                }
            }
            if directive["Dimensions"].as_array().is_none() {
                problems.push("Dimensions is not an array of sets".into());
            }
            let metrics = directive["Metrics"].as_array().cloned().unwrap_or_default();
            if metrics.is_empty() || metrics.len() > 100 {
                problems.push(format!("{} metrics in a directive", metrics.len()));
            }
            for metric in metrics {
                let name = metric["Name"].as_str().unwrap_or_default();
                if !line[name].is_number() {
                    problems.push(format!("metric {name} is not a number member"));
                }
                if metric["Unit"].as_str().is_none_or(|unit| !UNITS.contains(&unit)) {
                    problems.push(format!("metric {name} has unit {}", metric["Unit"]));
                }
            }
        }
        problems
    }

    /// The metric names of an EMF line, in order.
    pub fn emf_metric_names(line: &serde_json::Value) -> Vec<String> {
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().cloned().unwrap_or_default();
        directives
            .iter()
            .flat_map(|directive| directive["Metrics"].as_array().cloned().unwrap_or_default())
            .map(|metric| metric["Name"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}
