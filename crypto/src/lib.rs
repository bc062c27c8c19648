//! Page encryption and key handling for customer-managed keys (issue 6).
//!
//! This crate owns the bytes-and-keys half of encryption at rest: sealing and opening 8 KiB
//! pages in place (`src/page.rs`, whose doc also says why AES-256-GCM), the envelope of keys
//! that protects them (`src/keys.rs`), AES key wrap (`src/key_wrap.rs`) and the byte encoding
//! of a wrapped key (`src/wrapped_key.rs`, the one description of that format). It deliberately
//! knows nothing of pages' meaning, LSNs, layer files, tenants or where keys come from: it does
//! no file or network I/O and spawns nothing (STYLE S3). Providers that run a command or read
//! a keyring file, rotation and revocation through the admin API live in `server`.
//!
//! # The envelope
//!
//! ```text
//! Cmk  (customer master key, per tenant; held by the customer's provider, 32 bytes)
//!  └─ wraps Kek  (key-encryption key, per tenant and generation; `Cmk::wrap_kek`)
//!      └─ wraps Dek  (data-encryption key, one per file written; `Kek::wrap_dek`)
//!          └─ seals pages (AES-256-GCM, nonce = page index, file id as associated data)
//! ```
//!
//! A [`PageSealer`] makes its own fresh [`Dek`] and seals the pages of exactly one new file; a
//! [`PageOpener`] built from an unwrapped [`Dek`] opens them. Wrapped keys travel as 64-byte
//! [`WrappedKey`] blobs that name the generation ([`KeyId`]) of the key that can unwrap them.
//!
//! # Invariants
//!
//! - A `(key, nonce)` pair is never used twice for sealing. The type system carries most of it:
//!   only a [`PageSealer`] seals, it generates its [`Dek`] itself from the OS random source, and it
//!   never accepts a key from outside, so a key read back from disk can only open. Within one
//!   sealer the position (page index or file offset: the nonce) must strictly increase:
//!   asserted on every seal (O(1)).
//! - A page that fails authentication (wrong key, wrong file, wrong position, a flipped bit in
//!   the page or its tag) is an [`Error::Authentication`], never plaintext garbage; the
//!   caller's buffer is then zeroed.
//! - Key material lives only in types that zeroize on drop, are not `Clone`, and whose `Debug`
//!   prints no key bytes. No [`Error`] message contains key material.
//! - The hot path (seal, open) allocates nothing and copies nothing: it works in the caller's
//!   buffer (tested with a counting allocator in `tests/it`).

mod error;
mod key_wrap;
mod keys;
mod page;
mod wrapped_key;

#[cfg(test)]
mod testing;

pub use error::Error;
pub use keys::{Cmk, Dek, Kek, KeyId, KEY_SIZE_BYTES};
pub use page::{FileId, PageBuf, PageOpener, PageSealer, PageTag, PAGE_SIZE_BYTES, TAG_SIZE_BYTES};
pub use wrapped_key::{KeyKind, WrappedKey, WRAPPED_KEY_SIZE_BYTES};
