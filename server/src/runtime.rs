//! The one place that names glommio for files and executors (PLATFORM.md: keep the runtime
//! behind a thin module, so a move to another io_uring runtime touches little).

use std::io;
use std::path::Path;

pub(crate) use glommio::io::DmaFile;

/// Opens (creating if needed) a file for O_DIRECT reads and writes. `DmaFile::create` would open
/// it write-only, and reads from it would fail with `EBADF`.
pub(crate) async fn dma_open_rw(path: &Path) -> io::Result<DmaFile> {
    glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(io::Error::from)
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    let directory = glommio::io::Directory::open(dir).await?;
    directory.sync().await?;
    directory.close().await?;
    Ok(())
}

/// Works around glommio's IOPOLL probe (PLATFORM.md): the first file an executor opens with
/// O_DIRECT decides whether polled I/O is used, and an empty file makes the probe wrongly
/// succeed. Open one non-empty file first, on the data file system.
pub(crate) async fn probe_dma(data_dir: &Path, core: usize) -> io::Result<()> {
    let path = data_dir.join(format!(".dma-probe-core-{core}"));
    std::fs::write(&path, vec![0u8; 4096])?;
    let file = glommio::io::DmaFile::open(&path).await?;
    let read = file.read_at_aligned(0, 4096).await?;
    assert_eq!(read.len(), 4096, "probe file reads back whole");
    file.close().await?;
    std::fs::remove_file(&path)
}

/// Blocking work (metadata files, directory scans) on the core's helper thread.
pub(crate) async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(work).await
}

/// Writes `bytes` to `path` durably: temporary file, fsync, rename, directory fsync.
pub(crate) fn write_file_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir_blocking(path.parent().unwrap_or(Path::new(".")))
}

/// `fsync` of a directory, for blocking contexts.
pub(crate) fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
