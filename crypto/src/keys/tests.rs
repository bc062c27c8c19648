//! Tests of `keys`: the envelope round trips, every wrong-key case is an error, and no `Debug`
//! or error message shows key bytes.

use super::{Cmk, Kek, KeyId};
use crate::page::{FileId, PageOpener, PageSealer, PAGE_SIZE_BYTES};
use crate::wrapped_key::KeyKind;
use crate::Error;

const CMK_BYTES: [u8; 32] = [0xc3; 32];

/// A Dek that survives wrap + unwrap opens what its sealer sealed.
#[test]
fn dek_wrapped_by_kek_opens_the_pages() {
    let kek = Kek::generate(KeyId(4)).expect("random");
    let mut sealer = PageSealer::generate(FileId(77)).expect("random");
    let mut page = Box::new([0x42u8; PAGE_SIZE_BYTES]);
    let tag = sealer.seal_page(0, &mut page);
    let wrapped = sealer.wrap_dek(&kek);
    assert_eq!(
        (wrapped.kind(), wrapped.key_id(), wrapped.wrapping_key_id()),
        (KeyKind::Dek, KeyId(0), KeyId(4))
    );
    let dek = kek.unwrap_dek(&wrapped).expect("same Kek");
    PageOpener::new(&dek, FileId(77)).open_page(0, &mut page, &tag).expect("authentic");
    assert_eq!(page[..], [0x42u8; PAGE_SIZE_BYTES][..]);
}

#[test]
fn kek_wrapped_by_cmk_round_trips_with_its_generation() {
    let cmk = Cmk::from_bytes(KeyId(2), &CMK_BYTES).expect("32 bytes");
    let kek = Kek::generate(KeyId(9)).expect("random");
    let sealer = PageSealer::generate(FileId(1)).expect("random");
    let wrapped_dek = sealer.wrap_dek(&kek);
    let wrapped_kek = cmk.wrap_kek(&kek);
    let kek_again = cmk.unwrap_kek(&wrapped_kek).expect("same Cmk");
    assert_eq!(kek_again.id(), KeyId(9));
    kek_again.unwrap_dek(&wrapped_dek).expect("the same Kek unwraps the Dek");
}

#[test]
fn wrong_key_of_the_same_generation_is_an_unwrap_error() {
    let sealer = PageSealer::generate(FileId(1)).expect("random");
    let wrapped = sealer.wrap_dek(&Kek::generate(KeyId(1)).expect("random"));
    let other = Kek::generate(KeyId(1)).expect("random");
    let result = other.unwrap_dek(&wrapped);
    assert!(matches!(result, Err(Error::Unwrap { kind: KeyKind::Dek, .. })), "{result:?}");

    let cmk = Cmk::from_bytes(KeyId(1), &CMK_BYTES).expect("32 bytes");
    let wrapped_kek = cmk.wrap_kek(&other);
    let revoked_or_wrong = Cmk::from_bytes(KeyId(1), &[0x3c; 32]).expect("32 bytes");
    let result = revoked_or_wrong.unwrap_kek(&wrapped_kek);
    assert!(matches!(result, Err(Error::Unwrap { kind: KeyKind::Kek, .. })), "{result:?}");
}

#[test]
fn wrong_generation_or_kind_is_named() {
    let kek = Kek::generate(KeyId(1)).expect("random");
    let newer = Kek::generate(KeyId(2)).expect("random");
    let sealer = PageSealer::generate(FileId(1)).expect("random");
    let wrapped = sealer.wrap_dek(&kek);
    let result = newer.unwrap_dek(&wrapped);
    assert!(
        matches!(
            result,
            Err(Error::WrongWrappingKey { expected: KeyId(1), offered: KeyId(2), .. })
        ),
        "{result:?}"
    );
    let cmk = Cmk::from_bytes(KeyId(1), &CMK_BYTES).expect("32 bytes");
    let result = cmk.unwrap_kek(&wrapped);
    assert!(
        matches!(result, Err(Error::WrongKind { expected: KeyKind::Kek, found: KeyKind::Dek })),
        "{result:?}"
    );
}

#[test]
fn cmk_must_be_32_bytes() {
    for len in [0usize, 16, 31, 33, 64] {
        let result = Cmk::from_bytes(KeyId(1), &vec![1u8; len]);
        assert!(matches!(result, Err(Error::KeyLength { len_bytes }) if len_bytes == len));
    }
}

/// `Debug` and error messages name generations, never key bytes.
#[test]
fn no_key_bytes_in_debug_or_errors() {
    let cmk = Cmk::from_bytes(KeyId(5), &CMK_BYTES).expect("32 bytes");
    let kek = Kek::generate(KeyId(6)).expect("random");
    let text = format!("{cmk:?} {kek:?}");
    assert_eq!(text, "Cmk(<redacted>, id #5) Kek(<redacted>, id #6)");
    let wrong = Cmk::from_bytes(KeyId(5), &[0x3c; 32]).expect("32 bytes");
    let error = wrong.unwrap_kek(&cmk.wrap_kek(&kek)).expect_err("wrong key");
    let message = format!("{error} {error:?}");
    assert!(!message.to_lowercase().contains("c3c3"), "{message}");
    assert!(!message.contains("195"), "{message}");
}
