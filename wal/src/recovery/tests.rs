use super::*;
use crate::record::RecordBody;
use crate::segment::encode_frame;
use crate::types::{BlockNumber, Fork, PageKey, RelTag};

const SEGMENT_SIZE: usize = 16 * 1024;
const TENANT: TenantId = TenantId([1; 16]);
const TIMELINE: TimelineId = TimelineId([2; 16]);

fn record(lsn: u64) -> Record {
    Record {
        lsn: Lsn(lsn),
        key: PageKey {
            rel: RelTag { spc_oid: 1, db_oid: 2, rel_number: 3, fork: Fork::Main },
            block: BlockNumber(0),
        },
        body: RecordBody::RelSize(1),
    }
}

fn segment(seq: u64, lsns: &[u64]) -> Vec<u8> {
    segment_with_commits(seq, lsns, lsns.len())
}

/// A segment whose first `committed` frames end batches; the rest belong to an unfinished one.
fn segment_with_commits(seq: u64, lsns: &[u64], committed: usize) -> Vec<u8> {
    let header = SegmentHeader {
        segment_seq: seq,
        tenant_id: TENANT,
        timeline_id: TIMELINE,
        segment_size_bytes: SEGMENT_SIZE as u64,
        prev_lsn: Lsn(0),
        file_id: None,
    };
    let mut bytes = header.encode();
    for (i, &lsn) in lsns.iter().enumerate() {
        encode_frame(seq, &record(lsn), i < committed, None, &mut bytes);
    }
    bytes.resize(SEGMENT_SIZE, 0);
    bytes
}

fn check(segments: &[(u64, Vec<u8>)]) -> Result<Recovered, RecoveryError> {
    let images: Vec<SegmentImage<'_>> = segments
        .iter()
        .map(|(seq, bytes)| SegmentImage { segment_seq: *seq, bytes, opener: None })
        .collect();
    recover(TENANT, TIMELINE, &images)
}

fn lsns(recovered: &Recovered) -> Vec<u64> {
    recovered.records.iter().map(|r| r.lsn.0).collect()
}

#[test]
fn empty_and_clean_end() {
    assert_eq!(check(&[]).unwrap().case, "empty");
    let recovered = check(&[(1, segment(1, &[1, 2])), (2, segment(2, &[3]))]).unwrap();
    assert_eq!(recovered.case, "clean-end");
    assert_eq!(lsns(&recovered), vec![1, 2, 3]);
    assert_eq!(recovered.last_lsn, Lsn(3));
    assert_eq!(recovered.tail.unwrap().segment_seq, 2);
    assert_eq!(recovered.segment_last_lsns, vec![(1, Lsn(2)), (2, Lsn(3))]);
}

#[test]
fn torn_tail_truncates() {
    let mut last = segment(1, &[1, 2, 3]);
    let third = crate::segment::scan_frames(&last, 1, Lsn(0), None).frames[2].offset;
    last[third as usize + 9] ^= 1;
    let recovered = check(&[(1, last)]).unwrap();
    assert_eq!(recovered.case, "torn-tail");
    assert_eq!(lsns(&recovered), vec![1, 2]);
    assert_eq!(recovered.truncate_at, Some((1, third)));
}

#[test]
fn torn_before_empty_segments_deletes_them() {
    let mut first = segment(1, &[1, 2]);
    first[DATA_START as usize + 9] ^= 1;
    let recovered = check(&[(1, first), (2, segment(2, &[]))]).unwrap();
    assert_eq!(recovered.case, "torn-before-empty");
    assert_eq!(recovered.delete_segments, vec![2]);
    assert!(recovered.records.is_empty());
}

#[test]
fn damage_before_data_refuses() {
    let mut first = segment(1, &[1, 2]);
    first[DATA_START as usize + 9] ^= 1;
    let error = check(&[(1, first), (2, segment(2, &[5]))]).unwrap_err();
    assert_eq!(error.case, "damage-before-data");
}

#[test]
fn bad_header_and_gaps_refuse() {
    let mut bad = segment(1, &[1]);
    bad[0] = 0;
    assert_eq!(check(&[(1, bad)]).unwrap_err().case, "bad-header");
    assert_eq!(check(&[(1, segment(2, &[1]))]).unwrap_err().case, "bad-header");
    let gap = check(&[(1, segment(1, &[1])), (3, segment(3, &[2]))]).unwrap_err();
    assert_eq!(gap.case, "sequence-gap");
}

/// Regression (issue 8, found by the `recovery` fuzz target within a second of its first long
/// run): the consecutive-numbers check computed `first.segment_seq + index`, which panicked with
/// "attempt to add with overflow" (builds with overflow checks) when the first segment number
/// was `u64::MAX` and another segment followed; in release it wrapped to 0. Segment numbers come
/// from file names on disk, so a stray `18446744073709551615.seg` must be refused as a gap, not
/// crash the server. The fuzzer's input is the seed `wal/fuzz/corpus/recovery/regress-seq-overflow`.
#[test]
fn sequence_number_at_u64_max_is_a_gap_not_a_panic() {
    let last = u64::MAX;
    let refused = check(&[(last, segment(last, &[1])), (0, segment(0, &[2]))]).unwrap_err();
    assert_eq!(refused.case, "sequence-gap");
    let alone = check(&[(last, segment(last, &[1]))]).unwrap();
    assert_eq!(alone.case, "clean-end");
}

#[test]
fn an_unfinished_batch_is_dropped_whole_even_across_segments() {
    // Records 3 and 4 form one batch; only 4 would carry BATCH_END, and it never made it.
    let first = segment_with_commits(1, &[1, 2, 3], 2);
    let second = segment_with_commits(2, &[], 0);
    let recovered = check(&[(1, first.clone()), (2, second)]).unwrap();
    assert_eq!(recovered.case, "uncommitted-tail");
    assert_eq!(lsns(&recovered), vec![1, 2]);
    let third = crate::segment::scan_frames(&first, 1, Lsn(0), None).frames[2].offset;
    assert_eq!(recovered.truncate_at, Some((1, third)));
    assert_eq!(recovered.delete_segments, vec![2]);
    assert_eq!(recovered.segment_last_lsns, vec![(1, Lsn(2))]);
    // The same batch, with its second half in the next segment but not yet marked.
    let recovered = check(&[
        (1, segment_with_commits(1, &[1, 2, 3], 2)),
        (2, segment_with_commits(2, &[4], 0)),
    ])
    .unwrap();
    assert_eq!(recovered.case, "uncommitted-tail");
    assert_eq!(lsns(&recovered), vec![1, 2]);
    assert_eq!(recovered.delete_segments, vec![2]);
    // Once marked, the batch spanning both segments is kept.
    let recovered = check(&[
        (1, segment_with_commits(1, &[1, 2, 3], 2)),
        (2, segment_with_commits(2, &[4], 1)),
    ])
    .unwrap();
    assert_eq!(recovered.case, "clean-end");
    assert_eq!(lsns(&recovered), vec![1, 2, 3, 4]);
    assert_eq!(recovered.segment_last_lsns, vec![(1, Lsn(3)), (2, Lsn(4))]);
}
