//! Key types of the envelope: [`Cmk`], [`Kek`], [`Dek`] and their generation numbers [`KeyId`].
//!
//! Each holds 32 bytes of AES-256 key material in a field that is zeroed on drop
//! (`ZeroizeOnDrop`), prints as `Kek(<redacted>, id 3)`, and is not `Clone`: a copy of a key is
//! one more place to forget to erase, so a holder that needs it twice borrows it.
//!
//! - [`Cmk`]: the customer master key. This crate never makes or stores one; the server's
//!   provider (a command, a keyring file) fetches its bytes and calls [`Cmk::from_bytes`] with
//!   the generation the provider reports. It only wraps and unwraps [`Kek`]s.
//! - [`Kek`]: a tenant's key-encryption key, made by [`Kek::generate`] with a generation number
//!   chosen by the server (one more than the newest it knows). It only wraps and unwraps
//!   [`Dek`]s. Rotating the CMK re-wraps the Kek (one small blob per tenant); rotating the Kek
//!   makes a new generation that wraps the Deks of new files, while older generations stay in
//!   the tenant's key ring until no file needs them.
//! - [`Dek`]: one file's data-encryption key. Made only inside [`crate::PageSealer`] (so a key
//!   that came from disk can never seal again, see the crate invariants) and returned by
//!   [`Kek::unwrap_dek`] for reading.
//!
//! Wrapping is AES-256 key wrap (RFC 3394, [`crate::key_wrap`]); why, and the blob layout, are in
//! [`crate::wrapped_key`].

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wrapped_key::{self, KeyKind, WrappedKey};
use crate::Error;

/// Size of every key in this crate: AES-256.
pub const KEY_SIZE_BYTES: usize = 32;

/// Generation number of a [`Kek`] or [`Cmk`], chosen by the server; recorded in every blob the
/// key wraps so the right generation can be found to unwrap it. A [`Dek`] has none (`0` in blobs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Key bytes, erased on drop. The one place key material is stored.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct KeyBytes([u8; KEY_SIZE_BYTES]);

impl KeyBytes {
    pub(crate) fn random() -> Result<KeyBytes, Error> {
        let mut key = KeyBytes([0; KEY_SIZE_BYTES]);
        getrandom::fill(&mut key.0).map_err(|source| Error::Random { source })?;
        // A zero key means the random source handed back nothing; refuse rather than encrypt
        // under a key every attacker knows.
        assert!(key.0 != [0; KEY_SIZE_BYTES], "OS random source returned an all-zero key");
        Ok(key)
    }

    pub(crate) fn from_array(bytes: [u8; KEY_SIZE_BYTES]) -> KeyBytes {
        KeyBytes(bytes)
    }

    pub(crate) fn as_array(&self) -> &[u8; KEY_SIZE_BYTES] {
        &self.0
    }

    pub(crate) fn copy_from(&mut self, bytes: &[u8]) {
        self.0.copy_from_slice(bytes);
    }
}

/// A file's data-encryption key (AES-256). See the module doc.
#[derive(ZeroizeOnDrop)]
pub struct Dek {
    key: KeyBytes,
}

impl Dek {
    /// A fresh random key. Crate-private: only a [`crate::PageSealer`] makes sealing keys.
    pub(crate) fn generate() -> Result<Dek, Error> {
        Ok(Dek { key: KeyBytes::random()? })
    }

    pub(crate) fn key(&self) -> &KeyBytes {
        &self.key
    }

    #[cfg(test)]
    pub(crate) fn from_key_for_test(key: KeyBytes) -> Dek {
        Dek { key }
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// A tenant's key-encryption key (AES-256) of one generation. See the module doc.
#[derive(ZeroizeOnDrop)]
pub struct Kek {
    key: KeyBytes,
    #[zeroize(skip)]
    id: KeyId,
}

impl Kek {
    /// A fresh random Kek of generation `id` from the OS random source.
    pub fn generate(id: KeyId) -> Result<Kek, Error> {
        Ok(Kek { key: KeyBytes::random()?, id })
    }

    /// A Kek of generation `id` from bytes an external key service unwrapped (exactly 32).
    /// The caller should erase its own copy (e.g. hold it in `zeroize::Zeroizing`).
    pub fn from_bytes(id: KeyId, bytes: &[u8]) -> Result<Kek, Error> {
        if bytes.len() != KEY_SIZE_BYTES {
            return Err(Error::KeyLength { len_bytes: bytes.len() });
        }
        let mut key = KeyBytes::from_array([0; KEY_SIZE_BYTES]);
        key.copy_from(bytes);
        Ok(Kek { key, id })
    }

    /// The key bytes, for handing to an external key service that wraps them with a customer
    /// master key it never discloses (the server's `command` provider). Nothing else may read
    /// them; the name is meant to stand out in review.
    pub fn expose_secret_for_wrapping(&self) -> &[u8; KEY_SIZE_BYTES] {
        self.key.as_array()
    }

    /// This Kek's generation.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Wraps a file's Dek for storage beside (or in) that file.
    pub fn wrap_dek(&self, dek: &Dek) -> WrappedKey {
        wrapped_key::wrap(&self.key, self.id, KeyKind::Dek, KeyId(0), dek.key())
    }

    /// Unwraps a Dek wrapped by this Kek. Errors if the blob is not a wrapped Dek, names another
    /// Kek generation, or does not authenticate under this key.
    pub fn unwrap_dek(&self, wrapped: &WrappedKey) -> Result<Dek, Error> {
        let key = wrapped_key::unwrap(&self.key, self.id, KeyKind::Dek, wrapped)?;
        Ok(Dek { key })
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek(<redacted>, id {})", self.id)
    }
}

/// A customer master key of one generation, as fetched by a provider. See the module doc.
#[derive(ZeroizeOnDrop)]
pub struct Cmk {
    key: KeyBytes,
    #[zeroize(skip)]
    id: KeyId,
}

impl Cmk {
    /// Takes a provider's key bytes (exactly 32). The caller should erase its own copy
    /// (e.g. hold it in `zeroize::Zeroizing`).
    pub fn from_bytes(id: KeyId, bytes: &[u8]) -> Result<Cmk, Error> {
        if bytes.len() != KEY_SIZE_BYTES {
            return Err(Error::KeyLength { len_bytes: bytes.len() });
        }
        let mut key = KeyBytes::from_array([0; KEY_SIZE_BYTES]);
        key.0.copy_from_slice(bytes);
        Ok(Cmk { key, id })
    }

    /// This Cmk's generation.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Wraps a tenant's Kek (with its generation) for the key ring.
    pub fn wrap_kek(&self, kek: &Kek) -> WrappedKey {
        wrapped_key::wrap(&self.key, self.id, KeyKind::Kek, kek.id, &kek.key)
    }

    /// Unwraps a Kek wrapped by this Cmk; the Kek's generation comes from the blob's
    /// authenticated payload.
    pub fn unwrap_kek(&self, wrapped: &WrappedKey) -> Result<Kek, Error> {
        let key = wrapped_key::unwrap(&self.key, self.id, KeyKind::Kek, wrapped)?;
        Ok(Kek { key, id: wrapped.key_id() })
    }
}

impl fmt::Debug for Cmk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmk(<redacted>, id {})", self.id)
    }
}

#[cfg(test)]
mod tests;
