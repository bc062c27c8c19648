//! The byte stream a page-protocol connection is served over: plain TCP, or TLS over TCP
//! (`tls::stream`). `conn.rs` serves both through these few methods and knows nothing of TLS.
//!
//! The methods are inherent `async fn`s rather than `AsyncRead`/`AsyncWrite` impls because
//! their contract is stronger than `poll_write`'s: `write_all` returns only when every byte is
//! in the kernel (for TLS: encrypted and written), so a connection that then waits for an LSN
//! or a commit never leaves answers buffered in user space, and no caller needs to flush.

use crate::tls::stream::TlsStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::net::{Shutdown, SocketAddr};

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(TlsStream),
}

impl Transport {
    /// Reads what is available (at least one byte); `Ok(0)`: the client closed.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.read(buf).await,
            Transport::Tls(tls) => tls.read(buf).await,
        }
    }

    /// Writes all of `buf` to the kernel.
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(tcp) => tcp.write_all(buf).await,
            Transport::Tls(tls) => tls.write_all(buf).await,
        }
    }

    /// Ends the sending direction (TLS: `close_notify` first), keeps receiving.
    pub(crate) async fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(tcp) => tcp.shutdown(Shutdown::Write).await.map_err(io::Error::from),
            Transport::Tls(tls) => tls.shutdown_write().await,
        }
    }

    /// The socket's fd when the bytes go to it as they are (plain TCP): for a vectored send
    /// straight from the buffer cache's frames. `None` over TLS.
    pub(crate) fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Transport::Plain(tcp) => Some(tcp.as_raw_fd()),
            Transport::Tls(_) => None,
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        let tcp = match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => tls.tcp(),
        };
        tcp.peer_addr().map_err(io::Error::from)
    }
}
