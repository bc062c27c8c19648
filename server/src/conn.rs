//! Serving one compute connection on the core that owns its tenant.
//!
//! The first frame must be `Hello`. The accepting core reads it, and if another core owns the
//! tenant, hands the socket over (see `serve.rs`); from then on the owner core alone serves the
//! connection. Requests are processed in arrival order and responses are written in the same
//! order (PROTOCOL.md, "Pipelining"); all responses produced from one read are written with one
//! `write`. Before a request waits (for an LSN, or for a group commit), the responses already
//! produced are written so earlier requests are not held back.
//!
//! Errors: a request that is well framed but wrong is answered in-band and the connection goes
//! on; broken framing gets a `ProtocolError` frame and the connection is closed.

use crate::core::LocalCore;
use crate::proto::frame::{decode_frame, Tag, TAG_PROTOCOL_ERROR};
use crate::proto::request::{BlockList, Hello, RecordList};
use crate::proto::response::{begin_ok, encode_error, encode_protocol_error, finish, HelloOk};
use crate::proto::{Frame, Request, Role, Status, MAX_FRAME_SIZE, PROTOCOL_VERSION};
use crate::read::{self, ReadError};
use crate::timeline::{AppendError, Timeline};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::rc::Rc;
use std::time::Duration;
use wal::codec::Writer;
use wal::{Lsn, PageKey, RelTag, PAGE_SIZE};

/// Initial input buffer per connection; grows (once) up to one maximum frame if a client sends
/// large frames.
const INITIAL_INPUT_BYTES: usize = 64 * 1024;

/// Bytes read from a connection and not yet consumed.
pub(crate) struct Input {
    buf: Vec<u8>,
    start: usize,
    filled: usize,
}

impl Input {
    pub(crate) fn new() -> Self {
        Input { buf: vec![0; INITIAL_INPUT_BYTES], start: 0, filled: 0 }
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        let filled = bytes.len();
        let mut buf = bytes;
        buf.resize(filled.max(INITIAL_INPUT_BYTES), 0);
        Input { buf, start: 0, filled }
    }

    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.filled]
    }

    fn consume(&mut self, count: usize) {
        self.start += count;
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
    }

    /// Reads more bytes, making room for a whole frame first. `Ok(0)` = peer closed.
    pub(crate) async fn read_more(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        let unread = self.filled - self.start;
        let wanted = match self.unread().first_chunk::<4>() {
            Some(len) => (4 + u32::from_le_bytes(*len) as usize).min(4 + MAX_FRAME_SIZE),
            None => 4,
        };
        if self.buf.len() - self.start < wanted || self.filled == self.buf.len() {
            self.buf.copy_within(self.start..self.filled, 0);
            self.start = 0;
            self.filled = unread;
            if self.buf.len() < wanted {
                self.buf.resize(wanted, 0);
            }
        }
        let count = stream.read(&mut self.buf[self.filled..]).await?;
        self.filled += count;
        Ok(count)
    }

    /// Everything unread, for handing the connection to another core.
    pub(crate) fn into_unread(mut self) -> Vec<u8> {
        self.buf.truncate(self.filled);
        self.buf.drain(..self.start);
        self.buf
    }
}

/// Reads until a whole first frame is buffered. `Ok(false)`: the peer closed first.
pub(crate) async fn read_first_frame(
    stream: &mut TcpStream,
    input: &mut Input,
) -> io::Result<bool> {
    loop {
        match decode_frame(input.unread()) {
            Ok(Some(_)) | Err(_) => return Ok(true),
            Ok(None) => {}
        }
        if input.read_more(stream).await? == 0 {
            return Ok(false);
        }
    }
}

/// The tenant the first frame names, if it is a well-formed `Hello`; otherwise the reason,
/// already encoded as a protocol error in `out`.
pub(crate) fn hello_tenant(input: &Input, out: &mut Vec<u8>) -> Option<wal::TenantId> {
    match decode_frame(input.unread()) {
        Ok(Some((frame, _))) => match Request::decode(&frame) {
            Ok(Request::Hello(hello)) => Some(hello.tenant_id),
            Ok(_) => {
                encode_protocol_error(out, format_args!("the first frame must be Hello"));
                None
            }
            Err(error) => {
                encode_protocol_error(out, format_args!("invalid Hello: {error}"));
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            encode_protocol_error(out, format_args!("{error}"));
            None
        }
    }
}

/// What a request handler needs about its connection.
struct Session {
    timeline: Rc<Timeline>,
    role: Role,
    writer_term: u64,
    lsn_wait: Duration,
}

/// Serves a connection whose first buffered frame is a `Hello` for a tenant this core owns.
pub(crate) async fn serve(core: Rc<LocalCore>, mut stream: TcpStream, mut input: Input) {
    let mut out = Vec::with_capacity(64 * 1024);
    let Some(session) = handshake(&core, &mut input, &mut out).await else {
        let _ = stream.write_all(&out).await;
        return;
    };
    let peer = stream.peer_addr().ok();
    if let Err(error) = serve_requests(&session, &mut stream, &mut input, &mut out).await {
        tracing::info!(?peer, %error, "connection ended");
    }
}

async fn handshake(core: &Rc<LocalCore>, input: &mut Input, out: &mut Vec<u8>) -> Option<Session> {
    let (frame, used) = decode_frame(input.unread()).ok()??;
    let Ok(Request::Hello(hello)) = Request::decode(&frame) else { return None };
    let request_id = frame.request_id;
    let reject = |out: &mut Vec<u8>, status, message: String| {
        encode_error(out, Tag::Hello.response(), request_id, status, format_args!("{message}"));
        None
    };
    let Hello { protocol_version, role, tenant_id, timeline_id, writer_term, .. } = hello;
    if protocol_version != PROTOCOL_VERSION {
        let message = format!(
            "protocol version {protocol_version} unsupported; server speaks {PROTOCOL_VERSION}"
        );
        return reject(out, Status::BadRequest, message);
    }
    let Some(timeline) = core.timeline(tenant_id, timeline_id) else {
        return reject(
            out,
            Status::UnknownTimeline,
            format!("tenant {tenant_id} timeline {timeline_id} not found"),
        );
    };
    if let Some(why) = timeline.broken() {
        return reject(out, Status::Corrupt, format!("timeline cannot be served: {why}"));
    }
    if role == Role::Writer {
        match timeline.adopt_term(writer_term).await {
            Ok(()) => {}
            Err(AppendError::Fenced { term, current }) => {
                return reject(
                    out,
                    Status::Fenced,
                    format!("writer term {term} is below the current term {current}"),
                );
            }
            Err(other) => return reject(out, Status::Internal, format!("{other:?}")),
        }
    }
    let start = begin_ok(out, Tag::Hello.response(), request_id);
    HelloOk {
        protocol_version: PROTOCOL_VERSION,
        core: u16::try_from(core.id).unwrap_or(u16::MAX),
        last_lsn: timeline.applied.get().0,
        writer_term: timeline.writer_term(),
    }
    .encode(out);
    finish(out, start);
    input.consume(used);
    let lsn_wait = Duration::from_millis(core.config.lsn_wait_timeout_ms);
    Some(Session { timeline, role, writer_term, lsn_wait })
}

async fn serve_requests(
    session: &Session,
    stream: &mut TcpStream,
    input: &mut Input,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        loop {
            match decode_frame(input.unread()) {
                Ok(Some((frame, used))) => {
                    handle(session, &frame, stream, out).await?;
                    input.consume(used);
                }
                Ok(None) => break,
                Err(error) => {
                    encode_protocol_error(out, format_args!("{error}"));
                    stream.write_all(out).await?;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(out).await?;
            out.clear();
        }
        if input.read_more(stream).await? == 0 {
            return Ok(());
        }
    }
}

/// Answers one request into `out`.
async fn handle(
    session: &Session,
    frame: &Frame<'_>,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let id = frame.request_id;
    let response_tag = if frame.tag & 0x80 == 0 { frame.tag | 0x80 } else { TAG_PROTOCOL_ERROR };
    let request = match Request::decode(frame) {
        Ok(request) => request,
        Err(error) => {
            encode_error(out, response_tag, id, Status::BadRequest, format_args!("{error}"));
            return Ok(());
        }
    };
    match request {
        Request::Ping => {
            let start = begin_ok(out, response_tag, id);
            finish(out, start);
        }
        Request::Hello(_) => {
            encode_error(
                out,
                response_tag,
                id,
                Status::BadRequest,
                format_args!("Hello was already sent"),
            );
        }
        Request::GetPage { key, request_lsn, not_modified_since } => {
            if let Err((status, message)) = check_read_lsns(request_lsn, not_modified_since) {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            if let Err((status, message)) =
                wait_lsn(session, not_modified_since, stream, out).await?
            {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            get_page(session, key, request_lsn, response_tag, id, out).await;
        }
        Request::GetPages { rel, lsn, blocks } => {
            if let Err((status, message)) = wait_for_read(session, lsn, stream, out).await? {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            get_pages(session, rel, lsn, blocks, response_tag, id, out).await;
        }
        Request::RelSize { rel, lsn } => {
            if let Err((status, message)) = wait_for_read(session, lsn, stream, out).await? {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            if let Err(error) = read::check_horizon(&session.timeline, lsn) {
                let (status, message) = read_refusal(error);
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            match read::rel_size(&session.timeline, rel, lsn) {
                Some(nblocks) => {
                    let start = begin_ok(out, response_tag, id);
                    out.put_u32(nblocks);
                    out.put_u32(0);
                    finish(out, start);
                }
                None => encode_error(
                    out,
                    response_tag,
                    id,
                    Status::NotFound,
                    format_args!("relation {rel} does not exist at {lsn}"),
                ),
            }
        }
        Request::AppendWal { records } => {
            let result = append(session, records, stream, out).await?;
            match result {
                Ok(durable) => {
                    let start = begin_ok(out, response_tag, id);
                    out.put_u64(durable.0);
                    finish(out, start);
                }
                Err((status, message)) => {
                    encode_error(out, response_tag, id, status, format_args!("{message}"));
                }
            }
        }
    }
    Ok(())
}

type Refusal = (Status, String);

fn check_read_lsns(request_lsn: Lsn, not_modified_since: Lsn) -> Result<(), Refusal> {
    if request_lsn == Lsn::INVALID {
        return Err((Status::BadRequest, "request_lsn must not be 0".into()));
    }
    if not_modified_since > request_lsn {
        return Err((
            Status::BadRequest,
            format!("not_modified_since {not_modified_since} is after request_lsn {request_lsn}"),
        ));
    }
    Ok(())
}

async fn wait_for_read(
    session: &Session,
    lsn: Lsn,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<Result<(), Refusal>> {
    if lsn == Lsn::INVALID {
        return Ok(Err((Status::BadRequest, "lsn must not be 0".into())));
    }
    wait_lsn(session, lsn, stream, out).await
}

/// Waits until the timeline has ingested `target`, for at most the configured time. Writes the
/// responses already produced first, so they are not held back by the wait.
async fn wait_lsn(
    session: &Session,
    target: Lsn,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<Result<(), Refusal>> {
    let applied = &session.timeline.applied;
    if applied.get() >= target {
        return Ok(Ok(()));
    }
    if let Some(why) = applied.failure() {
        return Ok(Err((Status::Internal, why)));
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    let waited =
        glommio::timer::timeout(session.lsn_wait, async { Ok(applied.wait_for(target).await) })
            .await;
    Ok(match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => Err((Status::Internal, why)),
        Err(_) => Err((
            Status::LsnTimeout,
            format!(
                "LSN {target} not ingested within {} ms (last ingested {})",
                session.lsn_wait.as_millis(),
                applied.get()
            ),
        )),
    })
}

async fn get_page(
    session: &Session,
    key: PageKey,
    lsn: Lsn,
    response_tag: u8,
    id: u64,
    out: &mut Vec<u8>,
) {
    let start = begin_ok(out, response_tag, id);
    let page_at = out.len();
    out.resize(page_at + PAGE_SIZE, 0);
    let page: &mut [u8; PAGE_SIZE] = (&mut out[page_at..]).try_into().expect("exactly one page");
    match read::get_page(&session.timeline, key, lsn, page).await {
        Ok(layers) => {
            count_read(&session.timeline, layers);
            finish(out, start)
        }
        Err(error) => {
            out.truncate(start);
            let (status, message) = read_refusal(error);
            encode_error(out, response_tag, id, status, format_args!("{key}: {message}"));
        }
    }
}

fn count_read(timeline: &Timeline, layers: u32) {
    let counters = &timeline.counters;
    counters.reads.set(counters.reads.get() + 1);
    counters.read_layers_total.set(counters.read_layers_total.get() + u64::from(layers));
    counters.read_layers_max.set(counters.read_layers_max.get().max(layers));
}

fn read_refusal(error: ReadError) -> Refusal {
    match error {
        ReadError::NotFound(why) => (Status::NotFound, why),
        ReadError::TooOld(why) => (Status::LsnTooOld, why),
        ReadError::Corrupt(why) => {
            tracing::error!(%why, "corrupt data refused");
            (Status::Corrupt, why)
        }
        ReadError::Internal(why) => {
            tracing::error!(%why, "read failed");
            (Status::Internal, why)
        }
    }
}

async fn get_pages(
    session: &Session,
    rel: RelTag,
    lsn: Lsn,
    blocks: BlockList<'_>,
    response_tag: u8,
    id: u64,
    out: &mut Vec<u8>,
) {
    if let Err(error) = read::check_horizon(&session.timeline, lsn) {
        let (status, message) = read_refusal(error);
        encode_error(out, response_tag, id, status, format_args!("{message}"));
        return;
    }
    let start = begin_ok(out, response_tag, id);
    out.put_u16(u16::try_from(blocks.len()).expect("GetPages count is bounded"));
    out.put_u16(0);
    for block in blocks.iter() {
        let entry_at = out.len();
        out.put_u16(Status::Ok as u16);
        out.put_u16(0);
        let page_at = out.len();
        out.resize(page_at + PAGE_SIZE, 0);
        let page: &mut [u8; PAGE_SIZE] =
            (&mut out[page_at..]).try_into().expect("exactly one page");
        let status =
            match read::get_page(&session.timeline, PageKey { rel, block }, lsn, page).await {
                Ok(layers) => {
                    count_read(&session.timeline, layers);
                    continue;
                }
                Err(error) => read_refusal(error).0,
            };
        out.truncate(page_at);
        out[entry_at..entry_at + 2].copy_from_slice(&(status as u16).to_le_bytes());
    }
    finish(out, start);
}

async fn append(
    session: &Session,
    records: RecordList<'_>,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<Result<Lsn, Refusal>> {
    if session.role != Role::Writer {
        return Ok(Err((Status::Unauthorized, "this connection is not a writer".into())));
    }
    let records = match records.decode() {
        Ok(records) => records,
        Err(error) => return Ok(Err((Status::BadRequest, format!("invalid record: {error}")))),
    };
    let timeline = &session.timeline;
    let target = match timeline.accept(session.writer_term, records) {
        Ok(target) => target,
        Err(refusal) => return Ok(Err(append_refusal(refusal))),
    };
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(match timeline.applied.wait_for(target).await {
        Ok(durable) => Ok(durable),
        Err(why) => Err((Status::Internal, why)),
    })
}

fn append_refusal(refusal: AppendError) -> Refusal {
    match refusal {
        AppendError::Fenced { term, current } => {
            (Status::Fenced, format!("writer term {term} was fenced by term {current}"))
        }
        AppendError::OutOfOrder { lsn, last } => (
            Status::LsnOutOfOrder,
            format!("record LSN {lsn} is not after the last appended LSN {last}"),
        ),
        AppendError::SlowDown { pending_bytes } => {
            (Status::SlowDown, format!("{pending_bytes} bytes wait for the WAL; retry later"))
        }
        AppendError::Broken(why) => (Status::Internal, why),
    }
}
