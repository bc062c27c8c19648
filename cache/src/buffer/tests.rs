use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use wal::{BlockNumber, Fork, RelTag};

fn key(tenant: u128, block: u32) -> CacheKey {
    CacheKey {
        tenant: TenantId::from_u128(tenant),
        timeline: TimelineId::from_u128(0x7711),
        page: PageKey {
            rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main },
            block: BlockNumber(block),
        },
    }
}

fn page(fill: u8) -> [u8; PAGE_SIZE] {
    [fill; PAGE_SIZE]
}

/// One step of a scripted scenario; `Get` carries the fill byte it must return (`None`: miss).
#[derive(Clone, Copy, Debug)]
enum Op {
    Insert { key: CacheKey, from: u64, to: u64, fill: u8 },
    Close { key: CacheKey, lsn: u64 },
    Get { key: CacheKey, lsn: u64, expect: Option<u8> },
    Purge { tenant: u128, expect: usize },
}

const MAX: u64 = u64::MAX;

/// Runs `ops` on a fresh cache of `frames` frames under every policy, checking each `Get` and
/// `Purge` and the invariants after every step.
fn check(frames: usize, ops: &[Op]) {
    for policy in PolicyKind::ALL {
        let mut cache = BufferCache::new(frames, policy);
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Insert { key, from, to, fill } => {
                    cache.insert(&key, Lsn(from), Lsn(to), &page(fill));
                }
                Op::Close { key, lsn } => cache.close_validity(&key, Lsn(lsn)),
                Op::Get { key, lsn, expect } => {
                    let got = cache.get(&key, Lsn(lsn)).map(|p| {
                        assert!(p.iter().all(|&b| b == p[0]), "torn page");
                        p[0]
                    });
                    assert_eq!(got, expect, "{policy:?} step {step}: {op:?}");
                }
                Op::Purge { tenant, expect } => {
                    let purged = cache.purge_tenant(TenantId::from_u128(tenant));
                    assert_eq!(purged, expect, "{policy:?} step {step}: {op:?}");
                }
            }
            cache.assert_invariants();
        }
    }
}

fn insert(key: CacheKey, from: u64, to: u64, fill: u8) -> Op {
    Op::Insert { key, from, to, fill }
}

fn get(key: CacheKey, lsn: u64, expect: Option<u8>) -> Op {
    Op::Get { key, lsn, expect }
}

fn close(key: CacheKey, lsn: u64) -> Op {
    Op::Close { key, lsn }
}

#[test]
fn read_after_a_newer_record_never_returns_the_stale_version() {
    let k = key(1, 7);
    check(
        4,
        &[
            insert(k, 0x10, MAX, 1),
            get(k, 0x10, Some(1)),
            get(k, 0x1000, Some(1)),
            get(k, 0x0f, None),
            // A record for the page at 0x20: the cached version is valid only below it.
            close(k, 0x20),
            get(k, 0x20, None),
            get(k, 0x21, None),
            get(k, 0x1000, None),
            get(k, 0x1f, Some(1)),
            // The server rebuilds the new version and caches it.
            insert(k, 0x20, MAX, 2),
            get(k, 0x20, Some(2)),
            get(k, 0x1000, Some(2)),
            get(k, 0x1f, Some(1)),
        ],
    );
}

#[test]
fn read_at_an_older_lsn_gets_the_older_version() {
    let k = key(1, 7);
    check(
        8,
        &[
            insert(k, 0x10, 0x20, 1),
            insert(k, 0x30, MAX, 3),
            insert(k, 0x20, 0x30, 2),
            get(k, 0x0f, None),
            get(k, 0x10, Some(1)),
            get(k, 0x1f, Some(1)),
            get(k, 0x20, Some(2)),
            get(k, 0x2f, Some(2)),
            get(k, 0x30, Some(3)),
            get(k, MAX - 1, Some(3)),
            // A gap between cached versions misses.
            close(k, 0x40),
            insert(k, 0x50, MAX, 5),
            get(k, 0x45, None),
            get(k, 0x3f, Some(3)),
            get(k, 0x50, Some(5)),
        ],
    );
}

#[test]
fn close_drops_versions_that_start_at_or_after_the_record() {
    let k = key(1, 7);
    check(
        8,
        &[
            insert(k, 0x10, 0x20, 1),
            insert(k, 0x20, MAX, 2),
            // Records only move forward, so a version starting at or after an ingested record
            // cannot contain it: it is dropped rather than trusted.
            close(k, 0x20),
            get(k, 0x20, None),
            get(k, 0x10, Some(1)),
            close(k, 0x08),
            get(k, 0x10, None),
        ],
    );
}

/// A read that rebuilt the page at 0x10 but inserts only after a record at 0x20 was ingested
/// and closed the cached copy must not reopen it: the late insert keeps the shorter range.
#[test]
fn late_insert_of_the_same_version_never_reopens_its_range() {
    let k = key(1, 7);
    check(
        4,
        &[
            insert(k, 0x10, MAX, 1),
            close(k, 0x20),
            insert(k, 0x10, MAX, 1),
            get(k, 0x20, None),
            get(k, 0x1f, Some(1)),
            // A replacement may shorten a range.
            insert(k, 0x10, 0x18, 9),
            get(k, 0x18, None),
            get(k, 0x17, Some(9)),
        ],
    );
}

#[test]
fn overlapping_insert_drops_both_sides() {
    let k = key(1, 7);
    let other = key(1, 8);
    check(
        8,
        &[
            insert(k, 0x20, MAX, 2),
            insert(k, 0x08, 0x10, 0),
            insert(other, 0x10, MAX, 7),
            // Stale: claims to be current from 0x10 though a version from 0x20 is cached.
            insert(k, 0x10, MAX, 1),
            get(k, 0x10, None),
            get(k, 0x30, None),
            // Versions not overlapping it, and other keys, stay.
            get(k, 0x08, Some(0)),
            get(other, 0x10, Some(7)),
        ],
    );
    let mut cache = BufferCache::new(8, PolicyKind::S3Fifo);
    cache.insert(&k, Lsn(0x20), Lsn::MAX, &page(2));
    cache.insert(&k, Lsn(0x10), Lsn(0x21), &page(1));
    let stats = cache.stats();
    assert_eq!((stats.conflicts, stats.invalidations, stats.entries), (1, 1, 0));
}

#[test]
fn versions_per_key_are_bounded_dropping_the_oldest() {
    let k = key(1, 7);
    let mut ops = Vec::new();
    let versions = VERSIONS_PER_KEY_MAX as u64 + 4;
    for v in 0..versions {
        ops.push(insert(k, 0x10 * (v + 1), 0x10 * (v + 2), v as u8));
    }
    ops.push(get(k, 0x10, None));
    ops.push(get(k, 0x10 * 4, None));
    ops.push(get(k, 0x10 * 5, Some(4)));
    ops.push(get(k, 0x10 * versions, Some(versions as u8 - 1)));
    check(64, &ops);
}

#[test]
fn eviction_respects_the_frame_budget() {
    for policy in PolicyKind::ALL {
        let frames = 16;
        let mut cache = BufferCache::new(frames, policy);
        for round in 0..5u32 {
            for block in 0..100 {
                let k = key(u128::from(block % 3), block);
                if cache.get(&k, Lsn(0x100)).is_none() {
                    cache.insert(&k, Lsn(0x10), Lsn::MAX, &page(block as u8));
                }
                let stats = cache.stats();
                assert!(stats.entries <= frames as u64, "{policy:?} round {round}");
                assert_eq!(stats.bytes_used, stats.entries * PAGE_SIZE as u64);
            }
            cache.assert_invariants();
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, frames as u64, "{policy:?}: a full cache stays full");
        assert_eq!(
            stats.inserts,
            stats.admitted + stats.replaced + stats.rejected + stats.conflicts
        );
        assert_eq!(stats.admitted - stats.evictions, stats.entries);
    }
}

#[test]
fn purge_removes_all_and_only_the_tenants_entries() {
    let a = |block| key(0xa, block);
    let b = |block| key(0xb, block);
    check(
        16,
        &[
            insert(a(1), 0x10, MAX, 1),
            insert(a(2), 0x10, 0x20, 2),
            insert(a(2), 0x20, MAX, 3),
            insert(b(1), 0x10, MAX, 4),
            Op::Purge { tenant: 0xa, expect: 3 },
            get(a(1), 0x10, None),
            get(a(2), 0x10, None),
            get(a(2), 0x20, None),
            get(b(1), 0x10, Some(4)),
            Op::Purge { tenant: 0xa, expect: 0 },
            Op::Purge { tenant: 0xc, expect: 0 },
            insert(a(1), 0x30, MAX, 5),
            get(a(1), 0x30, Some(5)),
        ],
    );
    // Purged frames hold no plaintext.
    let mut cache = BufferCache::new(4, PolicyKind::S3Fifo);
    cache.insert(&a(1), Lsn(0x10), Lsn::MAX, &page(0xee));
    cache.insert(&b(1), Lsn(0x10), Lsn::MAX, &page(0xbb));
    assert_eq!(cache.purge_tenant(TenantId::from_u128(0xa)), 1);
    let nonzero: Vec<usize> = (0..4).filter(|&f| cache.frames[f].iter().any(|&x| x != 0)).collect();
    assert_eq!(nonzero.len(), 1);
    assert_eq!(cache.frames[nonzero[0]][0], 0xbb);
    let a_stats = cache.tenant_stats(TenantId::from_u128(0xa));
    assert_eq!((a_stats.entries, a_stats.bytes_used, a_stats.purged), (0, 0, 1));
    assert_eq!(cache.tenant_stats(TenantId::from_u128(0xb)).entries, 1);
}

#[test]
fn tenant_stats_count_each_tenant_apart() {
    let mut cache = BufferCache::new(2, PolicyKind::Lru);
    let (a, b) = (key(0xa, 1), key(0xb, 1));
    assert!(cache.get(&a, Lsn(0x10)).is_none());
    cache.insert(&a, Lsn(0x10), Lsn::MAX, &page(1));
    assert!(cache.get(&a, Lsn(0x10)).is_some());
    assert!(cache.get(&a, Lsn(0x11)).is_some());
    cache.insert(&b, Lsn(0x10), Lsn::MAX, &page(2));
    cache.insert(&key(0xb, 2), Lsn(0x10), Lsn::MAX, &page(3));
    let sa = cache.tenant_stats(a.tenant);
    let sb = cache.tenant_stats(b.tenant);
    assert_eq!((sa.hits, sa.misses, sa.inserts, sa.evictions, sa.entries), (2, 1, 1, 1, 0));
    assert_eq!((sb.hits, sb.misses, sb.inserts, sb.evictions, sb.entries), (0, 0, 2, 0, 2));
    assert_eq!(sb.bytes_used, 2 * PAGE_SIZE as u64);
    assert_eq!(sa.hit_ratio(), 2.0 / 3.0);
    assert_eq!(cache.tenant_stats(TenantId::from_u128(0xc)), CacheStats::default());
    let total = cache.stats();
    assert_eq!((total.hits, total.misses, total.inserts, total.evictions), (2, 1, 3, 1));
}

#[test]
fn tenants_beyond_the_table_share_the_overflow_row() {
    let mut cache = BufferCache::new(4, PolicyKind::S3Fifo);
    for tenant in 0..TENANT_ROWS_MAX as u128 + 10 {
        assert!(cache.get(&key(tenant + 1, 1), Lsn(1)).is_none());
    }
    assert_eq!(cache.tenant_stats(TenantId::from_u128(1)).misses, 1);
    assert_eq!(cache.tenant_stats(TenantId::from_u128(TENANT_ROWS_MAX as u128)).misses, 1);
    let late = TenantId::from_u128(TENANT_ROWS_MAX as u128 + 1);
    assert_eq!(cache.tenant_stats(late), CacheStats::default());
    assert_eq!(cache.overflow_tenant_stats().misses, 10);
    // Entries of overflow tenants are accounted and released through the same row.
    cache.insert(&key(TENANT_ROWS_MAX as u128 + 5, 1), Lsn(1), Lsn::MAX, &page(1));
    assert_eq!(cache.overflow_tenant_stats().entries, 1);
    assert_eq!(cache.purge_tenant(TenantId::from_u128(TENANT_ROWS_MAX as u128 + 5)), 1);
    assert_eq!(cache.overflow_tenant_stats().entries, 0);
    cache.assert_invariants();
}

/// Hot pages read over and over, then one long scan of pages read once, then the hot pages
/// again: the hit ratio of the final phase shows what the scan flushed.
fn hot_hits_after_scan(policy: PolicyKind) -> u64 {
    let frames = 100;
    let mut cache = BufferCache::new(frames, policy);
    let read = |cache: &mut BufferCache, k: CacheKey| {
        if cache.get(&k, Lsn(0x10)).is_none() {
            cache.insert(&k, Lsn(0x10), Lsn::MAX, &page(1));
        }
    };
    for _ in 0..5 {
        for block in 0..50 {
            read(&mut cache, key(1, block));
        }
    }
    for block in 1000..1000 + 10 * frames as u32 {
        read(&mut cache, key(1, block));
    }
    let before = cache.stats().hits;
    for block in 0..50 {
        read(&mut cache, key(1, block));
    }
    cache.assert_invariants();
    cache.stats().hits - before
}

#[test]
fn a_one_off_scan_does_not_flush_the_hot_set() {
    assert_eq!(hot_hits_after_scan(PolicyKind::S3Fifo), 50);
    assert_eq!(hot_hits_after_scan(PolicyKind::Sieve), 50);
    assert_eq!(hot_hits_after_scan(PolicyKind::Lru), 0);
}

#[test]
fn metadata_stays_within_the_per_frame_bound() {
    for frames in [1, 7, 100, 1000, 4097] {
        for policy in PolicyKind::ALL {
            let cache = BufferCache::new(frames, policy);
            let tenants = TenantTable::new().heap_bytes();
            let per_frame = (cache.overhead_bytes() - tenants).div_ceil(frames);
            // Tiny caches round their tables up to a minimum size.
            if frames >= 100 {
                assert!(
                    per_frame <= OVERHEAD_BYTES_PER_FRAME_MAX,
                    "{frames} {policy:?}: {per_frame}"
                );
            }
        }
    }
    assert_eq!(BufferCache::frames_for_budget(0), 1);
    let frames = BufferCache::frames_for_budget(64 << 20);
    assert!(frames * (PAGE_SIZE + OVERHEAD_BYTES_PER_FRAME_MAX) <= 64 << 20);
}

#[test]
fn frames_are_aligned_for_direct_io() {
    let cache = BufferCache::new(3, PolicyKind::S3Fifo);
    for frame in cache.frames.iter() {
        assert_eq!(frame.as_ptr() as usize % FRAME_ALIGN, 0);
    }
}

// ---- property test against a model ----

/// The model: exactly what the cache holds, `(key, valid_from) → (valid_to, fill)`.
type Model = BTreeMap<(KeyOrd, u64), (u64, u8)>;

/// `CacheKey` is not `Ord`; the model orders by (tenant, block), the only fields tests vary.
type KeyOrd = (u128, u32);

fn ord(key: &CacheKey) -> KeyOrd {
    (key.tenant.as_u128(), key.page.block.0)
}

/// The cache's live entries, as a model.
fn contents(cache: &BufferCache) -> Model {
    let mut model = Model::new();
    for (e, entry) in cache.entries.iter().enumerate() {
        if entry.live {
            let fill = cache.frames[e][0];
            model.insert((ord(&entry.key), entry.valid_from.0), (entry.valid_to.0, fill));
        }
    }
    model
}

fn overlapping(model: &Model, k: KeyOrd, from: u64, to: u64) -> Vec<(KeyOrd, u64)> {
    model
        .range((k, 0)..=(k, u64::MAX))
        .filter(|(&(_, f), &(t, _))| f < to && from < t)
        .map(|(&id, _)| id)
        .collect()
}

#[derive(Clone, Debug)]
enum ModelOp {
    Insert { tenant: u128, block: u32, from: u64, len: u64, current: bool, fill: u8 },
    Close { tenant: u128, block: u32, lsn: u64 },
    Get { tenant: u128, block: u32, lsn: u64 },
    Purge { tenant: u128 },
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    let tenant = 1u128..=2;
    let block = 0u32..3;
    prop_oneof![
        5 => (tenant.clone(), block.clone(), 1u64..40, 1u64..12, any::<bool>(), any::<u8>())
            .prop_map(|(tenant, block, from, len, current, fill)| {
                ModelOp::Insert { tenant, block, from, len, current, fill }
            }),
        2 => (tenant.clone(), block.clone(), 0u64..45)
            .prop_map(|(tenant, block, lsn)| ModelOp::Close { tenant, block, lsn }),
        5 => (tenant.clone(), block, 0u64..45)
            .prop_map(|(tenant, block, lsn)| ModelOp::Get { tenant, block, lsn }),
        1 => tenant.prop_map(|tenant| ModelOp::Purge { tenant }),
    ]
}

/// Applies one op to the cache and checks it against the model of what the cache held.
fn step(cache: &mut BufferCache, op: &ModelOp) -> Result<(), TestCaseError> {
    let before = contents(cache);
    let stats_before = cache.stats();
    let mut expected = before.clone();
    match *op {
        ModelOp::Insert { tenant, block, from, len, current, fill } => {
            let k = key(tenant, block);
            let to = if current { u64::MAX } else { from + len };
            cache.insert(&k, Lsn(from), Lsn(to), &page(fill));
            let after = contents(cache);
            let stats = cache.stats();
            if let Some(&(old_to, _)) = before.get(&(ord(&k), from)) {
                expected.insert((ord(&k), from), (old_to.min(to), fill));
                prop_assert_eq!(after, expected);
                return Ok(());
            }
            let overlaps = overlapping(&before, ord(&k), from, to);
            if !overlaps.is_empty() {
                for id in overlaps {
                    expected.remove(&id);
                }
                prop_assert_eq!(after, expected);
                prop_assert_eq!(stats.conflicts, stats_before.conflicts + 1);
                return Ok(());
            }
            if stats.rejected > stats_before.rejected {
                prop_assert_eq!(after, expected);
                prop_assert!(before.len() == cache.frames(), "rejected with free frames");
                return Ok(());
            }
            expected.insert((ord(&k), from), (to, fill));
            prop_assert_eq!(after.get(&(ord(&k), from)), Some(&(to, fill)));
            prop_assert!(after.iter().all(|(id, v)| expected.get(id) == Some(v)));
            let evicted = (expected.len() - after.len()) as u64;
            prop_assert_eq!(evicted, stats.evictions - stats_before.evictions);
            prop_assert!(evicted <= 1);
            prop_assert!(after.len() <= cache.frames());
            if before.len() < cache.frames() {
                // With a free frame only the per-key version bound evicts.
                let versions = before.range((ord(&k), 0)..=(ord(&k), u64::MAX)).count();
                prop_assert_eq!(evicted, u64::from(versions >= VERSIONS_PER_KEY_MAX));
            }
        }
        ModelOp::Close { tenant, block, lsn } => {
            let k = key(tenant, block);
            cache.close_validity(&k, Lsn(lsn));
            for (&(kk, from), value) in before.range((ord(&k), 0)..=(ord(&k), u64::MAX)) {
                if from >= lsn {
                    expected.remove(&(kk, from));
                } else if value.0 > lsn {
                    expected.insert((kk, from), (lsn, value.1));
                }
            }
            prop_assert_eq!(contents(cache), expected);
        }
        ModelOp::Get { tenant, block, lsn } => {
            let k = key(tenant, block);
            let want = before
                .range((ord(&k), 0)..=(ord(&k), lsn))
                .next_back()
                .filter(|(_, &(to, _))| lsn < to)
                .map(|(_, &(_, fill))| fill);
            let got = cache.get(&k, Lsn(lsn)).map(|p| p[0]);
            prop_assert_eq!(got, want);
            prop_assert_eq!(contents(cache), expected);
        }
        ModelOp::Purge { tenant } => {
            let purged = cache.purge_tenant(TenantId::from_u128(tenant));
            expected.retain(|&((t, _), _), _| t != tenant);
            prop_assert_eq!(purged, before.len() - expected.len());
            prop_assert_eq!(contents(cache), expected);
        }
    }
    Ok(())
}

fn policy_kind() -> impl Strategy<Value = PolicyKind> {
    prop::sample::select(PolicyKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cache_matches_model(
        frames in 1usize..6,
        policy in policy_kind(),
        ops in prop::collection::vec(model_op(), 1..120),
    ) {
        let mut cache = BufferCache::new(frames, policy);
        for op in &ops {
            step(&mut cache, op)?;
            cache.assert_invariants();
        }
    }

    /// The server's view: records arrive in LSN order, each closing the cached version; reads
    /// at any LSN insert what they rebuilt on a miss. No read ever sees a stale version.
    #[test]
    fn reads_never_see_a_stale_version(
        frames in 1usize..8,
        policy in policy_kind(),
        ops in prop::collection::vec((any::<bool>(), 0u32..4, 0u64..64), 1..300),
    ) {
        let mut cache = BufferCache::new(frames, policy);
        // Per block, the LSNs of its records (every page starts with a record at LSN 1).
        let mut records: Vec<Vec<u64>> = vec![vec![1]; 4];
        let mut last_lsn = 1;
        let content = |block: u32, record: u64| (block as u64 * 31 + record) as u8;
        for (is_record, block, back) in ops {
            let k = key(1, block);
            if is_record {
                last_lsn += 1;
                records[block as usize].push(last_lsn);
                cache.close_validity(&k, Lsn(last_lsn));
                continue;
            }
            let lsn = last_lsn.saturating_sub(back).max(1);
            let history = &records[block as usize];
            let at = history.partition_point(|&r| r <= lsn) - 1;
            let want = content(block, history[at]);
            match cache.get(&k, Lsn(lsn)) {
                Some(bytes) => prop_assert_eq!(bytes[0], want),
                None => {
                    let to = history.get(at + 1).copied().unwrap_or(u64::MAX);
                    cache.insert(&k, Lsn(history[at]), Lsn(to), &page(want));
                }
            }
        }
        cache.assert_invariants();
    }
}

/// A `FrameRef` resolves to the bytes `get` returns, and stops resolving once any frame may
/// have changed: an insert of another key (which may evict and refill it), a close, a purge.
#[test]
fn frame_refs_resolve_only_until_a_frame_changes() {
    for policy in PolicyKind::ALL {
        let mut cache = BufferCache::new(2, policy);
        cache.insert(&key(1, 0), Lsn(0x10), Lsn::MAX, &page(3));
        cache.insert(&key(1, 1), Lsn(0x10), Lsn::MAX, &page(4));
        let stats = cache.stats();
        let frame = cache.get_ref(&key(1, 0), Lsn(0x20)).expect("cached");
        assert_eq!(cache.frame(frame), Some(&page(3)), "{policy:?}");
        assert_eq!(cache.stats().hits, stats.hits + 1, "get_ref counts a hit as get does");
        assert_eq!(cache.get_ref(&key(1, 9), Lsn(0x20)), None);
        assert_eq!(cache.stats().misses, stats.misses + 1, "and a miss");
        let other = cache.get_ref(&key(1, 1), Lsn(0x20)).expect("cached");
        assert_eq!(cache.frame(frame), Some(&page(3)), "{policy:?}: hits change no frame");
        cache.insert(&key(1, 2), Lsn(0x10), Lsn::MAX, &page(5));
        assert_eq!(cache.frame(frame), None, "{policy:?}: after an insert");
        assert_eq!(cache.frame(other), None, "{policy:?}: after an insert");
        for change in 0..2 {
            let Some(frame) = cache.get_ref(&key(1, 1), Lsn(0x20)) else { continue };
            match change {
                0 => cache.close_validity(&key(1, 7), Lsn(0x30)),
                _ => {
                    cache.purge_tenant(TenantId::from_u128(2));
                }
            }
            // Closing a key with nothing cached and purging a tenant with nothing cached
            // change no frame.
            assert_eq!(cache.frame(frame), Some(&page(4)), "{policy:?} change {change}");
            // Drops the version (a record at or below the version's start would) and with it
            // the frame's claim to these bytes.
            cache.close_validity(&key(1, 1), Lsn(0x10));
            assert_eq!(cache.frame(frame), None, "{policy:?}: after dropping its version");
            cache.insert(&key(1, 1), Lsn(0x10), Lsn::MAX, &page(4));
        }
    }
}
