//! AES-256 key wrap (RFC 3394, the NIST SP 800-38F "KW" mode) over the `aes` crate.
//!
//! Written here rather than taken from `aes-kw` because it is 40 lines over the block cipher we
//! already depend on, runs only on the control plane (a few blobs per file open), and so adds
//! nothing to `Cargo.lock`. Only the default initial value `A6A6A6A6A6A6A6A6` is used (so the
//! RFC 3394 known-answer tests apply unchanged); RFC 5649's padded variant is not needed because
//! every payload we wrap is a multiple of 8 bytes (see `wrapped_key`).
//!
//! The mode is deterministic and needs no nonce, so there is no nonce to repeat; its 64-bit
//! integrity check makes a wrong key or a modified blob an error with probability 1 - 2^-64.

use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::Aes256;
use zeroize::Zeroize;

use crate::keys::KEY_SIZE_BYTES;

/// RFC 3394 section 2.2.3.1 default initial value.
const DEFAULT_IV: [u8; 8] = [0xA6; 8];

/// The wrapped key did not pass the RFC 3394 integrity check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IntegrityFailure;

/// Wraps `plaintext` (n 64-bit blocks, n >= 2) into `out` (n + 1 blocks) under `kek`.
pub(crate) fn wrap(kek: &[u8; KEY_SIZE_BYTES], plaintext: &[u8], out: &mut [u8]) {
    assert!(plaintext.len() % 8 == 0 && plaintext.len() >= 16, "key wrap needs n >= 2 blocks");
    assert!(out.len() == plaintext.len() + 8, "key wrap output is one block longer");
    let cipher = Aes256::new(kek.into());
    let block_count = plaintext.len() / 8;
    out[8..].copy_from_slice(plaintext);
    let mut a = DEFAULT_IV;
    let mut b = Array::from([0u8; 16]);
    for j in 0..6u64 {
        for i in 1..=block_count {
            let r = &mut out[i * 8..i * 8 + 8];
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(r);
            cipher.encrypt_block(&mut b);
            let t = (block_count as u64) * j + i as u64;
            a.copy_from_slice(&b[..8]);
            xor_counter(&mut a, t);
            r.copy_from_slice(&b[8..]);
        }
    }
    out[..8].copy_from_slice(&a);
    b.zeroize();
}

/// Unwraps `ciphertext` (n + 1 blocks) into `out` (n blocks). On failure `out` is zeroed.
pub(crate) fn unwrap(
    kek: &[u8; KEY_SIZE_BYTES],
    ciphertext: &[u8],
    out: &mut [u8],
) -> Result<(), IntegrityFailure> {
    assert!(ciphertext.len() % 8 == 0 && ciphertext.len() >= 24, "key unwrap needs n >= 2");
    assert!(out.len() + 8 == ciphertext.len(), "key unwrap output is one block shorter");
    let cipher = Aes256::new(kek.into());
    let block_count = out.len() / 8;
    let mut a = [0u8; 8];
    a.copy_from_slice(&ciphertext[..8]);
    out.copy_from_slice(&ciphertext[8..]);
    let mut b = Array::from([0u8; 16]);
    for j in (0..6u64).rev() {
        for i in (1..=block_count).rev() {
            let r = &mut out[(i - 1) * 8..i * 8];
            let t = (block_count as u64) * j + i as u64;
            xor_counter(&mut a, t);
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(r);
            cipher.decrypt_block(&mut b);
            a.copy_from_slice(&b[..8]);
            r.copy_from_slice(&b[8..]);
        }
    }
    b.zeroize();
    // Constant-time comparison: do not tell an attacker which byte of the check differed.
    let diff = a.iter().zip(DEFAULT_IV.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if diff != 0 {
        out.zeroize();
        return Err(IntegrityFailure);
    }
    Ok(())
}

/// `A ^= t` with t as a 64-bit big-endian counter (RFC 3394 section 2.2.1).
fn xor_counter(a: &mut [u8; 8], t: u64) {
    for (byte, t_byte) in a.iter_mut().zip(t.to_be_bytes()) {
        *byte ^= t_byte;
    }
}

#[cfg(test)]
mod tests;
