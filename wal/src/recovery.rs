//! Recovery of a timeline's WAL at start: decide, from the segment images alone, which records
//! are durable and where appending continues.
//!
//! The server reads every segment of the timeline (in `segment_seq` order) and hands the images
//! here; this module does no I/O. Each damaged or unusual state is a row below with the decision
//! taken; [`Recovered::case`] (or [`RecoveryError::case`]) carries the label so the server logs
//! which row applied.
//!
//! | label                  | situation                                                     | decision |
//! |------------------------|---------------------------------------------------------------|----------|
//! | `empty`                | no segment files                                              | start fresh at segment 1 |
//! | `clean-end`            | the last segment's frames end with a zero `frame_len`         | append at that offset |
//! | `full-segment`         | the last segment's frames fill it                             | append in a new segment |
//! | `torn-tail`            | an invalid frame (bad length, checksum, undecodable, LSN not increasing) in the last segment | truncate there: the server zeroes from that offset to the segment end and syncs before appending |
//! | `torn-before-empty`    | an invalid frame in segment k; segments after k hold no valid frame | truncate k there; the later segments are deleted |
//! | `damage-before-data`   | an invalid frame in segment k; a later segment holds valid frames | refuse: acknowledged records lie beyond damage, a human must look |
//! | `bad-header`           | a header that does not decode, or names another tenant, timeline or sequence number | refuse |
//! | `sequence-gap`         | segment numbers not consecutive from the first                | refuse |
//!
//! Why truncation is safe: a frame is acknowledged only after the fdatasync that covers it, and
//! frames are written in order, so an invalid frame can only be followed by frames that were
//! never acknowledged. Zeroing the rest of the segment keeps a stale, valid-looking frame beyond
//! the cut from resurfacing after the next crash.

use crate::record::Record;
use crate::segment::{scan_frames, ScanStop, SegmentHeader, DATA_START};
use crate::types::{Lsn, TenantId, TimelineId};

/// One segment file as read from disk.
pub struct SegmentImage<'a> {
    /// Sequence number from the file name.
    pub segment_seq: u64,
    pub bytes: &'a [u8],
}

/// Where appending continues after recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailPosition {
    pub segment_seq: u64,
    /// Next frame offset; `None` if the segment is full and a new one must be opened.
    pub write_offset: Option<u64>,
}

/// What recovery decided for a timeline.
#[derive(Debug)]
pub struct Recovered {
    /// Every durable record, in LSN order.
    pub records: Vec<Record>,
    /// LSN of the last durable record (`Lsn::INVALID` if none).
    pub last_lsn: Lsn,
    /// `None` when there were no segments (`empty`).
    pub tail: Option<TailPosition>,
    /// For `torn-tail` and `torn-before-empty`: segment and offset from which the server must
    /// zero the file before appending.
    pub truncate_at: Option<(u64, u64)>,
    /// Segments to delete (`torn-before-empty`).
    pub delete_segments: Vec<u64>,
    /// The table row that applied.
    pub case: &'static str,
    /// What the invalid frame looked like, for the log.
    pub detail: Option<&'static str>,
}

/// Recovery refused: the timeline cannot be served until a human looks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WAL recovery refused ({case}) at segment {segment_seq} offset {offset}: {what}")]
pub struct RecoveryError {
    pub case: &'static str,
    pub segment_seq: u64,
    pub offset: u64,
    pub what: String,
}

/// Recovers from the segment images of one timeline, sorted by `segment_seq`.
pub fn recover(
    tenant_id: TenantId,
    timeline_id: TimelineId,
    segments: &[SegmentImage<'_>],
) -> Result<Recovered, RecoveryError> {
    let Some(first) = segments.first() else {
        return Ok(Recovered {
            records: Vec::new(),
            last_lsn: Lsn::INVALID,
            tail: None,
            truncate_at: None,
            delete_segments: Vec::new(),
            case: "empty",
            detail: None,
        });
    };
    let mut records = Vec::new();
    let mut last_lsn = Lsn::INVALID;
    for (index, segment) in segments.iter().enumerate() {
        let refuse = |case, offset, what: String| RecoveryError {
            case,
            segment_seq: segment.segment_seq,
            offset,
            what,
        };
        if segment.segment_seq != first.segment_seq + index as u64 {
            return Err(refuse("sequence-gap", 0, "segment numbers are not consecutive".into()));
        }
        let header = SegmentHeader::decode(segment.bytes)
            .map_err(|error| refuse("bad-header", 0, error.to_string()))?;
        if header.segment_seq != segment.segment_seq
            || header.tenant_id != tenant_id
            || header.timeline_id != timeline_id
        {
            return Err(refuse("bad-header", 0, "header names another segment".into()));
        }
        let scan = scan_frames(segment.bytes, segment.segment_seq, last_lsn);
        if let Some((_, record)) = scan.records.last() {
            last_lsn = record.lsn;
        }
        records.extend(scan.records.into_iter().map(|(_, record)| record));
        let is_last = index + 1 == segments.len();
        match scan.stop {
            ScanStop::EndOfData | ScanStop::EndOfSegment if !is_last => continue,
            ScanStop::EndOfData => {
                let tail = TailPosition {
                    segment_seq: segment.segment_seq,
                    write_offset: Some(scan.end_offset),
                };
                return Ok(done(records, last_lsn, tail, "clean-end"));
            }
            ScanStop::EndOfSegment => {
                let tail = TailPosition { segment_seq: segment.segment_seq, write_offset: None };
                return Ok(done(records, last_lsn, tail, "full-segment"));
            }
            ScanStop::Invalid { offset, what } => {
                let later = &segments[index + 1..];
                if let Some(with_data) = later.iter().find(|s| holds_valid_frame(s)) {
                    return Err(RecoveryError {
                        case: "damage-before-data",
                        segment_seq: segment.segment_seq,
                        offset,
                        what: format!(
                            "{what}; segment {} after it holds valid records",
                            with_data.segment_seq
                        ),
                    });
                }
                let tail = TailPosition {
                    segment_seq: segment.segment_seq,
                    write_offset: Some(offset),
                };
                let case = if is_last { "torn-tail" } else { "torn-before-empty" };
                let mut recovered = done(records, last_lsn, tail, case);
                recovered.truncate_at = Some((segment.segment_seq, offset));
                recovered.delete_segments = later.iter().map(|s| s.segment_seq).collect();
                recovered.detail = Some(what);
                return Ok(recovered);
            }
        }
    }
    unreachable!("the loop returns at the last segment")
}

fn done(records: Vec<Record>, last_lsn: Lsn, tail: TailPosition, case: &'static str) -> Recovered {
    Recovered {
        records,
        last_lsn,
        tail: Some(tail),
        truncate_at: None,
        delete_segments: Vec::new(),
        case,
        detail: None,
    }
}

/// Whether the segment's first frame verifies (with any LSN): a sign of acknowledged data.
fn holds_valid_frame(segment: &SegmentImage<'_>) -> bool {
    SegmentHeader::decode(segment.bytes).is_ok()
        && !scan_frames(segment.bytes, segment.segment_seq, Lsn::INVALID).records.is_empty()
}

/// Offset of the first frame in a fresh segment.
pub const FIRST_FRAME_OFFSET: u64 = DATA_START;

#[cfg(test)]
mod tests;
