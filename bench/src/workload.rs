//! The built-in workloads: what one transaction reads and writes, and at which LSN it reads.
//!
//! | workload         | reads (GetPage, in order)        | writes at commit (one `AppendWal`)          |
//! |------------------|----------------------------------|---------------------------------------------|
//! | `tpcb-like`      | account, teller, branch page     | deltas of the 3 rows + a history insert     |
//! | `simple-update`  | account page                     | delta of the account row + a history insert |
//! | `select-only`    | account page                     | none                                        |
//! | `getpage-uniform`| one page, uniform over all pages | none                                        |
//! | `getpage-zipf`   | one page, zipfian (`--theta`)    | none                                        |
//!
//! Rows are chosen as pgbench chooses them (uniform `aid`, `tid`, `bid`); "all pages" are the
//! branches, tellers and accounts pages `init` loaded. Reads of one transaction are sent one
//! after another, as the statements of a pgbench transaction run one after another.

use crate::layout::{PageSpace, Table, TxRows};
use crate::rng::Rng;
use crate::zipf::Zipf;
use wal::{Lsn, PageKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    TpcbLike,
    SimpleUpdate,
    SelectOnly,
    GetpageUniform,
    GetpageZipf,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::TpcbLike => "tpcb-like",
            Workload::SimpleUpdate => "simple-update",
            Workload::SelectOnly => "select-only",
            Workload::GetpageUniform => "getpage-uniform",
            Workload::GetpageZipf => "getpage-zipf",
        }
    }

    /// Whether transactions commit WAL (and so need a committer per tenant).
    pub fn writes(self) -> bool {
        matches!(self, Workload::TpcbLike | Workload::SimpleUpdate)
    }
}

/// Which LSN reads ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LsnMode {
    /// The newest LSN the bench knows durable (as a primary reads).
    Latest,
    /// Uniform between the end of the initial load and the newest LSN (point-in-time reads,
    /// as a replica or a branch at an old LSN reads).
    RandomInWindow,
}

/// One transaction's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxPlan {
    pub rows: TxRows,
    pub reads: [PageKey; 3],
    pub read_count: u8,
    /// `Some(full)`: commits; `full` = tpcb-like (account, teller, branch), else account only.
    pub commit: Option<bool>,
}

/// Draws transactions for one job thread.
pub struct Chooser {
    workload: Workload,
    scale: u64,
    space: PageSpace,
    zipf: Option<Zipf>,
    pub rng: Rng,
}

impl Chooser {
    pub fn new(workload: Workload, scale: u64, theta: f64, seed: u64) -> Chooser {
        let space = PageSpace::new(scale);
        let zipf = (workload == Workload::GetpageZipf).then(|| Zipf::new(space.total(), theta));
        Chooser { workload, scale, space, zipf, rng: Rng::new(seed) }
    }

    pub fn plan(&mut self) -> TxPlan {
        let rows = TxRows::random(&mut self.rng, self.scale);
        let account = Table::Accounts.locate(rows.aid).0;
        let mut reads = [account; 3];
        let (read_count, commit) = match self.workload {
            Workload::TpcbLike => {
                reads[1] = Table::Tellers.locate(rows.tid).0;
                reads[2] = Table::Branches.locate(rows.bid).0;
                (3, Some(true))
            }
            Workload::SimpleUpdate => (1, Some(false)),
            Workload::SelectOnly => (1, None),
            Workload::GetpageUniform => {
                reads[0] = self.space.key(self.rng.below(self.space.total()));
                (1, None)
            }
            Workload::GetpageZipf => {
                let zipf = self.zipf.as_ref().expect("zipf sampler for getpage-zipf");
                reads[0] = self.space.key(zipf.index(&mut self.rng));
                (1, None)
            }
        };
        TxPlan { rows, reads, read_count, commit }
    }

    /// The LSN a read asks for, given the newest durable LSN and the start of the window.
    pub fn read_lsn(&mut self, mode: LsnMode, latest: Lsn, window_start: Lsn) -> Lsn {
        match mode {
            LsnMode::Latest => latest,
            LsnMode::RandomInWindow if latest > window_start => {
                Lsn(window_start.0 + self.rng.below(latest.0 - window_start.0 + 1))
            }
            LsnMode::RandomInWindow => latest,
        }
    }
}

#[cfg(test)]
mod tests;
