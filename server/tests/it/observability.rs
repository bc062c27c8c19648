//! What an operator sees and relies on: `/metrics` (checked by `promtool`), metric values that
//! follow the load, the slow-request log, the dashboard rendered by headless Chromium, the
//! deployment kit (`systemd-analyze verify`, `promtool check config`, the Grafana dashboard),
//! and graceful shutdown on SIGTERM.
//!
//! Tools that CI installs (`.ci/run`) but a developer machine may lack make their test skip
//! with a message saying what to install.

use crate::harness::TestServer;
use crate::support::{delta, image, key, Model, REL};
use server::config::Config;
use server::proto::{Role, Status};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wal::{BlockNumber, Lsn, PAGE_SIZE};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The path of `tool` if it is installed.
fn installed(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

fn skip(test: &str, tool: &str, package: &str) {
    eprintln!(
        "SKIPPED {test}: `{tool}` is not installed (apt-get install {package}; .ci/run does)"
    );
}

/// Starts a server whose config also has `top_level` settings (the harness appends its extra
/// TOML after a table, where top-level keys cannot go): start, stop, edit, start again.
fn start_configured(cores: usize, top_level: &str, tables: &str) -> TestServer {
    let mut server = TestServer::start_with(cores, tables);
    server.stop();
    let path = server.dir.path().join("pagecore.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{top_level}\n{config}")).unwrap();
    server.restart_clean_after_stop();
    server
}

fn get(url: &str) -> (u16, String, String) {
    match ureq::get(url).timeout(Duration::from_secs(30)).call() {
        Ok(response) => {
            let kind = response.content_type().to_string();
            (response.status(), kind, response.into_string().unwrap())
        }
        Err(ureq::Error::Status(code, response)) => {
            (code, String::new(), response.into_string().unwrap())
        }
        Err(error) => panic!("GET {url}: {error}"),
    }
}

fn metrics(server: &TestServer) -> String {
    let (status, kind, body) = get(&format!("http://{}/metrics", server.admin_addr));
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/plain"), "content type {kind}");
    body
}

/// Sum of every sample of `name` whose labels include all of `labels` (`key="value"` each).
fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let metric = series.split('{').next().unwrap();
            metric == name && labels.iter().all(|label| series.contains(label))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// Runs `promtool check metrics` on `text`; `None` if promtool is not installed.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    let promtool = installed("promtool")?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success() && said.trim().is_empty(), said))
}

#[test]
fn metrics_pass_promtool_and_follow_the_load() {
    // Without the buffer cache, so every GetPage reaches the layers and the counts below are
    // exact (the cache's own metrics are checked in cache.rs).
    let server = TestServer::start_with_top(2, "cache_bytes = 0\n");
    let (tenant, timeline) = server.create_tenant();
    let tenant_id = tenant.tenant_id;
    let mut writer = server.connect(Role::Writer, tenant_id, timeline, 1);
    let mut model = Model::default();
    let mut appends = 0;
    for round in 0..10u64 {
        let batch: Vec<_> = (0..4u64)
            .map(|i| {
                let lsn = 0x1000 + round * 0x100 + i * 0x10;
                if round == 0 {
                    image(lsn, i as u32, lsn)
                } else {
                    delta(lsn, i as u32, 8, b"x")
                }
            })
            .collect();
        writer.append_wal(&batch).unwrap();
        model.add(&batch);
        appends += 1;
    }
    let last = *model.lsns().last().unwrap();
    let mut reader = server.connect(Role::Reader, tenant_id, timeline, 0);
    let get_pages = 250;
    for i in 0..get_pages {
        reader.send_get_page(key(i % 4), last, last);
    }
    for _ in 0..get_pages {
        reader.recv().unwrap().into_result().unwrap();
    }
    let blocks: Vec<BlockNumber> = (0..4).map(BlockNumber).collect();
    reader.get_pages(REL, last, &blocks).unwrap();
    assert!(reader.get_page(key(99), last, last).is_err(), "block 99 does not exist");

    let text = metrics(&server);
    match promtool_check(&text) {
        Some((ok, said)) => assert!(ok, "promtool check metrics:\n{said}"),
        None => skip("promtool check", "promtool", "prometheus"),
    }
    let tenant_label = format!("tenant=\"{tenant_id}\"");
    let requests = sum(&text, "pagecore_requests_total", &["op=\"get_page\""]);
    assert_eq!(requests, f64::from(get_pages + 1), "GetPage counter");
    let latency = sum(&text, "pagecore_latency_seconds_count", &["op=\"get_page_memory\""])
        + sum(&text, "pagecore_latency_seconds_count", &["op=\"get_page_disk\""]);
    assert_eq!(latency, f64::from(get_pages), "one latency sample per successful GetPage");
    let inf =
        sum(&text, "pagecore_latency_seconds_bucket", &["op=\"get_page_memory\"", "le=\"+Inf\""]);
    assert_eq!(inf, sum(&text, "pagecore_latency_seconds_count", &["op=\"get_page_memory\""]));
    let tenant_requests =
        sum(&text, "pagecore_tenant_requests_total", &[&tenant_label, "op=\"get_page\""]);
    assert_eq!(tenant_requests, f64::from(get_pages + 1));
    assert_eq!(
        sum(&text, "pagecore_latency_seconds_count", &["op=\"append_wal\""]),
        f64::from(appends)
    );
    assert_eq!(sum(&text, "pagecore_latency_seconds_count", &["op=\"get_pages\""]), 1.0);
    assert_eq!(sum(&text, "pagecore_pages_served_total", &[]), f64::from(get_pages + 4));
    assert_eq!(sum(&text, "pagecore_request_errors_total", &["status=\"NotFound\""]), 1.0);
    assert_eq!(sum(&text, "pagecore_tenant_wal_records_total", &[&tenant_label]), 40.0);
    let commits = sum(&text, "pagecore_wal_commits_total", &[]);
    assert!((1.0..=f64::from(appends)).contains(&commits), "{commits} group commits");
    assert_eq!(sum(&text, "pagecore_latency_seconds_count", &["op=\"wal_write_sync\""]), commits);
    assert_eq!(sum(&text, "pagecore_connections", &[]), 2.0);
    assert!(sum(&text, "pagecore_tenant_ingest_lag_bytes", &["stage=\"layers\""]) > 0.0);
    assert!(sum(&text, "pagecore_startup_duration_seconds", &[]) > 0.0);
    assert_eq!(sum(&text, "pagecore_ready", &[]), 1.0);

    // After a flush the pages come from layer files: disk reads show up.
    server.store_op(tenant_id, timeline, "flush");
    let page = reader.get_page(key(1), last, last).unwrap();
    assert_eq!(page[..], model.page_at(key(1), last).unwrap()[..]);
    let text = metrics(&server);
    assert_eq!(sum(&text, "pagecore_latency_seconds_count", &["op=\"get_page_disk\""]), 1.0);
    assert!(sum(&text, "pagecore_latency_seconds_count", &["op=\"disk_read\""]) >= 1.0);
    assert_eq!(sum(&text, "pagecore_tenant_layers", &[&tenant_label, "kind=\"delta\""]), 1.0);
    assert_eq!(sum(&text, "pagecore_tenant_ingest_lag_bytes", &["stage=\"layers\""]), 0.0);
    assert_eq!(sum(&text, "pagecore_delta_layers_written_total", &[]), 1.0);
    assert_eq!(sum(&text, "pagecore_disk_reads_in_flight", &[]), 0.0);
    server.assert_log_clean(&[]);
}

#[test]
fn tenant_series_are_bounded() {
    let server = TestServer::start_with(1, "[metrics]\nmax_tenant_series = 2\n");
    let tenants: Vec<_> = (0..4).map(|_| server.create_tenant().0.tenant_id).collect();
    let text = metrics(&server);
    let labelled: Vec<_> = tenants.iter().filter(|t| text.contains(&t.to_string())).collect();
    assert_eq!(labelled.len(), 2, "two tenants get labels");
    assert_eq!(sum(&text, "pagecore_tenant_series", &["series=\"other\""]), 2.0);
    assert!(text.contains("tenant=\"other\""));
    let (status, _, body) = get(&format!("http://{}/metrics", server.admin_addr));
    assert_eq!(status, 200);
    assert_eq!(
        tenants.iter().filter(|t| body.contains(&t.to_string())).count(),
        2,
        "the same two tenants keep their labels"
    );
}

#[test]
fn slow_requests_are_logged_with_where_the_time_went() {
    let server = start_configured(1, "slow_request_ms = 300", "");
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    writer.append_wal(&[image(0x100, 3, 7)]).unwrap();
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    // Waits for an LSN that never comes: LsnTimeout after 500 ms (the harness setting).
    let error = reader.get_page(key(3), Lsn(0x900), Lsn(0x900)).unwrap_err();
    assert_eq!(error.status(), Some(Status::LsnTimeout));
    reader.get_page(key(3), Lsn(0x100), Lsn(0x100)).unwrap();
    let log = server.log();
    let line = log.lines().find(|l| l.contains("slow request")).expect("a slow-request line");
    for field in [
        &format!("tenant={}", tenant.tenant_id),
        "op=\"get_page\"",
        "key=\"1663/5/16384 blk 3\"",
        "lsn=0/900",
        "status=\"LsnTimeout\"",
        "lsn_wait_ms=",
        "disk_ms=",
        "queued_ms=",
    ] {
        assert!(line.contains(field), "{field} missing in: {line}");
    }
    assert!(!log.contains("lsn=0/100"), "fast requests are not logged:\n{log}");
    let text = metrics(&server);
    assert!(sum(&text, "pagecore_slow_requests_total", &[]) >= 1.0);
    assert_eq!(sum(&text, "pagecore_latency_seconds_count", &["op=\"lsn_wait\""]), 1.0);
    server.assert_log_clean(&[]);
}

/// Drives reads, appends and flushes against `server` until `stop` is set.
fn generate_load(server: &TestServer, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let newest = Arc::new(AtomicU64::new(0));
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let mut lsn = 0x1000u64;
    let batch: Vec<_> = (0..64u32).map(|b| image(lsn + u64::from(b), b, u64::from(b))).collect();
    lsn += 64;
    newest.store(writer.append_wal(&batch).unwrap().0, Ordering::Release);
    let mut threads = Vec::new();
    let (stop2, newest2) = (stop.clone(), newest.clone());
    let admin = server.admin_addr.clone();
    threads.push(std::thread::spawn(move || {
        let mut round = 0u64;
        let mut flushed = Instant::now();
        while !stop2.load(Ordering::Acquire) {
            let batch: Vec<_> = (0..8u64)
                .map(|i| {
                    lsn += 0x40;
                    delta(lsn, ((round * 8 + i) % 64) as u32, (i * 100) as u16, b"dashboard")
                })
                .collect();
            newest2.store(writer.append_wal(&batch).unwrap().0, Ordering::Release);
            round += 1;
            if flushed.elapsed() > Duration::from_millis(700) {
                let url = format!("http://{admin}/v1/tenants/{tenant}/timelines/{timeline}/flush");
                ureq::post(&url).call().unwrap();
                flushed = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }));
    for reader_index in 0..2u32 {
        let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
        let (stop, newest) = (stop.clone(), newest.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = reader_index;
            while !stop.load(Ordering::Acquire) {
                let at = Lsn(newest.load(Ordering::Acquire));
                for _ in 0..16 {
                    i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    reader.send_get_page(key(i % 64), at, at);
                }
                for _ in 0..16 {
                    reader.recv().unwrap().into_result().unwrap();
                }
            }
        }));
    }
    threads
}

/// Runs Chromium headless with `args` and `url`, killing it after a minute; returns stdout.
fn chromium(binary: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// `data-points` of the element with `id` in a dumped DOM.
fn points(dom: &str, id: &str) -> u64 {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let tag_start = dom[..at].rfind('<').unwrap();
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    let value = tag.split("data-points=\"").nth(1).unwrap_or_else(|| panic!("#{id}: {tag}"));
    value.split('"').next().unwrap().parse().unwrap()
}

#[test]
fn dashboard_renders_live_data_in_headless_chromium() {
    let Some(browser) = installed("chromium").or_else(|| installed("chromium-browser")) else {
        return skip("dashboard", "chromium", "chromium");
    };
    let server = TestServer::start_with(2, "[metrics]\ndashboard_sample_ms = 250\n");
    let (status, kind, page) = get(&format!("http://{}/dashboard", server.admin_addr));
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"));
    assert!(!page.contains("http://") && !page.contains("https://"), "self-contained: no CDN");
    let stop = Arc::new(AtomicBool::new(false));
    let threads = generate_load(&server, stop.clone());
    std::thread::sleep(Duration::from_secs(4));
    let url = format!("http://{}/dashboard", server.admin_addr);
    let profile = tempfile::tempdir().unwrap();
    let dom =
        chromium(&browser, profile.path(), &["--virtual-time-budget=4000", "--dump-dom"], &url);
    let screenshot = workspace_root().join("target/dashboard.png");
    let shot_arg = format!("--screenshot={}", screenshot.display());
    chromium(
        &browser,
        profile.path(),
        &["--virtual-time-budget=4000", "--window-size=1400,1420", &shot_arg],
        &url,
    );
    stop.store(true, Ordering::Release);
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(dom.contains("<b class=\"ok\">ready</b>"), "header shows ready:\n{dom}");
    for id in [
        "lat-get_page_memory",
        "lat-get_page_disk",
        "lat-append_wal",
        "lat-wal_write_sync",
        "lat-disk_read",
        "hist-get_page_memory",
        "hist-append_wal",
        "throughput",
        "bytes",
        "cores-load",
        "cores-rps",
        "lag",
        "cache",
    ] {
        assert!(points(&dom, id) > 0, "plot #{id} has no data points");
    }
    assert!(dom.contains("<polyline"), "line plots are drawn");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "screenshot written");
    if std::env::var_os("PAGECORE_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&screenshot, workspace_root().join("deploy/dashboard.png")).unwrap();
    }
    server.assert_log_clean(&[]);
}

#[test]
fn deploy_kit_checks_out() {
    let root = workspace_root();
    // systemd unit: verified with ExecStart pointing at the binary we built (verify checks
    // that the command exists).
    match installed("systemd-analyze") {
        Some(analyze) => {
            let unit =
                std::fs::read_to_string(root.join("deploy/systemd/pagecore.service")).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let local = unit.replace("/usr/local/bin/pagecore", env!("CARGO_BIN_EXE_pagecore"));
            let path = dir.path().join("pagecore.service");
            std::fs::write(&path, local).unwrap();
            let output = Command::new(analyze).arg("verify").arg(&path).output().unwrap();
            let said = String::from_utf8_lossy(&output.stderr).to_string();
            let complaints: Vec<&str> =
                said.lines().filter(|l| l.contains("pagecore.service")).collect();
            assert!(
                output.status.success() && complaints.is_empty(),
                "systemd-analyze verify:\n{said}"
            );
        }
        None => skip("systemd-analyze verify", "systemd-analyze", "systemd"),
    }
    match installed("promtool") {
        Some(promtool) => {
            // `check config` also checks the rule file it names.
            let config = root.join("deploy/prometheus/prometheus.yml");
            let output =
                Command::new(promtool).args(["check", "config"]).arg(&config).output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
            let said = String::from_utf8_lossy(&output.stdout);
            assert!(said.contains("SUCCESS: 9 rules found"), "{said}");
        }
        None => skip("promtool check config", "promtool", "prometheus"),
    }
    // The install script lays out binary, config, unit and drop-ins (staged, no systemctl).
    let stage = tempfile::tempdir().unwrap();
    let output = Command::new("bash")
        .arg(root.join("deploy/install.sh"))
        .args([
            "--root",
            &stage.path().to_string_lossy(),
            "--binary",
            env!("CARGO_BIN_EXE_pagecore"),
        ])
        .args(["--cpus", "0-1", "--data-dir", "/srv/pagecore"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let staged = |path: &str| std::fs::read_to_string(stage.path().join(path)).unwrap();
    let config = staged("etc/pagecore/pagecore.toml");
    assert!(config.contains("cpus = [0, 1]") && config.contains("data_dir = \"/srv/pagecore\""));
    assert!(
        staged("etc/systemd/system/pagecore.service.d/10-cpus.conf").contains("CPUAffinity=0-1")
    );
    assert!(staged("etc/systemd/system/pagecore.service.d/20-data-dir.conf")
        .contains("ReadWritePaths=/srv/pagecore"));
    assert!(stage.path().join("usr/local/bin/pagecore").is_file());
    // The staged config is one the server accepts.
    let config = Config::load(&stage.path().join("etc/pagecore/pagecore.toml")).unwrap();
    assert_eq!(config.validate().unwrap().cores, 2);
}

#[test]
fn grafana_dashboard_uses_only_exported_metrics() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("deploy/grafana/pagecore.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 8);
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("pagecore_") || word.starts_with("process_") {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                used.insert(family.to_string());
            }
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    let server = TestServer::start(1);
    server.create_tenant();
    let exported = metrics(&server);
    for family in &used {
        assert!(
            exported.contains(&format!("# TYPE {family} ")),
            "the Grafana dashboard queries {family}, which /metrics does not export"
        );
    }
}

/// Every `expr` string anywhere in a Grafana dashboard.
fn collect_exprs(value: &serde_json::Value, exprs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => exprs.push(expr.clone()),
                    _ => collect_exprs(value, exprs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, exprs)),
        _ => {}
    }
}

/// The pid of `server`'s process, found by its unique config path.
fn server_pid(server: &TestServer) -> i32 {
    let config = server.dir.path().join("pagecore.toml");
    let wanted = config.to_string_lossy().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.contains(&wanted) && args.iter().any(|a| a == "serve") {
            return pid;
        }
    }
    panic!("no process serves {wanted}");
}

fn sigterm(pid: i32) {
    // SAFETY: kill(2) on the pid of the server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

#[test]
fn sigterm_answers_every_request_already_read() {
    let mut server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let record = image(0x100, 0, 42);
    writer.append_wal(std::slice::from_ref(&record)).unwrap();
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    // The first request waits for an LSN that never comes (LsnTimeout after 500 ms); the 64
    // behind it are read by the server but wait their turn.
    reader.send_get_page(key(0), Lsn(0x900), Lsn(0x900));
    for _ in 0..64 {
        reader.send_get_page(key(0), Lsn(0x100), Lsn(0x100));
    }
    reader.flush().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let stopping = Instant::now();
    sigterm(server_pid(&server));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        get(&format!("http://{}/ready", server.admin_addr)).0,
        503,
        "not ready while draining"
    );
    let first = reader.recv().unwrap();
    assert_eq!(first.status, Status::LsnTimeout);
    let mut expected = Model::default();
    expected.add(std::slice::from_ref(&record));
    let page = expected.page_at(key(0), Lsn(0x100)).unwrap();
    for i in 0..64 {
        let body = reader.recv().unwrap_or_else(|e| panic!("response {i} lost: {e}"));
        let body = body.into_result().unwrap();
        assert_eq!(body.len(), PAGE_SIZE);
        assert!(body[..] == page[..], "response {i}");
    }
    assert!(reader.recv().is_err(), "then the server closes the connection");
    drop(writer);
    server.stop();
    assert!(stopping.elapsed() < Duration::from_secs(8), "shutdown took {:?}", stopping.elapsed());
    let log = server.log();
    assert!(log.contains("core stopped: connections drained, WAL durable"), "{log}");
    assert!(log.contains("pagecore stopped"), "{log}");
    server.assert_log_clean(&[]);
}

#[test]
fn sigterm_under_append_load_keeps_every_acknowledged_append() {
    let mut server = TestServer::start(2);
    let (tenant, timeline) = server.create_tenant();
    let acknowledged = Arc::new(Mutex::new(Model::default()));
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let thread = std::thread::spawn({
        let acknowledged = acknowledged.clone();
        move || {
            let mut lsn = 0x1000u64;
            let mut ended_with = None;
            'outer: for round in 0u64.. {
                let mut batches = Vec::new();
                for b in 0..8u64 {
                    let batch: Vec<_> = (0..4u64)
                        .map(|i| {
                            lsn += 0x20;
                            let block = ((round + b + i) % 8) as u32;
                            if lsn % 5 == 0 {
                                image(lsn, block, lsn)
                            } else {
                                delta(lsn, block, 16, b"ack")
                            }
                        })
                        .collect();
                    writer.send_append_wal(&batch).unwrap();
                    batches.push(batch);
                }
                for batch in batches {
                    match writer.recv() {
                        Ok(response) => {
                            response.into_result().expect("appends read before SIGTERM succeed");
                            acknowledged.lock().unwrap().add(&batch);
                        }
                        Err(error) => {
                            ended_with = Some(error.to_string());
                            break 'outer;
                        }
                    }
                }
            }
            ended_with
        }
    });
    std::thread::sleep(Duration::from_millis(400));
    sigterm(server_pid(&server));
    let ended_with = thread.join().unwrap();
    assert!(ended_with.is_some());
    server.stop();
    let model = acknowledged.lock().unwrap().clone();
    let lsns = model.lsns();
    assert!(lsns.len() > 32, "the writer got acknowledgements before SIGTERM");
    let last = *lsns.last().unwrap();
    server.restart_clean_after_stop();
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    assert!(Lsn(reader.hello().last_lsn) >= last, "an acknowledged append was lost");
    for block in 0..8 {
        let expected = model.page_at(key(block), last);
        if let Some(expected) = expected {
            let page = reader.get_page(key(block), last, last).unwrap();
            assert!(page[..] == expected[..], "block {block} differs");
        }
    }
    let log = server.log();
    assert!(log.contains("startup_ms="), "restart time is logged");
    server.assert_log_clean(&[]);
}
