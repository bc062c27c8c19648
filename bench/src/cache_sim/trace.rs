//! Synthetic page-access traces for the buffer cache study, each a deterministic function of
//! its seed.
//!
//! A trace is a sequence of page reads over a data set of `pages` pages (the denominator of the
//! cache sizes); some traces also touch pages outside it that are read only once (pgbench's
//! history tail, scans), as real ones do.
//!
//! | trace        | accesses                                                                 |
//! |--------------|--------------------------------------------------------------------------|
//! | `uniform`    | uniform over the data set                                                |
//! | `zipf-0.9`   | zipfian, θ = 0.9, ranks scattered over the data set (as `getpage-zipf`)  |
//! | `zipf-1.1`   | the same with θ = 1.1                                                    |
//! | `pgbench`    | tpcb-like transactions: per transaction the page of a uniform account, of a uniform teller, of a uniform branch, then the history tail page; scale = pages / 1,640 |
//! | `zipf-scan`  | 80 % `zipf-0.9`, 20 % long sequential scans (10 % of the data set each) over a relation of cold pages, never re-read |
//! | `zipf-shift` | `zipf-0.9` whose hot set is replaced: every 50,000 reads the page of each rank moves by 10 % of the data set (abrupt change) |
//! | `zipf-drift` | `zipf-0.9` whose popularity drifts: every 10,000 reads each rank moves up by 1 % of the data set, and the hottest 1 % become the coldest (new data heats, old cools) |

use crate::layout::Table;
use crate::rng::Rng;
use crate::zipf::Zipf;
use wal::{BlockNumber, Fork, PageKey, RelTag};

/// Relation of the uniform and zipfian data sets.
const DATA_REL: u32 = 20_000;
/// Relation the scans read, disjoint from the data set.
const SCAN_REL: u32 = 20_001;

/// Share of `zipf-scan` accesses that belong to a scan, percent.
const SCAN_PERCENT: u64 = 20;
/// Length of one scan, in percent of the data set.
const SCAN_LENGTH_PERCENT: u64 = 10;

/// `zipf-shift`: reads between two moves of the hot set, and the move in percent of the data.
const SHIFT_EVERY_READS: u64 = 50_000;
const SHIFT_PERCENT: u64 = 10;
/// `zipf-drift`: reads between two rank shifts, and the shift in percent of the data.
const DRIFT_EVERY_READS: u64 = 10_000;
const DRIFT_PERCENT: u64 = 1;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum TraceKind {
    Uniform,
    Zipf(f64),
    Pgbench,
    ZipfScan,
    ZipfShift,
    ZipfDrift,
}

impl TraceKind {
    pub const ALL: [TraceKind; 7] = [
        TraceKind::Uniform,
        TraceKind::Zipf(0.9),
        TraceKind::Zipf(1.1),
        TraceKind::Pgbench,
        TraceKind::ZipfScan,
        TraceKind::ZipfShift,
        TraceKind::ZipfDrift,
    ];

    pub fn name(self) -> String {
        match self {
            TraceKind::Uniform => "uniform".into(),
            TraceKind::Zipf(theta) => format!("zipf-{theta}"),
            TraceKind::Pgbench => "pgbench".into(),
            TraceKind::ZipfScan => "zipf-scan".into(),
            TraceKind::ZipfShift => "zipf-shift".into(),
            TraceKind::ZipfDrift => "zipf-drift".into(),
        }
    }
}

/// A stream of page reads.
pub struct Trace {
    kind: TraceKind,
    rng: Rng,
    pages: u64,
    zipf: Option<Zipf>,
    /// pgbench: scale, position in the current transaction, history rows so far.
    scale: u64,
    tx_step: u8,
    history_rows: u64,
    /// zipf-scan: next block of the current scan and how many remain; next unread block.
    scan_next: u64,
    scan_left: u64,
    /// zipf-shift and zipf-drift: reads so far.
    reads: u64,
}

impl Trace {
    pub fn new(kind: TraceKind, pages: u64, seed: u64) -> Trace {
        let zipf = match kind {
            TraceKind::Zipf(theta) => Some(Zipf::new(pages, theta)),
            TraceKind::ZipfScan | TraceKind::ZipfShift | TraceKind::ZipfDrift => {
                Some(Zipf::new(pages, 0.9))
            }
            TraceKind::Uniform | TraceKind::Pgbench => None,
        };
        Trace {
            kind,
            rng: Rng::new(seed),
            pages,
            zipf,
            scale: (pages / Table::Accounts.pages(1)).max(1),
            tx_step: 0,
            history_rows: 0,
            scan_next: 0,
            scan_left: 0,
            reads: 0,
        }
    }

    /// The next page read.
    pub fn next_page(&mut self) -> PageKey {
        match self.kind {
            TraceKind::Uniform => data_page(self.rng.below(self.pages)),
            TraceKind::Zipf(_) => data_page(self.zipf_index()),
            TraceKind::Pgbench => self.pgbench_page(),
            TraceKind::ZipfScan => {
                if self.scan_left > 0 || self.rng.below(100) < SCAN_PERCENT {
                    self.scan_page()
                } else {
                    data_page(self.zipf_index())
                }
            }
            TraceKind::ZipfShift => {
                let shift = self.reads / SHIFT_EVERY_READS * (self.pages * SHIFT_PERCENT / 100);
                self.reads += 1;
                data_page((self.zipf_index() + shift) % self.pages)
            }
            TraceKind::ZipfDrift => {
                let drift = self.reads / DRIFT_EVERY_READS * (self.pages * DRIFT_PERCENT / 100);
                self.reads += 1;
                let zipf = self.zipf.as_ref().expect("zipfian trace has a sampler");
                let rank = zipf.rank(&mut self.rng);
                data_page(zipf.index_of_rank((rank - 1 + drift) % self.pages + 1))
            }
        }
    }

    fn zipf_index(&mut self) -> u64 {
        self.zipf.as_ref().expect("zipfian trace has a sampler").index(&mut self.rng)
    }

    fn pgbench_page(&mut self) -> PageKey {
        let step = self.tx_step;
        self.tx_step = (self.tx_step + 1) % 4;
        let (table, id) = match step {
            0 => (Table::Accounts, 1 + self.rng.below(Table::Accounts.rows(self.scale))),
            1 => (Table::Tellers, 1 + self.rng.below(Table::Tellers.rows(self.scale))),
            2 => (Table::Branches, 1 + self.rng.below(Table::Branches.rows(self.scale))),
            _ => {
                self.history_rows += 1;
                (Table::History, self.history_rows)
            }
        };
        table.locate(id).0
    }

    /// Scans run one at a time; while one runs, each access is its next page with the scan
    /// share's probability (so scans interleave with the zipfian reads as concurrent sessions
    /// would), else a zipfian read.
    fn scan_page(&mut self) -> PageKey {
        if self.scan_left == 0 {
            self.scan_left = (self.pages * SCAN_LENGTH_PERCENT / 100).max(1);
        } else if self.rng.below(100) >= SCAN_PERCENT {
            return data_page(self.zipf_index());
        }
        let block = self.scan_next;
        self.scan_next += 1;
        self.scan_left -= 1;
        PageKey { rel: rel(SCAN_REL), block: BlockNumber(block as u32) }
    }
}

fn rel(rel_number: u32) -> RelTag {
    RelTag { spc_oid: 1663, db_oid: 5, rel_number, fork: Fork::Main }
}

fn data_page(index: u64) -> PageKey {
    PageKey { rel: rel(DATA_REL), block: BlockNumber(index as u32) }
}
