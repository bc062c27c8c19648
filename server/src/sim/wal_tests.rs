//! Crash tests of the WAL on a [`SimDisk`]: the real `WalWriter` appends seeded batches (group
//! commits), the disk crashes at an I/O chosen by the case, and the real recovery path
//! (`timeline::open_wal`: list, read, `wal::recovery`, `WalWriter::open`) runs on what
//! survived. Checked after every recovery: every acknowledged batch is there, in order; no
//! batch is partly there; nothing follows a missing batch; a refused batch (an injected
//! `ENOSPC` or `EIO`) never comes back; the writer appends again; and a second crash, during
//! recovery or during the appends after it, recovers the same way.
//!
//! `SIM_SEED=<n>` runs one workload (with `SIM_CRASH_AT=<i>` one crash point of it, else every
//! one); `SIM_CASES=<n>` sets how many random cases run after the exhaustive ones.

use super::{install, Rng, SimDisk};
use crate::timeline::open_wal;
use crate::wal_io::{WalWriteError, WalWriter};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, TenantId};
use wal::{TimelineId, PAGE_SIZE};

const TENANT: TenantId = TenantId([7; 16]);
const TIMELINE: TimelineId = TimelineId([9; 16]);

/// One case: a workload seed; the I/O at which the first crash happens (`None`: a power cut
/// after the first round); the I/O that fails with an injected error (`None`: the workload's
/// own choice).
#[derive(Clone, Copy, Debug)]
struct Case {
    seed: u64,
    crash_at: Option<u64>,
    fault_at: Option<u64>,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIM_SEED={} SIM_CRASH_AT={}", self.seed, self.crash_at.unwrap_or(0))?;
        if let Some(at) = self.fault_at {
            write!(f, " SIM_FAULT_AT={at}")?;
        }
        Ok(())
    }
}

/// What happened to a batch handed to `write_batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Acked,
    /// `Rewound`: refused, rewound durably; must never be recovered.
    Refused,
    /// In flight when the disk crashed: recovered whole or not at all.
    InFlight,
}

struct Workload {
    segment_size: u64,
    /// Batches of the first round, then of the second.
    rounds: [Vec<Vec<Record>>; 2],
    /// One more batch appended after the last recovery.
    last: Vec<Record>,
    /// First round: one injected error `(I/O after the WAL opened, errno)`.
    fault: Option<(u64, i32)>,
    /// Crash during the first recovery, at this I/O of it.
    crash_in_recovery: Option<u64>,
    /// Second round: crash at this I/O after recovery.
    second_crash: u64,
}

fn workload(seed: u64) -> Workload {
    let mut rng = Rng::new(seed);
    let segment_size = [16u64, 32, 64][rng.below(3) as usize] * 1024;
    let mut lsn = 0x100u64;
    let mut batches = |rng: &mut Rng, count: u64| -> Vec<Vec<Record>> {
        (0..count)
            .map(|_| {
                let len = 1 + rng.below(6);
                (0..len).map(|_| record(rng, &mut lsn)).collect()
            })
            .collect()
    };
    let count = 3 + rng.below(6);
    let first = batches(&mut rng, count);
    let count = 1 + rng.below(5);
    let second = batches(&mut rng, count);
    let last = batches(&mut rng, 1).remove(0);
    let fault = rng.chance(1, 3).then(|| {
        let errno = if rng.chance(1, 2) { libc::ENOSPC } else { libc::EIO };
        (1 + rng.below(40), errno)
    });
    let crash_in_recovery = rng.chance(1, 3).then(|| 1 + rng.below(12));
    let second_crash = 1 + rng.below(40);
    Workload { segment_size, rounds: [first, second], last, fault, crash_in_recovery, second_crash }
}

fn record(rng: &mut Rng, lsn: &mut u64) -> Record {
    *lsn += 1 + rng.below(300);
    let key = PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main },
        block: BlockNumber(rng.below(8) as u32),
    };
    let body = if rng.chance(1, 8) {
        let mut page = Box::new([0u8; PAGE_SIZE]);
        page.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        RecordBody::Image(page)
    } else {
        let len = 1 + rng.below(1500) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let offset = rng.below((PAGE_SIZE - len) as u64) as u16;
        RecordBody::Delta(Delta::from_patches([(offset, &bytes[..])]).expect("patch fits"))
    };
    Record { lsn: Lsn(*lsn), key, body }
}

fn wal_dir() -> PathBuf {
    PathBuf::from("/sim/timeline/wal")
}

async fn recover(segment_size: u64) -> Result<(Vec<Record>, WalWriter), String> {
    open_wal(wal_dir(), TENANT, TIMELINE, segment_size, Lsn::INVALID, None).await
}

/// Appends `batches` in turn until the disk crashes.
async fn append(
    disk: &Rc<RefCell<SimDisk>>,
    writer: &mut WalWriter,
    batches: &[Vec<Record>],
) -> Result<Vec<Fate>, String> {
    let mut fates = Vec::new();
    for (index, batch) in batches.iter().enumerate() {
        match writer.write_batch(batch).await {
            Ok(()) => fates.push(Fate::Acked),
            Err(WalWriteError::Rewound(_)) if !disk.borrow().crashed() => fates.push(Fate::Refused),
            Err(error) => {
                if !disk.borrow().crashed() {
                    return Err(format!("batch {index}: one injected error was fatal: {error:?}"));
                }
                fates.push(Fate::InFlight);
                break;
            }
        }
    }
    Ok(fates)
}

/// The records recovery must show: the durable ones, then maybe the batch in flight, whole.
fn check_recovered(
    what: &str,
    recovered: &[Record],
    durable: &[Record],
    in_flight: Option<&[Record]>,
) -> Result<bool, String> {
    if recovered == durable {
        return Ok(false);
    }
    if let Some(batch) = in_flight {
        if recovered.len() == durable.len() + batch.len()
            && recovered[..durable.len()] == *durable
            && recovered[durable.len()..] == *batch
        {
            return Ok(true);
        }
    }
    let lsns = |records: &[Record]| records.iter().map(|r| r.lsn.0).collect::<Vec<_>>();
    Err(format!(
        "{what}: recovered LSNs {:x?}\n expected {:x?}\n optionally followed by {:x?}",
        lsns(recovered),
        lsns(durable),
        in_flight.map(lsns).unwrap_or_default()
    ))
}

/// Splits a round's fates into the records now durable and the batch that may be.
fn settle<'a>(
    batches: &'a [Vec<Record>],
    fates: &[Fate],
    durable: &mut Vec<Record>,
) -> Option<&'a [Record]> {
    let mut in_flight = None;
    for (batch, fate) in batches.iter().zip(fates) {
        match fate {
            Fate::Acked => durable.extend(batch.iter().cloned()),
            Fate::Refused => {}
            Fate::InFlight => in_flight = Some(&batch[..]),
        }
    }
    in_flight
}

/// Recovers after a crash, optionally crashing once more `crash_in_recovery` I/Os into it.
async fn recover_after_crash(
    disk: &Rc<RefCell<SimDisk>>,
    segment_size: u64,
    crash_in_recovery: Option<u64>,
) -> Result<(Vec<Record>, WalWriter), String> {
    disk.borrow_mut().restart();
    if let Some(at) = crash_in_recovery {
        let now = disk.borrow().io_count();
        disk.borrow_mut().crash_at(now + at);
        match recover(segment_size).await {
            Ok((_, writer)) => {
                // Recovery finished before the crash point: cut power now instead.
                drop(writer);
                disk.borrow_mut().crash();
            }
            Err(_) => assert!(disk.borrow().crashed(), "recovery failed without a crash"),
        }
        disk.borrow_mut().restart();
    }
    recover(segment_size).await.map_err(|e| format!("recovery failed: {e}"))
}

/// Runs one case on a fresh disk; `Err` describes the violated property, with the disk's last
/// operations and what its crashes did.
async fn run_case(case: Case) -> Result<CaseStats, String> {
    let disk = SimDisk::new(case.seed.rotate_left(17) ^ 0x5151);
    let _installed = install(disk.clone());
    run_case_on(&disk, case).await.map_err(|why| {
        let disk = disk.borrow();
        format!(
            "{why}\nlast crash: {}\nlast operations:\n{}",
            disk.last_crash.as_ref().map_or("none".to_string(), ToString::to_string),
            disk.trace()
        )
    })
}

async fn run_case_on(disk: &Rc<RefCell<SimDisk>>, case: Case) -> Result<CaseStats, String> {
    let work = workload(case.seed);
    let mut stats = CaseStats::default();
    if let Some(at) = case.crash_at {
        disk.borrow_mut().crash_at(at);
    }
    if let Some(at) = case.fault_at {
        let errno = if case.seed % 2 == 0 { libc::EIO } else { libc::ENOSPC };
        disk.borrow_mut().fail_at(at, errno);
    }
    // Round 1: a fresh WAL, appends, a crash somewhere (or a power cut at the end).
    let mut fates = Vec::new();
    if let Ok((_, mut writer)) = recover(work.segment_size).await {
        if let (Some((after, errno)), None) = (work.fault, case.fault_at) {
            let now = disk.borrow().io_count();
            disk.borrow_mut().fail_at(now + after, errno);
        }
        fates = append(disk, &mut writer, &work.rounds[0]).await?;
    }
    stats.ios_round1 = disk.borrow().io_count();
    if !disk.borrow().crashed() {
        disk.borrow_mut().crash();
    }
    let mut durable = Vec::new();
    let in_flight = settle(&work.rounds[0], &fates, &mut durable);
    stats.count(&fates);
    let (recovered, mut writer) =
        recover_after_crash(disk, work.segment_size, work.crash_in_recovery).await?;
    if check_recovered("first recovery", &recovered, &durable, in_flight)? {
        stats.in_flight_recovered += 1;
    }
    durable = recovered;

    // Round 2: append after recovery, crash at a seeded point, recover again.
    let now = disk.borrow().io_count();
    disk.borrow_mut().crash_at(now + work.second_crash);
    let fates = append(disk, &mut writer, &work.rounds[1]).await?;
    drop(writer);
    if !disk.borrow().crashed() {
        disk.borrow_mut().crash();
    }
    let in_flight = settle(&work.rounds[1], &fates, &mut durable);
    stats.count(&fates);
    let (recovered, mut writer) = recover_after_crash(disk, work.segment_size, None).await?;
    if check_recovered("second recovery", &recovered, &durable, in_flight)? {
        stats.in_flight_recovered += 1;
    }
    durable = recovered;

    // The writer appends after recovery, and what it acknowledges survives a power cut.
    writer.write_batch(&work.last).await.map_err(|e| format!("append after recovery: {e:?}"))?;
    durable.extend(work.last.iter().cloned());
    drop(writer);
    disk.borrow_mut().crash();
    let (recovered, _) = recover_after_crash(disk, work.segment_size, None).await?;
    check_recovered("last recovery", &recovered, &durable, None)?;
    Ok(stats)
}

#[derive(Default, Debug)]
struct CaseStats {
    ios_round1: u64,
    acked: usize,
    refused: usize,
    in_flight: usize,
    in_flight_recovered: usize,
}

impl CaseStats {
    fn count(&mut self, fates: &[Fate]) {
        for fate in fates {
            match fate {
                Fate::Acked => self.acked += 1,
                Fate::Refused => self.refused += 1,
                Fate::InFlight => self.in_flight += 1,
            }
        }
    }

    fn add(&mut self, other: &CaseStats) {
        self.acked += other.acked;
        self.refused += other.refused;
        self.in_flight += other.in_flight;
        self.in_flight_recovered += other.in_flight_recovered;
    }
}

/// I/Os of a workload's first round when nothing crashes: its crash points are `1..=` that.
async fn first_round_ios(seed: u64) -> u64 {
    let case = Case { seed, crash_at: None, fault_at: Some(0) };
    match run_case(case).await {
        Ok(stats) => stats.ios_round1,
        Err(why) => panic!("WAL simulation failed: {why}\nreplay: {case}"),
    }
}

/// The cases to run: every crash point of a few workloads, an injected error at every I/O of
/// a few others, then random ones.
async fn cases() -> Vec<Case> {
    let every_point =
        |seed, ios| (1..=ios).map(move |at| Case { seed, crash_at: Some(at), fault_at: None });
    let every_fault =
        |seed, ios| (1..=ios).map(move |at| Case { seed, crash_at: None, fault_at: Some(at) });
    if let Some(seed) = env_u64("SIM_SEED") {
        let crash_at = env_u64("SIM_CRASH_AT").filter(|at| *at > 0);
        return match (env_u64("SIM_CRASH_AT"), env_u64("SIM_FAULT_AT")) {
            (None, None) => every_point(seed, first_round_ios(seed).await).collect(),
            (_, fault_at) => vec![Case { seed, crash_at, fault_at }],
        };
    }
    let base = super::tests::base_seed();
    let mut cases = Vec::new();
    for seed in (0..EXHAUSTIVE_WORKLOADS).map(|i| base.wrapping_add(i)) {
        cases.extend(every_point(seed, first_round_ios(seed).await));
    }
    for seed in (0..EXHAUSTIVE_FAULT_WORKLOADS).map(|i| base.wrapping_add(1000 + i)) {
        cases.extend(every_fault(seed, first_round_ios(seed).await));
    }
    let mut rng = Rng::new(base ^ 0xA5A5);
    for _ in 0..env_u64("SIM_CASES").unwrap_or(RANDOM_CASES) {
        let seed = rng.next_u64();
        let crash_at =
            if rng.chance(1, 8) { None } else { Some(1 + rng.below(first_round_ios(seed).await)) };
        cases.push(Case { seed, crash_at, fault_at: None });
    }
    cases
}

/// Workloads tried at every crash point of their first round (~40–120 points each).
const EXHAUSTIVE_WORKLOADS: u64 = 4;
/// Workloads tried with one injected error at every I/O of their first round.
const EXHAUSTIVE_FAULT_WORKLOADS: u64 = 2;
/// Random `(workload, crash point)` cases after those (`SIM_CASES` overrides).
const RANDOM_CASES: u64 = 200;

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value}: not a u64")))
}

/// Cases that found bugs, replayed on every run (they depend on the workload generator and
/// the disk's random choices: if either changes, re-find them with a long `SIM_CASES` run).
///
/// - `8767530839223511997`, power cut after round 1 (found by a 4,000-case run, issue 8):
///   recovery cut a batch that spanned segments 5–7 and deleted 6 and 7 without syncing the
///   directory; appends to segment 5 were acknowledged; the crash kept the deletion of 6 but
///   not of 7, and the next start refused the timeline (`sequence-gap`). Fixed in
///   `timeline::open_wal`: delete newest first and sync the directory before appending.
/// - `9303130380447359783` at I/O 54 (found by a 6,000-case run): the directory sync after
///   renaming a new segment 4 into place failed; the rewind deleted segment 3 (created earlier
///   in the same batch) but not 4, and its directory sync made both durable: segments 1, 2, 4,
///   a `sequence-gap` at the next start. Fixed in `WalWriter::rewind`: it also deletes the
///   next segment under its final name.
const REGRESSIONS: [Case; 2] = [
    Case { seed: 8767530839223511997, crash_at: None, fault_at: Some(0) },
    Case { seed: 9303130380447359783, crash_at: Some(54), fault_at: None },
];

#[test]
fn regressions() {
    super::tests::on_executor(async {
        for case in REGRESSIONS {
            if let Err(why) = run_case(case).await {
                panic!("WAL simulation regression failed: {why}\nreplay: {case}");
            }
        }
    });
}

#[test]
fn wal_survives_a_crash_at_every_io() {
    super::tests::on_executor(async {
        let cases = cases().await;
        let mut total = CaseStats::default();
        for case in &cases {
            match run_case(*case).await {
                Ok(stats) => total.add(&stats),
                Err(why) => panic!(
                    "WAL simulation failed: {why}\nreplay: {case} cargo test -p server \
                     sim::wal_tests -- --nocapture"
                ),
            }
        }
        eprintln!(
            "WAL simulation: {} cases (base seed {}), batches: {} acknowledged, {} refused \
             by an injected error, {} in flight at a crash ({} of them recovered whole)",
            cases.len(),
            super::tests::base_seed(),
            total.acked,
            total.refused,
            total.in_flight,
            total.in_flight_recovered
        );
    });
}

/// Regression (found by this simulation, issue 8): closing the full segment after a roll
/// failed, and `roll` had already swapped in segment k+1's file but not yet its number. The
/// rewind then "zeroed" the wrong file, later batches that still fitted in segment k wrote
/// their frames into segment k+1's file, checksummed as segment k, and were acknowledged; at
/// recovery those frames did not verify and the batches were lost.
#[test]
fn a_failed_close_after_a_roll_loses_nothing() {
    super::tests::on_executor(async {
        // 12 KiB of room for frames: two 2.5 KiB deltas, then a page image that does not fit
        // (it rolls to segment 2), then small deltas that would still fit in segment 1.
        let segment_size = 16 * 1024;
        let key = PageKey {
            rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 1, fork: Fork::Main },
            block: BlockNumber(0),
        };
        let delta = |lsn: u64, len: usize| Record {
            lsn: Lsn(lsn),
            key,
            body: RecordBody::Delta(Delta::from_patches([(0, &vec![lsn as u8; len][..])]).unwrap()),
        };
        let image =
            Record { lsn: Lsn(0x30), key, body: RecordBody::Image(Box::new([7; PAGE_SIZE])) };
        let batches = [
            vec![delta(0x10, 2500), delta(0x20, 2500)],
            vec![image],
            vec![delta(0x40, 100)],
            vec![delta(0x50, 100)],
        ];
        let first_segment = crate::wal_io::segment_path(&wal_dir(), 1);
        let close_at = {
            let disk = SimDisk::new(1);
            let _installed = install(disk.clone());
            let (_, mut writer) = recover(segment_size).await.unwrap();
            for batch in &batches[..2] {
                writer.write_batch(batch).await.unwrap();
            }
            let found = disk.borrow().find_io(super::Op::Close, &first_segment);
            found.expect("the image rolls to segment 2")
        };
        let disk = SimDisk::new(1);
        let _installed = install(disk.clone());
        disk.borrow_mut().fail_at(close_at, libc::EIO);
        let (_, mut writer) = recover(segment_size).await.unwrap();
        let mut acked = Vec::new();
        let mut refused = 0;
        for batch in &batches {
            match writer.write_batch(batch).await {
                Ok(()) => acked.extend(batch.iter().cloned()),
                Err(WalWriteError::Rewound(_)) => refused += 1,
                Err(WalWriteError::Fatal(error)) => panic!("one failed close was fatal: {error}"),
            }
        }
        assert_eq!(refused, 1, "the batch that rolled was refused");
        drop(writer);
        disk.borrow_mut().crash();
        disk.borrow_mut().restart();
        let (recovered, _) = recover(segment_size).await.unwrap();
        check_recovered("after a failed close", &recovered, &acked, None).unwrap();
    });
}
