//! Relation size history of one timeline: for every relation fork, its size in blocks from
//! each LSN on, and the truncations and drops ("cuts") that end the life of page versions.
//!
//! Invariants: each relation's size events and cuts are sorted by LSN, no two at one LSN.
//! A page write at block `b` extends the relation to at least `b + 1` blocks
//! ([`RelSizes::note_page_write`]). This module does no I/O.

use crate::layer::RelEvent;
use std::collections::BTreeMap;
use wal::{Lsn, PageKey, RelTag};

#[derive(Default, Clone, Debug)]
struct RelHistory {
    /// Size inherited from the ancestor at the branch point (branches only); not an event.
    base: Option<u32>,
    /// `(lsn, nblocks)`; `None` = dropped. Sorted by LSN.
    sizes: Vec<(Lsn, Option<u32>)>,
    /// `(lsn, first removed block)` for each truncation or drop (0 for a drop).
    cuts: Vec<(Lsn, u32)>,
}

impl RelHistory {
    fn at(&self, lsn: Lsn) -> Option<Option<u32>> {
        let upto = self.sizes.partition_point(|(at, _)| *at <= lsn);
        Some(self.sizes.get(upto.checked_sub(1)?)?.1)
    }

    fn latest(&self) -> Option<u32> {
        match self.sizes.last() {
            Some((_, size)) => *size,
            None => self.base,
        }
    }

    fn set(&mut self, lsn: Lsn, size: Option<u32>) {
        if let Some((last, _)) = self.sizes.last() {
            if *last >= lsn {
                // Replayed or restated event (an image layer's snapshot): already known.
                debug_assert!(self.sizes.iter().any(|(at, _)| *at == lsn) || *last > lsn);
                return;
            }
        }
        let previous = match self.sizes.last() {
            Some((_, size)) => Some(*size),
            None => self.base.map(Some),
        };
        let first_removed = match (previous, size) {
            (Some(Some(old)), Some(new)) if new < old => Some(new),
            (Some(Some(_)), None) => Some(0),
            _ => None,
        };
        if let Some(first_removed) = first_removed {
            self.cuts.push((lsn, first_removed));
        }
        self.sizes.push((lsn, size));
    }
}

/// Size of a relation in the ancestor at the branch point (for branches).
pub type Inherit = std::rc::Rc<dyn Fn(RelTag) -> Option<u32>>;

/// Size history of every relation of a timeline.
#[derive(Default, Clone)]
pub struct RelSizes {
    rels: BTreeMap<RelTag, RelHistory>,
    /// For a branch: the ancestor's relation sizes at the branch point, so that the branch's
    /// first write to a relation extends or truncates from the inherited size.
    inherit: Option<Inherit>,
}

impl std::fmt::Debug for RelSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelSizes").field("rels", &self.rels).finish_non_exhaustive()
    }
}

impl RelSizes {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty history for a branch whose ancestor's sizes at the branch point `inherit` gives.
    pub fn inheriting(inherit: Option<Inherit>) -> Self {
        RelSizes { rels: BTreeMap::new(), inherit }
    }

    fn history(&mut self, rel: RelTag) -> &mut RelHistory {
        let inherit = &self.inherit;
        self.rels.entry(rel).or_insert_with(|| RelHistory {
            base: inherit.as_ref().and_then(|f| f(rel)),
            ..RelHistory::default()
        })
    }

    /// Rebuilds the history from events (layer files), in any order; duplicates are merged.
    pub fn from_events(mut events: Vec<RelEvent>, inherit: Option<Inherit>) -> Self {
        events.sort_by_key(|e| (e.rel, e.lsn));
        let mut sizes = RelSizes::inheriting(inherit);
        for event in events {
            sizes.set(event.rel, event.lsn, event.nblocks);
        }
        sizes
    }

    /// `Some(Some(n))`: `n` blocks at `lsn`; `Some(None)`: dropped by then; `None`: this timeline
    /// has no event for the relation at or before `lsn` (ask the ancestor, if any).
    pub fn lookup(&self, rel: RelTag, lsn: Lsn) -> Option<Option<u32>> {
        self.rels.get(&rel)?.at(lsn)
    }

    /// Size of `rel` at `lsn`, `None` if it does not exist then (per this timeline alone).
    pub fn size_at(&self, rel: RelTag, lsn: Lsn) -> Option<u32> {
        self.lookup(rel, lsn).flatten()
    }

    /// LSN of the last cut at or before `lsn` that removed `key`'s block: versions at or
    /// before it are dead. `Lsn::INVALID` if none.
    pub fn floor_for(&self, key: PageKey, lsn: Lsn) -> Lsn {
        let Some(history) = self.rels.get(&key.rel) else { return Lsn::INVALID };
        let upto = history.cuts.partition_point(|(at, _)| *at <= lsn);
        history.cuts[..upto]
            .iter()
            .rev()
            .find(|(_, first_removed)| *first_removed <= key.block.0)
            .map_or(Lsn::INVALID, |(at, _)| *at)
    }

    /// LSN of the first cut after `after` that removes `key`'s block, if any: where a version
    /// read at `after` stops being valid.
    pub fn next_cut(&self, key: PageKey, after: Lsn) -> Option<Lsn> {
        let history = self.rels.get(&key.rel)?;
        let from = history.cuts.partition_point(|(at, _)| *at <= after);
        history.cuts[from..]
            .iter()
            .find(|(_, first_removed)| *first_removed <= key.block.0)
            .map(|(at, _)| *at)
    }

    /// Records an explicit size change (`None` = drop).
    pub fn set(&mut self, rel: RelTag, lsn: Lsn, nblocks: Option<u32>) {
        self.history(rel).set(lsn, nblocks);
    }

    /// A page write at `key` extends its relation if needed.
    pub fn note_page_write(&mut self, key: PageKey, lsn: Lsn) {
        let history = self.history(key.rel);
        if history.latest().is_none_or(|size| size <= key.block.0) {
            history.set(lsn, Some(key.block.0.saturating_add(1)));
        }
    }

    /// Events with `after < lsn <= upto`, sorted by `(rel, lsn)`: what a delta layer records.
    pub fn events_in(&self, after: Lsn, upto: Lsn) -> Vec<RelEvent> {
        let mut events = Vec::new();
        for (rel, history) in &self.rels {
            for (lsn, nblocks) in &history.sizes {
                if *lsn > after && *lsn <= upto {
                    events.push(RelEvent { rel: *rel, lsn: *lsn, nblocks: *nblocks });
                }
            }
        }
        events
    }

    /// Each relation's size as of `lsn`, restated at `lsn` (what an image layer records, so
    /// older layers can go). Relations dropped by then are left out.
    pub fn snapshot_at(&self, lsn: Lsn) -> Vec<RelEvent> {
        self.rels
            .iter()
            .filter_map(|(rel, history)| {
                let nblocks = history.at(lsn)??;
                Some(RelEvent { rel: *rel, lsn, nblocks: Some(nblocks) })
            })
            .collect()
    }

    /// Every relation this timeline has events for.
    pub fn rels(&self) -> impl Iterator<Item = RelTag> + '_ {
        self.rels.keys().copied()
    }
}

#[cfg(test)]
mod tests;
