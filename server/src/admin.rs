//! The admin HTTP API (control plane): tenants, timelines, health and readiness.
//!
//! It runs on its own thread with `tiny_http` and never touches core state: every command is a
//! message to the owning core (or to all cores for lists), answered over a one-shot channel.
//! Cores poll their admin mailbox every few milliseconds (`serve.rs`); admin latency is not on
//! any request path. Lock order: one lock, the dashboard [`History`] (shared by the admin
//! thread, which reads it, and the sampler thread, which appends to it); nothing is taken while
//! holding it.
//!
//! Routes (JSON bodies unless noted; ids are 32 hex digits):
//! - `GET /health` → 200 `{"status":"ok"}` while the process runs (liveness).
//! - `GET /ready` → 200 once every core has recovered its tenants and listens, else 503; 503
//!   again from SIGTERM on, while connections drain (readiness for load balancers).
//! - `GET /metrics` → Prometheus text (`metrics::exposition`).
//! - `GET /dashboard` → the live dashboard (HTML, self-contained); `GET /dashboard/data?after=N`
//!   → its samples newer than `N` (`metrics::history`).
//! - `GET /v1/tenants` → 200 `[TenantInfo]`.
//! - `POST /v1/tenants` `{"tenant_id"?: id}` → 201 `TenantInfo` (409 if it exists).
//! - `GET /v1/tenants/{tenant}` → 200 `TenantInfo` (404 if unknown).
//! - `POST /v1/tenants/{tenant}/timelines` `{"timeline_id"?: id, "ancestor_timeline_id"?: id,
//!   "ancestor_lsn"?: "X/Y"}` → 201 `TimelineInfo` (a branch when an ancestor is given).
//! - `POST /v1/tenants/{tenant}/timelines/{timeline}/{flush|compact|gc}` → 200 `TimelineInfo`
//!   after running that store operation now (operators and tests; background work does the
//!   same on its own schedule).
//!
//! Authentication: with `auth.admin_token_file` set, every route except `/health` and `/ready`
//! answers 401 `{"error":…}` unless the request carries `Authorization: Bearer <admin token>`.

use crate::auth;
use crate::config::Config;
use crate::metrics::exposition::{self, Process, TenantLabels};
use crate::metrics::history::History;
use crate::metrics::CoreSnapshot;
use crate::store::StoreOp;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use wal::{Lsn, TenantId, TimelineId};

/// A command for one core.
#[derive(Debug)]
pub(crate) enum AdminCommand {
    CreateTenant {
        tenant_id: TenantId,
        /// Key provider and CMK name; `None`: the configured defaults.
        key_provider: Option<String>,
        cmk: Option<String>,
    },
    /// `rotate-kek`, `rotate-cmk`, `revoke`, `restore` of a tenant's keys.
    Keys {
        tenant_id: TenantId,
        op: KeyOp,
    },
    CreateTimeline {
        tenant_id: TenantId,
        timeline_id: TimelineId,
        ancestor: Option<(TimelineId, Option<Lsn>)>,
    },
    TimelineOp {
        tenant_id: TenantId,
        timeline_id: TimelineId,
        op: StoreOp,
    },
    ListTenants,
    /// A snapshot of the core's metrics (`/metrics`, the dashboard sampler).
    Metrics,
    GetTenant {
        tenant_id: TenantId,
    },
}

/// Key management operations of the admin API.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyOp {
    RotateKek,
    RotateCmk,
    Revoke,
    Restore,
}

/// A core's answer.
#[derive(Debug)]
pub(crate) enum AdminReply {
    Tenant(TenantInfo),
    Tenants(Vec<TenantInfo>),
    Timeline(Box<TimelineInfo>),
    Metrics(Box<CoreSnapshot>),
    NotFound(String),
    Conflict(String),
    BadRequest(String),
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantInfo {
    #[serde(with = "hex_id")]
    pub tenant_id: TenantId,
    pub core: usize,
    pub timelines: Vec<TimelineInfo>,
    /// Encryption state of the tenant's keys (never key material).
    #[serde(default)]
    pub keys: KeyInfo,
    /// Unloaded for being idle (`tenant_idle_unload_secs`); the next `Hello` loads it.
    #[serde(default)]
    pub unloaded: bool,
}

/// A tenant's keys as the admin API shows them: names and generations, never key bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Whether the tenant's files are encrypted (it has a key manifest).
    pub encrypted: bool,
    /// Provider holding the tenant's CMK.
    pub provider: Option<String>,
    /// CMK name at the provider.
    pub cmk: Option<String>,
    /// Current KEK generation.
    pub kek_generation: Option<u32>,
    /// Data keys (files) in the manifest.
    pub data_keys: usize,
    /// Whether the tenant can be served (keys unwrapped).
    pub available: bool,
    /// Why not, when it cannot.
    pub unavailable_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineInfo {
    #[serde(with = "hex_id")]
    pub timeline_id: TimelineId,
    /// LSN of the last durable record, `X/Y`.
    pub last_lsn: String,
    pub writer_term: u64,
    pub pages: usize,
    pub versions: usize,
    /// Why the timeline cannot be served, if it cannot.
    pub broken: Option<String>,
    /// `(parent timeline, branch LSN)` for a branch.
    pub ancestor: Option<(String, String)>,
    /// Every version at or below this LSN is in layer files.
    pub disk_consistent_lsn: String,
    /// Reads below this LSN get `LsnTooOld`.
    pub gc_horizon: String,
    /// Payload bytes in the open in-memory layer.
    pub in_memory_bytes: usize,
    pub delta_layers: usize,
    pub image_layers: usize,
    /// Versions held in layer files.
    pub stored_versions: usize,
    /// Memory held by the layer files' in-memory indexes.
    pub index_bytes: usize,
    /// `index_bytes / stored_versions`: metadata memory per stored page version.
    pub index_bytes_per_version: f64,
    /// GetPage reads served and the layers they touched (read amplification).
    pub reads: u64,
    pub read_layers_max: u32,
    pub read_layers_mean: f64,
    pub flushes: u64,
    pub gc_removed_layers: u64,
}

/// Serde of ids as their hex text.
pub(crate) mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<T: std::fmt::Display, S: Serializer>(id: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A message in a core's mailbox.
pub(crate) enum CoreMessage {
    Admin(AdminCommand, mpsc::SyncSender<AdminReply>),
    Shutdown,
}

/// The process's life as the admin API reports it (control plane; set by `serve.rs`).
pub(crate) struct Lifecycle {
    pub(crate) started: Instant,
    pub(crate) start_unix_s: f64,
    pub(crate) ready_cores: AtomicUsize,
    /// Milliseconds from process start to all cores ready; 0 until then.
    pub(crate) startup_ms: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    /// Set once the cores have stopped: the sampler thread ends.
    pub(crate) stopped: AtomicBool,
}

impl Lifecycle {
    pub(crate) fn new(started: Instant) -> Self {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Lifecycle {
            started,
            start_unix_s: (now - started.elapsed().min(now)).as_secs_f64(),
            ready_cores: AtomicUsize::new(0),
            startup_ms: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        }
    }
}

/// What the admin thread shares with the rest of the process.
pub(crate) struct AdminState {
    pub(crate) config: Arc<Config>,
    pub(crate) mailboxes: Vec<mpsc::Sender<CoreMessage>>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) history: Arc<Mutex<History>>,
    /// Only the admin thread renders `/metrics`, so only it touches the tenant labels.
    pub(crate) labels: RefCell<TenantLabels>,
}

const CORE_REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// `/metrics` and the sampler give up on a core after this long (a scrape has a deadline).
const METRICS_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

impl AdminState {
    fn ask(&self, core: usize, command: AdminCommand) -> AdminReply {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if self.mailboxes[core].send(CoreMessage::Admin(command, reply_tx)).is_err() {
            return AdminReply::Failed(format!("core {core} is not running"));
        }
        reply_rx
            .recv_timeout(CORE_REPLY_TIMEOUT)
            .unwrap_or_else(|_| AdminReply::Failed(format!("core {core} did not answer")))
    }
}

/// Asks every core for its metrics at once, then collects the answers in core order.
pub(crate) fn collect_snapshots(
    mailboxes: &[mpsc::Sender<CoreMessage>],
) -> Result<Vec<CoreSnapshot>, String> {
    let mut pending = Vec::with_capacity(mailboxes.len());
    for (core, mailbox) in mailboxes.iter().enumerate() {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if mailbox.send(CoreMessage::Admin(AdminCommand::Metrics, reply_tx)).is_err() {
            return Err(format!("core {core} is not running"));
        }
        pending.push(reply_rx);
    }
    let deadline = Instant::now() + METRICS_REPLY_TIMEOUT;
    let mut snapshots = Vec::with_capacity(pending.len());
    for (core, reply) in pending.into_iter().enumerate() {
        match reply.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(AdminReply::Metrics(snapshot)) => snapshots.push(*snapshot),
            Ok(_) | Err(_) => return Err(format!("core {core} did not answer")),
        }
    }
    Ok(snapshots)
}

/// Takes a dashboard sample every `metrics.dashboard_sample_ms` until the cores stop.
pub(crate) fn sample_forever(
    config: Arc<Config>,
    mailboxes: Vec<mpsc::Sender<CoreMessage>>,
    lifecycle: Arc<Lifecycle>,
    history: Arc<Mutex<History>>,
) {
    let interval = Duration::from_millis(config.metrics.dashboard_sample_ms);
    let mut next = Instant::now();
    while !lifecycle.stopped.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        next += interval;
        if next < now {
            next = now + interval; // fell behind (a core was slow to answer): skip, don't burst
        }
        if lifecycle.ready_cores.load(Ordering::Acquire) < config.cores {
            continue;
        }
        if let Ok(snapshots) = collect_snapshots(&mailboxes) {
            let unix_ms = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut history = history.lock().unwrap_or_else(|e| e.into_inner());
            history.add(Instant::now(), unix_ms, &snapshots);
        }
    }
}

/// The live dashboard: one self-contained page (no CDN), polling `/dashboard/data`.
const DASHBOARD_HTML: &str = include_str!("metrics/dashboard.html");

/// An HTTP answer.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

/// Serves admin requests until `server` is unblocked.
pub(crate) fn run(server: Arc<tiny_http::Server>, state: AdminState) {
    for mut request in server.incoming_requests() {
        let mut body = String::new();
        let reply = if !authorized(&state, &request) {
            json_reply((
                401,
                error_json("missing or wrong admin credential (Authorization: Bearer)"),
            ))
        } else {
            match request.as_reader().take(64 * 1024).read_to_string(&mut body) {
                Ok(_) => route_any(&state, request.method(), request.url(), &body),
                Err(error) => json_reply((400, error_json(&format!("unreadable body: {error}")))),
            }
        };
        let header = tiny_http::Header::from_bytes("Content-Type", reply.content_type)
            .expect("static header is valid");
        let response = tiny_http::Response::from_string(reply.body)
            .with_status_code(reply.status)
            .with_header(header);
        if let Err(error) = request.respond(response) {
            tracing::info!(%error, "admin client went away");
        }
    }
}

/// With `auth.admin_token_file` set, every route but the probes `/health` and `/ready` needs
/// the admin bearer token (compared in constant time, `auth::admin_allows`).
fn authorized(state: &AdminState, request: &tiny_http::Request) -> bool {
    let Some(expected) = &state.config.auth.admin_token else { return true };
    let path = request.url().split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if matches!(segments.as_slice(), ["health"] | ["ready"]) {
        return true;
    }
    let header =
        request.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.as_str());
    auth::admin_allows(expected, header)
}

fn json_reply((status, body): (u16, String)) -> Reply {
    Reply { status, content_type: "application/json", body }
}

/// Routes that answer something other than JSON, then the JSON API.
fn route_any(state: &AdminState, method: &tiny_http::Method, url: &str, body: &str) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if *method != tiny_http::Method::Get {
        return json_reply(route(state, method, url, body));
    }
    match path {
        "/metrics" => metrics_text(state),
        "/dashboard" | "/dashboard/" => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: DASHBOARD_HTML.to_string(),
        },
        "/dashboard/data" => {
            let after = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("after="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let history = state.history.lock().unwrap_or_else(|e| e.into_inner());
            json_reply((200, history.json(after, dashboard_header(state)).to_string()))
        }
        _ => json_reply(route(state, method, url, body)),
    }
}

fn process_facts(state: &AdminState) -> Process {
    let lifecycle = &state.lifecycle;
    let startup_ms = lifecycle.startup_ms.load(Ordering::Acquire);
    let mut process = Process {
        version: env!("CARGO_PKG_VERSION"),
        commit: option_env!("PAGECORE_COMMIT").unwrap_or("unknown"),
        start_unix_s: lifecycle.start_unix_s,
        startup_s: (startup_ms > 0).then(|| startup_ms as f64 / 1000.0),
        ready: lifecycle.ready_cores.load(Ordering::Acquire) == state.config.cores,
        shutting_down: lifecycle.shutting_down.load(Ordering::Acquire),
        cores: state.config.cores,
        ..Process::default()
    };
    process.read_proc();
    process
}

fn metrics_text(state: &AdminState) -> Reply {
    let process = process_facts(state);
    let snapshots =
        if process.ready { collect_snapshots(&state.mailboxes) } else { Ok(Vec::new()) };
    match snapshots {
        Ok(snapshots) => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: exposition::render(&process, &snapshots, &mut state.labels.borrow_mut()),
        },
        Err(why) => json_reply((503, error_json(&why))),
    }
}

fn dashboard_header(state: &AdminState) -> serde_json::Value {
    let process = process_facts(state);
    serde_json::json!({
        "version": process.version,
        "commit": process.commit,
        "cores": process.cores,
        "ready": process.ready,
        "shutting_down": process.shutting_down,
        "startup_s": process.startup_s,
        "uptime_s": state.lifecycle.started.elapsed().as_secs_f64(),
        "resident_bytes": process.resident_bytes,
        "open_fds": process.open_fds,
        "sample_ms": state.config.metrics.dashboard_sample_ms,
        "history": state.config.metrics.dashboard_history,
        "slow_request_ms": state.config.slow_request_ms,
    })
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    tenant_id: Option<String>,
    /// Key provider for the tenant's CMK (a name in `[encryption.providers]`, or "none").
    key_provider: Option<String>,
    /// CMK name at that provider.
    cmk: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateTimeline {
    timeline_id: Option<String>,
    /// Branch from this timeline of the same tenant ...
    ancestor_timeline_id: Option<String>,
    /// ... at this LSN (`X/Y` or decimal; default: its last LSN).
    ancestor_lsn: Option<String>,
}

fn route(state: &AdminState, method: &tiny_http::Method, url: &str, body: &str) -> (u16, String) {
    use tiny_http::Method::{Get, Post};
    let path: Vec<&str> =
        url.split('?').next().unwrap_or("").split('/').filter(|s| !s.is_empty()).collect();
    match (method, path.as_slice()) {
        (Get, ["health"]) => (200, serde_json::json!({ "status": "ok" }).to_string()),
        (Get, ["ready"]) => {
            let ready = state.lifecycle.ready_cores.load(Ordering::Acquire);
            let stopping = state.lifecycle.shutting_down.load(Ordering::Acquire);
            let cores = state.config.cores;
            let is_ready = ready == cores && !stopping;
            let body = serde_json::json!({ "ready": is_ready, "cores_ready": ready,
                "cores": cores, "shutting_down": stopping });
            (if is_ready { 200 } else { 503 }, body.to_string())
        }
        (Get, ["v1", "tenants"]) => {
            let mut all = Vec::new();
            for core in 0..state.config.cores {
                match state.ask(core, AdminCommand::ListTenants) {
                    AdminReply::Tenants(list) => all.extend(list),
                    other => return reply(other),
                }
            }
            all.sort_by_key(|t| t.tenant_id);
            (200, serde_json::to_string(&all).unwrap_or_default())
        }
        (Post, ["v1", "tenants"]) => {
            let request: CreateTenant = match parse_body(body) {
                Ok(r) => r,
                Err(e) => return (400, error_json(&e)),
            };
            let tenant_id = match parse_or_random(request.tenant_id.as_deref()) {
                Ok(id) => TenantId(id),
                Err(e) => return (400, error_json(&e)),
            };
            let core = state.config.owner_core(tenant_id);
            let (key_provider, cmk) = (request.key_provider, request.cmk);
            created(state.ask(core, AdminCommand::CreateTenant { tenant_id, key_provider, cmk }))
        }
        (Get | Post, ["v1", "tenants", tenant, "keys", action @ ..]) => {
            let tenant_id = match tenant.parse::<TenantId>() {
                Ok(id) => id,
                Err(e) => return (400, error_json(&e.to_string())),
            };
            let core = state.config.owner_core(tenant_id);
            let op = match (method, action) {
                (Get, []) => {
                    return match state.ask(core, AdminCommand::GetTenant { tenant_id }) {
                        AdminReply::Tenant(info) => {
                            (200, serde_json::to_string(&info.keys).unwrap_or_default())
                        }
                        other => reply(other),
                    }
                }
                (Post, ["rotate-kek"]) => KeyOp::RotateKek,
                (Post, ["rotate-cmk"]) => KeyOp::RotateCmk,
                (Post, ["revoke"]) => KeyOp::Revoke,
                (Post, ["restore"]) => KeyOp::Restore,
                _ => return (404, error_json(&format!("no key route {method} {url}"))),
            };
            reply(state.ask(core, AdminCommand::Keys { tenant_id, op }))
        }
        (Get, ["v1", "tenants", tenant]) => match tenant.parse::<TenantId>() {
            Ok(tenant_id) => reply(
                state
                    .ask(state.config.owner_core(tenant_id), AdminCommand::GetTenant { tenant_id }),
            ),
            Err(e) => (400, error_json(&e.to_string())),
        },
        (Post, ["v1", "tenants", tenant, "timelines"]) => {
            let tenant_id = match tenant.parse::<TenantId>() {
                Ok(id) => id,
                Err(e) => return (400, error_json(&e.to_string())),
            };
            let request: CreateTimeline = match parse_body(body) {
                Ok(r) => r,
                Err(e) => return (400, error_json(&e)),
            };
            let timeline_id = match parse_or_random(request.timeline_id.as_deref()) {
                Ok(id) => TimelineId(id),
                Err(e) => return (400, error_json(&e)),
            };
            let ancestor = match parse_ancestor(&request) {
                Ok(a) => a,
                Err(e) => return (400, error_json(&e)),
            };
            let core = state.config.owner_core(tenant_id);
            created(
                state.ask(core, AdminCommand::CreateTimeline { tenant_id, timeline_id, ancestor }),
            )
        }
        (Post, ["v1", "tenants", tenant, "timelines", timeline, action]) => {
            let op = match *action {
                "flush" => StoreOp::Flush,
                "compact" => StoreOp::Compact,
                "gc" => StoreOp::Gc,
                _ => return (404, error_json(&format!("no action {action}"))),
            };
            let (tenant_id, timeline_id) =
                match (tenant.parse::<TenantId>(), timeline.parse::<TimelineId>()) {
                    (Ok(t), Ok(l)) => (t, l),
                    _ => return (400, error_json("tenant and timeline ids are 32 hex digits")),
                };
            let core = state.config.owner_core(tenant_id);
            reply(state.ask(core, AdminCommand::TimelineOp { tenant_id, timeline_id, op }))
        }
        _ => (404, error_json(&format!("no route for {method} {url}"))),
    }
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &str) -> Result<T, String> {
    if body.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// Parses a hex id, or draws a random one from the OS.
fn parse_or_random(text: Option<&str>) -> Result<[u8; 16], String> {
    match text {
        Some(text) => text.parse::<TenantId>().map(|id| id.0).map_err(|e| e.to_string()),
        None => {
            let mut bytes = [0u8; 16];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|e| format!("reading /dev/urandom: {e}"))?;
            Ok(bytes)
        }
    }
}

fn parse_ancestor(request: &CreateTimeline) -> Result<Option<(TimelineId, Option<Lsn>)>, String> {
    let Some(parent) = &request.ancestor_timeline_id else {
        if request.ancestor_lsn.is_some() {
            return Err("ancestor_lsn needs ancestor_timeline_id".into());
        }
        return Ok(None);
    };
    let parent: TimelineId = parent.parse().map_err(|e: wal::types::ParseError| e.to_string())?;
    let at = request
        .ancestor_lsn
        .as_deref()
        .map(str::parse::<Lsn>)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(Some((parent, at)))
}

fn created(answer: AdminReply) -> (u16, String) {
    match reply(answer) {
        (200, body) => (201, body),
        other => other,
    }
}

fn reply(answer: AdminReply) -> (u16, String) {
    let json = |value: Result<String, serde_json::Error>| {
        value.unwrap_or_else(|e| error_json(&e.to_string()))
    };
    match answer {
        AdminReply::Tenant(info) => (200, json(serde_json::to_string(&info))),
        AdminReply::Tenants(list) => (200, json(serde_json::to_string(&list))),
        AdminReply::Timeline(info) => (200, json(serde_json::to_string(&info))),
        AdminReply::NotFound(message) => (404, error_json(&message)),
        AdminReply::Conflict(message) => (409, error_json(&message)),
        AdminReply::BadRequest(message) => (400, error_json(&message)),
        AdminReply::Metrics(_) => (500, error_json("a metrics snapshot where none was asked")),
        AdminReply::Failed(message) => {
            tracing::error!(%message, "admin command failed");
            (500, error_json(&message))
        }
    }
}
