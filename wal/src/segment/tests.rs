use super::*;
use crate::record::RecordBody;
use crate::types::{BlockNumber, Fork, PageKey, RelTag};

const SEGMENT_SIZE: usize = 64 * 1024;

fn header(seq: u64) -> SegmentHeader {
    SegmentHeader {
        segment_seq: seq,
        tenant_id: TenantId::from_u128(7),
        timeline_id: TimelineId::from_u128(9),
        segment_size_bytes: SEGMENT_SIZE as u64,
        prev_lsn: Lsn(0),
    }
}

fn record(lsn: u64) -> Record {
    Record {
        lsn: Lsn(lsn),
        key: PageKey {
            rel: RelTag { spc_oid: 1, db_oid: 2, rel_number: 3, fork: Fork::Main },
            block: BlockNumber(4),
        },
        body: RecordBody::RelSize(lsn as u32),
    }
}

fn segment_with(seq: u64, lsns: &[u64]) -> Vec<u8> {
    let mut bytes = header(seq).encode();
    for &lsn in lsns {
        encode_frame(seq, &record(lsn), true, &mut bytes);
    }
    bytes.resize(SEGMENT_SIZE, 0);
    bytes
}

#[test]
fn header_round_trips_and_detects_damage() {
    let encoded = header(3).encode();
    assert_eq!(encoded.len(), DATA_START as usize);
    assert_eq!(SegmentHeader::decode(&encoded), Ok(header(3)));
    let mut flipped = encoded.clone();
    flipped[20] ^= 1;
    assert_eq!(SegmentHeader::decode(&flipped), Err(HeaderError::BadChecksum));
    let mut magic = encoded.clone();
    magic[0] = b'X';
    assert_eq!(SegmentHeader::decode(&magic), Err(HeaderError::BadMagic));
    assert_eq!(SegmentHeader::decode(&encoded[..10]), Err(HeaderError::Truncated));
}

#[test]
fn scan_reads_frames_until_zero() {
    let bytes = segment_with(1, &[5, 6, 9]);
    let scan = scan_frames(&bytes, 1, Lsn(0));
    assert_eq!(scan.stop, ScanStop::EndOfData);
    let lsns: Vec<u64> = scan.frames.iter().map(|f| f.record.lsn.0).collect();
    assert_eq!(lsns, vec![5, 6, 9]);
}

#[test]
fn scan_stops_at_torn_frame() {
    let mut bytes = segment_with(1, &[5, 6, 9]);
    let second = scan_frames(&bytes, 1, Lsn(0)).frames[1].offset as usize;
    bytes[second + 12] ^= 0xff;
    let scan = scan_frames(&bytes, 1, Lsn(0));
    assert_eq!(scan.frames.len(), 1);
    assert_eq!(scan.end_offset, second as u64);
    assert!(matches!(scan.stop, ScanStop::Invalid { what: "frame checksum mismatch", .. }));
}

#[test]
fn frames_from_another_segment_do_not_verify() {
    let bytes = segment_with(1, &[5]);
    let scan = scan_frames(&bytes, 2, Lsn(0));
    assert!(scan.frames.is_empty());
    assert!(matches!(scan.stop, ScanStop::Invalid { .. }));
}

#[test]
fn lsn_must_increase() {
    let bytes = segment_with(1, &[5, 5]);
    let scan = scan_frames(&bytes, 1, Lsn(0));
    assert_eq!(scan.frames.len(), 1);
    assert!(matches!(scan.stop, ScanStop::Invalid { what: "record LSN does not increase", .. }));
    assert_eq!(scan_frames(&segment_with(1, &[5]), 1, Lsn(5)).frames.len(), 0);
}

proptest::proptest! {
    #[test]
    fn scan_never_panics(garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20000)) {
        let mut bytes = header(1).encode();
        bytes.extend_from_slice(&garbage);
        let _ = scan_frames(&bytes, 1, Lsn(0));
        let _ = SegmentHeader::decode(&garbage);
    }
}
