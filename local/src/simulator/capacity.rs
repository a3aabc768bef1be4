//! Provisioned capacity per table, as DynamoDB meters it: one token bucket for
//! reads and one for writes, refilled at the provisioned rate, holding up to
//! `burst_seconds` (DynamoDB: 300) of unused capacity.
//!
//! Admission follows DynamoDB's "tokens available" rule: a request gets in
//! while its bucket holds credit, is debited its minimum charge at once (so
//! concurrent requests cannot all slip through on the same credit), and is
//! settled to what it really consumed when the answer comes back. A large item
//! can put the bucket in debt; refill pays it back before anything else gets in.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::SpecError;

/// Read and write capacity units per second, as in a table's `ProvisionedThroughput`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throughput {
    /// Read capacity units per second (one strongly consistent 4 KB read each).
    pub read: u32,
    /// Write capacity units per second (one 1 KB write each).
    pub write: u32,
}

impl Throughput {
    /// `read` RCU and `write` WCU per second.
    pub fn new(read: u32, write: u32) -> Self {
        Self { read, write }
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.read, self.write)
    }
}

impl FromStr for Throughput {
    type Err = SpecError;

    /// `READ/WRITE`, each a whole number of units of at least 1 (DynamoDB's minimum).
    fn from_str(text: &str) -> Result<Self, SpecError> {
        let (read, write) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| SpecError::new(format!("`{text}`: expected READ/WRITE capacity units, e.g. 5/5")))?;
        let units = |part: &str, what: &str| -> Result<u32, SpecError> {
            match part.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => {
                    Err(SpecError::new(format!("`{text}`: {what} capacity units must be a whole number of at least 1")))
                }
            }
        };
        Ok(Self { read: units(read, "read")?, write: units(write, "write")? })
    }
}

/// How one table is billed in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCapacity {
    /// Provisioned capacity: requests beyond it (and its burst credit) are throttled.
    Provisioned(Throughput),
    /// `PAY_PER_REQUEST`: never throttled for capacity (consumption is still counted).
    OnDemand,
}

impl fmt::Display for TableCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableCapacity::Provisioned(throughput) => throughput.fmt(f),
            TableCapacity::OnDemand => f.write_str("on-demand"),
        }
    }
}

impl FromStr for TableCapacity {
    type Err = SpecError;

    /// `READ/WRITE` or `on-demand`.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        match text.trim() {
            "on-demand" | "pay-per-request" | "PAY_PER_REQUEST" => Ok(TableCapacity::OnDemand),
            other => other.parse().map(TableCapacity::Provisioned),
        }
    }
}

/// How full each bucket is when the simulator first meters a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialCredit {
    /// Holding all the burst credit it can (a table idle for a while).
    #[default]
    Full,
    /// Empty: only the provisioned rate, from the first request on (strict tests).
    Empty,
}

impl FromStr for InitialCredit {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        match text.trim() {
            "full" => Ok(InitialCredit::Full),
            "empty" => Ok(InitialCredit::Empty),
            other => Err(SpecError::new(format!("`{other}`: expected `full` or `empty`"))),
        }
    }
}

/// DynamoDB retains up to five minutes of unused read and write capacity.
pub const DYNAMODB_BURST_SECONDS: u32 = 300;

/// Which tables are limited, and how. A table's capacity is, first found:
/// its entry in `tables` (or [`super::RunningSimulator::set_capacity`]); what a
/// `CreateTable`/`UpdateTable` through the simulator declared
/// (`ProvisionedThroughput`, or `PAY_PER_REQUEST`); `default`, unless the
/// upstream reports the table `PAY_PER_REQUEST`; else unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    /// Provisioned capacity of every table that has no other.
    pub default: Option<Throughput>,
    /// Per-table capacity, overriding everything else.
    pub tables: BTreeMap<String, TableCapacity>,
    /// Seconds of unused capacity a bucket retains (at least one second's worth is always held).
    pub burst_seconds: u32,
    /// How full the buckets start.
    pub initial_credit: InitialCredit,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        Self {
            default: None,
            tables: BTreeMap::new(),
            burst_seconds: DYNAMODB_BURST_SECONDS,
            initial_credit: InitialCredit::Full,
        }
    }
}

impl CapacityConfig {
    /// Every table provisioned at `default`, DynamoDB's 300 s of burst, buckets full.
    pub fn new(default: Throughput) -> Self {
        Self { default: Some(default), ..Self::default() }
    }

    /// Gives `table` its own capacity.
    pub fn table(mut self, table: impl Into<String>, capacity: TableCapacity) -> Self {
        self.tables.insert(table.into(), capacity);
        self
    }

    /// Sets the seconds of unused capacity retained (0: only the current second's).
    pub fn burst_seconds(mut self, seconds: u32) -> Self {
        self.burst_seconds = seconds;
        self
    }

    /// Sets how full the buckets start.
    pub fn initial_credit(mut self, credit: InitialCredit) -> Self {
        self.initial_credit = credit;
        self
    }
}

impl FromStr for CapacityConfig {
    type Err = SpecError;

    /// `[READ/WRITE][,TABLE=READ/WRITE|TABLE=on-demand]...`: the default, then
    /// per-table entries, e.g. `5/5` or `5/5,audit=on-demand,hot=100/50`.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        let mut config = CapacityConfig::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((table, capacity)) if !table.trim().is_empty() => {
                    config.tables.insert(table.trim().to_string(), capacity.parse()?);
                }
                Some(_) => return Err(SpecError::new(format!("`{part}`: a table name must come before `=`"))),
                None if config.default.is_none() => config.default = Some(part.parse()?),
                None => return Err(SpecError::new(format!("`{part}`: only one default READ/WRITE is allowed"))),
            }
        }
        if config.default.is_none() && config.tables.is_empty() {
            return Err(SpecError::new(format!("`{text}`: expected READ/WRITE capacity units, e.g. 5/5")));
        }
        Ok(config)
    }
}

impl fmt::Display for CapacityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.default {
            Some(default) => write!(f, "every table {default} RCU/WCU")?,
            None => f.write_str("tables as created")?,
        }
        for (table, capacity) in &self.tables {
            write!(f, ", {table} {capacity}")?;
        }
        let start = match self.initial_credit {
            InitialCredit::Full => "full",
            InitialCredit::Empty => "empty",
        };
        write!(f, "; burst credit up to {} s, starting {start}", self.burst_seconds)
    }
}

/// Which bucket a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    Read,
    Write,
}

/// The time buckets refill by: the real clock plus whatever tests advanced it
/// by, or (manual) only what tests advanced it by.
#[derive(Debug)]
pub(crate) struct Clock {
    manual: bool,
    origin: Instant,
    advanced: Mutex<Duration>,
}

impl Clock {
    pub(crate) fn new(manual: bool) -> Self {
        Self { manual, origin: Instant::now(), advanced: Mutex::new(Duration::ZERO) }
    }

    pub(crate) fn now(&self) -> Duration {
        let advanced = *self.advanced.lock().expect("clock lock");
        if self.manual {
            advanced
        } else {
            self.origin.elapsed() + advanced
        }
    }

    pub(crate) fn advance(&self, by: Duration) {
        *self.advanced.lock().expect("clock lock") += by;
    }
}

/// One table's read or write bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenBucket {
    rate: f64,
    size: f64,
    balance: f64,
    updated: Duration,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst_seconds: u32, initial: InitialCredit, now: Duration) -> Self {
        let rate = f64::from(rate);
        let size = rate * f64::from(burst_seconds.max(1));
        let balance = match initial {
            InitialCredit::Full => size,
            InitialCredit::Empty => 0.0,
        };
        Self { rate, size, balance, updated: now }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.updated).as_secs_f64();
        self.balance = (self.balance + elapsed * self.rate).min(self.size);
        self.updated = self.updated.max(now);
    }

    /// Whether a request may start now; if so it is debited `minimum` units.
    pub(crate) fn admit(&mut self, minimum: f64, now: Duration) -> bool {
        self.refill(now);
        if self.balance <= 1e-9 {
            return false;
        }
        self.balance -= minimum;
        true
    }

    /// Debits (or, negative, refunds) `units` after the fact.
    pub(crate) fn charge(&mut self, units: f64, now: Duration) {
        self.refill(now);
        self.balance = (self.balance - units).min(self.size);
    }

    pub(crate) fn balance(&mut self, now: Duration) -> f64 {
        self.refill(now);
        self.balance
    }

    /// Keeps the credit held (up to the new size) when the table's capacity changes.
    fn resize(&mut self, rate: u32, burst_seconds: u32, now: Duration) {
        self.refill(now);
        self.rate = f64::from(rate);
        self.size = self.rate * f64::from(burst_seconds.max(1));
        self.balance = self.balance.min(self.size);
    }
}

#[derive(Debug, Default)]
struct TableState {
    /// What a CreateTable/UpdateTable through the simulator declared.
    declared: Option<TableCapacity>,
    /// What the upstream said of the table's billing, when asked.
    upstream_on_demand: Option<bool>,
    read: Option<TokenBucket>,
    write: Option<TokenBucket>,
}

/// The capacity of every table the simulator has seen, and their buckets.
#[derive(Debug)]
pub(crate) struct Ledger {
    config: CapacityConfig,
    tables: HashMap<String, TableState>,
}

impl Ledger {
    pub(crate) fn new(config: CapacityConfig) -> Self {
        Self { config, tables: HashMap::new() }
    }

    pub(crate) fn config(&self) -> &CapacityConfig {
        &self.config
    }

    /// The table's capacity by the precedence in [`CapacityConfig`]; `None` is unlimited.
    pub(crate) fn capacity(&self, table: &str) -> Option<TableCapacity> {
        if let Some(capacity) = self.config.tables.get(table) {
            return Some(*capacity);
        }
        let state = self.tables.get(table);
        if let Some(declared) = state.and_then(|s| s.declared) {
            return Some(declared);
        }
        if state.and_then(|s| s.upstream_on_demand) == Some(true) {
            return Some(TableCapacity::OnDemand);
        }
        self.config.default.map(TableCapacity::Provisioned)
    }

    /// Whether the table's capacity hangs on its upstream billing mode, not yet known.
    pub(crate) fn needs_billing_mode(&self, table: &str) -> bool {
        self.config.default.is_some()
            && !self.config.tables.contains_key(table)
            && self.tables.get(table).is_none_or(|s| s.declared.is_none() && s.upstream_on_demand.is_none())
    }

    pub(crate) fn note_billing_mode(&mut self, table: &str, on_demand: bool, now: Duration) {
        self.tables.entry(table.to_string()).or_default().upstream_on_demand = Some(on_demand);
        self.resize(table, now);
    }

    /// Records what a CreateTable/UpdateTable through the simulator asked for.
    pub(crate) fn declare(&mut self, table: &str, capacity: TableCapacity, now: Duration) {
        self.tables.entry(table.to_string()).or_default().declared = Some(capacity);
        self.resize(table, now);
    }

    /// A table deleted through the simulator starts afresh if created again.
    pub(crate) fn forget(&mut self, table: &str) {
        self.tables.remove(table);
    }

    pub(crate) fn set_override(&mut self, table: &str, capacity: TableCapacity, now: Duration) {
        self.config.tables.insert(table.to_string(), capacity);
        self.resize(table, now);
    }

    /// Fits the table's buckets to its capacity now, creating them if it has
    /// none yet: a table's buckets start when the simulator first learns its
    /// capacity (its CreateTable, or its first request).
    fn resize(&mut self, table: &str, now: Duration) {
        let capacity = self.capacity(table);
        let (burst, initial) = (self.config.burst_seconds, self.config.initial_credit);
        let state = self.tables.entry(table.to_string()).or_default();
        match capacity {
            Some(TableCapacity::Provisioned(t)) => {
                for (slot, rate) in [(&mut state.read, t.read), (&mut state.write, t.write)] {
                    match slot {
                        Some(bucket) => bucket.resize(rate, burst, now),
                        None => *slot = Some(TokenBucket::new(rate, burst, initial, now)),
                    }
                }
            }
            _ => {
                state.read = None;
                state.write = None;
            }
        }
    }

    fn bucket(&mut self, table: &str, access: Access, now: Duration) -> Option<&mut TokenBucket> {
        let Some(TableCapacity::Provisioned(throughput)) = self.capacity(table) else { return None };
        let (burst, initial) = (self.config.burst_seconds, self.config.initial_credit);
        let state = self.tables.entry(table.to_string()).or_default();
        let (slot, rate) = match access {
            Access::Read => (&mut state.read, throughput.read),
            Access::Write => (&mut state.write, throughput.write),
        };
        Some(slot.get_or_insert_with(|| TokenBucket::new(rate, burst, initial, now)))
    }

    /// Admits a request needing `minimum` units of `access` on `table`, debiting them.
    pub(crate) fn admit(&mut self, table: &str, access: Access, minimum: f64, now: Duration) -> bool {
        self.bucket(table, access, now).is_none_or(|bucket| bucket.admit(minimum, now))
    }

    /// Debits (or refunds, negative) `units` on a limited table.
    pub(crate) fn charge(&mut self, table: &str, access: Access, units: f64, now: Duration) {
        if let Some(bucket) = self.bucket(table, access, now) {
            bucket.charge(units, now);
        }
    }

    /// Units left in the table's bucket (`None` when unlimited).
    pub(crate) fn balance(&mut self, table: &str, access: Access, now: Duration) -> Option<f64> {
        self.bucket(table, access, now).map(|bucket| bucket.balance(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_empty_bucket_admits_the_provisioned_rate_and_no_more() {
        let mut bucket = TokenBucket::new(5, 0, InitialCredit::Empty, secs(0));
        assert!(!bucket.admit(1.0, secs(0)), "no credit before any time has passed");
        let admitted = (0..20).filter(|_| bucket.admit(1.0, secs(1))).count();
        assert_eq!(admitted, 5);
        let admitted = (0..20).filter(|_| bucket.admit(1.0, secs(3))).count();
        assert_eq!(admitted, 5, "without burst credit, two idle seconds still hold only one second's worth");
    }

    #[test]
    fn burst_credit_accumulates_while_idle_up_to_the_burst_window() {
        let mut bucket = TokenBucket::new(5, 300, InitialCredit::Empty, secs(0));
        assert_eq!(bucket.balance(secs(10)), 50.0);
        assert_eq!(bucket.balance(secs(300)), 1500.0);
        assert_eq!(bucket.balance(secs(3600)), 1500.0, "300 s worth at most");
        let admitted = (0..2000).filter(|_| bucket.admit(1.0, secs(3600))).count();
        assert_eq!(admitted, 1500);
    }

    #[test]
    fn a_full_bucket_starts_with_the_whole_burst() {
        let mut bucket = TokenBucket::new(5, 300, InitialCredit::Full, secs(0));
        assert_eq!(bucket.balance(secs(0)), 1500.0);
    }

    #[test]
    fn a_large_item_puts_the_bucket_in_debt_that_refill_repays_first() {
        let mut bucket = TokenBucket::new(5, 0, InitialCredit::Full, secs(0));
        assert!(bucket.admit(1.0, secs(0)));
        bucket.charge(19.0, secs(0)); // a 20 KB write
        assert_eq!(bucket.balance(secs(0)), -15.0);
        assert!(!bucket.admit(1.0, secs(3)), "3 s repay 15 units: still no credit");
        assert!(bucket.admit(1.0, secs(4)));
    }

    #[test]
    fn capacity_precedence_override_then_declared_then_on_demand_upstream_then_default() {
        let config = CapacityConfig::new(Throughput::new(5, 5)).table("pinned", TableCapacity::OnDemand);
        let mut ledger = Ledger::new(config);
        assert_eq!(ledger.capacity("any"), Some(TableCapacity::Provisioned(Throughput::new(5, 5))));
        assert!(ledger.needs_billing_mode("any"));
        ledger.note_billing_mode("any", true, secs(0));
        assert_eq!(ledger.capacity("any"), Some(TableCapacity::OnDemand));
        ledger.declare("made", TableCapacity::Provisioned(Throughput::new(1, 2)), secs(0));
        assert_eq!(ledger.capacity("made"), Some(TableCapacity::Provisioned(Throughput::new(1, 2))));
        assert!(!ledger.needs_billing_mode("made"));
        ledger.declare("pinned", TableCapacity::Provisioned(Throughput::new(1, 1)), secs(0));
        assert_eq!(ledger.capacity("pinned"), Some(TableCapacity::OnDemand));
        assert!(ledger.admit("pinned", Access::Write, 1e6, secs(0)), "on-demand is never throttled");
        assert_eq!(Ledger::new(CapacityConfig::default()).capacity("any"), None);
    }

    #[test]
    fn changing_a_tables_capacity_keeps_its_credit_within_the_new_size() {
        let mut ledger = Ledger::new(CapacityConfig::new(Throughput::new(10, 10)).burst_seconds(0));
        assert_eq!(ledger.balance("t", Access::Write, secs(0)), Some(10.0));
        ledger.set_override("t", TableCapacity::Provisioned(Throughput::new(1, 2)), secs(0));
        assert_eq!(ledger.balance("t", Access::Write, secs(0)), Some(2.0));
        ledger.set_override("t", TableCapacity::OnDemand, secs(0));
        assert_eq!(ledger.balance("t", Access::Write, secs(0)), None);
    }

    #[test]
    fn capacity_specs_parse_and_bad_ones_say_why() {
        let config: CapacityConfig = "5/10, audit=on-demand ,hot=100/50".parse().unwrap();
        assert_eq!(config.default, Some(Throughput::new(5, 10)));
        assert_eq!(config.tables["audit"], TableCapacity::OnDemand);
        assert_eq!(config.tables["hot"], TableCapacity::Provisioned(Throughput::new(100, 50)));
        let only_table: CapacityConfig = "sessions=1/1".parse().unwrap();
        assert_eq!(only_table.default, None);
        for bad in ["", "5", "5/0", "x/5", "5/5,6/6", "=5/5", "t=fast"] {
            let err = bad.parse::<CapacityConfig>().unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
        assert!("0/5".parse::<Throughput>().unwrap_err().to_string().contains("read"));
    }
}
