//! `SimDisk`: an in-memory disk for crash tests of the WAL and layer code (STYLE S33, issue 8).
//!
//! A test installs one on its thread ([`install`]); from then on every call of
//! `crate::runtime`'s file functions on that thread (open, read, write, `fdatasync`, size,
//! close, rename, remove, list, directory sync) goes to it instead of the kernel, so the real
//! `wal_io` and `layer_io` code runs against it.
//!
//! What it models, per file and per directory entry, the durable state apart from the volatile
//! one:
//! - A write changes the file at once (reads see it) but is *volatile* until `fdatasync` of
//!   that file makes the whole file, content and size, durable.
//! - Creating (by opening a missing path), renaming and removing an entry are volatile until
//!   `sync_dir` of its directory makes every pending entry change of that directory durable.
//! - A crash, called directly ([`SimDisk::crash`]) or at "I/O number N" ([`SimDisk::crash_at`]),
//!   keeps the durable state plus, chosen by the seed: for each directory a prefix of its
//!   pending entry changes (the journal commits them in order), and each unsynced write either
//!   dropped, kept whole, or torn (a random subset of its 512-byte sectors kept). Writes are
//!   replayed in the order they were issued, so an older unsynced write may survive where a
//!   newer one over it is lost. Files no durable entry names are gone.
//! - After a crash every operation fails (the process is dead) until [`SimDisk::restart`];
//!   files opened before it stay unusable.
//! - Injected errors: one operation by its I/O number ([`SimDisk::fail_at`]), or every read of
//!   one file ([`SimDisk::fail_reads`], like a bad sector range). A failed operation changes
//!   nothing.
//! - O_DIRECT rules: offsets and lengths not multiples of 512 fail with `EINVAL`.
//!
//! Not modelled: a failed `fdatasync` that silently drops the pages it failed to write (with
//! O_DIRECT there are no dirty pages to drop; unsynced writes simply stay volatile), lost
//! directory entries of directories themselves (tests create directories only once), and
//! reordering of entry changes within one directory.
//!
//! Everything random comes from the seed given to [`SimDisk::new`], so a failing case replays
//! exactly from its seed and crash point.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

mod layer_tests;
mod tests;
mod wal_tests;

/// Sector size: the unit a torn write keeps or loses, and the O_DIRECT alignment.
pub(crate) const SECTOR: usize = 512;

thread_local! {
    static INSTALLED: RefCell<Option<Rc<RefCell<SimDisk>>>> = const { RefCell::new(None) };
}

/// The simulated disk installed on this thread, if any.
pub(crate) fn installed() -> Option<Rc<RefCell<SimDisk>>> {
    INSTALLED.with(|slot| slot.borrow().clone())
}

/// Routes this thread's file I/O to `disk` until the guard drops.
pub(crate) fn install(disk: Rc<RefCell<SimDisk>>) -> Installed {
    INSTALLED.with(|slot| *slot.borrow_mut() = Some(disk));
    Installed(())
}

pub(crate) struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        INSTALLED.with(|slot| *slot.borrow_mut() = None);
    }
}

/// splitmix64: small, fast, and the same on every machine.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub(crate) fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }
}

/// Which operation an I/O number refers to, for the trace printed with a failing case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Open,
    Read,
    Write,
    Sync,
    Size,
    Close,
    Rename,
    Remove,
    List,
    SyncDir,
}

struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a crash for sure.
    durable: Vec<u8>,
    /// Writes since the last `fdatasync`, in issue order: `(offset, bytes)`.
    unsynced: Vec<(u64, Vec<u8>)>,
    fail_reads: bool,
}

enum EntryChange {
    Link {
        path: PathBuf,
        inode: usize,
    },
    Unlink {
        path: PathBuf,
    },
    /// One journal entry: both halves of a rename become durable together.
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: usize,
    },
}

impl EntryChange {
    fn dir(&self) -> PathBuf {
        match self {
            EntryChange::Link { path, .. } | EntryChange::Unlink { path } => parent(path),
            EntryChange::Rename { to, .. } => parent(to),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>) {
        match self {
            EntryChange::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            EntryChange::Unlink { path } => {
                names.remove(path);
            }
            EntryChange::Rename { from, to, inode } => {
                names.remove(from);
                names.insert(to.clone(), *inode);
            }
        }
    }
}

/// What the last crash did, for a failing case's report.
#[derive(Clone, Default)]
pub(crate) struct CrashReport {
    /// Read through `Debug` in a failing case's report.
    #[allow(dead_code)]
    pub(crate) at_io: u64,
    pub(crate) writes_dropped: usize,
    pub(crate) writes_kept: usize,
    pub(crate) writes_torn: usize,
    pub(crate) entry_changes_kept: usize,
    pub(crate) entry_changes_lost: usize,
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crashed at I/O {}: unsynced writes {} dropped, {} kept, {} torn; entry changes {} \
             kept, {} lost",
            self.at_io,
            self.writes_dropped,
            self.writes_kept,
            self.writes_torn,
            self.entry_changes_kept,
            self.entry_changes_lost
        )
    }
}

pub(crate) struct SimDisk {
    rng: Rng,
    inodes: Vec<Option<Inode>>,
    /// The names reads and opens see.
    names: BTreeMap<PathBuf, usize>,
    /// The names that survive a crash.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Entry changes not yet made durable by `sync_dir`, in order.
    pending: Vec<EntryChange>,
    io_count: u64,
    crash_at: Option<u64>,
    fail_at: Option<(u64, i32)>,
    crashed: bool,
    /// Bumped by every crash: files opened before it are dead.
    generation: u64,
    /// The last operations, `(I/O number, op, path)`, for a failing case's report.
    trace: Vec<(u64, Op, PathBuf)>,
    pub(crate) last_crash: Option<CrashReport>,
}

impl SimDisk {
    pub(crate) fn new(seed: u64) -> Rc<RefCell<SimDisk>> {
        Rc::new(RefCell::new(SimDisk {
            rng: Rng::new(seed),
            inodes: Vec::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            pending: Vec::new(),
            io_count: 0,
            crash_at: None,
            fail_at: None,
            crashed: false,
            generation: 0,
            trace: Vec::new(),
            last_crash: None,
        }))
    }

    /// I/O operations so far (every call counts, failed ones too).
    pub(crate) fn io_count(&self) -> u64 {
        self.io_count
    }

    /// Crash instead of performing I/O number `io_number` (counted from the start).
    pub(crate) fn crash_at(&mut self, io_number: u64) {
        self.crash_at = Some(io_number);
    }

    /// Fail I/O number `io_number` with `errno` (e.g. `libc::ENOSPC`), changing nothing.
    pub(crate) fn fail_at(&mut self, io_number: u64, errno: i32) {
        self.fail_at = Some((io_number, errno));
    }

    /// Every read of the file at `path` fails with `EIO` while `on` (like an unreadable sector
    /// range under it).
    pub(crate) fn fail_reads(&mut self, path: &Path, on: bool) {
        let inode = self.names[path];
        self.inode_mut(inode).expect("named files exist").fail_reads = on;
    }

    pub(crate) fn crashed(&self) -> bool {
        self.crashed
    }

    /// Changes the bytes of the synced file at `path` behind the code's back (bit rot, a torn
    /// sector), durably.
    pub(crate) fn damage(&mut self, path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
        let inode = self.names[path];
        let node = self.inodes[inode].as_mut().expect("named files exist");
        assert!(node.unsynced.is_empty(), "damage only synced files");
        edit(&mut node.data);
        node.durable = node.data.clone();
    }

    /// The I/O number of the first traced `op` on `path` (the trace keeps the last 64).
    pub(crate) fn find_io(&self, op: Op, path: &Path) -> Option<u64> {
        self.trace.iter().find(|(_, o, p)| *o == op && p == path).map(|(n, _, _)| *n)
    }

    /// The last operations performed, oldest first, one per line.
    pub(crate) fn trace(&self) -> String {
        self.trace
            .iter()
            .map(|(n, op, path)| format!("  #{n} {op:?} {}\n", path.display()))
            .collect()
    }

    /// Loses power now: see the module doc for what survives.
    pub(crate) fn crash(&mut self) {
        let mut report = CrashReport { at_io: self.io_count, ..CrashReport::default() };
        let mut names = self.durable_names.clone();
        let mut by_dir: BTreeMap<PathBuf, Vec<&EntryChange>> = BTreeMap::new();
        for change in &self.pending {
            by_dir.entry(change.dir()).or_default().push(change);
        }
        for changes in by_dir.values() {
            let kept = self.rng.below(changes.len() as u64 + 1) as usize;
            report.entry_changes_kept += kept;
            report.entry_changes_lost += changes.len() - kept;
            for change in &changes[..kept] {
                change.apply(&mut names);
            }
        }
        let live: Vec<usize> = names.values().copied().collect();
        for (index, slot) in self.inodes.iter_mut().enumerate() {
            let Some(node) = slot else { continue };
            if !live.contains(&index) {
                *slot = None;
                continue;
            }
            let mut content = std::mem::take(&mut node.durable);
            for (offset, bytes) in std::mem::take(&mut node.unsynced) {
                match self.rng.below(3) {
                    0 => report.writes_dropped += 1,
                    1 => {
                        report.writes_kept += 1;
                        put(&mut content, offset, &bytes);
                    }
                    _ => {
                        report.writes_torn += 1;
                        for (index, sector) in bytes.chunks(SECTOR).enumerate() {
                            if self.rng.chance(1, 2) {
                                put(&mut content, offset + (index * SECTOR) as u64, sector);
                            }
                        }
                    }
                }
            }
            node.data = content.clone();
            node.durable = content;
        }
        self.names = names.clone();
        self.durable_names = names;
        self.pending.clear();
        self.crashed = true;
        self.generation += 1;
        self.crash_at = None;
        self.fail_at = None;
        self.last_crash = Some(report);
    }

    /// Boots again after a crash: the durable state is all there is.
    pub(crate) fn restart(&mut self) {
        self.crashed = false;
    }

    /// Counts an operation and decides whether it happens: crashed, crashing now, or failing
    /// by injection are errors.
    fn begin(&mut self, op: Op, path: &Path) -> io::Result<()> {
        self.io_count += 1;
        if self.trace.len() == 64 {
            self.trace.remove(0);
        }
        self.trace.push((self.io_count, op, path.to_path_buf()));
        if self.crashed {
            return Err(io::Error::other("simulated disk: crashed"));
        }
        if self.crash_at == Some(self.io_count) {
            self.crash();
            return Err(io::Error::other("simulated disk: crashed"));
        }
        if let Some((at, errno)) = self.fail_at {
            if at == self.io_count {
                self.fail_at = None;
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        Ok(())
    }

    fn inode_mut(&mut self, inode: usize) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(inode)
            .and_then(Option::as_mut)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }

    fn check_handle(&self, handle: &SimFile) -> io::Result<()> {
        if handle.generation != self.generation {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        Ok(())
    }

    fn open(&mut self, path: &Path) -> io::Result<usize> {
        self.begin(Op::Open, path)?;
        if let Some(inode) = self.names.get(path) {
            return Ok(*inode);
        }
        let inode = self.inodes.len();
        self.inodes.push(Some(Inode {
            data: Vec::new(),
            durable: Vec::new(),
            unsynced: Vec::new(),
            fail_reads: false,
        }));
        self.names.insert(path.to_path_buf(), inode);
        self.pending.push(EntryChange::Link { path: path.to_path_buf(), inode });
        Ok(inode)
    }

    pub(crate) fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.begin(Op::SyncDir, dir)?;
        let (done, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|c| c.dir() == dir);
        for change in done {
            change.apply(&mut self.durable_names);
        }
        self.pending = rest;
        Ok(())
    }

    pub(crate) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.begin(Op::Rename, from)?;
        let inode =
            self.names.remove(from).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.names.insert(to.to_path_buf(), inode);
        assert_eq!(parent(from), parent(to), "the simulation renames within a directory");
        self.pending.push(EntryChange::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            inode,
        });
        Ok(())
    }

    pub(crate) fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        self.begin(Op::Remove, path)?;
        self.names.remove(path).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.pending.push(EntryChange::Unlink { path: path.to_path_buf() });
        Ok(())
    }

    pub(crate) fn list_dir(&mut self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.begin(Op::List, dir)?;
        Ok(self.names.keys().filter(|path| parent(path) == dir).cloned().collect())
    }
}

/// A file open on the simulated disk.
pub(crate) struct SimFile {
    disk: Rc<RefCell<SimDisk>>,
    inode: usize,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    pub(crate) fn open(disk: Rc<RefCell<SimDisk>>, path: &Path) -> io::Result<SimFile> {
        let (inode, generation) = {
            let mut state = disk.borrow_mut();
            (state.open(path)?, state.generation)
        };
        Ok(SimFile { disk, inode, generation, path: path.to_path_buf() })
    }

    /// Starts an operation on this file: counted, checked against crash and injection.
    fn with<R>(&self, op: Op, work: impl FnOnce(&mut Inode) -> io::Result<R>) -> io::Result<R> {
        let mut disk = self.disk.borrow_mut();
        disk.begin(op, &self.path)?;
        disk.check_handle(self)?;
        work(disk.inode_mut(self.inode)?)
    }

    pub(crate) fn read_at(&self, pos: u64, size: usize) -> io::Result<Vec<u8>> {
        self.with(Op::Read, |node| {
            check_aligned(pos, size)?;
            if node.fail_reads {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let start = (pos as usize).min(node.data.len());
            let end = (pos as usize + size).min(node.data.len());
            Ok(node.data[start..end].to_vec())
        })
    }

    pub(crate) fn write_at(&self, bytes: &[u8], pos: u64) -> io::Result<usize> {
        self.with(Op::Write, |node| {
            check_aligned(pos, bytes.len())?;
            put(&mut node.data, pos, bytes);
            node.unsynced.push((pos, bytes.to_vec()));
            Ok(bytes.len())
        })
    }

    pub(crate) fn fdatasync(&self) -> io::Result<()> {
        self.with(Op::Sync, |node| {
            node.durable = node.data.clone();
            node.unsynced.clear();
            Ok(())
        })
    }

    pub(crate) fn file_size(&self) -> io::Result<u64> {
        self.with(Op::Size, |node| Ok(node.data.len() as u64))
    }

    pub(crate) fn close(self) -> io::Result<()> {
        self.with(Op::Close, |_| Ok(()))
    }
}

fn check_aligned(pos: u64, size: usize) -> io::Result<()> {
    if pos % SECTOR as u64 != 0 || size % SECTOR != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

/// Writes `bytes` at `offset`, growing the file with zeros as needed.
fn put(content: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[offset as usize..end].copy_from_slice(bytes);
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}
