//! Helpers shared by the WAL fuzz targets and the seed writer: how a fuzz input becomes segment
//! images, and how its checksums are repaired so the fuzzer gets past them.
//!
//! Checksums (xxh3) are a wall for a mutation fuzzer: almost every mutated frame fails its
//! checksum and the record decoder behind it is never reached. So each target reads a flags
//! byte; with [`FIX_CHECKSUMS`] set the target re-seals what it can before decoding, and the
//! fuzzer explores the decoders behind the checksums too. Without it, the raw bytes are decoded.

use wal::segment::{SegmentHeader, DATA_START, FRAME_OVERHEAD};
use wal::{Lsn, TenantId, TimelineId};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Flags bit: recompute frame and header checksums before decoding.
pub const FIX_CHECKSUMS: u8 = 1;
/// Flags bit (recovery): also write the expected seq, tenant and timeline into each header.
pub const FIX_HEADER_IDS: u8 = 2;
/// Bytes of a segment header that a fuzz input carries; the rest of the header block is zero.
pub const HEADER_BYTES: usize = 96;
/// Most segments the recovery target builds from one input.
pub const MAX_SEGMENTS: usize = 4;

/// The owner every fuzzed segment is checked against.
pub const TENANT: TenantId = TenantId([0x11; 16]);
pub const TIMELINE: TimelineId = TimelineId([0x22; 16]);

/// Bytes for the `segment_scan` target: `seq`, `flags`, `prev_lsn`, then the frames region.
pub const SCAN_PREFIX: usize = 17;

/// Splits a `segment_scan` input into `(segment_seq, flags, prev_lsn, frames)`.
pub fn split_scan_input(data: &[u8]) -> Option<(u64, u8, Lsn, &[u8])> {
    let (prefix, frames) = data.split_at_checked(SCAN_PREFIX)?;
    let seq = u64::from_le_bytes(prefix.get(0..8)?.try_into().ok()?);
    let prev = u64::from_le_bytes(prefix.get(9..17)?.try_into().ok()?);
    Some((seq, *prefix.get(8)?, Lsn(prev), frames))
}

/// A segment image: `header` (at most [`HEADER_BYTES`]) zero-padded to the data start, then
/// `frames`.
pub fn segment_image(header: &[u8], frames: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; DATA_START as usize];
    let n = header.len().min(HEADER_BYTES);
    image[..n].copy_from_slice(&header[..n]);
    image.extend_from_slice(frames);
    image
}

/// Rewrites the checksum of every frame whose length field fits, walking frames as a scan
/// would; stops at a zero or out-of-range length.
pub fn reseal_frames(image: &mut [u8], segment_seq: u64) {
    let mut offset = DATA_START as usize;
    while let Some(len_bytes) = image.get(offset..offset + 4) {
        let frame_len = u32::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        if frame_len < FRAME_OVERHEAD || offset + frame_len > image.len() {
            return;
        }
        let body_end = offset + frame_len - 8;
        let checksum = xxh3_64_with_seed(&image[offset..body_end], segment_seq);
        image[body_end..body_end + 8].copy_from_slice(&checksum.to_le_bytes());
        offset += frame_len;
    }
}

/// Rewrites the header checksum (format 2: bytes 88..96 over 0..88) if the image is long enough.
pub fn reseal_header(image: &mut [u8]) {
    if image.len() >= HEADER_BYTES {
        let checksum = xxh3_64(&image[..88]);
        image[88..96].copy_from_slice(&checksum.to_le_bytes());
    }
}

/// Writes the identity recovery expects into a header: `segment_seq`, tenant, timeline.
pub fn set_header_ids(image: &mut [u8], segment_seq: u64) {
    image[16..24].copy_from_slice(&segment_seq.to_le_bytes());
    image[24..40].copy_from_slice(&TENANT.0);
    image[40..56].copy_from_slice(&TIMELINE.0);
}

/// Splits a `recovery` input: `first_seq: u64`, `flags: u8`, then up to [`MAX_SEGMENTS`]
/// segments, each `len: u16` + `len` bytes (header bytes, then frames).
pub fn split_recovery_input(data: &[u8]) -> Option<(u64, u8, Vec<&[u8]>)> {
    let first_seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let flags = *data.get(8)?;
    let mut rest = data.get(9..)?;
    let mut segments = Vec::new();
    while segments.len() < MAX_SEGMENTS {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else { break };
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (segment, tail) = tail.split_at(len);
        segments.push(segment);
        rest = tail;
    }
    Some((first_seq, flags, segments))
}

/// Turns one recovery segment chunk into a segment image, repaired as `flags` ask.
pub fn recovery_image(chunk: &[u8], segment_seq: u64, flags: u8) -> Vec<u8> {
    let (header, frames) = chunk.split_at(chunk.len().min(HEADER_BYTES));
    let mut image = segment_image(header, frames);
    if flags & FIX_HEADER_IDS != 0 {
        set_header_ids(&mut image, segment_seq);
    }
    if flags & FIX_CHECKSUMS != 0 {
        reseal_header(&mut image);
        reseal_frames(&mut image, segment_seq);
    }
    image
}

/// The header bytes a real segment starts with (for seeds).
pub fn real_header(segment_seq: u64, segment_size_bytes: u64, prev_lsn: Lsn) -> Vec<u8> {
    let header = SegmentHeader {
        segment_seq,
        tenant_id: TENANT,
        timeline_id: TIMELINE,
        segment_size_bytes,
        prev_lsn,
        file_id: None,
    };
    header.encode()[..HEADER_BYTES].to_vec()
}
