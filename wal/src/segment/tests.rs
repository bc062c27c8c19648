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
        file_id: None,
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
        encode_frame(seq, &record(lsn), true, None, &mut bytes);
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
    let scan = scan_frames(&bytes, 1, Lsn(0), None);
    assert_eq!(scan.stop, ScanStop::EndOfData);
    let lsns: Vec<u64> = scan.frames.iter().map(|f| f.record.lsn.0).collect();
    assert_eq!(lsns, vec![5, 6, 9]);
}

#[test]
fn scan_stops_at_torn_frame() {
    let mut bytes = segment_with(1, &[5, 6, 9]);
    let second = scan_frames(&bytes, 1, Lsn(0), None).frames[1].offset as usize;
    bytes[second + 12] ^= 0xff;
    let scan = scan_frames(&bytes, 1, Lsn(0), None);
    assert_eq!(scan.frames.len(), 1);
    assert_eq!(scan.end_offset, second as u64);
    assert!(matches!(scan.stop, ScanStop::Invalid { what: "frame checksum mismatch", .. }));
}

#[test]
fn frames_from_another_segment_do_not_verify() {
    let bytes = segment_with(1, &[5]);
    let scan = scan_frames(&bytes, 2, Lsn(0), None);
    assert!(scan.frames.is_empty());
    assert!(matches!(scan.stop, ScanStop::Invalid { .. }));
}

#[test]
fn lsn_must_increase() {
    let bytes = segment_with(1, &[5, 5]);
    let scan = scan_frames(&bytes, 1, Lsn(0), None);
    assert_eq!(scan.frames.len(), 1);
    assert!(matches!(scan.stop, ScanStop::Invalid { what: "record LSN does not increase", .. }));
    assert_eq!(scan_frames(&segment_with(1, &[5]), 1, Lsn(5), None).frames.len(), 0);
}

proptest::proptest! {
    #[test]
    fn scan_never_panics(garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20000)) {
        let mut bytes = header(1).encode();
        bytes.extend_from_slice(&garbage);
        let _ = scan_frames(&bytes, 1, Lsn(0), None);
        let _ = SegmentHeader::decode(&garbage);
    }
}

/// A stand-in cipher for the frame format tests (the real one, AES-256-GCM, is the server's and
/// is tested there): XOR with the position, tag = xxh3 of the plaintext and position.
struct XorSealer {
    next: u64,
}

fn xor_tag(position: u64, plain: &[u8]) -> [u8; TAG_SIZE] {
    let mut tag = [0; TAG_SIZE];
    tag[..8].copy_from_slice(&xxh3_64_with_seed(plain, position).to_le_bytes());
    tag
}

impl FrameSealer for XorSealer {
    fn seal(&mut self, record: &mut [u8]) -> (u64, [u8; TAG_SIZE]) {
        self.next += 3;
        let tag = xor_tag(self.next, record);
        record.iter_mut().for_each(|b| *b ^= self.next as u8 | 1);
        (self.next, tag)
    }
}

struct XorOpener;

impl FrameOpener for XorOpener {
    fn open(&self, position: u64, record: &mut [u8], tag: &[u8; TAG_SIZE]) -> bool {
        let mut plain = record.to_vec();
        plain.iter_mut().for_each(|b| *b ^= position as u8 | 1);
        if xor_tag(position, &plain) != *tag {
            return false;
        }
        record.copy_from_slice(&plain);
        true
    }
}

fn sealed_segment(seq: u64, lsns: &[u64]) -> Vec<u8> {
    let mut bytes = SegmentHeader { file_id: Some(0xfeed), ..header(seq) }.encode();
    let mut sealer = XorSealer { next: 0 };
    for &lsn in lsns {
        let len = encode_frame(seq, &record(lsn), true, Some(&mut sealer), &mut bytes);
        assert_eq!(len, frame_size(&record(lsn), true));
    }
    bytes.resize(SEGMENT_SIZE, 0);
    bytes
}

#[test]
fn v2_header_carries_the_file_id_and_v1_headers_still_decode() {
    let with_key = SegmentHeader { file_id: Some(0xfeed), ..header(4) };
    assert_eq!(SegmentHeader::decode(&with_key.encode()), Ok(with_key));
    // A v1 header (format 1: checksum at 72 over 0..72, no file id), built by hand.
    let mut v1 = header(4).encode();
    v1[8..10].copy_from_slice(&1u16.to_le_bytes());
    let checksum = xxh3_64(&v1[..72]);
    v1[72..80].copy_from_slice(&checksum.to_le_bytes());
    v1[80..96].fill(0);
    assert_eq!(SegmentHeader::decode(&v1), Ok(header(4)));
}

#[test]
fn sealed_frames_round_trip_and_hide_the_record() {
    let bytes = sealed_segment(1, &[5, 6, 9]);
    let plain = segment_with(1, &[5, 6, 9]);
    let record_bytes = |b: &[u8], at: usize| b[at..at + record(5).encoded_size()].to_vec();
    assert_ne!(record_bytes(&bytes, 4096 + 32), record_bytes(&plain, 4096 + 8));
    let scan = scan_frames(&bytes, 1, Lsn(0), Some(&XorOpener));
    assert_eq!(scan.stop, ScanStop::EndOfData);
    let lsns: Vec<u64> = scan.frames.iter().map(|f| f.record.lsn.0).collect();
    assert_eq!(lsns, vec![5, 6, 9]);
}

#[test]
fn sealed_and_plaintext_frames_do_not_mix() {
    let sealed = sealed_segment(1, &[5]);
    let scan = scan_frames(&sealed, 1, Lsn(0), None);
    assert!(matches!(
        scan.stop,
        ScanStop::Invalid { what: "sealed frame in a plaintext segment", .. }
    ));
    let plain = segment_with(1, &[5]);
    let scan = scan_frames(&plain, 1, Lsn(0), Some(&XorOpener));
    assert!(matches!(
        scan.stop,
        ScanStop::Invalid { what: "plaintext frame in an encrypted segment", .. }
    ));
}

#[test]
fn a_modified_sealed_frame_with_a_fixed_checksum_does_not_authenticate() {
    let mut bytes = sealed_segment(1, &[5, 6]);
    let second = scan_frames(&bytes, 1, Lsn(0), Some(&XorOpener)).frames[1].offset as usize;
    let len = frame_size(&record(6), true);
    bytes[second + 40] ^= 0x10;
    // An attacker can recompute the keyless checksum; the tag still catches the change.
    let checksum = xxh3_64_with_seed(&bytes[second..second + len - 8], 1);
    bytes[second + len - 8..second + len].copy_from_slice(&checksum.to_le_bytes());
    let scan = scan_frames(&bytes, 1, Lsn(0), Some(&XorOpener));
    assert_eq!(scan.frames.len(), 1);
    assert!(matches!(
        scan.stop,
        ScanStop::Invalid { what: "sealed frame does not authenticate", .. }
    ));
}

#[test]
fn a_replayed_sealed_frame_is_refused() {
    let bytes = sealed_segment(1, &[5, 6]);
    let scan = scan_frames(&bytes, 1, Lsn(0), Some(&XorOpener));
    let (first, second) = (scan.frames[0].offset as usize, scan.frames[1].offset as usize);
    // Frame 2 rewritten with frame 1's position and tag re-sealed: positions must increase.
    let mut replay = bytes.clone();
    let frame1 = bytes[first..second].to_vec();
    replay[second..second + frame1.len()].copy_from_slice(&frame1);
    let scan = scan_frames(&replay, 1, Lsn(0), Some(&XorOpener));
    assert_eq!(scan.frames.len(), 1);
    assert!(matches!(scan.stop, ScanStop::Invalid { .. }));
}
