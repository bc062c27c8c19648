//! The buffer cache's hot path allocates nothing once built (STYLE S24, S29): hits, misses,
//! inserts that evict, replacements, closes and purges all work in preallocated memory.

use crate::alloc_count;
use cache::{BufferCache, CacheKey, PolicyKind};
use std::hint::black_box;
use wal::{BlockNumber, Fork, Lsn, PageKey, RelTag, TenantId, TimelineId, PAGE_SIZE};

fn key(tenant: u128, block: u32) -> CacheKey {
    CacheKey {
        tenant: TenantId::from_u128(tenant),
        timeline: TimelineId::from_u128(0x55),
        page: PageKey {
            rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16403, fork: Fork::Main },
            block: BlockNumber(block),
        },
    }
}

const FRAMES: usize = 64;

/// A cache of `FRAMES` frames holding blocks `0..FRAMES` of tenant 1, each read once.
fn warm(policy: PolicyKind) -> BufferCache {
    let mut cache = BufferCache::new(FRAMES, policy);
    let page = [7u8; PAGE_SIZE];
    for block in 0..FRAMES as u32 {
        cache.insert(&key(1, block), Lsn(0x10), Lsn::MAX, &page);
        assert!(cache.get(&key(1, block), Lsn(0x10)).is_some());
    }
    cache
}

#[test]
fn frame_refs_allocate_nothing_after_warmup() {
    for policy in PolicyKind::ALL {
        let mut cache = warm(policy);
        let (allocations, hits) = alloc_count::during(|| {
            let mut hits = 0;
            for block in 0..FRAMES as u32 {
                let frame = cache.get_ref(&key(1, block), Lsn(0x10)).expect("warm");
                let page = cache.frame(frame).expect("no frame changed");
                hits += u64::from(black_box(page[100]) == 7);
            }
            hits
        });
        assert_eq!(hits, FRAMES as u64, "{policy:?}: every read hits");
        assert_eq!(allocations, 0, "{policy:?}: get_ref allocated");
    }
}

#[test]
fn get_hits_allocate_nothing_after_warmup() {
    for policy in PolicyKind::ALL {
        let mut cache = warm(policy);
        let (allocations, hits) = alloc_count::during(|| {
            let mut hits = 0;
            for round in 0..10u64 {
                for block in 0..FRAMES as u32 {
                    if let Some(page) = cache.get(&key(1, block), Lsn(0x10 + round)) {
                        hits += u64::from(black_box(page[100]) == 7);
                    }
                }
            }
            hits
        });
        assert_eq!(hits, 10 * FRAMES as u64, "{policy:?}: every read hits");
        assert_eq!(allocations, 0, "{policy:?}: get allocated");
    }
}

#[test]
fn inserts_and_misses_allocate_nothing_after_construction() {
    for policy in PolicyKind::ALL {
        let mut cache = BufferCache::new(FRAMES, policy);
        let page = [3u8; PAGE_SIZE];
        let (allocations, ()) = alloc_count::during(|| {
            // Misses, and inserts far beyond the frames: every policy evicts, and tenants get
            // their counter rows.
            for block in 0..20 * FRAMES as u32 {
                let k = key(u128::from(block % 5), block % (4 * FRAMES as u32));
                if cache.get(&k, Lsn(0x20)).is_none() {
                    cache.insert(&k, Lsn(0x10), Lsn::MAX, &page);
                }
            }
            // New versions (close, then insert), replacements, conflicts and a purge.
            for block in 0..FRAMES as u32 {
                let k = key(1, block);
                cache.close_validity(&k, Lsn(0x30));
                cache.insert(&k, Lsn(0x30), Lsn::MAX, &page);
                cache.insert(&k, Lsn(0x30), Lsn(0x40), &page);
                cache.insert(&k, Lsn(0x20), Lsn::MAX, &page);
            }
            black_box(cache.purge_tenant(TenantId::from_u128(2)));
        });
        assert_eq!(allocations, 0, "{policy:?}: the write path allocated");
        let stats = cache.stats();
        assert!(stats.evictions > 0, "{policy:?}: the test must exercise eviction");
        assert!(stats.entries <= FRAMES as u64);
    }
}

#[test]
fn the_counter_sees_allocations() {
    let (allocations, vec) = alloc_count::during(|| black_box(vec![1u8; 100]));
    drop(vec);
    assert!(allocations >= 1);
}
