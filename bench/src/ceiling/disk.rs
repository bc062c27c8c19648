//! Raw io_uring O_DIRECT 8 KiB random reads at a fixed queue depth: the most the data
//! directory's file system can give a page server that reads pages from disk.
//!
//! Best effort, kept simple: one ring, `depth` reads always in flight, each completion
//! resubmitted at once with a new random offset; one `io_uring_enter` per round that both
//! submits and waits. Registered buffers and files made no difference on this VM (PLATFORM.md),
//! so plain reads are used. The file is written in full first: O_DIRECT reads of holes would
//! be answered without touching the device.

use crate::aligned::AlignedBuf;
use crate::rng::Rng;
use crate::stats::Recorder;
use anyhow::{bail, Context};
use io_uring::{opcode, types, IoUring};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};
use wal::PAGE_SIZE;

/// Creates (or reuses, if already that size) a fully written test file.
pub fn prepare_file(path: &Path, size_bytes: u64) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("opening {} with O_DIRECT", path.display()))?;
    if file.metadata()?.len() == size_bytes {
        return Ok(file);
    }
    file.set_len(0)?;
    const CHUNK: usize = 1 << 20;
    let mut buf = AlignedBuf::new(CHUNK);
    let mut rng = Rng::new(size_bytes);
    let mut offset = 0u64;
    while offset < size_bytes {
        for word in buf.as_mut_slice().chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let len = CHUNK.min((size_bytes - offset) as usize);
        file.write_all_at(&buf.as_slice()[..len], offset)
            .with_context(|| format!("writing {}", path.display()))?;
        offset += len as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// Reads random 8 KiB pages of `file` with `depth` in flight for `duration`; records each
/// read's latency as `op`. Returns completed reads per second.
pub fn random_reads(
    file: &File,
    depth: u32,
    duration: Duration,
    op: &'static str,
    recorder: &mut Recorder,
) -> anyhow::Result<f64> {
    let pages = file.metadata()?.len() / PAGE_SIZE as u64;
    if pages == 0 || depth == 0 {
        bail!("disk ceiling needs a non-empty file and a depth of at least 1");
    }
    let mut ring: IoUring = IoUring::new(depth.next_power_of_two().max(8))?;
    let mut bufs = AlignedBuf::new(depth as usize * PAGE_SIZE);
    let base = bufs.as_mut_ptr();
    let fd = types::Fd(file.as_raw_fd());
    let mut rng = Rng::new(u64::from(depth));
    let mut sent_at = vec![Instant::now(); depth as usize];
    let submit = |ring: &mut IoUring, slot: usize, rng: &mut Rng, sent_at: &mut [Instant]| {
        let offset = rng.below(pages) * PAGE_SIZE as u64;
        // SAFETY: slot < depth, so the pointer stays inside `bufs`, which outlives the ring's
        // use of it: every read is reaped before this function returns.
        let buf = unsafe { base.add(slot * PAGE_SIZE) };
        let entry = opcode::Read::new(fd, buf, PAGE_SIZE as u32)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        sent_at[slot] = Instant::now();
        // SAFETY: the entry's buffer is valid (above) and the queue has `depth` free entries
        // because at most `depth` reads are ever in flight.
        unsafe { ring.submission().push(&entry).expect("submission queue has room") };
    };
    let start = Instant::now();
    let end = start + duration;
    for slot in 0..depth as usize {
        submit(&mut ring, slot, &mut rng, &mut sent_at);
    }
    let mut in_flight = depth as usize;
    let mut completed = 0u64;
    let mut done = Vec::with_capacity(depth as usize);
    while in_flight > 0 {
        ring.submit_and_wait(1)?;
        let now = Instant::now();
        done.clear();
        done.extend(ring.completion().map(|cqe| (cqe.user_data() as usize, cqe.result())));
        for &(slot, result) in &done {
            in_flight -= 1;
            if result != PAGE_SIZE as i32 {
                bail!("O_DIRECT read returned {result} (negative = -errno)");
            }
            recorder.record(op, now - sent_at[slot]);
            completed += 1;
            if now < end {
                submit(&mut ring, slot, &mut rng, &mut sent_at);
                in_flight += 1;
            }
        }
    }
    Ok(completed as f64 / start.elapsed().as_secs_f64())
}
