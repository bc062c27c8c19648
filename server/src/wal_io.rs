//! WAL segment I/O on one core: O_DIRECT writes through io_uring (glommio `DmaFile`), group
//! commit, segment creation, and reading segments back for recovery.
//!
//! Layout: `<timeline>/wal/<segment_seq as 16 hex digits>.seg`. A segment is created under a
//! `.tmp` name, filled with its header and zeros, synced, renamed, and the directory synced, so a
//! visible segment file always has a whole header and zeroed space (the recovery table in
//! `wal::recovery` relies on both).
//!
//! Invariants:
//! - Frames are written in order and a batch is acknowledged only after the `fdatasync` that
//!   covers all of it.
//! - Before the first frame goes to segment k+1, segment k is synced, so damage in a segment
//!   followed by a segment with data can only be corruption, never a torn batch.
//! - Writes are whole 4 KiB blocks at 4 KiB-aligned offsets; the partial last block is kept in
//!   memory (`tail`) and rewritten with the next batch.

use crate::keys::TenantKeys;
use crate::runtime::{self, dma_open_rw, sync_dir, File};
use crypto::{PageSealer, PageTag};
use std::cell::{Cell, RefCell};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use wal::recovery::TailPosition;
use wal::segment::{
    encode_frame, frame_size, FrameOpener, FrameSealer, SegmentHeader, DATA_START, TAG_SIZE,
};
use wal::{Lsn, Record, TenantId, TimelineId};

const BLOCK: u64 = 4096;
/// Zeros written per I/O when preallocating or zeroing a segment.
const ZERO_CHUNK: usize = 1 << 20;

pub(crate) fn segment_path(wal_dir: &Path, segment_seq: u64) -> PathBuf {
    wal_dir.join(format!("{segment_seq:016x}.seg"))
}

/// Segment numbers present in `wal_dir`, sorted; removes leftover `.tmp` files.
pub(crate) fn list_segments(wal_dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for path in runtime::list_dir(wal_dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".tmp") {
            tracing::info!(file = %name, "removing unfinished segment file");
            runtime::remove_file(&path)?;
        } else if let Some(hex) = name.strip_suffix(".seg") {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads a whole segment file with O_DIRECT.
pub(crate) async fn read_segment(path: &Path) -> io::Result<Vec<u8>> {
    let file = dma_open_rw(path).await?;
    let size = file.file_size().await?;
    let size = usize::try_from(size).map_err(|_| io::Error::other("segment too large"))?;
    let read = file.read_at_aligned(0, size).await?;
    let bytes = read.to_vec();
    file.close().await?;
    Ok(bytes)
}

/// The data key of the segment being written, as a frame sealer: nonce positions count up
/// from 0 and are never reused, not even after a rewind (module doc of `wal::segment`).
struct WalSealer {
    sealer: PageSealer,
    next_position: u64,
}

impl FrameSealer for WalSealer {
    fn seal(&mut self, record: &mut [u8]) -> (u64, [u8; TAG_SIZE]) {
        let position = self.next_position;
        self.next_position += 1;
        (position, self.sealer.seal_payload(position, record).to_bytes())
    }
}

/// Opens the sealed frames of one segment with the tenant's keys (recovery).
pub(crate) struct SegmentOpener<'a> {
    pub(crate) keys: &'a TenantKeys,
    pub(crate) file_id: u128,
}

impl FrameOpener for SegmentOpener<'_> {
    fn open(&self, position: u64, record: &mut [u8], tag: &[u8; TAG_SIZE]) -> bool {
        self.keys
            .with_opener(self.file_id, |opener| {
                opener.open_payload(position, record, &PageTag::from_bytes(*tag)).is_ok()
            })
            .unwrap_or(false)
    }
}

/// A WAL write that failed.
#[derive(Debug)]
pub(crate) enum WalWriteError {
    /// Nothing of the batch is on disk any more; appends may go on.
    Rewound(io::Error),
    /// The WAL's state on disk is unknown: the timeline must stop.
    Fatal(io::Error),
}

/// Where a batch began, to rewind to if it fails.
struct Checkpoint {
    segment_seq: u64,
    write_offset: Option<u64>,
    tail: Vec<u8>,
    last_lsn: Lsn,
    closed: usize,
}

/// The appending end of one timeline's WAL.
pub(crate) struct WalWriter {
    wal_dir: PathBuf,
    tenant_id: TenantId,
    timeline_id: TimelineId,
    segment_size: u64,
    segment_seq: u64,
    file: File,
    /// Next frame offset in the current segment; `None` when it is full.
    write_offset: Option<u64>,
    /// Bytes of the current partial block, from its aligned start to `write_offset`.
    tail: Vec<u8>,
    /// LSN of the last record written (for the next segment header).
    last_lsn: Lsn,
    /// Segments before the current one, with the LSN of their last record, oldest first.
    closed: Vec<(u64, Lsn)>,
    scratch: Vec<u8>,
    /// The tenant's keys when the WAL is encrypted.
    keys: Option<Rc<TenantKeys>>,
    /// The current segment's sealer (encrypted WAL). A segment whose sealer is gone (reopened
    /// after a restart, or left by a rewind) takes no more frames: the next write rolls.
    sealer: Option<WalSealer>,
    /// Data key file id of each segment that has one, to forget it when the segment goes.
    segment_files: Vec<(u64, u128)>,
    /// The next segment's sealer, made (and its DEK made durable in the key manifest) by a
    /// background task while the current segment fills, so a roll does not wait for a
    /// manifest write on the commit path. A roll that finds it not ready makes one itself.
    next_sealer: Rc<RefCell<Option<WalSealer>>>,
    preparing: Rc<Cell<bool>>,
}

impl WalWriter {
    /// Opens the WAL for appending after recovery decided `tail` (or a fresh WAL when `None`).
    /// Zeroes from `truncate_at` on, when recovery cut a torn tail there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open(
        wal_dir: PathBuf,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        segment_size: u64,
        tail: Option<TailPosition>,
        last_lsn: Lsn,
        truncate_at: Option<u64>,
        segment_last_lsns: &[(u64, Lsn)],
        keys: Option<Rc<TenantKeys>>,
        segment_files: Vec<(u64, u128)>,
    ) -> io::Result<WalWriter> {
        let (segment_seq, write_offset) = match tail {
            Some(t) => (t.segment_seq, t.write_offset),
            None => (0, None),
        };
        let mut sealer = None;
        let mut segment_files = segment_files;
        let file = if segment_seq == 0 {
            let file_id = match &keys {
                Some(keys) => {
                    let new = new_wal_sealer(keys).await?;
                    let file_id = new.sealer.file_id().0;
                    segment_files.push((1, file_id));
                    sealer = Some(new);
                    Some(file_id)
                }
                None => None,
            };
            create_segment(&wal_dir, 1, tenant_id, timeline_id, segment_size, last_lsn, file_id)
                .await?
        } else {
            dma_open_rw(&segment_path(&wal_dir, segment_seq)).await?
        };
        let (segment_seq, write_offset) =
            if segment_seq == 0 { (1, Some(DATA_START)) } else { (segment_seq, write_offset) };
        let mut writer = WalWriter {
            wal_dir,
            tenant_id,
            timeline_id,
            segment_size,
            segment_seq,
            file,
            write_offset,
            tail: Vec::new(),
            last_lsn,
            closed: segment_last_lsns
                .iter()
                .copied()
                .filter(|(seq, _)| *seq < segment_seq)
                .collect(),
            scratch: Vec::new(),
            keys,
            sealer,
            segment_files,
            next_sealer: Rc::new(RefCell::new(None)),
            preparing: Rc::new(Cell::new(false)),
        };
        writer.prepare_next_sealer();
        if let Some(offset) = truncate_at {
            writer.zero_from(offset).await?;
        }
        if writer.keys.is_some() && writer.sealer.is_none() {
            // The segment's data key can only open now (a key from disk never seals again):
            // appending continues in a new segment.
            writer.write_offset = None;
        }
        if let Some(offset) = writer.write_offset {
            let block_start = offset / BLOCK * BLOCK;
            let read = writer.file.read_at_aligned(block_start, BLOCK as usize).await?;
            writer.tail = read[..(offset - block_start) as usize].to_vec();
        }
        Ok(writer)
    }

    /// Zeroes the current segment from `offset` to its end and syncs: the `torn-tail` cut.
    async fn zero_from(&mut self, offset: u64) -> io::Result<()> {
        let block_start = offset / BLOCK * BLOCK;
        let read = self.file.read_at_aligned(block_start, BLOCK as usize).await?;
        let mut first = self.file.alloc_dma_buffer(BLOCK as usize);
        first.as_bytes_mut().fill(0);
        let keep = (offset - block_start) as usize;
        first.as_bytes_mut()[..keep].copy_from_slice(&read[..keep]);
        self.file.write_at(first, block_start).await?;
        write_zeros(&self.file, block_start + BLOCK, self.segment_size).await?;
        self.file.fdatasync().await?;
        Ok(())
    }

    /// Writes `records` and makes them durable (group commit: the caller passes everything that
    /// accumulated while the previous batch was being synced).
    ///
    /// On failure (a full disk when a new segment is created, an I/O error) the writer is
    /// rewound to where the batch began: segments the batch created are deleted and what it
    /// wrote in the old segment is zeroed, so no frame of it, not even one marked
    /// `BATCH_END` whose sync failed, can be recovered later. Then the timeline can go on
    /// (`Rewound`). Only if the rewind fails too is the WAL unusable (`Fatal`).
    pub(crate) async fn write_batch(&mut self, records: &[Record]) -> Result<(), WalWriteError> {
        let start = Checkpoint {
            segment_seq: self.segment_seq,
            write_offset: self.write_offset,
            tail: self.tail.clone(),
            last_lsn: self.last_lsn,
            closed: self.closed.len(),
        };
        match self.write_records(records).await {
            Ok(()) => Ok(()),
            Err(error) => match self.rewind(start).await {
                Ok(()) => Err(WalWriteError::Rewound(error)),
                Err(undo) => Err(WalWriteError::Fatal(io::Error::other(format!(
                    "{error}; rewinding the WAL after it failed too: {undo}"
                )))),
            },
        }
    }

    async fn rewind(&mut self, start: Checkpoint) -> io::Result<()> {
        // A roll that failed part-way may have left the next segment under its temporary name
        // or, if it failed after the rename, under its own: delete it too, or a later crash
        // would find it beyond the segments deleted below, a `sequence-gap` (found by the
        // simulated disk, test `sim::wal_tests::regressions`).
        let next = segment_path(&self.wal_dir, self.segment_seq + 1);
        let mut removed = remove_if_present(&next.with_extension("seg.tmp"))?;
        removed |= remove_if_present(&next)?;
        if self.segment_seq != start.segment_seq {
            let reopened = dma_open_rw(&segment_path(&self.wal_dir, start.segment_seq)).await?;
            let newer = std::mem::replace(&mut self.file, reopened);
            let _ = newer.close().await;
            // Newest first: a crash part-way leaves consecutive segments, not a gap.
            for seq in (start.segment_seq + 1..=self.segment_seq).rev() {
                runtime::remove_file(&segment_path(&self.wal_dir, seq))?;
            }
            removed = true;
            self.segment_seq = start.segment_seq;
            self.closed.truncate(start.closed);
            self.forget_segments(|seq| seq > start.segment_seq);
            if self.keys.is_some() {
                // The old segment's sealer was replaced by the deleted one's: no more frames
                // go into it (zeroing below needs no key).
                self.sealer = None;
                sync_dir(&self.wal_dir).await?;
                self.zero_from_then_close(start.write_offset).await?;
                self.write_offset = None;
                self.tail = start.tail;
                self.last_lsn = start.last_lsn;
                return Ok(());
            }
        }
        if removed {
            sync_dir(&self.wal_dir).await?;
        }
        self.write_offset = start.write_offset;
        self.tail = start.tail;
        self.last_lsn = start.last_lsn;
        if let Some(offset) = self.write_offset {
            // Overwrites blocks the segment already owns: needs no free space.
            self.zero_from(offset).await?;
        }
        Ok(())
    }

    /// Zeroes the current segment from `offset` (when it has room) without making it
    /// writable again: an encrypted segment that lost its sealer.
    async fn zero_from_then_close(&mut self, offset: Option<u64>) -> io::Result<()> {
        if let Some(offset) = offset {
            self.zero_from(offset).await?;
        }
        Ok(())
    }

    /// Starts making the next segment's sealer in the background (encrypted WAL only).
    fn prepare_next_sealer(&self) {
        let Some(keys) = self.keys.clone() else { return };
        if self.preparing.get() || self.next_sealer.borrow().is_some() {
            return;
        }
        self.preparing.set(true);
        let (slot, preparing) = (self.next_sealer.clone(), self.preparing.clone());
        glommio::spawn_local(async move {
            match new_wal_sealer(&keys).await {
                Ok(sealer) => *slot.borrow_mut() = Some(sealer),
                // The roll that needs it will try again inline and report the error.
                Err(error) => tracing::debug!(%error, "preparing the next WAL segment's key"),
            }
            preparing.set(false);
        })
        .detach();
    }

    /// Forgets the data keys of segments matching `gone` (deleted).
    fn forget_segments(&mut self, gone: impl Fn(u64) -> bool) {
        if let Some(keys) = &self.keys {
            for (_, file_id) in self.segment_files.iter().filter(|(seq, _)| gone(*seq)) {
                keys.forget(*file_id);
                keys.drop_opener(*file_id);
            }
        }
        self.segment_files.retain(|(seq, _)| !gone(*seq));
    }

    async fn write_records(&mut self, records: &[Record]) -> io::Result<()> {
        let sealed = self.keys.is_some();
        let mut next = 0;
        while next < records.len() {
            let frame_len = frame_size(&records[next], sealed) as u64;
            let fits = self.write_offset.is_some_and(|o| o + frame_len <= self.segment_size);
            if !fits {
                self.roll().await?;
            }
            next = self.write_frames(records, next).await?;
        }
        self.file.fdatasync().await?;
        Ok(())
    }

    /// Encodes frames from `records[first..]` that fit in the current segment and writes them
    /// as whole blocks. Returns the index of the first record not written.
    async fn write_frames(&mut self, records: &[Record], first: usize) -> io::Result<usize> {
        let offset = self.write_offset.expect("write_frames is called with room in the segment");
        let block_start = offset / BLOCK * BLOCK;
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.tail);
        let mut next = first;
        let sealed = self.keys.is_some();
        while let Some(record) = records.get(next) {
            let frame_len = frame_size(record, sealed) as u64;
            if block_start + self.scratch.len() as u64 + frame_len > self.segment_size {
                break;
            }
            // Only the batch's last frame commits it: recovery drops a batch cut short.
            let batch_end = next + 1 == records.len();
            let sealer = self.sealer.as_mut().map(|s| s as &mut dyn FrameSealer);
            encode_frame(self.segment_seq, record, batch_end, sealer, &mut self.scratch);
            self.last_lsn = record.lsn;
            next += 1;
        }
        let written_len = self.scratch.len();
        let io_len = (written_len as u64).div_ceil(BLOCK) * BLOCK;
        let mut buffer = self.file.alloc_dma_buffer(io_len as usize);
        let bytes = buffer.as_bytes_mut();
        bytes[..written_len].copy_from_slice(&self.scratch);
        bytes[written_len..].fill(0);
        self.file.write_at(buffer, block_start).await?;
        let new_offset = block_start + written_len as u64;
        let new_block_start = new_offset / BLOCK * BLOCK;
        self.tail.clear();
        self.tail.extend_from_slice(&self.scratch[(new_block_start - block_start) as usize..]);
        self.write_offset = Some(new_offset);
        Ok(next)
    }

    /// Syncs the full segment and opens the next one.
    async fn roll(&mut self) -> io::Result<()> {
        self.file.fdatasync().await?;
        let next_seq = self.segment_seq + 1;
        let prepared = self.next_sealer.borrow_mut().take();
        let sealer = match (&self.keys, prepared) {
            (Some(_), Some(prepared)) => Some(prepared),
            (Some(keys), None) => Some(new_wal_sealer(keys).await?),
            (None, _) => None,
        };
        let file_id = sealer.as_ref().map(|s| s.sealer.file_id().0);
        let file = create_segment(
            &self.wal_dir,
            next_seq,
            self.tenant_id,
            self.timeline_id,
            self.segment_size,
            self.last_lsn,
            file_id,
        )
        .await?;
        if let Some(file_id) = file_id {
            self.segment_files.push((next_seq, file_id));
        }
        self.sealer = sealer;
        self.prepare_next_sealer();
        let old = std::mem::replace(&mut self.file, file);
        // The writer names the new segment before the old file is closed: if the close fails,
        // the rewind must see that the batch created a segment and delete it. Closing first
        // left the new file under the old segment's number, and the next batch's frames went
        // into segment k+1 checksummed as segment k: acknowledged, then lost at recovery
        // (test `sim::wal_tests::a_failed_close_after_a_roll_loses_nothing`).
        self.closed.push((self.segment_seq, self.last_lsn));
        self.segment_seq = next_seq;
        self.write_offset = Some(DATA_START);
        self.tail.clear();
        old.close().await?;
        Ok(())
    }

    /// Deletes closed segments whose records all lie at or below `upto` (they are in layer
    /// files). The current segment is never deleted. Returns how many went.
    pub(crate) async fn recycle(&mut self, upto: Lsn) -> io::Result<usize> {
        let count = self.closed.iter().take_while(|(_, last)| *last <= upto).count();
        if count == 0 {
            return Ok(0);
        }
        let mut removed = Vec::with_capacity(count);
        for (seq, _) in self.closed.drain(..count) {
            runtime::remove_file(&segment_path(&self.wal_dir, seq))?;
            removed.push(seq);
        }
        self.forget_segments(|seq| removed.contains(&seq));
        sync_dir(&self.wal_dir).await?;
        Ok(count)
    }

    pub(crate) async fn close(self) -> io::Result<()> {
        self.file.close().await
    }
}

/// Creates segment `segment_seq`: header + zeros under a temporary name, synced, renamed, and
/// the directory synced. Returns it open for reading and writing.
pub(crate) async fn create_segment(
    wal_dir: &Path,
    segment_seq: u64,
    tenant_id: TenantId,
    timeline_id: TimelineId,
    segment_size: u64,
    prev_lsn: Lsn,
    file_id: Option<u128>,
) -> io::Result<File> {
    let path = segment_path(wal_dir, segment_seq);
    let tmp = path.with_extension("seg.tmp");
    let file = dma_open_rw(&tmp).await?;
    let header = SegmentHeader {
        segment_seq,
        tenant_id,
        timeline_id,
        segment_size_bytes: segment_size,
        prev_lsn,
        file_id,
    }
    .encode();
    let mut buffer = file.alloc_dma_buffer(header.len());
    buffer.as_bytes_mut().copy_from_slice(&header);
    file.write_at(buffer, 0).await?;
    write_zeros(&file, DATA_START, segment_size).await?;
    file.fdatasync().await?;
    file.close().await?;
    runtime::rename(&tmp, &path)?;
    sync_dir(wal_dir).await?;
    dma_open_rw(&path).await
}

/// A sealer for a new segment, its data key durably in the tenant's key manifest first.
async fn new_wal_sealer(keys: &TenantKeys) -> io::Result<WalSealer> {
    let sealer = keys.new_sealer().await.map_err(|e| io::Error::other(format!("WAL key: {e}")))?;
    Ok(WalSealer { sealer, next_position: 0 })
}

/// Removes `path`; `Ok(false)` if there was no such file.
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match runtime::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes zeros over `from..to` (both block-aligned) in large chunks.
async fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let mut offset = from;
    while offset < to {
        let len = (to - offset).min(ZERO_CHUNK as u64) as usize;
        let mut buffer = file.alloc_dma_buffer(len);
        buffer.as_bytes_mut().fill(0);
        file.write_at(buffer, offset).await?;
        offset += len as u64;
    }
    Ok(())
}
