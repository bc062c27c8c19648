//! Server configuration: embedded defaults, a TOML file, command-line overrides.
//!
//! Every field has a default so `pagecore serve` runs with no arguments. The TOML keys are the
//! field names below; `README.md` documents them with an example file.

use crate::auth::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:6400";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:6401";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Root of all durable state.
    pub data_dir: PathBuf,
    /// Page protocol address; every core binds it (SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Admin HTTP address.
    pub admin_listen: SocketAddr,
    /// Number of cores (executors), pinned to CPUs `0..cores`. 0 = all online CPUs.
    pub cores: usize,
    /// I/O memory per core registered with io_uring, bytes.
    pub io_memory_bytes: usize,
    /// Buffer cache of materialised page versions, bytes in total (split evenly across cores,
    /// preallocated at start). 0 = no cache.
    pub cache_bytes: usize,
    /// How long a read waits for `not_modified_since` to be ingested before `LsnTimeout`.
    pub lsn_wait_timeout_ms: u64,
    /// How long a new connection may take to send its `Hello`.
    pub hello_timeout_ms: u64,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `server=debug`.
    pub log: String,
    /// Log one line for every request slower than this, with where its time went; 0 = off.
    pub slow_request_ms: u64,
    /// At most this many slow-request lines per second per core; the rest are only counted.
    pub slow_request_log_per_sec: u32,
    /// After SIGTERM: how long connections may take to finish the requests they have read
    /// before they are closed regardless.
    pub shutdown_timeout_ms: u64,
    /// Unload a tenant after this many seconds without a connection (its timelines are
    /// flushed and closed; the next `Hello` loads it again). 0 = never.
    pub tenant_idle_unload_secs: u64,
    /// CPU ids the cores are pinned to, core `i` on `cpus[i]`. Empty: CPUs `0..cores`.
    pub cpus: Vec<usize>,
    pub wal: WalConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub metrics: MetricsConfig,
    /// Explicit tenant placement: tenant id (hex) → core index. Others: stable hash.
    pub placement: BTreeMap<String, usize>,
    pub auth: AuthConfig,
    pub encryption: EncryptionConfig,
    pub tls: TlsConfig,
}

/// Encryption at rest with customer-managed keys (`server::keys`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// Provider (a name in `providers`) that holds the CMK of tenants created from now on, or
    /// `"none"`: new tenants are plaintext. Default `"dev"`, the built-in development keyring. Existing tenants keep what they were created with.
    pub provider: String,
    /// CMK name new tenants use at their provider (overridable per tenant at creation).
    pub cmk: String,
    /// How often each encrypted tenant's KEK is unwrapped again by its provider, to notice a
    /// CMK revoked at the provider (the tenant then becomes `KeyUnavailable` until it unwraps
    /// again). 0 = never.
    pub check_interval_ms: u64,
    /// Key providers by name.
    pub providers: BTreeMap<String, KeyProviderConfig>,
}

/// A key provider that holds customer master keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KeyProviderConfig {
    /// A local keyring file (TOML, `[[keys]] name, version, key = 64 hex digits`). An empty
    /// path is the development keyring `<data_dir>/dev-keyring.toml`, created on first start.
    File {
        #[serde(default)]
        path: PathBuf,
    },
    /// An external program: `command... wrap <cmk>` reads a KEK in hex on stdin and prints the
    /// wrapped blob in hex; `command... unwrap <cmk>` does the reverse. Non-zero exit = refusal.
    Command {
        command: Vec<String>,
        #[serde(default = "default_command_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_command_timeout_ms() -> u64 {
    10_000
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig {
            provider: "dev".to_string(),
            cmk: "default".to_string(),
            check_interval_ms: 1_000,
            providers: BTreeMap::from([(
                "dev".to_string(),
                KeyProviderConfig::File { path: PathBuf::new() },
            )]),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Size of each preallocated WAL segment file; a multiple of 4096, at least 64 KiB.
    pub segment_size_bytes: u64,
    /// Appended bytes waiting for the next group commit per timeline before `SlowDown`.
    pub max_pending_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("pagecore-data"),
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().expect("valid default"),
            cores: 0,
            cache_bytes: 256 << 20,
            io_memory_bytes: 10 << 20,
            lsn_wait_timeout_ms: 10_000,
            hello_timeout_ms: 10_000,
            log: "info".to_string(),
            slow_request_ms: 100,
            slow_request_log_per_sec: 20,
            shutdown_timeout_ms: 10_000,
            tenant_idle_unload_secs: 600,
            cpus: Vec::new(),
            wal: WalConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            metrics: MetricsConfig::default(),
            placement: BTreeMap::new(),
            auth: AuthConfig::default(),
            encryption: EncryptionConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// Per-tenant rate limits (see `server::limits`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// GetPage pages per second of every tenant without an entry in `tenants`; 0 = unlimited.
    pub get_page_per_sec: u64,
    /// WAL bytes per second of every tenant without an entry in `tenants`; 0 = unlimited.
    pub wal_bytes_per_sec: u64,
    /// Seconds of rate a tenant may use at once.
    pub burst_secs: f64,
    /// Per-tenant overrides: tenant id (hex) → limits.
    pub tenants: BTreeMap<String, TenantLimits>,
}

/// One tenant's limits; 0 = unlimited.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Pages per second served by GetPage and GetPages.
    pub get_page_per_sec: u64,
    /// WAL bytes per second accepted by AppendWal.
    pub wal_bytes_per_sec: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            get_page_per_sec: 0,
            wal_bytes_per_sec: 0,
            burst_secs: 1.0,
            tenants: BTreeMap::new(),
        }
    }
}

impl LimitsConfig {
    /// The limits of `tenant`: its override, else the defaults.
    pub fn of(&self, tenant: &str) -> TenantLimits {
        self.tenants.get(tenant).copied().unwrap_or(TenantLimits {
            get_page_per_sec: self.get_page_per_sec,
            wal_bytes_per_sec: self.wal_bytes_per_sec,
        })
    }
}

/// The durable page store: layer files, compaction, retention.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Freeze the in-memory layer and write it as a delta layer at this many payload bytes...
    pub flush_threshold_bytes: usize,
    /// ... or when its oldest record is this old.
    pub flush_interval_ms: u64,
    /// Write image layers once this many delta layers lie above the newest image set; bounds
    /// the layers one GetPage needs (read amplification) to this number plus one.
    pub image_after_delta_layers: usize,
    /// Merge delta layers below the newest image set (kept only for point-in-time reads) once
    /// there are this many, oldest first, into one file of at most `merge_max_bytes`.
    pub merge_delta_layers_after: usize,
    pub merge_max_bytes: usize,
    /// Most pages in one image layer file (a key range of an image set).
    pub image_layer_max_pages: usize,
    /// Retention (PITR window) as LSN distance below the last ingested LSN; 0 = no limit.
    pub pitr_lsn_window: u64,
    /// Retention as wall-clock time; 0 = no limit. With both set, a version is kept while
    /// either window needs it.
    pub pitr_window_secs: u64,
    /// Write budget for background work (flushes, image layers) per core, bytes per second.
    pub background_bytes_per_sec: u64,
    /// How often each timeline's background task looks at its store.
    pub background_tick_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            flush_threshold_bytes: 64 << 20,
            flush_interval_ms: 60_000,
            image_after_delta_layers: 4,
            merge_delta_layers_after: 8,
            merge_max_bytes: 256 << 20,
            image_layer_max_pages: 8192,
            pitr_lsn_window: 1 << 30,
            pitr_window_secs: 0,
            background_bytes_per_sec: 256 << 20,
            background_tick_ms: 1000,
        }
    }
}

/// `/metrics` and `/dashboard` (see `deploy/README.md`, "Metrics").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Tenants with a label of their own in `/metrics`, first come first served and kept for
    /// the life of the process; every other tenant is counted under `tenant="other"`.
    pub max_tenant_series: usize,
    /// Tenants (hex ids) that always get a label of their own, in addition to the above.
    pub tenant_series: Vec<String>,
    /// How often the dashboard history takes a sample.
    pub dashboard_sample_ms: u64,
    /// How many samples the dashboard history keeps (600 × 1 s = 10 minutes).
    pub dashboard_history: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            max_tenant_series: 64,
            tenant_series: Vec::new(),
            dashboard_sample_ms: 1000,
            dashboard_history: 600,
        }
    }
}

/// Authentication (`server::auth`; operator guide in `deploy/README.md`, "Authentication").
/// Both files unset (the default) = authentication off, for development.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// File holding the HMAC secret tenant tokens are signed with (at least 32 bytes; trailing
    /// whitespace is ignored). When set, every `Hello` needs a valid token.
    pub token_secret_file: Option<PathBuf>,
    /// File holding the admin API's bearer token (at least 32 bytes). When set, every admin
    /// route except `/health` and `/ready` needs `Authorization: Bearer <token>`.
    pub admin_token_file: Option<PathBuf>,
    /// The two secrets, read by [`Config::validate`]; never in the TOML.
    #[serde(skip)]
    pub(crate) token_secret: Option<Secret>,
    #[serde(skip)]
    pub(crate) admin_token: Option<Secret>,
}

/// TLS (`server::tls`; operator guide in `deploy/README.md`, "TLS"). Off unless both files
/// are set and at least one listener is switched on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the server's certificate first, then any intermediates.
    pub cert_chain_file: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1), readable by pagecore only.
    pub private_key_file: Option<PathBuf>,
    /// Serve the page protocol (`listen`) over TLS only.
    pub protocol: bool,
    /// Serve the admin API (`admin_listen`) over HTTPS only.
    pub admin: bool,
    /// The loaded certificate and key, by [`Config::validate`]; never in the TOML.
    #[serde(skip)]
    pub(crate) server: Option<std::sync::Arc<crate::tls::ServerTls>>,
}

impl TlsConfig {
    /// The rustls configuration of the page protocol listener, when it uses TLS.
    pub(crate) fn protocol_config(&self) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        self.server.as_ref().filter(|_| self.protocol).map(|tls| tls.protocol.clone())
    }

    /// The rustls configuration of the admin listener, when it uses TLS.
    pub(crate) fn admin_config(&self) -> Option<std::sync::Arc<rustls::ServerConfig>> {
        self.server.as_ref().filter(|_| self.admin).map(|tls| tls.admin.clone())
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig { segment_size_bytes: 16 << 20, max_pending_bytes: 64 << 20 }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid setting {key}: {why}")]
    Invalid { key: &'static str, why: String },
}

impl Config {
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })
    }

    /// Resolves `cores = 0` and checks every setting.
    pub fn validate(mut self) -> Result<Config, ConfigError> {
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.cores == 0 {
            self.cores = if self.cpus.is_empty() { online } else { self.cpus.len() };
        }
        if !self.cpus.is_empty() {
            self.check_cpus()?;
        } else if self.cores > online {
            let why = format!("{} cores requested, {online} online", self.cores);
            return Err(ConfigError::Invalid { key: "cores", why });
        }
        let segment = self.wal.segment_size_bytes;
        if segment % 4096 != 0 || !(64 * 1024..=(1 << 32)).contains(&segment) {
            let why = format!("{segment} is not a multiple of 4096 between 64 KiB and 4 GiB");
            return Err(ConfigError::Invalid { key: "wal.segment_size_bytes", why });
        }
        let store = &self.store;
        if store.merge_delta_layers_after < 2 {
            let why = "merge_delta_layers_after must be at least 2".into();
            return Err(ConfigError::Invalid { key: "store", why });
        }
        if store.image_after_delta_layers == 0 || store.image_layer_max_pages == 0 {
            let why =
                "image_after_delta_layers and image_layer_max_pages must be at least 1".into();
            return Err(ConfigError::Invalid { key: "store", why });
        }
        if store.background_bytes_per_sec == 0 || store.background_tick_ms == 0 {
            let why = "background_bytes_per_sec and background_tick_ms must be positive".into();
            return Err(ConfigError::Invalid { key: "store", why });
        }
        let metrics = &self.metrics;
        if metrics.dashboard_sample_ms < 100 || metrics.dashboard_history == 0 {
            let why = "dashboard_sample_ms must be at least 100 and dashboard_history positive";
            return Err(ConfigError::Invalid { key: "metrics", why: why.into() });
        }
        if let Some(bad) =
            metrics.tenant_series.iter().find(|t| t.parse::<wal::TenantId>().is_err())
        {
            let why = format!("{bad:?} is not a 32-digit hex tenant id");
            return Err(ConfigError::Invalid { key: "metrics.tenant_series", why });
        }
        if !(self.limits.burst_secs > 0.0 && self.limits.burst_secs.is_finite()) {
            let why = format!("{} is not a positive number of seconds", self.limits.burst_secs);
            return Err(ConfigError::Invalid { key: "limits.burst_secs", why });
        }
        for tenant in self.limits.tenants.keys() {
            if tenant.parse::<wal::TenantId>().is_err() {
                let why = format!("{tenant:?} is not a 32-digit hex tenant id");
                return Err(ConfigError::Invalid { key: "limits.tenants", why });
            }
        }
        for (tenant, core) in &self.placement {
            if tenant.parse::<wal::TenantId>().is_err() {
                let why = format!("{tenant:?} is not a 32-digit hex tenant id");
                return Err(ConfigError::Invalid { key: "placement", why });
            }
            if *core >= self.cores {
                let why = format!("tenant {tenant} placed on core {core} of {}", self.cores);
                return Err(ConfigError::Invalid { key: "placement", why });
            }
        }
        self.check_encryption()?;
        self.load_secrets()?;
        self.load_tls()?;
        Ok(self)
    }

    /// The embedded `dev` provider is always there; the selected provider must exist.
    fn check_encryption(&mut self) -> Result<(), ConfigError> {
        let encryption = &mut self.encryption;
        encryption
            .providers
            .entry("dev".to_string())
            .or_insert(KeyProviderConfig::File { path: PathBuf::new() });
        if encryption.provider != "none" && !encryption.providers.contains_key(&encryption.provider)
        {
            let why = format!(
                "{:?} is neither \"none\" nor a provider in [encryption.providers]",
                encryption.provider
            );
            return Err(ConfigError::Invalid { key: "encryption.provider", why });
        }
        for (name, provider) in &encryption.providers {
            if let KeyProviderConfig::Command { command, .. } = provider {
                if command.is_empty() {
                    let why = format!("provider {name}: command is empty");
                    return Err(ConfigError::Invalid { key: "encryption.providers", why });
                }
            }
        }
        Ok(())
    }

    /// Reads the `[tls]` certificate and key. Half a configuration (a file without the other, a
    /// listener switched on without files, files no listener uses) is refused rather than
    /// guessed at: a server that silently starts without TLS would send plaintext.
    fn load_tls(&mut self) -> Result<(), ConfigError> {
        let tls = &mut self.tls;
        let invalid = |why: &str| Err(ConfigError::Invalid { key: "tls", why: why.into() });
        let (cert, key) = match (&tls.cert_chain_file, &tls.private_key_file) {
            (None, None) if tls.protocol || tls.admin => {
                return invalid(
                    "protocol or admin is on but cert_chain_file and private_key_file are not set",
                );
            }
            (None, None) => return Ok(()),
            (Some(cert), Some(key)) => (cert, key),
            _ => return invalid("set both cert_chain_file and private_key_file, or neither"),
        };
        if !tls.protocol && !tls.admin {
            return invalid(
                "a certificate is set but no listener uses it: set protocol and/or admin",
            );
        }
        let loaded = crate::tls::ServerTls::load(cert, key)
            .map_err(|error| ConfigError::Invalid { key: "tls", why: error.to_string() })?;
        tls.server = Some(std::sync::Arc::new(loaded));
        Ok(())
    }

    /// Reads the `[auth]` secret files; a configured file that is unreadable or too short
    /// stops the start rather than silently serving without authentication.
    fn load_secrets(&mut self) -> Result<(), ConfigError> {
        let load = |path: &Option<PathBuf>, key| {
            path.as_deref()
                .map(Secret::load)
                .transpose()
                .map_err(|error| ConfigError::Invalid { key, why: error.to_string() })
        };
        self.auth.token_secret = load(&self.auth.token_secret_file, "auth.token_secret_file")?;
        self.auth.admin_token = load(&self.auth.admin_token_file, "auth.admin_token_file")?;
        Ok(())
    }

    /// The CPU core `core` is pinned to.
    pub fn cpu_of(&self, core: usize) -> usize {
        self.cpus.get(core).copied().unwrap_or(core)
    }

    /// `cpus` names one CPU per core, each online and none twice.
    fn check_cpus(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid { key: "cpus", why });
        if self.cpus.len() != self.cores {
            return invalid(format!("{} CPUs listed for {} cores", self.cpus.len(), self.cores));
        }
        let mut seen = std::collections::BTreeSet::new();
        for cpu in &self.cpus {
            if !seen.insert(cpu) {
                return invalid(format!("CPU {cpu} is listed twice"));
            }
            let online = std::path::Path::new("/sys/devices/system/cpu").join(format!("cpu{cpu}"));
            if !online.exists() {
                return invalid(format!("CPU {cpu} does not exist on this machine"));
            }
        }
        Ok(())
    }

    /// The core that owns `tenant`: explicit placement, else a stable hash of its id.
    pub fn owner_core(&self, tenant: wal::TenantId) -> usize {
        if let Some(core) = self.placement.get(&tenant.to_string()) {
            return *core;
        }
        (xxhash_rust::xxh3::xxh3_64(&tenant.0) % self.cores as u64) as usize
    }
}

#[cfg(test)]
mod tests;
