//! The one place that names glommio for files and executors (PLATFORM.md: keep the runtime
//! behind a thin module, so a move to another io_uring runtime touches little).
//!
//! Every file operation of the WAL (`wal_io`) and the layer files (`layer_io`) goes through
//! here: [`File`] (O_DIRECT reads and writes, `fdatasync`), [`rename`], [`remove_file`],
//! [`list_dir`] and [`sync_dir`]. By default they forward to glommio and std. In unit tests a
//! simulated disk (`crate::sim::SimDisk`) can be installed on the current thread (glommio
//! executors are single-threaded); the same calls then hit its in-memory model, which drops
//! unsynced writes, tears them and crashes at any I/O. So the crash tests run the real WAL and
//! layer code, not a copy of it. Nothing outside this module may open, rename or delete a WAL
//! or layer file, or the simulation would miss it.

use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// An open file for O_DIRECT I/O: offsets and lengths are multiples of 512 (4 KiB in practice).
pub(crate) struct File(FileInner);

enum FileInner {
    Dma(glommio::io::DmaFile),
    #[cfg(test)]
    Sim(crate::sim::SimFile),
}

/// A write buffer, aligned for O_DIRECT; from [`File::alloc_dma_buffer`].
pub(crate) struct IoBuffer(BufferInner);

enum BufferInner {
    Dma(glommio::io::DmaBuffer),
    #[cfg(test)]
    Sim(Vec<u8>),
}

impl IoBuffer {
    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            BufferInner::Dma(buffer) => buffer.as_bytes_mut(),
            #[cfg(test)]
            BufferInner::Sim(bytes) => bytes,
        }
    }
}

/// Bytes read by [`File::read_at_aligned`]: fewer than asked at the end of the file.
pub(crate) struct ReadBytes(ReadInner);

enum ReadInner {
    Dma(glommio::io::ReadResult),
    #[cfg(test)]
    Sim(Vec<u8>),
}

impl Deref for ReadBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            ReadInner::Dma(read) => read,
            #[cfg(test)]
            ReadInner::Sim(bytes) => bytes,
        }
    }
}

impl File {
    pub(crate) async fn read_at_aligned(&self, pos: u64, size: usize) -> io::Result<ReadBytes> {
        match &self.0 {
            FileInner::Dma(file) => {
                let read = file.read_at_aligned(pos, size).await.map_err(os_error)?;
                Ok(ReadBytes(ReadInner::Dma(read)))
            }
            #[cfg(test)]
            FileInner::Sim(file) => Ok(ReadBytes(ReadInner::Sim(file.read_at(pos, size)?))),
        }
    }

    /// Writes all of `buffer` at `pos`. Durable only after [`File::fdatasync`].
    pub(crate) async fn write_at(&self, buffer: IoBuffer, pos: u64) -> io::Result<usize> {
        match (&self.0, buffer.0) {
            (FileInner::Dma(file), BufferInner::Dma(buffer)) => {
                file.write_at(buffer, pos).await.map_err(os_error)
            }
            #[cfg(test)]
            (FileInner::Sim(file), BufferInner::Sim(bytes)) => file.write_at(&bytes, pos),
            #[cfg(test)]
            _ => Err(io::Error::other("buffer allocated for another kind of file")),
        }
    }

    pub(crate) fn alloc_dma_buffer(&self, size: usize) -> IoBuffer {
        match &self.0 {
            FileInner::Dma(file) => IoBuffer(BufferInner::Dma(file.alloc_dma_buffer(size))),
            #[cfg(test)]
            FileInner::Sim(_) => IoBuffer(BufferInner::Sim(vec![0; size])),
        }
    }

    pub(crate) async fn fdatasync(&self) -> io::Result<()> {
        match &self.0 {
            FileInner::Dma(file) => file.fdatasync().await.map_err(os_error),
            #[cfg(test)]
            FileInner::Sim(file) => file.fdatasync(),
        }
    }

    pub(crate) async fn file_size(&self) -> io::Result<u64> {
        match &self.0 {
            FileInner::Dma(file) => file.file_size().await.map_err(os_error),
            #[cfg(test)]
            FileInner::Sim(file) => file.file_size(),
        }
    }

    pub(crate) async fn close(self) -> io::Result<()> {
        match self.0 {
            FileInner::Dma(file) => file.close().await.map_err(os_error),
            #[cfg(test)]
            FileInner::Sim(file) => file.close(),
        }
    }
}

/// Opens (creating if needed) a file for O_DIRECT reads and writes. `DmaFile::create` would open
/// it write-only, and reads from it would fail with `EBADF`.
pub(crate) async fn dma_open_rw(path: &Path) -> io::Result<File> {
    #[cfg(test)]
    if let Some(disk) = crate::sim::installed() {
        return Ok(File(FileInner::Sim(crate::sim::SimFile::open(disk, path)?)));
    }
    let file = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(os_error)?;
    Ok(File(FileInner::Dma(file)))
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) async fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    if let Some(disk) = crate::sim::installed() {
        return disk.borrow_mut().sync_dir(dir);
    }
    let directory = glommio::io::Directory::open(dir).await.map_err(os_error)?;
    directory.sync().await.map_err(os_error)?;
    directory.close().await.map_err(os_error)
}

/// glommio's I/O errors print the file's full path and descriptor, and converted to
/// `io::Error` they lose the OS error code. Keep only the OS error: its message reaches
/// clients (who must not learn the data directory's layout) and callers match on its code.
fn os_error(error: glommio::GlommioError<()>) -> io::Error {
    match error {
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => io::Error::from(other),
    }
}

/// Renames `from` to `to`, replacing `to`; durable only after [`sync_dir`].
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(test)]
    if let Some(disk) = crate::sim::installed() {
        return disk.borrow_mut().rename(from, to);
    }
    std::fs::rename(from, to)
}

/// Removes a file; durable only after [`sync_dir`].
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    #[cfg(test)]
    if let Some(disk) = crate::sim::installed() {
        return disk.borrow_mut().remove_file(path);
    }
    std::fs::remove_file(path)
}

/// The paths of the entries of `dir`, in no particular order.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    #[cfg(test)]
    if let Some(disk) = crate::sim::installed() {
        return disk.borrow_mut().list_dir(dir);
    }
    std::fs::read_dir(dir)?.map(|entry| Ok(entry?.path())).collect()
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
