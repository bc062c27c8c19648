//! Crash and damage tests of layer files on a [`SimDisk`], through the real `layer_io` code:
//! `write_layer` crashes at every I/O, then the timeline-open path (`list_layers`, which removes
//! leftover `.tmp` files, and `open_layer`) runs on what survived. A layer file is either
//! visible whole (it opens, and every version reads back verified and equal to what was
//! written) or not visible at all; a layer whose `write_layer` returned is always visible; an
//! older layer is never touched. Damaged files (a flipped bit, a torn or garbage sector, a cut
//! tail) give `Corrupt` at open or at read, never wrong bytes; an unreadable file gives an I/O
//! error, and reads work again once the disk does.
//!
//! `SIM_SEED=<n>` runs one workload (with `SIM_CRASH_AT=<i>` one crash point, counted from the
//! start of its `write_layer`); `SIM_CASES=<n>` sets how many workloads run.

use super::{install, Rng, SimDisk};
use crate::layer_io::{list_layers, open_layer, write_layer, LayerReadError, WriteBudget};
use crate::runtime::list_dir;
use cache::layer::{aligned_span, IndexEntry, LayerKind, LayerWriter};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use wal::{BlockNumber, Fork, Lsn, PageKey, RelTag, TenantId, TimelineId, PAGE_SIZE};

const UNLIMITED: WriteBudget = WriteBudget { bytes_per_sec: u64::MAX };

/// A layer file image and the payload each index entry must read back as.
struct Layer {
    name: String,
    bytes: Vec<u8>,
    payloads: Vec<(IndexEntry, Vec<u8>)>,
}

fn layer(rng: &mut Rng, lsn_end: u64) -> Layer {
    let image = rng.chance(1, 3);
    let (kind, lsn_start) =
        if image { (LayerKind::Image, lsn_end) } else { (LayerKind::Delta, lsn_end - 0x1000) };
    let mut writer = LayerWriter::new(
        kind,
        TenantId([1; 16]),
        TimelineId([2; 16]),
        Lsn(lsn_start),
        Lsn(lsn_end),
    );
    // One layer in six passes 1 MiB, so write_layer issues more than one write.
    let keys = if rng.chance(1, 6) { 130 + rng.below(60) } else { 1 + rng.below(12) };
    for block in 0..keys as u32 {
        let key = PageKey {
            rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main },
            block: BlockNumber(block),
        };
        let versions = if image { 1 } else { 1 + rng.below(3) };
        for version in 0..versions {
            let lsn = Lsn(lsn_start + 1 + version);
            if image || version == 0 {
                // Distinct per page and per word; cheap enough for debug builds.
                let mut page = [0u8; PAGE_SIZE];
                let base = rng.next_u64();
                for (word, chunk) in page.chunks_exact_mut(8).enumerate() {
                    chunk.copy_from_slice(&(base ^ word as u64).to_le_bytes());
                }
                writer.add_image(key, lsn, &page);
            } else {
                let len = 1 + rng.below(400) as u16;
                let mut payload = Vec::new();
                payload.extend_from_slice(&1u16.to_le_bytes());
                payload.extend_from_slice(&0u16.to_le_bytes());
                payload.extend_from_slice(&rng.below(4000).to_le_bytes()[..2]);
                payload.extend_from_slice(&len.to_le_bytes());
                payload.extend((0..len).map(|_| rng.next_u64() as u8));
                writer.add_delta(key, lsn, &payload);
            }
        }
    }
    let (bytes, index) = writer.finish(None);
    let payloads = index
        .entries
        .iter()
        .map(|e| (*e, bytes[e.offset as usize..(e.offset + u64::from(e.len)) as usize].to_vec()))
        .collect();
    let suffix = if image { "image" } else { "delta" };
    Layer { name: format!("{lsn_start:016X}-{lsn_end:016X}.{suffix}"), bytes, payloads }
}

fn layer_dir() -> PathBuf {
    PathBuf::from("/sim/timeline/layers")
}

/// Opens `path` and reads every version: `Ok` only if all of it reads back exactly.
async fn verify(path: &Path, layer: &Layer) -> Result<(), String> {
    let file =
        open_layer(path, None).await.map_err(|e| format!("{} does not open: {e:?}", layer.name))?;
    if file.index.entries.len() != layer.payloads.len() {
        return Err(format!("{}: index has {} entries", layer.name, file.index.entries.len()));
    }
    for (entry, expected) in &layer.payloads {
        let (start, end) = aligned_span(entry);
        let mut span = file.read_span(start, end).await.map_err(|e| format!("{e:?}"))?;
        let range = file.payload_in(entry, start, &mut span).map_err(|e| format!("{e:?}"))?;
        if span[range] != expected[..] {
            return Err(format!(
                "{}: version {} at {} read back different",
                layer.name, entry.key, entry.lsn
            ));
        }
    }
    Ok(())
}

/// One case: an older layer is durable; `write_layer` of a new one crashes at its I/O
/// `crash_at` (or a power cut after it returned); then the open path runs.
async fn run_case(
    disk: &Rc<RefCell<SimDisk>>,
    seed: u64,
    crash_at: Option<u64>,
) -> Result<bool, String> {
    let mut rng = Rng::new(seed);
    let dir = layer_dir();
    let older = layer(&mut rng, 0x1000);
    write_layer(&dir, &older.name, &older.bytes, UNLIMITED, None)
        .await
        .map_err(|e| format!("writing the older layer: {e:?}"))?;
    let newer = layer(&mut rng, 0x3000);
    if let Some(at) = crash_at {
        let now = disk.borrow().io_count();
        disk.borrow_mut().crash_at(now + at);
    }
    let returned = write_layer(&dir, &newer.name, &newer.bytes, UNLIMITED, None).await.is_ok();
    if !disk.borrow().crashed() {
        disk.borrow_mut().crash();
    }
    disk.borrow_mut().restart();
    let visible = check_open_path(&dir, &older, &newer).await?;
    if returned && !visible {
        return Err(format!("{} was written (write_layer returned) but is gone", newer.name));
    }
    // The store writes the layer again from the WAL: it works, and it is durable.
    write_layer(&dir, &newer.name, &newer.bytes, UNLIMITED, None)
        .await
        .map_err(|e| format!("writing {} again: {e:?}", newer.name))?;
    disk.borrow_mut().crash();
    disk.borrow_mut().restart();
    if !check_open_path(&dir, &older, &newer).await? {
        return Err(format!("{} written again is gone after a power cut", newer.name));
    }
    Ok(visible)
}

/// Runs the timeline-open path; checks no `.tmp` is left and every visible layer is whole.
/// Returns whether `newer` is visible.
async fn check_open_path(dir: &Path, older: &Layer, newer: &Layer) -> Result<bool, String> {
    let paths = list_layers(dir).map_err(|e| format!("list_layers: {e}"))?;
    let left = list_dir(dir).map_err(|e| format!("list_dir: {e}"))?;
    if let Some(tmp) = left.iter().find(|p| p.extension().is_some_and(|e| e == "tmp")) {
        return Err(format!("{} left behind", tmp.display()));
    }
    let mut newer_visible = false;
    let mut older_visible = false;
    for path in &paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == newer.name {
            verify(path, newer).await?;
            newer_visible = true;
        } else if name == older.name {
            verify(path, older).await?;
            older_visible = true;
        } else {
            return Err(format!("unexpected layer {name}"));
        }
    }
    if !older_visible {
        return Err(format!("the older layer {} is gone", older.name));
    }
    Ok(newer_visible)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.parse().unwrap_or_else(|_| panic!("{name}={value}: not a u64")))
}

/// Workloads tried at every I/O of their `write_layer` (~10–12 points each).
const WORKLOADS: u64 = 20;

#[test]
fn a_layer_file_is_visible_whole_or_not_at_all_after_a_crash_at_every_io() {
    super::tests::on_executor(async {
        let base = super::tests::base_seed();
        let seeds: Vec<u64> = match env_u64("SIM_SEED") {
            Some(seed) => vec![seed],
            None => {
                (0..env_u64("SIM_CASES").unwrap_or(WORKLOADS)).map(|i| base ^ (i << 32)).collect()
            }
        };
        let (mut cases, mut visible) = (0, 0);
        for seed in seeds {
            // The write's I/Os, counted on a disk that does not crash.
            let ios = {
                let disk = SimDisk::new(seed);
                let _installed = install(disk.clone());
                let mut rng = Rng::new(seed);
                let older = layer(&mut rng, 0x1000);
                let newer = layer(&mut rng, 0x3000);
                write_layer(&layer_dir(), &older.name, &older.bytes, UNLIMITED, None)
                    .await
                    .unwrap();
                let before = disk.borrow().io_count();
                write_layer(&layer_dir(), &newer.name, &newer.bytes, UNLIMITED, None)
                    .await
                    .unwrap();
                let after = disk.borrow().io_count();
                after - before
            };
            let points: Vec<Option<u64>> = match env_u64("SIM_CRASH_AT") {
                Some(0) => vec![None],
                Some(at) => vec![Some(at)],
                None => (1..=ios).map(Some).chain([None]).collect(),
            };
            for crash_at in points {
                let disk = SimDisk::new(seed.rotate_left(7));
                let _installed = install(disk.clone());
                match run_case(&disk, seed, crash_at).await {
                    Ok(seen) => visible += usize::from(seen),
                    Err(why) => {
                        let disk = disk.borrow();
                        panic!(
                            "layer simulation failed: {why}\nlast crash: {}\nlast operations:\n{}\
                             replay: SIM_SEED={seed} SIM_CRASH_AT={} cargo test -p server \
                             sim::layer_tests -- --nocapture",
                            disk.last_crash
                                .as_ref()
                                .map_or("none".to_string(), ToString::to_string),
                            disk.trace(),
                            crash_at.unwrap_or(0)
                        )
                    }
                }
                cases += 1;
            }
        }
        eprintln!(
            "layer simulation: {cases} crash cases (base seed {base}); the new layer was visible \
             (whole) after {visible} of them and absent after the others"
        );
    });
}

/// How a damaged layer was caught.
#[derive(Default, Debug)]
struct Caught {
    at_open: usize,
    at_read: usize,
    harmless: usize,
}

#[test]
fn a_damaged_layer_gives_corrupt_never_wrong_bytes() {
    super::tests::on_executor(async {
        let base = super::tests::base_seed();
        let mut caught = Caught::default();
        let cases = env_u64("SIM_CASES").unwrap_or(200);
        for case in 0..cases {
            let seed = env_u64("SIM_SEED").unwrap_or(base.wrapping_add(case * 7919));
            let mut rng = Rng::new(seed);
            let disk = SimDisk::new(seed);
            let _installed = install(disk.clone());
            let layer = layer(&mut rng, 0x1000);
            let path = layer_dir().join(&layer.name);
            write_layer(&layer_dir(), &layer.name, &layer.bytes, UNLIMITED, None).await.unwrap();
            let how = {
                let mut state = disk.borrow_mut();
                damage(&mut state, &path, &mut rng)
            };
            let replay = format!("replay: SIM_SEED={seed} SIM_CASES=1 (damage: {how})");
            let file = match open_layer(&path, None).await {
                Ok(file) => file,
                Err(LayerReadError::Corrupt(_)) => {
                    caught.at_open += 1;
                    continue;
                }
                Err(error) => {
                    panic!("a damaged layer gave {error:?} at open, not Corrupt; {replay}")
                }
            };
            let mut detected = false;
            for (entry, expected) in &layer.payloads {
                let (start, end) = aligned_span(entry);
                let read = match file.read_span(start, end).await {
                    Ok(mut span) => {
                        file.payload_in(entry, start, &mut span).map(|r| span[r].to_vec())
                    }
                    Err(error) => Err(error),
                };
                match read {
                    Ok(payload) => assert_eq!(&payload, expected, "wrong bytes served; {replay}"),
                    Err(LayerReadError::Corrupt(_)) => detected = true,
                    Err(error) => panic!("a damaged layer gave {error:?} at read; {replay}"),
                }
            }
            if detected {
                caught.at_read += 1;
            } else {
                caught.harmless += 1;
            }
        }
        eprintln!("damaged layers ({cases}, base seed {base}): {caught:?} (harmless: the damage hit padding)");
    });
}

/// Damages the synced file at `path` one way, chosen by `rng`; says how.
fn damage(disk: &mut SimDisk, path: &Path, rng: &mut Rng) -> String {
    let mut how = String::new();
    let way = rng.below(4);
    let pick = rng.next_u64();
    let fill = rng.next_u64();
    disk.damage(path, |bytes| {
        let len = bytes.len() as u64;
        match way {
            0 => {
                let bit = pick % (len * 8);
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
                how = format!("bit {bit} flipped");
            }
            1 | 2 => {
                let sector = (pick % (len / 512)) as usize * 512;
                let garbage = way == 2;
                let mut state = Rng::new(fill);
                for byte in &mut bytes[sector..sector + 512] {
                    *byte = if garbage { state.next_u64() as u8 } else { 0 };
                }
                how = format!("sector at {sector} {}", if garbage { "garbage" } else { "zeroed" });
            }
            _ => {
                let keep = (pick % (len / 4096)) * 4096;
                bytes.truncate(keep as usize);
                how = format!("cut to {keep} bytes");
            }
        }
    });
    how
}

#[test]
fn an_unreadable_layer_gives_an_io_error_and_reads_again_when_the_disk_does() {
    super::tests::on_executor(async {
        let disk = SimDisk::new(5);
        let _installed = install(disk.clone());
        let layer = layer(&mut Rng::new(5), 0x1000);
        let path = layer_dir().join(&layer.name);
        write_layer(&layer_dir(), &layer.name, &layer.bytes, UNLIMITED, None).await.unwrap();
        let file = open_layer(&path, None).await.unwrap();
        let (entry, expected) = &layer.payloads[0];
        let (start, end) = aligned_span(entry);
        disk.borrow_mut().fail_reads(&path, true);
        match file.read_span(start, end).await {
            Err(LayerReadError::Io(why)) => assert!(why.contains(&layer.name), "{why}"),
            other => panic!("expected an I/O error, got {:?}", other.map(|_| "bytes")),
        }
        assert!(matches!(open_layer(&path, None).await, Err(LayerReadError::Io(_))));
        disk.borrow_mut().fail_reads(&path, false);
        let mut span = file.read_span(start, end).await.unwrap();
        let range = file.payload_in(entry, start, &mut span).unwrap();
        assert_eq!(&span[range], &expected[..]);
    });
}
