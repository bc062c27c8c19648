//! The per-core buffer cache: materialised page versions of the core's tenants, each valid over
//! an LSN range, in a fixed set of 8 KiB frames allocated once at start.
//!
//! It is a plain data structure owned by one core: no I/O, no threads, no clock, no locks, and
//! no allocation after [`BufferCache::new`] (a test with a counting allocator checks `get` and
//! `insert`). The server decides what to insert and when validity ends; the cache decides what
//! to keep.
//!
//! # Layout
//!
//! - Frames: one `AVec` of `[u8; PAGE_SIZE]`, 4096-aligned (ready for O_DIRECT and registered
//!   buffers), zeroed at construction so every page of the budget is committed up front.
//! - Entries: a slab parallel to the frames (entry `i` owns frame `i`) holding the key, its
//!   hash, the validity range and the link to the next older version of the same key; free
//!   entries sit on a preallocated stack.
//! - Index ([`index`]): open-addressing table from key to the newest cached version. A key's
//!   versions form a chain through the slab, newest first, at most [`VERSIONS_PER_KEY_MAX`]
//!   long, so a read at a recent LSN stops at the first link.
//! - Policy ([`policy`]): queues and frequency bits per entry, plus the admission ghost.
//! - Tenants ([`tenants`]): per-tenant counters in a fixed table.
//!
//! Metadata costs about [`OVERHEAD_BYTES_PER_FRAME_MAX`] bytes per frame (on top of the
//! 8,192-byte frame), plus ~90 KiB of tenant counters; [`BufferCache::frames_for_budget`]
//! turns a byte budget into a frame count with that included.
//!
//! # Validity
//!
//! An entry caches the version of a key valid over `[valid_from, valid_to)`: GetPage@LSN for
//! any LSN in that range returns exactly these bytes. `valid_to == Lsn::MAX` means "current,
//! as far as the cache has been told". When a record for the key is ingested at LSN `r`, the
//! server calls [`BufferCache::close_validity`]`(key, r)`: afterwards no cached version of the
//! key is valid at `r` or later, so a read at or after `r` misses and the server rebuilds the
//! page. Older versions stay for readers at older LSNs (replicas, branches, point-in-time
//! reads) until the policy evicts them; closing demotes them in the policy.
//!
//! Invariants (checked by `assert_invariants` in tests, and per key in debug builds):
//! - every live entry has `valid_from < valid_to`;
//! - one key's versions never overlap and are chained by descending `valid_from`;
//! - the index holds exactly the keys with a live entry, pointing at the newest one;
//! - each live entry is in exactly one policy queue; free entries in none;
//! - `entries` counters equal the live entries, in total and per tenant row;
//! - `get` returns an entry only for its own key and an LSN inside its range (asserted on
//!   every hit, in release builds too: serving wrong bytes is worse than crashing).
//!
//! # Policy choice
//!
//! [`PolicyKind::S3Fifo`] is the production policy, chosen with the trace simulator
//! (`pagecore-bench cache-sim`; table, command and machine in `bench/RESULTS.md`, "Buffer cache
//! policy (issue 5)"; 1M reads measured after 1M of warm-up, data set 100k pages, caches of 1,
//! 10 and 50 % of it):
//! - Against LRU it gains up to 11 points of hit ratio on zipfian traces at 1 % (θ 0.9: 45.1 %
//!   vs 34.2 %), and keeps the hot set through long one-off scans (zipf + 20 % scans at 1 %:
//!   36.3 % vs 25.3 %), never losing more than 0.1 point on the stationary traces. When
//!   popularity moves fast (the drift and shift traces) LRU is ahead by up to 5.1 points.
//! - Its admission rule (the small probationary queue and the ghost) is what beats LRU on the
//!   zipfian and scan traces: the same main queue without it (`S3FifoNoAdmission`) loses up to
//!   9 points there.
//! - SIEVE with the doorkeeper admission rule is slightly better on stationary zipfian traces
//!   (by 0.1–1.6 points) but adapts slowly when popularity moves: on the drifting and shifting
//!   zipfian traces it trails the best policy of the row by up to 11.8 points, S3-FIFO by at
//!   most 5.1. Over all 21 rows S3-FIFO has the best mean (59.5 % vs 58.6 % SIEVE +
//!   doorkeeper, 56.9 % LRU) and the smallest worst-case gap to the row's best.
//! - A hit costs one counter increment: no list surgery, unlike LRU.

mod ghost;
mod index;
mod policy;
mod tenants;

pub use policy::PolicyKind;
pub use tenants::TENANT_ROWS_MAX;

use aligned_vec::{AVec, ConstAlign};
use index::{KeyIndex, SlotPos};
use policy::{Placement, Policy, NIL};
use tenants::TenantTable;
use wal::{Lsn, PageKey, TenantId, TimelineId, PAGE_SIZE};

/// Alignment of every frame: the block size O_DIRECT and io_uring fixed buffers need.
pub const FRAME_ALIGN: usize = 4096;

/// Most versions of one key cached at once. Bounds the chain a read walks; inserting one more
/// drops the key's oldest version. Point-in-time readers rarely need more than a few versions
/// of one page.
pub const VERSIONS_PER_KEY_MAX: usize = 16;

/// Upper bound of the metadata bytes per frame (entry, policy node, index and ghost slots),
/// used by [`BufferCache::frames_for_budget`]. Checked against the real figure in tests.
pub const OVERHEAD_BYTES_PER_FRAME_MAX: usize = 192;

const _: () = assert!(PAGE_SIZE % FRAME_ALIGN == 0);

/// Identifies a page of a timeline: the cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey {
    pub tenant: TenantId,
    pub timeline: TimelineId,
    pub page: PageKey,
}

/// Counters of a cache, or of one tenant in it. `inserts == admitted + replaced + rejected +
/// conflicts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `get` calls answered from the cache.
    pub hits: u64,
    /// `get` calls not answered.
    pub misses: u64,
    /// `insert` calls.
    pub inserts: u64,
    /// Inserts that created an entry.
    pub admitted: u64,
    /// Inserts that updated the entry with the same `valid_from`.
    pub replaced: u64,
    /// Inserts refused by the admission rule.
    pub rejected: u64,
    /// Inserts whose range overlapped cached versions of the key: the insert and the
    /// overlapping versions were dropped (one of them was stale; see [`BufferCache::insert`]).
    pub conflicts: u64,
    /// Entries dropped to make room: by the policy, or as the oldest of too many versions.
    pub evictions: u64,
    /// Entries dropped because a record made them wrong (`close_validity`) or by a conflict.
    pub invalidations: u64,
    /// Entries dropped by `purge_tenant`.
    pub purged: u64,
    /// Live entries now.
    pub entries: u64,
    /// Bytes of frames the live entries hold.
    pub bytes_used: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, 0 before any read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// One slab entry; entry `i` owns frame `i`.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: CacheKey,
    hash: u64,
    valid_from: Lsn,
    valid_to: Lsn,
    /// Next older version of the same key, or `NIL`.
    older: u32,
    tenant_row: u16,
    live: bool,
}

const FREE_ENTRY: Entry = Entry {
    key: CacheKey {
        tenant: TenantId([0; 16]),
        timeline: TimelineId([0; 16]),
        page: PageKey {
            rel: wal::RelTag { spc_oid: 0, db_oid: 0, rel_number: 0, fork: wal::Fork::Main },
            block: wal::BlockNumber(0),
        },
    },
    hash: 0,
    valid_from: Lsn::INVALID,
    valid_to: Lsn::INVALID,
    older: NIL,
    tenant_row: 0,
    live: false,
};

/// What `scan_chain` found among a key's versions for a new range.
struct ChainScan {
    versions: usize,
    same_from: u32,
    overlaps: bool,
    oldest: u32,
}

/// One core's cache of page versions. See the module doc.
pub struct BufferCache {
    frames: AVec<[u8; PAGE_SIZE], ConstAlign<FRAME_ALIGN>>,
    entries: Vec<Entry>,
    /// Free entry indexes; capacity `frames`, so pushes never allocate.
    free: Vec<u32>,
    index: KeyIndex,
    policy: Policy,
    tenants: TenantTable,
    stats: CacheStats,
    /// Bumped whenever a frame's bytes may change or its entry is released; a [`FrameRef`]
    /// taken at another epoch no longer resolves.
    frame_epoch: u64,
}

/// Where a cache hit's bytes are, for a caller that sends them later without copying them out
/// first (the server writes frames straight to a socket). It resolves through
/// [`BufferCache::frame`] only while no frame has changed since the hit; it is no borrow, so
/// the caller must use it before anything can insert, invalidate or purge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    index: u32,
    epoch: u64,
}

impl BufferCache {
    /// A cache of `frames` 8 KiB frames (aligned to [`FRAME_ALIGN`]), with its index, policy
    /// state and counters preallocated for that many entries. Nothing grows afterwards.
    pub fn new(frames: usize, policy: PolicyKind) -> Self {
        assert!(frames > 0, "a buffer cache needs at least one frame");
        assert!(frames < NIL as usize, "entry indexes are u32");
        let mut frame_vec = AVec::with_capacity(FRAME_ALIGN, frames);
        frame_vec.resize(frames, [0u8; PAGE_SIZE]);
        BufferCache {
            frames: frame_vec,
            entries: vec![FREE_ENTRY; frames],
            // Popped from the end: entry 0 is used first.
            free: (0..frames as u32).rev().collect(),
            index: KeyIndex::new(frames),
            policy: Policy::new(policy, frames),
            tenants: TenantTable::new(),
            stats: CacheStats::default(),
            frame_epoch: 0,
        }
    }

    /// How many frames fit `budget_bytes` with their metadata (at least one).
    pub fn frames_for_budget(budget_bytes: usize) -> usize {
        (budget_bytes / (PAGE_SIZE + OVERHEAD_BYTES_PER_FRAME_MAX)).max(1)
    }

    /// The version of `key` valid at `lsn`, if cached. No allocation; O(1) expected (an index
    /// probe and a walk of the key's chain, which stops at the first version not newer than
    /// `lsn`).
    pub fn get(&mut self, key: &CacheKey, lsn: Lsn) -> Option<&[u8; PAGE_SIZE]> {
        let at = self.hit(key, lsn)?;
        Some(&self.frames[at as usize])
    }

    /// [`get`](Self::get), returning where the page is instead of borrowing it: counts and
    /// touches exactly as `get` does.
    pub fn get_ref(&mut self, key: &CacheKey, lsn: Lsn) -> Option<FrameRef> {
        let at = self.hit(key, lsn)?;
        Some(FrameRef { index: at, epoch: self.frame_epoch })
    }

    /// The bytes `frame` refers to, if no frame changed since that hit (`None` otherwise: the
    /// frame may hold another page by now).
    pub fn frame(&self, frame: FrameRef) -> Option<&[u8; PAGE_SIZE]> {
        (frame.epoch == self.frame_epoch).then(|| &self.frames[frame.index as usize])
    }

    /// The entry holding `key`'s version valid at `lsn`, counted as a hit and touched; or a
    /// counted miss.
    fn hit(&mut self, key: &CacheKey, lsn: Lsn) -> Option<u32> {
        let hash = key_hash(key);
        let mut at = match self.find(hash, key) {
            Some(pos) => self.index.head(pos),
            None => NIL,
        };
        while at != NIL {
            let entry = &self.entries[at as usize];
            if entry.valid_from <= lsn {
                if lsn < entry.valid_to {
                    break;
                }
                // Older versions end at or before this one starts: none covers `lsn`.
                at = NIL;
                break;
            }
            at = entry.older;
        }
        if at == NIL {
            self.stats.misses += 1;
            let row = self.tenants.row_of(key.tenant);
            self.tenants.row_mut(row).misses += 1;
            return None;
        }
        let entry = self.entries[at as usize];
        assert!(entry.live, "cache hit on a free entry");
        assert!(entry.key == *key, "cache hit on another key");
        assert!(entry.valid_from <= lsn, "cache hit below the version's range");
        assert!(lsn < entry.valid_to, "cache hit above the version's range");
        self.policy.touched(at);
        self.stats.hits += 1;
        self.tenants.row_mut(entry.tenant_row).hits += 1;
        Some(at)
    }

    /// Caches `page` as the version of `key` valid over `[valid_from, valid_to)` (`valid_to ==
    /// Lsn::MAX`: still current). Subject to the admission rule; may evict. No allocation.
    ///
    /// - An entry with the same `valid_from` is the same version: its bytes are replaced and
    ///   its range becomes the *shorter* of the two, so a late insert never reopens a range
    ///   that `close_validity` closed.
    /// - A range overlapping other cached versions means one side is stale (typically a read
    ///   that started before a record was ingested and inserts after): the insert and the
    ///   overlapping versions are all dropped, counted in `conflicts`.
    ///
    /// The cache cannot detect a stale insert for a key with nothing cached. The caller must
    /// know that no record for `key` in `(valid_from, valid_to)` was ingested, or will be
    /// without a `close_validity`: decide `valid_to` after the last await before this call
    /// (a record ingested while a read awaited I/O ends the version that read rebuilt).
    pub fn insert(
        &mut self,
        key: &CacheKey,
        valid_from: Lsn,
        valid_to: Lsn,
        page: &[u8; PAGE_SIZE],
    ) {
        assert!(valid_from < valid_to, "insert of an empty validity range");
        // Every path below may rewrite a frame (replace, or fill after an eviction).
        self.frame_epoch += 1;
        let hash = key_hash(key);
        let row = self.tenants.row_of(key.tenant);
        self.stats.inserts += 1;
        self.tenants.row_mut(row).inserts += 1;
        let head = self.find(hash, key).map_or(NIL, |pos| self.index.head(pos));
        let scan = self.scan_chain(head, valid_from, valid_to);
        if scan.same_from != NIL {
            let entry = &mut self.entries[scan.same_from as usize];
            entry.valid_to = entry.valid_to.min(valid_to);
            self.frames[scan.same_from as usize].copy_from_slice(page);
            self.stats.replaced += 1;
            self.tenants.row_mut(row).replaced += 1;
            return;
        }
        if scan.overlaps {
            self.drop_overlapping(head, valid_from, valid_to);
            self.stats.conflicts += 1;
            self.tenants.row_mut(row).conflicts += 1;
            return;
        }
        let placement = self.policy.admit(hash, self.free.is_empty(), head != NIL);
        if placement == Placement::Reject {
            self.stats.rejected += 1;
            self.tenants.row_mut(row).rejected += 1;
            return;
        }
        if scan.versions >= VERSIONS_PER_KEY_MAX {
            self.policy.remove(scan.oldest);
            self.release(scan.oldest, Release::Evicted);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let entries = &self.entries;
                let victim = self.policy.evict(|e| entries[e as usize].hash);
                self.release(victim, Release::Evicted);
                self.free.pop().expect("eviction freed an entry")
            }
        };
        self.fill(slot, key, hash, row, valid_from, valid_to, page);
        self.policy.inserted(slot, placement);
        self.stats.admitted += 1;
        self.tenants.row_mut(row).admitted += 1;
        self.debug_check_key(hash, key);
    }

    /// A record for `key` at `lsn` was ingested. The cached version valid just below `lsn` (if
    /// any, normally the current one with `valid_to == Lsn::MAX`) now ends at `lsn`, and any
    /// cached version starting at or above `lsn` is dropped (it cannot include this record, so
    /// it is wrong). Call this before inserting the version the record creates.
    pub fn close_validity(&mut self, key: &CacheKey, lsn: Lsn) {
        let hash = key_hash(key);
        let Some(pos) = self.find(hash, key) else { return };
        let mut at = self.index.head(pos);
        while at != NIL {
            let entry = self.entries[at as usize];
            if entry.valid_from < lsn {
                if lsn < entry.valid_to {
                    self.entries[at as usize].valid_to = lsn;
                    self.policy.closed(at);
                }
                // Older versions end at or before this one starts.
                break;
            }
            self.policy.remove(at);
            self.release(at, Release::Invalidated);
            at = entry.older;
        }
        self.debug_check_key(hash, key);
    }

    /// Drops every entry of `tenant` (key revocation, tenant deletion) and zeroes their frames,
    /// so no plaintext of the tenant stays in memory. Returns how many entries were dropped.
    /// O(frames): a control-plane operation.
    pub fn purge_tenant(&mut self, tenant: TenantId) -> usize {
        let mut purged = 0;
        for at in 0..self.entries.len() as u32 {
            let entry = &self.entries[at as usize];
            if entry.live && entry.key.tenant == tenant {
                self.policy.remove(at);
                self.release(at, Release::Purged);
                purged += 1;
            }
        }
        purged
    }

    /// Counters of the whole cache.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Counters of one tenant: zero for a tenant the cache has never seen or counts in the
    /// overflow row (see [`TENANT_ROWS_MAX`]).
    pub fn tenant_stats(&self, tenant: TenantId) -> CacheStats {
        self.tenants.find(tenant).map_or_else(CacheStats::default, |row| *self.tenants.row(row))
    }

    /// Counters of the tenants beyond [`TENANT_ROWS_MAX`], summed.
    pub fn overflow_tenant_stats(&self) -> CacheStats {
        *self.tenants.row(tenants::OVERFLOW_ROW)
    }

    /// The policy this cache was built with.
    pub fn policy(&self) -> PolicyKind {
        self.policy.kind()
    }

    /// Number of frames (the most entries the cache holds).
    pub fn frames(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes held besides the frames: entries, index, policy, free stack, tenant table.
    pub fn overhead_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<Entry>()
            + self.free.capacity() * size_of::<u32>()
            + self.index.heap_bytes()
            + self.policy.heap_bytes()
            + self.tenants.heap_bytes()
    }

    fn find(&self, hash: u64, key: &CacheKey) -> Option<SlotPos> {
        let entries = &self.entries;
        self.index.find(hash, |e| entries[e as usize].key == *key)
    }

    /// Walks the chain from `head` to see how `[from, to)` fits among the cached versions.
    fn scan_chain(&self, head: u32, from: Lsn, to: Lsn) -> ChainScan {
        let mut scan = ChainScan { versions: 0, same_from: NIL, overlaps: false, oldest: NIL };
        let mut at = head;
        while at != NIL {
            let entry = &self.entries[at as usize];
            if entry.valid_from == from {
                scan.same_from = at;
            } else if entry.valid_from < to && from < entry.valid_to {
                scan.overlaps = true;
            }
            scan.versions += 1;
            scan.oldest = at;
            at = entry.older;
        }
        scan
    }

    /// Drops the cached versions of the chain at `head` that overlap `[from, to)`.
    fn drop_overlapping(&mut self, head: u32, from: Lsn, to: Lsn) {
        let mut at = head;
        while at != NIL {
            let entry = self.entries[at as usize];
            if entry.valid_from < to && from < entry.valid_to {
                self.policy.remove(at);
                self.release(at, Release::Invalidated);
            }
            at = entry.older;
        }
    }

    /// Fills free entry `slot` and links it into its key's chain, sorted newest first.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        slot: u32,
        key: &CacheKey,
        hash: u64,
        row: u16,
        valid_from: Lsn,
        valid_to: Lsn,
        page: &[u8; PAGE_SIZE],
    ) {
        debug_assert!(!self.entries[slot as usize].live);
        // Eviction may have changed the chain and moved index slots: look again.
        let pos = self.find(hash, key);
        let mut newer = NIL;
        let mut older = pos.map_or(NIL, |pos| self.index.head(pos));
        while older != NIL && self.entries[older as usize].valid_from > valid_from {
            newer = older;
            older = self.entries[older as usize].older;
        }
        self.entries[slot as usize] =
            Entry { key: *key, hash, valid_from, valid_to, older, tenant_row: row, live: true };
        match (pos, newer) {
            (None, _) => self.index.insert(hash, slot),
            (Some(pos), NIL) => self.index.set_head(pos, slot),
            (Some(_), newer) => self.entries[newer as usize].older = slot,
        }
        self.frames[slot as usize].copy_from_slice(page);
        self.stats.entries += 1;
        self.stats.bytes_used += PAGE_SIZE as u64;
        let tenant = self.tenants.row_mut(row);
        tenant.entries += 1;
        tenant.bytes_used += PAGE_SIZE as u64;
    }

    /// Unlinks live entry `at` (already detached from the policy) from its chain and the index,
    /// counts why, and frees it.
    fn release(&mut self, at: u32, why: Release) {
        self.frame_epoch += 1;
        let entry = self.entries[at as usize];
        assert!(entry.live, "release of a free entry");
        let pos = self.find(entry.hash, &entry.key).expect("a live entry's key is indexed");
        let head = self.index.head(pos);
        if head == at {
            if entry.older == NIL {
                let entries = &self.entries;
                self.index.remove(pos, |e| entries[e as usize].hash);
            } else {
                self.index.set_head(pos, entry.older);
            }
        } else {
            let mut newer = head;
            while self.entries[newer as usize].older != at {
                newer = self.entries[newer as usize].older;
                assert_ne!(newer, NIL, "a live entry is in its key's chain");
            }
            self.entries[newer as usize].older = entry.older;
        }
        if why == Release::Purged {
            self.frames[at as usize].fill(0);
        }
        self.entries[at as usize] = FREE_ENTRY;
        // At most `frames` entries are ever free: within the capacity, no allocation.
        self.free.push(at);
        let stats = &mut self.stats;
        let tenant = self.tenants.row_mut(entry.tenant_row);
        for counters in [stats, tenant] {
            counters.entries -= 1;
            counters.bytes_used -= PAGE_SIZE as u64;
            match why {
                Release::Evicted => counters.evictions += 1,
                Release::Invalidated => counters.invalidations += 1,
                Release::Purged => counters.purged += 1,
            }
        }
    }

    /// Debug builds: the chain of `key` is sorted newest first, non-overlapping, bounded.
    fn debug_check_key(&self, hash: u64, key: &CacheKey) {
        if cfg!(debug_assertions) {
            let mut at = self.find(hash, key).map_or(NIL, |pos| self.index.head(pos));
            let mut previous_from = Lsn::MAX;
            let mut versions = 0;
            while at != NIL {
                let entry = &self.entries[at as usize];
                assert!(entry.live && entry.key == *key);
                assert!(entry.valid_from < entry.valid_to, "empty range cached");
                assert!(entry.valid_to <= previous_from, "versions overlap or are unsorted");
                previous_from = entry.valid_from;
                versions += 1;
                at = entry.older;
            }
            assert!(versions <= VERSIONS_PER_KEY_MAX);
        }
    }

    /// O(frames) check of every invariant in the module doc, for tests.
    #[cfg(test)]
    pub(crate) fn assert_invariants(&self) {
        self.policy.check();
        let live: Vec<u32> =
            (0..self.entries.len() as u32).filter(|&e| self.entries[e as usize].live).collect();
        assert_eq!(live.len() + self.free.len(), self.entries.len());
        assert_eq!(live.len(), self.policy.len());
        assert_eq!(self.stats.entries, live.len() as u64);
        assert_eq!(self.stats.bytes_used, (live.len() * PAGE_SIZE) as u64);
        let mut keys = std::collections::HashSet::new();
        let mut per_row = std::collections::HashMap::<u16, u64>::new();
        for &e in &live {
            let entry = &self.entries[e as usize];
            assert_eq!(entry.hash, key_hash(&entry.key));
            *per_row.entry(entry.tenant_row).or_default() += 1;
            if keys.insert(entry.key) {
                self.debug_check_key(entry.hash, &entry.key);
                // Every live version is reachable from the head.
                let mut at = self.index.head(self.find(entry.hash, &entry.key).unwrap());
                let mut chain = Vec::new();
                while at != NIL {
                    chain.push(at);
                    at = self.entries[at as usize].older;
                }
                let versions = live.iter().filter(|&&o| self.entries[o as usize].key == entry.key);
                assert_eq!(versions.count(), chain.len());
            }
        }
        assert_eq!(self.index.len(), keys.len());
        for (row, count) in per_row {
            assert_eq!(self.tenants.row(row).entries, count);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Release {
    Evicted,
    Invalidated,
    Purged,
}

/// The key's 64-bit hash: xxh3 of its fields, little-endian. Not keyed: tenants choose block
/// and relation numbers, but not the tenant and timeline ids that are hashed with them.
fn key_hash(key: &CacheKey) -> u64 {
    let rel = &key.page.rel;
    let mut bytes = [0u8; 49];
    bytes[0..16].copy_from_slice(&key.tenant.0);
    bytes[16..32].copy_from_slice(&key.timeline.0);
    bytes[32..36].copy_from_slice(&rel.spc_oid.to_le_bytes());
    bytes[36..40].copy_from_slice(&rel.db_oid.to_le_bytes());
    bytes[40..44].copy_from_slice(&rel.rel_number.to_le_bytes());
    bytes[44] = rel.fork as u8;
    bytes[45..49].copy_from_slice(&key.page.block.0.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

#[cfg(test)]
mod tests;
