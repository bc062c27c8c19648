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
//! | `clean-end`            | the last segment ends with a committed frame, then zeros      | append at that offset |
//! | `full-segment`         | the last committed frame fills the last segment               | append in a new segment |
//! | `uncommitted-tail`     | valid frames after the last `BATCH_END` frame (a group commit cut short, maybe across segments) | truncate after the last committed frame; later segments are deleted |
//! | `torn-tail`            | an invalid frame (bad length, checksum, undecodable, LSN not increasing) in the last segment | truncate after the last committed frame before it |
//! | `torn-before-empty`    | an invalid frame in segment k; segments after k hold no valid frame | truncate after the last committed frame; the later segments are deleted |
//! | `damage-before-data`   | an invalid frame in segment k; a later segment holds valid frames | refuse: acknowledged records lie beyond damage, a human must look |
//! | `bad-header`           | a header that does not decode, or names another tenant, timeline or sequence number | refuse |
//! | `tampered`             | a sealed frame whose checksum holds but whose GCM tag does not (modified, or the wrong key) | refuse: not a torn write, and cutting could drop acknowledged records |
//! | `sequence-gap`         | segment numbers not consecutive from the first                | refuse |
//!
//! Why truncation is safe: a batch is acknowledged only after the fdatasync that covers all of
//! it, frames are written in order, and only a batch's last frame is marked `BATCH_END`; so
//! whatever follows the last `BATCH_END` frame was never acknowledged, and an unacknowledged
//! batch is dropped whole. The server zeroes the segment from the cut to its end before
//! appending, so a stale, valid-looking frame beyond the cut cannot resurface after the next
//! crash.

use crate::record::Record;
use crate::segment::{
    scan_frames, FrameOpener, ScanStop, SegmentHeader, AUTHENTICATION_FAILURE, DATA_START,
};
use crate::types::{Lsn, TenantId, TimelineId};

/// One segment file as read from disk.
pub struct SegmentImage<'a> {
    /// Sequence number from the file name.
    pub segment_seq: u64,
    pub bytes: &'a [u8],
    /// Opens the segment's sealed frames; `None` for a plaintext segment. The server finds the
    /// key from the header's `file_id` before calling [`recover`].
    pub opener: Option<&'a dyn FrameOpener>,
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
    /// For each kept segment, the LSN of its last valid record (or of the segment before it,
    /// if it holds none), so the server can delete segments whose records are all in layers.
    pub segment_last_lsns: Vec<(u64, Lsn)>,
    /// `None` when there were no segments (`empty`).
    pub tail: Option<TailPosition>,
    /// For the cutting cases: segment and offset from which the server must zero the file
    /// before appending.
    pub truncate_at: Option<(u64, u64)>,
    /// Segments after the cut, to delete.
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

/// Where the last committed frame ends.
#[derive(Clone, Copy)]
struct CommitPoint {
    segment_index: usize,
    offset: u64,
    records: usize,
    last_lsn: Lsn,
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
            segment_last_lsns: Vec::new(),
            tail: None,
            truncate_at: None,
            delete_segments: Vec::new(),
            case: "empty",
            detail: None,
        });
    };
    let mut records = Vec::new();
    // Segment index of each record, to know each kept segment's last committed LSN.
    let mut record_segment = Vec::new();
    let mut last_lsn = Lsn::INVALID;
    let mut commit =
        CommitPoint { segment_index: 0, offset: DATA_START, records: 0, last_lsn: Lsn::INVALID };
    let mut damage: Option<(usize, &'static str)> = None;
    let mut full_at_end = false;
    for (index, segment) in segments.iter().enumerate() {
        let refuse = |case, offset, what: String| RecoveryError {
            case,
            segment_seq: segment.segment_seq,
            offset,
            what,
        };
        // checked_add: sequence numbers come from file names; the last possible one must not
        // wrap (test `sequence_number_at_u64_max_is_a_gap_not_a_panic`).
        if first.segment_seq.checked_add(index as u64) != Some(segment.segment_seq) {
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
        let scan = scan_frames(segment.bytes, segment.segment_seq, last_lsn, segment.opener);
        for frame in scan.frames {
            last_lsn = frame.record.lsn;
            records.push(frame.record);
            record_segment.push(index);
            if frame.batch_end {
                commit = CommitPoint {
                    segment_index: index,
                    offset: frame.end,
                    records: records.len(),
                    last_lsn,
                };
            }
        }
        full_at_end = scan.stop == ScanStop::EndOfSegment;
        if let ScanStop::Invalid { offset, what } = scan.stop {
            if what == AUTHENTICATION_FAILURE {
                // Its checksum held, so no torn write did this: the frame was modified (or the
                // key is wrong). Cutting here could drop acknowledged records: refuse.
                return Err(RecoveryError {
                    case: "tampered",
                    segment_seq: segment.segment_seq,
                    offset,
                    what: what.to_string(),
                });
            }
            if let Some(with_data) = segments[index + 1..].iter().find(|s| holds_valid_frame(s)) {
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
            damage = Some((index, what));
            break;
        }
    }
    let uncommitted = records.len() > commit.records;
    records.truncate(commit.records);
    let mut segment_last_lsns = Vec::new();
    let mut running = Lsn::INVALID;
    for (index, segment) in segments[..=commit.segment_index].iter().enumerate() {
        for (record, _) in records.iter().zip(&record_segment).filter(|(_, s)| **s == index) {
            running = record.lsn;
        }
        segment_last_lsns.push((segment.segment_seq, running));
    }
    let last_index = segments.len() - 1;
    let (case, detail) = match damage {
        Some((index, what)) if index == last_index => ("torn-tail", Some(what)),
        Some((_, what)) => ("torn-before-empty", Some(what)),
        None if uncommitted => ("uncommitted-tail", None),
        None if commit.segment_index < last_index => ("torn-before-empty", None),
        None if full_at_end && commit.offset + 4 > segment_size(segments, last_index) => {
            ("full-segment", None)
        }
        None => ("clean-end", None),
    };
    let commit_seq = segments[commit.segment_index].segment_seq;
    let cut = damage.is_some() || uncommitted || commit.segment_index < last_index;
    let write_offset = (case != "full-segment").then_some(commit.offset);
    Ok(Recovered {
        records,
        last_lsn: commit.last_lsn,
        segment_last_lsns,
        tail: Some(TailPosition { segment_seq: commit_seq, write_offset }),
        truncate_at: cut.then_some((commit_seq, commit.offset)),
        delete_segments: segments[commit.segment_index + 1..]
            .iter()
            .map(|s| s.segment_seq)
            .collect(),
        case,
        detail,
    })
}

fn segment_size(segments: &[SegmentImage<'_>], index: usize) -> u64 {
    segments[index].bytes.len() as u64
}

/// Whether the segment's first frame verifies (with any LSN): a sign of acknowledged data.
fn holds_valid_frame(segment: &SegmentImage<'_>) -> bool {
    SegmentHeader::decode(segment.bytes).is_ok()
        && !scan_frames(segment.bytes, segment.segment_seq, Lsn::INVALID, segment.opener)
            .frames
            .is_empty()
}

#[cfg(test)]
mod tests;
