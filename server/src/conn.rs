//! Serving one compute connection on the core that owns its tenant.
//!
//! The first frame must be `Hello`. The accepting core reads it, and if another core owns the
//! tenant, hands the socket over (see `serve.rs`); from then on the owner core alone serves the
//! connection. Requests are processed in arrival order and responses are written in the same
//! order (PROTOCOL.md, "Pipelining"); all responses produced from one read are written with one
//! `write`, up to [`OUTPUT_FLUSH_BYTES`]: at that size the output is written before the next
//! request is handled, which bounds it and pushes back on a client that does not read. Before a
//! request waits (for an LSN, or for a group commit), the responses already produced are
//! written so earlier requests are not held back. A cache hit's page is not copied into the
//! output: it is sent from its cache frame (`pending_frames.rs`, which also says when pending
//! frames must be sent or copied first).
//!
//! Errors: a request that is well framed but wrong is answered in-band and the connection goes
//! on; broken framing gets a `ProtocolError` frame and the connection is closed.
//!
//! Metrics: each request is timed from the read that brought its bytes (so queueing behind
//! earlier requests of the same read counts) to its response being ready, and counted for the
//! core and the tenant (`metrics`). Where the time went (queued, LSN wait, disk, commit) is
//! kept per request in a [`Trace`] on the stack and logged only for slow requests.
//!
//! Shutdown: once the core's drain started, a connection answers every request it has read,
//! writes the answers and closes (`core::Drain`).

mod pending_frames;

use crate::auth;
use crate::core::LocalCore;
use crate::metrics::{self, Op, RequestKind, TenantCounters};
use crate::proto::frame::{decode_frame, Tag, FRAME_HEADER_SIZE, TAG_PROTOCOL_ERROR};
use crate::proto::request::{BlockList, Hello, RecordList};
use crate::proto::response::{
    begin_ok, encode_error, encode_protocol_error, finish, finish_before_page, HelloOk,
};
use crate::proto::{Frame, Request, Role, Status, MAX_FRAME_SIZE, PROTOCOL_VERSION};
use crate::read::{self, ReadError, ReadStats};
use crate::timeline::{AppendError, Timeline};
use crate::transport::Transport;
use pending_frames::PendingFrames;
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};
use wal::codec::Writer;
use wal::{Lsn, PageKey, RelTag, PAGE_SIZE};

/// Initial input buffer per connection; grows (once) up to one maximum frame if a client sends
/// large frames.
const INITIAL_INPUT_BYTES: usize = 64 * 1024;

/// Once this many response bytes wait in `out`, they are written before the next request is
/// handled. All the answers to one read still go out in one `write` up to this size (32
/// pipelined GetPages make 256 KiB, and a larger write saves little per byte); above it, `out`
/// stays below this bound plus one response, however many requests one read brought.
pub(crate) const OUTPUT_FLUSH_BYTES: usize = 256 * 1024;

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
    pub(crate) async fn read_more(&mut self, stream: &mut Transport) -> io::Result<usize> {
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
    stream: &mut Transport,
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
    core: Rc<LocalCore>,
    limits: Rc<crate::limits::TenantLimiter>,
    timeline: Rc<Timeline>,
    tenant: Rc<TenantCounters>,
    role: Role,
    writer_term: u64,
    lsn_wait: Duration,
    /// Requests at least this slow are logged; `None`: off.
    slow: Option<Duration>,
    /// Cached pages answered but not yet written, sent from their frames by `write_out`
    /// (`pending_frames.rs`). Borrowed only between awaits.
    pending: RefCell<PendingFrames>,
}

/// Where one request's time went, for metrics and the slow-request log. Lives on the stack.
#[derive(Default)]
struct Trace {
    kind: RequestKind,
    /// Where this request's response starts in `out`, unless `out` was written out first.
    response_at: usize,
    written_before: bool,
    key: Option<PageKey>,
    lsn: Lsn,
    not_modified_since: Lsn,
    count: usize,
    lsn_wait: Duration,
    read: ReadStats,
    pages: u64,
    /// AppendWal: waiting for room in memory, then for the group commit.
    ingest_wait: Duration,
    commit_wait: Duration,
}

/// How long a connection closed by the shutdown drain waits for its client to close too.
const LINGER: Duration = Duration::from_secs(2);

/// Serves a connection whose first buffered frame is a `Hello` for a tenant this core owns.
pub(crate) async fn serve(core: Rc<LocalCore>, mut stream: Transport, mut input: Input) {
    let slot = core.drain.register();
    metrics::connection_opened();
    let mut out = Vec::with_capacity(64 * 1024);
    match handshake(&core, &mut input, &mut out).await {
        Some(session) => {
            let tenant = session.timeline.tenant_id;
            core.tenant_connection(tenant, true);
            let peer = stream.peer_addr().ok();
            let served = serve_requests(&session, slot, &mut stream, &mut input, &mut out).await;
            if let Err(error) = served {
                tracing::info!(?peer, %error, "connection ended");
            }
            drop(session);
            core.tenant_connection(tenant, false);
        }
        None => {
            let _ = stream.write_all(&out).await;
        }
    }
    if core.drain.started() {
        linger(&mut stream).await;
    }
    metrics::connection_closed();
    core.drain.unregister(slot);
}

/// Closes a drained connection without losing answers: a FIN goes out behind the last
/// responses, then input is read and dropped until the client closes too (bounded). Closing
/// with unread input would make the kernel send a reset, which can destroy responses still in
/// flight.
async fn linger(stream: &mut Transport) {
    let _ = stream.shutdown_write().await;
    let mut sink = [0u8; 4096];
    let _ = glommio::timer::timeout(LINGER, async {
        while let Ok(1..) = stream.read(&mut sink).await {}
        Ok(())
    })
    .await;
}

async fn handshake(core: &Rc<LocalCore>, input: &mut Input, out: &mut Vec<u8>) -> Option<Session> {
    let (frame, used) = decode_frame(input.unread()).ok()??;
    let Ok(Request::Hello(hello)) = Request::decode(&frame) else { return None };
    let request_id = frame.request_id;
    let reject = |out: &mut Vec<u8>, status, message: String| {
        encode_error(out, Tag::Hello.response(), request_id, status, format_args!("{message}"));
        None
    };
    let Hello { protocol_version, role, tenant_id, timeline_id, writer_term, auth_token } = hello;
    if protocol_version != PROTOCOL_VERSION {
        let message = format!(
            "protocol version {protocol_version} unsupported; server speaks {PROTOCOL_VERSION}"
        );
        return reject(out, Status::BadRequest, message);
    }
    // Before the timeline lookup, so an unauthenticated client learns nothing about which
    // tenants and timelines exist. The refusal names the reason only, never the token.
    if let Err(refusal) = auth::check_hello(&core.config.auth, auth_token, tenant_id, role) {
        tracing::info!(tenant = %tenant_id, ?role, %refusal, "Hello refused: unauthorized");
        return reject(out, Status::Unauthorized, refusal.to_string());
    }
    if let Some(why) = core.tenant_keys_unavailable(tenant_id) {
        return reject(out, Status::KeyUnavailable, why);
    }
    if let Err(why) = core.reactivate(tenant_id).await {
        return reject(out, Status::Internal, why);
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
    let slow_ms = core.config.slow_request_ms;
    let slow = (slow_ms > 0).then(|| Duration::from_millis(slow_ms));
    let tenant = core.tenant_counters(tenant_id);
    let limits = core.tenant_limiter(tenant_id);
    let pending = RefCell::new(PendingFrames::new(timeline.cache.clone()));
    Some(Session {
        core: core.clone(),
        limits,
        timeline,
        tenant,
        role,
        writer_term,
        lsn_wait,
        slow,
        pending,
    })
}

/// Writes `out` (with the pending cached pages in their places) to the client and empties it.
async fn write_out(session: &Session, stream: &mut Transport, out: &mut Vec<u8>) -> io::Result<()> {
    let total = out.len() + session.pending.borrow().bytes();
    let mut sent = 0;
    {
        let mut pending = session.pending.borrow_mut();
        if !pending.is_empty() {
            // Straight from the frames while the socket takes it; what it does not take is
            // copied into `out` before the await below (no frame reference crosses an await).
            // Over TLS nothing goes straight: the pages are copied in and encrypted with `out`.
            if let Some(fd) = stream.plain_fd() {
                sent = pending.try_send(fd, out)?;
            }
            if sent < total {
                pending.materialize(out);
            }
            pending.clear();
        }
    }
    if sent < total {
        stream.write_all(&out[sent..]).await?;
    }
    metrics::network(0, total);
    TenantCounters::add(&session.tenant.bytes_sent, total as u64);
    out.clear();
    Ok(())
}

/// Bytes owed to the client: `out` plus the pending cached pages.
fn output_bytes(session: &Session, out: &[u8]) -> usize {
    out.len() + session.pending.borrow().bytes()
}

async fn serve_requests(
    session: &Session,
    slot: usize,
    stream: &mut Transport,
    input: &mut Input,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut read_at = Instant::now();
    loop {
        loop {
            match decode_frame(input.unread()) {
                Ok(Some((frame, used))) => {
                    handle(session, &frame, read_at, stream, out).await?;
                    input.consume(used);
                    if output_bytes(session, out) >= OUTPUT_FLUSH_BYTES {
                        // Backpressure: a client that does not read its answers stops us here,
                        // before more of its requests are handled or read.
                        write_out(session, stream, out).await?;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    session.pending.borrow_mut().materialize(out);
                    encode_protocol_error(out, format_args!("{error}"));
                    stream.write_all(out).await?;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
        }
        if output_bytes(session, out) > 0 {
            write_out(session, stream, out).await?;
        }
        if session.core.drain.started() {
            return Ok(()); // every request read before the drain is answered: close
        }
        let read = futures_lite::future::or(async { Some(input.read_more(stream).await) }, async {
            session.core.drain.wait(slot).await;
            None
        })
        .await;
        let count = match read {
            Some(read) => read?,
            None => return Ok(()), // the drain started while idle
        };
        if count == 0 {
            return Ok(());
        }
        read_at = Instant::now();
        metrics::network(count, 0);
        TenantCounters::add(&session.tenant.bytes_received, count as u64);
    }
}

/// Answers one request into `out`, and accounts for it.
async fn handle(
    session: &Session,
    frame: &Frame<'_>,
    read_at: Instant,
    stream: &mut Transport,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let started = Instant::now();
    metrics::request_started();
    let mut trace = Trace { response_at: out.len(), ..Trace::default() };
    let result = dispatch(session, frame, stream, out, &mut trace).await;
    let status = match result {
        Ok(()) => response_status(out, &trace),
        Err(_) => 0,
    };
    metrics::request_finished(status);
    session.tenant.request(trace.kind, status);
    TenantCounters::add(&session.tenant.pages, trace.pages);
    let done = Instant::now();
    let total = done - read_at;
    if status == Status::Ok as u16 {
        let op = match trace.kind {
            RequestKind::GetPage if trace.read.cache_hit => Some(Op::GetPageCacheHit),
            RequestKind::GetPage if trace.read.disk_reads > 0 => Some(Op::GetPageDisk),
            RequestKind::GetPage => Some(Op::GetPageMemory),
            RequestKind::GetPages => Some(Op::GetPages),
            RequestKind::AppendWal => Some(Op::AppendWal),
            _ => None,
        };
        if let Some(op) = op {
            metrics::record(op, total);
        }
    }
    if session.slow.is_some_and(|slow| total >= slow) {
        log_slow(session, &trace, status, total, started - read_at);
    }
    result
}

/// The status of the response `handle` just appended (the first field after the header).
fn response_status(out: &[u8], trace: &Trace) -> u16 {
    let at = if trace.written_before { 0 } else { trace.response_at } + FRAME_HEADER_SIZE;
    out.get(at..at + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

/// One line for a slow request, with where its time went. Rare by definition, and capped per
/// second per core, so it may format and allocate.
fn log_slow(session: &Session, trace: &Trace, status: u16, total: Duration, queued: Duration) {
    TenantCounters::add(&session.tenant.slow_requests, 1);
    let (log_it, suppressed) = metrics::slow_request(session.core.config.slow_request_log_per_sec);
    if suppressed > 0 {
        tracing::info!(core = session.core.id, suppressed, "slow requests not logged (rate limit)");
    }
    if !log_it {
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let accounted =
        queued + trace.lsn_wait + trace.read.disk_wait + trace.ingest_wait + trace.commit_wait;
    let status = Status::from_u16(status).map_or("?", Status::name);
    let key = trace.key.map(|k| k.to_string()).unwrap_or_default();
    tracing::info!(
        tenant = %session.timeline.tenant_id,
        timeline = %session.timeline.timeline_id,
        op = trace.kind.name(),
        key = key.as_str(),
        lsn = %trace.lsn,
        not_modified_since = %trace.not_modified_since,
        count = trace.count,
        status,
        total_ms = ms(total),
        queued_ms = ms(queued),
        lsn_wait_ms = ms(trace.lsn_wait),
        disk_ms = ms(trace.read.disk_wait),
        disk_reads = trace.read.disk_reads,
        layers = trace.read.layers,
        ingest_wait_ms = ms(trace.ingest_wait),
        commit_ms = ms(trace.commit_wait),
        other_ms = ms(total.saturating_sub(accounted)),
        "slow request"
    );
}

/// Decodes and answers one request into `out`.
async fn dispatch(
    session: &Session,
    frame: &Frame<'_>,
    stream: &mut Transport,
    out: &mut Vec<u8>,
    trace: &mut Trace,
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
    if !matches!(request, Request::GetPage { .. }) {
        // These may await before writing, or change the cache (a GetPages miss inserts): no
        // frame reference may be pending across either (`pending_frames.rs`).
        session.pending.borrow_mut().materialize(out);
        trace.response_at = out.len();
    }
    trace.kind = match request {
        Request::Ping => RequestKind::Ping,
        Request::Hello(_) => RequestKind::Invalid,
        Request::GetPage { .. } => RequestKind::GetPage,
        Request::GetPages { .. } => RequestKind::GetPages,
        Request::RelSize { .. } => RequestKind::RelSize,
        Request::AppendWal { .. } => RequestKind::AppendWal,
    };
    if !matches!(request, Request::Ping) {
        // Revocation takes effect on connections already open: nothing is read or written
        // for the tenant until its keys are restored.
        if let Some(why) = session.timeline.keys_unavailable() {
            encode_error(out, response_tag, id, Status::KeyUnavailable, format_args!("{why}"));
            return Ok(());
        }
    }
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
            (trace.key, trace.lsn, trace.not_modified_since) =
                (Some(key), request_lsn, not_modified_since);
            if let Err((status, message)) = check_read_lsns(request_lsn, not_modified_since) {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            if let Err(message) = session.limits.admit_pages(1) {
                encode_error(out, response_tag, id, Status::SlowDown, format_args!("{message}"));
                return Ok(());
            }
            if let Err((status, message)) =
                wait_lsn(session, not_modified_since, stream, out, trace).await?
            {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            get_page(session, key, request_lsn, response_tag, id, out, trace).await;
        }
        Request::GetPages { rel, lsn, blocks } => {
            (trace.lsn, trace.count) = (lsn, blocks.len());
            if let Err(message) = session.limits.admit_pages(blocks.len() as u64) {
                encode_error(out, response_tag, id, Status::SlowDown, format_args!("{message}"));
                return Ok(());
            }
            if let Err((status, message)) = wait_for_read(session, lsn, stream, out, trace).await? {
                encode_error(out, response_tag, id, status, format_args!("{message}"));
                return Ok(());
            }
            let request = PagesRequest { rel, lsn, blocks };
            get_pages(session, request, response_tag, id, out, trace).await;
        }
        Request::RelSize { rel, lsn } => {
            trace.lsn = lsn;
            if let Err((status, message)) = wait_for_read(session, lsn, stream, out, trace).await? {
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
            trace.count = records.len();
            let bytes = records.raw().map(|r| r.len() as u64).sum();
            if session.role == Role::Writer {
                if let Err(message) = session.limits.admit_wal_bytes(bytes) {
                    encode_error(
                        out,
                        response_tag,
                        id,
                        Status::SlowDown,
                        format_args!("{message}"),
                    );
                    return Ok(());
                }
            }
            let result = append(session, records, stream, out, trace).await?;
            match result {
                Ok(durable) => {
                    trace.lsn = durable;
                    TenantCounters::add(&session.tenant.wal_records, records.len() as u64);
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
    stream: &mut Transport,
    out: &mut Vec<u8>,
    trace: &mut Trace,
) -> io::Result<Result<(), Refusal>> {
    if lsn == Lsn::INVALID {
        return Ok(Err((Status::BadRequest, "lsn must not be 0".into())));
    }
    wait_lsn(session, lsn, stream, out, trace).await
}

/// Waits until the timeline has ingested `target`, for at most the configured time. Writes the
/// responses already produced first, so they are not held back by the wait.
async fn wait_lsn(
    session: &Session,
    target: Lsn,
    stream: &mut Transport,
    out: &mut Vec<u8>,
    trace: &mut Trace,
) -> io::Result<Result<(), Refusal>> {
    let applied = &session.timeline.applied;
    if applied.get() >= target {
        return Ok(Ok(()));
    }
    if let Some(why) = applied.failure() {
        return Ok(Err((Status::Internal, why)));
    }
    if output_bytes(session, out) > 0 {
        write_out(session, stream, out).await?;
        trace.written_before = true;
    }
    let started = Instant::now();
    let waited =
        glommio::timer::timeout(session.lsn_wait, async { Ok(applied.wait_for(target).await) })
            .await;
    trace.lsn_wait = started.elapsed();
    metrics::record(Op::LsnWait, trace.lsn_wait);
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
    trace: &mut Trace,
) {
    let timeline = &session.timeline;
    if let Err(error) = read::check_page(timeline, key, lsn) {
        let (status, message) = read_refusal(error);
        encode_error(out, response_tag, id, status, format_args!("{key}: {message}"));
        return;
    }
    let start = begin_ok(out, response_tag, id);
    let read = if session.pending.borrow().is_full() {
        read_checked_into(timeline, key, lsn, out).await
    } else if let Some((frame, stats)) = read::cached_frame(timeline, key, lsn) {
        // A hit: the page is sent from its frame by `write_out`, copied once, by the kernel.
        finish_before_page(out, start);
        session.pending.borrow_mut().push(out.len(), frame);
        count_read(timeline, stats, trace);
        return;
    } else {
        // The rebuild awaits and inserts into the cache: nothing may be pending across it.
        let before = out.len();
        session.pending.borrow_mut().materialize(out);
        let moved = out.len() - before;
        trace.response_at += moved;
        let start = start + moved;
        let result = rebuild_into(timeline, key, lsn, out).await;
        return answer_page(timeline, result, (start, response_tag, id, key), out, trace);
    };
    answer_page(timeline, read, (start, response_tag, id, key), out, trace);
}

/// Completes the GetPage response begun at `start` with the page `read` put after it, or
/// replaces it with the error.
fn answer_page(
    timeline: &Timeline,
    read: Result<ReadStats, ReadError>,
    (start, response_tag, id, key): (usize, u8, u64, PageKey),
    out: &mut Vec<u8>,
    trace: &mut Trace,
) {
    match read {
        Ok(stats) => {
            count_read(timeline, stats, trace);
            finish(out, start)
        }
        Err(error) => {
            out.truncate(start);
            let (status, message) = read_refusal(error);
            encode_error(out, response_tag, id, status, format_args!("{key}: {message}"));
        }
    }
}

fn count_read(timeline: &Timeline, stats: ReadStats, trace: &mut Trace) {
    trace.pages += 1;
    trace.read.layers += stats.layers;
    trace.read.disk_reads += stats.disk_reads;
    trace.read.disk_wait += stats.disk_wait;
    trace.read.cache_hit |= stats.cache_hit;
    let layers = stats.layers;
    let counters = &timeline.counters;
    counters.reads.set(counters.reads.get() + 1);
    counters.read_layers_total.set(counters.read_layers_total.get() + u64::from(layers));
    counters.read_layers_max.set(counters.read_layers_max.get().max(layers));
}

fn read_refusal(error: ReadError) -> Refusal {
    match error {
        ReadError::NotFound(why) => (Status::NotFound, why),
        ReadError::TooOld(why) => (Status::LsnTooOld, why),
        ReadError::KeyUnavailable(why) => (Status::KeyUnavailable, why),
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

/// A decoded GetPages: `blocks` of `rel` as of `lsn`.
struct PagesRequest<'a> {
    rel: RelTag,
    lsn: Lsn,
    blocks: BlockList<'a>,
}

async fn get_pages(
    session: &Session,
    request: PagesRequest<'_>,
    response_tag: u8,
    id: u64,
    out: &mut Vec<u8>,
    trace: &mut Trace,
) {
    let PagesRequest { rel, lsn, blocks } = request;
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
        let status = match read_into(&session.timeline, PageKey { rel, block }, lsn, out).await {
            Ok(stats) => {
                count_read(&session.timeline, stats, trace);
                continue;
            }
            Err(error) => read_refusal(error).0,
        };
        out.truncate(page_at);
        out[entry_at..entry_at + 2].copy_from_slice(&(status as u16).to_le_bytes());
    }
    finish(out, start);
}

/// Appends page `key` as of `lsn` to `out`: on a cache hit the frame is copied into `out` once,
/// with no zero-fill before it (the profile of the cached path showed both the copy and a
/// `resize` memset); a miss rebuilds the page in place. On an error `out` may hold part of a
/// page; the caller truncates.
async fn read_into(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    out: &mut Vec<u8>,
) -> Result<ReadStats, ReadError> {
    read::check_page(timeline, key, lsn)?;
    read_checked_into(timeline, key, lsn, out).await
}

/// [`read_into`] after `read::check_page` passed.
async fn read_checked_into(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    out: &mut Vec<u8>,
) -> Result<ReadStats, ReadError> {
    if let Some(stats) = read::cached_page(timeline, key, lsn, |page| out.extend_from_slice(page)) {
        return Ok(stats);
    }
    rebuild_into(timeline, key, lsn, out).await
}

/// Appends page `key` as of `lsn`, rebuilt from the layers (the cache missed).
async fn rebuild_into(
    timeline: &Timeline,
    key: PageKey,
    lsn: Lsn,
    out: &mut Vec<u8>,
) -> Result<ReadStats, ReadError> {
    let page_at = out.len();
    out.resize(page_at + PAGE_SIZE, 0);
    let page: &mut [u8; PAGE_SIZE] = (&mut out[page_at..]).try_into().expect("exactly one page");
    read::rebuild_page(timeline, key, lsn, page).await
}

async fn append(
    session: &Session,
    records: RecordList<'_>,
    stream: &mut Transport,
    out: &mut Vec<u8>,
    trace: &mut Trace,
) -> io::Result<Result<Lsn, Refusal>> {
    if session.role != Role::Writer {
        return Ok(Err((Status::Unauthorized, "this connection is not a writer".into())));
    }
    let records = match records.decode() {
        Ok(records) => records,
        Err(error) => return Ok(Err((Status::BadRequest, format!("invalid record: {error}")))),
    };
    let timeline = &session.timeline;
    let started = Instant::now();
    let room = timeline.wait_for_ingest_room().await;
    trace.ingest_wait = started.elapsed();
    if let Err(refusal) = room {
        return Ok(Err(append_refusal(refusal)));
    }
    let (target, generation) = match timeline.accept(session.writer_term, records) {
        Ok(accepted) => accepted,
        Err(refusal) => return Ok(Err(append_refusal(refusal))),
    };
    if output_bytes(session, out) > 0 {
        write_out(session, stream, out).await?;
        trace.written_before = true;
    }
    let started = Instant::now();
    let durable = timeline.wait_durable(target, generation).await;
    trace.commit_wait = started.elapsed();
    Ok(match durable {
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
        AppendError::MemoryFull { held_bytes } => (
            Status::SlowDown,
            format!("{held_bytes} bytes in memory wait for a layer flush; retry later"),
        ),
        AppendError::Broken(why) => (Status::Internal, why),
    }
}
