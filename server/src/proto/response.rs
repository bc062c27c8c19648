//! Responses: encoding into the connection's output buffer (server) and decoding (client).
//! Byte layouts: `PROTOCOL.md`, "Responses".
//!
//! Every response payload starts with `status: u16, reserved: u16`. An `Ok` response continues
//! with the operation's body; any other status continues with `message_len: u16` and that many
//! bytes of UTF-8 text for humans.

use super::frame::{
    begin_frame, finish_frame, finish_frame_before, Frame, RESPONSE_BIT, TAG_PROTOCOL_ERROR,
};
use super::status::Status;
use super::MAX_MESSAGE_SIZE;
use std::fmt::{self, Write as _};
use wal::codec::{Reader, Truncated, Writer};
use wal::PAGE_SIZE;

/// Begins an `Ok` response; the caller appends the body, then calls [`finish`].
pub fn begin_ok(out: &mut Vec<u8>, response_tag: u8, request_id: u64) -> usize {
    let start = begin_frame(out, response_tag, request_id);
    out.put_u16(Status::Ok as u16);
    out.put_u16(0);
    start
}

/// Completes a response begun with [`begin_ok`].
pub fn finish(out: &mut [u8], start: usize) {
    finish_frame(out, start);
}

/// Completes a response begun with [`begin_ok`] whose body ends with one page that is not in
/// `out`: the connection sends it from its cache frame right after `out`'s bytes.
pub(crate) fn finish_before_page(out: &mut [u8], start: usize) {
    finish_frame_before(out, start, PAGE_SIZE);
}

/// Appends a complete error response. The message is cut at [`MAX_MESSAGE_SIZE`] bytes (at a
/// character boundary).
pub fn encode_error(
    out: &mut Vec<u8>,
    response_tag: u8,
    request_id: u64,
    status: Status,
    message: fmt::Arguments<'_>,
) {
    debug_assert!(status != Status::Ok);
    let start = begin_frame(out, response_tag, request_id);
    out.put_u16(status as u16);
    out.put_u16(0);
    let len_at = out.len();
    out.put_u16(0);
    let text_at = out.len();
    let mut text = BoundedText { out, limit: text_at + MAX_MESSAGE_SIZE };
    let _ = text.write_fmt(message);
    let text_len = u16::try_from(out.len() - text_at).expect("message bounded by MAX_MESSAGE_SIZE");
    out[len_at..len_at + 2].copy_from_slice(&text_len.to_le_bytes());
    finish_frame(out, start);
}

/// Appends the error frame sent before closing a connection whose framing is broken.
pub fn encode_protocol_error(out: &mut Vec<u8>, message: fmt::Arguments<'_>) {
    encode_error(out, TAG_PROTOCOL_ERROR, 0, Status::ProtocolError, message);
}

/// `fmt::Write` into a Vec that silently stops at a byte limit, on a char boundary.
struct BoundedText<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl fmt::Write for BoundedText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit.saturating_sub(self.out.len());
        let mut cut = s.len().min(room);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.out.extend_from_slice(&s.as_bytes()[..cut]);
        Ok(())
    }
}

/// A decoded response, borrowed from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// Response tag (request tag | 0x80, or 0xBF for a protocol error).
    pub tag: u8,
    pub request_id: u64,
    /// Raw status code; see [`Response::status`].
    pub status_code: u16,
    /// For `Ok`: the operation's body. Otherwise: the message text.
    pub body: &'a [u8],
}

/// A response frame that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed response: {0}")]
pub struct MalformedResponse(pub &'static str);

impl From<Truncated> for MalformedResponse {
    fn from(_: Truncated) -> Self {
        MalformedResponse("truncated")
    }
}

impl<'a> Response<'a> {
    pub fn decode(frame: &Frame<'a>) -> Result<Response<'a>, MalformedResponse> {
        if frame.tag & RESPONSE_BIT == 0 {
            return Err(MalformedResponse("tag is not a response tag"));
        }
        let mut reader = Reader::new(frame.payload);
        let status_code = reader.u16()?;
        reader.skip(2)?;
        let body = if status_code == Status::Ok as u16 {
            reader.rest()
        } else {
            let len = usize::from(reader.u16()?);
            reader.take(len)?
        };
        Ok(Response { tag: frame.tag, request_id: frame.request_id, status_code, body })
    }

    /// The status, or `Internal` for a code this build does not know.
    pub fn status(&self) -> Status {
        Status::from_u16(self.status_code).unwrap_or(Status::Internal)
    }

    /// The error message (lossy UTF-8); empty for `Ok`.
    pub fn message(&self) -> String {
        if self.status_code == Status::Ok as u16 {
            return String::new();
        }
        String::from_utf8_lossy(self.body).into_owned()
    }
}

/// Body of a `Hello` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloOk {
    pub protocol_version: u16,
    /// Core that serves this connection.
    pub core: u16,
    /// LSN of the last durable, ingested record.
    pub last_lsn: u64,
    /// The timeline's current writer term.
    pub writer_term: u64,
}

impl HelloOk {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.protocol_version);
        out.put_u16(self.core);
        out.put_u32(0);
        out.put_u64(self.last_lsn);
        out.put_u64(self.writer_term);
    }

    pub fn decode(body: &[u8]) -> Result<HelloOk, MalformedResponse> {
        let mut reader = Reader::new(body);
        let protocol_version = reader.u16()?;
        let core = reader.u16()?;
        reader.skip(4)?;
        Ok(HelloOk { protocol_version, core, last_lsn: reader.u64()?, writer_term: reader.u64()? })
    }
}

/// Iterates the entries of a `GetPages` answer: `(status, page)` per requested block.
/// One block's answer in a `GetPages` response: its status and, for `Ok`, the page.
pub type PagesEntry<'a> = (Status, Option<&'a [u8]>);

pub fn get_pages_entries(body: &[u8]) -> Result<Vec<PagesEntry<'_>>, MalformedResponse> {
    let mut reader = Reader::new(body);
    let count = reader.u16()?;
    reader.skip(2)?;
    let mut entries = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let code = reader.u16()?;
        reader.skip(2)?;
        // A status this build does not know (from a newer server) reads as Internal; only Ok
        // entries carry a page, so the layout stays decodable.
        let status = Status::from_u16(code).unwrap_or(Status::Internal);
        let page = if status == Status::Ok { Some(reader.take(PAGE_SIZE)?) } else { None };
        entries.push((status, page));
    }
    if reader.remaining() != 0 {
        return Err(MalformedResponse("trailing bytes after GetPages entries"));
    }
    Ok(entries)
}
