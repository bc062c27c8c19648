//! Latency recording: one HdrHistogram per operation, in nanoseconds, plus the counters a run
//! reports (errors by status, late and skipped transactions).
//!
//! Each thread records into its own [`Recorder`] (no sharing on the measuring path) and hands a
//! filled one to the reporting thread at each interval boundary; the reporter merges them. The
//! per-operation summary ([`OpSummary`]) is what the text report, the JSON and the HTML show.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest latency recorded exactly: 100 s. Larger values are clamped to it.
const MAX_NS: u64 = 100_000_000_000;

/// A fresh latency histogram: 1 ns to 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid")
}

/// What one thread measured during one interval (or a whole run, once merged).
#[derive(Clone, Default)]
pub struct Recorder {
    pub ops: BTreeMap<&'static str, Histogram<u64>>,
    /// In-band error answers by status name, and client-side failures.
    pub errors: BTreeMap<String, u64>,
    /// Transactions whose latency exceeded `--latency-limit`.
    pub late: u64,
    /// Transactions skipped because they were already late when they could start (`--rate`
    /// with `--latency-limit`).
    pub skipped: u64,
    /// Transactions that failed (an error answer to one of their requests or their commit).
    pub failed: u64,
}

impl Recorder {
    pub fn record(&mut self, op: &'static str, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).clamp(1, MAX_NS);
        self.ops.entry(op).or_insert_with(new_histogram).saturating_record(ns);
    }

    pub fn error(&mut self, what: &str) {
        *self.errors.entry(what.to_string()).or_default() += 1;
    }

    pub fn count(&self, op: &str) -> u64 {
        self.ops.get(op).map_or(0, Histogram::len)
    }

    pub fn merge(&mut self, other: &Recorder) {
        for (op, histogram) in &other.ops {
            self.ops
                .entry(op)
                .or_insert_with(new_histogram)
                .add(histogram)
                .expect("histograms share bounds");
        }
        for (what, count) in &other.errors {
            *self.errors.entry(what.clone()).or_default() += count;
        }
        self.late += other.late;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn summaries(&self, elapsed: Duration) -> BTreeMap<String, OpSummary> {
        self.ops.iter().map(|(op, h)| (op.to_string(), OpSummary::of(h, elapsed))).collect()
    }
}

/// The JSON `ops.<operation>` object.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OpSummary {
    pub count: u64,
    pub throughput_per_s: f64,
    pub mean_us: f64,
    pub stddev_us: f64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl OpSummary {
    pub fn of(h: &Histogram<u64>, elapsed: Duration) -> OpSummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |quantile: f64| {
            if h.is_empty() {
                0.0
            } else {
                us(h.value_at_quantile(quantile))
            }
        };
        let seconds = elapsed.as_secs_f64();
        OpSummary {
            count: h.len(),
            throughput_per_s: if seconds > 0.0 { h.len() as f64 / seconds } else { 0.0 },
            mean_us: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            stddev_us: if h.is_empty() { 0.0 } else { h.stdev() / 1000.0 },
            min_us: if h.is_empty() { 0.0 } else { us(h.min()) },
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: if h.is_empty() { 0.0 } else { us(h.max()) },
        }
    }
}

#[cfg(test)]
mod tests;
