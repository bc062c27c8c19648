//! Writes the seed corpora of the WAL fuzz targets from real encodings:
//! `cargo run --example write_seeds` (from `wal/fuzz/`). Seeds are small and committed; rerun
//! this after a format change and commit the result.

use std::path::Path;
use wal::segment::{encode_frame, SegmentHeader, DATA_START};
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, PAGE_SIZE};
use wal_fuzz::{real_header, FIX_CHECKSUMS, FIX_HEADER_IDS};

fn key(block: u32) -> PageKey {
    PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main },
        block: BlockNumber(block),
    }
}

fn records() -> Vec<Record> {
    let delta = Delta::from_patches([(0u16, &b"pagecore"[..]), (8184, &[7u8; 8][..])]).unwrap();
    let mut page = Box::new([0u8; PAGE_SIZE]);
    page[..4].copy_from_slice(b"img!");
    vec![
        Record { lsn: Lsn(0x100), key: key(0), body: RecordBody::Delta(delta) },
        Record { lsn: Lsn(0x200), key: key(0), body: RecordBody::RelSize(3) },
        Record { lsn: Lsn(0x300), key: key(1), body: RecordBody::RelDrop },
        Record { lsn: Lsn(0x400), key: key(2), body: RecordBody::Image(page) },
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Frames of `records` (without the image, to keep seeds small), the last one `BATCH_END`.
fn frames(segment_seq: u64, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, record) in records.iter().enumerate() {
        encode_frame(segment_seq, record, index + 1 == records.len(), None, &mut out);
    }
    out
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let all = records();
    let small = &all[..3];

    let dir = corpus.join("record_decode");
    for (index, record) in all.iter().enumerate() {
        let mut bytes = Vec::new();
        record.encode_into(&mut bytes);
        write(&dir, &format!("record-{index}"), &bytes);
    }
    if let RecordBody::Delta(delta) = &all[0].body {
        let mut bytes = Vec::new();
        delta.encode_payload(&mut bytes);
        write(&dir, "delta-payload", &bytes);
    }

    let dir = corpus.join("segment_scan");
    for (name, flags) in [("frames-raw", 0u8), ("frames-fix", FIX_CHECKSUMS)] {
        let mut bytes = 7u64.to_le_bytes().to_vec();
        bytes.push(flags);
        bytes.extend_from_slice(&0x80u64.to_le_bytes());
        bytes.extend_from_slice(&frames(7, small));
        write(&dir, name, &bytes);
    }
    let mut header = 7u64.to_le_bytes().to_vec();
    header.push(0);
    header.extend_from_slice(&0u64.to_le_bytes());
    header.extend_from_slice(&real_header(7, 1 << 20, Lsn(0x80)));
    write(&dir, "header", &header);
    assert_eq!(
        SegmentHeader::decode(&real_header(7, 1 << 20, Lsn(0x80))).map(|h| h.segment_seq),
        Ok(7)
    );

    // Two segments: a committed batch in the first, an uncommitted frame in the second.
    let dir = corpus.join("recovery");
    let mut bytes = 1u64.to_le_bytes().to_vec();
    bytes.push(FIX_CHECKSUMS | FIX_HEADER_IDS);
    for (seq, records) in [(1u64, &all[..2]), (2, &all[2..3])] {
        let size = DATA_START + 4096;
        let mut chunk = real_header(seq, size, Lsn::INVALID);
        chunk.extend_from_slice(&frames(seq, records));
        bytes.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&chunk);
    }
    write(&dir, "two-segments", &bytes);
}
