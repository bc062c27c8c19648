//! One core: a pinned glommio executor and everything it owns — its tenants, their timelines,
//! the connections it serves, and its end of the cross-core mesh.
//!
//! Cross-core traffic is limited to handing a freshly accepted connection to its owner core
//! (once per connection, never per request) and to admin commands. State here is reached only
//! from this core's thread; `local_*` types are `!Send`.

use crate::admin::{AdminCommand, AdminReply, TenantInfo, TimelineInfo};
use crate::config::Config;
use crate::runtime::{blocking, sync_dir_blocking, write_file_durably};
use crate::timeline::{timeline_dir, Timeline};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use wal::{TenantId, TimelineId};

/// The state of one core.
pub(crate) struct LocalCore {
    pub(crate) id: usize,
    pub(crate) config: Arc<Config>,
    tenants: RefCell<BTreeMap<TenantId, LocalTenant>>,
}

struct LocalTenant {
    timelines: BTreeMap<TimelineId, Rc<Timeline>>,
}

fn tenant_dir(config: &Config, tenant: TenantId) -> PathBuf {
    config.data_dir.join("tenants").join(tenant.to_string())
}

impl LocalCore {
    pub(crate) fn new(id: usize, config: Arc<Config>) -> Self {
        LocalCore { id, config, tenants: RefCell::new(BTreeMap::new()) }
    }

    /// Loads every tenant this core owns from the data directory.
    pub(crate) async fn load_tenants(&self) -> std::io::Result<()> {
        let root = self.config.data_dir.join("tenants");
        std::fs::create_dir_all(&root)?;
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let Ok(tenant_id) = entry.file_name().to_string_lossy().parse::<TenantId>() else {
                continue;
            };
            if self.config.owner_core(tenant_id) != self.id {
                continue;
            }
            let mut timelines = BTreeMap::new();
            for timeline_entry in std::fs::read_dir(entry.path().join("timelines"))? {
                let name = timeline_entry?.file_name();
                let Ok(timeline_id) = name.to_string_lossy().parse::<TimelineId>() else {
                    continue;
                };
                let timeline = Timeline::open(&self.config, tenant_id, timeline_id).await?;
                timelines.insert(timeline_id, timeline);
            }
            self.tenants.borrow_mut().insert(tenant_id, LocalTenant { timelines });
        }
        Ok(())
    }

    pub(crate) fn timeline(&self, tenant: TenantId, timeline: TimelineId) -> Option<Rc<Timeline>> {
        self.tenants.borrow().get(&tenant)?.timelines.get(&timeline).cloned()
    }

    pub(crate) fn all_timelines(&self) -> Vec<Rc<Timeline>> {
        let tenants = self.tenants.borrow();
        tenants.values().flat_map(|t| t.timelines.values().cloned()).collect()
    }

    /// Executes one admin command addressed to this core.
    pub(crate) async fn admin(&self, command: AdminCommand) -> AdminReply {
        match command {
            AdminCommand::CreateTenant { tenant_id } => self.create_tenant(tenant_id).await,
            AdminCommand::CreateTimeline { tenant_id, timeline_id } => {
                self.create_timeline(tenant_id, timeline_id).await
            }
            AdminCommand::ListTenants => AdminReply::Tenants(self.tenant_infos(None)),
            AdminCommand::GetTenant { tenant_id } => {
                match self.tenant_infos(Some(tenant_id)).pop() {
                    Some(info) => AdminReply::Tenant(info),
                    None => AdminReply::NotFound(format!("tenant {tenant_id} not found")),
                }
            }
        }
    }

    async fn create_tenant(&self, tenant_id: TenantId) -> AdminReply {
        if self.tenants.borrow().contains_key(&tenant_id) {
            return AdminReply::Conflict(format!("tenant {tenant_id} already exists"));
        }
        let dir = tenant_dir(&self.config, tenant_id);
        let created = blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(dir.join("timelines"))?;
            write_file_durably(&dir.join("tenant.json"), b"{}")?;
            sync_dir_blocking(dir.parent().unwrap_or(&dir))
        })
        .await;
        if let Err(error) = created {
            return AdminReply::Failed(format!("creating tenant {tenant_id}: {error}"));
        }
        tracing::info!(tenant = %tenant_id, core = self.id, "tenant created");
        self.tenants.borrow_mut().insert(tenant_id, LocalTenant { timelines: BTreeMap::new() });
        AdminReply::Tenant(TenantInfo { tenant_id, core: self.id, timelines: Vec::new() })
    }

    async fn create_timeline(&self, tenant_id: TenantId, timeline_id: TimelineId) -> AdminReply {
        match self.tenants.borrow().get(&tenant_id) {
            None => return AdminReply::NotFound(format!("tenant {tenant_id} not found")),
            Some(t) if t.timelines.contains_key(&timeline_id) => {
                return AdminReply::Conflict(format!("timeline {timeline_id} already exists"));
            }
            Some(_) => {}
        }
        let dir = timeline_dir(&self.config.data_dir, tenant_id, timeline_id);
        if let Err(error) = blocking(move || Timeline::create_dirs(&dir)).await {
            return AdminReply::Failed(format!("creating timeline {timeline_id}: {error}"));
        }
        let timeline = match Timeline::open(&self.config, tenant_id, timeline_id).await {
            Ok(timeline) => timeline,
            Err(error) => {
                return AdminReply::Failed(format!("opening timeline {timeline_id}: {error}"))
            }
        };
        let info = timeline_info(&timeline);
        let mut tenants = self.tenants.borrow_mut();
        let Some(tenant) = tenants.get_mut(&tenant_id) else {
            return AdminReply::NotFound(format!("tenant {tenant_id} not found"));
        };
        tenant.timelines.insert(timeline_id, timeline);
        tracing::info!(tenant = %tenant_id, timeline = %timeline_id, "timeline created");
        AdminReply::Timeline(info)
    }

    fn tenant_infos(&self, only: Option<TenantId>) -> Vec<TenantInfo> {
        self.tenants
            .borrow()
            .iter()
            .filter(|(id, _)| only.is_none_or(|o| o == **id))
            .map(|(id, tenant)| TenantInfo {
                tenant_id: *id,
                core: self.id,
                timelines: tenant.timelines.values().map(|t| timeline_info(t)).collect(),
            })
            .collect()
    }
}

fn timeline_info(timeline: &Timeline) -> TimelineInfo {
    let stats = timeline.index.borrow().stats();
    TimelineInfo {
        timeline_id: timeline.timeline_id,
        last_lsn: timeline.applied.get().to_string(),
        writer_term: timeline.writer_term(),
        pages: stats.pages,
        versions: stats.versions,
        broken: timeline.broken(),
    }
}
