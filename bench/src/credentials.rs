//! Credentials for a server with authentication on (`deploy/README.md`, "Authentication"):
//! the bench mints its own tenant tokens from the server's token secret and sends the admin
//! bearer token. Without the options it sends none, as against a development server.
//! With `--tls-ca` (page protocol) and `--admin-tls-ca` (admin API) it connects over TLS,
//! trusting that CA and verifying `--tls-server-name` (`deploy/README.md`, "TLS").

use server::admin_client::AdminClient;
use server::auth::{mint, Secret};
use server::client::{Client, ClientError, ClientTls};
use server::proto::Role;
use std::path::PathBuf;
use wal::{TenantId, TimelineId};

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
    /// CA certificate (PEM) to trust: connect to the page protocol over TLS.
    #[arg(long, global = true)]
    pub tls_ca: Option<PathBuf>,
    /// CA certificate (PEM) to trust: connect to the admin API over HTTPS.
    #[arg(long, global = true)]
    pub admin_tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (a DNS name or an IP address).
    #[arg(long, global = true, default_value = "localhost")]
    pub tls_server_name: String,
}

/// The loaded secrets; cheap to clone into worker threads.
#[derive(Clone, Default)]
pub struct Credentials {
    token_secret: Option<Secret>,
    admin_token: Option<String>,
    tls: Option<ClientTls>,
    admin_tls: Option<ClientTls>,
}

impl Credentials {
    pub fn load(args: &CredentialArgs) -> anyhow::Result<Credentials> {
        let token_secret = args.token_secret_file.as_deref().map(Secret::load).transpose()?;
        let admin_token = match &args.admin_token_file {
            Some(path) => Some(std::fs::read_to_string(path)?.trim().to_string()),
            None => None,
        };
        let name = &args.tls_server_name;
        let tls = args.tls_ca.as_deref().map(|ca| ClientTls::new(ca, name)).transpose()?;
        let admin_tls =
            args.admin_tls_ca.as_deref().map(|ca| ClientTls::new(ca, name)).transpose()?;
        Ok(Credentials { token_secret, admin_token, tls, admin_tls })
    }

    pub fn admin(&self, admin_addr: &str) -> AdminClient {
        match (&self.admin_tls, &self.admin_token) {
            (Some(tls), token) => AdminClient::with_tls(admin_addr, tls, token.as_deref()),
            (None, Some(token)) => AdminClient::with_token(admin_addr, token),
            (None, None) => AdminClient::new(admin_addr),
        }
    }

    /// The TLS settings of the page protocol, if it is TLS.
    pub fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
    }

    /// A blocking client with this tenant's token, over TLS if configured.
    pub fn client(
        &self,
        addr: &str,
        role: Role,
        (tenant_id, timeline_id): (TenantId, TimelineId),
        writer_term: u64,
    ) -> Result<Client, ClientError> {
        let token = self.token(tenant_id, role);
        match &self.tls {
            Some(tls) => {
                Client::connect_tls(addr, tls, role, tenant_id, timeline_id, writer_term, &token)
            }
            None => {
                Client::connect_with_token(addr, role, tenant_id, timeline_id, writer_term, &token)
            }
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
