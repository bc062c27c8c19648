//! Metrics recorded on the request path: latency histograms and counters that each core keeps
//! for itself, per-tenant counters, and the snapshots the admin thread collects from the cores.
//!
//! Recording is plain `Cell` arithmetic in a thread-local [`LocalMetrics`]: every core is one
//! thread, so the thread-local *is* the core's own copy (STYLE S24, S27): no atomics, no locks,
//! no allocation. Code that has no handle on its core (the WAL flusher, the read path) records
//! through the free functions here. Per-tenant counters ([`TenantCounters`]) live on the
//! tenant's owner core and are reached through the connection's session.
//!
//! Nothing here leaves the core except by value: the admin thread asks each core for a
//! [`CoreSnapshot`] through its mailbox, merges them, and renders text
//! ([`exposition`]: Prometheus; [`history`]: the dashboard). Reading the clock and formatting
//! happen there, off the request path.
//!
//! Latency histograms have fixed log-spaced buckets, the same for every operation: upper bounds
//! 1 µs × 2^k and 1.5 µs × 2^k for k = 0..25 (1 µs … 50 s, about ±20 % resolution), plus an
//! overflow bucket. Prometheus gets them as `_bucket{le=...}` and the dashboard computes
//! percentiles from them, so both agree with `histogram_quantile`.
//!
//! Absences: no page-cache metrics and no key-state metrics: those arrive with the page cache
//! and encryption issues (nothing is exported for features that do not exist yet).

pub(crate) mod exposition;
pub(crate) mod history;

use std::cell::Cell;
use std::time::{Duration, Instant};
use wal::TenantId;

/// Number of finite bucket bounds; the histogram has one more (overflow) bucket.
pub(crate) const BOUNDS: usize = 52;

/// Upper bucket bounds in nanoseconds: `1000 << k` and `1500 << k` for k = 0..26.
pub(crate) const BOUNDS_NS: [u64; BOUNDS] = bounds_ns();

const fn bounds_ns() -> [u64; BOUNDS] {
    let mut bounds = [0; BOUNDS];
    let mut k = 0;
    while k < BOUNDS / 2 {
        bounds[2 * k] = 1000 << k;
        bounds[2 * k + 1] = 1500 << k;
        k += 1;
    }
    bounds
}

const _: () = assert!(BOUNDS_NS[BOUNDS - 1] == 1500 << 25, "the top bound is about 50 s");

/// A timed operation. Adding one: a variant here, in `ALL`, and a `name` and `help`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    /// GetPage answered from the core's buffer cache.
    GetPageCacheHit,
    /// GetPage answered from in-memory layers alone.
    GetPageMemory,
    /// GetPage that read at least one layer file.
    GetPageDisk,
    GetPages,
    AppendWal,
    WalWriteSync,
    DiskRead,
    LsnWait,
}

pub(crate) const OPS: usize = 8;

impl Op {
    pub(crate) const ALL: [Op; OPS] = [
        Op::GetPageCacheHit,
        Op::GetPageMemory,
        Op::GetPageDisk,
        Op::GetPages,
        Op::AppendWal,
        Op::WalWriteSync,
        Op::DiskRead,
        Op::LsnWait,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::GetPageCacheHit => "get_page_cache_hit",
            Op::GetPageMemory => "get_page_memory",
            Op::GetPageDisk => "get_page_disk",
            Op::GetPages => "get_pages",
            Op::AppendWal => "append_wal",
            Op::WalWriteSync => "wal_write_sync",
            Op::DiskRead => "disk_read",
            Op::LsnWait => "lsn_wait",
        }
    }

    /// What the operation's latency covers (for docs and `# HELP`).
    pub(crate) fn help(self) -> &'static str {
        match self {
            Op::GetPageCacheHit => {
                "GetPage served from the buffer cache: request read to response ready"
            }
            Op::GetPageMemory => {
                "GetPage served from in-memory layers (cache miss): request read to response ready"
            }
            Op::GetPageDisk => "GetPage that read layer files: request read to response ready",
            Op::GetPages => "GetPages (all its pages): request read to response ready",
            Op::AppendWal => "AppendWal: request read to durable acknowledgement (commit)",
            Op::WalWriteSync => "one group commit: WAL write + fdatasync",
            Op::DiskRead => "one layer payload read (O_DIRECT via io_uring)",
            Op::LsnWait => "a read waiting for its LSN to be ingested (only reads that waited)",
        }
    }
}

/// A request type, for request and error counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum RequestKind {
    Ping,
    GetPage,
    GetPages,
    RelSize,
    AppendWal,
    /// A request that could not be decoded (or a second `Hello`).
    #[default]
    Invalid,
}

pub(crate) const REQUEST_KINDS: usize = 6;

impl RequestKind {
    pub(crate) const ALL: [RequestKind; REQUEST_KINDS] = [
        RequestKind::Ping,
        RequestKind::GetPage,
        RequestKind::GetPages,
        RequestKind::RelSize,
        RequestKind::AppendWal,
        RequestKind::Invalid,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            RequestKind::Ping => "ping",
            RequestKind::GetPage => "get_page",
            RequestKind::GetPages => "get_pages",
            RequestKind::RelSize => "rel_size",
            RequestKind::AppendWal => "append_wal",
            RequestKind::Invalid => "invalid",
        }
    }
}

/// Number of protocol status codes (`proto::Status`), for error counters indexed by status.
pub(crate) const STATUSES: usize = 14;

/// A latency histogram on its core.
pub(crate) struct LocalHistogram {
    buckets: [Cell<u64>; BOUNDS + 1],
    sum_ns: Cell<u64>,
}

impl LocalHistogram {
    const fn new() -> Self {
        LocalHistogram { buckets: [const { Cell::new(0) }; BOUNDS + 1], sum_ns: Cell::new(0) }
    }

    pub(crate) fn record_ns(&self, ns: u64) {
        let bucket = &self.buckets[bucket_of(ns)];
        bucket.set(bucket.get() + 1);
        self.sum_ns.set(self.sum_ns.get().saturating_add(ns));
    }

    fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|i| self.buckets[i].get()),
            sum_ns: self.sum_ns.get(),
        }
    }
}

/// The bucket holding `ns`: the first whose upper bound is at least `ns` (Prometheus `le`).
pub(crate) fn bucket_of(ns: u64) -> usize {
    BOUNDS_NS.partition_point(|bound| *bound < ns)
}

/// A histogram by value: per-bucket (not cumulative) counts; the last bucket is overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Histogram {
    pub(crate) buckets: [u64; BOUNDS + 1],
    pub(crate) sum_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; BOUNDS + 1], sum_ns: 0 }
    }
}

impl Histogram {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub(crate) fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// What was recorded after `earlier` (both cumulative since start).
    pub(crate) fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }

    /// The `q` quantile in seconds, interpolated linearly inside its bucket (as Prometheus'
    /// `histogram_quantile` does); `None` when empty. Values in the overflow bucket read as
    /// the top bound.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (index, count) in self.buckets.iter().enumerate() {
            if *count == 0 || ((below + count) as f64) < rank {
                below += count;
                continue;
            }
            let Some(upper) = BOUNDS_NS.get(index) else {
                return Some(BOUNDS_NS[BOUNDS - 1] as f64 / 1e9);
            };
            let lower = if index == 0 { 0 } else { BOUNDS_NS[index - 1] };
            let within = ((rank - below as f64) / *count as f64).clamp(0.0, 1.0);
            return Some((lower as f64 + (*upper - lower) as f64 * within) / 1e9);
        }
        Some(BOUNDS_NS[BOUNDS - 1] as f64 / 1e9)
    }

    /// Upper bound of the highest non-empty bucket, in seconds.
    pub(crate) fn max_bound(&self) -> Option<f64> {
        let index = self.buckets.iter().rposition(|c| *c > 0)?;
        Some(BOUNDS_NS[index.min(BOUNDS - 1)] as f64 / 1e9)
    }
}

/// Everything one core records about itself. Lives in a thread-local on the core's thread.
pub(crate) struct LocalMetrics {
    latency: [LocalHistogram; OPS],
    connections: Cell<u64>,
    connections_total: Cell<u64>,
    requests_in_progress: Cell<u64>,
    bytes_received: Cell<u64>,
    bytes_sent: Cell<u64>,
    errors: [Cell<u64>; STATUSES],
    disk_reads_in_flight: Cell<u64>,
    wal_commits: Cell<u64>,
    wal_records: Cell<u64>,
    wal_bytes: Cell<u64>,
    /// Layer files written and their bytes: `[delta, image]`.
    layer_files: [Cell<u64>; 2],
    layer_bytes: [Cell<u64>; 2],
    store_errors: Cell<u64>,
    disk_read_errors: Cell<u64>,
    tenants_unloaded: Cell<u64>,
    tenants_reactivated: Cell<u64>,
    slow_requests: Cell<u64>,
    slow_logged: Cell<u32>,
    slow_window: Cell<Option<Instant>>,
}

thread_local! {
    static LOCAL: LocalMetrics = const { LocalMetrics::new() };
}

impl LocalMetrics {
    const fn new() -> Self {
        LocalMetrics {
            latency: [const { LocalHistogram::new() }; OPS],
            connections: Cell::new(0),
            connections_total: Cell::new(0),
            requests_in_progress: Cell::new(0),
            bytes_received: Cell::new(0),
            bytes_sent: Cell::new(0),
            errors: [const { Cell::new(0) }; STATUSES],
            disk_reads_in_flight: Cell::new(0),
            wal_commits: Cell::new(0),
            wal_records: Cell::new(0),
            wal_bytes: Cell::new(0),
            layer_files: [const { Cell::new(0) }; 2],
            layer_bytes: [const { Cell::new(0) }; 2],
            store_errors: Cell::new(0),
            disk_read_errors: Cell::new(0),
            tenants_unloaded: Cell::new(0),
            tenants_reactivated: Cell::new(0),
            slow_requests: Cell::new(0),
            slow_logged: Cell::new(0),
            slow_window: Cell::new(None),
        }
    }
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().wrapping_add(by));
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Records one operation's latency on this core.
pub(crate) fn record(op: Op, elapsed: Duration) {
    LOCAL.with(|m| m.latency[op as usize].record_ns(nanos(elapsed)));
}

pub(crate) fn connection_opened() {
    LOCAL.with(|m| {
        bump(&m.connections, 1);
        bump(&m.connections_total, 1);
    });
}

pub(crate) fn connection_closed() {
    LOCAL.with(|m| m.connections.set(m.connections.get().saturating_sub(1)));
}

pub(crate) fn request_started() {
    LOCAL.with(|m| bump(&m.requests_in_progress, 1));
}

pub(crate) fn request_finished(status: u16) {
    LOCAL.with(|m| {
        m.requests_in_progress.set(m.requests_in_progress.get().saturating_sub(1));
        if status != 0 {
            if let Some(errors) = m.errors.get(usize::from(status)) {
                bump(errors, 1);
            }
        }
    });
}

pub(crate) fn network(received_bytes: usize, sent_bytes: usize) {
    LOCAL.with(|m| {
        bump(&m.bytes_received, received_bytes as u64);
        bump(&m.bytes_sent, sent_bytes as u64);
    });
}

/// A layer payload read is submitted; [`disk_read_done`] when it completed.
pub(crate) fn disk_read_started() {
    LOCAL.with(|m| bump(&m.disk_reads_in_flight, 1));
}

pub(crate) fn disk_read_done(elapsed: Duration) {
    LOCAL.with(|m| {
        m.disk_reads_in_flight.set(m.disk_reads_in_flight.get().saturating_sub(1));
        m.latency[Op::DiskRead as usize].record_ns(nanos(elapsed));
    });
}

/// Runs one layer payload read, counting it in flight and recording its latency. The clock
/// starts at the first poll, when the read is submitted.
pub(crate) async fn timed_disk_read<T>(read: impl std::future::Future<Output = T>) -> T {
    disk_read_started();
    let started = Instant::now();
    let result = read.await;
    disk_read_done(started.elapsed());
    result
}

/// One group commit (WAL write + fdatasync) of `records` records, `bytes` encoded bytes.
pub(crate) fn wal_commit(records: usize, bytes: usize, elapsed: Duration) {
    LOCAL.with(|m| {
        bump(&m.wal_commits, 1);
        bump(&m.wal_records, records as u64);
        bump(&m.wal_bytes, bytes as u64);
        m.latency[Op::WalWriteSync as usize].record_ns(nanos(elapsed));
    });
}

/// A layer file written by a flush (`image == false`) or an image set.
pub(crate) fn layer_written(image: bool, bytes: usize) {
    LOCAL.with(|m| {
        let kind = usize::from(image);
        bump(&m.layer_files[kind], 1);
        bump(&m.layer_bytes[kind], bytes as u64);
    });
}

/// Background store work (flush, image set, GC) failed and will be retried.
pub(crate) fn store_error() {
    LOCAL.with(|m| bump(&m.store_errors, 1));
}

/// An idle tenant was unloaded.
pub(crate) fn tenant_unloaded() {
    LOCAL.with(|m| bump(&m.tenants_unloaded, 1));
}

/// An unloaded tenant was loaded again by a `Hello`.
pub(crate) fn tenant_reactivated() {
    LOCAL.with(|m| bump(&m.tenants_reactivated, 1));
}

/// A layer payload read failed with an I/O error (the disk, not the bytes: those are `Corrupt`).
pub(crate) fn disk_read_error() {
    LOCAL.with(|m| bump(&m.disk_read_errors, 1));
}

/// Counts a slow request; says whether it may be logged (at most `per_sec` lines per second
/// per core, so an overload cannot turn into a log flood). Returns `(log_it, suppressed)`:
/// `suppressed` is how many slow requests went unlogged in the window that just ended.
pub(crate) fn slow_request(per_sec: u32) -> (bool, u32) {
    LOCAL.with(|m| {
        bump(&m.slow_requests, 1);
        let now = Instant::now();
        let mut suppressed = 0;
        let fresh = m.slow_window.get().is_none_or(|start| now - start >= Duration::from_secs(1));
        if fresh {
            suppressed = m.slow_logged.get().saturating_sub(per_sec);
            m.slow_window.set(Some(now));
            m.slow_logged.set(0);
        }
        m.slow_logged.set(m.slow_logged.get().saturating_add(1));
        (m.slow_logged.get() <= per_sec, suppressed)
    })
}

/// Per-tenant counters, kept on the tenant's owner core.
#[derive(Default)]
pub(crate) struct TenantCounters {
    pub(crate) requests: [Cell<u64>; REQUEST_KINDS],
    pub(crate) errors: Cell<u64>,
    pub(crate) pages: Cell<u64>,
    pub(crate) bytes_received: Cell<u64>,
    pub(crate) bytes_sent: Cell<u64>,
    pub(crate) wal_records: Cell<u64>,
    pub(crate) slow_requests: Cell<u64>,
}

impl TenantCounters {
    pub(crate) fn request(&self, kind: RequestKind, status: u16) {
        bump(&self.requests[kind as usize], 1);
        if status != 0 {
            bump(&self.errors, 1);
        }
    }

    pub(crate) fn add(cell: &Cell<u64>, by: u64) {
        bump(cell, by);
    }
}

/// One tenant as its core sees it: counters since start, and gauges now. Summed over the
/// tenant's timelines.
#[derive(Clone, Debug, Default)]
pub(crate) struct TenantSnapshot {
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) core: usize,
    pub(crate) tenants: u64,
    pub(crate) timelines: u64,
    pub(crate) requests: [u64; REQUEST_KINDS],
    pub(crate) errors: u64,
    pub(crate) pages: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) wal_records: u64,
    pub(crate) slow_requests: u64,
    /// LSN distance accepted but not yet durable (waiting for group commit).
    pub(crate) lag_commit_bytes: u64,
    /// LSN distance durable but not yet in layer files (held in memory and WAL).
    pub(crate) lag_layers_bytes: u64,
    pub(crate) wal_queue_bytes: u64,
    pub(crate) in_memory_bytes: u64,
    pub(crate) delta_layers: u64,
    pub(crate) image_layers: u64,
    /// Delta layers above the newest image set: what the next image set would fold away.
    pub(crate) compaction_debt_layers: u64,
    pub(crate) reads: u64,
    pub(crate) read_layers: u64,
    pub(crate) read_layers_max: u64,
    pub(crate) flushes: u64,
    pub(crate) gc_removed_layers: u64,
    pub(crate) broken_timelines: u64,
    /// The tenant's share of its core's buffer cache (zero without a cache).
    pub(crate) cache_hits: u64,
    pub(crate) cache_misses: u64,
    pub(crate) cache_evictions: u64,
    pub(crate) cache_bytes: u64,
}

impl TenantSnapshot {
    /// Adds `other` into `self` (for `tenant="other"` and per-core totals); maxima stay maxima.
    pub(crate) fn add(&mut self, other: &TenantSnapshot) {
        self.tenants += other.tenants;
        self.timelines += other.timelines;
        for (mine, theirs) in self.requests.iter_mut().zip(&other.requests) {
            *mine += theirs;
        }
        let pairs = [
            (&mut self.errors, other.errors),
            (&mut self.pages, other.pages),
            (&mut self.bytes_received, other.bytes_received),
            (&mut self.bytes_sent, other.bytes_sent),
            (&mut self.wal_records, other.wal_records),
            (&mut self.slow_requests, other.slow_requests),
            (&mut self.lag_commit_bytes, other.lag_commit_bytes),
            (&mut self.lag_layers_bytes, other.lag_layers_bytes),
            (&mut self.wal_queue_bytes, other.wal_queue_bytes),
            (&mut self.in_memory_bytes, other.in_memory_bytes),
            (&mut self.delta_layers, other.delta_layers),
            (&mut self.image_layers, other.image_layers),
            (&mut self.compaction_debt_layers, other.compaction_debt_layers),
            (&mut self.reads, other.reads),
            (&mut self.read_layers, other.read_layers),
            (&mut self.flushes, other.flushes),
            (&mut self.gc_removed_layers, other.gc_removed_layers),
            (&mut self.broken_timelines, other.broken_timelines),
            (&mut self.cache_hits, other.cache_hits),
            (&mut self.cache_misses, other.cache_misses),
            (&mut self.cache_evictions, other.cache_evictions),
            (&mut self.cache_bytes, other.cache_bytes),
        ];
        for (mine, theirs) in pairs {
            *mine += theirs;
        }
        self.read_layers_max = self.read_layers_max.max(other.read_layers_max);
    }
}

/// What one core reports: its own counters and histograms, and its tenants.
#[derive(Clone, Debug)]
pub(crate) struct CoreSnapshot {
    pub(crate) core: usize,
    /// CPU time of the core's thread (user + system).
    pub(crate) cpu_ns: u64,
    pub(crate) latency: [Histogram; OPS],
    pub(crate) connections: u64,
    pub(crate) connections_total: u64,
    pub(crate) requests_in_progress: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) errors: [u64; STATUSES],
    pub(crate) disk_reads_in_flight: u64,
    pub(crate) wal_commits: u64,
    pub(crate) wal_records: u64,
    pub(crate) wal_bytes: u64,
    pub(crate) layer_files: [u64; 2],
    pub(crate) layer_bytes: [u64; 2],
    pub(crate) store_errors: u64,
    pub(crate) disk_read_errors: u64,
    pub(crate) tenants_unloaded: u64,
    pub(crate) tenants_reactivated: u64,
    pub(crate) slow_requests: u64,
    /// The core's buffer cache, if one is configured.
    pub(crate) cache: Option<cache::CacheStats>,
    pub(crate) tenants: Vec<TenantSnapshot>,
}

impl CoreSnapshot {
    /// The sum of this core's tenants.
    pub(crate) fn tenant_total(&self) -> TenantSnapshot {
        let mut total = TenantSnapshot { core: self.core, ..TenantSnapshot::default() };
        for tenant in &self.tenants {
            total.add(tenant);
        }
        total
    }
}

/// This core's own metrics (tenants are added by the caller, which owns them). Must run on the
/// core's thread.
pub(crate) fn local_snapshot(core: usize) -> CoreSnapshot {
    LOCAL.with(|m| {
        let get = |cells: &[Cell<u64>]| -> Vec<u64> { cells.iter().map(Cell::get).collect() };
        let pair = |cells: &[Cell<u64>; 2]| [cells[0].get(), cells[1].get()];
        let errors = get(&m.errors);
        CoreSnapshot {
            core,
            cpu_ns: thread_cpu_ns(),
            latency: std::array::from_fn(|i| m.latency[i].snapshot()),
            connections: m.connections.get(),
            connections_total: m.connections_total.get(),
            requests_in_progress: m.requests_in_progress.get(),
            bytes_received: m.bytes_received.get(),
            bytes_sent: m.bytes_sent.get(),
            errors: std::array::from_fn(|i| errors[i]),
            disk_reads_in_flight: m.disk_reads_in_flight.get(),
            wal_commits: m.wal_commits.get(),
            wal_records: m.wal_records.get(),
            wal_bytes: m.wal_bytes.get(),
            layer_files: pair(&m.layer_files),
            layer_bytes: pair(&m.layer_bytes),
            store_errors: m.store_errors.get(),
            disk_read_errors: m.disk_read_errors.get(),
            tenants_unloaded: m.tenants_unloaded.get(),
            tenants_reactivated: m.tenants_reactivated.get(),
            slow_requests: m.slow_requests.get(),
            cache: None,
            tenants: Vec::new(),
        }
    })
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_THREAD is the calling thread.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut usage) != 0 {
            return 0;
        }
        usage
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

#[cfg(test)]
mod tests;
