//! Tests of the simulated disk itself, and helpers shared by the simulation tests.

use super::{install, SimDisk};
use crate::runtime::{dma_open_rw, list_dir, remove_file, rename, sync_dir};
use std::future::Future;
use std::path::Path;

/// The seed the simulation tests start from: `SIM_SEED`-independent, fixed unless
/// `SIM_BASE_SEED` is set (CI runs the same cases every time; a long run can vary it).
pub(super) fn base_seed() -> u64 {
    std::env::var("SIM_BASE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_0001)
}

/// Runs `work` on a glommio executor on this thread (the simulated disk is per thread).
pub(super) fn on_executor<T>(work: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .expect("a glommio executor starts")
        .run(work)
}

fn block(fill: u8) -> Vec<u8> {
    vec![fill; 4096]
}

#[test]
fn synced_data_and_entries_survive_a_crash_unsynced_ones_may_not() {
    on_executor(async {
        for seed in 0..64 {
            let disk = SimDisk::new(seed);
            let _installed = install(disk.clone());
            let dir = Path::new("/d");
            let file = dma_open_rw(&dir.join("a")).await.unwrap();
            let mut buffer = file.alloc_dma_buffer(4096);
            buffer.as_bytes_mut().copy_from_slice(&block(1));
            file.write_at(buffer, 0).await.unwrap();
            file.fdatasync().await.unwrap();
            sync_dir(dir).await.unwrap();
            let mut buffer = file.alloc_dma_buffer(4096);
            buffer.as_bytes_mut().copy_from_slice(&block(2));
            file.write_at(buffer, 0).await.unwrap();
            rename(&dir.join("a"), &dir.join("b")).unwrap();
            disk.borrow_mut().crash();
            assert!(file.read_at_aligned(0, 4096).await.is_err(), "dead after a crash");
            disk.borrow_mut().restart();
            let names = list_dir(dir).unwrap();
            assert_eq!(names.len(), 1, "the file is under one name: {names:?}");
            let file = dma_open_rw(&names[0]).await.unwrap();
            let read = file.read_at_aligned(0, 4096).await.unwrap();
            for sector in read.chunks(512) {
                let fill = sector[0];
                assert!(fill == 1 || fill == 2, "a sector is old or new");
                assert!(sector.iter().all(|b| *b == fill), "sectors are atomic");
            }
        }
    });
}

#[test]
fn an_unsynced_creation_or_removal_may_be_lost() {
    on_executor(async {
        let mut outcomes = [0; 2];
        for seed in 0..32 {
            let disk = SimDisk::new(seed);
            let _installed = install(disk.clone());
            let dir = Path::new("/d");
            let kept = dma_open_rw(&dir.join("kept")).await.unwrap();
            kept.close().await.unwrap();
            sync_dir(dir).await.unwrap();
            remove_file(&dir.join("kept")).unwrap();
            dma_open_rw(&dir.join("new")).await.unwrap();
            disk.borrow_mut().crash();
            disk.borrow_mut().restart();
            let names = list_dir(dir).unwrap();
            // Entry changes become durable in order: "new" never without the removal.
            let has = |name: &str| names.contains(&dir.join(name));
            assert!(!(has("new") && has("kept")), "{names:?}");
            outcomes[usize::from(has("kept"))] += 1;
        }
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "both outcomes occur: {outcomes:?}");
    });
}

#[test]
fn injected_errors_change_nothing_and_misaligned_io_is_refused() {
    on_executor(async {
        let disk = SimDisk::new(1);
        let _installed = install(disk.clone());
        let file = dma_open_rw(Path::new("/d/f")).await.unwrap();
        let now = disk.borrow().io_count();
        disk.borrow_mut().fail_at(now + 1, libc::ENOSPC);
        let mut buffer = file.alloc_dma_buffer(4096);
        buffer.as_bytes_mut().fill(3);
        let error = file.write_at(buffer, 0).await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(file.file_size().await.unwrap(), 0);
        let buffer = file.alloc_dma_buffer(100);
        assert_eq!(file.write_at(buffer, 0).await.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        disk.borrow_mut().fail_reads(Path::new("/d/f"), true);
        assert_eq!(
            file.read_at_aligned(0, 512).await.err().and_then(|e| e.raw_os_error()),
            Some(libc::EIO)
        );
        disk.borrow_mut().fail_reads(Path::new("/d/f"), false);
        assert!(file.read_at_aligned(0, 512).await.is_ok());
    });
}
