//! TLS on the page protocol and the admin API (issue #8), with certificates made by `openssl`
//! for each test and real clients: the Rust client (rustls), `openssl s_client`, `curl`.

use crate::harness::TestServer;
use crate::support::{image, key};
use server::admin_client::TenantInfo;
use server::client::{Client, ClientError, ClientTls};
use server::proto::Role;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wal::{Lsn, TimelineId};

const ADMIN_TOKEN: &str = "admin-token-for-the-tls-tests-0123456789";

/// A CA and a server certificate it signed (for `localhost` and 127.0.0.1), plus a second CA
/// that signed nothing of ours; all in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki { dir: tempfile::tempdir().unwrap() };
        pki.make_ca("ca");
        pki.make_ca("other-ca");
        pki.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        std::fs::write(pki.path("admin_token"), format!("{ADMIN_TOKEN}\n")).unwrap();
        pki
    }

    fn make_ca(&self, name: &str) {
        let (key, cert) = (format!("{name}.key"), format!("{name}.crt"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &format!("/CN=pagecore test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl").args(args).current_dir(self.dir.path()).output();
        let output = output.expect("the openssl command (package openssl) is installed");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[tls]` (and, with the admin API on TLS, `[auth]`) tables.
    fn toml(&self, protocol: bool, admin: bool) -> String {
        let mut toml = format!(
            "[tls]\ncert_chain_file = {:?}\nprivate_key_file = {:?}\nprotocol = {protocol}\nadmin = {admin}\n",
            self.path("server.crt"),
            self.path("server.key"),
        );
        if admin {
            toml += &format!("[auth]\nadmin_token_file = {:?}\n", self.path("admin_token"));
        }
        toml
    }

    fn client(&self, ca: &str, server_name: &str) -> ClientTls {
        ClientTls::new(&self.path(ca), server_name).unwrap()
    }
}

fn connect_tls(
    server: &TestServer,
    tls: &ClientTls,
    role: Role,
    ids: (&TenantInfo, TimelineId),
    term: u64,
) -> Result<Client, ClientError> {
    Client::connect_tls(&server.addr, tls, role, ids.0.tenant_id, ids.1, term, &[])
}

/// Tenants until both cores own one.
fn tenants_on_both_cores(server: &TestServer) -> Vec<(TenantInfo, TimelineId)> {
    let mut tenants: Vec<(TenantInfo, TimelineId)> = Vec::new();
    while !(tenants.iter().any(|(t, _)| t.core == 0) && tenants.iter().any(|(t, _)| t.core == 1)) {
        assert!(tenants.len() < 64, "placement never used both cores");
        tenants.push(server.create_tenant());
    }
    tenants
}

/// The handoff path with TLS: the accepting core runs the handshake and reads `Hello`, the
/// owner core continues the same TLS session. Over 20 rounds the kernel spreads the accepts
/// over both cores, so each owner serves sessions another core started.
#[test]
fn page_protocol_over_tls_is_served_by_the_owner_core() {
    let pki = Pki::new();
    let server = TestServer::start_with(2, &pki.toml(true, false));
    let tls = pki.client("ca.crt", "localhost");
    let tenants = tenants_on_both_cores(&server);
    for (tenant, timeline) in &tenants {
        let mut writer = connect_tls(&server, &tls, Role::Writer, (tenant, *timeline), 1).unwrap();
        assert_eq!(usize::from(writer.hello().core), tenant.core);
        let lsn =
            writer.append_wal(&[image(0x10, 0, tenant.core as u64), image(0x20, 1, 7)]).unwrap();
        assert_eq!(lsn, Lsn(0x20));
    }
    for round in 0..20 {
        for (tenant, timeline) in &tenants {
            let mut reader =
                connect_tls(&server, &tls, Role::Reader, (tenant, *timeline), 0).unwrap();
            assert_eq!(usize::from(reader.hello().core), tenant.core, "round {round}");
            // Pipelined: several requests in one TLS write, answered in order.
            let first = reader.send_get_page(key(0), Lsn(0x20), Lsn(0x20));
            let second = reader.send_get_page(key(1), Lsn(0x20), Lsn(0x20));
            for (id, expected) in
                [(first, image(0, 0, tenant.core as u64)), (second, image(0, 1, 7))]
            {
                let response = reader.recv().unwrap();
                assert_eq!(response.request_id, id, "round {round}");
                assert_eq!(response.into_result().unwrap(), expected.page_bytes(), "round {round}");
            }
        }
    }
    // An IP address as the server name works too (the certificate lists 127.0.0.1).
    let by_ip = pki.client("ca.crt", "127.0.0.1");
    let (tenant, timeline) = &tenants[0];
    connect_tls(&server, &by_ip, Role::Reader, (tenant, *timeline), 0).unwrap();
    assert!(server.log().contains("TLS configured"), "{}", server.log());
    assert_eq!(server.log().matches("handoff").count(), 0, "{}", server.log());
    server.assert_log_clean(&[]);
}

/// `openssl s_client`, a client that shares no code with ours, verifies the chain and agrees
/// on TLS 1.3 and the `pagecore` ALPN.
#[test]
fn openssl_s_client_completes_the_handshake() {
    let pki = Pki::new();
    let server = TestServer::start_with(1, &pki.toml(true, false));
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr, "-servername", "localhost", "-CAfile"])
        .arg(pki.path("ca.crt"))
        .args(["-verify_return_error", "-alpn", "pagecore"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("New, TLSv1.3"), "{text}");
    assert!(text.contains("ALPN protocol: pagecore"), "{text}");
    // A client that offers only another protocol is refused.
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr, "-alpn", "h2", "-brief"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "ALPN h2 accepted");
    server.assert_log_clean(&[]);
}

/// A client that speaks the page protocol in plaintext to a TLS listener gets an error and
/// a closed connection, not a hang; the server goes on serving TLS clients.
#[test]
fn plaintext_client_to_a_tls_listener_is_closed() {
    let pki = Pki::new();
    let server = TestServer::start_with(2, &pki.toml(true, false));
    let (tenant, timeline) = server.create_tenant();
    for _ in 0..4 {
        let started = Instant::now();
        let plain = Client::connect(&server.addr, Role::Reader, tenant.tenant_id, timeline, 0);
        assert!(plain.is_err(), "a plaintext Hello was answered");
        assert!(started.elapsed() < Duration::from_secs(5), "the server did not close at once");
    }
    let tls = pki.client("ca.crt", "localhost");
    let mut writer = connect_tls(&server, &tls, Role::Writer, (&tenant, timeline), 1).unwrap();
    writer.append_wal(&[image(0x10, 0, 1)]).unwrap();
    assert!(server.log().contains("connection failed before Hello"), "{}", server.log());
    server.assert_log_clean(&[]);
}

/// A client that trusts another CA, or expects another name, refuses the server.
#[test]
fn client_verification_fails_for_a_wrong_ca_or_name() {
    let pki = Pki::new();
    let server = TestServer::start_with(1, &pki.toml(true, false));
    let (tenant, timeline) = server.create_tenant();
    for (ca, name, expected) in [
        ("other-ca.crt", "localhost", "UnknownIssuer"),
        ("ca.crt", "pagecore.example", "not valid for name"),
    ] {
        let tls = pki.client(ca, name);
        let error = match connect_tls(&server, &tls, Role::Reader, (&tenant, timeline), 0) {
            Ok(_) => panic!("connected trusting {ca} as {name}"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("certificate") && error.contains(expected), "{error}");
    }
    let tls = pki.client("ca.crt", "localhost");
    connect_tls(&server, &tls, Role::Reader, (&tenant, timeline), 0).unwrap();
    server.assert_log_clean(&[]);
}

/// The admin API over HTTPS: `curl --cacert` with and without the bearer token, our own
/// admin client, and plain HTTP refused.
#[test]
fn admin_api_over_https_with_curl() {
    let pki = Pki::new();
    let tls = pki.client("ca.crt", "localhost");
    let server =
        TestServer::start_with_admin_tls(1, &pki.toml(false, true), tls, Some(ADMIN_TOKEN));
    let (tenant, _) = server.create_tenant();
    let port = server.admin_addr.rsplit_once(':').unwrap().1;
    let curl = |path: &str, extra: &[&str]| {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(pki.path("ca.crt"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("https://localhost:{port}{path}"))
            .output()
            .expect("curl is installed");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let bearer = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let (ok, body, stderr) = curl("/v1/tenants", &["-H", &bearer]);
    assert!(ok, "{stderr}");
    assert!(body.ends_with("\n200") && body.contains(&tenant.tenant_id.to_string()), "{body}");
    let (ok, body, stderr) = curl("/v1/tenants", &[]);
    assert!(ok && body.ends_with("\n401"), "{body} {stderr}");
    let (ok, body, _) = curl("/metrics", &["-H", &bearer]);
    assert!(ok && body.contains("pagecore_") && body.ends_with("\n200"), "{body}");
    // A POST with a body.
    let (ok, body, stderr) =
        curl("/v1/tenants", &["-H", &bearer, "-H", "Content-Type: application/json", "-d", "{}"]);
    assert!(ok && body.ends_with("\n201"), "{body} {stderr}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://127.0.0.1:{port}/health")])
        .output()
        .unwrap();
    assert!(
        !plain.status.success(),
        "plain HTTP answered: {}",
        String::from_utf8_lossy(&plain.stdout)
    );
    // A client that trusts another CA refuses the server.
    let (ok, _, stderr) = {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(pki.path("other-ca.crt"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/health"))
            .output()
            .unwrap();
        (output.status.success(), (), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert!(!ok && stderr.contains("certificate"), "{stderr}");
    assert_eq!(server.admin().tenants().unwrap().len(), 2);
    server.assert_log_clean(&[]);
}

/// A `[tls]` file that is missing, not PEM, or a key that does not match the certificate
/// stops the start with a message naming the file, and never prints the key.
#[test]
fn bad_certificate_or_key_stops_the_start_with_a_clear_error() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.pem"), "this is not PEM\n").unwrap();
    pki.make_ca("stray");
    let key = std::fs::read_to_string(pki.path("server.key")).unwrap();
    let key_body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let cases = [
        ("missing.crt", "server.key", "cannot read certificate chain file"),
        ("server.crt", "missing.key", "cannot read private key file"),
        ("garbage.pem", "server.key", "no CERTIFICATE block found"),
        ("server.crt", "garbage.pem", "no PRIVATE KEY block"),
        ("server.crt", "server.crt", "no PRIVATE KEY block"),
        ("server.crt", "stray.key", "rejected"),
    ];
    for (cert, key, expected) in cases {
        let stderr = serve_expecting_failure(&pki, &pki.path(cert), &pki.path(key));
        assert!(
            stderr.contains("invalid setting tls") && stderr.contains(expected),
            "{cert} {key}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        for line in &key_body {
            assert!(!stderr.contains(line), "key material printed: {stderr}");
        }
    }
}

/// Runs `pagecore serve` with the given `[tls]` files; it must exit with failure before
/// serving. Returns its stderr.
fn serve_expecting_failure(pki: &Pki, cert: &Path, key: &Path) -> String {
    let tls =
        format!("[tls]\ncert_chain_file = {cert:?}\nprivate_key_file = {key:?}\nprotocol = true\n");
    crate::harness::serve_expecting_failure(&pki.path(""), &tls)
}

trait PageBytes {
    fn page_bytes(&self) -> Vec<u8>;
}

impl PageBytes for wal::Record {
    fn page_bytes(&self) -> Vec<u8> {
        match &self.body {
            wal::RecordBody::Image(page) => page.to_vec(),
            _ => unreachable!("only images"),
        }
    }
}
