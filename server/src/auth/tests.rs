use super::*;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn secret() -> Secret {
    Secret::from_bytes(b"0123456789abcdef0123456789abcdef-test-secret")
}

fn tenant(n: u128) -> TenantId {
    TenantId::from_u128(n)
}

/// Verifies `token` as a `Hello` of tenant 1 with `role` at `NOW`.
fn check(token: &str, role: Role, expected: Result<(), Refusal>) {
    assert_eq!(verify(&secret(), token.as_bytes(), tenant(1), role, NOW), expected, "{token}");
}

#[test]
fn a_minted_token_opens_its_tenant() {
    let writer = mint(&secret(), tenant(1), Role::Writer, NOW + 60);
    check(&writer, Role::Writer, Ok(()));
    check(&writer, Role::Reader, Ok(()));
    let reader = mint(&secret(), tenant(1), Role::Reader, NOW + 60);
    check(&reader, Role::Reader, Ok(()));
}

#[test]
fn token_layout_is_as_documented() {
    let token = mint(&secret(), tenant(0xab), Role::Reader, 1234);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts[..4], ["v1", "000000000000000000000000000000ab", "r", "1234"]);
    assert_eq!(parts[4].len(), 64);
}

#[test]
fn refusals() {
    let other_tenant = mint(&secret(), tenant(2), Role::Writer, NOW + 60);
    check(&other_tenant, Role::Reader, Err(Refusal::WrongTenant));
    let reader = mint(&secret(), tenant(1), Role::Reader, NOW + 60);
    check(&reader, Role::Writer, Err(Refusal::ReaderOnly));
    let expired = mint(&secret(), tenant(1), Role::Writer, NOW);
    check(&expired, Role::Reader, Err(Refusal::Expired));
    let other_secret = Secret::from_bytes(&[7; 32]);
    let forged = mint(&other_secret, tenant(1), Role::Writer, NOW + 60);
    check(&forged, Role::Writer, Err(Refusal::BadSignature));
    check("", Role::Reader, Err(Refusal::Missing));
    check("secret", Role::Reader, Err(Refusal::Malformed));
}

#[test]
fn any_edit_of_a_token_breaks_it() {
    let token = mint(&secret(), tenant(1), Role::Reader, NOW + 60);
    // Claims changed without re-signing: a writer role, a later expiry, another tenant.
    let as_writer = token.replacen(".r.", ".w.", 1);
    check(&as_writer, Role::Writer, Err(Refusal::BadSignature));
    let later = token.replacen(&format!(".{}.", NOW + 60), &format!(".{}.", NOW + 6000), 1);
    check(&later, Role::Reader, Err(Refusal::BadSignature));
    let lettered = mint(&secret(), tenant(0xab), Role::Reader, NOW + 60);
    let upper = lettered.replacen("ab.r.", "AB.r.", 1);
    let verdict = verify(&secret(), upper.as_bytes(), tenant(0xab), Role::Reader, NOW);
    assert_eq!(verdict, Err(Refusal::BadSignature), "one spelling per token");
    let plus = token.replacen(&format!(".{}.", NOW + 60), &format!(".+{}.", NOW + 60), 1);
    check(&plus, Role::Reader, Err(Refusal::Malformed));
    // Every single-character change of the MAC.
    let mac_at = token.rfind('.').unwrap() + 1;
    for index in mac_at..token.len() {
        let mut bytes = token.clone().into_bytes();
        bytes[index] = if bytes[index] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(bytes).unwrap();
        check(&tampered, Role::Reader, Err(Refusal::BadSignature));
    }
    check(&token[..token.len() - 2], Role::Reader, Err(Refusal::BadSignature));
    check(&token[..token.len() - 1], Role::Reader, Err(Refusal::Malformed));
    check(&format!("{token}.x"), Role::Reader, Err(Refusal::Malformed));
}

#[test]
fn refusal_texts_and_debug_carry_no_secret_or_token() {
    let token = mint(&secret(), tenant(1), Role::Reader, NOW + 60);
    let mac = token.rsplit('.').next().unwrap();
    for refusal in [
        Refusal::Missing,
        Refusal::Malformed,
        Refusal::BadSignature,
        Refusal::WrongTenant,
        Refusal::ReaderOnly,
        Refusal::Expired,
    ] {
        assert!(!refusal.to_string().contains(mac));
    }
    assert_eq!(format!("{:?}", secret()), "Secret(<redacted>)");
}

#[test]
fn admin_bearer_is_compared_exactly() {
    let expected = Secret::from_bytes(b"admin-token-admin-token-admin-token-0");
    assert!(admin_allows(&expected, Some("Bearer admin-token-admin-token-admin-token-0")));
    assert!(!admin_allows(&expected, Some("Bearer admin-token-admin-token-admin-token-1")));
    assert!(!admin_allows(&expected, Some("Bearer admin-token")));
    assert!(!admin_allows(&expected, Some("admin-token-admin-token-admin-token-0")));
    assert!(!admin_allows(&expected, Some("Bearer ")));
    assert!(!admin_allows(&expected, None));
}

#[test]
fn secret_files_must_be_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    assert!(matches!(Secret::load(&path), Err(SecretError::Read { .. })));
    std::fs::write(&path, "").unwrap();
    assert!(matches!(Secret::load(&path), Err(SecretError::TooShort { len: 0, .. })));
    std::fs::write(&path, format!("{}\n\n", "a".repeat(31))).unwrap();
    assert!(matches!(Secret::load(&path), Err(SecretError::TooShort { len: 31, .. })));
    std::fs::write(&path, format!("{}\n", "a".repeat(64))).unwrap();
    let loaded = Secret::load(&path).unwrap();
    let same = Secret::from_bytes("a".repeat(64).as_bytes());
    let token = mint(&loaded, tenant(1), Role::Reader, NOW + 1);
    assert_eq!(verify(&same, token.as_bytes(), tenant(1), Role::Reader, NOW), Ok(()));
}

proptest! {
    /// Arbitrary bytes, and truncations or one-byte edits of a real token, are refused or
    /// accepted but never panic; only the untouched token is accepted.
    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(verify(&secret(), &bytes, tenant(1), Role::Writer, NOW).is_err());
    }

    #[test]
    fn edited_tokens_are_refused(cut in 0usize..200, at in 0usize..200, byte in any::<u8>()) {
        let token = mint(&secret(), tenant(1), Role::Writer, NOW + 60).into_bytes();
        let cut = cut.min(token.len() - 1);
        prop_assert!(verify(&secret(), &token[..cut], tenant(1), Role::Writer, NOW).is_err());
        let mut edited = token.clone();
        let at = at % edited.len();
        edited[at] = byte;
        let verdict = verify(&secret(), &edited, tenant(1), Role::Writer, NOW);
        prop_assert_eq!(verdict.is_ok(), edited == token);
    }
}
