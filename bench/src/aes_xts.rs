//! AES-XTS page encryption for the AES ceiling: the mode a page store that encrypts 8 KiB pages
//! in place (no room for a nonce or tag) would use, written over the `aes` crate's multi-block
//! call so AES-NI/VAES pipelines full width. This is what "AES page encryption GB/s per core"
//! in `ceiling` measures; it is not the `crypto` crate's sealing and holds no key material of
//! its own beyond the bench's fixed test keys.
//!
//! XTS (IEEE 1619) per page: `T0 = AES(key2, page_number)`, `T(i+1) = T(i) * alpha` in
//! GF(2^128); block `i` becomes `AES(key1, P(i) ^ T(i)) ^ T(i)`. 8 KiB is a whole number of
//! blocks, so ciphertext stealing never applies.

use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::BlockCipherEncrypt;

/// XTS over any 16-byte block cipher (AES-256 in the ceiling, AES-128 in the test vectors).
///
/// The tweaks of a whole data unit are laid out as bytes first, so both XOR passes are plain
/// byte loops the compiler vectorises, and the cipher gets the whole unit in one multi-block
/// call. (XOR through per-block `u128` conversions, in 64-block chunks, measured about 20%
/// slower here.)
pub struct Xts<C> {
    data: C,
    tweak: C,
    tweak_bytes: Vec<u8>,
}

impl<C: BlockCipherEncrypt<BlockSize = U16>> Xts<C> {
    pub fn new(data: C, tweak: C) -> Xts<C> {
        Xts { data, tweak, tweak_bytes: Vec::new() }
    }

    /// Encrypts `bytes` (a multiple of 16) in place as data unit `unit`.
    pub fn encrypt(&mut self, unit: u64, bytes: &mut [u8]) {
        assert!(bytes.len() % 16 == 0, "XTS data unit must be whole blocks");
        let mut t = Array::<u8, U16>::default();
        t[..8].copy_from_slice(&unit.to_le_bytes());
        self.tweak.encrypt_block(&mut t);
        let mut tweak = u128::from_le_bytes(t.into());
        self.tweak_bytes.resize(bytes.len(), 0);
        for slot in self.tweak_bytes.chunks_exact_mut(16) {
            slot.copy_from_slice(&tweak.to_le_bytes());
            tweak = mul_alpha(tweak);
        }
        xor_into(bytes, &self.tweak_bytes);
        let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(bytes);
        self.data.encrypt_blocks(blocks);
        xor_into(bytes, &self.tweak_bytes);
    }
}

fn xor_into(bytes: &mut [u8], tweaks: &[u8]) {
    for (byte, tweak) in bytes.iter_mut().zip(tweaks) {
        *byte ^= tweak;
    }
}

/// Multiplication by the primitive element in GF(2^128), XTS's little-endian convention.
fn mul_alpha(t: u128) -> u128 {
    let carry = t >> 127;
    (t << 1) ^ (carry * 0x87)
}

#[cfg(test)]
mod tests;
