use super::*;

fn check_client(ca_text: Option<&str>, server_name: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    if let Some(text) = ca_text {
        std::fs::write(&ca, text).unwrap();
    }
    let error = ClientTls::new(&ca, server_name).unwrap_err().to_string();
    assert!(error.contains(expected), "{error}");
}

#[test]
fn client_settings_are_checked_up_front() {
    check_client(None, "localhost", "cannot read CA file");
    check_client(Some("no PEM here\n"), "localhost", "no CERTIFICATE block found");
    let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    check_client(Some(not_base64), "localhost", "not a valid PEM file");
}

#[test]
fn key_errors_name_the_file_and_quote_nothing_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let secret_line = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3Qtbm90LWxlYWs=";
    std::fs::write(&key, format!("-----BEGIN PRIVATE KEY-----\n{secret_line}\n")).unwrap();
    let error = read_key(&key).unwrap_err().to_string();
    assert!(error.contains("private key file") && error.contains("key.pem"), "{error}");
    assert!(!error.contains(secret_line), "{error}");
    let missing = read_key(&dir.path().join("none.pem")).unwrap_err().to_string();
    assert!(missing.contains("cannot read private key file"), "{missing}");
}
