//! `pagecore-bench ceiling`: the machine's raw limits, measured in this process so that every
//! pagecore figure can be stated as a fraction of what the hardware gave in the same run.
//!
//! Four figures, each from the fastest simple raw implementation we could write (never a weak
//! strawman; see each module's doc for the choices): random 8 KiB O_DIRECT reads with io_uring
//! on the data directory's file system ([`disk`]), 16-byte request → 8 KiB reply over loopback
//! TCP ([`loopback`]), AES-256-XTS page encryption per core ([`crate::aes_xts`]), and 8 KiB
//! write + fdatasync latency ([`fsync`]). Tests run one after another, never overlapping.

mod disk;
mod fsync;
mod loopback;

use crate::aes_xts::Xts;
use crate::stats::{OpSummary, Recorder};
use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes256;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wal::PAGE_SIZE;

/// Options shared by `ceiling` and `run --vs-ceiling`.
#[derive(clap::Args, Clone, Debug)]
pub struct CeilingArgs {
    /// Directory on the file system to measure (pagecore's data directory); test files are
    /// created in it and removed afterwards.
    #[arg(long, default_value = "pagecore-data")]
    pub data_dir: PathBuf,
    /// Queue depths of the random-read test (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub disk_depth: Vec<u32>,
    /// Size of the random-read test file, MiB.
    #[arg(long, default_value_t = 256)]
    pub disk_file_mib: u64,
    /// Seconds each ceiling test runs.
    #[arg(long, default_value_t = 3.0)]
    pub ceiling_time: f64,
    /// A few-second smoke: 32 MiB file, 0.5 s per test.
    #[arg(long)]
    pub quick: bool,
    /// Keep the test files for the next run (saves rewriting the read file).
    #[arg(long)]
    pub keep_files: bool,
}

impl CeilingArgs {
    fn test_time(&self) -> Duration {
        Duration::from_secs_f64(if self.quick { 0.5 } else { self.ceiling_time.max(0.3) })
    }

    fn file_bytes(&self) -> u64 {
        if self.quick {
            32 << 20
        } else {
            self.disk_file_mib.max(1) << 20
        }
    }
}

/// Everything one ceiling run measured.
pub struct Ceiling {
    pub disk_iops: Vec<(u32, f64)>,
    pub loopback: LoopbackFigure,
    pub fsync_per_s: f64,
    pub aes_xts_gb_per_s: f64,
    pub aes_ecb_gb_per_s: f64,
    pub recorder: Recorder,
    pub elapsed: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct LoopbackFigure {
    pub connections: usize,
    pub pipeline: usize,
    pub replies_per_s: f64,
}

pub fn disk_op(depth: u32) -> &'static str {
    match depth {
        1 => "disk_read_qd1",
        2 => "disk_read_qd2",
        4 => "disk_read_qd4",
        8 => "disk_read_qd8",
        16 => "disk_read_qd16",
        32 => "disk_read_qd32",
        64 => "disk_read_qd64",
        128 => "disk_read_qd128",
        other => Box::leak(format!("disk_read_qd{other}").into_boxed_str()),
    }
}

/// Runs every ceiling test; loopback at `connections` × `pipeline`.
pub fn measure(args: &CeilingArgs, connections: usize, pipeline: usize) -> anyhow::Result<Ceiling> {
    let started = Instant::now();
    let time = args.test_time();
    let mut recorder = Recorder::default();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let read_path = args.data_dir.join("pagecore-bench-ceiling-read.tmp");
    let sync_path = args.data_dir.join("pagecore-bench-ceiling-sync.tmp");
    eprintln!(
        "ceiling: preparing {} MiB test file in {}",
        args.file_bytes() >> 20,
        args.data_dir.display()
    );
    let file = disk::prepare_file(&read_path, args.file_bytes())?;
    let mut disk_iops = Vec::new();
    for &depth in &args.disk_depth {
        let iops = disk::random_reads(&file, depth, time, disk_op(depth), &mut recorder)?;
        eprintln!("ceiling: disk random 8 KiB reads at QD{depth}: {iops:.0} IOPS");
        disk_iops.push((depth, iops));
    }
    drop(file);
    let sync_file = disk::prepare_file(&sync_path, 16 << 20)?;
    let fsync_per_s = fsync::write_sync(&sync_file, time, &mut recorder)?;
    eprintln!("ceiling: 8 KiB write + fdatasync: {fsync_per_s:.0}/s");
    drop(sync_file);
    if !args.keep_files {
        let _ = std::fs::remove_file(&read_path);
        let _ = std::fs::remove_file(&sync_path);
    }
    let replies_per_s =
        loopback::run(connections, pipeline, time + Duration::from_millis(200), &mut recorder)?;
    eprintln!(
        "ceiling: loopback {connections} conn x {pipeline} deep: {replies_per_s:.0} replies/s"
    );
    let (aes_xts_gb_per_s, aes_ecb_gb_per_s) = aes_ceiling(time, &mut recorder);
    eprintln!("ceiling: AES-256-XTS {aes_xts_gb_per_s:.2} GB/s per core (raw blocks {aes_ecb_gb_per_s:.2})");
    Ok(Ceiling {
        disk_iops,
        loopback: LoopbackFigure { connections, pipeline, replies_per_s },
        fsync_per_s,
        aes_xts_gb_per_s,
        aes_ecb_gb_per_s,
        recorder,
        elapsed: started.elapsed(),
    })
}

/// Pages per timed batch: timing every page would add the clock's cost (~2%) to each.
const AES_BATCH_PAGES: u32 = 64;

/// Single-core AES-256 over 8 KiB pages: XTS (recorded per page as `aes_xts_page`), then raw
/// blocks (ECB, the cipher's own limit). Returns GB/s (10^9 bytes) for both.
fn aes_ceiling(time: Duration, recorder: &mut Recorder) -> (f64, f64) {
    let key1 = [0x11u8; 32];
    let key2 = [0x22u8; 32];
    let mut xts = Xts::new(Aes256::new(&key1.into()), Aes256::new(&key2.into()));
    let mut page = vec![0x5Au8; PAGE_SIZE];
    let per_page = |elapsed: Duration| elapsed / AES_BATCH_PAGES;
    let start = Instant::now();
    let mut pages = 0u64;
    while start.elapsed() < time {
        let began = Instant::now();
        for _ in 0..AES_BATCH_PAGES {
            xts.encrypt(pages, &mut page);
            pages += 1;
        }
        let each = per_page(began.elapsed());
        for _ in 0..AES_BATCH_PAGES {
            recorder.record("aes_xts_page", each);
        }
    }
    let xts_gb = pages as f64 * PAGE_SIZE as f64 / start.elapsed().as_secs_f64() / 1e9;
    let cipher = Aes256::new(&key1.into());
    let start = Instant::now();
    let mut pages = 0u64;
    while start.elapsed() < time / 2 {
        for _ in 0..AES_BATCH_PAGES {
            let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut page);
            cipher.encrypt_blocks(blocks);
            pages += 1;
        }
    }
    std::hint::black_box(&page);
    let ecb_gb = pages as f64 * PAGE_SIZE as f64 / start.elapsed().as_secs_f64() / 1e9;
    (xts_gb, ecb_gb)
}

impl Ceiling {
    fn summary(&self, op: &str) -> OpSummary {
        let h = self.recorder.ops.get(op).cloned().unwrap_or_else(crate::stats::new_histogram);
        OpSummary::of(&h, self.elapsed)
    }

    pub fn disk_iops_deepest(&self) -> Option<(u32, f64)> {
        self.disk_iops.iter().copied().max_by_key(|(depth, _)| *depth)
    }

    pub fn loopback_summary(&self) -> OpSummary {
        self.summary("loopback_reply")
    }

    pub fn fsync_summary(&self) -> OpSummary {
        self.summary("fdatasync")
    }

    /// The JSON `ceiling` object.
    pub fn json(&self) -> Value {
        let latency = |s: &OpSummary| {
            json!({ "mean_us": s.mean_us, "p50_us": s.p50_us, "p90_us": s.p90_us, "p99_us": s.p99_us,
                    "p999_us": s.p999_us, "max_us": s.max_us })
        };
        let mut disk = serde_json::Map::new();
        for &(depth, iops) in &self.disk_iops {
            let mut figure = latency(&self.summary(disk_op(depth)));
            figure["depth"] = json!(depth);
            figure["iops"] = json!(iops);
            figure["mb_per_s"] = json!(iops * PAGE_SIZE as f64 / 1e6);
            disk.insert(format!("qd{depth}"), figure);
        }
        let mut loopback = latency(&self.loopback_summary());
        loopback["connections"] = json!(self.loopback.connections);
        loopback["pipeline"] = json!(self.loopback.pipeline);
        loopback["replies_per_s"] = json!(self.loopback.replies_per_s);
        loopback["gb_per_s"] = json!(self.loopback.replies_per_s * PAGE_SIZE as f64 / 1e9);
        let mut fdatasync = latency(&self.fsync_summary());
        fdatasync["write_bytes"] = json!(PAGE_SIZE);
        fdatasync["per_s"] = json!(self.fsync_per_s);
        let page = self.summary("aes_xts_page");
        json!({
            "disk_read": disk,
            "loopback": loopback,
            "aes": {
                "mode": "AES-256-XTS over 8 KiB pages, one core",
                "gb_per_s_per_core": self.aes_xts_gb_per_s,
                "raw_blocks_gb_per_s_per_core": self.aes_ecb_gb_per_s,
                "page_p50_us": page.p50_us,
            },
            "fdatasync": fdatasync,
        })
    }
}

/// `pagecore-bench ceiling` options.
#[derive(clap::Args, Debug)]
pub struct CeilingCommand {
    /// Loopback test connections.
    #[arg(long, short = 'c', default_value_t = 8)]
    pub clients: usize,
    /// Loopback test requests in flight per connection.
    #[arg(long, default_value_t = 32)]
    pub pipeline: usize,
    #[command(flatten)]
    pub ceiling: CeilingArgs,
}

/// Runs `ceiling`: measures, prints, writes the outputs asked for.
pub fn command(args: &CeilingCommand, outputs: &crate::Outputs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.clients >= 1 && args.pipeline >= 1,
        "--clients and --pipeline must be at least 1"
    );
    let started = std::time::SystemTime::now();
    let ceiling = measure(&args.ceiling, args.clients, args.pipeline)?;
    let loopback = ceiling.loopback_summary();
    let fsync = ceiling.fsync_summary();
    println!("ceiling (data dir {}):", args.ceiling.data_dir.display());
    for &(depth, iops) in &ceiling.disk_iops {
        let s = ceiling.summary(disk_op(depth));
        println!(
            "  disk 8 KiB O_DIRECT random read QD{depth:<3}: {iops:>10.0} IOPS  p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us",
            s.p50_us, s.p99_us, s.p999_us
        );
    }
    println!(
        "  loopback 16 B -> 8 KiB, {} conn x {} deep: {:>10.0} replies/s ({:.2} GB/s)  p50 {:.1} us  p99 {:.1} us",
        args.clients, args.pipeline, ceiling.loopback.replies_per_s,
        ceiling.loopback.replies_per_s * PAGE_SIZE as f64 / 1e9, loopback.p50_us, loopback.p99_us
    );
    println!(
        "  AES-256-XTS 8 KiB pages, one core: {:.2} GB/s (raw AES blocks {:.2} GB/s)",
        ceiling.aes_xts_gb_per_s, ceiling.aes_ecb_gb_per_s
    );
    println!(
        "  8 KiB write + fdatasync: {:.0}/s  p50 {:.1} us  p99 {:.1} us  max {:.1} us",
        ceiling.fsync_per_s, fsync.p50_us, fsync.p99_us, fsync.max_us
    );
    let mut extra = serde_json::Map::new();
    extra.insert("ceiling".into(), ceiling.json());
    let config = json!({ "data_dir": args.ceiling.data_dir, "disk_depth": args.ceiling.disk_depth,
        "disk_file_mib": ceiling_file_mib(&args.ceiling), "test_time_s": args.ceiling.test_time().as_secs_f64(),
        "clients": args.clients, "pipeline": args.pipeline, "quick": args.ceiling.quick });
    let report = crate::report::Report {
        command: "ceiling",
        config,
        started,
        elapsed: ceiling.elapsed,
        throughput_per_s: ceiling.loopback.replies_per_s,
        throughput_unit: "replies/s",
        intervals: vec![crate::report::Interval::new(
            Duration::ZERO,
            ceiling.elapsed,
            0,
            &ceiling.recorder,
        )],
        total: ceiling.recorder,
        extra,
    };
    report.write_outputs(outputs)
}

fn ceiling_file_mib(args: &CeilingArgs) -> u64 {
    args.file_bytes() >> 20
}
