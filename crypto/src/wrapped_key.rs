//! [`WrappedKey`]: a key wrapped under another key, and its byte encoding (format version 1).
//!
//! A wrapped key is what the server stores: a file's Dek wrapped by the tenant's Kek (in or
//! beside the file), a tenant's Kek wrapped by its Cmk (in the tenant's key ring). The blob is
//! not secret; it is safe to log its header (kind, generations) but there is no need to.
//!
//! # Why AES key wrap, not AES-GCM with random nonces
//!
//! RFC 3394 key wrap is deterministic: there is no nonce, so no nonce to repeat and no
//! dependence on the random source at wrap time. It is the mode HSMs and cloud KMSs offer for
//! wrapping (PKCS#11 `CKM_AES_KEY_WRAP`, KMIP), so a customer's CMK can stay in their device
//! and unwrap our Kek there. Its 64-bit integrity check is enough for keys (a forger gets one
//! try per 2^64 and learns nothing), and it is slow only in a way that does not matter: 6×n AES
//! blocks per wrap, a few µs per file open. GCM would add a 12-byte nonce to every blob and a
//! second thing that must never repeat.
//!
//! # Encoding, format version 1: 64 bytes, integers little-endian
//!
//! | off | size | field           | meaning                                                       |
//! |-----|------|-----------------|---------------------------------------------------------------|
//! | 0   | 4    | magic           | `b"PCWK"`                                                     |
//! | 4   | 1    | format_version  | `1`; readers accept `1..=1`; higher: `UnsupportedVersion`   |
//! | 5   | 1    | kind            | `1` = Dek wrapped by a Kek, `2` = Kek wrapped by a Cmk        |
//! | 6   | 1    | algorithm       | `1` = AES-256 key wrap, RFC 3394, default IV                  |
//! | 7   | 1    | reserved        | zero                                                          |
//! | 8   | 4    | key_id          | generation of the wrapped key (`0` for a Dek)                 |
//! | 12  | 4    | wrapping_key_id | generation of the Kek/Cmk that unwraps it                     |
//! | 16  | 48   | wrapped         | RFC 3394 wrap of the 40-byte payload below                    |
//!
//! The payload inside the wrap (authenticated by the wrap's integrity check):
//!
//! | off | size | field    | meaning                           |
//! |-----|------|----------|-----------------------------------|
//! | 0   | 32   | key      | the AES-256 key                   |
//! | 32  | 1    | kind     | equal to the header's `kind`      |
//! | 33  | 3    | reserved | zero                              |
//! | 36  | 4    | key_id   | equal to the header's `key_id`    |
//!
//! The header fields are not covered by a checksum of their own: `wrapping_key_id` only selects
//! the key to try (a changed one selects a key that fails to unwrap), and `kind` and `key_id` are
//! repeated inside the wrap, so after unwrapping a mismatch is an `Error::Unwrap` like any other
//! tampering. The decoder ([`WrappedKey::decode`]) checks length, magic, version, kind, algorithm
//! and reserved bytes, returns an error for anything else and never panics (property-tested).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::fmt;

use zeroize::Zeroize;

use crate::key_wrap;
use crate::keys::{KeyBytes, KeyId, KEY_SIZE_BYTES};
use crate::Error;

/// Size of an encoded [`WrappedKey`].
pub const WRAPPED_KEY_SIZE_BYTES: usize = 64;

const MAGIC: [u8; 4] = *b"PCWK";
const FORMAT_VERSION: u8 = 1;
const ALGORITHM_AES256_KW: u8 = 1;
const HEADER_SIZE_BYTES: usize = 16;
const PAYLOAD_SIZE_BYTES: usize = 40;
const WRAPPED_SIZE_BYTES: usize = PAYLOAD_SIZE_BYTES + 8;

const _: () = assert!(HEADER_SIZE_BYTES + WRAPPED_SIZE_BYTES == WRAPPED_KEY_SIZE_BYTES);
const _: () = assert!(PAYLOAD_SIZE_BYTES == KEY_SIZE_BYTES + 1 + 3 + 4);
const _: () = assert!(PAYLOAD_SIZE_BYTES % 8 == 0, "RFC 3394 wraps whole 64-bit blocks");

/// Which key a blob holds. Registry (STYLE S13): values are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeyKind {
    /// A file's Dek, wrapped by a tenant Kek.
    Dek = 1,
    /// A tenant's Kek, wrapped by a Cmk.
    Kek = 2,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Dek => "Dek",
            KeyKind::Kek => "Kek",
        })
    }
}

impl KeyKind {
    fn from_u8(value: u8) -> Option<KeyKind> {
        match value {
            1 => Some(KeyKind::Dek),
            2 => Some(KeyKind::Kek),
            _ => None,
        }
    }
}

/// A wrapped key: safe to store and copy. See the module doc for its encoding.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WrappedKey {
    kind: KeyKind,
    key_id: KeyId,
    wrapping_key_id: KeyId,
    wrapped: [u8; WRAPPED_SIZE_BYTES],
}

impl WrappedKey {
    /// Which key the blob holds.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Generation of the wrapped key (`KeyId(0)` for a Dek).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Generation of the key that unwraps it: look this Kek/Cmk up in the key ring.
    pub fn wrapping_key_id(&self) -> KeyId {
        self.wrapping_key_id
    }

    /// The version 1 encoding.
    pub fn to_bytes(&self) -> [u8; WRAPPED_KEY_SIZE_BYTES] {
        let mut out = [0u8; WRAPPED_KEY_SIZE_BYTES];
        let (header, wrapped) = out.split_at_mut(HEADER_SIZE_BYTES);
        header.copy_from_slice(&header_bytes(self.kind, self.key_id, self.wrapping_key_id));
        wrapped.copy_from_slice(&self.wrapped);
        out
    }

    /// Decodes a version 1 blob of exactly [`WRAPPED_KEY_SIZE_BYTES`]. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<WrappedKey, Error> {
        let Ok(bytes) = <&[u8; WRAPPED_KEY_SIZE_BYTES]>::try_from(bytes) else {
            return Err(Error::Malformed { what: "length is not 64 bytes" });
        };
        let (magic, rest) = bytes.split_first_chunk::<4>().ok_or(TRUNCATED)?;
        if *magic != MAGIC {
            return Err(Error::Malformed { what: "bad magic" });
        }
        let (&[version, kind, algorithm, reserved], rest) =
            rest.split_first_chunk::<4>().ok_or(TRUNCATED)?;
        if version != FORMAT_VERSION {
            return Err(if version > FORMAT_VERSION {
                Error::UnsupportedVersion { version }
            } else {
                Error::Malformed { what: "format version 0" }
            });
        }
        let kind = KeyKind::from_u8(kind).ok_or(Error::Malformed { what: "unknown key kind" })?;
        if algorithm != ALGORITHM_AES256_KW {
            return Err(Error::Malformed { what: "unknown wrap algorithm" });
        }
        if reserved != 0 {
            return Err(Error::Malformed { what: "reserved byte not zero" });
        }
        let (key_id, rest) = rest.split_first_chunk::<4>().ok_or(TRUNCATED)?;
        let (wrapping_key_id, rest) = rest.split_first_chunk::<4>().ok_or(TRUNCATED)?;
        let wrapped: [u8; WRAPPED_SIZE_BYTES] = rest.try_into().map_err(|_| TRUNCATED)?;
        Ok(WrappedKey {
            kind,
            key_id: KeyId(u32::from_le_bytes(*key_id)),
            wrapping_key_id: KeyId(u32::from_le_bytes(*wrapping_key_id)),
            wrapped,
        })
    }
}

const TRUNCATED: Error = Error::Malformed { what: "truncated" };

/// Wraps `key` (of `kind`, generation `key_id`) under `wrapping_key` of generation
/// `wrapping_key_id`.
pub(crate) fn wrap(
    wrapping_key: &KeyBytes,
    wrapping_key_id: KeyId,
    kind: KeyKind,
    key_id: KeyId,
    key: &KeyBytes,
) -> WrappedKey {
    let mut payload = [0u8; PAYLOAD_SIZE_BYTES];
    let (key_part, trailer) = payload.split_at_mut(KEY_SIZE_BYTES);
    key_part.copy_from_slice(key.as_array());
    trailer.copy_from_slice(&inner_trailer(kind, key_id));
    let mut wrapped = [0u8; WRAPPED_SIZE_BYTES];
    key_wrap::wrap(wrapping_key.as_array(), &payload, &mut wrapped);
    payload.zeroize();
    WrappedKey { kind, key_id, wrapping_key_id, wrapped }
}

/// Unwraps a blob expected to hold a key of `kind`, with `wrapping_key` of generation
/// `wrapping_key_id`.
pub(crate) fn unwrap(
    wrapping_key: &KeyBytes,
    wrapping_key_id: KeyId,
    kind: KeyKind,
    blob: &WrappedKey,
) -> Result<KeyBytes, Error> {
    if blob.kind != kind {
        return Err(Error::WrongKind { expected: kind, found: blob.kind });
    }
    if blob.wrapping_key_id != wrapping_key_id {
        return Err(Error::WrongWrappingKey {
            kind,
            key_id: blob.key_id,
            expected: blob.wrapping_key_id,
            offered: wrapping_key_id,
        });
    }
    let unwrap_error = Error::Unwrap { kind, key_id: blob.key_id, wrapping_key_id };
    let mut payload = [0u8; PAYLOAD_SIZE_BYTES];
    if key_wrap::unwrap(wrapping_key.as_array(), &blob.wrapped, &mut payload).is_err() {
        return Err(unwrap_error);
    }
    let mut key = KeyBytes::from_array([0; KEY_SIZE_BYTES]);
    let (key_part, rest) = payload.split_at(KEY_SIZE_BYTES);
    let inner_matches = rest == inner_trailer(kind, blob.key_id);
    key.copy_from(key_part);
    payload.zeroize();
    if !inner_matches {
        return Err(unwrap_error);
    }
    Ok(key)
}

fn inner_trailer(kind: KeyKind, key_id: KeyId) -> [u8; 8] {
    let id = key_id.0.to_le_bytes();
    [kind as u8, 0, 0, 0, id[0], id[1], id[2], id[3]]
}

fn header_bytes(kind: KeyKind, key_id: KeyId, wrapping_key_id: KeyId) -> [u8; HEADER_SIZE_BYTES] {
    let key_id = key_id.0.to_le_bytes();
    let wrapping_key_id = wrapping_key_id.0.to_le_bytes();
    let [m0, m1, m2, m3] = MAGIC;
    [
        m0,
        m1,
        m2,
        m3,
        FORMAT_VERSION,
        kind as u8,
        ALGORITHM_AES256_KW,
        0,
        key_id[0],
        key_id[1],
        key_id[2],
        key_id[3],
        wrapping_key_id[0],
        wrapping_key_id[1],
        wrapping_key_id[2],
        wrapping_key_id[3],
    ]
}

#[cfg(test)]
mod tests;
