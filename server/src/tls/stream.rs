//! A TLS server connection over a glommio `TcpStream`: rustls driven by hand.
//!
//! rustls does no I/O itself; this module moves ciphertext between the socket and the
//! `ServerConnection` (`read_tls` / `process_new_packets` / `reader` on the way in, `writer` /
//! `write_tls` on the way out). glommio's socket reads and writes are readiness based (a
//! non-blocking syscall first, then a wait for readiness), so a `Pending` poll can be turned
//! into `WouldBlock` for rustls' blocking-style `Read`/`Write` calls and retried later with no
//! bytes lost ([`PollIo`]).
//!
//! Bounds: rustls buffers at most one read's worth of ciphertext and the plaintext it decodes
//! (the caller drains the plaintext before more ciphertext is read), and [`TlsStream::write_all`]
//! hands rustls at most `OUTGOING_LIMIT_BYTES` of plaintext before it writes the ciphertext
//! out, so per-connection TLS memory stays at a few records whatever the client sends.
//!
//! Handoff: the whole TLS session state is the `ServerConnection` (keys, sequence numbers,
//! buffered ciphertext or plaintext not read yet). [`TlsStream::into_parts`] writes out
//! anything pending, then gives up the socket and the boxed connection; `serve.rs` sends the
//! connection with the socket's fd to the owner core, which continues the session with
//! [`TlsStream::from_parts`]. The two cores never use the session at the same time.

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, IoSlice, Read as _, Write as _};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Plaintext handed to rustls per flush: four full records.
const OUTGOING_LIMIT_BYTES: usize = 64 * 1024;

pub(crate) struct TlsStream {
    tcp: TcpStream,
    tls: Box<ServerConnection>,
}

impl TlsStream {
    /// Starts a server session on an accepted socket; the handshake runs inside the first
    /// reads.
    pub(crate) fn new(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(OUTGOING_LIMIT_BYTES));
        Ok(TlsStream { tcp, tls: Box::new(tls) })
    }

    /// Continues a session another core started (see the module doc).
    pub(crate) fn from_parts(tcp: TcpStream, tls: Box<ServerConnection>) -> TlsStream {
        TlsStream { tcp, tls }
    }

    /// Writes out everything pending and gives up the socket and the session.
    pub(crate) async fn into_parts(mut self) -> io::Result<(TcpStream, Box<ServerConnection>)> {
        futures_lite::future::poll_fn(|cx| self.poll_flush_tls(cx)).await?;
        Ok((self.tcp, self.tls))
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Reads plaintext; `Ok(0)` once the client closed the session with `close_notify`. A
    /// client that closes the socket without it gets `UnexpectedEof`; bytes that are not TLS
    /// get `InvalidData` (and rustls' alert is sent first, if the socket takes it).
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        futures_lite::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Encrypts all of `buf` and writes it to the socket before returning, so nothing is left
    /// buffered when the caller goes on to wait (callers never flush).
    pub(crate) async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let count = self.tls.writer().write(buf)?;
            if count == 0 && !self.tls.wants_write() {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[count..];
            futures_lite::future::poll_fn(|cx| self.poll_flush_tls(cx)).await?;
        }
        Ok(())
    }

    /// Sends `close_notify`, then closes the sending side of the socket.
    pub(crate) async fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        futures_lite::future::poll_fn(|cx| self.poll_flush_tls(cx)).await?;
        self.tcp.shutdown(Shutdown::Write).await.map_err(io::Error::from)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(count) => return Poll::Ready(Ok(count)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
            // Handshake messages owed to the client; if the socket is full, the waker is
            // registered and the read below still runs.
            if let Poll::Ready(Err(error)) = self.poll_flush_tls(cx) {
                return Poll::Ready(Err(error));
            }
            match self.tls.read_tls(&mut PollIo { tcp: &mut self.tcp, cx }) {
                Ok(_) => {} // 0 = end of stream: rustls notes it, the reader reports it above
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(error) => return Poll::Ready(Err(error)),
            }
            if let Err(error) = self.tls.process_new_packets() {
                let _ = self.poll_flush_tls(cx); // the alert rustls queued, best effort
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
            }
        }
    }

    /// Writes queued ciphertext until none is left (`Ready`) or the socket is full (`Pending`).
    fn poll_flush_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut PollIo { tcp: &mut self.tcp, cx }) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The socket as blocking-style `Read`/`Write` for rustls: `Pending` becomes `WouldBlock`,
/// with the waker registered for the socket's readiness.
struct PollIo<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl io::Read for PollIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_read(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl io::Write for PollIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// rustls hands over its queued records (up to 64) in one call: send them with one
    /// `sendmsg`, not one `send` per 16 KiB record. If the socket is full, `write` registers
    /// the waker (glommio's `poll_write` retries the send first).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(first) = bufs.iter().find(|b| !b.is_empty()) else { return Ok(0) };
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is guaranteed ABI-compatible with iovec on Unix; sendmsg only reads them.
        message.msg_iov = bufs.as_ptr().cast_mut().cast::<libc::iovec>();
        message.msg_iovlen = bufs.len().min(MAX_IOVECS);
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: the fd is the open socket; the iovecs point into `bufs`, alive for the call.
        let sent = unsafe { libc::sendmsg(self.tcp.as_raw_fd(), &message, flags) };
        if let Ok(sent) = usize::try_from(sent) {
            return Ok(sent);
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => self.write(first),
            _ => Err(error),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// At most this many iovecs per `sendmsg` (Linux's `UIO_MAXIOV` is 1024; rustls passes <= 64).
const MAX_IOVECS: usize = 64;
