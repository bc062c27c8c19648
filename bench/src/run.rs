//! `pagecore-bench run`: connects the clients, starts the job threads (`job.rs`) and, for the
//! writing workloads, one committer per tenant (`committer.rs`), collects their measurements
//! interval by interval, prints progress and the pgbench-like summary, and with `--vs-ceiling`
//! measures the machine's ceilings first and states the results as ratios of them.
//!
//! Threads report through one channel: at each interval boundary every thread sends what it
//! recorded and starts afresh, so nothing is shared on the measuring path. An interval is
//! complete when every thread has reported it (or finished before it).

use crate::ceiling::{self, Ceiling, CeilingArgs};
use crate::committer::{CommitQueue, Committer, Completions, LsnAllocator};
use crate::conn::Conn;
use crate::credentials::Credentials;
use crate::job::{ClientConn, Job, TenantRun};
use crate::report::{per_second, Interval, Report};
use crate::state::{State, TenantIds};
use crate::stats::{OpSummary, Recorder};
use crate::workload::{LsnMode, Workload};
use crate::Outputs;
use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use server::client::Client;
use server::proto::Role;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};
use wal::Lsn;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Built-in workload.
    #[arg(long, short = 'b', value_enum, default_value = "tpcb-like")]
    pub workload: Workload,
    /// Concurrent clients (connections).
    #[arg(long, short = 'c', default_value_t = 1)]
    pub clients: usize,
    /// Threads driving the clients (default: one per client).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Run for this many seconds (default 10 unless --transactions is given).
    #[arg(long, short = 'T')]
    pub time: Option<f64>,
    /// Transactions per client, then stop.
    #[arg(long, short = 't', conflicts_with = "time")]
    pub transactions: Option<u64>,
    /// Open loop: start transactions on a Poisson schedule at this total rate (per second).
    #[arg(long, short = 'R')]
    pub rate: Option<f64>,
    /// Latency limit in ms: slower transactions are counted late; with --rate, transactions
    /// already later than this when they could start are skipped.
    #[arg(long, short = 'L')]
    pub latency_limit: Option<f64>,
    /// Print a progress line every this many seconds.
    #[arg(long, short = 'P')]
    pub progress: Option<f64>,
    /// Transactions in flight per connection (requests, for one-read workloads).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Use the first N tenants of the state file (default: all); clients are spread over them.
    #[arg(long)]
    pub tenants: Option<usize>,
    /// Zipf exponent of getpage-zipf (0.99 = YCSB's default; any value > 0).
    #[arg(long, default_value_t = 0.99)]
    pub theta: f64,
    /// LSN that reads ask for.
    #[arg(long, value_enum, default_value = "latest")]
    pub lsn: LsnMode,
    /// State file written by `init`.
    #[arg(long, default_value = "pagecore-bench.json")]
    pub state: PathBuf,
    /// Seed of the random choices (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Measure the machine's ceilings first (as `ceiling` does, loopback at this run's clients
    /// × pipeline) and report the run's figures as ratios of them.
    #[arg(long)]
    pub vs_ceiling: bool,
    #[command(flatten)]
    pub ceiling: CeilingArgs,
}

/// What every job thread shares about the run.
#[derive(Debug)]
pub struct RunPlan {
    pub workload: Workload,
    pub scale: u64,
    pub pipeline: usize,
    pub theta: f64,
    pub lsn_mode: LsnMode,
    pub duration: Option<Duration>,
    pub transactions: Option<u64>,
    pub latency_limit: Option<Duration>,
    pub seed: u64,
}

/// A message from a measuring thread to the reporter.
pub enum Msg {
    Interval { index: u64, recorder: Recorder },
    Done { source: usize, index: u64, recorder: Recorder, at: Instant },
    Failed { source: usize, error: String },
}

/// A measuring thread's view of the reporting intervals.
pub struct IntervalClock {
    source: usize,
    start: Instant,
    interval: Duration,
    index: u64,
    tx: mpsc::Sender<Msg>,
}

impl IntervalClock {
    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn next_boundary(&self) -> Instant {
        self.start + self.interval.mul_f64((self.index + 1) as f64)
    }

    pub fn until_next(&self) -> Duration {
        self.next_boundary().saturating_duration_since(Instant::now())
    }

    /// Sends the recorder for every interval that has ended.
    pub fn tick(&mut self, recorder: &mut Recorder) {
        while Instant::now() >= self.next_boundary() {
            let recorder = std::mem::take(recorder);
            let _ = self.tx.send(Msg::Interval { index: self.index, recorder });
            self.index += 1;
        }
    }

    pub fn finish(mut self, mut recorder: Recorder) {
        self.tick(&mut recorder);
        let _ = self.tx.send(Msg::Done {
            source: self.source,
            index: self.index,
            recorder,
            at: Instant::now(),
        });
    }

    pub fn fail(self, error: String) {
        let _ = self.tx.send(Msg::Failed { source: self.source, error });
    }
}

/// A tenant's writer connection and commit state, before its committer thread starts.
struct CommitterSetup {
    client: Client,
    queue: Arc<CommitQueue>,
    latest: Arc<AtomicU64>,
    lsns: LsnAllocator,
    history_row: u64,
}

struct Setup {
    jobs: Vec<Vec<ClientConn>>,
    committers: Vec<CommitterSetup>,
    tenants: Vec<TenantRun>,
    connect_time: Duration,
}

pub fn run(
    addr: &str,
    admin_addr: &str,
    auth: &Credentials,
    args: &RunArgs,
    outputs: &Outputs,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(args.pipeline >= 1, "--pipeline must be at least 1");
    anyhow::ensure!(args.rate.is_none_or(|r| r > 0.0), "--rate must be positive");
    let state = State::load(&args.state)?;
    let tenant_count = args.tenants.unwrap_or(state.tenants.len());
    anyhow::ensure!(
        (1..=state.tenants.len()).contains(&tenant_count),
        "--tenants {tenant_count}: the state file has {}",
        state.tenants.len()
    );
    let tenants: Vec<TenantIds> =
        state.tenants[..tenant_count].iter().map(|t| t.parse()).collect::<Result<_, _>>()?;
    let ceiling = if args.vs_ceiling {
        Some(ceiling::measure(&args.ceiling, args.clients, args.pipeline)?)
    } else {
        None
    };
    let jobs = args.jobs.unwrap_or(args.clients).clamp(1, args.clients);
    let duration = match (args.time, args.transactions) {
        (_, Some(_)) => None,
        (Some(seconds), None) => Some(Duration::from_secs_f64(seconds)),
        (None, None) => Some(Duration::from_secs(10)),
    };
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos()
            as u64
    });
    let plan = Arc::new(RunPlan {
        workload: args.workload,
        scale: state.scale,
        pipeline: args.pipeline,
        theta: args.theta,
        lsn_mode: args.lsn,
        duration,
        transactions: args.transactions,
        latency_limit: args.latency_limit.map(|ms| Duration::from_secs_f64(ms / 1e3)),
        seed,
    });
    let setup = connect(addr, admin_addr, auth, args, &state, &tenants, jobs)?;
    let interval = Duration::from_secs_f64(args.progress.unwrap_or(1.0).max(0.1));
    let started_at = SystemTime::now();
    let connect_time = setup.connect_time;
    let (outcome, total, intervals, elapsed) = execute(setup, &plan, args, interval)?;
    let config = json!({
        "addr": addr, "admin_addr": admin_addr, "workload": args.workload, "scale": state.scale,
        "clients": args.clients, "jobs": jobs, "pipeline": args.pipeline, "tenants": tenant_count,
        "time_s": duration.map(|d| d.as_secs_f64()), "transactions_per_client": args.transactions,
        "rate_per_s": args.rate, "latency_limit_ms": args.latency_limit, "theta": args.theta,
        "lsn": args.lsn, "seed": seed, "state": args.state,
        "connect_time_ms": connect_time.as_secs_f64() * 1e3,
    });
    let transactions = total.count("transaction");
    let mut report = Report {
        command: "run",
        config,
        started: started_at,
        elapsed,
        throughput_per_s: per_second(transactions, elapsed),
        throughput_unit: "tps",
        total,
        intervals,
        extra: Map::new(),
    };
    report.extra.insert("transactions".into(), json!(transactions));
    if let Some(ceiling) = &ceiling {
        report.extra.insert("ceiling".into(), ceiling.json());
        report.extra.insert("ratios".into(), ratios(ceiling, &report.summaries()));
    }
    print_summary(&report, args, jobs, &state, tenant_count, connect_time);
    report.write_outputs(outputs)?;
    if let Some(error) = outcome {
        bail!("run failed: {error}");
    }
    Ok(())
}

/// Opens every connection before the clock starts (pgbench's "initial connection time").
fn connect(
    addr: &str,
    admin_addr: &str,
    auth: &Credentials,
    args: &RunArgs,
    state: &State,
    tenants: &[TenantIds],
    jobs: usize,
) -> anyhow::Result<Setup> {
    let started = Instant::now();
    let mut committers = Vec::new();
    let mut runs = Vec::new();
    let admin = auth.admin(admin_addr);
    for ids in tenants {
        let mut last = ids.load_end_lsn;
        let mut queue = None;
        if args.workload.writes() {
            // Share the timeline's current term: a higher one would fence other writers, a lower
            // one would be fenced.
            let info = admin
                .tenant(ids.tenant_id)
                .with_context(|| format!("looking up tenant {}", ids.tenant_id))?;
            let term = info
                .timelines
                .iter()
                .find(|t| t.timeline_id == ids.timeline_id)
                .map_or(state.writer_term, |t| t.writer_term);
            let ids_pair = (ids.tenant_id, ids.timeline_id);
            let mut client = auth
                .client(addr, Role::Writer, ids_pair, term.max(state.writer_term))
                .with_context(|| format!("connecting the writer of tenant {}", ids.tenant_id))?;
            last = last.max(Lsn(client.hello().last_lsn));
            let history_row = Committer::first_history_row(&mut client, last)?;
            let latest = Arc::new(AtomicU64::new(last.0));
            let commit_queue = Arc::new(CommitQueue::default());
            committers.push(CommitterSetup {
                client,
                queue: commit_queue.clone(),
                latest,
                lsns: LsnAllocator::new(last),
                history_row,
            });
            queue = Some(commit_queue);
        }
        let latest = committers
            .last()
            .map_or_else(|| Arc::new(AtomicU64::new(last.0)), |c| c.latest.clone());
        runs.push(TenantRun { latest, window_start: ids.load_end_lsn, committer: queue });
    }
    let mut job_clients: Vec<Vec<ClientConn>> = (0..jobs).map(|_| Vec::new()).collect();
    for client in 0..args.clients {
        let tenant = client % tenants.len();
        let ids = &tenants[tenant];
        let token = auth.token(ids.tenant_id, Role::Reader);
        let tenant_ids = (ids.tenant_id, ids.timeline_id);
        let conn = Conn::connect(addr, auth.tls(), Role::Reader, tenant_ids, 0, &token)
            .with_context(|| format!("connecting client {client}"))?;
        let known = Lsn(conn.hello.last_lsn);
        if !args.workload.writes() && known.0 > runs[tenant].latest.load(Ordering::Relaxed) {
            runs[tenant].latest.store(known.0, Ordering::Relaxed);
        }
        job_clients[client % jobs].push(ClientConn { conn, tenant });
    }
    Ok(Setup { jobs: job_clients, committers, tenants: runs, connect_time: started.elapsed() })
}

type Executed = (Option<String>, Recorder, Vec<Interval>, Duration);

fn execute(
    setup: Setup,
    plan: &Arc<RunPlan>,
    args: &RunArgs,
    interval: Duration,
) -> anyhow::Result<Executed> {
    let (tx, rx) = mpsc::channel();
    let abort = Arc::new(AtomicBool::new(false));
    let stop_committers = Arc::new(AtomicBool::new(false));
    let job_count = setup.jobs.len();
    let completions: Vec<Arc<Completions>> =
        (0..job_count).map(|_| Completions::new().map(Arc::new)).collect::<Result<_, _>>()?;
    let tenants = Arc::new(setup.tenants);
    let total_clients = args.clients as f64;
    let start = Instant::now();
    let clock = |source| IntervalClock { source, start, interval, index: 0, tx: tx.clone() };
    let mut threads = Vec::new();
    for (index, clients) in setup.jobs.into_iter().enumerate() {
        let rate = args.rate.map(|r| r * clients.len() as f64 / total_clients);
        let job = Job {
            index,
            clients,
            tenants: tenants.clone(),
            completions: completions[index].clone(),
            plan: plan.clone(),
            clock: clock(index),
            abort: abort.clone(),
            rate,
        };
        threads.push(
            std::thread::Builder::new().name(format!("job-{index}")).spawn(move || job.run())?,
        );
    }
    for (offset, committer) in setup.committers.into_iter().enumerate() {
        let CommitterSetup { client, queue, latest, lsns, history_row } = committer;
        let committer = Committer {
            client,
            queue,
            jobs: completions.clone(),
            latest,
            lsns,
            history_row,
            stop: stop_committers.clone(),
            clock: clock(job_count + offset),
        };
        let abort = abort.clone();
        let source = job_count + offset;
        let fail_tx = tx.clone();
        threads.push(std::thread::Builder::new().name(format!("committer-{offset}")).spawn(
            move || {
                let result = committer.run();
                if let Err(error) = &result {
                    abort.store(true, Ordering::Release);
                    let _ = fail_tx.send(Msg::Failed {
                        source,
                        error: format!("committer {offset}: {error:#}"),
                    });
                }
                result
            },
        )?);
    }
    drop(tx);
    let sources = threads.len();
    let collected = collect(rx, sources, job_count, start, interval, args, &stop_committers);
    stop_committers.store(true, Ordering::Release);
    for thread in threads {
        let _ = thread.join().expect("measuring thread panicked");
    }
    Ok(collected)
}

/// The reporter: merges each interval from every source, prints progress, and returns the
/// first failure (if any), the total, the intervals and the measured duration.
fn collect(
    rx: mpsc::Receiver<Msg>,
    sources: usize,
    job_count: usize,
    start: Instant,
    interval: Duration,
    args: &RunArgs,
    stop_committers: &AtomicBool,
) -> Executed {
    let mut pending: BTreeMap<u64, (Recorder, usize)> = BTreeMap::new();
    let mut done_at: Vec<Option<u64>> = vec![None; sources];
    let mut finished = Instant::now();
    let mut failure = None;
    let mut total = Recorder::default();
    let mut intervals = Vec::new();
    let mut next = 0u64;
    for msg in rx.iter() {
        match msg {
            Msg::Interval { index, recorder } => {
                let entry = pending.entry(index).or_default();
                entry.0.merge(&recorder);
                entry.1 += 1;
            }
            Msg::Done { source, index, recorder, at } => {
                let entry = pending.entry(index).or_default();
                entry.0.merge(&recorder);
                entry.1 += 1;
                done_at[source] = Some(index);
                finished =
                    if done_at.iter().flatten().count() == 1 { at } else { finished.max(at) };
            }
            Msg::Failed { source, error } => {
                done_at[source] = Some(0);
                failure.get_or_insert(error);
            }
        }
        if done_at[..job_count].iter().all(Option::is_some) {
            stop_committers.store(true, Ordering::Release);
        }
        let all_done = done_at.iter().all(Option::is_some);
        // Finalise intervals every source has reported (or finished before).
        while let Some((recorder, reports)) = pending.get(&next) {
            let finished_before = done_at.iter().filter(|d| d.is_some_and(|d| d < next)).count();
            if reports + finished_before < sources && !all_done {
                break;
            }
            let recorder = recorder.clone();
            pending.remove(&next);
            let begin = interval.mul_f64(next as f64);
            let end = if all_done && pending.is_empty() {
                finished.saturating_duration_since(start).max(begin)
            } else {
                begin + interval
            };
            let length = end.saturating_sub(begin).max(Duration::from_millis(1));
            next += 1;
            if all_done && pending.is_empty() && next > 1 && recorder.ops.is_empty() {
                // The empty tail after the last thread's final report: not an interval.
                total.merge(&recorder);
                continue;
            }
            if args.progress.is_some() {
                eprintln!("{}", progress_line(&recorder, end, length, args));
            }
            intervals.push(Interval::new(begin, length, recorder.count("transaction"), &recorder));
            total.merge(&recorder);
        }
        if all_done && pending.is_empty() {
            break;
        }
    }
    let elapsed = finished.saturating_duration_since(start);
    (failure, total, intervals, elapsed)
}

fn progress_line(recorder: &Recorder, at: Duration, length: Duration, args: &RunArgs) -> String {
    let tx = recorder.ops.get("transaction").map(|h| OpSummary::of(h, length));
    let (tps, mean, stddev, p99) =
        tx.map_or((0.0, 0.0, 0.0, 0.0), |s| (s.throughput_per_s, s.mean_us, s.stddev_us, s.p99_us));
    let mut line = format!(
        "progress: {:.1} s, {tps:.1} tps, lat {:.3} ms stddev {:.3}, p99 {:.3} ms, {} failed",
        at.as_secs_f64(),
        mean / 1e3,
        stddev / 1e3,
        p99 / 1e3,
        recorder.failed
    );
    if args.rate.is_some() {
        let lag = recorder.ops.get("schedule_lag").map_or(0.0, |h| h.mean() / 1e6);
        line += &format!(", lag {lag:.3} ms");
    }
    if args.latency_limit.is_some() {
        line += &format!(", {} late, {} skipped", recorder.late, recorder.skipped);
    }
    line
}

/// The run's figures as fractions of the ceilings measured in the same process.
pub fn ratios(ceiling: &Ceiling, ops: &BTreeMap<String, OpSummary>) -> Value {
    let mut ratios = Map::new();
    let loopback = ceiling.loopback_summary();
    if let Some(get) = ops.get("get_page") {
        ratios.insert(
            "get_page_throughput_vs_loopback".into(),
            json!(get.throughput_per_s / ceiling.loopback.replies_per_s),
        );
        ratios.insert("get_page_p50_vs_loopback_p50".into(), json!(get.p50_us / loopback.p50_us));
        ratios.insert("get_page_p99_vs_loopback_p99".into(), json!(get.p99_us / loopback.p99_us));
        if let Some((depth, iops)) = ceiling.disk_iops_deepest() {
            ratios.insert(
                format!("get_page_throughput_vs_disk_qd{depth}"),
                json!(get.throughput_per_s / iops),
            );
        }
    }
    if let Some(append) = ops.get("append_wal") {
        let fsync = ceiling.fsync_summary();
        ratios.insert(
            "append_wal_rate_vs_fdatasync_rate".into(),
            json!(append.throughput_per_s / ceiling.fsync_per_s),
        );
        ratios
            .insert("append_wal_p50_vs_fdatasync_p50".into(), json!(append.p50_us / fsync.p50_us));
    }
    ratios.insert("loopback_connections".into(), json!(ceiling.loopback.connections));
    ratios.insert("loopback_pipeline".into(), json!(ceiling.loopback.pipeline));
    Value::Object(ratios)
}

fn print_summary(
    report: &Report,
    args: &RunArgs,
    jobs: usize,
    state: &State,
    tenants: usize,
    connect_time: Duration,
) {
    let transactions = report.total.count("transaction");
    let failed = report.total.failed;
    let attempted = (transactions + failed).max(1);
    let tx = report.summaries().remove("transaction");
    println!("transaction type: {}", args.workload.name());
    println!("scaling factor: {}", state.scale);
    println!("tenants: {tenants}");
    println!("query mode: page protocol, pipeline {}, lsn {:?}", args.pipeline, args.lsn);
    println!("number of clients: {}", args.clients);
    println!("number of threads: {jobs}");
    match args.transactions {
        Some(n) => println!("number of transactions per client: {n}"),
        None => println!("duration: {:.1} s", report.elapsed.as_secs_f64()),
    }
    println!("number of transactions actually processed: {transactions}");
    println!(
        "number of failed transactions: {failed} ({:.3}%)",
        100.0 * failed as f64 / attempted as f64
    );
    if let Some(tx) = &tx {
        println!("latency average = {:.3} ms", tx.mean_us / 1e3);
        println!("latency stddev = {:.3} ms", tx.stddev_us / 1e3);
    }
    if let Some(limit) = args.latency_limit {
        println!(
            "number of transactions above the {limit:.1} ms latency limit: {}/{} ({:.3}%), skipped {}",
            report.total.late, transactions, 100.0 * report.total.late as f64 / attempted as f64, report.total.skipped
        );
    }
    if let Some(lag) = report.total.ops.get("schedule_lag") {
        println!(
            "rate limit schedule lag: avg {:.3} (max {:.3}) ms",
            lag.mean() / 1e6,
            lag.max() as f64 / 1e6
        );
    }
    if !report.total.errors.is_empty() {
        println!("errors: {:?}", report.total.errors);
    }
    println!("initial connection time = {:.3} ms", connect_time.as_secs_f64() * 1e3);
    println!("tps = {:.6} (without initial connection time)", report.throughput_per_s);
    print!("{}", report.latency_table());
    if let Some(ratios) = report.extra.get("ratios").and_then(Value::as_object) {
        println!("ratios to this machine's ceilings (measured in this run):");
        for (name, value) in ratios {
            println!(
                "  {name} = {}",
                value.as_f64().map_or(value.to_string(), |v| format!("{v:.3}"))
            );
        }
    }
}
