//! The admin HTTP API (control plane): tenants, timelines, health and readiness.
//!
//! It runs on its own thread with `tiny_http` and never touches core state: every command is a
//! message to the owning core (or to all cores for lists), answered over a one-shot channel.
//! Cores poll their admin mailbox every few milliseconds (`serve.rs`); admin latency is not on
//! any request path. Lock order: none (no locks; the mailboxes are channels).
//!
//! Routes (JSON bodies; ids are 32 hex digits):
//! - `GET /health` → 200 `{"status":"ok"}` while the process runs.
//! - `GET /ready` → 200 once every core has recovered its tenants and listens, else 503.
//! - `GET /v1/tenants` → 200 `[TenantInfo]`.
//! - `POST /v1/tenants` `{"tenant_id"?: id}` → 201 `TenantInfo` (409 if it exists).
//! - `GET /v1/tenants/{tenant}` → 200 `TenantInfo` (404 if unknown).
//! - `POST /v1/tenants/{tenant}/timelines` `{"timeline_id"?: id, "ancestor_timeline_id"?: id,
//!   "ancestor_lsn"?: "X/Y"}` → 201 `TimelineInfo` (a branch when an ancestor is given).
//! - `POST /v1/tenants/{tenant}/timelines/{timeline}/{flush|compact|gc}` → 200 `TimelineInfo`
//!   after running that store operation now (operators and tests; background work does the
//!   same on its own schedule).

use crate::config::Config;
use crate::store::StoreOp;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use wal::{Lsn, TenantId, TimelineId};

/// A command for one core.
#[derive(Debug)]
pub(crate) enum AdminCommand {
    CreateTenant {
        tenant_id: TenantId,
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
    GetTenant {
        tenant_id: TenantId,
    },
}

/// A core's answer.
#[derive(Debug)]
pub(crate) enum AdminReply {
    Tenant(TenantInfo),
    Tenants(Vec<TenantInfo>),
    Timeline(Box<TimelineInfo>),
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

/// What the admin thread shares with the rest of the process.
pub(crate) struct AdminState {
    pub(crate) config: Arc<Config>,
    pub(crate) mailboxes: Vec<mpsc::Sender<CoreMessage>>,
    pub(crate) ready_cores: Arc<AtomicUsize>,
}

const CORE_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Serves admin requests until `server` is unblocked.
pub(crate) fn run(server: Arc<tiny_http::Server>, state: AdminState) {
    for mut request in server.incoming_requests() {
        let mut body = String::new();
        let (status, json) = match request.as_reader().take(64 * 1024).read_to_string(&mut body) {
            Ok(_) => route(&state, request.method(), request.url(), &body),
            Err(error) => (400, error_json(&format!("unreadable body: {error}"))),
        };
        let header = tiny_http::Header::from_bytes("Content-Type", "application/json")
            .expect("static header is valid");
        let response =
            tiny_http::Response::from_string(json).with_status_code(status).with_header(header);
        if let Err(error) = request.respond(response) {
            tracing::info!(%error, "admin client went away");
        }
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    tenant_id: Option<String>,
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
            let ready = state.ready_cores.load(Ordering::Acquire);
            let cores = state.config.cores;
            let code = if ready == cores { 200 } else { 503 };
            (code, serde_json::json!({ "ready": ready == cores, "cores_ready": ready, "cores": cores }).to_string())
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
            created(state.ask(core, AdminCommand::CreateTenant { tenant_id }))
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
        AdminReply::Failed(message) => {
            tracing::error!(%message, "admin command failed");
            (500, error_json(&message))
        }
    }
}
