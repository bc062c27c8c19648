//! One core: a pinned glommio executor and everything it owns — its tenants, their timelines,
//! the connections it serves, and its end of the cross-core mesh.
//!
//! Cross-core traffic is limited to handing a freshly accepted connection to its owner core
//! (once per connection, never per request) and to admin commands. State here is reached only
//! from this core's thread; `local_*` types are `!Send`.
//!
//! Shutdown ([`Drain`]): once started, every connection finishes the requests it has already
//! read, writes their responses and closes; a connection idling in `read` is woken for it.

use crate::admin::{AdminCommand, AdminReply, KeyOp, TenantInfo, TimelineInfo};
use crate::config::Config;
use crate::keys::{plaintext_status, KeyError, TenantKeys};
use crate::limits::TenantLimiter;
use crate::metrics::{self, CoreSnapshot, TenantCounters, TenantSnapshot};
use crate::runtime::{blocking, sync_dir_blocking, write_file_durably};
use crate::store;
use crate::timeline::{timeline_dir, Timeline, TimelineMeta};
use cache::{BufferCache, PolicyKind};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use wal::{Lsn, TenantId, TimelineId};

/// The state of one core.
pub(crate) struct LocalCore {
    limiters: RefCell<BTreeMap<TenantId, Rc<TenantLimiter>>>,
    /// The core's buffer cache, shared by its timelines (`None` when `cache_bytes = 0`).
    pub(crate) cache: Option<Rc<RefCell<BufferCache>>>,
    pub(crate) id: usize,
    pub(crate) config: Rc<Config>,
    tenants: RefCell<BTreeMap<TenantId, LocalTenant>>,
    /// Request counters per tenant, shared with the tenant's connections.
    tenant_counters: RefCell<BTreeMap<TenantId, Rc<TenantCounters>>>,
    /// Task queue with few CPU shares for flushes, image layers and GC.
    background: glommio::TaskQueueHandle,
    pub(crate) drain: Drain,
}

/// The connections of this core and the signal that they should finish and close.
///
/// Each connection holds a slot for the waker of its pending read, so starting the drain can
/// wake a connection idling in `read` (O(1) per read; slots are reused, so the table grows
/// only with the number of connections open at once).
#[derive(Default)]
pub(crate) struct Drain {
    started: Cell<bool>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
    open: Cell<usize>,
}

impl Drain {
    pub(crate) fn started(&self) -> bool {
        self.started.get()
    }

    /// Registers a connection (once per connection, not per request); returns its slot.
    pub(crate) fn register(&self) -> usize {
        self.open.set(self.open.get() + 1);
        let mut slots = self.slots.borrow_mut();
        self.free.borrow_mut().pop().unwrap_or_else(|| {
            slots.push(None);
            slots.len() - 1
        })
    }

    pub(crate) fn unregister(&self, slot: usize) {
        self.slots.borrow_mut()[slot] = None;
        self.free.borrow_mut().push(slot);
        self.open.set(self.open.get() - 1);
    }

    /// Tells every connection to finish what it has read and close; returns how many are open.
    pub(crate) fn start(&self) -> usize {
        self.started.set(true);
        for waker in self.slots.borrow_mut().iter_mut().filter_map(Option::take) {
            waker.wake();
        }
        self.open.get()
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.open.get()
    }

    /// Completes once the drain has started; polled beside a connection's read.
    pub(crate) async fn wait(&self, slot: usize) {
        std::future::poll_fn(|cx| {
            if self.started.get() {
                return Poll::Ready(());
            }
            let mut slots = self.slots.borrow_mut();
            if !slots[slot].as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slots[slot] = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

struct LocalTenant {
    /// Empty while the tenant's keys are unavailable (its timelines are not loaded).
    timelines: BTreeMap<TimelineId, Rc<Timeline>>,
    /// `None`: a plaintext tenant.
    keys: Option<Rc<TenantKeys>>,
    /// Timelines being loaded (a key restore, or reactivating an unloaded tenant): a
    /// connection waits for it; key checks answer `KeyUnavailable` meanwhile.
    loading: bool,
    /// Unloaded for being idle: no timeline open, reloaded by the next `Hello`.
    unloaded: bool,
    /// Connections of this tenant open on this core now.
    connections: usize,
    /// When the last connection of the tenant closed (or the tenant was loaded).
    last_active: std::time::Instant,
}

impl LocalTenant {
    fn new(timelines: BTreeMap<TimelineId, Rc<Timeline>>, keys: Option<Rc<TenantKeys>>) -> Self {
        LocalTenant {
            timelines,
            keys,
            loading: false,
            unloaded: false,
            connections: 0,
            last_active: std::time::Instant::now(),
        }
    }
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
        let frames = BufferCache::frames_for_budget(config.cache_bytes / config.cores.max(1));
        let cache = (config.cache_bytes > 0)
            .then(|| Rc::new(RefCell::new(BufferCache::new(frames, PolicyKind::S3Fifo))));
        LocalCore {
            limiters: RefCell::new(BTreeMap::new()),
            id,
            cache,
            config,
            tenants: RefCell::new(BTreeMap::new()),
            tenant_counters: RefCell::new(BTreeMap::new()),
            background,
            drain: Drain::default(),
        }
    }

    /// The rate limits of `tenant` (created on first use, once per tenant, so every connection
    /// of a tenant draws from the same buckets).
    pub(crate) fn tenant_limiter(&self, tenant: TenantId) -> Rc<TenantLimiter> {
        self.limiters
            .borrow_mut()
            .entry(tenant)
            .or_insert_with(|| Rc::new(TenantLimiter::for_tenant(&self.config, tenant)))
            .clone()
    }

    /// The request counters of `tenant` (created on first use, once per tenant).
    pub(crate) fn tenant_counters(&self, tenant: TenantId) -> Rc<TenantCounters> {
        self.tenant_counters.borrow_mut().entry(tenant).or_default().clone()
    }

    /// This core's metrics and its tenants', for the admin thread.
    pub(crate) fn metrics_snapshot(&self) -> CoreSnapshot {
        let mut snapshot = metrics::local_snapshot(self.id);
        snapshot.cache = self.cache.as_ref().map(|cache| cache.borrow().stats());
        let counters = self.tenant_counters.borrow();
        for (tenant_id, tenant) in self.tenants.borrow().iter() {
            let mut total = TenantSnapshot {
                tenant_id: Some(*tenant_id),
                core: self.id,
                tenants: 1,
                ..TenantSnapshot::default()
            };
            if let Some(c) = counters.get(tenant_id) {
                total.requests = std::array::from_fn(|i| c.requests[i].get());
                total.errors = c.errors.get();
                total.pages = c.pages.get();
                total.bytes_received = c.bytes_received.get();
                total.bytes_sent = c.bytes_sent.get();
                total.wal_records = c.wal_records.get();
                total.slow_requests = c.slow_requests.get();
            }
            for timeline in tenant.timelines.values() {
                add_timeline_gauges(&mut total, timeline);
            }
            if let Some(cache) = &self.cache {
                let stats = cache.borrow().tenant_stats(*tenant_id);
                total.cache_hits = stats.hits;
                total.cache_misses = stats.misses;
                total.cache_evictions = stats.evictions;
                total.cache_bytes = stats.bytes_used;
            }
            snapshot.tenants.push(total);
        }
        snapshot
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
            let keys = TenantKeys::load(&self.config, tenant_id, &entry.path())
                .await
                .map_err(std::io::Error::other)?;
            let timelines = match &keys {
                Some(keys) if !keys.available() => BTreeMap::new(),
                _ => self.load_tenant_timelines(tenant_id, keys.as_ref()).await?,
            };
            self.tenants.borrow_mut().insert(tenant_id, LocalTenant::new(timelines, keys));
        }
        Ok(())
    }

    /// Opens a tenant's timelines, then drops data keys no file uses any more.
    async fn load_tenant_timelines(
        &self,
        tenant_id: TenantId,
        keys: Option<&Rc<TenantKeys>>,
    ) -> std::io::Result<BTreeMap<TimelineId, Rc<Timeline>>> {
        let dir = tenant_dir(&self.config, tenant_id).join("timelines");
        let timelines = self.load_timelines(tenant_id, &dir, keys).await?;
        if let Some(keys) = keys {
            if timelines.values().all(|t| t.broken().is_none()) {
                match keys.prune_unused().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(tenant = %tenant_id, pruned = n,
                        "dropped data keys of files that no longer exist"),
                    Err(error) => tracing::warn!(tenant = %tenant_id, %error, "pruning data keys"),
                }
            }
        }
        Ok(timelines)
    }

    /// Whether `tenant` exists here with its keys unavailable; then why.
    pub(crate) fn tenant_keys_unavailable(&self, tenant: TenantId) -> Option<String> {
        let tenants = self.tenants.borrow();
        let tenant = tenants.get(&tenant)?;
        if tenant.loading && tenant.unloaded {
            return None; // reactivating an idle tenant: the connection waits for it
        }
        if tenant.loading {
            return Some("the tenant's keys are being restored; retry shortly".into());
        }
        tenant.keys.as_ref()?.unavailable_reason()
    }

    fn set_loading(&self, tenant_id: TenantId, loading: bool) {
        if let Some(tenant) = self.tenants.borrow_mut().get_mut(&tenant_id) {
            tenant.loading = loading;
        }
    }

    /// Zeroizes a tenant's keys and unloads it: cache purged, timelines stopped (their WAL
    /// writers and sealers dropped), requests answered `KeyUnavailable` from now on.
    async fn revoke_tenant(
        &self,
        tenant_id: TenantId,
        why: KeyError,
        persist: bool,
    ) -> Result<(), String> {
        let Some(keys) = self.tenants.borrow().get(&tenant_id).and_then(|t| t.keys.clone()) else {
            return Err(format!("tenant {tenant_id} is not encrypted: it has no keys to revoke"));
        };
        let revoked = keys.revoke(why.clone(), persist).await;
        if let Some(cache) = &self.cache {
            cache.borrow_mut().purge_tenant(tenant_id);
        }
        let timelines = match self.tenants.borrow_mut().get_mut(&tenant_id) {
            Some(tenant) => std::mem::take(&mut tenant.timelines),
            None => BTreeMap::new(),
        };
        stop_timelines(timelines.values()).await;
        drop(timelines);
        tracing::warn!(tenant = %tenant_id, reason = %why, "tenant keys revoked: zeroized and unloaded");
        revoked.map_err(|e| e.to_string())
    }

    /// Activates a tenant's keys again and loads its timelines.
    async fn restore_tenant(&self, tenant_id: TenantId, admin: bool) -> Result<(), String> {
        let Some(keys) = self.tenants.borrow().get(&tenant_id).and_then(|t| t.keys.clone()) else {
            return Err(format!("tenant {tenant_id} is not encrypted"));
        };
        let loading = self.tenants.borrow().get(&tenant_id).is_some_and(|t| t.loading);
        if loading {
            return Err(format!("tenant {tenant_id}: a restore is already in progress"));
        }
        if keys.available() {
            return Ok(());
        }
        self.set_loading(tenant_id, true);
        let activated = if admin { keys.restore().await } else { keys.activate().await };
        if let Err(error) = activated {
            self.set_loading(tenant_id, false);
            return Err(error.to_string());
        }
        // Loaded now, whether or not it had been unloaded for being idle before.
        self.install_timelines(tenant_id, Some(&keys)).await?;
        tracing::info!(tenant = %tenant_id, "tenant keys restored: tenant loaded");
        Ok(())
    }

    /// Opens a tenant's timelines into its entry, marking it loaded. The caller set `loading`;
    /// it is cleared here, whether or not the load worked.
    async fn install_timelines(
        &self,
        tenant_id: TenantId,
        keys: Option<&Rc<TenantKeys>>,
    ) -> Result<(), String> {
        let loaded = self.load_tenant_timelines(tenant_id, keys).await;
        let mut tenants = self.tenants.borrow_mut();
        let Some(tenant) = tenants.get_mut(&tenant_id) else { return Ok(()) };
        tenant.loading = false;
        tenant.timelines = loaded.map_err(|e| format!("loading tenant {tenant_id}: {e}"))?;
        tenant.unloaded = false;
        tenant.last_active = std::time::Instant::now();
        Ok(())
    }

    /// A connection of `tenant` opened (`true`) or closed (`false`): idle unloading counts them.
    pub(crate) fn tenant_connection(&self, tenant: TenantId, opened: bool) {
        if let Some(tenant) = self.tenants.borrow_mut().get_mut(&tenant) {
            if opened {
                tenant.connections += 1;
            } else {
                tenant.connections = tenant.connections.saturating_sub(1);
            }
            tenant.last_active = std::time::Instant::now();
        }
    }

    /// Loads a tenant that was unloaded for being idle (the first `Hello` after it). Waits if
    /// another connection is already loading it. Returns why not, if it cannot be served.
    pub(crate) async fn reactivate(&self, tenant_id: TenantId) -> Result<(), String> {
        loop {
            let (unloaded, loading, keys) = match self.tenants.borrow().get(&tenant_id) {
                None => return Ok(()),
                Some(t) => (t.unloaded, t.loading, t.keys.clone()),
            };
            if !unloaded {
                return Ok(());
            }
            if loading {
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
            let started = std::time::Instant::now();
            self.set_loading(tenant_id, true);
            self.install_timelines(tenant_id, keys.as_ref()).await?;
            metrics::tenant_reactivated();
            tracing::info!(tenant = %tenant_id, elapsed_ms = started.elapsed().as_millis() as u64,
                "idle tenant reactivated");
            return Ok(());
        }
    }

    /// Every second: unloads tenants with no connection for `tenant_idle_unload_secs`: their
    /// in-memory layers are flushed, timelines stopped (WAL files closed, tasks ended) and
    /// cached pages dropped; the tenant's directory and keys stay, and the next `Hello` loads
    /// it again (`reactivate`).
    pub(crate) async fn unload_idle_forever(self: Rc<Self>) {
        let idle_secs = self.config.tenant_idle_unload_secs;
        if idle_secs == 0 {
            return;
        }
        let idle = std::time::Duration::from_secs(idle_secs);
        loop {
            glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
            if self.drain.started() {
                return;
            }
            let due: Vec<TenantId> = self
                .tenants
                .borrow()
                .iter()
                .filter(|(_, t)| {
                    !t.unloaded
                        && !t.loading
                        && t.connections == 0
                        && !t.timelines.is_empty()
                        && t.last_active.elapsed() >= idle
                })
                .map(|(id, _)| *id)
                .collect();
            for tenant_id in due {
                if let Err(why) = self.unload_tenant(tenant_id).await {
                    tracing::warn!(tenant = %tenant_id, %why, "unloading an idle tenant");
                }
            }
        }
    }

    async fn unload_tenant(&self, tenant_id: TenantId) -> Result<(), String> {
        let timelines: Vec<Rc<Timeline>> = match self.tenants.borrow().get(&tenant_id) {
            Some(t) => t.timelines.values().cloned().collect(),
            None => return Ok(()),
        };
        // Flush first, so reactivation replays little WAL and the segments can go.
        for timeline in &timelines {
            if timeline.broken().is_none() {
                store::run(timeline, Some(store::StoreOp::Flush)).await?;
            }
        }
        // A connection may have arrived while flushing: then the tenant stays.
        {
            let mut tenants = self.tenants.borrow_mut();
            let Some(tenant) = tenants.get_mut(&tenant_id) else { return Ok(()) };
            if tenant.connections > 0 || tenant.loading {
                return Ok(());
            }
            tenant.timelines.clear();
            tenant.unloaded = true;
            tenant.loading = true; // until the timelines below have stopped
        }
        stop_timelines(&timelines).await;
        drop(timelines);
        if let Some(cache) = &self.cache {
            cache.borrow_mut().purge_tenant(tenant_id);
        }
        self.set_loading(tenant_id, false);
        metrics::tenant_unloaded();
        tracing::info!(tenant = %tenant_id, "idle tenant unloaded");
        Ok(())
    }

    /// Every `check_interval_ms`: asks each encrypted tenant's provider to unwrap its KEK again.
    /// A refusal revokes the tenant (not persisted); a tenant refused earlier comes back as
    /// soon as its provider unwraps again. An admin revocation waits for an admin restore.
    pub(crate) async fn check_keys_forever(self: Rc<Self>) {
        let interval = self.config.encryption.check_interval_ms;
        if interval == 0 {
            return;
        }
        loop {
            glommio::timer::sleep(std::time::Duration::from_millis(interval)).await;
            if self.drain.started() {
                return;
            }
            let tenants: Vec<(TenantId, Rc<TenantKeys>)> = self
                .tenants
                .borrow()
                .iter()
                .filter_map(|(id, t)| Some((*id, t.keys.clone()?)))
                .collect();
            // One unwrap per CMK answers for every tenant it wraps; only when it fails is each
            // tenant of that group asked on its own (1,000 tenants under one KMS key cost one
            // call per interval, not 1,000).
            let mut groups_ok: std::collections::HashSet<String> = std::collections::HashSet::new();
            let mut groups_failed: std::collections::HashSet<String> =
                std::collections::HashSet::new();
            for (tenant_id, keys) in tenants {
                if keys.available() {
                    let group = keys.check_group();
                    if group.as_ref().is_some_and(|g| groups_ok.contains(g)) {
                        continue;
                    }
                    let checked = keys.check_provider().await;
                    if let Some(group) = group {
                        if checked.is_ok() && !groups_failed.contains(&group) {
                            groups_ok.insert(group);
                        } else if checked.is_err() {
                            groups_failed.insert(group);
                        }
                    }
                    if let Err(error) = checked {
                        tracing::warn!(tenant = %tenant_id, %error, "key provider refuses the tenant's key");
                        if let Err(e) = self.revoke_tenant(tenant_id, error, false).await {
                            tracing::warn!(tenant = %tenant_id, error = %e, "revoking");
                        }
                    }
                } else if !keys.revoked_by_admin() {
                    if let Err(error) = self.restore_tenant(tenant_id, false).await {
                        tracing::debug!(tenant = %tenant_id, %error, "tenant keys still unavailable");
                    }
                }
            }
        }
    }

    async fn key_op(&self, tenant_id: TenantId, op: KeyOp) -> AdminReply {
        let keys = match self.tenants.borrow().get(&tenant_id) {
            None => return AdminReply::NotFound(format!("tenant {tenant_id} not found")),
            Some(t) => t.keys.clone(),
        };
        let Some(keys) = keys else {
            return AdminReply::BadRequest(format!(
                "tenant {tenant_id} is not encrypted (created with encryption.provider = \"none\")"
            ));
        };
        let done = match op {
            KeyOp::RotateKek => keys.rotate_kek().await.map(drop).map_err(|e| e.to_string()),
            KeyOp::RotateCmk => keys.rotate_cmk().await.map(drop).map_err(|e| e.to_string()),
            KeyOp::Revoke => {
                self.revoke_tenant(tenant_id, KeyError::Revoked(tenant_id), true).await
            }
            KeyOp::Restore => self.restore_tenant(tenant_id, true).await,
        };
        match done {
            Ok(()) => match self.tenant_infos(Some(tenant_id)).pop() {
                Some(info) => AdminReply::Tenant(info),
                None => AdminReply::NotFound(format!("tenant {tenant_id} not found")),
            },
            Err(why) => AdminReply::Failed(why),
        }
    }

    /// Loads a tenant's timelines, parents before their branches.
    async fn load_timelines(
        &self,
        tenant_id: TenantId,
        dir: &Path,
        keys: Option<&Rc<TenantKeys>>,
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
                let timeline =
                    self.open_timeline(tenant_id, *timeline_id, ancestor, keys.cloned()).await?;
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
        keys: Option<Rc<TenantKeys>>,
    ) -> std::io::Result<Rc<Timeline>> {
        if let Some((parent, at)) = &ancestor {
            parent.children.borrow_mut().push((timeline_id, *at));
        }
        Timeline::open(
            self.config.clone(),
            tenant_id,
            timeline_id,
            ancestor,
            self.background,
            self.cache.clone(),
            keys,
        )
        .await
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
            AdminCommand::CreateTenant { tenant_id, key_provider, cmk } => {
                self.create_tenant(tenant_id, key_provider, cmk).await
            }
            AdminCommand::Keys { tenant_id, op } => self.key_op(tenant_id, op).await,
            AdminCommand::CreateTimeline { tenant_id, timeline_id, ancestor } => {
                self.create_timeline(tenant_id, timeline_id, ancestor).await
            }
            AdminCommand::ListTenants => AdminReply::Tenants(self.tenant_infos(None)),
            AdminCommand::Metrics => AdminReply::Metrics(Box::new(self.metrics_snapshot())),
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

    async fn create_tenant(
        &self,
        tenant_id: TenantId,
        key_provider: Option<String>,
        cmk: Option<String>,
    ) -> AdminReply {
        if self.tenants.borrow().contains_key(&tenant_id) {
            return AdminReply::Conflict(format!("tenant {tenant_id} already exists"));
        }
        let encryption = &self.config.encryption;
        let provider = key_provider.unwrap_or_else(|| encryption.provider.clone());
        let cmk = cmk.unwrap_or_else(|| encryption.cmk.clone());
        if provider != "none" && !encryption.providers.contains_key(&provider) {
            return AdminReply::BadRequest(format!("no key provider {provider:?} is configured"));
        }
        let dir = tenant_dir(&self.config, tenant_id);
        let made = dir.clone();
        if let Err(error) = blocking(move || std::fs::create_dir_all(made.join("timelines"))).await
        {
            return AdminReply::Failed(format!("creating tenant {tenant_id}: {error}"));
        }
        // The key manifest before tenant.json: a tenant that exists has its keys.
        let keys = if provider == "none" {
            None
        } else {
            match TenantKeys::create(&self.config, tenant_id, &dir, &provider, &cmk).await {
                Ok(keys) => Some(keys),
                Err(error) => {
                    let doomed = dir.clone();
                    let _ = blocking(move || std::fs::remove_dir_all(doomed)).await;
                    return AdminReply::Failed(format!("creating tenant {tenant_id}: {error}"));
                }
            }
        };
        let created = blocking(move || -> std::io::Result<()> {
            write_file_durably(&dir.join("tenant.json"), b"{}")?;
            sync_dir_blocking(dir.parent().unwrap_or(&dir))
        })
        .await;
        if let Err(error) = created {
            return AdminReply::Failed(format!("creating tenant {tenant_id}: {error}"));
        }
        tracing::info!(tenant = %tenant_id, core = self.id, encrypted = keys.is_some(), "tenant created");
        let info_keys = keys.as_ref().map_or_else(plaintext_status, |k| k.status());
        self.tenants.borrow_mut().insert(tenant_id, LocalTenant::new(BTreeMap::new(), keys));
        AdminReply::Tenant(TenantInfo {
            tenant_id,
            core: self.id,
            timelines: Vec::new(),
            keys: info_keys,
            unloaded: false,
        })
    }

    async fn create_timeline(
        &self,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        ancestor: Option<(TimelineId, Option<Lsn>)>,
    ) -> AdminReply {
        if let Some(why) = self.tenant_keys_unavailable(tenant_id) {
            return AdminReply::Failed(format!("tenant {tenant_id}: {why}"));
        }
        let keys = self.tenants.borrow().get(&tenant_id).and_then(|t| t.keys.clone());
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
        let timeline = match self.open_timeline(tenant_id, timeline_id, ancestor, keys).await {
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
                keys: match &tenant.keys {
                    None => plaintext_status(),
                    Some(keys) => {
                        let mut status = keys.status();
                        status.available &= !tenant.loading;
                        status
                    }
                },
                unloaded: tenant.unloaded,
            })
            .collect()
    }
}

/// Stops timelines being unloaded (idle, or keys revoked): each flusher finishes what it
/// accepted, and a flush or merge in flight finishes (or fails for want of a key) before the
/// tenant can be loaded again, so two timeline objects never write one directory.
async fn stop_timelines(timelines: impl IntoIterator<Item = &Rc<Timeline>>) {
    for timeline in timelines {
        timeline.shutdown().await;
        while timeline.store_busy.get() {
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// Adds one timeline's gauges and store counters to its tenant's snapshot.
fn add_timeline_gauges(total: &mut TenantSnapshot, timeline: &Timeline) {
    let applied = timeline.applied.get();
    total.timelines += 1;
    total.broken_timelines += u64::from(timeline.broken().is_some());
    total.lag_commit_bytes += timeline.last_accepted.get().0.saturating_sub(applied.0);
    total.lag_layers_bytes += applied.0.saturating_sub(timeline.disk_consistent.get().0);
    total.wal_queue_bytes += timeline.pending_bytes.get() as u64;
    let frozen = timeline.frozen.borrow().as_ref().map_or(0, |f| f.stats().payload_bytes);
    total.in_memory_bytes += (timeline.open.borrow().stats().payload_bytes + frozen) as u64;
    let newest_image = timeline.meta.borrow().image_lsns.iter().copied().max().unwrap_or(0);
    for layer in timeline.layers.borrow().iter() {
        match layer.kind() {
            cache::layer::LayerKind::Image => total.image_layers += 1,
            cache::layer::LayerKind::Delta => {
                total.delta_layers += 1;
                if layer.index.header.lsn_end.0 > newest_image {
                    total.compaction_debt_layers += 1;
                }
            }
        }
    }
    let counters = &timeline.counters;
    total.reads += counters.reads.get();
    total.read_layers += counters.read_layers_total.get();
    total.read_layers_max = total.read_layers_max.max(u64::from(counters.read_layers_max.get()));
    total.flushes += counters.flushes.get();
    total.gc_removed_layers += counters.gc_removed_layers.get();
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
