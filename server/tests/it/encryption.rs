//! Encryption at rest with customer-managed keys through the real server (issue 6): nothing
//! of a page reaches the disk in plaintext (WAL included), revocation by the admin API and by
//! the provider, KEK and CMK rotation, the `command` provider, and tampering.

use crate::harness::TestServer;
use server::client::Client;
use server::proto::{Role, Status};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wal::{BlockNumber, Delta, Lsn, PageKey, Record, RecordBody, TenantId, TimelineId, PAGE_SIZE};

const MARKER: &[u8] = b"PAGECORE-SECRET-MARKER-5f1e";

/// Small flush thresholds and a fast provider re-check.
const STORE: &str = "[store]\nflush_threshold_bytes = 32768\nflush_interval_ms = 200\n\
    background_tick_ms = 50\n";

/// [`STORE`] with new tenants encrypted under the built-in development keyring.
const SEALED: &str = "[store]\nflush_threshold_bytes = 32768\nflush_interval_ms = 200\n\
    background_tick_ms = 50\n[encryption]\nprovider = \"dev\"\n";

fn marker_page(seed: u8) -> Box<[u8; PAGE_SIZE]> {
    let mut page = Box::new([seed; PAGE_SIZE]);
    for chunk in page.chunks_mut(256) {
        chunk[..MARKER.len()].copy_from_slice(MARKER);
    }
    page
}

fn key(block: u32) -> PageKey {
    PageKey { rel: crate::support::REL, block: BlockNumber(block) }
}

/// Appends an image holding the marker for blocks `0..blocks`, then a delta writing the marker
/// into block 0; returns the last LSN.
fn write_marked(writer: &mut Client, first_lsn: u64, blocks: u32) -> Lsn {
    let mut lsn = first_lsn;
    let mut batch = Vec::new();
    for block in 0..blocks {
        lsn += 0x10;
        batch.push(Record {
            lsn: Lsn(lsn),
            key: key(block),
            body: RecordBody::Image(marker_page(block as u8)),
        });
    }
    lsn += 0x10;
    let delta = Delta::from_patches([(4000u16, MARKER)]).unwrap();
    batch.push(Record { lsn: Lsn(lsn), key: key(0), body: RecordBody::Delta(delta) });
    writer.append_wal(&batch).unwrap()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

fn create(server: &TestServer, body: serde_json::Value) -> (TenantId, TimelineId) {
    let url = format!("http://{}/v1/tenants", server.admin_addr);
    let reply: serde_json::Value = ureq::post(&url)
        .send_json(body)
        .unwrap_or_else(|e| panic!("creating tenant: {e}"))
        .into_json()
        .unwrap();
    let tenant: TenantId = reply["tenant_id"].as_str().unwrap().parse().unwrap();
    let timeline = server.admin().create_timeline(tenant, None).unwrap().timeline_id;
    (tenant, timeline)
}

fn key_op(server: &TestServer, tenant: TenantId, op: &str) -> Result<serde_json::Value, String> {
    let url = format!("http://{}/v1/tenants/{tenant}/keys/{op}", server.admin_addr);
    match ureq::post(&url).call() {
        Ok(response) => Ok(response.into_json().unwrap()),
        Err(ureq::Error::Status(code, response)) => {
            Err(format!("{code}: {}", response.into_string().unwrap_or_default()))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn manifest(server: &TestServer, tenant: TenantId) -> serde_json::Value {
    let path = server.dir.path().join("data/tenants").join(tenant.to_string()).join("keys.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

#[test]
fn no_page_byte_reaches_the_disk_in_plaintext() {
    let mut server = TestServer::start_with(1, SEALED);
    let (secret, secret_tl) = create(&server, serde_json::json!({}));
    let (plain, plain_tl) = create(&server, serde_json::json!({ "key_provider": "none" }));
    for (tenant, timeline) in [(secret, secret_tl), (plain, plain_tl)] {
        let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
        let last = write_marked(&mut writer, 0x100, 24);
        server.store_op(tenant, timeline, "flush");
        server.store_op(tenant, timeline, "compact");
        // More WAL after the flush, so the scan also covers live WAL segments.
        write_marked(&mut writer, last.0, 4);
    }
    server.stop();
    let data = server.dir.path().join("data");
    let secret_dir = data.join("tenants").join(secret.to_string());
    let plain_dir = data.join("tenants").join(plain.to_string());
    assert!(
        files_containing(&secret_dir, MARKER).is_empty(),
        "plaintext of an encrypted tenant on disk"
    );
    // The scan can fail: the plaintext tenant's WAL and layers show the marker.
    let plain_hits = files_containing(&plain_dir, MARKER);
    assert!(plain_hits.iter().any(|p| p.to_string_lossy().contains("/wal/")), "{plain_hits:?}");
    assert!(plain_hits.iter().any(|p| p.to_string_lossy().contains("/layers/")), "{plain_hits:?}");
    // And the encrypted tenant reads back whole after a restart.
    server.restart_clean_after_stop();
    let mut reader = server.connect(Role::Reader, secret, secret_tl, 0);
    let last = Lsn(reader.hello().last_lsn);
    assert_eq!(reader.get_page(key(3), last, last).unwrap()[..], marker_page(3)[..]);
    let info = server.admin().tenant(secret).unwrap();
    assert!(info.keys.encrypted && info.keys.available, "{:?}", info.keys);
}

#[test]
fn revocation_stops_reads_within_a_second_and_restore_brings_the_tenant_back() {
    let mut server = TestServer::start_with(1, SEALED);
    let (tenant, timeline) = create(&server, serde_json::json!({}));
    let (other, other_tl) = create(&server, serde_json::json!({}));
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let last = write_marked(&mut writer, 0x100, 8);
    server.store_op(tenant, timeline, "flush");
    let mut other_writer = server.connect(Role::Writer, other, other_tl, 1);
    let other_last = write_marked(&mut other_writer, 0x100, 8);
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    // Warm the cache: after revocation nothing may come from it.
    for block in 0..8 {
        reader.get_page(key(block), last, last).unwrap();
    }
    let started = Instant::now();
    key_op(&server, tenant, "revoke").unwrap();
    let error = reader.get_page(key(1), last, last).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.status(), Some(Status::KeyUnavailable), "{error}");
    assert!(elapsed < Duration::from_secs(1), "revocation took {elapsed:?}");
    let append = writer.append_wal(&[crate::support::image(last.0 + 0x10, 1, 9)]).unwrap_err();
    assert_eq!(append.status(), Some(Status::KeyUnavailable), "{append}");
    let hello = Client::connect(&server.addr, Role::Reader, tenant, timeline, 0).err().unwrap();
    assert_eq!(hello.status(), Some(Status::KeyUnavailable), "{hello}");
    // The other tenant is unaffected.
    let page = other_writer.get_page(key(2), other_last, other_last).unwrap();
    assert_eq!(page[..], marker_page(2)[..]);
    let status = server.admin().tenant(tenant).unwrap().keys;
    assert!(!status.available && status.kek_generation.is_none(), "{status:?}");
    // An admin revocation survives a restart.
    server.restart_clean();
    let hello = Client::connect(&server.addr, Role::Reader, tenant, timeline, 0).err().unwrap();
    assert_eq!(hello.status(), Some(Status::KeyUnavailable), "{hello}");
    key_op(&server, tenant, "restore").unwrap();
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    for block in 0..8 {
        let page = reader.get_page(key(block), last, last).unwrap();
        let mut expected = marker_page(block as u8);
        if block == 0 {
            expected[4000..4000 + MARKER.len()].copy_from_slice(MARKER);
        }
        assert_eq!(page[..], expected[..], "block {block} after restore");
    }
    let mut writer = server.connect(Role::Writer, tenant, timeline, 2);
    writer.append_wal(&[crate::support::image(last.0 + 0x10, 1, 9)]).unwrap();
}

/// A keyring file outside the data directory, as an operator would keep it.
fn keyring_server(dir: &Path, check_ms: u64) -> (TestServer, PathBuf) {
    let keyring = dir.join("keyring.toml");
    std::fs::write(&keyring, keyring_text(&[1])).unwrap();
    let extra = format!(
        "{STORE}[encryption]\nprovider = \"ring\"\ncheck_interval_ms = {check_ms}\n\
         [encryption.providers.ring]\nkind = \"file\"\npath = {keyring:?}\n"
    );
    (TestServer::start_with(1, &extra), keyring)
}

fn keyring_text(versions: &[u32]) -> String {
    versions
        .iter()
        .map(|v| {
            format!(
                "[[keys]]\nname = \"default\"\nversion = {v}\nkey = \"{}\"\n",
                format!("{v:02x}").repeat(32)
            )
        })
        .collect()
}

#[test]
fn a_key_removed_from_the_provider_revokes_and_putting_it_back_restores() {
    let keys_dir = tempfile::tempdir().unwrap();
    let (server, keyring) = keyring_server(keys_dir.path(), 200);
    let (tenant, timeline) = create(&server, serde_json::json!({}));
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let last = write_marked(&mut writer, 0x100, 4);
    server.store_op(tenant, timeline, "flush");
    std::fs::write(&keyring, "# the customer revoked the key\n").unwrap();
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let took = wait_until("provider revocation", Duration::from_secs(2), || {
        reader
            .get_page(key(1), last, last)
            .is_err_and(|e| e.status() == Some(Status::KeyUnavailable))
    });
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let reason = server.admin().tenant(tenant).unwrap().keys.unavailable_reason.unwrap();
    assert!(reason.contains("not in the keyring"), "{reason}");
    std::fs::write(&keyring, keyring_text(&[1])).unwrap();
    wait_until("automatic restore", Duration::from_secs(5), || {
        server.admin().tenant(tenant).unwrap().keys.available
    });
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    assert_eq!(reader.get_page(key(2), last, last).unwrap()[..], marker_page(2)[..]);
}

#[test]
fn rotation_rewraps_keys_without_touching_data() {
    let keys_dir = tempfile::tempdir().unwrap();
    let (mut server, keyring) = keyring_server(keys_dir.path(), 0);
    let (tenant, timeline) = create(&server, serde_json::json!({}));
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let last = write_marked(&mut writer, 0x100, 6);
    server.store_op(tenant, timeline, "flush");
    let layers = server.timeline_dir(tenant, timeline).join("layers");
    let layer_bytes = |dir: &Path| -> Vec<Vec<u8>> {
        let mut files: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let before_files = layer_bytes(&layers);
    let before = manifest(&server, tenant);
    let after = key_op(&server, tenant, "rotate-kek").unwrap();
    assert_eq!(after["keys"]["kek_generation"], 2, "{after}");
    let rotated = manifest(&server, tenant);
    assert_ne!(rotated["kek"]["wrapped"], before["kek"]["wrapped"]);
    let (old, new) = (before["deks"].as_object().unwrap(), rotated["deks"].as_object().unwrap());
    assert!(!old.is_empty());
    for (file, wrapped) in old {
        assert_ne!(new.get(file), Some(wrapped), "data key of {file} not rewrapped");
    }
    let manifest_text = std::fs::read_to_string(
        server.dir.path().join("data/tenants").join(tenant.to_string()).join("keys.json"),
    )
    .unwrap();
    for wrapped in old.values() {
        assert!(
            !manifest_text.contains(wrapped.as_str().unwrap()),
            "an old wrapped key is still on disk"
        );
    }
    assert_eq!(layer_bytes(&layers), before_files, "rotation rewrote data");
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    assert_eq!(reader.get_page(key(4), last, last).unwrap()[..], marker_page(4)[..]);
    // CMK rotation: the customer adds version 2, pagecore rewraps, version 1 is retired.
    std::fs::write(&keyring, keyring_text(&[1, 2])).unwrap();
    let kek_before = manifest(&server, tenant)["kek"]["wrapped"].clone();
    key_op(&server, tenant, "rotate-cmk").unwrap();
    assert_ne!(manifest(&server, tenant)["kek"]["wrapped"], kek_before);
    std::fs::write(&keyring, keyring_text(&[2])).unwrap();
    server.restart_clean();
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    assert_eq!(reader.get_page(key(4), last, last).unwrap()[..], marker_page(4)[..]);
    let mut writer = server.connect(Role::Writer, tenant, timeline, 2);
    writer.append_wal(&[crate::support::image(last.0 + 0x10, 1, 9)]).unwrap();
}

/// A KMS stand-in: wraps with AES-256-CBC under its own key file using the `openssl` CLI,
/// refuses while a `revoked` file exists beside it, and appends each call to `calls.log`.
fn kms_script(dir: &Path) -> PathBuf {
    let script = dir.join("kms.sh");
    let key = dir.join("kms.key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let text = format!(
        "#!/bin/sh\nset -e\nop=$1\ncmk=$2\nkey=$(cat {key:?})\necho \"$op $cmk\" >> {calls:?}\n\
         if [ -e {revoked:?} ]; then echo \"CMK $cmk is disabled\" >&2; exit 3; fi\n\
         read -r input\n\
         case $op in\n\
         wrap) iv=$(openssl rand -hex 16); ct=$(printf %s \"$input\" | xxd -r -p | openssl enc -aes-256-cbc -K $key -iv $iv | xxd -p | tr -d '\\n'); echo \"$iv$ct\" ;;\n\
         unwrap) iv=$(printf %s \"$input\" | cut -c1-32); ct=$(printf %s \"$input\" | cut -c33-); printf %s \"$ct\" | xxd -r -p | openssl enc -d -aes-256-cbc -K $key -iv $iv | xxd -p | tr -d '\\n'; echo ;;\n\
         *) echo \"unknown op $op\" >&2; exit 2 ;;\n\
         esac\n",
        revoked = dir.join("revoked"),
        calls = dir.join("calls.log"),
    );
    std::fs::write(&script, text).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    script
}

#[test]
fn a_command_provider_serves_as_the_cmk_holder() {
    let kms_dir = tempfile::tempdir().unwrap();
    let script = kms_script(kms_dir.path());
    let extra = format!(
        "{STORE}[encryption]\nprovider = \"kms\"\ncheck_interval_ms = 200\n\
         [encryption.providers.kms]\nkind = \"command\"\ncommand = [{script:?}]\n\
         [encryption.providers.broken]\nkind = \"command\"\ncommand = [\"/nonexistent/kms\"]\n"
    );
    let mut server = TestServer::start_with(1, &extra);
    let (tenant, timeline) = create(&server, serde_json::json!({ "cmk": "tenant-a" }));
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let last = write_marked(&mut writer, 0x100, 4);
    server.store_op(tenant, timeline, "flush");
    server.restart_clean();
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    assert_eq!(reader.get_page(key(2), last, last).unwrap()[..], marker_page(2)[..]);
    // Two more tenants under the same CMK: the periodic check asks the KMS once per interval
    // for all three, not once per tenant.
    create(&server, serde_json::json!({ "cmk": "tenant-a" }));
    create(&server, serde_json::json!({ "cmk": "tenant-a" }));
    let unwraps = || {
        let log = std::fs::read_to_string(kms_dir.path().join("calls.log")).unwrap_or_default();
        log.lines().filter(|l| l.starts_with("unwrap")).count()
    };
    let (before, started) = (unwraps(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (calls, intervals) = (unwraps() - before, started.elapsed().as_millis() / 200);
    assert!(
        calls as u128 <= intervals + 2,
        "{calls} KMS unwraps in {intervals} check intervals for 3 tenants under one CMK"
    );
    // The KMS disables the key: the tenant goes unavailable, then comes back.
    std::fs::write(kms_dir.path().join("revoked"), "").unwrap();
    wait_until("command provider refusal", Duration::from_secs(3), || {
        reader
            .get_page(key(1), last, last)
            .is_err_and(|e| e.status() == Some(Status::KeyUnavailable))
    });
    let reason = server.admin().tenant(tenant).unwrap().keys.unavailable_reason.unwrap();
    assert!(reason.contains("is disabled"), "the provider's reason reaches the operator: {reason}");
    std::fs::remove_file(kms_dir.path().join("revoked")).unwrap();
    wait_until("command provider restore", Duration::from_secs(5), || {
        server.admin().tenant(tenant).unwrap().keys.available
    });
    // A provider that cannot run: tenant creation fails with a clear error and leaves nothing.
    let url = format!("http://{}/v1/tenants", server.admin_addr);
    let error =
        ureq::post(&url).send_json(serde_json::json!({ "key_provider": "broken" })).unwrap_err();
    let ureq::Error::Status(code, response) = error else { panic!("{error}") };
    let body = response.into_string().unwrap();
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("broken") && body.contains("/nonexistent/kms"), "{body}");
    let tenants = std::fs::read_dir(server.dir.path().join("data/tenants")).unwrap().count();
    assert_eq!(tenants, 3, "a failed creation left a tenant directory behind");
}

#[test]
fn a_modified_ciphertext_byte_is_corrupt_never_plaintext_garbage() {
    let mut server = TestServer::start_with(1, SEALED);
    let (tenant, timeline) = create(&server, serde_json::json!({}));
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let last = write_marked(&mut writer, 0x100, 4);
    server.store_op(tenant, timeline, "flush");
    server.stop();
    let layers = server.timeline_dir(tenant, timeline).join("layers");
    let layer = std::fs::read_dir(&layers).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&layer).unwrap();
    // Every page of block 0..4 lies in the data region after the 4 KiB header: damage them all.
    for page in 0..4 {
        bytes[4096 + page * PAGE_SIZE + 777] ^= 0x40;
    }
    std::fs::write(&layer, &bytes).unwrap();
    server.restart_clean_after_stop();
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    for block in 1..4 {
        let error = reader.get_page(key(block), last, last).unwrap_err();
        assert_eq!(error.status(), Some(Status::Corrupt), "block {block}: {error}");
    }
}
