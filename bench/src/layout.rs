//! The pgbench-shaped database the bench loads and updates: which relations, how many rows and
//! pages, what their page images and update deltas look like.
//!
//! Rows per page follow what PostgreSQL's heap gives pgbench's tables with the default fill
//! factor (about 128-byte tuples, 61 accounts per page, so scale 1 = 100,000 accounts in 1,640
//! pages). Page bytes imitate a heap page only loosely: `pd_lsn` in bytes `0..8`, a 24-byte
//! header, then tuples packed from the end of the page. The server never interprets them; they
//! exist so images and deltas have realistic sizes.
//!
//! Relations (tablespace 1663, database 5, fork `main`) have fixed numbers, so a run needs only
//! the tenant and timeline ids from `init`:
//!
//! | relation | rel_number | rows                  | rows/page | tuple bytes |
//! |----------|------------|-----------------------|-----------|-------------|
//! | branches | 16401      | 1 per scale unit      | 61        | 128         |
//! | tellers  | 16402      | 10 per scale unit     | 61        | 128         |
//! | accounts | 16403      | 100,000 per scale unit| 61        | 128         |
//! | history  | 16404      | appended by updates   | 100       | 76          |

use crate::rng::Rng;
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, RelTag, PAGE_SIZE};

pub const SPC_OID: u32 = 1663;
pub const DB_OID: u32 = 5;
pub const ACCOUNTS_PER_SCALE: u64 = 100_000;
pub const TELLERS_PER_SCALE: u64 = 10;
pub const BRANCHES_PER_SCALE: u64 = 1;
pub const ROWS_PER_PAGE: u64 = 61;
pub const TUPLE_BYTES: usize = 128;
pub const HISTORY_ROWS_PER_PAGE: u64 = 100;
pub const HISTORY_TUPLE_BYTES: usize = 76;
const PAGE_HEADER_BYTES: usize = 24;

const _: () = assert!(PAGE_HEADER_BYTES + ROWS_PER_PAGE as usize * (TUPLE_BYTES + 4) <= PAGE_SIZE);
const _: () = assert!(
    PAGE_HEADER_BYTES + HISTORY_ROWS_PER_PAGE as usize * (HISTORY_TUPLE_BYTES + 4) <= PAGE_SIZE
);

/// One of pgbench's four tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Table {
    Branches,
    Tellers,
    Accounts,
    History,
}

impl Table {
    pub fn rel(self) -> RelTag {
        let rel_number = match self {
            Table::Branches => 16401,
            Table::Tellers => 16402,
            Table::Accounts => 16403,
            Table::History => 16404,
        };
        RelTag { spc_oid: SPC_OID, db_oid: DB_OID, rel_number, fork: Fork::Main }
    }

    /// Rows loaded by `init` at `scale` (history starts empty).
    pub fn rows(self, scale: u64) -> u64 {
        match self {
            Table::Branches => BRANCHES_PER_SCALE * scale,
            Table::Tellers => TELLERS_PER_SCALE * scale,
            Table::Accounts => ACCOUNTS_PER_SCALE * scale,
            Table::History => 0,
        }
    }

    /// Pages loaded by `init` at `scale`.
    pub fn pages(self, scale: u64) -> u64 {
        self.rows(scale).div_ceil(ROWS_PER_PAGE)
    }

    /// The page holding row `id` (1-based, as pgbench's aid/tid/bid) and the tuple's slot in it.
    pub fn locate(self, id: u64) -> (PageKey, usize) {
        debug_assert!(id >= 1);
        let per_page = if self == Table::History { HISTORY_ROWS_PER_PAGE } else { ROWS_PER_PAGE };
        let block = (id - 1) / per_page;
        let key = PageKey { rel: self.rel(), block: BlockNumber(block as u32) };
        (key, ((id - 1) % per_page) as usize)
    }
}

/// Tables whose pages `init` loads, in load order.
pub const LOADED_TABLES: [Table; 3] = [Table::Branches, Table::Tellers, Table::Accounts];

/// Every page `init` loads, numbered `0..total`: branches, then tellers, then accounts. The
/// page sets of `getpage-uniform` and `getpage-zipf`.
#[derive(Clone, Copy, Debug)]
pub struct PageSpace {
    scale: u64,
}

impl PageSpace {
    pub fn new(scale: u64) -> PageSpace {
        PageSpace { scale }
    }

    pub fn total(&self) -> u64 {
        LOADED_TABLES.iter().map(|t| t.pages(self.scale)).sum()
    }

    pub fn key(&self, mut index: u64) -> PageKey {
        for table in LOADED_TABLES {
            let pages = table.pages(self.scale);
            if index < pages {
                return PageKey { rel: table.rel(), block: BlockNumber(index as u32) };
            }
            index -= pages;
        }
        panic!("page index beyond the page space");
    }
}

fn tuple_offset(slot: usize, tuple_bytes: usize) -> usize {
    PAGE_SIZE - (slot + 1) * tuple_bytes
}

/// A row's tuple bytes: `id`, `bid`, `balance` (little-endian), then filler.
fn tuple(id: u64, bid: u64, balance: i64, out: &mut [u8]) {
    out.fill(b' ');
    out[0..4].copy_from_slice(&(id as u32).to_le_bytes());
    out[4..8].copy_from_slice(&(bid as u32).to_le_bytes());
    out[8..12].copy_from_slice(&(balance as i32).to_le_bytes());
}

/// The image `init` loads for `block` of `table` at `scale`.
pub fn initial_image(table: Table, block: u64, scale: u64, lsn: Lsn) -> Box<[u8; PAGE_SIZE]> {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    page[0..8].copy_from_slice(&lsn.0.to_le_bytes());
    let rows = table.rows(scale);
    let first = block * ROWS_PER_PAGE + 1;
    let last = (first + ROWS_PER_PAGE - 1).min(rows);
    let count = (last + 1 - first) as usize;
    let lower = PAGE_HEADER_BYTES + 4 * count;
    let upper = tuple_offset(count.saturating_sub(1), TUPLE_BYTES);
    page[12..14].copy_from_slice(&(lower as u16).to_le_bytes());
    page[14..16].copy_from_slice(&(upper as u16).to_le_bytes());
    for (slot, id) in (first..=last).enumerate() {
        let offset = tuple_offset(slot, TUPLE_BYTES);
        let pointer = PAGE_HEADER_BYTES + 4 * slot;
        page[pointer..pointer + 2].copy_from_slice(&(offset as u16).to_le_bytes());
        let bid = match table {
            Table::Branches => id,
            Table::Tellers => (id - 1) / TELLERS_PER_SCALE + 1,
            _ => (id - 1) / ACCOUNTS_PER_SCALE + 1,
        };
        tuple(id, bid, 0, &mut page[offset..offset + TUPLE_BYTES]);
    }
    page
}

/// The delta of an `UPDATE ... SET balance = balance + delta` of row `id`: the page's new
/// `pd_lsn` and the rewritten tuple (about 180 bytes encoded, near PostgreSQL's heap-update
/// record).
pub fn update_delta(table: Table, id: u64, bid: u64, delta: i64, lsn: Lsn) -> Delta {
    let (_, slot) = table.locate(id);
    let offset = tuple_offset(slot, TUPLE_BYTES);
    let mut bytes = [0u8; TUPLE_BYTES];
    tuple(id, bid, delta, &mut bytes);
    Delta::from_patches([(0u16, &lsn.0.to_le_bytes()[..]), (offset as u16, &bytes[..])])
        .expect("patches lie within the page")
}

/// The delta of a history `INSERT` into row slot `row` (0-based, global).
pub fn history_insert_delta(row: u64, aid: u64, tid: u64, delta: i64, lsn: Lsn) -> Delta {
    let slot = (row % HISTORY_ROWS_PER_PAGE) as usize;
    let offset = tuple_offset(slot, HISTORY_TUPLE_BYTES);
    let mut bytes = [0u8; HISTORY_TUPLE_BYTES];
    tuple(aid, tid, delta, &mut bytes);
    let pointer = (PAGE_HEADER_BYTES + 4 * slot) as u16;
    Delta::from_patches([
        (0u16, &lsn.0.to_le_bytes()[..]),
        (pointer, &(offset as u16).to_le_bytes()[..]),
        (offset as u16, &bytes[..]),
    ])
    .expect("patches lie within the page")
}

/// The rows one pgbench transaction touches, chosen as pgbench chooses them: `aid` uniform over
/// all accounts, `tid` over all tellers, `bid` over all branches, `delta` in `-5000..=5000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRows {
    pub aid: u64,
    pub tid: u64,
    pub bid: u64,
    pub delta: i64,
}

impl TxRows {
    pub fn random(rng: &mut Rng, scale: u64) -> TxRows {
        TxRows {
            aid: 1 + rng.below(Table::Accounts.rows(scale)),
            tid: 1 + rng.below(Table::Tellers.rows(scale)),
            bid: 1 + rng.below(Table::Branches.rows(scale)),
            delta: rng.between(-5000, 5000),
        }
    }
}

#[cfg(test)]
mod tests;
