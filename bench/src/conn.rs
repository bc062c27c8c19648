//! A non-blocking, pipelined page-protocol connection for the load generator's event loops.
//!
//! `server::client::Client` is blocking: one thread can wait on one socket only. A job thread
//! here drives several connections from one `poll(2)` loop and timestamps each response when
//! its bytes arrive, so latencies are not inflated by waiting on a different socket first. It
//! reuses the server's frame and message codecs (`server::proto`), so it speaks exactly the
//! protocol the server decodes; only the buffering differs.
//!
//! Over TLS (`--tls-ca`), the handshake is completed blocking in [`Conn::connect`]; afterwards
//! `write_some` encrypts buffered requests into rustls and writes the ciphertext the socket
//! takes, and `read_some` reads ciphertext once and decrypts all it can into the input buffer.
//! Ciphertext rustls could not write yet makes [`Conn::wants_write`] true, so the event loop
//! waits for `POLLOUT` as it does for plaintext.

use anyhow::{bail, Context};
use rustls::ClientConnection;
use server::client::ClientTls;
use server::proto::frame::decode_frame;
use server::proto::response::HelloOk;
use server::proto::{Hello, Request, Response, Role, Status, MAX_FRAME_SIZE};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use wal::{Lsn, PageKey, TenantId, TimelineId};

const INPUT_BYTES: usize = 256 * 1024;

pub struct Conn {
    stream: TcpStream,
    /// The TLS session, for a TLS connection.
    tls: Option<Box<ClientConnection>>,
    /// Ciphertext read from the socket and not yet passed to rustls (`tls_at..tls_end`):
    /// rustls reads at most 4 KiB per `read_tls`, so one `read` fills this and rustls is fed
    /// from memory, not with one syscall per 4 KiB.
    tls_in: Vec<u8>,
    tls_at: usize,
    tls_end: usize,
    input: Vec<u8>,
    start: usize,
    filled: usize,
    output: Vec<u8>,
    written: usize,
    next_id: u64,
    pub hello: HelloOk,
}

impl Conn {
    /// Connects, performs the handshake (blocking), then switches the socket to non-blocking.
    pub fn connect(
        addr: &str,
        tls: Option<&ClientTls>,
        role: Role,
        (tenant_id, timeline_id): (TenantId, TimelineId),
        writer_term: u64,
        token: &[u8],
    ) -> anyhow::Result<Conn> {
        let mut stream =
            TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let tls = match tls {
            None => None,
            Some(tls) => {
                let mut session = tls.page_connection()?;
                while session.is_handshaking() {
                    session.complete_io(&mut stream).context("TLS handshake")?;
                }
                Some(Box::new(session))
            }
        };
        let mut conn = Conn {
            stream,
            tls_in: if tls.is_some() { vec![0; INPUT_BYTES] } else { Vec::new() },
            tls_at: 0,
            tls_end: 0,
            tls,
            input: vec![0; INPUT_BYTES],
            start: 0,
            filled: 0,
            output: Vec::with_capacity(64 * 1024),
            written: 0,
            next_id: 1,
            hello: HelloOk { protocol_version: 0, core: 0, last_lsn: 0, writer_term: 0 },
        };
        let hello =
            Hello { auth_token: token, ..Hello::new(role, tenant_id, timeline_id, writer_term) };
        conn.send(&Request::Hello(hello));
        conn.write_some()?; // blocking socket: writes everything
        let body = loop {
            if let Some(answer) = conn.next_response(|r| (r.status(), r.body.to_vec()))? {
                break answer;
            }
            if !conn.read_some()? {
                bail!("server closed the connection during the handshake");
            }
        };
        if body.0 != Status::Ok {
            bail!("Hello refused: {}: {}", body.0, String::from_utf8_lossy(&body.1));
        }
        conn.hello = HelloOk::decode(&body.1)?;
        conn.stream.set_nonblocking(true)?;
        Ok(conn)
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Buffers a request; returns its id.
    pub fn send(&mut self, request: &Request<'_>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        request.encode(id, &mut self.output);
        id
    }

    pub fn send_get_page(
        &mut self,
        key: PageKey,
        request_lsn: Lsn,
        not_modified_since: Lsn,
    ) -> u64 {
        self.send(&Request::GetPage { key, request_lsn, not_modified_since })
    }

    /// Whether buffered request bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        self.written < self.output.len() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Writes what the socket takes without blocking.
    pub fn write_some(&mut self) -> io::Result<()> {
        if self.tls.is_some() {
            return self.write_some_tls();
        }
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(count) => self.written += count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(())
    }

    fn write_some_tls(&mut self) -> io::Result<()> {
        let tls = self.tls.as_mut().expect("a TLS connection");
        while self.written < self.output.len() || tls.wants_write() {
            if self.written < self.output.len() {
                self.written += tls.writer().write(&self.output[self.written..])?;
            }
            match tls.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.written = 0;
        Ok(())
    }

    /// Reads what is available (one `read`). `Ok(false)`: the server closed the connection.
    pub fn read_some(&mut self) -> io::Result<bool> {
        if self.tls.is_some() {
            return self.read_some_tls();
        }
        self.make_room();
        match self.stream.read(&mut self.input[self.filled..]) {
            Ok(0) => Ok(false),
            Ok(count) => {
                self.filled += count;
                Ok(true)
            }
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn read_some_tls(&mut self) -> io::Result<bool> {
        if self.tls_at == self.tls_end {
            match self.stream.read(&mut self.tls_in) {
                Ok(0) => return Ok(false),
                Ok(count) => (self.tls_at, self.tls_end) = (0, count),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(true)
                }
                Err(e) => return Err(e),
            }
        }
        while self.tls_at < self.tls_end {
            let tls = self.tls.as_mut().expect("a TLS connection");
            let mut ciphertext = &self.tls_in[self.tls_at..self.tls_end];
            self.tls_at += tls.read_tls(&mut ciphertext)?;
            tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            loop {
                self.make_room();
                // One socket read can hold more plaintext than the unread tail has room for:
                // grow (bounded by the staging buffer's size per call), since an empty slice
                // would read as the end of the stream.
                if self.input.len() - self.filled < 16 * 1024 {
                    self.input.resize(self.filled + 64 * 1024, 0);
                }
                let tls = self.tls.as_mut().expect("a TLS connection");
                match tls.reader().read(&mut self.input[self.filled..]) {
                    Ok(0) => return Ok(false),
                    Ok(count) => self.filled += count,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(true)
    }

    /// Moves unread bytes to the front when the tail is short, and grows the buffer if the
    /// frame being received is larger than it.
    fn make_room(&mut self) {
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
        let wanted = match self.input[self.start..self.filled].first_chunk::<4>() {
            Some(len) => 4 + (u32::from_le_bytes(*len) as usize).min(MAX_FRAME_SIZE),
            None => 4,
        };
        if self.input.len() - self.filled < 64 * 1024 || self.input.len() - self.start < wanted {
            self.input.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
            if self.input.len() < wanted + 64 * 1024 {
                self.input.resize(wanted + 64 * 1024, 0);
            }
        }
    }

    /// The next complete buffered response, passed borrowed to `on_response`; `None` if no
    /// whole frame is buffered yet.
    pub fn next_response<T>(
        &mut self,
        on_response: impl FnOnce(Response<'_>) -> T,
    ) -> anyhow::Result<Option<T>> {
        let Some((frame, used)) = decode_frame(&self.input[self.start..self.filled])
            .map_err(|e| anyhow::anyhow!("broken response framing: {e}"))?
        else {
            return Ok(None);
        };
        let result = on_response(Response::decode(&frame)?);
        self.start += used;
        Ok(Some(result))
    }
}
