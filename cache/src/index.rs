//! The in-memory page-version index of one timeline: every version ingested from its WAL, and
//! each relation's size history, answering "page P as of LSN L" by native redo.
//!
//! Invariants (asserted where they change):
//! - one page's versions are sorted by LSN with no duplicates;
//! - records are applied in strictly increasing LSN order (`last_lsn` only grows);
//! - a relation's size history and its cut list (truncations and drops) are sorted by LSN.
//!
//! Read rules, for key `(rel, block)` at LSN `L`:
//! 1. The relation must exist at `L` (a size entry ≤ `L`, not dropped), else `NotFound`.
//! 2. `block` must be below the relation's size at `L`, else `NotFound`.
//! 3. Versions at or before the last cut ≤ `L` that removed `block` are ignored (a truncated
//!    and re-extended block starts from zeros, as PostgreSQL's extension does).
//! 4. Start from the newest image ≤ `L` (or an all-zero page if none), apply every later delta
//!    ≤ `L` in order. A block inside the relation with no versions reads as zeros.
//!
//! A page write at block `b` implicitly extends the relation to at least `b + 1` blocks.
//! This module does no I/O and never reads the clock.

use std::collections::BTreeMap;
use wal::{BlockNumber, Delta, Lsn, PageKey, Record, RecordBody, RelTag, PAGE_SIZE};

/// Why a read found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("relation {rel} does not exist at {lsn}")]
    NoRelation { rel: RelTag, lsn: Lsn },
    #[error("block {block} is beyond the end of relation {rel} ({nblocks} blocks) at {lsn}")]
    BeyondEnd { rel: RelTag, block: BlockNumber, nblocks: u32, lsn: Lsn },
    #[error("record at {lsn} is not after the last applied record at {last}")]
    LsnOrder { lsn: Lsn, last: Lsn },
}

enum Body {
    Image(Box<[u8; PAGE_SIZE]>),
    Delta(Delta),
}

struct Version {
    lsn: Lsn,
    body: Body,
}

#[derive(Default)]
struct RelHistory {
    /// `(lsn, nblocks)`; `None` = dropped. Sorted by LSN.
    sizes: Vec<(Lsn, Option<u32>)>,
    /// `(lsn, first removed block)` for each truncation or drop (0 for a drop). Sorted by LSN.
    cuts: Vec<(Lsn, u32)>,
}

impl RelHistory {
    fn size_at(&self, lsn: Lsn) -> Option<u32> {
        let upto = self.sizes.partition_point(|(at, _)| *at <= lsn);
        self.sizes.get(upto.checked_sub(1)?)?.1
    }

    fn latest(&self) -> Option<u32> {
        self.sizes.last().and_then(|(_, size)| *size)
    }

    /// LSN of the last cut ≤ `lsn` that removed `block`; versions at or before it are dead.
    fn floor_for(&self, block: u32, lsn: Lsn) -> Lsn {
        let upto = self.cuts.partition_point(|(at, _)| *at <= lsn);
        self.cuts[..upto]
            .iter()
            .rev()
            .find(|(_, first_removed)| *first_removed <= block)
            .map_or(Lsn::INVALID, |(at, _)| *at)
    }

    fn set(&mut self, lsn: Lsn, size: Option<u32>) {
        let previous = self.latest();
        let first_removed = match (previous, size) {
            (Some(old), Some(new)) if new < old => Some(new),
            (Some(_), None) => Some(0),
            _ => None,
        };
        if let Some(first_removed) = first_removed {
            self.cuts.push((lsn, first_removed));
        }
        self.sizes.push((lsn, size));
    }
}

/// Statistics for metrics and memory accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub pages: usize,
    pub versions: usize,
    /// Payload bytes held (images and delta patches), excluding map overhead.
    pub payload_bytes: usize,
}

/// All versions of one timeline's pages held in memory.
#[derive(Default)]
pub struct TimelineIndex {
    pages: BTreeMap<PageKey, Vec<Version>>,
    rels: BTreeMap<RelTag, RelHistory>,
    last_lsn: Lsn,
    stats: IndexStats,
}

impl TimelineIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// LSN of the last applied record.
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    pub fn stats(&self) -> IndexStats {
        self.stats
    }

    /// Applies one record. Its LSN must be above every applied record's.
    pub fn apply(&mut self, record: Record) -> Result<(), Error> {
        if record.lsn <= self.last_lsn {
            return Err(Error::LsnOrder { lsn: record.lsn, last: self.last_lsn });
        }
        self.last_lsn = record.lsn;
        let Record { lsn, key, body } = record;
        let body = match body {
            RecordBody::Image(page) => Body::Image(page),
            RecordBody::Delta(delta) => Body::Delta(delta),
            RecordBody::RelSize(nblocks) => {
                self.rels.entry(key.rel).or_default().set(lsn, Some(nblocks));
                return Ok(());
            }
            RecordBody::RelDrop => {
                self.rels.entry(key.rel).or_default().set(lsn, None);
                return Ok(());
            }
        };
        let history = self.rels.entry(key.rel).or_default();
        if history.latest().is_none_or(|size| size <= key.block.0) {
            history.set(lsn, Some(key.block.0.saturating_add(1)));
        }
        self.stats.payload_bytes += match &body {
            Body::Image(_) => PAGE_SIZE,
            Body::Delta(delta) => delta.encoded_size(),
        };
        self.stats.versions += 1;
        let versions = self.pages.entry(key).or_insert_with(|| {
            self.stats.pages += 1;
            Vec::new()
        });
        assert!(versions.last().is_none_or(|last| last.lsn < lsn), "page versions out of order");
        versions.push(Version { lsn, body });
        Ok(())
    }

    /// Size in blocks of `rel` at `lsn`, or `None` if it does not exist then.
    pub fn rel_size(&self, rel: RelTag, lsn: Lsn) -> Option<u32> {
        self.rels.get(&rel)?.size_at(lsn)
    }

    /// Writes the page `key` as of `lsn` into `out`.
    pub fn get_page(&self, key: PageKey, lsn: Lsn, out: &mut [u8; PAGE_SIZE]) -> Result<(), Error> {
        let history = self.rels.get(&key.rel);
        let nblocks =
            history.and_then(|h| h.size_at(lsn)).ok_or(Error::NoRelation { rel: key.rel, lsn })?;
        if key.block.0 >= nblocks {
            return Err(Error::BeyondEnd { rel: key.rel, block: key.block, nblocks, lsn });
        }
        let floor = history.map_or(Lsn::INVALID, |h| h.floor_for(key.block.0, lsn));
        let versions = self.pages.get(&key).map_or(&[][..], |v| &v[..]);
        let upto = versions.partition_point(|v| v.lsn <= lsn);
        let live_from = versions[..upto].partition_point(|v| v.lsn <= floor);
        let live = &versions[live_from..upto];
        let base = live.iter().rposition(|v| matches!(v.body, Body::Image(_)));
        match base.map(|i| &live[i].body) {
            Some(Body::Image(page)) => out.copy_from_slice(&page[..]),
            _ => out.fill(0),
        }
        for version in &live[base.map_or(0, |i| i + 1)..] {
            if let Body::Delta(delta) = &version.body {
                delta.apply(out);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
