use super::exposition::{render, Process, TenantLabels};
use super::history::History;
use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::time::{Duration, Instant};

/// Counts allocations made by the current thread, to prove the recording path allocates
/// nothing (STYLE S29). Wraps the system allocator for the whole unit-test binary.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the counter is a const-initialised thread-local
// `Cell`, which needs no allocation itself.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn buckets_follow_prometheus_le() {
    let check = |ns: u64, bucket: usize| assert_eq!(bucket_of(ns), bucket, "{ns} ns");
    check(0, 0);
    check(1000, 0); // le is inclusive
    check(1001, 1);
    check(1500, 1);
    check(1501, 2);
    check(2000, 2);
    check(3000, 3);
    check(1500 << 25, BOUNDS - 1);
    check((1500 << 25) + 1, BOUNDS);
    check(u64::MAX, BOUNDS);
    assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]), "bounds increase");
}

#[test]
fn quantiles_interpolate_inside_a_bucket() {
    let histogram = LocalHistogram::new();
    assert_eq!(histogram.snapshot().quantile(0.5), None);
    for _ in 0..100 {
        histogram.record_ns(1_200); // bucket (1 µs, 1.5 µs]
    }
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.count(), 100);
    assert_eq!(snapshot.sum_ns, 120_000);
    let p50 = snapshot.quantile(0.5).unwrap();
    assert!((1.0e-6..=1.5e-6).contains(&p50), "{p50}");
    assert!((snapshot.quantile(1.0).unwrap() - 1.5e-6).abs() < 1e-12);
    for _ in 0..900 {
        histogram.record_ns(40_000_000); // 40 ms
    }
    let snapshot = histogram.snapshot();
    assert!(snapshot.quantile(0.05).unwrap() < 2e-6);
    let p99 = snapshot.quantile(0.99).unwrap();
    assert!((0.032..=0.0492).contains(&p99), "{p99}");
    assert_eq!(snapshot.max_bound(), Some(0.049152));
    let later = histogram.snapshot();
    histogram.record_ns(5_000);
    assert_eq!(histogram.snapshot().since(&later).count(), 1);
}

#[test]
fn overflow_reads_as_the_top_bound() {
    let histogram = LocalHistogram::new();
    histogram.record_ns(u64::MAX);
    assert_eq!(histogram.snapshot().quantile(0.5), Some(BOUNDS_NS[BOUNDS - 1] as f64 / 1e9));
}

#[test]
fn recording_allocates_nothing() {
    let tenant = TenantCounters::default();
    record(Op::GetPageMemory, Duration::from_micros(3)); // warm up the thread-local
    let count = allocations_during(|| {
        for i in 0..1000u64 {
            request_started();
            record(Op::GetPageMemory, Duration::from_nanos(i * 977));
            disk_read_started();
            disk_read_done(Duration::from_micros(80));
            network(100, 8200);
            tenant.request(RequestKind::GetPage, 0);
            TenantCounters::add(&tenant.pages, 1);
            request_finished(0);
        }
    });
    assert_eq!(count, 0, "the recording path allocated");
    let snapshot = local_snapshot(0);
    assert!(snapshot.latency[Op::GetPageMemory as usize].count() >= 1001);
    assert_eq!(snapshot.disk_reads_in_flight, 0);
}

#[test]
fn slow_request_lines_are_capped_per_second() {
    let logged = (0..10).filter(|_| slow_request(3).0).count();
    assert_eq!(logged, 3);
}

fn tenant(id: u128, core: usize, get_pages: u64) -> TenantSnapshot {
    let mut snapshot = TenantSnapshot {
        tenant_id: Some(TenantId::from_u128(id)),
        core,
        tenants: 1,
        timelines: 1,
        lag_layers_bytes: 100,
        delta_layers: 2,
        ..TenantSnapshot::default()
    };
    snapshot.requests[RequestKind::GetPage as usize] = get_pages;
    snapshot
}

fn core_snapshot(core: usize, tenants: Vec<TenantSnapshot>) -> CoreSnapshot {
    let mut snapshot = local_snapshot(core);
    snapshot.latency = [Histogram::default(); OPS];
    snapshot.latency[Op::GetPageDisk as usize].buckets[3] = 7;
    snapshot.latency[Op::GetPageDisk as usize].sum_ns = 7 * 2500;
    snapshot.errors = [0; STATUSES];
    snapshot.errors[crate::proto::Status::NotFound as usize] = 2;
    snapshot.tenants = tenants;
    snapshot
}

/// Parses exposition text just enough to check its shape: every sample belongs to a family
/// declared before it, and returns `(name with labels, value)` pairs.
fn samples(text: &str) -> Vec<(String, f64)> {
    let mut declared = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
            .unwrap_or(name);
        assert!(declared.contains(family), "{name} has no # TYPE line before it");
        samples.push((series.to_string(), value.parse().unwrap()));
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples.iter().find(|(s, _)| s == series).unwrap_or_else(|| panic!("no {series}")).1
}

#[test]
fn exposition_merges_histograms_and_bounds_tenant_labels() {
    let cores = vec![
        core_snapshot(0, vec![tenant(1, 0, 5), tenant(2, 0, 6)]),
        core_snapshot(1, vec![tenant(3, 1, 7)]),
    ];
    let process = Process { version: "0.0.0", commit: "abc", cores: 2, ..Process::default() };
    let mut labels = TenantLabels::new(1, &[TenantId::from_u128(3).to_string()]);
    let text = render(&process, &cores, &mut labels);
    let samples = samples(&text);
    let disk = "pagecore_latency_seconds_bucket{op=\"get_page_disk\",le=\"0.000002\"}";
    assert_eq!(value(&samples, disk), 0.0);
    let disk = "pagecore_latency_seconds_bucket{op=\"get_page_disk\",le=\"0.000003\"}";
    assert_eq!(value(&samples, disk), 14.0, "merged over two cores, cumulative");
    assert_eq!(value(&samples, "pagecore_latency_seconds_count{op=\"get_page_disk\"}"), 14.0);
    let inf = "pagecore_latency_seconds_bucket{op=\"get_page_disk\",le=\"+Inf\"}";
    assert_eq!(value(&samples, inf), 14.0);
    assert_eq!(
        value(&samples, "pagecore_request_errors_total{core=\"1\",status=\"NotFound\"}"),
        2.0
    );
    assert_eq!(value(&samples, "pagecore_requests_total{core=\"0\",op=\"get_page\"}"), 11.0);
    // Tenant 3 is pinned, tenant 1 took the one free label, tenant 2 is "other".
    let t = |id: u128| TenantId::from_u128(id).to_string();
    let requests = |label: &str| {
        format!("pagecore_tenant_requests_total{{tenant=\"{label}\",op=\"get_page\"}}")
    };
    assert_eq!(value(&samples, &requests(&t(1))), 5.0);
    assert_eq!(value(&samples, &requests(&t(3))), 7.0);
    assert_eq!(value(&samples, &requests("other")), 6.0);
    assert!(!text.contains(&t(2)), "tenant 2 must not get a label");
    assert_eq!(value(&samples, "pagecore_tenant_series{series=\"other\"}"), 1.0);
    // Labels stick: a busier newcomer does not take tenant 1's label.
    let cores = vec![core_snapshot(0, vec![tenant(4, 0, 1000), tenant(1, 0, 5)])];
    let text = render(&process, &cores, &mut labels);
    assert!(text.contains(&t(1)) && !text.contains(&t(4)));
}

#[test]
fn history_turns_snapshots_into_rates_and_percentiles() {
    let mut history = History::new(2);
    let start = Instant::now();
    let mut first = core_snapshot(0, vec![tenant(1, 0, 100)]);
    first.cpu_ns = 0;
    history.add(start, 1_000, &[first.clone()]);
    assert_eq!(history.samples_after(0).count(), 0, "the first call only sets the baseline");
    let mut second = first.clone();
    second.cpu_ns = 500_000_000;
    second.tenants[0].requests[RequestKind::GetPage as usize] = 300;
    second.latency[Op::GetPageMemory as usize].buckets[10] = 50;
    history.add(start + Duration::from_secs(2), 3_000, &[second.clone()]);
    let sample = history.samples_after(0).next().unwrap().clone();
    assert_eq!(sample.seq, 1);
    assert!((sample.requests_per_s[RequestKind::GetPage as usize] - 100.0).abs() < 1e-9);
    assert!((sample.cores[0].load - 0.25).abs() < 1e-9);
    let memory = &sample.ops[Op::GetPageMemory as usize];
    assert_eq!(memory.count, 50);
    assert!(memory.p50.unwrap() > BOUNDS_NS[9] as f64 / 1e9);
    assert_eq!(sample.ops[Op::GetPageDisk as usize].count, 0, "no new disk reads");
    assert_eq!(history.recent_histograms()[Op::GetPageMemory as usize].count(), 50);
    for i in 3..6 {
        history.add(start + Duration::from_secs(i), i * 1000, &[second.clone()]);
    }
    assert_eq!(history.samples_after(0).count(), 2, "bounded");
    let json = history.json(3, serde_json::json!({}));
    assert_eq!(json["samples"].as_array().unwrap().len(), 1);
    assert!(json["cache"].is_null());
}
