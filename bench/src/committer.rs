//! Commits of the writing workloads: one committer thread and one writer connection per tenant.
//!
//! The server requires LSNs to increase strictly per timeline across all its writers, and one
//! connection processes its `AppendWal`s one at a time (each waits for its group commit). If
//! clients allocated LSNs themselves and sent on several connections, a client holding LSN 11
//! could reach the server before the one holding 10, and 10 would be refused `LsnOutOfOrder`.
//! So clients never touch LSNs: they queue their transaction here and wait. The committer
//! takes everything queued (up to [`MAX_TX_PER_APPEND`]), assigns LSNs in queue order, sends
//! one `AppendWal`, and when the durable acknowledgement arrives, that is every queued
//! transaction's commit. Send order equals LSN order by construction, and transactions that
//! arrive while a commit is in flight form the next group — the group commit a PostgreSQL
//! primary's single WAL stream gives.
//!
//! A refused append (`SlowDown`) is retried after a pause with the same records (the server
//! accepts all of an append or none of it). Any other refusal fails every transaction of the
//! group; `Fenced` or a broken connection stops the run.

use crate::layout::{
    history_insert_delta, update_delta, Table, TxRows, ACCOUNTS_PER_SCALE, HISTORY_ROWS_PER_PAGE,
    TELLERS_PER_SCALE,
};
use crate::stats::Recorder;
use anyhow::{bail, Context};
use server::client::Client;
use server::proto::Status;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wal::{Lsn, PageKey, Record, RecordBody};

/// Transactions per `AppendWal`: 4 records each stays under the 1,024-record limit.
pub const MAX_TX_PER_APPEND: usize = 200;
const SLOW_DOWN_PAUSE: Duration = Duration::from_millis(1);

/// A transaction waiting for its commit.
#[derive(Clone, Copy, Debug)]
pub struct CommitRequest {
    pub job: usize,
    pub client: usize,
    pub slot: usize,
    pub rows: TxRows,
    /// tpcb-like (account, teller, branch) rather than simple-update (account only).
    pub full: bool,
}

/// The queue clients put transactions in.
#[derive(Default)]
pub struct CommitQueue {
    pending: Mutex<Vec<CommitRequest>>,
    ready: Condvar,
}

impl CommitQueue {
    pub fn submit(&self, request: CommitRequest) {
        self.pending.lock().expect("commit queue lock").push(request);
        self.ready.notify_one();
    }
}

/// Where a job thread receives its commit results: a list and an eventfd its poll loop watches.
pub struct Completions {
    list: Mutex<Vec<(usize, usize, Option<Status>)>>,
    event: OwnedFd,
}

impl Completions {
    pub fn new() -> anyhow::Result<Completions> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("eventfd");
        }
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(Completions { list: Mutex::new(Vec::new()), event: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn fd(&self) -> i32 {
        self.event.as_raw_fd()
    }

    fn push(&self, done: impl Iterator<Item = (usize, usize, Option<Status>)>) {
        self.list.lock().expect("completion lock").extend(done);
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live u64 (an eventfd takes a host-order u64).
        unsafe { libc::write(self.event.as_raw_fd(), std::ptr::from_ref(&one).cast(), 8) };
    }

    /// Takes every result delivered so far: `(client, slot, error status if it failed)`.
    pub fn take(&self, into: &mut Vec<(usize, usize, Option<Status>)>) {
        let mut counter = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer; EAGAIN when nothing is pending.
        unsafe { libc::read(self.event.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
        into.append(&mut self.list.lock().expect("completion lock"));
    }
}

/// Assigns LSNs: each record's LSN is the previous one advanced by the record's size, as a WAL
/// position advances. Strictly increasing by construction.
#[derive(Clone, Copy, Debug)]
pub struct LsnAllocator {
    last: Lsn,
}

impl LsnAllocator {
    pub fn new(last: Lsn) -> LsnAllocator {
        LsnAllocator { last }
    }

    pub fn last(&self) -> Lsn {
        self.last
    }

    fn next(&mut self, record_size: usize) -> Lsn {
        let next = self.last.advanced_by(record_size as u64);
        assert!(next > self.last, "LSN allocation must increase");
        self.last = next;
        next
    }
}

/// Appends the records of `txs`, in order, to `out`: per transaction the account (then teller
/// and branch, if full) update deltas and a history insert into row `history_row`, which
/// advances.
pub fn build_records(
    txs: &[CommitRequest],
    lsns: &mut LsnAllocator,
    history_row: &mut u64,
    out: &mut Vec<Record>,
) {
    for tx in txs {
        let TxRows { aid, tid, bid, delta } = tx.rows;
        let mut updates = vec![(Table::Accounts, aid, (aid - 1) / ACCOUNTS_PER_SCALE + 1)];
        if tx.full {
            updates.push((Table::Tellers, tid, (tid - 1) / TELLERS_PER_SCALE + 1));
            updates.push((Table::Branches, bid, bid));
        }
        for (table, id, owner) in updates {
            let key = table.locate(id).0;
            let lsn = lsns.next(sized(key, update_delta(table, id, owner, delta, Lsn(0))));
            out.push(Record {
                lsn,
                key,
                body: RecordBody::Delta(update_delta(table, id, owner, delta, lsn)),
            });
        }
        let row = *history_row;
        *history_row += 1;
        let key = Table::History.locate(row + 1).0;
        let lsn = lsns.next(sized(key, history_insert_delta(row, aid, tid, delta, Lsn(0))));
        out.push(Record {
            lsn,
            key,
            body: RecordBody::Delta(history_insert_delta(row, aid, tid, delta, lsn)),
        });
    }
}

fn sized(key: PageKey, delta: wal::Delta) -> usize {
    Record { lsn: Lsn(1), key, body: RecordBody::Delta(delta) }.encoded_size()
}

/// Everything a committer thread needs.
pub struct Committer {
    pub client: Client,
    pub queue: Arc<CommitQueue>,
    pub jobs: Vec<Arc<Completions>>,
    /// Newest durable LSN, read by the job threads for `--lsn latest`.
    pub latest: Arc<AtomicU64>,
    pub lsns: LsnAllocator,
    pub history_row: u64,
    pub stop: Arc<AtomicBool>,
    pub clock: crate::run::IntervalClock,
}

impl Committer {
    /// The first history row after what is already in the relation, so a new run appends
    /// after the last (on a fresh page).
    pub fn first_history_row(client: &mut Client, at: Lsn) -> anyhow::Result<u64> {
        let nblocks = client
            .rel_size(Table::History.rel(), at)
            .context("reading the history relation's size (was `init` run against this server?)")?;
        Ok(u64::from(nblocks) * HISTORY_ROWS_PER_PAGE)
    }

    /// Commits until `stop` is set and the queue is empty.
    pub fn run(mut self) -> anyhow::Result<()> {
        let mut recorder = Recorder::default();
        let mut batch = Vec::with_capacity(MAX_TX_PER_APPEND);
        let mut records = Vec::with_capacity(MAX_TX_PER_APPEND * 4);
        loop {
            batch.clear();
            {
                let mut pending = self.queue.pending.lock().expect("commit queue lock");
                while pending.is_empty() {
                    self.clock.tick(&mut recorder);
                    if self.stop.load(Ordering::Acquire) {
                        drop(pending);
                        self.clock.finish(recorder);
                        return Ok(());
                    }
                    let wait = self.clock.until_next().min(Duration::from_millis(50));
                    pending =
                        self.queue.ready.wait_timeout(pending, wait).expect("commit queue lock").0;
                }
                let take = pending.len().min(MAX_TX_PER_APPEND);
                batch.extend(pending.drain(..take));
            }
            self.clock.tick(&mut recorder);
            records.clear();
            build_records(&batch, &mut self.lsns, &mut self.history_row, &mut records);
            let outcome = self.append(&records, &mut recorder)?;
            if outcome.is_none() {
                self.latest.store(self.lsns.last().0, Ordering::Release);
            }
            for (job, completions) in self.jobs.iter().enumerate() {
                let mut mine = batch.iter().filter(|tx| tx.job == job).peekable();
                if mine.peek().is_some() {
                    completions.push(mine.map(|tx| (tx.client, tx.slot, outcome)));
                }
            }
        }
    }

    /// Sends one append, retrying `SlowDown`; `None` when durable, else the refusal.
    fn append(
        &mut self,
        records: &[Record],
        recorder: &mut Recorder,
    ) -> anyhow::Result<Option<Status>> {
        loop {
            let sent = Instant::now();
            let response = match self.client.append_wal(records) {
                Ok(_) => {
                    recorder.record("append_wal", sent.elapsed());
                    return Ok(None);
                }
                Err(error) => error,
            };
            match response.status() {
                Some(Status::SlowDown) => {
                    recorder.error("SlowDown (retried)");
                    std::thread::sleep(SLOW_DOWN_PAUSE);
                }
                Some(Status::Fenced) => bail!("the bench's writer was fenced: {response}"),
                Some(status) => {
                    recorder.error(&format!("append_wal {status}"));
                    return Ok(Some(status));
                }
                None => return Err(response).context("AppendWal"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
