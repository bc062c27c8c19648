//! Credentials for a server with authentication on (`deploy/README.md`, "Authentication"):
//! the bench mints its own tenant tokens from the server's token secret and sends the admin
//! bearer token. Without the options it sends none, as against a development server.

use server::admin_client::AdminClient;
use server::auth::{mint, Secret};
use server::proto::Role;
use std::path::PathBuf;
use wal::TenantId;

/// How long the tokens the bench mints stay valid: longer than any run.
const TOKEN_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(clap::Args, Debug, Default)]
pub struct CredentialArgs {
    /// The server's `auth.token_secret_file`, to mint tenant tokens with.
    #[arg(long, global = true)]
    pub token_secret_file: Option<PathBuf>,
    /// The server's `auth.admin_token_file`, for the admin API.
    #[arg(long, global = true)]
    pub admin_token_file: Option<PathBuf>,
}

/// The loaded secrets; cheap to clone into worker threads.
#[derive(Clone, Default)]
pub struct Credentials {
    token_secret: Option<Secret>,
    admin_token: Option<String>,
}

impl Credentials {
    pub fn load(args: &CredentialArgs) -> anyhow::Result<Credentials> {
        let token_secret = args.token_secret_file.as_deref().map(Secret::load).transpose()?;
        let admin_token = match &args.admin_token_file {
            Some(path) => Some(std::fs::read_to_string(path)?.trim().to_string()),
            None => None,
        };
        Ok(Credentials { token_secret, admin_token })
    }

    pub fn admin(&self, admin_addr: &str) -> AdminClient {
        match &self.admin_token {
            Some(token) => AdminClient::with_token(admin_addr, token),
            None => AdminClient::new(admin_addr),
        }
    }

    /// A token for `tenant` and `role`, or empty without a token secret.
    pub fn token(&self, tenant: TenantId, role: Role) -> Vec<u8> {
        let Some(secret) = &self.token_secret else { return Vec::new() };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        mint(secret, tenant, role, now + TOKEN_TTL_SECS).into_bytes()
    }
}
