//! Fuzz target: `crypto::WrappedKey::decode` on arbitrary bytes, then an unwrap attempt.
//!
//! Decoding must return `Ok` or `Err` and never panic; a blob that decodes must re-encode to the
//! same bytes, and must not unwrap under a fixed key (the fuzzer cannot forge RFC 3394).
#![no_main]

use crypto::{Cmk, KeyId, WrappedKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(wrapped) = WrappedKey::decode(data) {
        assert_eq!(&wrapped.to_bytes()[..], data, "round trip changed a wrapped key");
        let cmk = Cmk::from_bytes(wrapped.wrapping_key_id(), &[0x5c; 32]).expect("32 bytes");
        assert!(cmk.unwrap_kek(&wrapped).is_err(), "fuzzer forged a key wrap");
    }
});
