//! The dashboard's memory: a bounded ring of samples taken every `metrics.dashboard_sample_ms`
//! by the admin side's sampler thread, each the difference between two successive core
//! snapshots (rates, latency percentiles of that interval, per-core load, ingest lag), plus
//! the latency histogram of the last minute.
//!
//! The server keeps the history (not the browser) so a freshly opened dashboard shows the
//! last minutes at once, and an open one only fetches the samples it has not seen
//! (`/dashboard/data?after=SEQ`). Memory is bounded by `metrics.dashboard_history` samples.

use super::{CoreSnapshot, Histogram, Op, RequestKind, BOUNDS_NS, OPS, REQUEST_KINDS};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the "current" histogram reaches.
const HISTOGRAM_WINDOW: Duration = Duration::from_secs(60);

/// Latency of one operation over one sample interval. Seconds; `None` without data.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct OpSample {
    pub(crate) count: u64,
    pub(crate) per_s: f64,
    pub(crate) p50: Option<f64>,
    pub(crate) p90: Option<f64>,
    pub(crate) p99: Option<f64>,
    pub(crate) p999: Option<f64>,
    pub(crate) max: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct CoreSample {
    /// Share of the interval the core's thread was on a CPU (0..1).
    pub(crate) load: f64,
    pub(crate) requests_per_s: f64,
    pub(crate) connections: u64,
    pub(crate) in_progress: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Sample {
    pub(crate) seq: u64,
    pub(crate) unix_ms: u64,
    pub(crate) interval_s: f64,
    /// One entry per [`Op::ALL`], same order.
    pub(crate) ops: Vec<OpSample>,
    /// Requests per second by [`RequestKind::ALL`], same order.
    pub(crate) requests_per_s: Vec<f64>,
    pub(crate) errors_per_s: f64,
    pub(crate) pages_per_s: f64,
    pub(crate) received_bytes_per_s: f64,
    pub(crate) sent_bytes_per_s: f64,
    pub(crate) wal_bytes_per_s: f64,
    pub(crate) cores: Vec<CoreSample>,
    /// Ingest lag summed over all timelines: accepted → durable, durable → layer files.
    pub(crate) lag_commit_bytes: u64,
    pub(crate) lag_layers_bytes: u64,
    pub(crate) in_memory_bytes: u64,
    /// Buffer cache hit ratio over the interval (0..1); `None` without a cache or lookups.
    pub(crate) cache_hit_ratio: Option<f64>,
}

/// Cumulative totals at one instant, to difference against the next.
#[derive(Clone)]
struct Totals {
    at: Instant,
    latency: [Histogram; OPS],
    requests: [u64; REQUEST_KINDS],
    errors: u64,
    pages: u64,
    received: u64,
    sent: u64,
    wal_bytes: u64,
    cores: Vec<(u64, u64)>,
    /// Buffer cache `(hits, misses)`, `None` when no core has a cache.
    cache: Option<(u64, u64)>,
}

impl Totals {
    fn of(at: Instant, snapshots: &[CoreSnapshot]) -> Totals {
        let mut totals = Totals {
            at,
            latency: [Histogram::default(); OPS],
            requests: [0; REQUEST_KINDS],
            errors: 0,
            pages: 0,
            received: 0,
            sent: 0,
            wal_bytes: 0,
            cores: Vec::new(),
            cache: None,
        };
        for core in snapshots {
            for (sum, histogram) in totals.latency.iter_mut().zip(&core.latency) {
                sum.add(histogram);
            }
            let tenants = core.tenant_total();
            for (sum, count) in totals.requests.iter_mut().zip(&tenants.requests) {
                *sum += count;
            }
            totals.errors += tenants.errors;
            totals.pages += tenants.pages;
            totals.received += core.bytes_received;
            totals.sent += core.bytes_sent;
            totals.wal_bytes += core.wal_bytes;
            totals.cores.push((core.cpu_ns, tenants.requests.iter().sum()));
            if let Some(stats) = core.cache {
                let (hits, misses) = totals.cache.unwrap_or((0, 0));
                totals.cache = Some((hits + stats.hits, misses + stats.misses));
            }
        }
        totals
    }
}

/// The ring of samples.
pub(crate) struct History {
    capacity: usize,
    samples: VecDeque<Sample>,
    next_seq: u64,
    last: Option<Totals>,
    /// Cumulative latency histograms of the last [`HISTOGRAM_WINDOW`].
    window: VecDeque<(Instant, [Histogram; OPS])>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        History {
            capacity,
            samples: VecDeque::with_capacity(capacity),
            next_seq: 1,
            last: None,
            window: VecDeque::new(),
        }
    }

    /// Adds a sample from the cores' snapshots taken at `at` (the first call only sets the
    /// baseline).
    pub(crate) fn add(&mut self, at: Instant, unix_ms: u64, snapshots: &[CoreSnapshot]) {
        let totals = Totals::of(at, snapshots);
        while self.window.front().is_some_and(|(t, _)| at.duration_since(*t) > HISTOGRAM_WINDOW) {
            self.window.pop_front();
        }
        self.window.push_back((at, totals.latency));
        let Some(last) = self.last.replace(totals.clone()) else { return };
        let interval_s = at.duration_since(last.at).as_secs_f64().max(1e-3);
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / interval_s;
        let ops = totals
            .latency
            .iter()
            .zip(&last.latency)
            .map(|(now, then)| {
                let delta = now.since(then);
                OpSample {
                    count: delta.count(),
                    per_s: delta.count() as f64 / interval_s,
                    p50: delta.quantile(0.5),
                    p90: delta.quantile(0.9),
                    p99: delta.quantile(0.99),
                    p999: delta.quantile(0.999),
                    max: delta.max_bound(),
                }
            })
            .collect();
        let cores = snapshots
            .iter()
            .zip(totals.cores.iter().zip(last.cores.iter().chain(std::iter::repeat(&(0, 0)))))
            .map(|(core, ((cpu, requests), (cpu_then, requests_then)))| CoreSample {
                load: (cpu.saturating_sub(*cpu_then) as f64 / 1e9 / interval_s).min(1.0),
                requests_per_s: rate(*requests, *requests_then),
                connections: core.connections,
                in_progress: core.requests_in_progress,
            })
            .collect();
        let tenants: Vec<_> = snapshots.iter().map(CoreSnapshot::tenant_total).collect();
        let sample = Sample {
            seq: self.next_seq,
            unix_ms,
            interval_s,
            ops,
            requests_per_s: (0..REQUEST_KINDS)
                .map(|i| rate(totals.requests[i], last.requests[i]))
                .collect(),
            errors_per_s: rate(totals.errors, last.errors),
            pages_per_s: rate(totals.pages, last.pages),
            received_bytes_per_s: rate(totals.received, last.received),
            sent_bytes_per_s: rate(totals.sent, last.sent),
            wal_bytes_per_s: rate(totals.wal_bytes, last.wal_bytes),
            cores,
            lag_commit_bytes: tenants.iter().map(|t| t.lag_commit_bytes).sum(),
            lag_layers_bytes: tenants.iter().map(|t| t.lag_layers_bytes).sum(),
            in_memory_bytes: tenants.iter().map(|t| t.in_memory_bytes).sum(),
            cache_hit_ratio: totals.cache.zip(last.cache).and_then(|((h, m), (h0, m0))| {
                let (hits, lookups) = (h.saturating_sub(h0), (h + m).saturating_sub(h0 + m0));
                (lookups > 0).then(|| hits as f64 / lookups as f64)
            }),
        };
        self.next_seq += 1;
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Samples newer than `after`.
    pub(crate) fn samples_after(&self, after: u64) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.seq > after)
    }

    /// Per-operation bucket counts over the last minute (or since the oldest sample kept).
    pub(crate) fn recent_histograms(&self) -> [Histogram; OPS] {
        match (self.window.front(), self.window.back()) {
            (Some((_, first)), Some((_, last))) => {
                std::array::from_fn(|i| last[i].since(&first[i]))
            }
            _ => [Histogram::default(); OPS],
        }
    }

    /// The dashboard's JSON: static facts, the samples after `after`, the recent histograms.
    pub(crate) fn json(&self, after: u64, header: serde_json::Value) -> serde_json::Value {
        let samples: Vec<&Sample> = self.samples_after(after).collect();
        let recent = self.recent_histograms();
        let histograms: Vec<serde_json::Value> = Op::ALL
            .iter()
            .zip(&recent)
            .map(|(op, h)| {
                serde_json::json!({
                    "op": op.name(),
                    "count": h.count(),
                    "buckets": h.buckets.to_vec(),
                    "p50": h.quantile(0.5),
                    "p99": h.quantile(0.99),
                })
            })
            .collect();
        serde_json::json!({
            "header": header,
            "ops": Op::ALL.iter().map(|op| op.name()).collect::<Vec<_>>(),
            "op_help": Op::ALL.iter().map(|op| op.help()).collect::<Vec<_>>(),
            "request_kinds": RequestKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "bounds_s": BOUNDS_NS.iter().map(|ns| *ns as f64 / 1e9).collect::<Vec<_>>(),
            "samples": samples,
            "histograms": histograms,
            "histogram_window_s": HISTOGRAM_WINDOW.as_secs(),
            // The page cache does not exist yet (its issue adds hit/miss counters here).
            "cache": serde_json::Value::Null,
        })
    }
}
