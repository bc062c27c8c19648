//! WAL segment files, format version 1: a header block, then checksummed record frames.
//!
//! A segment is a preallocated, fixed-size file (`segment_size_bytes`, a multiple of 4096),
//! filled with zeros when created and written with O_DIRECT in 4 KiB-aligned units. All integers
//! little-endian.
//!
//! **Header** (the first [`DATA_START`] bytes; the rest of the block is zero):
//!
//! | off | size | field              | meaning                                          |
//! |-----|------|--------------------|--------------------------------------------------|
//! | 0   | 8    | magic              | `b"PCWALSEG"`                                    |
//! | 8   | 2    | format_version     | 2 (written); readers accept `1..=2`, else corrupt |
//! | 10  | 6    | reserved           | zero                                             |
//! | 16  | 8    | segment_seq        | 1 for a timeline's first segment, then +1        |
//! | 24  | 16   | tenant_id          | owner tenant (big-endian u128, as printed)       |
//! | 40  | 16   | timeline_id        | owner timeline                                   |
//! | 56  | 8    | segment_size_bytes | file size                                        |
//! | 64  | 8    | prev_lsn           | LSN of the last record before this segment, or 0 |
//! | 72  | 16   | file_id            | v2: u128 LE naming the segment's data key in the tenant's key manifest; 0 = plaintext segment |
//! | 88  | 8    | header_checksum    | xxh3-64 of bytes `0..88` (v1: at offset 72, of bytes `0..72`, and no file_id) |
//!
//! **Frames** start at offset [`DATA_START`] and follow each other with no gap:
//!
//! | off          | size | field      | meaning                                            |
//! |--------------|------|------------|----------------------------------------------------|
//! | 0            | 4    | frame_len  | bytes in the frame, all fields included; 0 = end   |
//! | 4            | 1    | flags      | bit 0 `BATCH_END`: last frame of a committed batch |
//! | 5            | 3    | reserved   | zero                                               |
//! | 8            | n    | record     | one record, encoded as in [`crate::record`]        |
//! | frame_len-8  | 8    | checksum   | xxh3-64 with seed `segment_seq` of bytes `0..frame_len-8` |
//!
//! **Sealed frames** (flag bit 1 `SEALED`; every frame of a segment whose header has a
//! `file_id`, and no frame of one without): the record is encrypted and authenticated with
//! AES-256-GCM under the segment's data key, and the frame carries what opening needs:
//!
//! | off          | size | field      | meaning                                            |
//! |--------------|------|------------|----------------------------------------------------|
//! | 0            | 4    | frame_len  | as above                                           |
//! | 4            | 1    | flags      | `BATCH_END` as above, bit 1 `SEALED` set           |
//! | 5            | 3    | reserved   | zero                                               |
//! | 8            | 8    | position   | GCM nonce position: strictly increasing within the segment |
//! | 16           | 16   | tag        | GCM tag of the sealed record                       |
//! | 32           | n    | record     | the encoded record, encrypted                      |
//! | frame_len-8  | 8    | checksum   | as above, over the stored (encrypted) bytes        |
//!
//! The position is a counter of the writer's data key, not the offset: a batch that failed
//! and was rewound leaves its offsets to be written again, and a GCM nonce must never be used
//! twice under one key. A scan refuses a position that does not increase (a replayed frame).
//! The checksum still tells a torn write (cheap, keyless) from a modified frame (the tag).
//!
//! Seeding the checksum with the segment number means a frame left over from a recycled file
//! never verifies in its new life. A group commit is all or nothing: only its last frame carries
//! `BATCH_END`, and recovery drops valid frames after the last `BATCH_END` (a batch cut short
//! by a crash, possibly across a segment boundary). A frame never crosses the segment end: a record that does
//! not fit goes to the next segment and the rest of this one stays zero.

use crate::codec::{Reader, Writer};
use crate::record::{Record, MAX_RECORD_SIZE, RECORD_HEADER_SIZE};
use crate::types::{Lsn, TenantId, TimelineId};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

pub const MAGIC: [u8; 8] = *b"PCWALSEG";
pub const FORMAT_VERSION: u16 = 2;
/// Offset of the first frame; the header block size. Also the write alignment.
pub const DATA_START: u64 = 4096;
/// Bytes of a plaintext frame around its record.
pub const FRAME_OVERHEAD: usize = 16;
/// Bytes of a sealed frame around its (encrypted) record: position and tag added.
pub const SEALED_FRAME_OVERHEAD: usize = FRAME_OVERHEAD + 8 + TAG_SIZE;
/// Largest frame.
pub const MAX_FRAME_SIZE: usize = MAX_RECORD_SIZE + SEALED_FRAME_OVERHEAD;
/// Bytes of a GCM tag.
pub const TAG_SIZE: usize = 16;
const HEADER_CHECKSUMMED_V1: usize = 72;
const HEADER_CHECKSUMMED: usize = 88;

/// Encrypts records into sealed frames: the segment's data key, owned by the writer.
pub trait FrameSealer {
    /// Encrypts `record` in place; returns the nonce position used and the tag. Positions
    /// strictly increase from call to call.
    fn seal(&mut self, record: &mut [u8]) -> (u64, [u8; TAG_SIZE]);
}

/// Opens sealed frames of one segment.
pub trait FrameOpener {
    /// Verifies and decrypts `record` in place; `false` if it does not authenticate.
    fn open(&self, position: u64, record: &mut [u8], tag: &[u8; TAG_SIZE]) -> bool;
}

/// [`ScanStop::Invalid`] reason of a sealed frame whose checksum holds but whose tag does not.
pub const AUTHENTICATION_FAILURE: &str = "sealed frame does not authenticate";

/// Bytes the frame of `record` takes.
pub fn frame_size(record: &Record, sealed: bool) -> usize {
    record.encoded_size() + if sealed { SEALED_FRAME_OVERHEAD } else { FRAME_OVERHEAD }
}

/// Identity and position of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_seq: u64,
    pub tenant_id: TenantId,
    pub timeline_id: TimelineId,
    pub segment_size_bytes: u64,
    pub prev_lsn: Lsn,
    /// The data key's file id when the segment is encrypted (its frames are sealed).
    pub file_id: Option<u128>,
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("segment header truncated")]
    Truncated,
    #[error("bad segment magic")]
    BadMagic,
    #[error("unsupported segment format version {0}")]
    UnsupportedVersion(u16),
    #[error("segment header checksum mismatch")]
    BadChecksum,
}

impl SegmentHeader {
    /// The full header block (`DATA_START` bytes, zero-padded).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(DATA_START as usize);
        out.put_bytes(&MAGIC);
        out.put_u16(FORMAT_VERSION);
        out.put_zeros(6);
        out.put_u64(self.segment_seq);
        out.put_bytes(&self.tenant_id.0);
        out.put_bytes(&self.timeline_id.0);
        out.put_u64(self.segment_size_bytes);
        out.put_u64(self.prev_lsn.0);
        out.put_bytes(&self.file_id.unwrap_or(0).to_le_bytes());
        let checksum = xxh3_64(&out[..HEADER_CHECKSUMMED]);
        out.put_u64(checksum);
        out.resize(DATA_START as usize, 0);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let mut reader = Reader::new(bytes);
        let truncated = |_| HeaderError::Truncated;
        if reader.array::<8>().map_err(truncated)? != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = reader.u16().map_err(truncated)?;
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let checksummed_len = if version == 1 { HEADER_CHECKSUMMED_V1 } else { HEADER_CHECKSUMMED };
        let checksummed = bytes.get(..checksummed_len).ok_or(HeaderError::Truncated)?;
        reader.skip(6).map_err(truncated)?;
        let segment_seq = reader.u64().map_err(truncated)?;
        let tenant_id = TenantId(reader.array().map_err(truncated)?);
        let timeline_id = TimelineId(reader.array().map_err(truncated)?);
        let segment_size_bytes = reader.u64().map_err(truncated)?;
        let prev_lsn = Lsn(reader.u64().map_err(truncated)?);
        let file_id = if version == 1 {
            None
        } else {
            Some(u128::from_le_bytes(reader.array().map_err(truncated)?)).filter(|id| *id != 0)
        };
        let checksum = reader.u64().map_err(truncated)?;
        if checksum != xxh3_64(checksummed) {
            return Err(HeaderError::BadChecksum);
        }
        Ok(SegmentHeader {
            segment_seq,
            tenant_id,
            timeline_id,
            segment_size_bytes,
            prev_lsn,
            file_id,
        })
    }
}

/// Frame flag: the last frame of a committed batch.
pub const BATCH_END: u8 = 1;
/// Frame flag: the record is encrypted (a sealed frame).
pub const SEALED: u8 = 2;

/// Appends one frame holding `record` to `out`; returns the frame length. `batch_end` marks the
/// last frame of a group commit. With a `sealer` the frame is sealed (the segment must be an
/// encrypted one).
pub fn encode_frame(
    segment_seq: u64,
    record: &Record,
    batch_end: bool,
    sealer: Option<&mut dyn FrameSealer>,
    out: &mut Vec<u8>,
) -> usize {
    let start = out.len();
    out.put_u32(0); // frame_len, patched below
    let sealed_flag = if sealer.is_some() { SEALED } else { 0 };
    out.put_u8(if batch_end { BATCH_END } else { 0 } | sealed_flag);
    out.put_zeros(3);
    match sealer {
        None => {
            record.encode_into(out);
        }
        Some(sealer) => {
            let header_at = out.len();
            out.put_zeros(8 + TAG_SIZE);
            let record_at = out.len();
            record.encode_into(out);
            let (position, tag) = sealer.seal(&mut out[record_at..]);
            out[header_at..header_at + 8].copy_from_slice(&position.to_le_bytes());
            out[header_at + 8..record_at].copy_from_slice(&tag);
        }
    }
    let frame_len = out.len() - start + 8;
    let frame_len_u32 = u32::try_from(frame_len).expect("records are at most MAX_RECORD_SIZE");
    out[start..start + 4].copy_from_slice(&frame_len_u32.to_le_bytes());
    let checksum = xxh3_64_with_seed(&out[start..], segment_seq);
    out.put_u64(checksum);
    debug_assert!(frame_len <= MAX_FRAME_SIZE);
    frame_len
}

/// Why a scan of frames stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStop {
    /// A zero `frame_len`: the normal end of written data.
    EndOfData,
    /// The segment is full: the last frame ended less than 4 bytes before its end.
    EndOfSegment,
    /// The bytes at `offset` are not a valid frame (torn write, garbage, bit flip).
    Invalid { offset: u64, what: &'static str },
}

/// One valid frame found by a scan.
#[derive(Debug)]
pub struct ScannedFrame {
    pub offset: u64,
    /// Offset just past the frame.
    pub end: u64,
    pub batch_end: bool,
    pub record: Record,
}

/// Result of scanning the frames of one segment.
#[derive(Debug)]
pub struct Scan {
    /// Valid frames, in order.
    pub frames: Vec<ScannedFrame>,
    /// Offset just past the last valid frame.
    pub end_offset: u64,
    pub stop: ScanStop,
}

/// Scans the frames of a whole segment image (`bytes` is the file from offset 0). Records must
/// carry LSNs above `prev_lsn` and strictly increasing. With an `opener` (the segment is
/// encrypted) every frame must be sealed, authenticate, and carry an increasing position;
/// without one, no frame may be sealed. Never panics.
pub fn scan_frames(
    bytes: &[u8],
    segment_seq: u64,
    prev_lsn: Lsn,
    opener: Option<&dyn FrameOpener>,
) -> Scan {
    let mut frames = Vec::new();
    let mut offset = DATA_START as usize;
    let mut last_lsn = prev_lsn;
    let mut last_position: Option<u64> = None;
    let mut plain = Vec::new();
    let stop = loop {
        let Some(len_bytes) = bytes.get(offset..offset + 4) else {
            break ScanStop::EndOfSegment;
        };
        let frame_len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let frame_len = frame_len as usize;
        let invalid = |what| ScanStop::Invalid { offset: offset as u64, what };
        if frame_len == 0 {
            break ScanStop::EndOfData;
        }
        if !(FRAME_OVERHEAD + RECORD_HEADER_SIZE..=MAX_FRAME_SIZE).contains(&frame_len) {
            break invalid("frame length out of range");
        }
        let Some(frame) = bytes.get(offset..offset + frame_len) else {
            break invalid("frame runs past the segment end");
        };
        let (body, checksum) = frame.split_at(frame_len - 8);
        let stored = u64::from_le_bytes(checksum.try_into().unwrap_or([0; 8]));
        if stored != xxh3_64_with_seed(body, segment_seq) {
            break invalid("frame checksum mismatch");
        }
        let sealed = body[4] & SEALED != 0;
        let record_bytes = match (sealed, opener) {
            (false, None) => &body[8..],
            (true, Some(opener)) => {
                let Some(sealed_record) = body.get(8 + 8 + TAG_SIZE..) else {
                    break invalid("sealed frame too short");
                };
                let position = u64::from_le_bytes(body[8..16].try_into().unwrap_or([0; 8]));
                let tag: [u8; TAG_SIZE] = body[16..16 + TAG_SIZE].try_into().unwrap_or([0; 16]);
                if last_position.is_some_and(|last| position <= last) {
                    break invalid("sealed frame position does not increase");
                }
                plain.clear();
                plain.extend_from_slice(sealed_record);
                if !opener.open(position, &mut plain, &tag) {
                    break invalid(AUTHENTICATION_FAILURE);
                }
                last_position = Some(position);
                &plain[..]
            }
            (true, None) => break invalid("sealed frame in a plaintext segment"),
            (false, Some(_)) => break invalid("plaintext frame in an encrypted segment"),
        };
        let record = match Record::decode(record_bytes) {
            Ok(record) => record,
            Err(_) => break invalid("checksummed frame holds an undecodable record"),
        };
        if record.lsn <= last_lsn {
            break invalid("record LSN does not increase");
        }
        last_lsn = record.lsn;
        let batch_end = body[4] & BATCH_END != 0;
        frames.push(ScannedFrame {
            offset: offset as u64,
            end: (offset + frame_len) as u64,
            batch_end,
            record,
        });
        offset += frame_len;
    };
    Scan { frames, end_offset: offset as u64, stop }
}

#[cfg(test)]
mod tests;
