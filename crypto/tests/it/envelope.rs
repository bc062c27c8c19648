//! The key life cycle the server drives: write a file, rotate the Cmk (re-wrap the Kek), rotate
//! the Kek (new generation for new files, old files still open), revoke (the provider no longer
//! returns the Cmk: nothing unwraps).

use crypto::{Cmk, Error, FileId, Kek, KeyId, PageOpener, PageSealer, WrappedKey, PAGE_SIZE_BYTES};

/// A file as the server would store it: wrapped Dek, sealed pages and their tags.
struct StoredFile {
    file_id: FileId,
    wrapped_dek: [u8; 64],
    pages: Vec<(Box<[u8; PAGE_SIZE_BYTES]>, [u8; 16])>,
}

fn write_file(kek: &Kek, file_id: FileId, page_count: u64) -> StoredFile {
    let mut sealer = PageSealer::generate(file_id).expect("random");
    let pages = (0..page_count)
        .map(|page_index| {
            let mut page = Box::new([page_index as u8; PAGE_SIZE_BYTES]);
            let tag = sealer.seal_page(page_index, &mut page);
            (page, tag.to_bytes())
        })
        .collect();
    StoredFile { file_id, wrapped_dek: sealer.wrap_dek(kek).to_bytes(), pages }
}

fn read_file(kek: &Kek, file: &StoredFile) -> Result<(), Error> {
    let dek = kek.unwrap_dek(&WrappedKey::decode(&file.wrapped_dek)?)?;
    let opener = PageOpener::new(&dek, file.file_id);
    for (page_index, (sealed, tag)) in file.pages.iter().enumerate() {
        let mut page = sealed.clone();
        opener.open_page(page_index as u64, &mut page, &crypto::PageTag::from_bytes(*tag))?;
        assert_eq!(page[..], [page_index as u8; PAGE_SIZE_BYTES][..]);
    }
    Ok(())
}

#[test]
fn rotation_and_revocation() {
    let cmk_1 = Cmk::from_bytes(KeyId(1), &[0xa1; 32]).expect("32 bytes");
    let kek_1 = Kek::generate(KeyId(1)).expect("random");
    let mut key_ring = vec![cmk_1.wrap_kek(&kek_1).to_bytes()];
    let old_file = write_file(&kek_1, FileId(100), 3);

    // Cmk rotation: unwrap each Kek with the old Cmk, re-wrap with the new; files are untouched.
    let cmk_2 = Cmk::from_bytes(KeyId(2), &[0xa2; 32]).expect("32 bytes");
    key_ring = key_ring
        .iter()
        .map(|blob| {
            let kek = cmk_1.unwrap_kek(&WrappedKey::decode(blob).expect("valid")).expect("key");
            cmk_2.wrap_kek(&kek).to_bytes()
        })
        .collect();
    drop(cmk_1);

    // Kek rotation: generation 2 wraps new files' Deks; generation 1 stays for old files.
    let kek_2 = Kek::generate(KeyId(2)).expect("random");
    key_ring.push(cmk_2.wrap_kek(&kek_2).to_bytes());
    let new_file = write_file(&kek_2, FileId(101), 2);

    let ring: Vec<Kek> = key_ring
        .iter()
        .map(|blob| cmk_2.unwrap_kek(&WrappedKey::decode(blob).expect("valid")).expect("key"))
        .collect();
    let kek_for = |file: &StoredFile| {
        let wanted = WrappedKey::decode(&file.wrapped_dek).expect("valid").wrapping_key_id();
        ring.iter().find(|kek| kek.id() == wanted).expect("generation in ring")
    };
    read_file(kek_for(&old_file), &old_file).expect("old file readable after rotations");
    read_file(kek_for(&new_file), &new_file).expect("new file readable");

    // Revocation: the provider hands back some other key (or none): no Kek, so no page.
    let not_the_cmk = Cmk::from_bytes(KeyId(2), &[0xee; 32]).expect("32 bytes");
    for blob in &key_ring {
        let result = not_the_cmk.unwrap_kek(&WrappedKey::decode(blob).expect("valid"));
        assert!(matches!(result, Err(Error::Unwrap { .. })), "{result:?}");
    }
}
