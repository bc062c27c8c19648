//! Tests of `page`: NIST GCM known answers for the primitive, a golden page for our
//! construction (nonce and associated data layout), round trips and every way to fail.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::Aes256Gcm;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};

use super::{FileId, PageOpener, PageSealer, PageTag, PAGE_SIZE_BYTES};
use crate::keys::{Dek, KeyBytes};
use crate::testing::hex;
use crate::Error;

impl PageSealer {
    /// A sealer over a chosen key, for known-answer tests only.
    fn with_dek_for_test(dek: Dek, file_id: FileId) -> PageSealer {
        let cipher = super::GcmKey::new(&dek);
        PageSealer { dek, cipher, file_id, last_position: None }
    }
}

fn dek_from_hex(text: &str) -> Dek {
    Dek::from_key_for_test(KeyBytes::from_array(hex(text).try_into().expect("32-byte key")))
}

fn patterned_page() -> Box<[u8; PAGE_SIZE_BYTES]> {
    let mut page = Box::new([0u8; PAGE_SIZE_BYTES]);
    for (i, byte) in page.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    page
}

/// Encrypts and decrypts one NIST CAVS vector with the GCM primitive the pages use (ring).
fn check_gcm(key: &str, nonce: &str, aad: &str, plaintext: &str, ciphertext: &str, tag: &str) {
    let key: [u8; 32] = hex(key).try_into().expect("AES-256 key");
    let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).expect("AES-256 key"));
    let nonce: [u8; 12] = hex(nonce).try_into().expect("96-bit nonce");
    let nonce = || Nonce::assume_unique_for_key(nonce);
    let mut buf = hex(plaintext);
    let got_tag = cipher.seal_in_place_separate_tag(nonce(), Aad::from(hex(aad)), &mut buf);
    let got_tag = got_tag.expect("short input");
    assert_eq!(buf, hex(ciphertext));
    assert_eq!(got_tag.as_ref().to_vec(), hex(tag));
    cipher
        .open_in_place_separate_tag(nonce(), Aad::from(hex(aad)), got_tag, &mut buf, 0..)
        .expect("authentic");
    assert_eq!(buf, hex(plaintext));
    let mut bad_tag: [u8; 16] = got_tag.as_ref().try_into().expect("16-byte tag");
    bad_tag[0] ^= 1;
    let result = cipher.open_in_place_separate_tag(
        nonce(),
        Aad::from(hex(aad)),
        Tag::from(bad_tag),
        &mut buf,
        0..,
    );
    assert!(result.is_err());
}

/// Pages sealed by the current cipher (ring) are byte for byte what the first one (RustCrypto
/// `aes-gcm`, which wrote the v2 golden files) produced, and each opens the other's pages.
#[test]
fn ring_and_rustcrypto_gcm_agree_on_pages() {
    let dek = dek_from_hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    let reference = Aes256Gcm::new(dek.key().as_array().into());
    let mut sealer = PageSealer::with_dek_for_test(dek, FileId(0x1234_5678_9abc));
    for position in [0u64, 1, 4096, 1 << 40] {
        let mut ours = patterned_page();
        ours[0] = position as u8;
        let mut theirs = ours.clone();
        let tag = sealer.seal_payload(position, &mut ours[..]);
        let their_tag = reference
            .encrypt_inout_detached(
                &super::nonce_bytes(position).into(),
                &0x1234_5678_9abc_u128.to_le_bytes(),
                (&mut theirs[..]).into(),
            )
            .expect("short input");
        assert_eq!(ours, theirs, "ciphertext at {position}");
        assert_eq!(tag.to_bytes().to_vec(), their_tag.to_vec(), "tag at {position}");
    }
}

/// NIST CAVP `gcmEncryptExtIV256.rsp` (as carried in RustCrypto `aes-gcm` 0.11 tests).
#[test]
fn nist_cavp_gcm_256_vectors() {
    check_gcm(
        "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
        "0d18e06c7c725ac9e362e1ce",
        "",
        "2db5168e932556f8089a0622981d017d",
        "fa4362189661d163fcd6a56d8bf0405a",
        "d636ac1bbedd5cc3ee727dc2ab4a9489",
    );
    check_gcm(
        "f461d1b75a72d942aa096384dc20cf8514a9ad9a9720660add3f318284ca3014",
        "d0495f25874e5714a1149e94",
        "1133f372e3db22456e7ea92f29dff7f1d92864d3",
        "d9e4b967fdca8c8bae838a5da95d7cce",
        "1df711e6fbcba22b0564c6e36051a3f7",
        "f0563b7494d5159289b644afc4e8e397",
    );
    check_gcm(
        "268ed1b5d7c9c7304f9cae5fc437b4cd3aebe2ec65f0d85c3918d3d3b5bba89b",
        "9ed9d8180564e0e945f5e5d4",
        "",
        "fe29a40d8ebf57262bdb87191d01843f4ca4b2de97d88273154a0b7d9e2fdb80",
        "791a4a026f16f3a5ea06274bf02baab469860abde5e645f3dd473a5acddeecfc",
        "05b2b74db0662550435ef1900e136b15",
    );
}

/// Pins the page construction (nonce = page index LE ‖ 4 zero bytes, AAD = file id LE). The
/// expected bytes were computed independently with Python `cryptography` 48 (`AESGCM`).
#[test]
fn golden_page_construction() {
    let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let file_id = FileId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    let mut sealer = PageSealer::with_dek_for_test(dek_from_hex(key), file_id);
    let mut page = patterned_page();
    let tag = sealer.seal_page(5, &mut page);
    assert_eq!(page[..16], hex("e66aafc237a255debc83570f05732abd")[..]);
    assert_eq!(page[PAGE_SIZE_BYTES - 16..], hex("c2b9e4a4b588a45d31aa04843459f281")[..]);
    assert_eq!(tag.to_bytes()[..], hex("e84747d06c2c3a6a54aae60771b3b489")[..]);
    PageOpener::new(&dek_from_hex(key), file_id).open_page(5, &mut page, &tag).expect("authentic");
    assert_eq!(page, patterned_page());
}

#[test]
fn round_trip_several_pages() {
    let mut sealer = PageSealer::generate(FileId(9)).expect("random");
    let opener = sealer.opener();
    for page_index in [0u64, 1, 2, 1000, u64::MAX] {
        let mut page = patterned_page();
        page[0] = page_index as u8;
        let tag = sealer.seal_page(page_index, &mut page);
        assert_ne!(page[1..], patterned_page()[1..], "sealed page must not be plaintext");
        opener.open_page(page_index, &mut page, &tag).expect("authentic");
        let mut expected = patterned_page();
        expected[0] = page_index as u8;
        assert_eq!(page, expected);
    }
}

/// Seals page 3 of file 9 and returns (sealer, ciphertext, tag).
fn sealed_page() -> (PageSealer, Box<[u8; PAGE_SIZE_BYTES]>, PageTag) {
    let mut sealer = PageSealer::generate(FileId(9)).expect("random");
    let mut page = patterned_page();
    let tag = sealer.seal_page(3, &mut page);
    (sealer, page, tag)
}

/// Opening must fail with `Authentication` and leave no plaintext (ring zeroes the buffer).
fn check_rejected(
    opener: &PageOpener,
    page_index: u64,
    page: &[u8; PAGE_SIZE_BYTES],
    tag: PageTag,
) {
    let mut buf = Box::new(*page);
    let result = opener.open_page(page_index, &mut buf, &tag);
    assert!(
        matches!(result, Err(Error::Authentication { position, .. }) if position == page_index),
        "{result:?}"
    );
    assert!(buf.iter().all(|b| *b == 0), "a rejected page must not hold plaintext");
    assert_ne!(&buf[..], &page[..]);
}

#[test]
fn wrong_key_is_an_authentication_error() {
    let (_sealer, page, tag) = sealed_page();
    let other = PageSealer::generate(FileId(9)).expect("random");
    check_rejected(&other.opener(), 3, &page, tag);
}

#[test]
fn wrong_file_or_page_index_is_an_authentication_error() {
    let (sealer, page, tag) = sealed_page();
    check_rejected(&PageOpener::new(&sealer.dek, FileId(10)), 3, &page, tag);
    check_rejected(&sealer.opener(), 4, &page, tag);
}

#[test]
fn flipped_bits_in_page_or_tag_are_authentication_errors() {
    let (sealer, page, tag) = sealed_page();
    let opener = sealer.opener();
    for bit in [0, 1, 7, 8 * 4096 + 3, 8 * PAGE_SIZE_BYTES - 1] {
        let mut tampered = Box::new(*page);
        tampered[bit / 8] ^= 1 << (bit % 8);
        check_rejected(&opener, 3, &tampered, tag);
    }
    for bit in 0..128 {
        let mut tag_bytes = tag.to_bytes();
        tag_bytes[bit / 8] ^= 1 << (bit % 8);
        check_rejected(&opener, 3, &page, PageTag::from_bytes(tag_bytes));
    }
}

/// The nonce-reuse guard: sealing an index that is not greater than the last one panics
/// (a caller bug must not reach the disk).
#[test]
fn sealing_a_page_index_twice_panics() {
    for second_index in [5u64, 4, 0] {
        let result = std::panic::catch_unwind(|| {
            let mut sealer = PageSealer::generate(FileId(1)).expect("random");
            let mut page = patterned_page();
            sealer.seal_page(5, &mut page);
            sealer.seal_page(second_index, &mut page);
        });
        assert!(result.is_err(), "index {second_index} after 5 must be refused");
    }
}

#[test]
fn debug_prints_no_key() {
    let key = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0";
    let sealer = PageSealer::with_dek_for_test(dek_from_hex(key), FileId(1));
    let text = format!("{sealer:?} {:?} {:?}", sealer.opener(), sealer.dek);
    assert!(!text.to_lowercase().contains("a1a2a3"), "{text}");
    assert!(!text.contains("161, 162"), "{text}");
}

/// Layer files pack deltas of any length after the images: positions are file offsets.
#[test]
fn payloads_of_any_length_at_file_offsets() {
    let mut sealer = PageSealer::generate(FileId(12)).expect("random");
    let opener = sealer.opener();
    let mut offset = 4096u64;
    for len in [PAGE_SIZE_BYTES, 0, 1, 17, 300, PAGE_SIZE_BYTES, 20_000] {
        let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let mut payload = plaintext.clone();
        let tag = sealer.seal_payload(offset, &mut payload);
        if len > 0 {
            let mut tampered = payload.clone();
            tampered[len / 2] ^= 0x80;
            assert!(opener.open_payload(offset, &mut tampered, &tag).is_err(), "len {len}");
            let mut shortened = payload.clone();
            shortened.pop();
            assert!(opener.open_payload(offset, &mut shortened, &tag).is_err(), "len {len}");
        }
        assert!(opener.open_payload(offset + 1, &mut payload.clone(), &tag).is_err());
        opener.open_payload(offset, &mut payload, &tag).expect("authentic");
        assert_eq!(payload, plaintext);
        offset += len as u64;
        offset += 1; // a zero-length payload still takes a position of its own
    }
}
