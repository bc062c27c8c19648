//! `pagecore-bench cache-sim`: the buffer cache policy study. Replays synthetic page-access
//! traces ([`trace`]) through the real `cache::BufferCache` under each policy and cache size,
//! and prints the hit ratios as a markdown table (the one in `bench/RESULTS.md`).
//!
//! Each read is a `get` at one LSN; a miss inserts the page as current (`[1, MAX)`), as the
//! server's read path does after rebuilding it. The hit ratio counts only the reads after a
//! warm-up, so it describes the steady state rather than the cold start. Every (trace, size,
//! policy) run replays the same seeded sequence. No I/O, no threads: one core, as in the server.

mod trace;

use anyhow::{bail, Context};
use cache::{BufferCache, CacheKey, PolicyKind};
use serde_json::json;
use std::fmt::Write as _;
use std::time::Instant;
use trace::{Trace, TraceKind};
use wal::{Lsn, TenantId, TimelineId, PAGE_SIZE};

#[derive(clap::Args, Debug)]
pub struct CacheSimArgs {
    /// Pages in the data set; cache sizes are percentages of it.
    #[arg(long, default_value_t = 100_000)]
    pub pages: u64,
    /// Reads measured per run, after the warm-up.
    #[arg(long, default_value_t = 1_000_000)]
    pub accesses: u64,
    /// Reads replayed before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    pub warmup: u64,
    /// Seed of every trace.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Cache sizes, percent of the data set (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    pub sizes: Vec<f64>,
    /// Traces (comma-separated): uniform, zipf-0.9, zipf-1.1, pgbench, zipf-scan. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub traces: Vec<String>,
    /// Policies (comma-separated): s3fifo, s3fifo-noadm, sieve, sieve-noadm, lru. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub policies: Vec<String>,
}

/// One replay's outcome.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub trace: String,
    pub size_percent: f64,
    pub frames: usize,
    pub policy: PolicyKind,
    pub hit_ratio: f64,
    pub rejected: u64,
    pub ns_per_read: f64,
}

pub fn command(args: &CacheSimArgs, outputs: &crate::Outputs) -> anyhow::Result<()> {
    let traces = select(&args.traces, &TraceKind::ALL, |t| t.name(), "trace")?;
    let policies = select(&args.policies, &PolicyKind::ALL, |p| p.name().into(), "policy")?;
    if args.pages == 0 || args.accesses == 0 {
        bail!("--pages and --accesses must be positive");
    }
    let mut results = Vec::new();
    for &trace in &traces {
        for &size_percent in &args.sizes {
            for &policy in &policies {
                let result = replay(args, trace, size_percent, policy);
                eprintln!(
                    "cache-sim: {} {}% {}: hit ratio {:.4}, {:.0} ns/read",
                    result.trace,
                    size_percent,
                    policy.name(),
                    result.hit_ratio,
                    result.ns_per_read
                );
                results.push(result);
            }
        }
    }
    print!("{}", markdown(&results, &policies));
    if let Some(path) = &outputs.json {
        let runs: Vec<_> = results
            .iter()
            .map(|r| {
                json!({ "trace": r.trace, "size_percent": r.size_percent, "frames": r.frames,
                        "policy": r.policy.name(), "hit_ratio": r.hit_ratio,
                        "rejected": r.rejected, "ns_per_read": r.ns_per_read })
            })
            .collect();
        let doc = json!({ "schema_version": 1, "command": "cache-sim",
            "config": { "pages": args.pages, "accesses": args.accesses, "warmup": args.warmup,
                        "seed": args.seed }, "runs": runs });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Replays `warmup + accesses` reads of `trace` through a cache of `size_percent` of the data
/// set under `policy`.
pub fn replay(
    args: &CacheSimArgs,
    trace_kind: TraceKind,
    size_percent: f64,
    policy: PolicyKind,
) -> RunResult {
    let frames = ((args.pages as f64 * size_percent / 100.0).round() as usize).max(1);
    let mut cache = BufferCache::new(frames, policy);
    let mut trace = Trace::new(trace_kind, args.pages, args.seed);
    let tenant = TenantId::from_u128(1);
    let timeline = TimelineId::from_u128(1);
    let page = [0u8; PAGE_SIZE];
    let lsn = Lsn(0x100);
    let read = |cache: &mut BufferCache, trace: &mut Trace| {
        let key = CacheKey { tenant, timeline, page: trace.next_page() };
        if cache.get(&key, lsn).is_none() {
            cache.insert(&key, Lsn(1), Lsn::MAX, &page);
        }
    };
    for _ in 0..args.warmup {
        read(&mut cache, &mut trace);
    }
    let before = cache.stats();
    let started = Instant::now();
    for _ in 0..args.accesses {
        read(&mut cache, &mut trace);
    }
    let elapsed = started.elapsed();
    let after = cache.stats();
    let hits = after.hits - before.hits;
    let misses = after.misses - before.misses;
    RunResult {
        trace: trace_kind.name(),
        size_percent,
        frames,
        policy,
        hit_ratio: hits as f64 / (hits + misses).max(1) as f64,
        rejected: after.rejected - before.rejected,
        ns_per_read: elapsed.as_nanos() as f64 / args.accesses as f64,
    }
}

/// One row per (trace, size), one column per policy; the best ratio of a row in bold.
pub fn markdown(results: &[RunResult], policies: &[PolicyKind]) -> String {
    let mut out = String::new();
    let header: Vec<&str> = policies.iter().map(|p| p.name()).collect();
    let _ = writeln!(out, "| trace | cache | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|---:|{}", "---:|".repeat(policies.len()));
    for row in results.chunks(policies.len()) {
        let best = row.iter().map(|r| r.hit_ratio).fold(0.0, f64::max);
        let cells: Vec<String> = row
            .iter()
            .map(|r| {
                let cell = format!("{:.1}", r.hit_ratio * 100.0);
                // Ties at the printed precision are all best.
                if cell == format!("{:.1}", best * 100.0) {
                    format!("**{cell}**")
                } else {
                    cell
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {}% | {} |",
            row[0].trace,
            row[0].size_percent,
            cells.join(" | ")
        );
    }
    out
}

fn select<T: Copy>(
    names: &[String],
    all: &[T],
    name_of: impl Fn(T) -> String,
    what: &str,
) -> anyhow::Result<Vec<T>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|name| {
            all.iter()
                .copied()
                .find(|&item| name_of(item) == *name)
                .with_context(|| format!("unknown {what} {name:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
