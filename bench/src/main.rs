//! `pagecore-bench`: the load generator for pagecore, pgbench-style, with the machine's raw
//! ceilings measured in the same process (`bench/README.md` is the user guide).
//!
//! Commands: `init` loads pgbench-shaped tenants through the protocol, `run` drives a workload
//! and reports latency and throughput, `ceiling` measures the machine's limits, `smoke` is an
//! end-to-end byte check, `cache-sim` replays page traces through the buffer cache's policies.
//! Every command takes `--addr`, `--admin-addr`, `--json`, `--hdr-log` and `--html`.

mod aes_xts;
mod aligned;
mod cache_sim;
mod ceiling;
mod committer;
mod conn;
mod credentials;
mod hdr_log;
mod html;
mod init;
mod job;
mod layout;
mod model;
mod report;
mod rng;
mod run;
mod smoke;
mod state;
mod stats;
mod workload;
mod zipf;

use clap::{Parser, Subcommand};
use server::config::{DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "pagecore-bench", version, about = "Load generator and checks for pagecore")]
struct Cli {
    /// Page protocol address of the server.
    #[arg(long, default_value = DEFAULT_LISTEN, global = true)]
    addr: String,
    /// Admin API address of the server.
    #[arg(long, default_value = DEFAULT_ADMIN_LISTEN, global = true)]
    admin_addr: String,
    #[command(flatten)]
    outputs: Outputs,
    #[command(flatten)]
    credentials: credentials::CredentialArgs,
    #[command(subcommand)]
    command: Command,
}

/// Machine-readable outputs every command can write.
#[derive(clap::Args, Debug, Default)]
pub struct Outputs {
    /// Write a JSON summary (schema in bench/README.md).
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one histogram per operation per interval).
    #[arg(long, global = true)]
    pub hdr_log: Option<PathBuf>,
    /// Write a self-contained HTML report with latency and throughput plots.
    #[arg(long, global = true)]
    pub html: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create tenants and load pgbench-shaped relations (as AppendWal page images).
    Init(init::InitArgs),
    /// Run a workload against the tenants `init` created.
    Run(Box<run::RunArgs>),
    /// Measure the machine's raw ceilings: disk reads, loopback TCP, AES, fdatasync.
    Ceiling(ceiling::CeilingCommand),
    /// Create a tenant, append images and deltas, read them back at several LSNs and check
    /// every byte; exits non-zero on any mismatch.
    Smoke,
    /// Replay synthetic page traces through the buffer cache under each policy and size;
    /// prints a hit-ratio table (no server needed).
    CacheSim(cache_sim::CacheSimArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let credentials = credentials::Credentials::load(&cli.credentials);
    let result = credentials.and_then(|auth| match &cli.command {
        Command::Init(args) => init::run(&cli.addr, &cli.admin_addr, &auth, args, &cli.outputs),
        Command::Run(args) => run::run(&cli.addr, &cli.admin_addr, &auth, args, &cli.outputs),
        Command::Ceiling(args) => ceiling::command(args, &cli.outputs),
        Command::Smoke => smoke::run(&cli.addr, &cli.admin_addr, &auth),
        Command::CacheSim(args) => cache_sim::command(args, &cli.outputs),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pagecore-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
