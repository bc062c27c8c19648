//! Frame boundaries and the common frame header (`PROTOCOL.md`, "Frames").

use wal::codec::Writer;

/// Bytes of the common header, the length field included.
pub const FRAME_HEADER_SIZE: usize = 16;
/// Largest allowed value of `frame_len` (bytes after the length field).
pub const MAX_FRAME_SIZE: usize = 1024 * 1024;

/// Frame type tags. Requests `0x01..=0x3F`, responses `0x81..=0xBF` (request tag | 0x80).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Tag {
    Hello = 0x01,
    Ping = 0x02,
    GetPage = 0x03,
    GetPages = 0x04,
    RelSize = 0x05,
    AppendWal = 0x06,
}

/// Tag of the error frame the server sends before closing a connection with broken framing.
pub const TAG_PROTOCOL_ERROR: u8 = 0xBF;
/// Responses carry the request's tag with this bit set.
pub const RESPONSE_BIT: u8 = 0x80;

impl Tag {
    pub fn from_u8(value: u8) -> Option<Tag> {
        match value {
            0x01 => Some(Tag::Hello),
            0x02 => Some(Tag::Ping),
            0x03 => Some(Tag::GetPage),
            0x04 => Some(Tag::GetPages),
            0x05 => Some(Tag::RelSize),
            0x06 => Some(Tag::AppendWal),
            _ => None,
        }
    }

    pub fn response(self) -> u8 {
        self as u8 | RESPONSE_BIT
    }
}

/// One complete frame borrowed from the input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Raw tag byte; requests with an unknown tag still have a valid frame.
    pub tag: u8,
    pub flags: u8,
    pub request_id: u64,
    pub payload: &'a [u8],
}

/// Framing is broken: the connection cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is below the 12-byte minimum")]
    TooShort(u32),
    #[error("frame length {0} exceeds the maximum of {MAX_FRAME_SIZE}")]
    TooLarge(u32),
}

/// Cuts the first frame off `input`. `Ok(None)` means more bytes are needed; on `Ok(Some)` the
/// second value is the number of bytes the frame used.
pub fn decode_frame(input: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some(len_bytes) = input.first_chunk::<4>() else {
        return Ok(None);
    };
    let frame_len = u32::from_le_bytes(*len_bytes);
    if (frame_len as usize) < FRAME_HEADER_SIZE - 4 {
        return Err(FrameError::TooShort(frame_len));
    }
    if frame_len as usize > MAX_FRAME_SIZE {
        return Err(FrameError::TooLarge(frame_len));
    }
    let total = 4 + frame_len as usize;
    let Some(bytes) = input.get(..total) else {
        return Ok(None);
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[8..16]);
    let frame = Frame {
        tag: bytes[4],
        flags: bytes[5],
        request_id: u64::from_le_bytes(id),
        payload: &bytes[FRAME_HEADER_SIZE..],
    };
    Ok(Some((frame, total)))
}

/// Starts a frame in `out`; returns its start for [`finish_frame`].
pub fn begin_frame(out: &mut Vec<u8>, tag: u8, request_id: u64) -> usize {
    let start = out.len();
    out.put_u32(0);
    out.put_u8(tag);
    out.put_u8(0);
    out.put_u16(0);
    out.put_u64(request_id);
    start
}

/// Writes the length of the frame begun at `start`.
pub fn finish_frame(out: &mut [u8], start: usize) {
    finish_frame_before(out, start, 0);
}

/// Writes the length of the frame begun at `start` whose last `trailing` bytes are not in
/// `out`: they are sent from elsewhere right after `out`'s bytes (a page from its cache frame).
pub(crate) fn finish_frame_before(out: &mut [u8], start: usize, trailing: usize) {
    let frame_len = out.len() + trailing - start - 4;
    assert!(frame_len <= MAX_FRAME_SIZE, "encoded frame exceeds MAX_FRAME_SIZE");
    let frame_len = u32::try_from(frame_len).expect("bounded by MAX_FRAME_SIZE above");
    out[start..start + 4].copy_from_slice(&frame_len.to_le_bytes());
}
