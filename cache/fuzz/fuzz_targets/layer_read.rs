//! Fuzz target: the layer file reader, `cache::layer::decode_header`, `decode_index` and
//! `verify_payload`, as the server uses them to open a layer file and read its payloads.
//!
//! Input: `flags: u8`, then the file image. With bit 0 of `flags` set, the index checksum and
//! then the header checksum are recomputed from the fuzzed bytes before decoding, so the
//! fuzzer gets past them to the index decoder. Decoding must return `Ok` or `Err` and never
//! panic or over-read; every entry of a decoded index must lie in the data section (between
//! the header block and the index), which is what the O_DIRECT reads of its payload rely on.
#![no_main]

use cache::layer::{aligned_span, decode_header, decode_index, verify_payload, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;
use xxhash_rust::xxh3::xxh3_64;

/// Flags bit: recompute the index and header checksums before decoding.
const FIX_CHECKSUMS: u8 = 1;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    if flags & FIX_CHECKSUMS != 0 {
        reseal(&mut file);
    }
    let Ok(header) = decode_header(&file) else {
        return;
    };
    let Some(index_bytes) = usize::try_from(header.index_offset).ok().and_then(|o| file.get(o..))
    else {
        return;
    };
    let mut index_bytes = index_bytes.to_vec();
    let Ok(index) = decode_index(header, &mut index_bytes, None) else {
        return;
    };
    for entry in &index.entries {
        let end = entry.offset.checked_add(u64::from(entry.len));
        assert!(entry.offset >= HEADER_SIZE as u64, "entry points into the header");
        assert!(end.is_some_and(|end| end <= header.index_offset), "entry runs past the data");
        let (start, span_end) = aligned_span(entry);
        assert!(start <= entry.offset && end.is_some_and(|end| end <= span_end));
        assert!(index.versions_of(entry.key).iter().any(|e| e == entry));
        let payload = file.get(entry.offset as usize..).and_then(|p| p.get(..entry.len as usize));
        if let Some(payload) = payload {
            let _ = verify_payload(entry, &mut payload.to_vec(), None);
        }
    }
    let _ = index.key_range();
    let _ = index.memory_bytes();
});

/// Rewrites `index_checksum` (over the index bytes the header points at, when they are in the
/// file) and then `header_checksum`, in place.
fn reseal(file: &mut [u8]) {
    // Format 2 keeps the header checksum at 128 (over 0..128), format 1 at 96 (over 0..96).
    let checksum_at = if file.get(8..10) == Some(&[1, 0]) { 96 } else { 128 };
    if file.len() < checksum_at + 8 {
        return; // no room for the checksum fields
    }
    let field = |file: &[u8], at: usize| {
        file.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let (Some(offset), Some(len)) = (field(file, 64), field(file, 72)) else {
        return;
    };
    let index = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(o, l)| file.get(o..o.checked_add(l)?));
    if let Some(index) = index {
        let checksum = xxh3_64(index);
        file[80..88].copy_from_slice(&checksum.to_le_bytes());
    }
    let checksum = xxh3_64(&file[..checksum_at]);
    file[checksum_at..checksum_at + 8].copy_from_slice(&checksum.to_le_bytes());
}
