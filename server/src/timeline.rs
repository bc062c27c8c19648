//! One timeline on its owner core: WAL appends with group commit, the layers that hold its page
//! versions (in memory and in files), relation sizes, and the LSN watch that reads and
//! acknowledgements wait on.
//!
//! Directory `<data>/tenants/<tenant>/timelines/<timeline>/`: `timeline.json` (writer term,
//! ancestor, GC horizon, complete image sets), `wal/` (segments) and `layers/` (layer files).
//!
//! Invariants:
//! - `applied <= last_accepted`: a record is accepted (term and LSN checked, queued), written
//!   and synced, and only then ingested into the open in-memory layer and published through
//!   `applied`. Readers never see a record that is not durable.
//! - LSN ranges nest newest first: open layer > frozen layer > layer files, and
//!   `disk_consistent` is the highest LSN every version at or below which is in layer files.
//! - After restart the layer files say what is on disk (`disk_consistent` = the highest layer
//!   end); the WAL is replayed only above it, so no version is ingested twice.
//! - Only the owner core touches any of this (`Rc`/`RefCell`, `!Send`).

use crate::config::Config;
use crate::keys::TenantKeys;
use crate::layer_io::{list_layers, open_layer, LayerFile};
use crate::runtime::{blocking, write_file_durably};
use crate::wal_io::{
    list_segments, read_segment, segment_path, SegmentOpener, WalWriteError, WalWriter,
};
use crate::watch::{Event, LsnWatch};
use cache::layer::LayerKind;
use cache::{BufferCache, CacheKey, InMemoryLayer, RelSizes};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Instant, SystemTime};
use wal::recovery::{recover, SegmentImage};
use wal::segment::SegmentHeader;
use wal::{Lsn, Record, TenantId, TimelineId};

/// Why an append was refused.
#[derive(Debug)]
pub(crate) enum AppendError {
    Fenced {
        term: u64,
        current: u64,
    },
    OutOfOrder {
        lsn: Lsn,
        last: Lsn,
    },
    SlowDown {
        pending_bytes: usize,
    },
    /// The in-memory layer is full and flushing has not caught up.
    MemoryFull {
        held_bytes: usize,
    },
    Broken(String),
}

/// `timeline.json`.
#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub(crate) struct TimelineMeta {
    pub(crate) writer_term: u64,
    /// Branch point: `(parent timeline, LSN)`.
    #[serde(default)]
    pub(crate) ancestor: Option<(String, u64)>,
    /// Reads below this LSN get `LsnTooOld`; layers below it may be gone.
    #[serde(default)]
    pub(crate) gc_horizon: u64,
    /// LSNs at which a complete image set was written (all keys of this timeline).
    #[serde(default)]
    pub(crate) image_lsns: Vec<u64>,
}

/// Counters for the admin API and metrics.
#[derive(Default)]
pub(crate) struct TimelineCounters {
    pub(crate) reads: Cell<u64>,
    pub(crate) read_layers_total: Cell<u64>,
    pub(crate) read_layers_max: Cell<u32>,
    pub(crate) flushes: Cell<u64>,
    pub(crate) image_layers: Cell<u64>,
    pub(crate) gc_removed_layers: Cell<u64>,
}

pub(crate) struct Timeline {
    pub(crate) tenant_id: TenantId,
    pub(crate) timeline_id: TimelineId,
    pub(crate) dir: PathBuf,
    pub(crate) ancestor: Option<(Rc<Timeline>, Lsn)>,
    pub(crate) config: Rc<Config>,
    /// The owner core's buffer cache (`None`: no cache configured).
    pub(crate) cache: Option<Rc<RefCell<BufferCache>>>,
    /// The tenant's keys (`None`: a plaintext tenant).
    pub(crate) keys: Option<Rc<TenantKeys>>,
    /// Set when recovery refused or a WAL write failed; the timeline then serves nothing.
    broken: RefCell<Option<String>>,
    pub(crate) open: RefCell<InMemoryLayer>,
    pub(crate) open_since: Cell<Option<Instant>>,
    pub(crate) frozen: RefCell<Option<Rc<InMemoryLayer>>>,
    /// Layer files, newest first (see [`sort_layers`]).
    pub(crate) layers: RefCell<Vec<Rc<LayerFile>>>,
    pub(crate) rels: RefCell<RelSizes>,
    /// LSN of the last durable record applied to the open layer.
    pub(crate) applied: LsnWatch,
    pub(crate) disk_consistent: Cell<Lsn>,
    pub(crate) gc_horizon: Cell<Lsn>,
    pub(crate) meta: RefCell<TimelineMeta>,
    /// Branch points of child timelines (they pin the layers they read through).
    pub(crate) children: RefCell<Vec<(TimelineId, Lsn)>>,
    /// `(when, applied LSN)` samples for the time-based retention window.
    pub(crate) lsn_samples: RefCell<VecDeque<(SystemTime, Lsn)>>,
    /// Serialises flush, image creation and GC (background task and admin requests).
    pub(crate) store_busy: Cell<bool>,
    pub(crate) store_wake: Event,
    pub(crate) counters: TimelineCounters,
    pub(crate) last_accepted: Cell<Lsn>,
    /// Bumped when a WAL write fails and its batch (and the queue behind it) is refused.
    write_generation: Cell<u64>,
    last_write_failure: RefCell<String>,
    pending: RefCell<Vec<Record>>,
    pub(crate) pending_bytes: Cell<usize>,
    flush_needed: Event,
    shutting_down: Cell<bool>,
}

pub(crate) fn timeline_dir(data_dir: &Path, tenant: TenantId, timeline: TimelineId) -> PathBuf {
    data_dir.join("tenants").join(tenant.to_string()).join("timelines").join(timeline.to_string())
}

/// Newest first: by layer end LSN, an image set before a delta layer ending at the same LSN
/// (the image already holds everything up to it).
pub(crate) fn sort_layers(layers: &mut [Rc<LayerFile>]) {
    layers.sort_by_key(|l| {
        let header = &l.index.header;
        std::cmp::Reverse((header.lsn_end, l.kind() == LayerKind::Image, l.name.clone()))
    });
}

impl Timeline {
    /// Creates the directories and metadata of a new timeline (durably). Fails if it exists.
    pub(crate) fn create_dirs(dir: &Path, meta: &TimelineMeta) -> io::Result<()> {
        std::fs::create_dir_all(dir.parent().unwrap_or(dir))?;
        std::fs::create_dir(dir)?;
        std::fs::create_dir(dir.join("wal"))?;
        std::fs::create_dir(dir.join("layers"))?;
        write_meta(dir, meta)?;
        crate::runtime::sync_dir_blocking(dir)?;
        crate::runtime::sync_dir_blocking(dir.parent().unwrap_or(dir))
    }

    pub(crate) fn read_meta(dir: &Path) -> io::Result<TimelineMeta> {
        let path = dir.join("timeline.json");
        serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
    }

    /// Loads a timeline: opens its layer files, recovers its WAL above them, starts its WAL
    /// flusher and its background store task. A timeline whose files are damaged comes back
    /// broken, not as an error: the other timelines on the core keep serving.
    pub(crate) async fn open(
        config: Rc<Config>,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        ancestor: Option<(Rc<Timeline>, Lsn)>,
        background: glommio::TaskQueueHandle,
        cache: Option<Rc<RefCell<BufferCache>>>,
        keys: Option<Rc<TenantKeys>>,
    ) -> io::Result<Rc<Timeline>> {
        let started = Instant::now();
        let dir = timeline_dir(&config.data_dir, tenant_id, timeline_id);
        let meta = Timeline::read_meta(&dir)?;
        let start_lsn = ancestor.as_ref().map_or(Lsn::INVALID, |(_, at)| *at);
        let inherit = inherit_sizes(ancestor.as_ref());
        let timeline = Rc::new(Timeline {
            tenant_id,
            timeline_id,
            dir: dir.clone(),
            ancestor,
            config,
            cache,
            keys,
            broken: RefCell::new(None),
            open: RefCell::new(InMemoryLayer::new(start_lsn)),
            open_since: Cell::new(None),
            frozen: RefCell::new(None),
            layers: RefCell::new(Vec::new()),
            rels: RefCell::new(RelSizes::inheriting(inherit)),
            applied: LsnWatch::new(start_lsn),
            disk_consistent: Cell::new(start_lsn),
            gc_horizon: Cell::new(Lsn(meta.gc_horizon)),
            meta: RefCell::new(meta),
            children: RefCell::new(Vec::new()),
            lsn_samples: RefCell::new(VecDeque::new()),
            store_busy: Cell::new(false),
            store_wake: Event::default(),
            counters: TimelineCounters::default(),
            last_accepted: Cell::new(start_lsn),
            write_generation: Cell::new(0),
            last_write_failure: RefCell::new(String::new()),
            pending: RefCell::new(Vec::new()),
            pending_bytes: Cell::new(0),
            flush_needed: Event::default(),
            shutting_down: Cell::new(false),
        });
        let recovered = match timeline.load_layers().await {
            Ok(()) => timeline.recover_wal().await,
            Err(why) => Err(why),
        };
        match recovered {
            Ok(writer) => {
                tracing::info!(tenant = %tenant_id, timeline = %timeline_id,
                    last_lsn = %timeline.applied.get(), disk_consistent_lsn = %timeline.disk_consistent.get(),
                    layers = timeline.layers.borrow().len(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "timeline recovered");
                glommio::spawn_local(flusher(timeline.clone(), writer)).detach();
                let store = crate::store::background(timeline.clone());
                glommio::spawn_local_into(store, background)
                    .map_err(|e| io::Error::other(format!("spawning store task: {e}")))?
                    .detach();
            }
            Err(why) => {
                tracing::error!(tenant = %tenant_id, timeline = %timeline_id, %why,
                    "timeline cannot be served");
                timeline.applied.fail(why.clone());
                *timeline.broken.borrow_mut() = Some(why);
            }
        }
        Ok(timeline)
    }

    async fn load_layers(&self) -> Result<(), String> {
        let layer_dir = self.dir.join("layers");
        let paths = list_layers(&layer_dir).map_err(|e| format!("listing layers: {e}"))?;
        let mut layers = Vec::with_capacity(paths.len());
        let mut events = Vec::new();
        for path in paths {
            let layer =
                open_layer(&path, self.keys.as_ref()).await.map_err(|e| format!("{e:?}"))?;
            let header = &layer.index.header;
            if header.tenant_id != self.tenant_id || header.timeline_id != self.timeline_id {
                return Err(format!("layer {} belongs to another timeline", layer.name));
            }
            if header.lsn_end > self.disk_consistent.get() {
                self.disk_consistent.set(header.lsn_end);
            }
            events.extend_from_slice(&layer.index.rel_events);
            layers.push(Rc::new(layer));
        }
        // A delta layer inside another's LSN range is an input of a merge that crashed before
        // deleting it: the merged file holds all its versions, so reading both would apply
        // versions twice.
        let covered: Vec<usize> = (0..layers.len())
            .filter(|&i| {
                let me = &layers[i].index.header;
                layers[i].kind() == LayerKind::Delta
                    && layers.iter().enumerate().any(|(j, other)| {
                        let it = &other.index.header;
                        j != i
                            && other.kind() == LayerKind::Delta
                            && it.lsn_start <= me.lsn_start
                            && me.lsn_end <= it.lsn_end
                            && (it.lsn_start, it.lsn_end) != (me.lsn_start, me.lsn_end)
                    })
            })
            .collect();
        for i in covered.into_iter().rev() {
            let leftover = layers.remove(i);
            tracing::info!(layer = %leftover.name, "removing a merged delta layer's leftover input");
            crate::runtime::remove_file(leftover.path())
                .map_err(|e| format!("removing {}: {e}", leftover.name))?;
            if let (Some(keys), Some(file_id)) = (&self.keys, leftover.file_id()) {
                keys.forget(file_id);
            }
        }
        events.clear();
        for layer in &layers {
            events.extend_from_slice(&layer.index.rel_events);
        }
        sort_layers(&mut layers);
        *self.rels.borrow_mut() =
            RelSizes::from_events(events, inherit_sizes(self.ancestor.as_ref()));
        *self.layers.borrow_mut() = layers;
        let consistent = self.disk_consistent.get();
        *self.open.borrow_mut() = InMemoryLayer::new(consistent);
        self.applied.advance(consistent);
        self.last_accepted.set(consistent);
        Ok(())
    }

    async fn recover_wal(&self) -> Result<WalWriter, String> {
        let consistent = self.disk_consistent.get();
        let (replay, writer) = open_wal(
            self.dir.join("wal"),
            self.tenant_id,
            self.timeline_id,
            self.config.wal.segment_size_bytes,
            consistent,
            self.keys.clone(),
        )
        .await?;
        if let Some(last) = replay.last().map(|r| r.lsn) {
            self.open_since.set(Some(Instant::now()));
            let mut materialize = Vec::new();
            {
                let mut open = self.open.borrow_mut();
                let mut rels = self.rels.borrow_mut();
                for record in replay {
                    materialize.extend(open.ingest(record, &mut rels));
                }
            }
            self.applied.advance(last);
            self.last_accepted.set(last);
            for (key, lsn) in materialize {
                materialize_version(self, key, lsn).await;
            }
        }
        Ok(writer)
    }

    /// Why the tenant's keys are unavailable (revoked, provider refused), if they are: the
    /// timeline then answers `KeyUnavailable` to everything.
    pub(crate) fn keys_unavailable(&self) -> Option<String> {
        self.keys.as_ref().and_then(|keys| keys.unavailable_reason())
    }

    pub(crate) fn broken(&self) -> Option<String> {
        self.broken.borrow().clone()
    }

    pub(crate) fn writer_term(&self) -> u64 {
        self.meta.borrow().writer_term
    }

    /// Writes `timeline.json` from the in-memory copy. Writes run in submission order on the
    /// core's one blocking thread, so a later state is never overwritten by an earlier one.
    pub(crate) async fn persist_meta(&self) -> io::Result<()> {
        let dir = self.dir.clone();
        let meta = self.meta.borrow().clone();
        blocking(move || write_meta(&dir, &meta)).await
    }

    /// Raises the writer term (durably) so older writers are fenced. Lower terms are refused.
    pub(crate) async fn adopt_term(&self, term: u64) -> Result<(), AppendError> {
        let current = self.writer_term();
        if term < current {
            return Err(AppendError::Fenced { term, current });
        }
        if term > current {
            self.meta.borrow_mut().writer_term = term;
            self.persist_meta()
                .await
                .map_err(|e| AppendError::Broken(format!("persisting writer term: {e}")))?;
        }
        Ok(())
    }

    /// Queues records for the next group commit after checking term, order and backpressure;
    /// returns the LSN to wait for. All-or-nothing: a batch with one bad record queues nothing.
    /// An empty batch is a barrier: it returns the last accepted LSN, so its answer comes once
    /// everything accepted before it is durable.
    pub(crate) fn accept(
        &self,
        term: u64,
        records: Vec<Record>,
    ) -> Result<(Lsn, u64), AppendError> {
        if let Some(why) = self.broken() {
            return Err(AppendError::Broken(why));
        }
        if term < self.writer_term() {
            return Err(AppendError::Fenced { term, current: self.writer_term() });
        }
        let mut last = self.last_accepted.get();
        for record in &records {
            if record.lsn <= last {
                return Err(AppendError::OutOfOrder { lsn: record.lsn, last });
            }
            last = record.lsn;
        }
        let bytes: usize = records.iter().map(Record::encoded_size).sum();
        let pending_bytes = self.pending_bytes.get();
        if pending_bytes > 0 && pending_bytes + bytes > self.config.wal.max_pending_bytes {
            return Err(AppendError::SlowDown { pending_bytes });
        }
        self.pending_bytes.set(pending_bytes + bytes);
        self.pending.borrow_mut().extend(records);
        self.last_accepted.set(last);
        self.flush_needed.notify();
        Ok((last, self.write_generation.get()))
    }

    /// Waits until everything accepted up to `target` (in write generation `generation`) is
    /// durable. A failed WAL write refuses its batch and everything queued behind it: their
    /// waiters see the generation move on and get the error, while later appends go on.
    pub(crate) async fn wait_durable(&self, target: Lsn, generation: u64) -> Result<Lsn, String> {
        self.applied
            .wait_with(|| {
                if let Some(why) = self.applied.failure() {
                    return Some(Err(why));
                }
                if self.applied.get() >= target {
                    return Some(Ok(self.applied.get()));
                }
                if self.write_generation.get() > generation {
                    return Some(Err(self.last_write_failure.borrow().clone()));
                }
                None
            })
            .await
    }

    /// Backpressure on ingest: while the open in-memory layer holds twice the flush threshold
    /// (flushes are slower than appends), appends wait for a flush to make room, up to the
    /// LSN wait timeout, then get `SlowDown`. Memory stays bounded instead of growing.
    pub(crate) async fn wait_for_ingest_room(&self) -> Result<(), AppendError> {
        let limit = 2 * self.config.store.flush_threshold_bytes;
        let deadline =
            Instant::now() + std::time::Duration::from_millis(self.config.lsn_wait_timeout_ms);
        loop {
            let held = self.open.borrow().stats().payload_bytes;
            if held < limit {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AppendError::MemoryFull { held_bytes: held });
            }
            self.store_wake.notify();
            glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Wakes the WAL flusher (e.g. to delete segments now covered by layer files).
    pub(crate) fn nudge_wal(&self) {
        self.flush_needed.notify();
    }

    /// Asks the flusher to finish what is queued and stop; returns when it has.
    pub(crate) async fn shutdown(&self) {
        self.shutting_down.set(true);
        self.flush_needed.notify();
        self.store_wake.notify();
        let target = self.last_accepted.get();
        let _ = self.applied.wait_for(target).await;
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.shutting_down.get()
    }
}

/// A WAL write failed and was rewound (e.g. the disk is full): the failed batch and every
/// append queued behind it are refused, the accepted LSN falls back to the durable one, and
/// appends resume as soon as the disk lets them.
fn refuse_queued(timeline: &Timeline, error: &std::io::Error) {
    let dropped = std::mem::take(&mut *timeline.pending.borrow_mut()).len();
    timeline.pending_bytes.set(0);
    timeline.last_accepted.set(timeline.applied.get());
    *timeline.last_write_failure.borrow_mut() =
        format!("WAL write failed, nothing of the batch was appended (retry): {error}");
    timeline.write_generation.set(timeline.write_generation.get() + 1);
    timeline.applied.wake_all();
    tracing::warn!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id, %error,
        queued_refused = dropped, "WAL write failed; batch refused, appends go on when possible");
}

/// Ends the validity of cached versions that `batch` supersedes, before the batch becomes
/// visible. A relation size change or drop may end many blocks at once: it purges the tenant's
/// cached pages (such records are rare; PostgreSQL extends relations by writing pages).
fn invalidate(timeline: &Timeline, cache: &mut BufferCache, batch: &[Record]) {
    for record in batch {
        match record.body {
            wal::RecordBody::Image(_) | wal::RecordBody::Delta(_) => {
                let key = CacheKey {
                    tenant: timeline.tenant_id,
                    timeline: timeline.timeline_id,
                    page: record.key,
                };
                cache.close_validity(&key, record.lsn);
            }
            wal::RecordBody::RelSize(_) | wal::RecordBody::RelDrop => {
                cache.purge_tenant(timeline.tenant_id);
            }
        }
    }
}

/// Rebuilds the version of `key` at `lsn` and stores it as an image in the open layer, ending a
/// long run of deltas. Runs after the batch is acknowledged; a failure only leaves the run long.
async fn materialize_version(timeline: &Timeline, key: wal::PageKey, lsn: Lsn) {
    let mut page = Box::new([0u8; wal::PAGE_SIZE]);
    match crate::read::get_page(timeline, key, lsn, &mut page).await {
        Ok(_) => {
            timeline.open.borrow_mut().materialize(key, lsn, &page);
        }
        Err(error) => tracing::debug!(%key, %lsn, ?error, "could not materialise a delta run"),
    }
}

/// For a branch: its ancestor's relation sizes at the branch point.
fn inherit_sizes(ancestor: Option<&(Rc<Timeline>, Lsn)>) -> Option<cache::rels::Inherit> {
    let (parent, at) = ancestor?;
    let (parent, at) = (parent.clone(), *at);
    Some(Rc::new(move |rel| crate::read::rel_size(&parent, rel, at)))
}

/// Recovers a timeline's WAL from its segment files: reads every segment, takes the decision
/// of `wal::recovery`, deletes the segments after a cut and opens the writer where appending
/// continues. Returns the records above `consistent` (those not yet in layer files), in LSN
/// order. The simulated-disk crash tests (`sim::wal_tests`) recover through this function.
pub(crate) async fn open_wal(
    wal_dir: PathBuf,
    tenant_id: TenantId,
    timeline_id: TimelineId,
    segment_size: u64,
    consistent: Lsn,
    keys: Option<Rc<TenantKeys>>,
) -> Result<(Vec<Record>, WalWriter), String> {
    let seqs = list_segments(&wal_dir).map_err(|e| format!("listing WAL: {e}"))?;
    let mut images = Vec::with_capacity(seqs.len());
    for seq in &seqs {
        let bytes = read_segment(&segment_path(&wal_dir, *seq))
            .await
            .map_err(|e| format!("reading WAL segment {seq}: {e}"))?;
        images.push(bytes);
    }
    // Encrypted segments: every key must be at hand before recovery decides anything, or a
    // missing key would look like damage and recovery would cut acknowledged records.
    let mut openers = Vec::with_capacity(seqs.len());
    let mut segment_files = Vec::new();
    for (seq, bytes) in seqs.iter().zip(&images) {
        let file_id = SegmentHeader::decode(bytes).ok().and_then(|h| h.file_id);
        openers.push(match (file_id, keys.as_deref()) {
            (None, _) => None,
            (Some(file_id), Some(keys)) => {
                keys.mark_used(file_id);
                keys.with_opener(file_id, |_| ())
                    .map_err(|e| format!("WAL segment {seq}: key unavailable: {e}"))?;
                segment_files.push((*seq, file_id));
                Some(SegmentOpener { keys, file_id })
            }
            (Some(_), None) => {
                return Err(format!(
                    "WAL segment {seq} is encrypted and the tenant has no key manifest"
                ))
            }
        });
    }
    let segments: Vec<SegmentImage<'_>> = seqs
        .iter()
        .zip(&images)
        .zip(&openers)
        .map(|((seq, bytes), opener)| SegmentImage {
            segment_seq: *seq,
            bytes,
            opener: opener.as_ref().map(|o| o as &dyn wal::segment::FrameOpener),
        })
        .collect();
    let recovered = recover(tenant_id, timeline_id, &segments).map_err(|e| e.to_string())?;
    drop(segments);
    drop(openers);
    drop(images);
    let replay: Vec<Record> =
        recovered.records.into_iter().filter(|r| r.lsn > consistent).collect();
    tracing::info!(tenant = %tenant_id, timeline = %timeline_id,
        case = recovered.case, detail = recovered.detail.unwrap_or(""),
        replayed = replay.len(), "WAL recovery decision");
    // Newest first, then a directory sync before anything is appended: a crash part-way
    // leaves consecutive segments (recovery decides the same again), never a `sequence-gap`
    // refusal, and no acknowledged append lies before a deletion that might not survive
    // (test `sim::wal_tests::regressions`).
    for seq in recovered.delete_segments.iter().rev() {
        crate::runtime::remove_file(&segment_path(&wal_dir, *seq))
            .map_err(|e| format!("deleting WAL segment {seq}: {e}"))?;
        if let (Some(keys), Some((_, file_id))) =
            (&keys, segment_files.iter().find(|(s, _)| s == seq))
        {
            keys.forget(*file_id);
            keys.drop_opener(*file_id);
        }
    }
    if !recovered.delete_segments.is_empty() {
        crate::runtime::sync_dir(&wal_dir)
            .await
            .map_err(|e| format!("syncing the WAL directory: {e}"))?;
    }
    let last_lsn = recovered.last_lsn.max(consistent);
    let writer = WalWriter::open(
        wal_dir,
        tenant_id,
        timeline_id,
        segment_size,
        recovered.tail,
        last_lsn,
        recovered.truncate_at.map(|(_, offset)| offset),
        &recovered.segment_last_lsns,
        keys,
        segment_files
            .into_iter()
            .filter(|(seq, _)| !recovered.delete_segments.contains(seq))
            .collect(),
    )
    .await
    .map_err(|e| format!("opening WAL for append: {e}"))?;
    Ok((replay, writer))
}

fn write_meta(dir: &Path, meta: &TimelineMeta) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    write_file_durably(&dir.join("timeline.json"), &bytes)
}

/// The group-commit loop: takes everything queued, writes and syncs it, ingests it into the
/// open layer, then publishes the new LSN. Appends that arrive during a sync form the next
/// batch. When idle, it deletes WAL segments that layer files now cover.
async fn flusher(timeline: Rc<Timeline>, mut writer: WalWriter) {
    loop {
        let batch = std::mem::take(&mut *timeline.pending.borrow_mut());
        if batch.is_empty() {
            match writer.recycle(timeline.disk_consistent.get()).await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::debug!(timeline = %timeline.timeline_id, count, "WAL segments recycled")
                }
                Err(error) => tracing::warn!(%error, "deleting WAL segments covered by layers"),
            }
            if timeline.shutting_down.get() {
                break;
            }
            timeline.flush_needed.wait().await;
            continue;
        }
        let bytes: usize = batch.iter().map(Record::encoded_size).sum();
        let write_started = Instant::now();
        match writer.write_batch(&batch).await {
            Ok(()) => {}
            Err(WalWriteError::Rewound(error)) => {
                refuse_queued(&timeline, &error);
                continue;
            }
            Err(WalWriteError::Fatal(error)) => {
                let why = format!("WAL write failed: {error}");
                tracing::error!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id,
                    %error, "WAL write failed; timeline stops accepting writes");
                *timeline.broken.borrow_mut() = Some(why.clone());
                timeline.applied.fail(why);
                return;
            }
        }
        crate::metrics::wal_commit(batch.len(), bytes, write_started.elapsed());
        timeline.pending_bytes.set(timeline.pending_bytes.get() - bytes);
        let last = batch.last().map(|r| r.lsn).expect("batch is not empty");
        let mut materialize = Vec::new();
        {
            let mut open = timeline.open.borrow_mut();
            let mut rels = timeline.rels.borrow_mut();
            if open.is_empty() {
                timeline.open_since.set(Some(Instant::now()));
            }
            if let Some(cache) = &timeline.cache {
                invalidate(&timeline, &mut cache.borrow_mut(), &batch);
            }
            for record in batch {
                materialize.extend(open.ingest(record, &mut rels));
            }
            if open.stats().payload_bytes >= timeline.config.store.flush_threshold_bytes {
                timeline.store_wake.notify();
            }
        }
        timeline.applied.advance(last);
        for (key, lsn) in materialize {
            materialize_version(&timeline, key, lsn).await;
        }
    }
    if let Err(error) = writer.close().await {
        tracing::warn!(%error, "closing WAL segment");
    }
}
