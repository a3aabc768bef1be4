//! Faults to inject, each at a probability, decided by one seeded generator so
//! a run is reproducible: the same seed and the same sequence of requests
//! give the same faults.
//!
//! Text form (the `--faults` flag, [`FaultConfig::from_str`]): comma-separated
//! items, each `KIND=VALUE[:QUALIFIER]...`, plus `seed=N`:
//!
//! | kind | value | the client sees |
//! |---|---|---|
//! | `500` | probability | HTTP 500 `InternalServerError` (the SDK retries it) |
//! | `503` | probability | HTTP 503 `ServiceUnavailable` (retried) |
//! | `throttle` | probability | HTTP 400 `ThrottlingException` (retried as throttling) |
//! | `ptee` | probability | HTTP 400 `ProvisionedThroughputExceededException` (retried as throttling) |
//! | `latency` | `20ms` or `10ms..50ms` | the request forwarded late (every request, or `:p=` of them) |
//! | `stall` | probability | no answer for `:for=` (default 60s), then the connection dropped; never applied |
//! | `reset` | probability | the TCP connection reset, no answer; not applied |
//! | `after-500` | probability | the request applied upstream, then HTTP 500 instead of its answer |
//! | `after-reset` | probability | the request applied upstream, then the connection reset |
//! | `late` | probability | no answer; the request applied upstream `:after=` (default 2s) later, past the client's timeout (not metered), then the connection reset |
//!
//! Qualifiers: `op=UpdateItem|PutItem` (only these operations), `table=a|b`
//! (only requests naming these tables), `times=N` (at most N times), `skip=N`
//! (the first N requests it applies to pass), `p=P`
//! (latency: the probability), `for=DURATION` (stall: how long), `after=DURATION`
//! (late: when the request lands). Durations take
//! `ms`, `s` or `m`. Example: `500=0.05,throttle=0.1:op=UpdateItem,latency=20ms,seed=7`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::SpecError;

/// How long a stall holds a request unless told otherwise.
pub const DEFAULT_STALL: Duration = Duration::from_secs(60);
/// When a late request lands unless told otherwise.
pub const DEFAULT_LATE: Duration = Duration::from_secs(2);

/// What a fault does to the request it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 500, DynamoDB's `InternalServerError`.
    InternalServerError,
    /// HTTP 503, `ServiceUnavailable`.
    ServiceUnavailable,
    /// HTTP 400, `ThrottlingException`.
    Throttling,
    /// HTTP 400, `ProvisionedThroughputExceededException`, whatever the capacity.
    ProvisionedThroughputExceeded,
    /// The request forwarded after a delay drawn uniformly from `min..=max`.
    Latency {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// No answer for `hold`, then the connection dropped; the request is never applied.
    Stall {
        /// How long the request is held.
        hold: Duration,
    },
    /// The TCP connection reset without an answer; the request is not applied.
    Reset,
    /// The request applied upstream, its answer discarded, then HTTP 500.
    InternalServerErrorAfterApplied,
    /// The request applied upstream, its answer discarded, then the connection reset.
    ResetAfterApplied,
    /// No answer: the request is applied upstream `after` this long, whatever
    /// the client did meanwhile (a commit that lands after the client's
    /// timeout), then the connection reset.
    AppliedLate {
        /// When the request is applied.
        after: Duration,
    },
}

impl FaultKind {
    /// The kind's name in the text form and in stats.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::InternalServerError => "500",
            FaultKind::ServiceUnavailable => "503",
            FaultKind::Throttling => "throttle",
            FaultKind::ProvisionedThroughputExceeded => "ptee",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Stall { .. } => "stall",
            FaultKind::Reset => "reset",
            FaultKind::InternalServerErrorAfterApplied => "after-500",
            FaultKind::ResetAfterApplied => "after-reset",
            FaultKind::AppliedLate { .. } => "late",
        }
    }
}

/// One fault, when it applies, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// What it does.
    pub kind: FaultKind,
    /// Chance, in [0, 1], that it hits a request it applies to.
    pub probability: f64,
    /// Operations it applies to (`UpdateItem`, ...); empty: all.
    pub operations: Vec<String>,
    /// Tables it applies to; empty: all requests, with or without a table.
    pub tables: Vec<String>,
    /// At most this many hits.
    pub times: Option<u64>,
    /// The first this many requests it applies to pass untouched.
    pub skip: u64,
}

impl FaultRule {
    /// `kind` hitting any request with `probability`.
    pub fn new(kind: FaultKind, probability: f64) -> Self {
        Self { kind, probability, operations: Vec::new(), tables: Vec::new(), times: None, skip: 0 }
    }

    /// Only requests of these operations.
    pub fn operations<S: Into<String>>(mut self, operations: impl IntoIterator<Item = S>) -> Self {
        self.operations = operations.into_iter().map(Into::into).collect();
        self
    }

    /// Only requests naming one of these tables.
    pub fn tables<S: Into<String>>(mut self, tables: impl IntoIterator<Item = S>) -> Self {
        self.tables = tables.into_iter().map(Into::into).collect();
        self
    }

    /// At most `n` hits.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// The first `n` requests it applies to pass untouched (the `n + 1`th
    /// is the first it may hit).
    pub fn skip(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    fn applies(&self, operation: &str, tables: &[String]) -> bool {
        (self.operations.is_empty() || self.operations.iter().any(|o| o == operation))
            && (self.tables.is_empty() || tables.iter().any(|t| self.tables.contains(t)))
    }

    fn check(&self) -> Result<(), SpecError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(SpecError::new(format!(
                "{}: probability {} is not in [0, 1]",
                self.kind.name(),
                self.probability
            )));
        }
        if let FaultKind::Latency { min, max } = self.kind {
            if min > max {
                return Err(SpecError::new(format!("latency: {min:?}..{max:?} is an empty range")));
            }
        }
        Ok(())
    }
}

/// The faults of a run and its seed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Seed of the one generator all fault decisions draw from.
    pub seed: u64,
    /// Rules, checked in order for every request.
    pub rules: Vec<FaultRule>,
}

impl FaultConfig {
    /// No faults, seed `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self { seed, rules: Vec::new() }
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Checks every probability and range.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.rules.iter().try_for_each(FaultRule::check)
    }
}

fn parse_probability(text: &str, kind: &str) -> Result<f64, SpecError> {
    match text.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(SpecError::new(format!("{kind}={text}: a probability must be a number in [0, 1]"))),
    }
}

/// `20ms`, `1.5s`, `2m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, SpecError> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(SpecError::new(format!("`{text}`: a duration needs a unit: ms, s or m (e.g. 20ms)")));
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n >= 0.0 && (n * scale).is_finite() => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(SpecError::new(format!("`{text}`: not a duration"))),
    }
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 && d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_secs_f64() * 1000.0)
    }
}

impl FromStr for FaultConfig {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let mut config = FaultConfig::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let mut parts = item.split(':');
            let head = parts.next().unwrap_or_default();
            let (kind, value) = head
                .split_once('=')
                .ok_or_else(|| SpecError::new(format!("`{item}`: expected KIND=VALUE, e.g. 500=0.05")))?;
            let (kind, value) = (kind.trim(), value.trim());
            if kind == "seed" {
                config.seed = value.parse().map_err(|_| SpecError::new(format!("seed={value}: not a whole number")))?;
                continue;
            }
            let (mut probability, mut fault) = match kind {
                "latency" => {
                    let (min, max) = match value.split_once("..") {
                        Some((min, max)) => (parse_duration(min)?, parse_duration(max)?),
                        None => (parse_duration(value)?, parse_duration(value)?),
                    };
                    (1.0, FaultKind::Latency { min, max })
                }
                _ => {
                    let fault = match kind {
                        "500" => FaultKind::InternalServerError,
                        "503" => FaultKind::ServiceUnavailable,
                        "throttle" => FaultKind::Throttling,
                        "ptee" => FaultKind::ProvisionedThroughputExceeded,
                        "stall" => FaultKind::Stall { hold: DEFAULT_STALL },
                        "reset" => FaultKind::Reset,
                        "after-500" => FaultKind::InternalServerErrorAfterApplied,
                        "after-reset" => FaultKind::ResetAfterApplied,
                        "late" => FaultKind::AppliedLate { after: DEFAULT_LATE },
                        other => {
                            return Err(SpecError::new(format!(
                                "`{other}`: unknown fault (500, 503, throttle, ptee, latency, stall, reset, after-500, after-reset, late, seed)"
                            )))
                        }
                    };
                    (parse_probability(value, kind)?, fault)
                }
            };
            let mut rule = FaultRule::new(fault, probability);
            for qualifier in parts {
                let (key, value) = qualifier
                    .split_once('=')
                    .ok_or_else(|| SpecError::new(format!("`{qualifier}` in `{item}`: expected KEY=VALUE")))?;
                let list = || value.split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
                match (key.trim(), &mut fault) {
                    ("op", _) => rule.operations = list(),
                    ("table", _) => rule.tables = list(),
                    ("skip", _) => {
                        rule.skip = value
                            .trim()
                            .parse()
                            .map_err(|_| SpecError::new(format!("skip={value}: not a whole number")))?
                    }
                    ("times", _) => {
                        rule.times =
                            Some(value.trim().parse().map_err(|_| {
                                SpecError::new(format!("times={value} in `{item}`: not a whole number"))
                            })?)
                    }
                    ("p", FaultKind::Latency { .. }) => probability = parse_probability(value, "p")?,
                    ("for", FaultKind::Stall { hold }) => *hold = parse_duration(value)?,
                    ("after", FaultKind::AppliedLate { after }) => *after = parse_duration(value)?,
                    (other, _) => {
                        return Err(SpecError::new(format!("`{other}` in `{item}`: not a qualifier of {kind}")))
                    }
                }
            }
            rule.kind = fault;
            rule.probability = probability;
            rule.check()?;
            config.rules.push(rule);
        }
        Ok(config)
    }
}

impl fmt::Display for FaultConfig {
    /// The text form, which parses back to the same configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.rules {
            match rule.kind {
                FaultKind::Latency { min, max } if min == max => write!(f, "latency={}", format_duration(min))?,
                FaultKind::Latency { min, max } => {
                    write!(f, "latency={}..{}", format_duration(min), format_duration(max))?
                }
                kind => write!(f, "{}={}", kind.name(), rule.probability)?,
            }
            if matches!(rule.kind, FaultKind::Latency { .. }) && rule.probability < 1.0 {
                write!(f, ":p={}", rule.probability)?;
            }
            if let FaultKind::Stall { hold } = rule.kind {
                write!(f, ":for={}", format_duration(hold))?;
            }
            if let FaultKind::AppliedLate { after } = rule.kind {
                write!(f, ":after={}", format_duration(after))?;
            }
            if !rule.operations.is_empty() {
                write!(f, ":op={}", rule.operations.join("|"))?;
            }
            if !rule.tables.is_empty() {
                write!(f, ":table={}", rule.tables.join("|"))?;
            }
            if let Some(times) = rule.times {
                write!(f, ":times={times}")?;
            }
            if rule.skip > 0 {
                write!(f, ":skip={}", rule.skip)?;
            }
            f.write_str(",")?;
        }
        write!(f, "seed={}", self.seed)
    }
}

/// What the faults decided for one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Decision {
    /// Added before forwarding (sum of the latency rules that hit).
    pub(crate) latency: Duration,
    /// The first other fault that hit.
    pub(crate) fault: Option<FaultKind>,
}

/// The rules of a run, their hit counts and the generator.
#[derive(Debug)]
pub(crate) struct FaultPlan {
    config: FaultConfig,
    hits: Vec<u64>,
    /// Requests each rule applied to.
    seen: Vec<u64>,
    rng: StdRng,
}

impl FaultPlan {
    pub(crate) fn new(config: FaultConfig) -> Self {
        let (hits, seen) = (vec![0; config.rules.len()], vec![0; config.rules.len()]);
        let rng = StdRng::seed_from_u64(config.seed);
        Self { config, hits, seen, rng }
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Draws once for every rule that applies to the request (whether or not
    /// an earlier one hit), so each rule sees the same draws run after run.
    pub(crate) fn decide(&mut self, operation: &str, tables: &[String]) -> Decision {
        let mut decision = Decision::default();
        for ((rule, hits), seen) in self.config.rules.iter().zip(self.hits.iter_mut()).zip(self.seen.iter_mut()) {
            if !rule.applies(operation, tables) {
                continue;
            }
            *seen += 1;
            let hit = self.rng.random::<f64>() < rule.probability;
            let spent = rule.times.is_some_and(|times| *hits >= times);
            if !hit || spent || *seen <= rule.skip {
                continue;
            }
            match rule.kind {
                FaultKind::Latency { min, max } => {
                    *hits += 1;
                    let nanos = self.rng.random_range(min.as_nanos() as u64..=max.as_nanos() as u64);
                    decision.latency += Duration::from_nanos(nanos);
                }
                kind if decision.fault.is_none() => {
                    *hits += 1;
                    decision.fault = Some(kind);
                }
                _ => {}
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_parses_every_kind_and_qualifier_and_prints_back() {
        let text =
            "500=0.05,503=0.01,throttle=0.1:op=UpdateItem|PutItem,ptee=0.2:table=sessions,latency=10ms..50ms:p=0.5,\
                    stall=0.01:for=2s,reset=0.02:times=3,after-500=0.1,after-reset=1,late=1:after=1500ms:skip=2,seed=7";
        let config: FaultConfig = text.parse().unwrap();
        assert_eq!(config.seed, 7);
        assert_eq!(config.rules.len(), 10);
        assert_eq!(config.rules[2].operations, vec!["UpdateItem", "PutItem"]);
        assert_eq!(config.rules[3].tables, vec!["sessions"]);
        assert_eq!(
            config.rules[4],
            FaultRule::new(FaultKind::Latency { min: Duration::from_millis(10), max: Duration::from_millis(50) }, 0.5)
        );
        assert_eq!(config.rules[5].kind, FaultKind::Stall { hold: Duration::from_secs(2) });
        assert_eq!(config.rules[6].times, Some(3));
        assert_eq!(config.rules[8].kind, FaultKind::ResetAfterApplied);
        assert_eq!(config.rules[9].kind, FaultKind::AppliedLate { after: Duration::from_millis(1500) });
        assert_eq!(config.rules[9].skip, 2);
        let printed = config.to_string();
        assert_eq!(printed.parse::<FaultConfig>().unwrap(), config, "{printed}");
        let fixed: FaultConfig = "latency=20ms".parse().unwrap();
        assert_eq!(fixed.rules[0].probability, 1.0);
    }

    #[test]
    fn bad_fault_specs_say_what_is_wrong() {
        for (bad, says) in [
            ("500=1.5", "[0, 1]"),
            ("500", "KIND=VALUE"),
            ("boom=0.1", "unknown fault"),
            ("latency=20", "unit"),
            ("latency=50ms..10ms", "empty range"),
            ("500=0.1:for=2s", "not a qualifier"),
            ("reset=0.1:times=x", "whole number"),
            ("seed=-1", "seed"),
        ] {
            let err = bad.parse::<FaultConfig>().unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    fn hits(plan: &mut FaultPlan, n: usize) -> Vec<Option<FaultKind>> {
        (0..n).map(|_| plan.decide("PutItem", &["t".to_string()]).fault).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_and_the_rate_follows_the_probability() {
        let config: FaultConfig = "500=0.3,seed=42".parse().unwrap();
        let first = hits(&mut FaultPlan::new(config.clone()), 1000);
        assert_eq!(first, hits(&mut FaultPlan::new(config), 1000));
        let count = first.iter().filter(|f| f.is_some()).count();
        assert!((240..=360).contains(&count), "{count} of 1000 at p=0.3");
        let other = hits(&mut FaultPlan::new("500=0.3,seed=43".parse().unwrap()), 1000);
        assert_ne!(first, other);
    }

    #[test]
    fn filters_and_limits_restrict_where_a_fault_lands() {
        let mut plan = FaultPlan::new("500=1:op=UpdateItem:table=a,reset=1:times=2".parse().unwrap());
        let a = ["a".to_string()];
        assert_eq!(plan.decide("UpdateItem", &a).fault, Some(FaultKind::InternalServerError));
        assert_eq!(plan.decide("GetItem", &a).fault, Some(FaultKind::Reset));
        assert_eq!(plan.decide("UpdateItem", &["b".to_string()]).fault, Some(FaultKind::Reset));
        assert_eq!(plan.decide("GetItem", &a).fault, None, "reset is spent after two hits");
        assert_eq!(plan.decide("UpdateItem", &a).fault, Some(FaultKind::InternalServerError));
    }

    #[test]
    fn latency_adds_up_and_stays_in_its_range() {
        let mut plan = FaultPlan::new("latency=10ms..20ms,latency=5ms,seed=1".parse().unwrap());
        for _ in 0..100 {
            let decision = plan.decide("GetItem", &[]);
            assert!(decision.latency >= Duration::from_millis(15) && decision.latency <= Duration::from_millis(25));
            assert_eq!(decision.fault, None);
        }
    }
}
