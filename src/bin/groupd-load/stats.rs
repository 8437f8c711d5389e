//! What a measurement counts: latencies of the calls that succeeded and
//! were answered right, and the failures, by gRPC code or by what was
//! wrong, kept apart and never counted as throughput.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

use crate::cli::Kind;

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered OK, and the answer was right.
    Right,
    /// Not answered OK: the gRPC code's name (or the database error's
    /// class, in the database ceiling), and the answer's message.
    NotOk { code: String, message: String },
    /// Answered OK, but wrong: what was wrong.
    Wrong(String),
}

/// What one task, or a whole measurement, counted for one call kind.
#[derive(Debug, Clone, Default)]
pub struct KindTally {
    /// Latencies of the right answers, in nanoseconds.
    pub latencies: Vec<u64>,
    /// Answers that were not OK, by code.
    pub not_ok: BTreeMap<String, u64>,
    /// The first message of each code in `not_ok`.
    pub messages: BTreeMap<String, String>,
    /// OK answers that were wrong, by what was wrong.
    pub wrong: BTreeMap<String, u64>,
}

impl KindTally {
    /// Counts one call, its latency only when `measured` (inside the
    /// measured window) and right; failures are counted whenever they
    /// happen, warm-up included.
    pub fn record(&mut self, outcome: Outcome, latency: Duration, measured: bool) {
        match outcome {
            Outcome::Right if measured => self
                .latencies
                .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)),
            Outcome::Right => {}
            Outcome::NotOk { code, message } => {
                self.messages.entry(code.clone()).or_insert(message);
                *self.not_ok.entry(code).or_default() += 1;
            }
            Outcome::Wrong(what) => *self.wrong.entry(what).or_default() += 1,
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        for (code, count) in other.not_ok {
            *self.not_ok.entry(code).or_default() += count;
        }
        for (code, message) in other.messages {
            self.messages.entry(code).or_insert(message);
        }
        for (what, count) in other.wrong {
            *self.wrong.entry(what).or_default() += count;
        }
    }
}

/// Counts of every call kind of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub kinds: BTreeMap<Kind, KindTally>,
}

impl Tally {
    pub fn record(&mut self, kind: Kind, outcome: Outcome, latency: Duration, measured: bool) {
        self.kinds
            .entry(kind)
            .or_default()
            .record(outcome, latency, measured);
    }

    pub fn merge(&mut self, other: Self) {
        for (kind, tally) in other.kinds {
            self.kinds.entry(kind).or_default().merge(tally);
        }
    }
}

/// The figures of one call kind in one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Right answers inside the measured window.
    pub calls: u64,
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Answers that were not OK, by gRPC code.
    pub not_ok: BTreeMap<String, u64>,
    /// The first message of each code in `not_ok`.
    pub not_ok_messages: BTreeMap<String, String>,
    /// OK answers that were wrong, by what was wrong.
    pub wrong: BTreeMap<String, u64>,
}

impl Figures {
    /// The figures of `tally` over a window of `window`.
    pub fn of(mut tally: KindTally, window: Duration) -> Self {
        tally.latencies.sort_unstable();
        let sorted = &tally.latencies;
        let ms = |q: f64| percentile(sorted, q).map(|nanos| nanos as f64 / 1e6);
        let calls = sorted.len() as u64;
        Self {
            calls,
            requests_per_second: calls as f64 / window.as_secs_f64(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: sorted.last().map(|nanos| *nanos as f64 / 1e6),
            not_ok: tally.not_ok,
            not_ok_messages: tally.messages,
            wrong: tally.wrong,
        }
    }

    pub fn failures(&self) -> u64 {
        self.not_ok.values().sum::<u64>() + self.wrong.values().sum::<u64>()
    }
}

/// The `q` quantile (0 < q ≤ 1) of `sorted` by the nearest-rank method:
/// the smallest sample that at least a share `q` of the samples do not
/// exceed. `None` when there are no samples.
pub fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Figures, KindTally, Outcome, percentile};

    #[test]
    fn percentiles_are_nearest_rank() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 0.5), Some(50));
        assert_eq!(percentile(&hundred, 0.99), Some(99));
        assert_eq!(percentile(&hundred, 0.999), Some(100));
        assert_eq!(percentile(&hundred, 1.0), Some(100));
        let thousand: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&thousand, 0.5), Some(500));
        assert_eq!(percentile(&thousand, 0.99), Some(990));
        assert_eq!(percentile(&thousand, 0.999), Some(999));
        // One slow call in a thousand shows at p99.9, not at p99.
        let mut tail = vec![1; 999];
        tail.push(1_000_000);
        assert_eq!(percentile(&tail, 0.99), Some(1));
        assert_eq!(percentile(&tail, 0.999), Some(1));
        assert_eq!(percentile(&tail, 1.0), Some(1_000_000));
        tail.push(1_000_000);
        assert_eq!(percentile(&tail, 0.999), Some(1_000_000));
        assert_eq!(percentile(&[7], 0.5), Some(7));
        assert_eq!(percentile(&[7], 0.999), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn failures_are_counted_by_code_apart_from_throughput_and_latency() {
        let mut tally = KindTally::default();
        for millis in [3, 1, 2] {
            tally.record(Outcome::Right, Duration::from_millis(millis), true);
        }
        // Warm-up: a right answer is not measured, a failure is counted.
        tally.record(Outcome::Right, Duration::from_millis(100), false);
        let not_ok = |code: &str, message: &str| Outcome::NotOk {
            code: code.into(),
            message: message.into(),
        };
        tally.record(not_ok("Unavailable", "first"), Duration::ZERO, false);
        tally.record(not_ok("Unavailable", "second"), Duration::ZERO, true);
        tally.record(not_ok("Internal", "boom"), Duration::ZERO, true);
        tally.record(
            Outcome::Wrong("another group".into()),
            Duration::from_millis(9),
            true,
        );
        let figures = Figures::of(tally, Duration::from_secs(2));
        assert_eq!(figures.calls, 3);
        assert!((figures.requests_per_second - 1.5).abs() < 1e-9);
        assert_eq!(figures.p50_ms, Some(2.0));
        assert_eq!(figures.max_ms, Some(3.0));
        assert_eq!(figures.not_ok["Unavailable"], 2);
        assert_eq!(figures.not_ok["Internal"], 1);
        assert_eq!(figures.not_ok_messages["Unavailable"], "first");
        assert_eq!(figures.wrong["another group"], 1);
        assert_eq!(figures.failures(), 4);
    }
}
