//! Tests of `wrapped_key`: the byte layout, tamper detection through the header, and a decoder
//! that returns errors, never panics, on arbitrary bytes (proptest).

// The decoder's no-panic lints are for the decoder; test data may be indexed and unwrapped.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use proptest::prelude::*;

use super::{WrappedKey, WRAPPED_KEY_SIZE_BYTES};
use crate::keys::{Cmk, Kek, KeyId};
use crate::page::{FileId, PageSealer};
use crate::Error;

fn sample_blob() -> (Kek, WrappedKey) {
    let kek = Kek::generate(KeyId(0x0102_0304)).expect("random");
    let sealer = PageSealer::generate(FileId(1)).expect("random");
    let wrapped = sealer.wrap_dek(&kek);
    (kek, wrapped)
}

/// Decoding `bytes` gives the error `matches`.
fn check_rejected(bytes: &[u8], matches: impl Fn(&Error) -> bool) {
    let result = WrappedKey::decode(bytes);
    assert!(result.as_ref().is_err_and(&matches), "{result:?}");
}

#[test]
fn layout_matches_the_module_doc() {
    let cmk = Cmk::from_bytes(KeyId(0xaabb_ccdd), &[7; 32]).expect("32 bytes");
    let kek = Kek::generate(KeyId(0x1122_3344)).expect("random");
    let bytes = cmk.wrap_kek(&kek).to_bytes();
    assert_eq!(bytes.len(), 64);
    assert_eq!(&bytes[..8], b"PCWK\x01\x02\x01\x00");
    assert_eq!(bytes[8..12], [0x44, 0x33, 0x22, 0x11]);
    assert_eq!(bytes[12..16], [0xdd, 0xcc, 0xbb, 0xaa]);
    let decoded = WrappedKey::decode(&bytes).expect("valid");
    assert_eq!(decoded.to_bytes(), bytes);
    assert_eq!(cmk.unwrap_kek(&decoded).expect("same Cmk").id(), KeyId(0x1122_3344));
}

#[test]
fn decoder_rejects_each_bad_field() {
    let (_kek, wrapped) = sample_blob();
    let good = wrapped.to_bytes();
    check_rejected(&good[..63], |e| matches!(e, Error::Malformed { .. }));
    check_rejected(&[good.as_slice(), &[0]].concat(), |e| matches!(e, Error::Malformed { .. }));
    check_rejected(&[], |e| matches!(e, Error::Malformed { .. }));
    let with = |offset: usize, value: u8| {
        let mut bytes = good;
        bytes[offset] = value;
        bytes
    };
    check_rejected(&with(0, b'X'), |e| matches!(e, Error::Malformed { what: "bad magic" }));
    check_rejected(&with(4, 2), |e| matches!(e, Error::UnsupportedVersion { version: 2 }));
    check_rejected(&with(4, 0), |e| matches!(e, Error::Malformed { .. }));
    check_rejected(&with(5, 3), |e| matches!(e, Error::Malformed { what: "unknown key kind" }));
    check_rejected(&with(6, 2), |e| matches!(e, Error::Malformed { .. }));
    check_rejected(&with(7, 1), |e| matches!(e, Error::Malformed { .. }));
}

/// A changed `key_id` in the header is caught by the copy inside the wrap; a changed
/// `wrapping_key_id` selects a key that is not offered; a changed wrapped byte fails the wrap.
#[test]
fn tampering_is_an_error_never_a_key() {
    let (kek, wrapped) = sample_blob();
    let good = wrapped.to_bytes();
    for offset in 8..WRAPPED_KEY_SIZE_BYTES {
        let mut bytes = good;
        bytes[offset] ^= 0x10;
        let decoded = WrappedKey::decode(&bytes).expect("header still well-formed");
        let result = kek.unwrap_dek(&decoded);
        let expected = if (12..16).contains(&offset) {
            matches!(result, Err(Error::WrongWrappingKey { .. }))
        } else {
            matches!(result, Err(Error::Unwrap { .. }))
        };
        assert!(expected, "offset {offset}: {result:?}");
    }
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = WrappedKey::decode(&bytes);
    }

    /// Blobs with a valid header and arbitrary content decode, and re-encode to the same bytes.
    #[test]
    fn decode_encode_round_trip(
        kind in 1u8..=2,
        ids in any::<[u8; 8]>(),
        wrapped in any::<[u8; 48]>(),
    ) {
        let mut bytes = [0u8; WRAPPED_KEY_SIZE_BYTES];
        bytes[..8].copy_from_slice(&[b'P', b'C', b'W', b'K', 1, kind, 1, 0]);
        bytes[8..16].copy_from_slice(&ids);
        bytes[16..].copy_from_slice(&wrapped);
        let decoded = WrappedKey::decode(&bytes).expect("valid header");
        prop_assert_eq!(decoded.to_bytes(), bytes);
    }

    /// Arbitrary 64-byte inputs never unwrap to a key under a random Kek.
    #[test]
    fn arbitrary_blobs_do_not_unwrap(wrapped in any::<[u8; 48]>()) {
        let kek = Kek::generate(KeyId(0)).expect("random");
        let mut bytes = [0u8; WRAPPED_KEY_SIZE_BYTES];
        bytes[..8].copy_from_slice(b"PCWK\x01\x01\x01\x00");
        bytes[16..].copy_from_slice(&wrapped);
        let decoded = WrappedKey::decode(&bytes).expect("valid header");
        prop_assert!(kek.unwrap_dek(&decoded).is_err());
    }
}
