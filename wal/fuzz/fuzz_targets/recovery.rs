//! Fuzz target: `wal::recovery::recover` over up to four fuzzed segment images.
//!
//! Input layout in `wal_fuzz::split_recovery_input`: the first segment number, flags (repair
//! checksums, write the expected identity into headers), then length-prefixed segments. Recovery
//! must decide (a labelled `Ok` or a refusal) without panicking, and what it keeps must be
//! consistent: records in increasing LSN order, `last_lsn` the last kept record's, the tail in a
//! segment it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wal::recovery::{recover, SegmentImage};
use wal::Lsn;
use wal_fuzz::{recovery_image, split_recovery_input, TENANT, TIMELINE};

fuzz_target!(|data: &[u8]| {
    let Some((first_seq, flags, chunks)) = split_recovery_input(data) else {
        return;
    };
    let images: Vec<(u64, Vec<u8>)> = chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let seq = first_seq.wrapping_add(index as u64);
            (seq, recovery_image(chunk, seq, flags))
        })
        .collect();
    let segments: Vec<SegmentImage<'_>> = images
        .iter()
        .map(|(segment_seq, bytes)| SegmentImage { segment_seq: *segment_seq, bytes, opener: None })
        .collect();
    let Ok(recovered) = recover(TENANT, TIMELINE, &segments) else {
        return;
    };
    assert!(recovered.records.windows(2).all(|w| w[0].lsn < w[1].lsn));
    let last = recovered.records.last().map_or(Lsn::INVALID, |r| r.lsn);
    assert_eq!(recovered.last_lsn, last, "last_lsn is not the last kept record's");
    if let Some(tail) = recovered.tail {
        assert!(segments.iter().any(|s| s.segment_seq == tail.segment_seq));
    }
});
