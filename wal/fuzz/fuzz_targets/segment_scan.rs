//! Fuzz target: `wal::segment::scan_frames` and `SegmentHeader::decode` on arbitrary bytes.
//!
//! Input: `segment_seq: u64`, `flags: u8`, `prev_lsn: u64`, then the bytes after the header
//! block (see `wal_fuzz::split_scan_input`); with `FIX_CHECKSUMS` the frame checksums are
//! recomputed so the record decoder behind them is reached. The scan must stop inside the
//! image, return frames in order with increasing LSNs, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wal::segment::{scan_frames, ScanStop, SegmentHeader, DATA_START};
use wal_fuzz::{reseal_frames, reseal_header, segment_image, split_scan_input, FIX_CHECKSUMS};

fuzz_target!(|data: &[u8]| {
    let Some((segment_seq, flags, prev_lsn, frames)) = split_scan_input(data) else {
        return;
    };
    // The same bytes as a header: arbitrary or, when asked, with a valid checksum.
    let mut header = frames.to_vec();
    if flags & FIX_CHECKSUMS != 0 {
        reseal_header(&mut header);
    }
    let _ = SegmentHeader::decode(&header);

    let mut image = segment_image(&[], frames);
    if flags & FIX_CHECKSUMS != 0 {
        reseal_frames(&mut image, segment_seq);
    }
    let scan = scan_frames(&image, segment_seq, prev_lsn, None);
    assert!(scan.end_offset <= image.len() as u64, "scan ended past the image");
    let mut offset = DATA_START;
    let mut last_lsn = prev_lsn;
    for frame in &scan.frames {
        assert_eq!(frame.offset, offset, "frames must follow each other");
        assert!(frame.end > frame.offset);
        assert!(frame.record.lsn > last_lsn, "scan returned a non-increasing LSN");
        offset = frame.end;
        last_lsn = frame.record.lsn;
    }
    assert_eq!(scan.end_offset, offset);
    if let ScanStop::Invalid { offset: at, .. } = scan.stop {
        assert_eq!(at, offset, "invalid frame reported away from the scan end");
    }
});
