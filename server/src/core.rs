//! One core: a pinned glommio executor and everything it owns — its tenants, their timelines,
//! the connections it serves, and its end of the cross-core mesh.
//!
//! Cross-core traffic is limited to handing a freshly accepted connection to its owner core
//! (once per connection, never per request) and to admin commands. State here is reached only
//! from this core's thread; `local_*` types are `!Send`.

use crate::admin::{AdminCommand, AdminReply, TenantInfo, TimelineInfo};
use crate::config::Config;
use crate::runtime::{blocking, sync_dir_blocking, write_file_durably};
use crate::store;
use crate::timeline::{timeline_dir, Timeline, TimelineMeta};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use wal::{Lsn, TenantId, TimelineId};

/// The state of one core.
pub(crate) struct LocalCore {
    pub(crate) id: usize,
    pub(crate) config: Rc<Config>,
    tenants: RefCell<BTreeMap<TenantId, LocalTenant>>,
    /// Task queue with few CPU shares for flushes, image layers and GC.
    background: glommio::TaskQueueHandle,
}

struct LocalTenant {
    timelines: BTreeMap<TimelineId, Rc<Timeline>>,
}

fn tenant_dir(config: &Config, tenant: TenantId) -> PathBuf {
    config.data_dir.join("tenants").join(tenant.to_string())
}

impl LocalCore {
    pub(crate) fn new(id: usize, config: Rc<Config>) -> Self {
        let background = glommio::executor().create_task_queue(
            glommio::Shares::Static(100),
            glommio::Latency::NotImportant,
            "background",
        );
        LocalCore { id, config, tenants: RefCell::new(BTreeMap::new()), background }
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
            let timelines = self.load_timelines(tenant_id, &entry.path().join("timelines")).await?;
            self.tenants.borrow_mut().insert(tenant_id, LocalTenant { timelines });
        }
        Ok(())
    }

    /// Loads a tenant's timelines, parents before their branches.
    async fn load_timelines(
        &self,
        tenant_id: TenantId,
        dir: &Path,
    ) -> std::io::Result<BTreeMap<TimelineId, Rc<Timeline>>> {
        let mut metas = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Ok(timeline_id) = entry.file_name().to_string_lossy().parse::<TimelineId>() {
                metas.insert(timeline_id, Timeline::read_meta(&entry.path())?);
            }
        }
        let mut loaded: BTreeMap<TimelineId, Rc<Timeline>> = BTreeMap::new();
        while loaded.len() < metas.len() {
            let before = loaded.len();
            for (timeline_id, meta) in &metas {
                if loaded.contains_key(timeline_id) {
                    continue;
                }
                let ancestor = match &meta.ancestor {
                    None => None,
                    Some((parent, at)) => {
                        let parent_id: TimelineId =
                            parent.parse().map_err(std::io::Error::other)?;
                        match loaded.get(&parent_id) {
                            Some(parent) => Some((parent.clone(), Lsn(*at))),
                            None if metas.contains_key(&parent_id) => continue, // load the parent first
                            None => {
                                return Err(std::io::Error::other(format!(
                                    "timeline {timeline_id}: ancestor {parent_id} missing"
                                )))
                            }
                        }
                    }
                };
                let timeline = self.open_timeline(tenant_id, *timeline_id, ancestor).await?;
                loaded.insert(*timeline_id, timeline);
            }
            if loaded.len() == before {
                return Err(std::io::Error::other(format!(
                    "tenant {tenant_id}: timeline ancestry has a cycle"
                )));
            }
        }
        Ok(loaded)
    }

    async fn open_timeline(
        &self,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        ancestor: Option<(Rc<Timeline>, Lsn)>,
    ) -> std::io::Result<Rc<Timeline>> {
        if let Some((parent, at)) = &ancestor {
            parent.children.borrow_mut().push((timeline_id, *at));
        }
        Timeline::open(self.config.clone(), tenant_id, timeline_id, ancestor, self.background).await
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
            AdminCommand::CreateTimeline { tenant_id, timeline_id, ancestor } => {
                self.create_timeline(tenant_id, timeline_id, ancestor).await
            }
            AdminCommand::ListTenants => AdminReply::Tenants(self.tenant_infos(None)),
            AdminCommand::GetTenant { tenant_id } => match self.tenant_infos(Some(tenant_id)).pop()
            {
                Some(info) => AdminReply::Tenant(info),
                None => AdminReply::NotFound(format!("tenant {tenant_id} not found")),
            },
            AdminCommand::TimelineOp { tenant_id, timeline_id, op } => {
                let Some(timeline) = self.timeline(tenant_id, timeline_id) else {
                    return AdminReply::NotFound(format!(
                        "timeline {timeline_id} of tenant {tenant_id} not found"
                    ));
                };
                match store::run(&timeline, Some(op)).await {
                    Ok(_) => AdminReply::Timeline(Box::new(timeline_info(&timeline))),
                    Err(why) => AdminReply::Failed(why),
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

    async fn create_timeline(
        &self,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        ancestor: Option<(TimelineId, Option<Lsn>)>,
    ) -> AdminReply {
        let parent = match self.tenants.borrow().get(&tenant_id) {
            None => return AdminReply::NotFound(format!("tenant {tenant_id} not found")),
            Some(t) if t.timelines.contains_key(&timeline_id) => {
                return AdminReply::Conflict(format!("timeline {timeline_id} already exists"));
            }
            Some(t) => match ancestor {
                None => None,
                Some((parent_id, at)) => match t.timelines.get(&parent_id) {
                    None => {
                        return AdminReply::NotFound(format!(
                            "ancestor timeline {parent_id} not found"
                        ))
                    }
                    Some(parent) => Some((parent.clone(), at)),
                },
            },
        };
        let mut meta = TimelineMeta::default();
        let ancestor = match parent {
            None => None,
            Some((parent, at)) => {
                let applied = parent.applied.get();
                let at = at.unwrap_or(applied);
                if at > applied {
                    return AdminReply::BadRequest(format!(
                        "branch point {at} is beyond the parent's last LSN {applied}"
                    ));
                }
                if at < parent.gc_horizon.get() || at == Lsn::INVALID {
                    return AdminReply::BadRequest(format!(
                        "branch point {at} is below the parent's retention horizon {}",
                        parent.gc_horizon.get()
                    ));
                }
                meta.ancestor = Some((parent.timeline_id.to_string(), at.0));
                Some((parent, at))
            }
        };
        let dir = timeline_dir(&self.config.data_dir, tenant_id, timeline_id);
        if let Err(error) = blocking(move || Timeline::create_dirs(&dir, &meta)).await {
            return AdminReply::Failed(format!("creating timeline {timeline_id}: {error}"));
        }
        let timeline = match self.open_timeline(tenant_id, timeline_id, ancestor).await {
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
        AdminReply::Timeline(Box::new(info))
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
    let open = timeline.open.borrow().stats();
    let layers = timeline.layers.borrow();
    let stored_versions: usize = layers.iter().map(|l| l.index.entries.len()).sum();
    let index_bytes: usize = layers.iter().map(|l| l.index.memory_bytes()).sum();
    let counters = &timeline.counters;
    TimelineInfo {
        timeline_id: timeline.timeline_id,
        last_lsn: timeline.applied.get().to_string(),
        writer_term: timeline.writer_term(),
        pages: open.pages,
        versions: open.versions,
        broken: timeline.broken(),
        ancestor: timeline
            .ancestor
            .as_ref()
            .map(|(p, at)| (p.timeline_id.to_string(), at.to_string())),
        disk_consistent_lsn: timeline.disk_consistent.get().to_string(),
        gc_horizon: timeline.gc_horizon.get().to_string(),
        in_memory_bytes: open.payload_bytes,
        delta_layers: layers.iter().filter(|l| l.kind() == cache::layer::LayerKind::Delta).count(),
        image_layers: layers.iter().filter(|l| l.kind() == cache::layer::LayerKind::Image).count(),
        stored_versions,
        index_bytes,
        index_bytes_per_version: if stored_versions == 0 {
            0.0
        } else {
            index_bytes as f64 / stored_versions as f64
        },
        reads: counters.reads.get(),
        read_layers_max: counters.read_layers_max.get(),
        read_layers_mean: if counters.reads.get() == 0 {
            0.0
        } else {
            counters.read_layers_total.get() as f64 / counters.reads.get() as f64
        },
        flushes: counters.flushes.get(),
        gc_removed_layers: counters.gc_removed_layers.get(),
    }
}
