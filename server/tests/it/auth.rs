//! Authentication: tenant tokens in `Hello` and the admin bearer token (`server::auth`).

use crate::harness::TestServer;
use crate::support::{image, key};
use server::admin_client::AdminClient;
use server::auth::{mint, Secret};
use server::client::{Client, ClientError};
use server::proto::{Role, Status};
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use wal::{Lsn, TenantId, TimelineId};

const TOKEN_SECRET: &str = "tok-secret-5f1c0b7e9a2d4c68b3e1f0a9d7c5b3a1";
const ADMIN_TOKEN: &str = "adm-token-8e2b4d6f1a3c5e7b9d0f2a4c6e8b1d3f";

/// Secret files for a server, kept in their own directory for the test's life.
struct Secrets {
    dir: tempfile::TempDir,
}

impl Secrets {
    fn new() -> Secrets {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token_secret"), format!("{TOKEN_SECRET}\n")).unwrap();
        std::fs::write(dir.path().join("admin_token"), format!("{ADMIN_TOKEN}\n")).unwrap();
        Secrets { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The `[auth]` table turning both checks on.
    fn toml(&self) -> String {
        format!(
            "[auth]\ntoken_secret_file = {:?}\nadmin_token_file = {:?}\n",
            self.path("token_secret"),
            self.path("admin_token")
        )
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(tenant: TenantId, role: Role, expiry: u64) -> String {
    mint(&Secret::from_bytes(TOKEN_SECRET.as_bytes()), tenant, role, expiry)
}

fn connect(
    server: &TestServer,
    role: Role,
    (tenant, timeline): (TenantId, TimelineId),
    token: &str,
) -> Result<Client, ClientError> {
    Client::connect_with_token(&server.addr, role, tenant, timeline, 1, token.as_bytes())
}

fn status(result: Result<Client, ClientError>) -> Option<Status> {
    result.err().and_then(|e| e.status())
}

/// Creates a tenant with one timeline through the authenticated admin API.
fn create(admin: &AdminClient) -> (TenantId, TimelineId) {
    let tenant = admin.create_tenant(None).unwrap().tenant_id;
    (tenant, admin.create_timeline(tenant, None).unwrap().timeline_id)
}

#[test]
fn tokens_open_only_their_tenant_and_role() {
    let secrets = Secrets::new();
    let server = TestServer::start_with(2, &secrets.toml());
    let admin = AdminClient::with_token(&server.admin_addr, ADMIN_TOKEN);
    let (a, b) = (create(&admin), create(&admin));
    let later = now() + 3600;
    let writer_a = token(a.0, Role::Writer, later);
    let reader_a = token(a.0, Role::Reader, later);

    let unauthorized = Some(Status::Unauthorized);
    assert_eq!(status(connect(&server, Role::Reader, b, &writer_a)), unauthorized, "A opens B");
    assert_eq!(status(connect(&server, Role::Writer, b, &writer_a)), unauthorized, "A opens B");
    assert_eq!(status(connect(&server, Role::Writer, a, &reader_a)), unauthorized, "reader");
    assert_eq!(status(connect(&server, Role::Reader, a, "")), unauthorized, "no token");
    let expired = token(a.0, Role::Writer, now() - 1);
    assert_eq!(status(connect(&server, Role::Writer, a, &expired)), unauthorized, "expired");
    let forged = mint(&Secret::from_bytes(&[9; 32]), a.0, Role::Writer, later);
    assert_eq!(status(connect(&server, Role::Writer, a, &forged)), unauthorized, "forged");
    assert_eq!(status(connect(&server, Role::Reader, a, "v1.garbage")), unauthorized);
    // Authentication comes before the lookup: no token reveals nothing about what exists.
    let nowhere = (TenantId::from_u128(77), TimelineId::from_u128(78));
    assert_eq!(status(connect(&server, Role::Reader, nowhere, "")), unauthorized);

    let mut writer = connect(&server, Role::Writer, a, &writer_a).unwrap();
    assert_eq!(writer.append_wal(&[image(0x100, 0, 1)]).unwrap(), Lsn(0x100));
    let mut reader = connect(&server, Role::Reader, a, &reader_a).unwrap();
    let err = reader.append_wal(&[image(0x200, 0, 2)]).unwrap_err();
    assert_eq!(err.status(), unauthorized, "a reader connection cannot append");
    let page = reader.get_page(key(0), Lsn(0x100), Lsn(0x100)).unwrap();
    assert_eq!(page.len(), wal::PAGE_SIZE);
    let mut writer_reading = connect(&server, Role::Reader, a, &writer_a).unwrap();
    writer_reading.get_page(key(0), Lsn(0x100), Lsn(0x100)).unwrap();

    assert_no_secrets_logged(&server, &[&writer_a, &reader_a, &expired, &forged]);
    assert!(server.log().contains("authentication configured"));
    server.assert_log_clean(&[]);
}

#[test]
fn admin_api_needs_the_bearer_token_except_probes() {
    let secrets = Secrets::new();
    let server = TestServer::start_with(1, &secrets.toml());
    let get = |path: &str, bearer: Option<&str>| {
        let mut request = ureq::get(&format!("http://{}{path}", server.admin_addr));
        if let Some(token) = bearer {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.call() {
            Ok(response) => (response.status(), response.into_string().unwrap()),
            Err(ureq::Error::Status(code, response)) => (code, response.into_string().unwrap()),
            Err(other) => panic!("{other}"),
        }
    };
    for path in ["/v1/tenants", "/metrics", "/dashboard", "/dashboard/data"] {
        let (code, body) = get(path, None);
        assert_eq!(code, 401, "{path} without a token");
        assert!(body.contains("\"error\""), "{body}");
        assert_eq!(get(path, Some("wrong-token")).0, 401, "{path} with a wrong token");
        assert_eq!(get(path, Some(&ADMIN_TOKEN[..20])).0, 401, "{path} with a prefix");
        assert_eq!(get(path, Some(ADMIN_TOKEN)).0, 200, "{path} with the token");
    }
    assert_eq!(get("/health", None).0, 200);
    assert_eq!(get("/ready", None).0, 200);
    let post = ureq::post(&format!("http://{}/v1/tenants", server.admin_addr)).call();
    assert!(matches!(post, Err(ureq::Error::Status(401, _))));
    let err = server.admin().create_tenant(None).unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    AdminClient::with_token(&server.admin_addr, ADMIN_TOKEN).create_tenant(None).unwrap();
    let tenant_list = |token_file: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pagecore"));
        command.args(["tenant", "list", "--admin-addr", &server.admin_addr]);
        if let Some(file) = token_file {
            command.arg("--admin-token-file").arg(file);
        }
        command.output().unwrap().status.success()
    };
    assert!(!tenant_list(None), "the CLI without the admin token");
    assert!(tenant_list(Some(&secrets.path("admin_token"))), "the CLI with it");
    assert_no_secrets_logged(&server, &[]);
    server.assert_log_clean(&[]);
}

#[test]
fn the_mint_command_prints_a_working_token() {
    let secrets = Secrets::new();
    // Tenant tokens only: the admin API stays open, so the harness's helpers work.
    let toml = format!("[auth]\ntoken_secret_file = {:?}\n", secrets.path("token_secret"));
    let server = TestServer::start_with(1, &toml);
    let (tenant, timeline) = server.create_tenant();
    let output = Command::new(env!("CARGO_BIN_EXE_pagecore"))
        .args(["token", "mint", "--secret-file"])
        .arg(secrets.path("token_secret"))
        .args(["--tenant", &tenant.tenant_id.to_string(), "--role", "writer", "--ttl", "600"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let mut client = connect(&server, Role::Writer, (tenant.tenant_id, timeline), token.trim())
        .expect("minted token opens its tenant");
    client.append_wal(&[image(0x100, 0, 1)]).unwrap();
    assert_no_secrets_logged(&server, &[token.trim()]);
}

#[test]
fn a_configured_secret_file_must_exist_and_be_long_enough() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "only-twenty-bytes!!\n").unwrap();
    for (file, expected) in
        [(short.as_path(), "at least 32"), (&dir.path().join("none"), "cannot read")]
    {
        let stderr = serve_expecting_failure(dir.path(), file);
        assert!(stderr.contains("auth.token_secret_file") && stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("only-twenty"), "the secret is printed: {stderr}");
    }
}

#[test]
fn without_secret_files_authentication_is_off() {
    let server = TestServer::start(1);
    assert!(server.log().contains("authentication is off"));
    let (tenant, timeline) = server.create_tenant();
    let any = "any bytes at all";
    connect(&server, Role::Writer, (tenant.tenant_id, timeline), any).unwrap();
}

/// Runs `pagecore serve` with `token_secret_file = file` and returns its stderr; it must exit
/// with failure before serving.
fn serve_expecting_failure(dir: &Path, file: &Path) -> String {
    crate::harness::serve_expecting_failure(dir, &format!("[auth]\ntoken_secret_file = {file:?}\n"))
}

/// Neither secret nor any token (nor its MAC alone) appears in the server's log.
fn assert_no_secrets_logged(server: &TestServer, tokens: &[&str]) {
    let log = server.log();
    assert!(!log.is_empty());
    for secret in [TOKEN_SECRET, ADMIN_TOKEN] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
    for token in tokens {
        let mac = token.rsplit('.').next().unwrap();
        assert!(!log.contains(mac), "a token is in the log");
    }
}
