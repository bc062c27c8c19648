//! Starts the real `pagecore` binary on 127.0.0.1 with a temporary data directory and its own
//! ports, and speaks the real protocol to it.

use server::admin_client::{AdminClient, TenantInfo};
use server::client::{Client, ClientTls};
use server::proto::Role;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wal::{TenantId, TimelineId};

pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub admin_addr: String,
    config_path: PathBuf,
    log_path: PathBuf,
    starts: usize,
    /// Set for a server whose admin API is HTTPS (`[tls] admin`): how `admin()` connects.
    admin_tls: Option<(ClientTls, Option<String>)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestServer {
    /// Starts a server with `cores` cores, a 64 KiB WAL segment size (so tests cross segment
    /// boundaries) and a 500 ms LSN wait timeout.
    pub fn start(cores: usize) -> TestServer {
        TestServer::start_with(cores, "")
    }

    /// Like [`TestServer::start`], with extra TOML appended to the config (e.g. a `[store]`
    /// table).
    pub fn start_with(cores: usize, extra_toml: &str) -> TestServer {
        TestServer::start_configured(cores, "", extra_toml)
    }

    /// Like [`TestServer::start`], with extra top-level TOML keys (before any table).
    pub fn start_with_top(cores: usize, top_toml: &str) -> TestServer {
        TestServer::start_configured(cores, top_toml, "")
    }

    /// Like [`TestServer::start_with`], with the data directory at `data_dir` (e.g. on a small
    /// file system of the test's own).
    pub fn start_in(cores: usize, data_dir: &std::path::Path, extra_toml: &str) -> TestServer {
        let top = format!("data_dir = {data_dir:?}\n");
        TestServer::start_configured(cores, &top, extra_toml)
    }

    /// Like [`TestServer::start_with`], for a server whose admin API is HTTPS: `admin()` (and
    /// the readiness wait) trust `tls`'s CA and send `admin_token`, if any.
    pub fn start_with_admin_tls(
        cores: usize,
        extra_toml: &str,
        tls: ClientTls,
        admin_token: Option<&str>,
    ) -> TestServer {
        let admin_tls = Some((tls, admin_token.map(str::to_string)));
        TestServer::start_configured_with(cores, "", extra_toml, admin_tls)
    }

    fn start_configured(cores: usize, top_toml: &str, extra_toml: &str) -> TestServer {
        TestServer::start_configured_with(cores, top_toml, extra_toml, None)
    }

    fn start_configured_with(
        cores: usize,
        top_toml: &str,
        extra_toml: &str,
        admin_tls: Option<(ClientTls, Option<String>)>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let admin_addr = format!("127.0.0.1:{}", free_port());
        let config_path = dir.path().join("pagecore.toml");
        let data_dir = if top_toml.contains("data_dir =") {
            String::new()
        } else {
            format!("data_dir = {:?}\n", dir.path().join("data"))
        };
        let config = format!(
            "{top_toml}{data_dir}listen = {addr:?}\nadmin_listen = {admin_addr:?}\ncores = {cores}\n\
             lsn_wait_timeout_ms = 500\nlog = \"info\"\n[wal]\nsegment_size_bytes = 65536\n{extra_toml}\n"
        );
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("server.log");
        let mut server = TestServer {
            child: None,
            dir,
            addr,
            admin_addr,
            config_path,
            log_path,
            starts: 0,
            admin_tls,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let mut log =
            std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
        writeln!(log, "=== start {} ===", self.starts).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pagecore"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let admin = self.admin();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !admin.ready() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let ss = Command::new("sh")
                    .arg("-c")
                    .arg(format!("ss -tanp | grep {}", self.addr))
                    .output()
                    .unwrap();
                panic!(
                    "pagecore exited with {status} during start:\n{}\n{}",
                    self.log(),
                    String::from_utf8_lossy(&ss.stdout)
                );
            }
            assert!(Instant::now() < deadline, "pagecore not ready in 30 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sum of the samples of metric `name` in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let url = format!("http://{}/metrics", self.admin_addr);
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    /// The server process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn admin(&self) -> AdminClient {
        match &self.admin_tls {
            None => AdminClient::new(&self.admin_addr),
            Some((tls, token)) => AdminClient::with_tls(&self.admin_addr, tls, token.as_deref()),
        }
    }

    /// Stops with SIGTERM (clean shutdown) and waits; panics if the exit is not clean.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(status.success(), "pagecore exited with {status}:\n{}", self.log());
        }
    }

    /// Kills with SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn restart_clean(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts again after [`TestServer::stop`] (e.g. once the test changed files on disk).
    pub fn restart_clean_after_stop(&mut self) {
        assert!(self.child.is_none(), "server still running");
        self.spawn();
    }

    pub fn restart_after_kill9(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Creates a tenant with one timeline.
    pub fn create_tenant(&self) -> (TenantInfo, TimelineId) {
        let admin = self.admin();
        let tenant = admin.create_tenant(None).unwrap();
        let timeline = admin.create_timeline(tenant.tenant_id, None).unwrap();
        (tenant, timeline.timeline_id)
    }

    pub fn connect(&self, role: Role, tenant: TenantId, timeline: TimelineId, term: u64) -> Client {
        Client::connect(&self.addr, role, tenant, timeline, term).unwrap()
    }

    /// Runs a store operation (`flush`, `compact`, `gc`) now and returns the timeline's info.
    pub fn store_op(&self, tenant: TenantId, timeline: TimelineId, op: &str) -> serde_json::Value {
        let url =
            format!("http://{}/v1/tenants/{tenant}/timelines/{timeline}/{op}", self.admin_addr);
        let response = ureq::post(&url).call().unwrap_or_else(|e| panic!("{op}: {e}"));
        serde_json::from_str(&response.into_string().unwrap()).unwrap()
    }

    /// The timeline's info from the admin API.
    pub fn timeline_info(&self, tenant: TenantId, timeline: TimelineId) -> serde_json::Value {
        let info = self.admin().tenant(tenant).unwrap();
        let found = info.timelines.into_iter().find(|t| t.timeline_id == timeline).unwrap();
        serde_json::to_value(found).unwrap()
    }

    /// Path of a timeline's directory.
    pub fn timeline_dir(&self, tenant: TenantId, timeline: TimelineId) -> PathBuf {
        self.dir
            .path()
            .join("data/tenants")
            .join(tenant.to_string())
            .join("timelines")
            .join(timeline.to_string())
    }

    /// Fails if the log has ERROR or WARN lines other than those containing one of `allowed`.
    pub fn assert_log_clean(&self, allowed: &[&str]) {
        let log = self.log();
        let unexpected: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .filter(|l| !allowed.iter().any(|a| l.contains(a)))
            // Every test server starts with the embedded development keyring.
            .filter(|l| !l.contains("development keyring"))
            .collect();
        assert!(unexpected.is_empty(), "unexpected ERROR/WARN lines:\n{}", unexpected.join("\n"));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // The test failed: the server's last words are the first thing to read.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- last lines of the server log ---\n{}", tail.join("\n"));
        }
    }
}

/// Runs `pagecore serve` on a config in `dir` (unreachable ports, one core) with `tables_toml`
/// appended, expects it to refuse to start, and returns what it printed on stderr.
pub fn serve_expecting_failure(dir: &std::path::Path, tables_toml: &str) -> String {
    let config = dir.join("pagecore.toml");
    let text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:1\"\ncores = 1\n\
         {tables_toml}",
        dir.join("data")
    );
    std::fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pagecore"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the server started with {tables_toml}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
