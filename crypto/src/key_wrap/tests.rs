//! Tests of `key_wrap`: RFC 3394 section 4 known answers (256-bit KEK) and failure cases.

use super::{unwrap, wrap, IntegrityFailure};
use crate::testing::hex;

const KEK_256: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

/// Wraps `data_hex` under `kek_hex`, expects `wrapped_hex`, and unwraps it back.
fn check(kek_hex: &str, data_hex: &str, wrapped_hex: &str) {
    let kek: [u8; 32] = hex(kek_hex).try_into().expect("256-bit KEK");
    let data = hex(data_hex);
    let expected = hex(wrapped_hex);
    let mut wrapped = vec![0u8; data.len() + 8];
    wrap(&kek, &data, &mut wrapped);
    assert_eq!(wrapped, expected);
    let mut unwrapped = vec![0u8; data.len()];
    assert_eq!(unwrap(&kek, &expected, &mut unwrapped), Ok(()));
    assert_eq!(unwrapped, data);
}

#[test]
fn rfc3394_4_3_wrap_128_bits_with_256_bit_kek() {
    check(
        KEK_256,
        "00112233445566778899AABBCCDDEEFF",
        "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7",
    );
}

#[test]
fn rfc3394_4_5_wrap_192_bits_with_256_bit_kek() {
    check(
        KEK_256,
        "00112233445566778899AABBCCDDEEFF0001020304050607",
        "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1",
    );
}

#[test]
fn rfc3394_4_6_wrap_256_bits_with_256_bit_kek() {
    check(
        KEK_256,
        "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
        "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21",
    );
}

#[test]
fn wrong_kek_or_any_flipped_bit_fails_and_zeroes_output() {
    let kek: [u8; 32] = hex(KEK_256).try_into().expect("256-bit KEK");
    let wrapped =
        hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21");
    let mut out = [0xffu8; 32];
    let mut other_kek = kek;
    other_kek[31] ^= 1;
    assert_eq!(unwrap(&other_kek, &wrapped, &mut out), Err(IntegrityFailure));
    assert_eq!(out, [0u8; 32]);
    for bit in 0..wrapped.len() * 8 {
        let mut tampered = wrapped.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(unwrap(&kek, &tampered, &mut out), Err(IntegrityFailure), "bit {bit}");
    }
}
