//! A blocking Rust client for the page protocol: connect, handshake, and pipelined requests.
//!
//! Used by `pagecore-bench` and the tests, and the base of what compute proxies embed. Requests
//! are buffered by the `send_*` calls and written by [`Client::flush`] (or by any `recv`); the
//! server answers in request order, so [`Client::recv`] returns responses in the order sent.
//! The blocking helpers (`get_page`, `append_wal`, …) send one request and wait for its answer.
//! [`Client::connect_tls`] speaks the same protocol over TLS ([`ClientTls`]: the CA to trust and
//! the server name to verify).

use crate::proto::frame::{decode_frame, TAG_PROTOCOL_ERROR};
use crate::proto::request::{block_list, record_list};
use crate::proto::response::{get_pages_entries, HelloOk, MalformedResponse};
use crate::proto::{
    Hello, Request, Response, Role, Status, FRAME_HEADER_SIZE, MAX_APPEND_RECORDS, MAX_FRAME_SIZE,
    MAX_GET_PAGES_BLOCKS,
};
pub use crate::tls::ClientTls;
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use wal::{BlockNumber, Lsn, PageKey, Record, RelTag, TenantId, TimelineId, PAGE_SIZE};

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Malformed(#[from] MalformedResponse),
    #[error("server answered {status}: {message}")]
    Server { status: Status, message: String },
    #[error("connection closed by server")]
    Closed,
    #[error("response for request {got} while expecting {expected}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("request not sent: {0}")]
    TooLarge(String),
}

impl ClientError {
    /// The server's status for an in-band error.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An owned copy of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedResponse {
    pub tag: u8,
    pub request_id: u64,
    pub status: Status,
    /// Body for `Ok`, message bytes otherwise.
    pub body: Vec<u8>,
}

impl OwnedResponse {
    /// `Ok(body)`, or the in-band error as `ClientError::Server`.
    pub fn into_result(self) -> Result<Vec<u8>, ClientError> {
        if self.status == Status::Ok {
            Ok(self.body)
        } else {
            let message = String::from_utf8_lossy(&self.body).into_owned();
            Err(ClientError::Server { status: self.status, message })
        }
    }
}

/// The socket, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            // A server closes without `close_notify` when it ends a connection on an error;
            // frames are length-prefixed, so a cut-off frame is still detected.
            Stream::Tls(tls) => match tls.read(buf) {
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// One connection to pagecore for one tenant timeline.
pub struct Client {
    stream: Stream,
    input: Vec<u8>,
    start: usize,
    filled: usize,
    output: Vec<u8>,
    scratch: Vec<u8>,
    next_id: u64,
    hello: HelloOk,
}

/// A TCP connection with Nagle off (requests are small and pipelined).
fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl Client {
    /// Connects and performs the handshake, with no auth token (a server with
    /// authentication on answers `Unauthorized`).
    pub fn connect(
        addr: impl ToSocketAddrs,
        role: Role,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        writer_term: u64,
    ) -> Result<Client, ClientError> {
        Client::connect_with_token(addr, role, tenant_id, timeline_id, writer_term, &[])
    }

    /// Connects and performs the handshake, sending `token` (from `server::auth::mint` or
    /// `pagecore token mint`) as the `Hello`'s `auth_token`.
    pub fn connect_with_token(
        addr: impl ToSocketAddrs,
        role: Role,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        writer_term: u64,
        token: &[u8],
    ) -> Result<Client, ClientError> {
        let stream = Stream::Plain(connect_tcp(addr)?);
        Client::handshake(stream, role, tenant_id, timeline_id, writer_term, token)
    }

    /// Like [`Client::connect_with_token`], over TLS: fails with the verification error if the
    /// server's certificate is not signed by `tls`'s CA for its server name.
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        tls: &ClientTls,
        role: Role,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        writer_term: u64,
        token: &[u8],
    ) -> Result<Client, ClientError> {
        let stream = Stream::Tls(Box::new(tls.connect(connect_tcp(addr)?)?));
        Client::handshake(stream, role, tenant_id, timeline_id, writer_term, token)
    }

    /// Sends `Hello` and reads its answer.
    fn handshake(
        stream: Stream,
        role: Role,
        tenant_id: TenantId,
        timeline_id: TimelineId,
        writer_term: u64,
        token: &[u8],
    ) -> Result<Client, ClientError> {
        let mut client = Client {
            stream,
            input: vec![0; 64 * 1024],
            start: 0,
            filled: 0,
            output: Vec::with_capacity(64 * 1024),
            scratch: Vec::new(),
            next_id: 1,
            hello: HelloOk { protocol_version: 0, core: 0, last_lsn: 0, writer_term: 0 },
        };
        let hello =
            Hello { auth_token: token, ..Hello::new(role, tenant_id, timeline_id, writer_term) };
        let id = client.send(&Request::Hello(hello));
        let body = client.recv_expecting(id)?.into_result()?;
        client.hello = HelloOk::decode(&body)?;
        Ok(client)
    }

    /// What the server said in answer to `Hello`.
    pub fn hello(&self) -> &HelloOk {
        &self.hello
    }

    /// The underlying socket (for timeouts).
    pub fn stream(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
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

    /// Buffers a `GetPages`; refuses more than `MAX_GET_PAGES_BLOCKS` blocks.
    pub fn send_get_pages(
        &mut self,
        rel: RelTag,
        lsn: Lsn,
        blocks: &[BlockNumber],
    ) -> Result<u64, ClientError> {
        if blocks.len() > MAX_GET_PAGES_BLOCKS {
            let why = format!("{} blocks, at most {MAX_GET_PAGES_BLOCKS}", blocks.len());
            return Err(ClientError::TooLarge(why));
        }
        let mut storage = std::mem::take(&mut self.scratch);
        let id =
            self.send(&Request::GetPages { rel, lsn, blocks: block_list(blocks, &mut storage) });
        self.scratch = storage;
        Ok(id)
    }

    /// Buffers an `AppendWal`; refuses a batch that would not fit one frame (about 127 page
    /// images) or has more than `MAX_APPEND_RECORDS` records: split it.
    pub fn send_append_wal(&mut self, records: &[Record]) -> Result<u64, ClientError> {
        let bytes: usize = records.iter().map(|r| 4 + r.encoded_size()).sum();
        let frame_len = FRAME_HEADER_SIZE - 4 + 4 + bytes;
        if records.len() > MAX_APPEND_RECORDS || frame_len > MAX_FRAME_SIZE {
            let why = format!(
                "{} records in a {frame_len}-byte frame; at most {MAX_APPEND_RECORDS} records \
                 and {MAX_FRAME_SIZE} bytes",
                records.len()
            );
            return Err(ClientError::TooLarge(why));
        }
        let mut storage = std::mem::take(&mut self.scratch);
        let id = self.send(&Request::AppendWal { records: record_list(records, &mut storage) });
        self.scratch = storage;
        Ok(id)
    }

    /// Writes every buffered request.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output)?;
            self.output.clear();
        }
        Ok(())
    }

    /// Sends raw bytes as they are (tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.stream.write_all(bytes)
    }

    /// Receives the next response and passes it, borrowed, to `on_response`.
    pub fn recv_with<T>(
        &mut self,
        on_response: impl FnOnce(Response<'_>) -> T,
    ) -> Result<T, ClientError> {
        self.flush()?;
        loop {
            if let Some((frame, used)) = decode_frame(&self.input[self.start..self.filled])
                .map_err(|_| MalformedResponse("bad frame length"))?
            {
                let response = Response::decode(&frame)?;
                let result = on_response(response);
                self.start += used;
                if self.start == self.filled {
                    self.start = 0;
                    self.filled = 0;
                }
                return Ok(result);
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        if self.filled == self.input.len() || self.input.len() - self.start < 4 + MAX_FRAME_SIZE {
            self.input.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
            let needed = match self.input[..self.filled].first_chunk::<4>() {
                Some(len) => 4 + (u32::from_le_bytes(*len) as usize).min(MAX_FRAME_SIZE),
                None => 4,
            };
            if self.input.len() < needed.max(self.filled + 1) {
                self.input.resize(needed.max(self.filled + 1), 0);
            }
        }
        let count = self.stream.read(&mut self.input[self.filled..])?;
        if count == 0 {
            return Err(ClientError::Closed);
        }
        self.filled += count;
        Ok(())
    }

    /// Receives the next response as an owned copy.
    pub fn recv(&mut self) -> Result<OwnedResponse, ClientError> {
        self.recv_with(|r| OwnedResponse {
            tag: r.tag,
            request_id: r.request_id,
            status: r.status(),
            body: r.body.to_vec(),
        })
    }

    fn recv_expecting(&mut self, id: u64) -> Result<OwnedResponse, ClientError> {
        let response = self.recv()?;
        if response.tag == TAG_PROTOCOL_ERROR {
            return response.into_result().map(|_| unreachable!("protocol errors are never Ok"));
        }
        if response.request_id != id {
            return Err(ClientError::OutOfOrder { expected: id, got: response.request_id });
        }
        Ok(response)
    }

    pub fn ping(&mut self) -> Result<(), ClientError> {
        let id = self.send(&Request::Ping);
        self.recv_expecting(id)?.into_result().map(|_| ())
    }

    /// The page `key` as of `request_lsn`; the server waits until `not_modified_since` is
    /// ingested.
    pub fn get_page(
        &mut self,
        key: PageKey,
        request_lsn: Lsn,
        not_modified_since: Lsn,
    ) -> Result<Box<[u8; PAGE_SIZE]>, ClientError> {
        let id = self.send_get_page(key, request_lsn, not_modified_since);
        let body = self.recv_expecting(id)?.into_result()?;
        let page: Box<[u8; PAGE_SIZE]> = body
            .into_boxed_slice()
            .try_into()
            .map_err(|_| MalformedResponse("GetPage body is not one page"))?;
        Ok(page)
    }

    /// Pages of `blocks` at `lsn`: one result per block.
    pub fn get_pages(
        &mut self,
        rel: RelTag,
        lsn: Lsn,
        blocks: &[BlockNumber],
    ) -> Result<Vec<Result<Vec<u8>, Status>>, ClientError> {
        let id = self.send_get_pages(rel, lsn, blocks)?;
        let body = self.recv_expecting(id)?.into_result()?;
        let entries = get_pages_entries(&body)?;
        Ok(entries
            .into_iter()
            .map(|(status, page)| page.map(<[u8]>::to_vec).ok_or(status))
            .collect())
    }

    pub fn rel_size(&mut self, rel: RelTag, lsn: Lsn) -> Result<u32, ClientError> {
        let id = self.send(&Request::RelSize { rel, lsn });
        let body = self.recv_expecting(id)?.into_result()?;
        let bytes = body.first_chunk::<4>().ok_or(MalformedResponse("RelSize body too short"))?;
        Ok(u32::from_le_bytes(*bytes))
    }

    /// Appends records; returns the durable LSN once the server acknowledged them.
    pub fn append_wal(&mut self, records: &[Record]) -> Result<Lsn, ClientError> {
        let id = self.send_append_wal(records)?;
        let body = self.recv_expecting(id)?.into_result()?;
        let bytes = body.first_chunk::<8>().ok_or(MalformedResponse("AppendWal body too short"))?;
        Ok(Lsn(u64::from_le_bytes(*bytes)))
    }
}
