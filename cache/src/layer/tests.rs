use super::*;
use proptest::prelude::*;

fn key(block: u32) -> PageKey {
    PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 1, rel_number: 7, fork: Fork::Main },
        block: BlockNumber(block),
    }
}

fn sample_delta_layer() -> (Vec<u8>, LayerIndex) {
    sample_delta_writer().finish(None)
}

fn sample_delta_writer() -> LayerWriter {
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
    writer
}

fn open(file: &[u8]) -> Result<LayerIndex, LayerError> {
    open_with(file, None)
}

fn open_with(file: &[u8], opener: Option<&PageOpener>) -> Result<LayerIndex, LayerError> {
    let header = decode_header(&file[..HEADER_SIZE.min(file.len())])?;
    let mut index = file.get(header.index_offset as usize..).unwrap_or(&[]).to_vec();
    decode_index(header, &mut index, opener)
}

/// Reads entry `entry`'s payload from `file` as the server does (verified, opened in place).
fn read_payload(
    file: &[u8],
    entry: &IndexEntry,
    opener: Option<&PageOpener>,
) -> Result<Vec<u8>, LayerError> {
    let mut payload = file[entry.offset as usize..][..entry.len as usize].to_vec();
    verify_payload(entry, &mut payload, opener)?;
    Ok(payload)
}

fn sealed_sample() -> (Vec<u8>, LayerIndex, PageOpener) {
    let mut sealer = PageSealer::generate(crypto::FileId(0xabc)).unwrap();
    let (file, index) = sample_delta_writer().finish(Some(&mut sealer));
    (file, index, sealer.opener())
}

#[test]
fn encrypted_layers_round_trip_and_hide_pages_and_index() {
    let (plain_file, plain_index) = sample_delta_layer();
    let (file, index, opener) = sealed_sample();
    assert_eq!(index.header.file_id, Some(0xabc));
    // No page byte pattern and no index entry is visible in the file.
    assert!(!file.windows(64).any(|w| w == [7u8; 64] || w == [9u8; 64]));
    let plain_entries = &plain_file[plain_index.header.index_offset as usize..][..ENTRY_SIZE];
    assert!(!file.windows(ENTRY_SIZE).any(|w| w == plain_entries));
    assert_eq!(open_with(&file, Some(&opener)).unwrap(), index);
    assert_eq!(open(&file), Err(LayerError::KeyMissing));
    for (entry, plain_entry) in index.entries.iter().zip(&plain_index.entries) {
        let payload = read_payload(&file, entry, Some(&opener)).unwrap();
        assert_eq!(payload, read_payload(&plain_file, plain_entry, None).unwrap());
    }
}

#[test]
fn encrypted_layers_detect_tampering_and_wrong_keys() {
    let (file, index, opener) = sealed_sample();
    let other = PageSealer::generate(crypto::FileId(0xabc)).unwrap().opener();
    assert_eq!(open_with(&file, Some(&other)), Err(LayerError::IndexAuthentication));
    let entry = index.entries[0];
    assert!(matches!(
        read_payload(&file, &entry, Some(&other)),
        Err(LayerError::PayloadAuthentication { .. })
    ));
    // A modified page whose keyless checksum is fixed up still fails: the tag catches it.
    let mut tampered = file.clone();
    tampered[entry.offset as usize + 100] ^= 1;
    let mut forged = entry;
    forged.checksum = xxh3_64(&tampered[entry.offset as usize..][..entry.len as usize]);
    assert!(matches!(
        read_payload(&tampered, &forged, Some(&opener)),
        Err(LayerError::PayloadAuthentication { .. })
    ));
    // Re-pointing an entry at another payload of the same file fails too (position binding).
    let mut repointed = index.entries[2];
    repointed.tag = entry.tag;
    repointed.checksum = entry.checksum;
    repointed.offset = entry.offset;
    let mut moved = file.clone();
    moved.copy_within(
        entry.offset as usize..entry.offset as usize + PAGE_SIZE,
        index.entries[2].offset as usize,
    );
    let at_new_place = IndexEntry { offset: index.entries[2].offset, ..repointed };
    assert!(matches!(
        read_payload(&moved, &at_new_place, Some(&opener)),
        Err(LayerError::PayloadAuthentication { .. })
    ));
}

#[test]
fn round_trips_and_places_images_aligned() {
    let (file, index) = sample_delta_layer();
    assert_eq!(file.len() as u64 % BLOCK, 0);
    assert_eq!(open(&file).unwrap(), index);
    for entry in &index.entries {
        let payload = &file[entry.offset as usize..entry.offset as usize + entry.len as usize];
        verify_payload(entry, &mut payload.to_vec(), None).unwrap();
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
    assert!(matches!(
        verify_payload(&entry, &mut payload, None),
        Err(LayerError::PayloadChecksum { .. })
    ));
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
/// in `cache/testdata/v1/` were written by the version 1 writer (no longer in the code);
/// they must decode to what today's writer says, apart from the format version.
#[test]
fn golden_v1_layer_files_decode_forever() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1");
    let (_, mut index) = sample_delta_layer();
    index.header.format_version = 1;
    let golden = dir.join("delta.layer");
    let stored = std::fs::read(&golden).unwrap();
    let decoded = open(&stored).unwrap();
    assert_eq!(decoded.entries, index.entries);
    assert_eq!(decoded.rel_events, index.rel_events);
    assert_eq!(decoded.header.kind, index.header.kind);
    assert_eq!((decoded.header.lsn_start, decoded.header.lsn_end), (Lsn(0x10), Lsn(0x40)));
    for entry in &decoded.entries {
        read_payload(&stored, entry, None).unwrap();
    }
    let image = open(&std::fs::read(dir.join("image.layer")).unwrap()).unwrap();
    assert_eq!(image.header.kind, LayerKind::Image);
    assert_eq!(image.entries.len(), 1);
    assert_eq!(image.rel_events[0].nblocks, Some(4));
}

/// The key that wraps the data key of the encrypted v2 golden file (a test key, not a secret).
const GOLDEN_KEK: [u8; 32] = [0x42; 32];

/// Version 2 golden files, plaintext and encrypted (its data key wrapped by [`GOLDEN_KEK`] in
/// `delta-encrypted.dek`). `PAGECORE_WRITE_GOLDEN=1` (re)creates them: only when introducing
/// format 2, never after.
#[test]
fn golden_v2_layer_files_decode_forever() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v2");
    let kek = crypto::Kek::from_bytes(crypto::KeyId(1), &GOLDEN_KEK).unwrap();
    if std::env::var_os("PAGECORE_WRITE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("delta.layer"), sample_delta_layer().0).unwrap();
        let mut sealer = PageSealer::generate(crypto::FileId(0xabc)).unwrap();
        let (file, _) = sample_delta_writer().finish(Some(&mut sealer));
        std::fs::write(dir.join("delta-encrypted.layer"), file).unwrap();
        std::fs::write(dir.join("delta-encrypted.dek"), sealer.wrap_dek(&kek).to_bytes()).unwrap();
    }
    let (plain_file, index) = sample_delta_layer();
    let stored = std::fs::read(dir.join("delta.layer")).unwrap();
    assert_eq!(open(&stored).unwrap(), index);
    let wrapped = std::fs::read(dir.join("delta-encrypted.dek")).unwrap();
    let dek = kek.unwrap_dek(&crypto::WrappedKey::decode(&wrapped).unwrap()).unwrap();
    let opener = PageOpener::new(&dek, crypto::FileId(0xabc));
    let sealed = std::fs::read(dir.join("delta-encrypted.layer")).unwrap();
    let decoded = open_with(&sealed, Some(&opener)).unwrap();
    assert_eq!(decoded.rel_events, index.rel_events);
    for (entry, plain_entry) in decoded.entries.iter().zip(&index.entries) {
        assert_eq!((entry.key, entry.lsn), (plain_entry.key, plain_entry.lsn));
        let page = read_payload(&sealed, entry, Some(&opener)).unwrap();
        assert_eq!(page, read_payload(&plain_file, plain_entry, None).unwrap());
    }
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        if let Ok(header) = decode_header(&bytes) {
            let _ = decode_index(header, &mut bytes.clone(), None);
        }
        let mut file = sample_delta_layer().0;
        let n = bytes.len().min(file.len());
        file[..n].copy_from_slice(&bytes[..n]);
        let _ = open(&file);
    }
}
