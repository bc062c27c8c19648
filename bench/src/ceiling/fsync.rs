//! Durable-write latency: an 8 KiB O_DIRECT write into already-written space followed by
//! `fdatasync`, one at a time, as a WAL commit of one small record costs at best.
//!
//! Writes go to consecutive offsets of a preallocated (fully written) file, wrapping at its
//! end, like a recycled WAL segment: PLATFORM.md measured growing files and fallocated space at
//! about half the rate, and pagecore preallocates by writing.

use crate::aligned::AlignedBuf;
use crate::stats::Recorder;
use anyhow::Context;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use wal::PAGE_SIZE;

/// Returns commits (write + fdatasync) per second.
pub fn write_sync(file: &File, duration: Duration, recorder: &mut Recorder) -> anyhow::Result<f64> {
    let slots = file.metadata()?.len() / PAGE_SIZE as u64;
    let mut buf = AlignedBuf::new(PAGE_SIZE);
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        buf.as_mut_slice()[..8].copy_from_slice(&count.to_le_bytes());
        let offset = (count % slots.max(1)) * PAGE_SIZE as u64;
        let began = Instant::now();
        file.write_all_at(buf.as_slice(), offset).context("8 KiB O_DIRECT write")?;
        file.sync_data().context("fdatasync")?;
        recorder.record("fdatasync", began.elapsed());
        count += 1;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}
