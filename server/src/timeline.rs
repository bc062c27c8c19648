//! One timeline on its owner core: WAL appends with group commit, the in-memory version index,
//! and the LSN watch that reads and acknowledgements wait on.
//!
//! Directory: `<data>/tenants/<tenant>/timelines/<timeline>/` holding `timeline.json`
//! (`{"writer_term": N}`) and `wal/`.
//!
//! Invariants:
//! - `applied.get() <= last_accepted` : a record is accepted (LSN checked, queued), then written
//!   and synced, and only then applied to the index and published through `applied`.
//! - Readers never see a record that is not durable; an `AppendWal` is answered only once
//!   `applied` covers its last record.
//! - Only the owner core touches any of this (it is `!Send`).

use crate::config::Config;
use crate::runtime::{blocking, write_file_durably};
use crate::wal_io::{list_segments, read_segment, segment_path, WalWriter};
use crate::watch::{Event, LsnWatch};
use cache::TimelineIndex;
use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use wal::recovery::{recover, SegmentImage};
use wal::{Lsn, Record, TenantId, TimelineId};

/// Why an append was refused.
#[derive(Debug)]
pub(crate) enum AppendError {
    Fenced { term: u64, current: u64 },
    OutOfOrder { lsn: Lsn, last: Lsn },
    SlowDown { pending_bytes: usize },
    Broken(String),
}

pub(crate) struct Timeline {
    pub(crate) tenant_id: TenantId,
    pub(crate) timeline_id: TimelineId,
    dir: PathBuf,
    /// Set when recovery refused or a WAL write failed; the timeline then serves nothing.
    broken: RefCell<Option<String>>,
    pub(crate) index: RefCell<TimelineIndex>,
    /// LSN of the last durable record applied to the index.
    pub(crate) applied: LsnWatch,
    last_accepted: Cell<Lsn>,
    writer_term: Cell<u64>,
    pending: RefCell<Vec<Record>>,
    pending_bytes: Cell<usize>,
    max_pending_bytes: usize,
    flush_needed: Event,
    shutting_down: Cell<bool>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TimelineMeta {
    writer_term: u64,
}

pub(crate) fn timeline_dir(data_dir: &Path, tenant: TenantId, timeline: TimelineId) -> PathBuf {
    data_dir.join("tenants").join(tenant.to_string()).join("timelines").join(timeline.to_string())
}

impl Timeline {
    /// Creates the directory of a new timeline (durably). Fails if it exists.
    pub(crate) fn create_dirs(dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir.parent().unwrap_or(dir))?;
        std::fs::create_dir(dir)?;
        std::fs::create_dir(dir.join("wal"))?;
        write_meta(dir, 0)?;
        crate::runtime::sync_dir_blocking(dir)?;
        crate::runtime::sync_dir_blocking(dir.parent().unwrap_or(dir))
    }

    /// Loads a timeline: recovers its WAL, rebuilds the index, starts its flusher task. A
    /// timeline whose WAL recovery refuses comes back broken, not as an error: the other
    /// timelines on the core keep serving.
    pub(crate) async fn open(
        config: &Config,
        tenant_id: TenantId,
        timeline_id: TimelineId,
    ) -> io::Result<Rc<Timeline>> {
        let started = Instant::now();
        let dir = timeline_dir(&config.data_dir, tenant_id, timeline_id);
        let meta_path = dir.join("timeline.json");
        let meta: TimelineMeta = serde_json::from_slice(&std::fs::read(&meta_path)?)
            .map_err(|e| io::Error::other(format!("{}: {e}", meta_path.display())))?;
        let timeline = Rc::new(Timeline {
            tenant_id,
            timeline_id,
            dir: dir.clone(),
            broken: RefCell::new(None),
            index: RefCell::new(TimelineIndex::new()),
            applied: LsnWatch::new(Lsn::INVALID),
            last_accepted: Cell::new(Lsn::INVALID),
            writer_term: Cell::new(meta.writer_term),
            pending: RefCell::new(Vec::new()),
            pending_bytes: Cell::new(0),
            max_pending_bytes: config.wal.max_pending_bytes,
            flush_needed: Event::default(),
            shutting_down: Cell::new(false),
        });
        match timeline.recover(config).await {
            Ok(writer) => {
                let last = timeline.applied.get();
                tracing::info!(tenant = %tenant_id, timeline = %timeline_id, last_lsn = %last,
                    elapsed_ms = started.elapsed().as_millis() as u64, "timeline recovered");
                glommio::spawn_local(flusher(timeline.clone(), writer)).detach();
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

    async fn recover(&self, config: &Config) -> Result<WalWriter, String> {
        let wal_dir = self.dir.join("wal");
        let seqs = list_segments(&wal_dir).map_err(|e| format!("listing WAL: {e}"))?;
        let mut images = Vec::with_capacity(seqs.len());
        for seq in &seqs {
            let bytes = read_segment(&segment_path(&wal_dir, *seq))
                .await
                .map_err(|e| format!("reading WAL segment {seq}: {e}"))?;
            images.push(bytes);
        }
        let segments: Vec<SegmentImage<'_>> = seqs
            .iter()
            .zip(&images)
            .map(|(seq, bytes)| SegmentImage { segment_seq: *seq, bytes })
            .collect();
        let recovered =
            recover(self.tenant_id, self.timeline_id, &segments).map_err(|e| e.to_string())?;
        drop(segments);
        drop(images);
        tracing::info!(tenant = %self.tenant_id, timeline = %self.timeline_id,
            case = recovered.case, detail = recovered.detail.unwrap_or(""),
            records = recovered.records.len(), "WAL recovery decision");
        for seq in &recovered.delete_segments {
            std::fs::remove_file(segment_path(&wal_dir, *seq))
                .map_err(|e| format!("deleting WAL segment {seq}: {e}"))?;
        }
        {
            let mut index = self.index.borrow_mut();
            for record in recovered.records {
                index.apply(record).map_err(|e| format!("replaying WAL: {e}"))?;
            }
        }
        self.applied.advance(recovered.last_lsn);
        self.last_accepted.set(recovered.last_lsn);
        WalWriter::open(
            wal_dir,
            self.tenant_id,
            self.timeline_id,
            config.wal.segment_size_bytes,
            recovered.tail,
            recovered.last_lsn,
            recovered.truncate_at.map(|(_, offset)| offset),
        )
        .await
        .map_err(|e| format!("opening WAL for append: {e}"))
    }

    pub(crate) fn broken(&self) -> Option<String> {
        self.broken.borrow().clone()
    }

    pub(crate) fn writer_term(&self) -> u64 {
        self.writer_term.get()
    }

    /// Raises the writer term (durably) so older writers are fenced. Lower terms are refused.
    pub(crate) async fn adopt_term(&self, term: u64) -> Result<(), AppendError> {
        let current = self.writer_term.get();
        if term < current {
            return Err(AppendError::Fenced { term, current });
        }
        if term > current {
            let dir = self.dir.clone();
            blocking(move || write_meta(&dir, term))
                .await
                .map_err(|e| AppendError::Broken(format!("persisting writer term: {e}")))?;
            // Another connection may have raised it further while we wrote.
            if term > self.writer_term.get() {
                self.writer_term.set(term);
            }
        }
        Ok(())
    }

    /// Queues records for the next group commit after checking term, order and backpressure;
    /// returns the LSN to wait for. All-or-nothing: a batch with one bad record queues nothing.
    /// An empty batch is a barrier: it returns the last accepted LSN, so its answer comes once
    /// everything accepted before it is durable.
    pub(crate) fn accept(&self, term: u64, records: Vec<Record>) -> Result<Lsn, AppendError> {
        if let Some(why) = self.broken() {
            return Err(AppendError::Broken(why));
        }
        if term < self.writer_term.get() {
            return Err(AppendError::Fenced { term, current: self.writer_term.get() });
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
        if pending_bytes > 0 && pending_bytes + bytes > self.max_pending_bytes {
            return Err(AppendError::SlowDown { pending_bytes });
        }
        self.pending_bytes.set(pending_bytes + bytes);
        self.pending.borrow_mut().extend(records);
        self.last_accepted.set(last);
        self.flush_needed.notify();
        Ok(last)
    }

    /// Asks the flusher to finish what is queued and stop; returns when it has.
    pub(crate) async fn shutdown(&self) {
        self.shutting_down.set(true);
        self.flush_needed.notify();
        let target = self.last_accepted.get();
        let _ = self.applied.wait_for(target).await;
    }
}

fn write_meta(dir: &Path, writer_term: u64) -> io::Result<()> {
    let bytes = serde_json::to_vec(&TimelineMeta { writer_term }).map_err(io::Error::other)?;
    write_file_durably(&dir.join("timeline.json"), &bytes)
}

/// The group-commit loop: takes everything queued, writes and syncs it, applies it to the
/// index, then publishes the new LSN. Appends that arrive during a sync form the next batch.
async fn flusher(timeline: Rc<Timeline>, mut writer: WalWriter) {
    loop {
        let batch = std::mem::take(&mut *timeline.pending.borrow_mut());
        if batch.is_empty() {
            if timeline.shutting_down.get() {
                break;
            }
            timeline.flush_needed.wait().await;
            continue;
        }
        let bytes: usize = batch.iter().map(Record::encoded_size).sum();
        if let Err(error) = writer.write_batch(&batch).await {
            let why = format!("WAL write failed: {error}");
            tracing::error!(tenant = %timeline.tenant_id, timeline = %timeline.timeline_id,
                %error, "WAL write failed; timeline stops accepting writes");
            *timeline.broken.borrow_mut() = Some(why.clone());
            timeline.applied.fail(why);
            return;
        }
        timeline.pending_bytes.set(timeline.pending_bytes.get() - bytes);
        let last = batch.last().map(|r| r.lsn).expect("batch is not empty");
        let mut index = timeline.index.borrow_mut();
        for record in batch {
            index.apply(record).expect("accepted records are in LSN order");
        }
        drop(index);
        timeline.applied.advance(last);
    }
    if let Err(error) = writer.close().await {
        tracing::warn!(%error, "closing WAL segment");
    }
}
