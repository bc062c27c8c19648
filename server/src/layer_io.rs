//! Layer file I/O on one core: writing a layer file durably under an I/O budget, opening one
//! (header and index into memory), and reading version payloads with O_DIRECT.
//!
//! The byte format is `cache::layer`. A layer is written as `<name>.tmp`, synced, renamed to
//! `<name>` and the directory synced, so a visible layer file is whole; leftover `.tmp` files
//! are removed when the timeline opens. Names: `<lsn_start>-<lsn_end>.delta` and
//! `<lsn>-<first key block>.image` in hex, unique per timeline.
//!
//! Reads go through io_uring with O_DIRECT into aligned buffers (never the page cache); every
//! payload is checked against the checksum in the in-memory index before it is used.

use crate::keys::TenantKeys;
use crate::runtime::{self, dma_open_rw, sync_dir, File};
use cache::layer::{
    decode_header, decode_index, verify_payload, IndexEntry, LayerIndex, LayerKind, HEADER_SIZE,
};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Bytes per write when writing a layer file.
const WRITE_CHUNK: usize = 1 << 20;

/// An open, immutable layer file.
pub(crate) struct LayerFile {
    pub(crate) name: String,
    path: PathBuf,
    file: File,
    pub(crate) index: LayerIndex,
    /// The tenant's keys when the file is encrypted (`index.header.file_id` names its DEK).
    keys: Option<Rc<TenantKeys>>,
}

impl Drop for LayerFile {
    /// The last handle of a deleted encrypted layer is gone: its opener can go too (the
    /// manifest already dropped its wrapped key when the file was deleted).
    fn drop(&mut self) {
        if let (Some(keys), Some(file_id)) = (&self.keys, self.index.header.file_id) {
            keys.drop_opener(file_id);
        }
    }
}

/// What went wrong reading a layer.
#[derive(Debug)]
pub(crate) enum LayerReadError {
    Corrupt(String),
    Io(String),
    /// The file is encrypted and its key is not available (revoked, provider refused).
    KeyUnavailable(String),
}

impl LayerFile {
    pub(crate) fn kind(&self) -> LayerKind {
        self.index.header.kind
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the aligned byte range `[start, end)` with O_DIRECT.
    pub(crate) async fn read_span(&self, start: u64, end: u64) -> Result<Vec<u8>, LayerReadError> {
        let read = self
            .file
            .read_at_aligned(start, (end - start) as usize)
            .await
            .map_err(|e| LayerReadError::Io(format!("reading layer {}: {e}", self.name)))?;
        if (read.len() as u64) < end - start {
            let why = format!("layer {} is shorter than its index says", self.name);
            return Err(LayerReadError::Corrupt(why));
        }
        Ok(read.to_vec())
    }

    /// Verifies (and, in an encrypted file, decrypts in place) the payload of `entry` inside
    /// `span`, which was read from `span_start`; returns where it lies in `span`.
    pub(crate) fn payload_in(
        &self,
        entry: &IndexEntry,
        span_start: u64,
        span: &mut [u8],
    ) -> Result<Range<usize>, LayerReadError> {
        let from = entry.offset.checked_sub(span_start).map(|o| o as usize);
        let range = from.map(|from| from..from + entry.len as usize);
        let payload = range.clone().and_then(|r| span.get_mut(r)).ok_or_else(|| {
            LayerReadError::Corrupt(format!("layer {}: payload outside its read", self.name))
        })?;
        let corrupt = |e: cache::layer::LayerError| {
            LayerReadError::Corrupt(format!("layer {}: {e}", self.name))
        };
        match (&self.keys, self.index.header.file_id) {
            (Some(keys), Some(file_id)) => keys
                .with_opener(file_id, |opener| verify_payload(entry, payload, Some(opener)))
                .map_err(|e| LayerReadError::KeyUnavailable(e.to_string()))?
                .map_err(corrupt)?,
            (_, Some(_)) => {
                return Err(LayerReadError::KeyUnavailable(format!(
                    "layer {} is encrypted and its tenant has no keys",
                    self.name
                )))
            }
            (_, None) => verify_payload(entry, payload, None).map_err(corrupt)?,
        }
        Ok(range.expect("checked above"))
    }

    /// The id of the file's data key, when it is encrypted.
    pub(crate) fn file_id(&self) -> Option<u128> {
        self.index.header.file_id
    }
}

/// Opens a layer file: reads and verifies its header and index (decrypting the index of an
/// encrypted file with the tenant's `keys`).
pub(crate) async fn open_layer(
    path: &Path,
    keys: Option<&Rc<TenantKeys>>,
) -> Result<LayerFile, LayerReadError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let io_error =
        |e: &dyn std::fmt::Display| LayerReadError::Io(format!("opening layer {name}: {e}"));
    let file = dma_open_rw(path).await.map_err(|e| io_error(&e))?;
    let size = file.file_size().await.map_err(|e| io_error(&e))?;
    let corrupt = |e: &dyn std::fmt::Display| LayerReadError::Corrupt(format!("layer {name}: {e}"));
    if size < HEADER_SIZE as u64 {
        return Err(corrupt(&"shorter than its header"));
    }
    let head = file.read_at_aligned(0, HEADER_SIZE).await.map_err(|e| io_error(&e))?;
    let header = decode_header(&head).map_err(|e| corrupt(&e))?;
    let index_end = (header.index_offset + header.index_len).div_ceil(4096) * 4096;
    if index_end > size {
        return Err(corrupt(&"index runs past the end of the file"));
    }
    let mut index_bytes = file
        .read_at_aligned(header.index_offset, (index_end - header.index_offset) as usize)
        .await
        .map_err(|e| io_error(&e))?
        .to_vec();
    let index = match (header.file_id, keys) {
        (None, _) => decode_index(header, &mut index_bytes, None).map_err(|e| corrupt(&e))?,
        (Some(file_id), Some(keys)) => {
            keys.mark_used(file_id);
            keys.with_opener(file_id, |opener| decode_index(header, &mut index_bytes, Some(opener)))
                .map_err(|e| LayerReadError::KeyUnavailable(format!("layer {name}: {e}")))?
                .map_err(|e| corrupt(&e))?
        }
        (Some(_), None) => {
            let why = format!("layer {name} is encrypted and its tenant has no key manifest");
            return Err(LayerReadError::KeyUnavailable(why));
        }
    };
    let keys = header.file_id.and(keys.cloned());
    Ok(LayerFile { name, path: path.to_path_buf(), file, index, keys })
}

/// I/O budget for background writes: at most `bytes_per_sec`, measured from the start of one
/// file. Sleeping between chunks leaves the disk to foreground reads (glommio has no disk
/// scheduler of its own; PLATFORM.md).
#[derive(Clone, Copy)]
pub(crate) struct WriteBudget {
    pub(crate) bytes_per_sec: u64,
}

/// Writes `bytes` (a multiple of 4096) as layer file `name` in `dir` durably and opens it.
pub(crate) async fn write_layer(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    budget: WriteBudget,
    keys: Option<&Rc<TenantKeys>>,
) -> Result<LayerFile, LayerReadError> {
    let io_error =
        |e: &dyn std::fmt::Display| LayerReadError::Io(format!("writing layer {name}: {e}"));
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let file = dma_open_rw(&tmp).await.map_err(|e| io_error(&e))?;
    let started = Instant::now();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let len = (bytes.len() - offset).min(WRITE_CHUNK);
        let mut buffer = file.alloc_dma_buffer(len);
        buffer.as_bytes_mut().copy_from_slice(&bytes[offset..offset + len]);
        file.write_at(buffer, offset as u64).await.map_err(|e| io_error(&e))?;
        offset += len;
        let allowed = Duration::from_secs_f64(offset as f64 / budget.bytes_per_sec.max(1) as f64);
        if let Some(ahead) = allowed.checked_sub(started.elapsed()) {
            glommio::timer::sleep(ahead).await;
        }
    }
    file.fdatasync().await.map_err(|e| io_error(&e))?;
    file.close().await.map_err(|e| io_error(&e))?;
    runtime::rename(&tmp, &path).map_err(|e| io_error(&e))?;
    sync_dir(dir).await.map_err(|e| io_error(&e))?;
    open_layer(&path, keys).await
}

/// Layer file names in `dir`; removes leftover temporary files.
pub(crate) fn list_layers(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for path in runtime::list_dir(dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".tmp") {
            tracing::info!(file = %name, "removing unfinished layer file");
            runtime::remove_file(&path)?;
        } else if name.ends_with(".delta") || name.ends_with(".image") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Polls all futures together and returns their outputs in order: every read of one lookup is
/// submitted before any completes (Neon's lesson: sequential reads of one lookup are slow).
pub(crate) async fn join_all<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let mut results: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in futures.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *result = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future completed")).collect()
}
