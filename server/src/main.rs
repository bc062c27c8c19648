//! `pagecore`: the page server and its admin commands.

use clap::{Parser, Subcommand};
use server::admin_client::AdminClient;
use server::auth::Secret;
use server::config::{Config, DEFAULT_ADMIN_LISTEN};
use server::proto::Role;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pagecore",
    version,
    about = "An io_uring page server for databases that separate storage from compute"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. With no options it uses the embedded defaults: data dir ./pagecore-data,
    /// protocol on 127.0.0.1:6400, admin HTTP on 127.0.0.1:6401, all online cores.
    Serve(ServeArgs),
    /// Manage tenants through a running server's admin API.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
        /// Admin API address of the server.
        #[arg(long, default_value = DEFAULT_ADMIN_LISTEN, global = true)]
        admin_addr: String,
        /// The server's `auth.admin_token_file`, when its admin API needs a token.
        #[arg(long, global = true)]
        admin_token_file: Option<PathBuf>,
    },
    /// Tenant auth tokens (see deploy/README.md, "Authentication").
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a token for one tenant and role, signed with the server's token secret.
    Mint {
        /// The file named by the server's `auth.token_secret_file`.
        #[arg(long)]
        secret_file: PathBuf,
        /// Tenant id, 32 hex digits.
        #[arg(long)]
        tenant: String,
        /// `reader` (GetPage, RelSize) or `writer` (also AppendWal).
        #[arg(long, value_parser = ["reader", "writer"])]
        role: String,
        /// Seconds from now until the token expires.
        #[arg(long)]
        ttl: u64,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file; command-line options override its settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for all durable state (WAL segments, metadata).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Page protocol listen address (every core binds it with SO_REUSEPORT).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (/health, /ready, /v1/tenants).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Number of cores (pinned executors); 0 = all online CPUs.
    #[arg(long)]
    cores: Option<usize>,
    /// Log filter, e.g. `info`, `debug`, `server=debug` (overrides the config's `log`).
    #[arg(long)]
    log: Option<String>,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant (random id unless given) and, with --timeline, a timeline in it.
    Create {
        #[arg(long)]
        tenant_id: Option<String>,
        /// Also create a timeline with this id ("random" for a random one).
        #[arg(long)]
        timeline: Option<String>,
    },
    /// List tenants and their timelines as JSON.
    List,
}

fn main() -> std::process::ExitCode {
    // A panic on a core is a bug that may have left state half-changed: crash the whole
    // process (restart recovers from disk) rather than keep serving with one core dead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Tenant { command, admin_addr, admin_token_file } => {
            tenant(command, &admin_addr, admin_token_file.as_deref())
        }
        Command::Token { command } => token(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pagecore: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(admin) = args.admin_listen {
        config.admin_listen = admin;
    }
    if let Some(cores) = args.cores {
        config.cores = cores;
    }
    if let Some(log) = args.log {
        config.log = log;
    }
    let config = config.validate()?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    server::serve::run(config)
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Mint { secret_file, tenant, role, ttl } = command;
    let secret = Secret::load(&secret_file)?;
    let tenant: wal::TenantId = tenant.parse()?;
    let role = if role == "writer" { Role::Writer } else { Role::Reader };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let expiry = now
        .checked_add(ttl)
        .ok_or_else(|| anyhow::anyhow!("--ttl {ttl} runs past the end of time"))?;
    println!("{}", server::auth::mint(&secret, tenant, role, expiry));
    Ok(())
}

fn tenant(
    command: TenantCommand,
    admin_addr: &str,
    admin_token_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let admin = match admin_token_file {
        Some(path) => AdminClient::with_token(admin_addr, std::fs::read_to_string(path)?.trim()),
        None => AdminClient::new(admin_addr),
    };
    match command {
        TenantCommand::Create { tenant_id, timeline } => {
            let tenant_id = tenant_id.map(|t| t.parse()).transpose()?;
            let info = admin.create_tenant(tenant_id)?;
            if let Some(timeline) = timeline {
                let timeline_id = if timeline == "random" { None } else { Some(timeline.parse()?) };
                admin.create_timeline(info.tenant_id, timeline_id)?;
            }
            let info = admin.tenant(info.tenant_id)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        TenantCommand::List => println!("{}", serde_json::to_string_pretty(&admin.tenants()?)?),
    }
    Ok(())
}
