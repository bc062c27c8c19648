//! The in-memory layer: page versions ingested from the WAL and not yet written to a layer file.
//!
//! A timeline has one *open* in-memory layer receiving records, and while a flush runs, one
//! *frozen* layer being written out; both stay readable. Relation sizes are not kept here but
//! in the timeline's [`crate::rels::RelSizes`].
//!
//! Invariants: each page's versions are sorted by LSN without duplicates; every version's LSN
//! lies in `(lsn_start, last_lsn]`; `last_lsn` only grows. No I/O.

use crate::rels::RelSizes;
use std::collections::BTreeMap;
use wal::{Delta, Lsn, PageKey, Record, RecordBody, PAGE_SIZE};

/// Longest run of deltas a page may collect in one in-memory layer before the newest is
/// materialised as an image. Bounds the redo work of a read (and, through flushes, the delta
/// chains in layer files) for hot pages that only ever receive deltas.
pub const MATERIALIZE_AFTER: usize = 32;

/// A version's content.
pub enum PageBody {
    Image(Box<[u8; PAGE_SIZE]>),
    Delta(Delta),
}

/// One page version.
pub struct Version {
    pub lsn: Lsn,
    pub body: PageBody,
}

/// Counts for metrics and the flush decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub pages: usize,
    pub versions: usize,
    /// Payload bytes held (images and delta patches), excluding map overhead.
    pub payload_bytes: usize,
}

/// Versions in memory over the LSN range `(lsn_start, last_lsn]`.
pub struct InMemoryLayer {
    pages: BTreeMap<PageKey, Vec<Version>>,
    lsn_start: Lsn,
    last_lsn: Lsn,
    stats: LayerStats,
}

impl InMemoryLayer {
    /// An empty layer for records after `lsn_start`.
    pub fn new(lsn_start: Lsn) -> Self {
        InMemoryLayer {
            pages: BTreeMap::new(),
            lsn_start,
            last_lsn: lsn_start,
            stats: LayerStats::default(),
        }
    }

    pub fn lsn_start(&self) -> Lsn {
        self.lsn_start
    }

    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    pub fn stats(&self) -> LayerStats {
        self.stats
    }

    pub fn is_empty(&self) -> bool {
        self.last_lsn == self.lsn_start
    }

    /// Ingests one record: page versions go here, size changes to `rels`. The caller has
    /// checked LSN order; a regression here is a bug.
    ///
    /// Returns the key and LSN of a delta that ends a run of [`MATERIALIZE_AFTER`] deltas with
    /// no image in this layer: the caller should rebuild that version and store it as an image
    /// ([`InMemoryLayer::materialize`]), so no read ever applies a long chain.
    pub fn ingest(&mut self, record: Record, rels: &mut RelSizes) -> Option<(PageKey, Lsn)> {
        assert!(record.lsn > self.last_lsn, "in-memory layer ingest went backwards");
        self.last_lsn = record.lsn;
        let Record { lsn, key, body } = record;
        let body = match body {
            RecordBody::Image(page) => PageBody::Image(page),
            RecordBody::Delta(delta) => PageBody::Delta(delta),
            RecordBody::RelSize(nblocks) => {
                rels.set(key.rel, lsn, Some(nblocks));
                return None;
            }
            RecordBody::RelDrop => {
                rels.set(key.rel, lsn, None);
                return None;
            }
        };
        rels.note_page_write(key, lsn);
        self.stats.payload_bytes += match &body {
            PageBody::Image(_) => PAGE_SIZE,
            PageBody::Delta(delta) => delta.encoded_size(),
        };
        self.stats.versions += 1;
        let versions = self.pages.entry(key).or_insert_with(|| {
            self.stats.pages += 1;
            Vec::new()
        });
        let is_delta = matches!(body, PageBody::Delta(_));
        versions.push(Version { lsn, body });
        let run =
            versions.iter().rev().take_while(|v| matches!(v.body, PageBody::Delta(_))).count();
        (is_delta && run >= MATERIALIZE_AFTER).then_some((key, lsn))
    }

    /// Replaces the delta of `key` at `lsn` by the full page it produces (the same version, so
    /// readers see no difference). Returns false if that delta is not in this layer.
    pub fn materialize(&mut self, key: PageKey, lsn: Lsn, page: &[u8; PAGE_SIZE]) -> bool {
        let Some(versions) = self.pages.get_mut(&key) else { return false };
        let Ok(index) = versions.binary_search_by_key(&lsn, |v| v.lsn) else { return false };
        let PageBody::Delta(delta) = &versions[index].body else { return false };
        self.stats.payload_bytes = self.stats.payload_bytes - delta.encoded_size() + PAGE_SIZE;
        versions[index].body = PageBody::Image(Box::new(*page));
        true
    }

    /// Versions of `key` with `floor < lsn <= upto`, oldest first.
    pub fn versions(&self, key: PageKey, floor: Lsn, upto: Lsn) -> &[Version] {
        let Some(versions) = self.pages.get(&key) else { return &[] };
        let end = versions.partition_point(|v| v.lsn <= upto);
        let start = versions[..end].partition_point(|v| v.lsn <= floor);
        &versions[start..end]
    }

    /// Every page with its versions, in key order (for writing a layer file).
    pub fn pages(&self) -> impl Iterator<Item = (PageKey, &[Version])> + '_ {
        self.pages.iter().map(|(key, versions)| (*key, &versions[..]))
    }
}

/// Rebuilds a page: starts from `base` (or zeros) and applies `deltas` oldest first.
pub fn redo<'a>(
    base: Option<&[u8; PAGE_SIZE]>,
    deltas: impl IntoIterator<Item = &'a Delta>,
    out: &mut [u8; PAGE_SIZE],
) {
    match base {
        Some(page) => out.copy_from_slice(page),
        None => out.fill(0),
    }
    for delta in deltas {
        delta.apply(out);
    }
}

#[cfg(test)]
mod tests;
