//! What a command measured, and its machine-readable form (`--json`).
//!
//! JSON schema, version 1 (documented for users in `bench/README.md`; keys are only ever added):
//!
//! ```text
//! { "schema_version": 1, "tool": "pagecore-bench", "version": "...", "command": "run",
//!   "started_unix_s": f64, "duration_s": f64, "config": {...},
//!   "throughput_per_s": f64,            // transactions/s (run), pages/s (init), replies/s (ceiling)
//!   "errors": {"<what>": n}, "late": n, "skipped": n, "failed": n,
//!   "ops": { "<op>": { "count", "throughput_per_s", "mean_us", "stddev_us", "min_us", "p50_us",
//!                      "p90_us", "p99_us", "p999_us", "p9999_us", "max_us" } },
//!   "intervals": [ { "start_s", "duration_s", "throughput_per_s", "errors",
//!                    "ops": { "<op>": { "count",
//!                    "p50_us", "p99_us", "max_us" } } } ],
//!   "ceiling": {...}, "ratios": {...}, ...command-specific keys }
//! ```

use crate::stats::{OpSummary, Recorder};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// One reporting interval, kept compact: a long run keeps one of these per `--progress` period,
/// so the histograms are stored V2-compressed (a few hundred bytes) rather than as counts.
pub struct Interval {
    pub start: Duration,
    pub duration: Duration,
    /// Completed units (transactions, pages, replies) in the interval.
    pub units: u64,
    pub ops: BTreeMap<String, IntervalOp>,
    /// Error answers and failed transactions in the interval.
    pub errors: u64,
}

pub struct IntervalOp {
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub max_ns: u64,
    /// The interval's histogram, V2 deflate-compressed and base64-encoded, as an HdrHistogram
    /// interval log line carries it.
    pub encoded: String,
}

impl Interval {
    pub fn new(start: Duration, duration: Duration, units: u64, recorder: &Recorder) -> Interval {
        let ops = recorder
            .ops
            .iter()
            .map(|(op, h)| {
                let s = OpSummary::of(h, duration);
                let mut bytes = Vec::new();
                V2DeflateSerializer::new()
                    .serialize(h, &mut bytes)
                    .expect("serializing into memory");
                let encoded = base64(&bytes);
                let op_summary = IntervalOp {
                    count: s.count,
                    p50_us: s.p50_us,
                    p99_us: s.p99_us,
                    max_us: s.max_us,
                    max_ns: h.max(),
                    encoded,
                };
                (op.to_string(), op_summary)
            })
            .collect();
        Interval { start, duration, units, ops, errors: recorder.error_count() + recorder.failed }
    }
}

pub struct Report {
    pub command: &'static str,
    pub config: Value,
    pub started: SystemTime,
    pub elapsed: Duration,
    pub throughput_per_s: f64,
    /// What `throughput_per_s` counts, for people: "tps", "pages/s", "replies/s".
    pub throughput_unit: &'static str,
    pub total: Recorder,
    pub intervals: Vec<Interval>,
    /// Command-specific top-level keys (`ceiling`, `ratios`, `transactions`, …).
    pub extra: Map<String, Value>,
}

impl Report {
    pub fn summaries(&self) -> BTreeMap<String, OpSummary> {
        self.total.summaries(self.elapsed)
    }

    pub fn json(&self) -> Value {
        let started = self.started.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let intervals: Vec<Value> = self
            .intervals
            .iter()
            .map(|interval| {
                let ops: Map<String, Value> = interval
                    .ops
                    .iter()
                    .map(|(op, s)| {
                        (op.clone(), json!({ "count": s.count, "p50_us": s.p50_us, "p99_us": s.p99_us, "max_us": s.max_us }))
                    })
                    .collect();
                json!({
                    "start_s": interval.start.as_secs_f64(),
                    "duration_s": interval.duration.as_secs_f64(),
                    "throughput_per_s": per_second(interval.units, interval.duration),
                    "errors": interval.errors,
                    "ops": ops,
                })
            })
            .collect();
        let mut root = json!({
            "schema_version": 1,
            "tool": "pagecore-bench",
            "version": env!("CARGO_PKG_VERSION"),
            "command": self.command,
            "started_unix_s": started.as_secs_f64(),
            "duration_s": self.elapsed.as_secs_f64(),
            "config": self.config,
            "throughput_per_s": self.throughput_per_s,
            "errors": self.total.errors,
            "late": self.total.late,
            "skipped": self.total.skipped,
            "failed": self.total.failed,
            "ops": self.summaries(),
            "intervals": intervals,
        });
        let object = root.as_object_mut().expect("a JSON object");
        for (key, value) in &self.extra {
            object.insert(key.clone(), value.clone());
        }
        root
    }

    /// The per-operation latency table of the text summary.
    pub fn latency_table(&self) -> String {
        let mut text = format!(
            "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "operation",
            "count",
            "mean ms",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "p99.99 ms",
            "max ms"
        );
        for (op, s) in self.summaries() {
            text +=
                &format!(
                "{:<16} {:>10} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}\n",
                op, s.count, s.mean_us / 1e3, s.p50_us / 1e3, s.p90_us / 1e3, s.p99_us / 1e3,
                s.p999_us / 1e3, s.p9999_us / 1e3, s.max_us / 1e3
            );
        }
        text
    }

    /// Writes `--json`, `--hdr-log` and `--html` outputs that were asked for.
    pub fn write_outputs(&self, outputs: &crate::Outputs) -> anyhow::Result<()> {
        use anyhow::Context;
        if let Some(path) = &outputs.json {
            let text = serde_json::to_string_pretty(&self.json())?;
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &outputs.hdr_log {
            crate::hdr_log::write(self, path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &outputs.html {
            std::fs::write(path, crate::html::render(self))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// Standard base64 with padding, as interval logs carry histograms. (Ten lines here rather
/// than a direct dependency on a base64 crate.)
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(word >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

pub fn per_second(count: u64, duration: Duration) -> f64 {
    let seconds = duration.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
