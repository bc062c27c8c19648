use super::*;
use proptest::prelude::*;

fn key(block: u32) -> PageKey {
    PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 1, rel_number: 7, fork: Fork::Main },
        block: BlockNumber(block),
    }
}

fn sample_delta_layer() -> (Vec<u8>, LayerIndex) {
    let mut writer = LayerWriter::new(
        LayerKind::Delta,
        TenantId::from_u128(1),
        TimelineId::from_u128(2),
        Lsn(0x10),
        Lsn(0x40),
    );
    writer.add_image(key(0), Lsn(0x20), &[7u8; PAGE_SIZE]);
    writer.add_delta(key(0), Lsn(0x30), &[1, 0, 0, 0, 5, 0, 2, 0, b'h', b'i']);
    writer.add_image(key(3), Lsn(0x40), &[9u8; PAGE_SIZE]);
    writer.add_rel_event(RelEvent { rel: key(0).rel, lsn: Lsn(0x20), nblocks: Some(1) });
    writer.add_rel_event(RelEvent { rel: key(0).rel, lsn: Lsn(0x40), nblocks: Some(4) });
    writer.finish()
}

fn open(file: &[u8]) -> Result<LayerIndex, LayerError> {
    let header = decode_header(&file[..HEADER_SIZE.min(file.len())])?;
    decode_index(header, file.get(header.index_offset as usize..).unwrap_or(&[]))
}

#[test]
fn round_trips_and_places_images_aligned() {
    let (file, index) = sample_delta_layer();
    assert_eq!(file.len() as u64 % BLOCK, 0);
    assert_eq!(open(&file).unwrap(), index);
    for entry in &index.entries {
        let payload = &file[entry.offset as usize..entry.offset as usize + entry.len as usize];
        verify_payload(entry, payload).unwrap();
        if entry.is_image {
            assert_eq!(entry.offset % BLOCK, 0);
            assert_eq!(aligned_span(entry), (entry.offset, entry.offset + PAGE_SIZE as u64));
        }
    }
    assert_eq!(index.versions_of(key(0)).len(), 2);
    assert_eq!(index.versions_of(key(1)).len(), 0);
    assert_eq!(index.key_range(), Some((key(0), key(3))));
}

#[test]
fn damage_is_detected() {
    let (file, index) = sample_delta_layer();
    let mut header_flip = file.clone();
    header_flip[50] ^= 1;
    assert_eq!(open(&header_flip), Err(LayerError::HeaderChecksum));
    let mut index_flip = file.clone();
    index_flip[index.header.index_offset as usize + 3] ^= 1;
    assert_eq!(open(&index_flip), Err(LayerError::IndexChecksum));
    let entry = index.entries[0];
    let mut payload = file[entry.offset as usize..][..entry.len as usize].to_vec();
    payload[100] ^= 1;
    assert!(matches!(verify_payload(&entry, &payload), Err(LayerError::PayloadChecksum { .. })));
    assert_eq!(open(&file[..10]), Err(LayerError::Truncated("header")));
}

/// Regression (issue 8, found by the `layer_read` fuzz target in its first seconds): an index
/// entry whose `offset + len` passes `u64::MAX` panicked the decoder with "attempt to add with
/// overflow" in debug builds, and in release wrapped to a small end that passed the
/// "inside the data section" check, so the reader would have trusted an entry pointing nowhere.
/// The end is now computed with `checked_add`; such an entry is `BadIndex`. The fuzzer's
/// minimised input is in `cache/fuzz/corpus/layer_read/regress-entry-end-overflow`.
#[test]
fn entry_end_past_u64_max_is_rejected() {
    let (file, index) = sample_delta_layer();
    let mut header = index.header;
    let index_at = header.index_offset as usize;
    let mut index_bytes = file[index_at..index_at + header.index_len as usize].to_vec();
    // Entry 1 is the delta; its offset is at byte 28 of the entry and its len at byte 36. The
    // wrapped end is 4194: at or above the header, below the index, as the old check wanted.
    let entry = ENTRY_SIZE;
    index_bytes[entry + 28..entry + 36].copy_from_slice(&(u64::MAX - 5).to_le_bytes());
    index_bytes[entry + 36..entry + 40].copy_from_slice(&4200u32.to_le_bytes());
    header.index_checksum = xxh3_64(&index_bytes);
    let mut crafted = Vec::new();
    encode_header(&header, &mut crafted);
    crafted.resize(index_at, 0);
    crafted.extend_from_slice(&index_bytes);
    assert_eq!(open(&crafted), Err(LayerError::BadIndex("entry points outside the data section")));
}

/// Golden files: every format version ever written must keep decoding (STYLE S14). The files
/// in `cache/testdata/v1/` were written by this code's version 1 writer; set
/// `PAGECORE_WRITE_GOLDEN=1` to (re)create them only when introducing a new version.
#[test]
fn golden_v1_layer_files_decode_forever() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1");
    let (file, index) = sample_delta_layer();
    let golden = dir.join("delta.layer");
    if std::env::var_os("PAGECORE_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&golden, &file).unwrap();
        let mut image = LayerWriter::new(
            LayerKind::Image,
            TenantId::from_u128(1),
            TimelineId::from_u128(2),
            Lsn(0x40),
            Lsn(0x40),
        );
        image.add_image(key(0), Lsn(0x40), &[3u8; PAGE_SIZE]);
        image.add_rel_event(RelEvent { rel: key(0).rel, lsn: Lsn(0x40), nblocks: Some(4) });
        std::fs::write(dir.join("image.layer"), image.finish().0).unwrap();
    }
    let stored = std::fs::read(&golden).unwrap();
    assert_eq!(open(&stored).unwrap(), index);
    let image = open(&std::fs::read(dir.join("image.layer")).unwrap()).unwrap();
    assert_eq!(image.header.kind, LayerKind::Image);
    assert_eq!(image.entries.len(), 1);
    assert_eq!(image.rel_events[0].nblocks, Some(4));
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        if let Ok(header) = decode_header(&bytes) {
            let _ = decode_index(header, &bytes);
        }
        let mut file = sample_delta_layer().0;
        let n = bytes.len().min(file.len());
        file[..n].copy_from_slice(&bytes[..n]);
        let _ = open(&file);
    }
}
