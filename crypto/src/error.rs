//! The crate's one error type, [`Error`].
//!
//! Every variant is a case a caller acts on: a page that failed authentication (serve `Corrupt`
//! or report a revoked/wrong key), a wrapped key that does not unwrap (wrong generation, revoked
//! or tampered key file), a malformed or too-new wrapped-key blob, a customer key of the wrong
//! length, or a failed OS random source. Messages carry identifiers (file id, page index, key
//! generation, lengths) and never key bytes, plaintext or ciphertext.

use crate::keys::KeyId;
use crate::page::FileId;
use crate::wrapped_key::KeyKind;

/// Errors of the `crypto` crate. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A page's (or payload's) tag did not verify: wrong key, wrong file or position, or
    /// modified bytes. The buffer is zeroed (ring does that), never left as plaintext.
    #[error(
        "payload at position {position} of file {file_id} failed authentication \
         (wrong key or modified bytes)"
    )]
    Authentication { file_id: FileId, position: u64 },
    /// A wrapped key did not unwrap: the wrapping key is not the one that wrapped it, or the
    /// blob was modified.
    #[error(
        "wrapped {kind} (key {key_id}) did not unwrap with key {wrapping_key_id}: \
         wrong key or modified blob"
    )]
    Unwrap { kind: KeyKind, key_id: KeyId, wrapping_key_id: KeyId },
    /// The blob names a different wrapping key generation than the one offered.
    #[error("wrapped {kind} (key {key_id}) needs wrapping key {expected}, not {offered}")]
    WrongWrappingKey { kind: KeyKind, key_id: KeyId, expected: KeyId, offered: KeyId },
    /// The blob holds another kind of key than the operation expects.
    #[error("expected a wrapped {expected}, found a wrapped {found}")]
    WrongKind { expected: KeyKind, found: KeyKind },
    /// The bytes are not a wrapped key blob of a format this build reads.
    #[error("malformed wrapped key: {what}")]
    Malformed { what: &'static str },
    /// The blob was written by a newer format version.
    #[error("wrapped key format version {version} is not supported (this build reads 1..=1)")]
    UnsupportedVersion { version: u8 },
    /// A customer key of the wrong length was offered.
    #[error("a key must be 32 bytes, got {len_bytes}")]
    KeyLength { len_bytes: usize },
    /// The operating system's random source failed; no key was made.
    #[error("operating system random source failed")]
    Random {
        #[source]
        source: getrandom::Error,
    },
}
