//! `/metrics`: the cores' snapshots as Prometheus text exposition format 0.0.4.
//!
//! Runs on the admin thread. Histograms are merged over cores (one series per operation);
//! counters and gauges come per core (`core` label) and per tenant (`tenant` label).
//!
//! Tenant cardinality is bounded: [`TenantLabels`] gives a tenant its own label if the config
//! lists it (`metrics.tenant_series`) or while fewer than `metrics.max_tenant_series` tenants
//! have one, first come first served; a label, once given, is kept for the life of the
//! process, so no series moves between a tenant and `tenant="other"` (which would make
//! counters go backwards). Every other tenant is summed into `tenant="other"`; for the gauges
//! that sum is a total over those tenants (maxima stay maxima).

use super::{CoreSnapshot, Histogram, Op, RequestKind, TenantSnapshot, BOUNDS, BOUNDS_NS, OPS};
use crate::proto::Status;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Display, Write as _};
use wal::TenantId;

/// Which tenants get a label of their own.
pub(crate) struct TenantLabels {
    max: usize,
    pinned: BTreeSet<TenantId>,
    labelled: BTreeSet<TenantId>,
}

impl TenantLabels {
    pub(crate) fn new(max: usize, pinned: &[String]) -> Self {
        let pinned = pinned.iter().filter_map(|t| t.parse().ok()).collect();
        TenantLabels { max, pinned, labelled: BTreeSet::new() }
    }

    /// `Some(tenant)` if it has (or now gets) its own label, `None` for `other`.
    pub(crate) fn label(&mut self, tenant: TenantId) -> Option<TenantId> {
        if self.pinned.contains(&tenant) || self.labelled.contains(&tenant) {
            return Some(tenant);
        }
        if self.labelled.len() < self.max {
            self.labelled.insert(tenant);
            return Some(tenant);
        }
        None
    }
}

/// Facts about the process, read by the admin thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct Process {
    pub(crate) version: &'static str,
    pub(crate) commit: &'static str,
    pub(crate) start_unix_s: f64,
    /// Time from process start to all cores ready (the restart time), once ready.
    pub(crate) startup_s: Option<f64>,
    pub(crate) ready: bool,
    pub(crate) shutting_down: bool,
    pub(crate) cores: usize,
    pub(crate) cpu_s: f64,
    pub(crate) resident_bytes: u64,
    pub(crate) threads: u64,
    pub(crate) open_fds: u64,
    pub(crate) max_fds: u64,
}

impl Process {
    /// Reads `/proc/self` and the fd limit; fields it cannot read stay zero.
    pub(crate) fn read_proc(&mut self) {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name, which may itself contain spaces: state is field 3.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        self.cpu_s = (field(14) + field(15)) as f64 / ticks;
        self.threads = field(20);
        self.resident_bytes = field(24) * page;
        self.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        // SAFETY: getrlimit fills the zeroed struct we pass.
        self.max_fds = unsafe {
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur
            } else {
                0
            }
        };
    }
}

/// Renders every metric. `labels` decides which tenants get a label of their own.
pub(crate) fn render(
    process: &Process,
    cores: &[CoreSnapshot],
    labels: &mut TenantLabels,
) -> String {
    let mut text = Text(String::with_capacity(64 * 1024));
    render_process(&mut text, process);
    render_latency(&mut text, cores);
    render_cores(&mut text, cores);
    render_tenants(&mut text, cores, labels);
    text.0
}

struct Text(String);

/// A per-core family: name, type, help, and how to read its value from a core's snapshot.
type CoreFamily = (&'static str, &'static str, &'static str, Box<dyn Fn(&CoreSnapshot) -> u64>);
/// A per-tenant family: name, type, help, value.
type TenantFamily = (&'static str, &'static str, &'static str, fn(&TenantSnapshot) -> u64);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one sample per core.
    fn per_core(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        cores: &[CoreSnapshot],
        value: impl Fn(&CoreSnapshot) -> u64,
    ) {
        self.family(name, kind, help);
        for core in cores {
            self.sample(name, &[("core", &core.core.to_string())], value(core));
        }
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render_process(text: &mut Text, p: &Process) {
    text.family("pagecore_build_info", "gauge", "Version and commit of the running binary.");
    text.sample("pagecore_build_info", &[("version", p.version), ("commit", p.commit)], 1);
    text.family("pagecore_start_time_seconds", "gauge", "Process start, Unix time.");
    text.sample("pagecore_start_time_seconds", &[], p.start_unix_s);
    if let Some(startup) = p.startup_s {
        text.family(
            "pagecore_startup_duration_seconds",
            "gauge",
            "Process start to every core recovered and listening (the restart time).",
        );
        text.sample("pagecore_startup_duration_seconds", &[], startup);
    }
    text.family("pagecore_ready", "gauge", "1 while /ready answers 200.");
    text.sample("pagecore_ready", &[], u8::from(p.ready && !p.shutting_down));
    text.family("pagecore_shutting_down", "gauge", "1 after SIGTERM, while connections drain.");
    text.sample("pagecore_shutting_down", &[], u8::from(p.shutting_down));
    text.family("pagecore_cores", "gauge", "Cores (pinned executors).");
    text.sample("pagecore_cores", &[], p.cores);
    text.family("process_cpu_seconds_total", "counter", "User and system CPU time of the process.");
    text.sample("process_cpu_seconds_total", &[], p.cpu_s);
    text.family("process_resident_memory_bytes", "gauge", "Resident memory of the process.");
    text.sample("process_resident_memory_bytes", &[], p.resident_bytes);
    text.family("process_threads", "gauge", "Threads of the process.");
    text.sample("process_threads", &[], p.threads);
    text.family("process_open_fds", "gauge", "Open file descriptors.");
    text.sample("process_open_fds", &[], p.open_fds);
    text.family("process_max_fds", "gauge", "Soft limit on open file descriptors (RLIMIT_NOFILE).");
    text.sample("process_max_fds", &[], p.max_fds);
}

fn render_latency(text: &mut Text, cores: &[CoreSnapshot]) {
    let mut merged = [Histogram::default(); OPS];
    for core in cores {
        for (sum, histogram) in merged.iter_mut().zip(&core.latency) {
            sum.add(histogram);
        }
    }
    let mut help = String::from("Latency by operation, merged over cores. ");
    for op in Op::ALL {
        let _ = write!(help, "{}: {}. ", op.name(), op.help());
    }
    let name = "pagecore_latency_seconds";
    text.family(name, "histogram", help.trim_end());
    let bounds: Vec<String> = BOUNDS_NS.iter().map(|ns| (*ns as f64 / 1e9).to_string()).collect();
    for (op, histogram) in Op::ALL.iter().zip(&merged) {
        let mut cumulative = 0;
        for (index, count) in histogram.buckets.iter().enumerate() {
            cumulative += count;
            let le = if index < BOUNDS { bounds[index].as_str() } else { "+Inf" };
            text.sample(
                "pagecore_latency_seconds_bucket",
                &[("op", op.name()), ("le", le)],
                cumulative,
            );
        }
        text.sample(
            "pagecore_latency_seconds_sum",
            &[("op", op.name())],
            histogram.sum_ns as f64 / 1e9,
        );
        text.sample("pagecore_latency_seconds_count", &[("op", op.name())], cumulative);
    }
}

fn render_cores(text: &mut Text, cores: &[CoreSnapshot]) {
    text.family(
        "pagecore_core_cpu_seconds_total",
        "counter",
        "CPU time of each core's thread; its rate is the core's load (1 = busy all the time).",
    );
    for core in cores {
        text.sample(
            "pagecore_core_cpu_seconds_total",
            &[("core", &core.core.to_string())],
            core.cpu_ns as f64 / 1e9,
        );
    }
    let totals: Vec<TenantSnapshot> = cores.iter().map(CoreSnapshot::tenant_total).collect();
    text.family(
        "pagecore_requests_total",
        "counter",
        "Requests answered, by core and request type.",
    );
    for total in &totals {
        let core = total.core.to_string();
        for kind in RequestKind::ALL {
            let labels = [("core", core.as_str()), ("op", kind.name())];
            text.sample("pagecore_requests_total", &labels, total.requests[kind as usize]);
        }
    }
    text.family(
        "pagecore_request_errors_total",
        "counter",
        "Requests answered with an error status, by core and status (statuses seen so far).",
    );
    for core in cores {
        for status in Status::ALL {
            let count = core.errors.get(status as usize).copied().unwrap_or(0);
            if status != Status::Ok && count > 0 {
                let labels =
                    [("core", core.core.to_string()), ("status", status.name().to_string())];
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                text.sample("pagecore_request_errors_total", &labels, count);
            }
        }
    }
    let tenant_sum = |f: fn(&TenantSnapshot) -> u64| {
        move |core: &CoreSnapshot| core.tenants.iter().map(f).sum::<u64>()
    };
    let families: [CoreFamily; 24] = [
        (
            "pagecore_pages_served_total",
            "counter",
            "Pages sent by GetPage and GetPages.",
            Box::new(tenant_sum(|t| t.pages)),
        ),
        (
            "pagecore_network_received_bytes_total",
            "counter",
            "Bytes read from compute connections.",
            Box::new(|c| c.bytes_received),
        ),
        (
            "pagecore_network_sent_bytes_total",
            "counter",
            "Bytes written to compute connections.",
            Box::new(|c| c.bytes_sent),
        ),
        (
            "pagecore_connections",
            "gauge",
            "Open compute connections served by the core.",
            Box::new(|c| c.connections),
        ),
        (
            "pagecore_connections_opened_total",
            "counter",
            "Compute connections served by the core since start.",
            Box::new(|c| c.connections_total),
        ),
        (
            "pagecore_requests_in_progress",
            "gauge",
            "Requests being answered now (waiting for an LSN, the disk or a commit).",
            Box::new(|c| c.requests_in_progress),
        ),
        (
            "pagecore_disk_reads_in_flight",
            "gauge",
            "Layer payload reads submitted to io_uring and not completed.",
            Box::new(|c| c.disk_reads_in_flight),
        ),
        (
            "pagecore_wal_queue_bytes",
            "gauge",
            "Appended bytes queued for the next group commit (queue depth of the WAL).",
            Box::new(tenant_sum(|t| t.wal_queue_bytes)),
        ),
        (
            "pagecore_wal_commits_total",
            "counter",
            "Group commits (WAL write + fdatasync).",
            Box::new(|c| c.wal_commits),
        ),
        (
            "pagecore_wal_records_total",
            "counter",
            "WAL records made durable.",
            Box::new(|c| c.wal_records),
        ),
        (
            "pagecore_wal_written_bytes_total",
            "counter",
            "Encoded WAL record bytes made durable.",
            Box::new(|c| c.wal_bytes),
        ),
        (
            "pagecore_delta_layers_written_total",
            "counter",
            "Delta layer files written by flushes.",
            Box::new(|c| c.layer_files[0]),
        ),
        (
            "pagecore_delta_layer_written_bytes_total",
            "counter",
            "Bytes of delta layer files written.",
            Box::new(|c| c.layer_bytes[0]),
        ),
        (
            "pagecore_image_layers_written_total",
            "counter",
            "Image layer files written (image sets).",
            Box::new(|c| c.layer_files[1]),
        ),
        (
            "pagecore_image_layer_written_bytes_total",
            "counter",
            "Bytes of image layer files written.",
            Box::new(|c| c.layer_bytes[1]),
        ),
        (
            "pagecore_store_errors_total",
            "counter",
            "Background store work (flush, image set, GC) that failed and will be retried.",
            Box::new(|c| c.store_errors),
        ),
        (
            "pagecore_disk_read_errors_total",
            "counter",
            "Layer file reads that failed with an I/O error (answered Internal; the disk, not the data).",
            Box::new(|c| c.disk_read_errors),
        ),
        (
            "pagecore_tenants_unloaded_total",
            "counter",
            "Idle tenants unloaded (tenant_idle_unload_secs without a connection).",
            Box::new(|c| c.tenants_unloaded),
        ),
        (
            "pagecore_tenants_reactivated_total",
            "counter",
            "Unloaded tenants loaded again by a Hello.",
            Box::new(|c| c.tenants_reactivated),
        ),
        (
            "pagecore_slow_requests_total",
            "counter",
            "Requests slower than slow_request_ms.",
            Box::new(|c| c.slow_requests),
        ),
        (
            "pagecore_tenants",
            "gauge",
            "Tenants owned by the core.",
            Box::new(tenant_sum(|t| t.tenants)),
        ),
        (
            "pagecore_timelines",
            "gauge",
            "Timelines owned by the core.",
            Box::new(tenant_sum(|t| t.timelines)),
        ),
        (
            "pagecore_broken_timelines",
            "gauge",
            "Timelines that cannot be served until a human looks.",
            Box::new(tenant_sum(|t| t.broken_timelines)),
        ),
        (
            "pagecore_ingest_lag_bytes_max",
            "gauge",
            "Largest per-tenant LSN distance between durable and in layer files on the core.",
            Box::new(|c| c.tenants.iter().map(|t| t.lag_layers_bytes).max().unwrap_or(0)),
        ),
    ];
    for (name, kind, help, value) in families {
        text.per_core(name, kind, help, cores, value);
    }
    render_cache(text, cores);
}

/// Buffer cache families, only for cores that have a cache (none when `cache_bytes = 0`).
fn render_cache(text: &mut Text, cores: &[CoreSnapshot]) {
    let with_cache: Vec<(usize, cache::CacheStats)> =
        cores.iter().filter_map(|c| c.cache.map(|stats| (c.core, stats))).collect();
    if with_cache.is_empty() {
        return;
    }
    type CacheFamily = (&'static str, &'static str, &'static str, fn(&cache::CacheStats) -> u64);
    let families: [CacheFamily; 8] = [
        (
            "pagecore_cache_hits_total",
            "counter",
            "GetPage lookups answered by the buffer cache.",
            |s| s.hits,
        ),
        (
            "pagecore_cache_misses_total",
            "counter",
            "GetPage lookups the buffer cache could not answer.",
            |s| s.misses,
        ),
        (
            "pagecore_cache_inserts_total",
            "counter",
            "Rebuilt pages offered to the buffer cache.",
            |s| s.inserts,
        ),
        (
            "pagecore_cache_rejected_total",
            "counter",
            "Offered pages the admission rule turned away.",
            |s| s.rejected,
        ),
        (
            "pagecore_cache_evictions_total",
            "counter",
            "Cached versions evicted to make room.",
            |s| s.evictions,
        ),
        (
            "pagecore_cache_invalidations_total",
            "counter",
            "Cached versions dropped because a newer record starts at or before them.",
            |s| s.invalidations,
        ),
        ("pagecore_cache_entries", "gauge", "Page versions held by the buffer cache.", |s| {
            s.entries
        }),
        (
            "pagecore_cache_bytes",
            "gauge",
            "Bytes of page frames in use by the buffer cache.",
            |s| s.bytes_used,
        ),
    ];
    for (name, kind, help, value) in families {
        text.family(name, kind, help);
        for (core, stats) in &with_cache {
            text.sample(name, &[("core", &core.to_string())], value(stats));
        }
    }
}

fn render_tenants(text: &mut Text, cores: &[CoreSnapshot], labels: &mut TenantLabels) {
    let mut by_label: BTreeMap<String, TenantSnapshot> = BTreeMap::new();
    let mut placement = Vec::new();
    for tenant in cores.iter().flat_map(|c| &c.tenants) {
        let label = match tenant.tenant_id.and_then(|id| labels.label(id)) {
            Some(id) => {
                placement.push((id.to_string(), tenant.core.to_string()));
                id.to_string()
            }
            None => "other".to_string(),
        };
        by_label.entry(label).or_default().add(tenant);
    }
    text.family(
        "pagecore_tenant_series",
        "gauge",
        "Tenants with a label of their own (labelled) and summed into tenant=\"other\" (other).",
    );
    let other = by_label.get("other").map_or(0, |t| t.tenants);
    let labelled = by_label.values().map(|t| t.tenants).sum::<u64>() - other;
    text.sample("pagecore_tenant_series", &[("series", "labelled")], labelled);
    text.sample("pagecore_tenant_series", &[("series", "other")], other);
    text.family("pagecore_tenant_info", "gauge", "The core that owns each labelled tenant.");
    for (tenant, core) in &placement {
        text.sample("pagecore_tenant_info", &[("tenant", tenant), ("core", core)], 1);
    }
    text.family(
        "pagecore_tenant_requests_total",
        "counter",
        "Requests answered, by tenant and request type.",
    );
    for (label, t) in &by_label {
        for kind in RequestKind::ALL {
            let labels = [("tenant", label.as_str()), ("op", kind.name())];
            text.sample("pagecore_tenant_requests_total", &labels, t.requests[kind as usize]);
        }
    }
    text.family("pagecore_tenant_ingest_lag_bytes", "gauge",
        "LSN distance summed over the tenant's timelines: stage=commit accepted but not yet durable; stage=layers durable but not yet in layer files.");
    for (label, t) in &by_label {
        text.sample(
            "pagecore_tenant_ingest_lag_bytes",
            &[("tenant", label), ("stage", "commit")],
            t.lag_commit_bytes,
        );
        text.sample(
            "pagecore_tenant_ingest_lag_bytes",
            &[("tenant", label), ("stage", "layers")],
            t.lag_layers_bytes,
        );
    }
    text.family(
        "pagecore_tenant_layers",
        "gauge",
        "Layer files of the tenant's timelines, by kind.",
    );
    for (label, t) in &by_label {
        text.sample(
            "pagecore_tenant_layers",
            &[("tenant", label), ("kind", "delta")],
            t.delta_layers,
        );
        text.sample(
            "pagecore_tenant_layers",
            &[("tenant", label), ("kind", "image")],
            t.image_layers,
        );
    }
    if cores.iter().any(|c| c.cache.is_some()) {
        let cache_families: [TenantFamily; 4] = [
            (
                "pagecore_tenant_cache_hits_total",
                "counter",
                "GetPage lookups of the tenant answered by the buffer cache.",
                |t| t.cache_hits,
            ),
            (
                "pagecore_tenant_cache_misses_total",
                "counter",
                "GetPage lookups of the tenant the buffer cache could not answer.",
                |t| t.cache_misses,
            ),
            (
                "pagecore_tenant_cache_evictions_total",
                "counter",
                "The tenant's cached versions evicted to make room.",
                |t| t.cache_evictions,
            ),
            (
                "pagecore_tenant_cache_bytes",
                "gauge",
                "Bytes of buffer cache frames holding the tenant's pages.",
                |t| t.cache_bytes,
            ),
        ];
        for (name, kind, help, value) in cache_families {
            text.family(name, kind, help);
            for (label, t) in &by_label {
                text.sample(name, &[("tenant", label.as_str())], value(t));
            }
        }
    }
    let families: [TenantFamily; 12] = [
        (
            "pagecore_tenant_request_errors_total",
            "counter",
            "Requests answered with an error status.",
            |t| t.errors,
        ),
        (
            "pagecore_tenant_pages_served_total",
            "counter",
            "Pages sent by GetPage and GetPages.",
            |t| t.pages,
        ),
        (
            "pagecore_tenant_received_bytes_total",
            "counter",
            "Bytes read from the tenant's connections.",
            |t| t.bytes_received,
        ),
        (
            "pagecore_tenant_sent_bytes_total",
            "counter",
            "Bytes written to the tenant's connections.",
            |t| t.bytes_sent,
        ),
        (
            "pagecore_tenant_wal_records_total",
            "counter",
            "WAL records appended (acknowledged durable).",
            |t| t.wal_records,
        ),
        (
            "pagecore_tenant_slow_requests_total",
            "counter",
            "Requests slower than slow_request_ms.",
            |t| t.slow_requests,
        ),
        (
            "pagecore_tenant_in_memory_bytes",
            "gauge",
            "Payload bytes in in-memory layers (not yet in layer files).",
            |t| t.in_memory_bytes,
        ),
        (
            "pagecore_tenant_compaction_debt_layers",
            "gauge",
            "Delta layers above the newest image set (what the next image set folds away).",
            |t| t.compaction_debt_layers,
        ),
        (
            "pagecore_tenant_reads_total",
            "counter",
            "Page reconstructions (GetPage and each GetPages page).",
            |t| t.reads,
        ),
        (
            "pagecore_tenant_read_layers_total",
            "counter",
            "Layers touched by those reads; its rate over reads_total is the read amplification.",
            |t| t.read_layers,
        ),
        (
            "pagecore_tenant_layer_flushes_total",
            "counter",
            "In-memory layers flushed to delta layer files.",
            |t| t.flushes,
        ),
        (
            "pagecore_tenant_gc_removed_layers_total",
            "counter",
            "Layer files deleted by retention GC.",
            |t| t.gc_removed_layers,
        ),
    ];
    for (name, kind, help, value) in families {
        text.family(name, kind, help);
        for (label, t) in &by_label {
            text.sample(name, &[("tenant", label)], value(t));
        }
    }
    text.family(
        "pagecore_tenant_read_layers_max",
        "gauge",
        "Most layers one read has touched since start.",
    );
    for (label, t) in &by_label {
        text.sample("pagecore_tenant_read_layers_max", &[("tenant", label)], t.read_layers_max);
    }
}
