use super::*;

/// Small enough for CI: the bench smoke of `cache-sim` (STYLE S35).
fn tiny() -> CacheSimArgs {
    CacheSimArgs {
        pages: 2_000,
        accesses: 20_000,
        warmup: 20_000,
        seed: 7,
        sizes: vec![10.0],
        traces: Vec::new(),
        policies: Vec::new(),
    }
}

#[test]
fn every_trace_and_policy_replays_and_tabulates() {
    let args = tiny();
    let mut results = Vec::new();
    for trace in TraceKind::ALL {
        for policy in PolicyKind::ALL {
            let result = replay(&args, trace, 10.0, policy);
            assert!((0.0..=1.0).contains(&result.hit_ratio), "{result:?}");
            assert_eq!(result.frames, 200);
            results.push(result);
        }
    }
    let table = markdown(&results, &PolicyKind::ALL);
    assert_eq!(table.lines().count(), 2 + TraceKind::ALL.len());
    assert!(table.starts_with("| trace | cache | s3fifo | s3fifo-noadm | sieve |"));
    assert!(table.contains("| zipf-scan | 10% |"));
}

#[test]
fn admission_keeps_the_hot_set_through_scans() {
    let args = tiny();
    let s3fifo = replay(&args, TraceKind::ZipfScan, 10.0, PolicyKind::S3Fifo).hit_ratio;
    let lru = replay(&args, TraceKind::ZipfScan, 10.0, PolicyKind::Lru).hit_ratio;
    assert!(s3fifo > lru, "s3fifo {s3fifo} lru {lru}");
}

#[test]
fn uniform_hit_ratio_is_the_cache_share() {
    let args = tiny();
    let lru = replay(&args, TraceKind::Uniform, 10.0, PolicyKind::Lru).hit_ratio;
    assert!((lru - 0.10).abs() < 0.02, "lru on uniform: {lru}");
}

#[test]
fn traces_are_seeded_and_shaped() {
    let pages = 10_000;
    let sample = |kind, seed| {
        let mut trace = Trace::new(kind, pages, seed);
        (0..4_000).map(|_| trace.next_page()).collect::<Vec<_>>()
    };
    assert_eq!(sample(TraceKind::Zipf(0.9), 1), sample(TraceKind::Zipf(0.9), 1));
    assert_ne!(sample(TraceKind::Zipf(0.9), 1), sample(TraceKind::Zipf(0.9), 2));
    // About a fifth of zipf-scan reads are scan pages, each read once.
    let scan = sample(TraceKind::ZipfScan, 3);
    let scanned: Vec<_> = scan.iter().filter(|k| k.rel.rel_number == 20_001).collect();
    assert!((600..1000).contains(&scanned.len()), "{} scan reads", scanned.len());
    let distinct: std::collections::HashSet<_> = scanned.iter().collect();
    assert_eq!(distinct.len(), scanned.len());
    // pgbench: account, teller, branch, history, in that order.
    let tx = sample(TraceKind::Pgbench, 4);
    let rels: Vec<u32> = tx[..4].iter().map(|k| k.rel.rel_number).collect();
    assert_eq!(rels, [16403, 16402, 16401, 16404]);
}
