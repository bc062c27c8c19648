//! `pagecore-bench`: load generator and end-to-end checks for pagecore.

mod model;
mod smoke;

use clap::{Parser, Subcommand};
use server::config::{DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN};

#[derive(Parser)]
#[command(name = "pagecore-bench", version, about = "Load generator and checks for pagecore")]
struct Cli {
    /// Page protocol address of the server.
    #[arg(long, default_value = DEFAULT_LISTEN, global = true)]
    addr: String,
    /// Admin API address of the server.
    #[arg(long, default_value = DEFAULT_ADMIN_LISTEN, global = true)]
    admin_addr: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a tenant, append images and deltas, read them back at several LSNs and check
    /// every byte; exits non-zero on any mismatch.
    Smoke,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Smoke => smoke::run(&cli.addr, &cli.admin_addr),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pagecore-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
