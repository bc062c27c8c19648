//! Per-tenant counters of the buffer cache, in a table of fixed size.
//!
//! A tenant gets a row the first time it touches the cache (a miss or an insert) and keeps it
//! for the life of the cache, so its counters only grow (what Prometheus counters need);
//! `purge_tenant` empties its entries but keeps its row. Once [`TENANT_ROWS_MAX`] tenants have
//! rows, any further tenant is counted in one shared overflow row, as the server's metrics
//! count tenants beyond `max_tenant_series` under `tenant="other"`. Rows are found through a
//! small open-addressing table keyed by the tenant id; nothing allocates after construction.

use super::CacheStats;
use wal::TenantId;

/// Tenants with a row of their own, per cache (per core).
pub const TENANT_ROWS_MAX: usize = 1024;

/// Row of the tenants beyond [`TENANT_ROWS_MAX`].
pub(crate) const OVERFLOW_ROW: u16 = TENANT_ROWS_MAX as u16;

const LOOKUP_SLOTS: usize = 2 * TENANT_ROWS_MAX;
const EMPTY: u16 = u16::MAX;

const _: () = assert!(TENANT_ROWS_MAX < EMPTY as usize);
const _: () = assert!(LOOKUP_SLOTS.is_power_of_two());

pub(crate) struct TenantTable {
    ids: Vec<TenantId>,
    /// One row per id, plus the overflow row at `OVERFLOW_ROW`.
    rows: Vec<CacheStats>,
    /// Open addressing (linear probing) over `ids`; never deleted from.
    lookup: Vec<u16>,
}

impl TenantTable {
    pub(crate) fn new() -> TenantTable {
        TenantTable {
            ids: Vec::with_capacity(TENANT_ROWS_MAX),
            rows: vec![CacheStats::default(); TENANT_ROWS_MAX + 1],
            lookup: vec![EMPTY; LOOKUP_SLOTS],
        }
    }

    /// The row of `tenant`, creating it if there is room, else the overflow row.
    pub(crate) fn row_of(&mut self, tenant: TenantId) -> u16 {
        let mut at = home(tenant);
        loop {
            let row = self.lookup[at];
            if row == EMPTY {
                break;
            }
            if self.ids[row as usize] == tenant {
                return row;
            }
            at = (at + 1) & (LOOKUP_SLOTS - 1);
        }
        if self.ids.len() == TENANT_ROWS_MAX {
            return OVERFLOW_ROW;
        }
        let row = self.ids.len() as u16;
        // Within the capacity reserved in `new`: no allocation.
        self.ids.push(tenant);
        self.lookup[at] = row;
        row
    }

    /// The row of `tenant` if it has one of its own.
    pub(crate) fn find(&self, tenant: TenantId) -> Option<u16> {
        let mut at = home(tenant);
        loop {
            let row = self.lookup[at];
            if row == EMPTY {
                return None;
            }
            if self.ids[row as usize] == tenant {
                return Some(row);
            }
            at = (at + 1) & (LOOKUP_SLOTS - 1);
        }
    }

    pub(crate) fn row(&self, row: u16) -> &CacheStats {
        &self.rows[row as usize]
    }

    pub(crate) fn row_mut(&mut self, row: u16) -> &mut CacheStats {
        &mut self.rows[row as usize]
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.ids.capacity() * size_of::<TenantId>()
            + self.rows.capacity() * size_of::<CacheStats>()
            + self.lookup.capacity() * size_of::<u16>()
    }
}

/// Tenant ids are random 128-bit values; folding and mixing their halves spreads them well
/// enough for a table this small.
fn home(tenant: TenantId) -> usize {
    let id = tenant.as_u128();
    let folded = (id as u64) ^ ((id >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & (LOOKUP_SLOTS - 1)
}
