//! The state file `init` writes and `run` reads (`--state`, default `pagecore-bench.json` in
//! the working directory): which tenants and timelines hold the bench's data, at which scale,
//! and the LSN range of the initial load.
//!
//! A file rather than a scan of the admin API because a server may hold other tenants, and
//! `run` must know the scale and where the loaded data starts (the window of
//! `--lsn random-in-window`). Relations have fixed numbers (`layout`), so they are not stored.
//!
//! ```json
//! { "schema_version": 1, "scale": 1, "writer_term": 1, "addr": "127.0.0.1:6400",
//!   "tenants": [ { "tenant_id": "<32 hex>", "timeline_id": "<32 hex>",
//!                  "load_start_lsn": "0/1002024", "load_end_lsn": "0/1D0B5A8" } ] }
//! ```

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::Path;
use wal::{Lsn, TenantId, TimelineId};

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct State {
    pub schema_version: u32,
    pub scale: u64,
    pub writer_term: u64,
    pub addr: String,
    pub admin_addr: String,
    pub tenants: Vec<TenantState>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct TenantState {
    pub tenant_id: String,
    pub timeline_id: String,
    pub load_start_lsn: String,
    pub load_end_lsn: String,
}

/// A tenant of the state file with its fields parsed.
#[derive(Clone, Copy, Debug)]
pub struct TenantIds {
    pub tenant_id: TenantId,
    pub timeline_id: TimelineId,
    /// End of the initial load: every loaded page exists from here on.
    pub load_end_lsn: Lsn,
}

impl TenantState {
    pub fn parse(&self) -> anyhow::Result<TenantIds> {
        let bad = |what: &str| format!("state file: bad {what}");
        Ok(TenantIds {
            tenant_id: self.tenant_id.parse().ok().with_context(|| bad("tenant_id"))?,
            timeline_id: self.timeline_id.parse().ok().with_context(|| bad("timeline_id"))?,
            load_end_lsn: self.load_end_lsn.parse().ok().with_context(|| bad("load_end_lsn"))?,
        })
    }
}

impl State {
    pub fn load(path: &Path) -> anyhow::Result<State> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading state file {} (run `pagecore-bench init` first)", path.display())
        })?;
        let state: State =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            state.schema_version == 1,
            "state file schema {} unsupported",
            state.schema_version
        );
        anyhow::ensure!(!state.tenants.is_empty(), "state file lists no tenants");
        Ok(state)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}
