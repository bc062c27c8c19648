//! Tenant tokens and the admin credential: minting, verification, loading secrets.
//!
//! A tenant token (carried in `Hello`'s `auth_token`; PROTOCOL.md, "Authentication") is ASCII:
//!
//! ```text
//! v1.<tenant: 32 lower-case hex>.<role: r | w>.<expiry: unix seconds, decimal>.<mac: 64 hex>
//! mac = HMAC-SHA256(secret, "pagecore-token-v1|<tenant>|<role>|<expiry>")
//! ```
//!
//! The MAC covers the three fields exactly as they appear in the token, so a token cannot be
//! re-spelled (upper-case hex, a leading `+`) into a different accepted token. Verification
//! checks the MAC first, in constant time (`hmac`'s `verify_slice`), and only then looks at what
//! the token claims: the tenant must be the `Hello`'s, a reader token (`r`) opens only reader
//! connections while a writer token (`w`) opens both, and the expiry must be after the server's
//! clock. A token carries no secret a client could not already see, but it is a bearer
//! credential: neither tokens nor secrets are ever logged or put in an error message
//! ([`Refusal`]'s texts name only the reason; [`Secret`]'s `Debug` prints nothing of it).
//!
//! The admin credential is a bearer token read from a file; [`admin_allows`] compares SHA-256
//! digests of both sides with `subtle`'s constant-time equality, so neither the content nor the
//! length of the expected token leaks through timing.
//!
//! Deliberately absent: TLS (tokens travel in clear on the wire until the TLS part of the
//! issue), revocation lists (rotate the secret instead, `deploy/README.md`), per-tenant secrets.

use crate::config::AuthConfig;
use crate::hex::{hex, unhex};
use crate::proto::Role;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use wal::TenantId;

/// A secret shorter than this is refused at start: 32 bytes is the HMAC-SHA256 key size, and
/// `openssl rand -hex 32` gives 64.
pub const MIN_SECRET_BYTES: usize = 32;

/// Token format prefix; a future format gets `v2` and readers accept a range (STYLE S14).
const TOKEN_VERSION: &str = "v1";
/// Domain separation: a MAC made for anything else under the same secret never verifies here.
const MAC_CONTEXT: &str = "pagecore-token-v1";
/// Longest expiry field accepted (`u64::MAX` has 20 digits).
const MAX_EXPIRY_DIGITS: usize = 20;

type HmacSha256 = Hmac<Sha256>;

/// Secret bytes read from a file. `Debug` prints no byte of it.
#[derive(Clone)]
pub struct Secret(Arc<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret file cannot be used. The texts name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "secret file {path} holds {len} bytes (after trailing whitespace); at least {MIN_SECRET_BYTES} are needed"
    )]
    TooShort { path: PathBuf, len: usize },
}

impl Secret {
    /// Reads a secret file. Trailing whitespace (the newline `openssl rand -hex 32 > file` or
    /// an editor leaves) is not part of the secret; everything else is, byte for byte.
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let bytes = std::fs::read(path)
            .map_err(|source| SecretError::Read { path: path.to_path_buf(), source })?;
        let len = bytes.trim_ascii_end().len();
        if len < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { path: path.to_path_buf(), len });
        }
        Ok(Secret(Arc::from(&bytes[..len])))
    }

    /// A secret from bytes already in memory (tests, the bench).
    pub fn from_bytes(bytes: &[u8]) -> Secret {
        Secret(Arc::from(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

/// Why a `Hello` was refused as `Unauthorized`. The text is sent to the client and logged: it
/// names the reason only, never the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("an auth token is required")]
    Missing,
    #[error("the auth token is malformed")]
    Malformed,
    #[error("the auth token's signature is invalid")]
    BadSignature,
    #[error("the auth token is for another tenant")]
    WrongTenant,
    #[error("the auth token is for readers only")]
    ReaderOnly,
    #[error("the auth token has expired")]
    Expired,
}

/// Makes a token for `tenant` and `role`, valid until `expiry_unix_s` (exclusive). A writer
/// token also opens reader connections.
pub fn mint(secret: &Secret, tenant: TenantId, role: Role, expiry_unix_s: u64) -> String {
    let tenant = tenant.to_string();
    let role = role_letter(role);
    let expiry = expiry_unix_s.to_string();
    let mut mac = secret.mac();
    mac.update(signed_text(&tenant, role, &expiry).as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{TOKEN_VERSION}.{tenant}.{role}.{expiry}.{}", hex(&tag))
}

/// Checks a `Hello`'s token for its tenant and role at `now_unix_s`. Never panics, whatever
/// the bytes (property-tested).
pub fn verify(
    secret: &Secret,
    token: &[u8],
    tenant: TenantId,
    role: Role,
    now_unix_s: u64,
) -> Result<(), Refusal> {
    if token.is_empty() {
        return Err(Refusal::Missing);
    }
    let text = std::str::from_utf8(token).map_err(|_| Refusal::Malformed)?;
    let mut parts = text.split('.');
    let (Some(version), Some(tenant_text), Some(role_text), Some(expiry_text), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let expiry_digits = expiry_text.len();
    if version != TOKEN_VERSION
        || !(1..=MAX_EXPIRY_DIGITS).contains(&expiry_digits)
        || !expiry_text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Refusal::Malformed);
    }
    let tag = unhex(tag).ok_or(Refusal::Malformed)?;
    let mut mac = secret.mac();
    mac.update(signed_text(tenant_text, role_text, expiry_text).as_bytes());
    mac.verify_slice(&tag).map_err(|_| Refusal::BadSignature)?;
    // Authentic from here on: only the server mints, so the fields are well formed unless the
    // secret leaked; still parsed defensively.
    let claimed: TenantId = tenant_text.parse().map_err(|_| Refusal::Malformed)?;
    let expiry: u64 = expiry_text.parse().map_err(|_| Refusal::Malformed)?;
    if claimed != tenant {
        return Err(Refusal::WrongTenant);
    }
    match (role_text, role) {
        ("w", _) | ("r", Role::Reader) => {}
        ("r", Role::Writer) => return Err(Refusal::ReaderOnly),
        _ => return Err(Refusal::Malformed),
    }
    if now_unix_s >= expiry {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// The `Hello` check: `Ok` when authentication is off (no `token_secret_file`), else
/// [`verify`] against the server's clock.
pub(crate) fn check_hello(
    auth: &AuthConfig,
    token: &[u8],
    tenant: TenantId,
    role: Role,
) -> Result<(), Refusal> {
    match &auth.token_secret {
        None => Ok(()),
        Some(secret) => verify(secret, token, tenant, role, now_unix_s()),
    }
}

/// Whether an admin request may pass: `expected` is the configured admin token, `header` the
/// request's `Authorization` value. Constant time in the content and length of both.
pub(crate) fn admin_allows(expected: &Secret, header: Option<&str>) -> bool {
    let Some(presented) = header.and_then(|h| h.trim().strip_prefix("Bearer ")) else {
        return false;
    };
    let presented = Sha256::digest(presented.trim().as_bytes());
    let expected = Sha256::digest(&expected.0);
    bool::from(presented.ct_eq(&expected))
}

/// The server's clock as unix seconds (0 if it is before 1970).
pub(crate) fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn signed_text(tenant: &str, role: &str, expiry: &str) -> String {
    format!("{MAC_CONTEXT}|{tenant}|{role}|{expiry}")
}

fn role_letter(role: Role) -> &'static str {
    match role {
        Role::Reader => "r",
        Role::Writer => "w",
    }
}

#[cfg(test)]
mod tests;
