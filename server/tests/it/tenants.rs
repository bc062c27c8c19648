//! Idle tenants are unloaded and come back on demand (issue 8, "Many tenants").

use crate::harness::TestServer;
use crate::support::{image, key};
use server::proto::Role;
use std::time::{Duration, Instant};
use wal::{Lsn, RecordBody};

/// Files of `tenant` the server has open (its WAL segment, its layer files).
fn open_files_of(server: &TestServer, tenant: wal::TenantId) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(&tenant.to_string()))
        .count()
}

#[test]
fn an_idle_tenant_is_unloaded_and_a_hello_brings_it_back() {
    let server = TestServer::start_with_top(1, "tenant_idle_unload_secs = 1\n");
    let (idle, idle_timeline) = server.create_tenant();
    let (busy, busy_timeline) = server.create_tenant();
    let records: Vec<_> = (0..6).map(|b| image(0x10 + u64::from(b), b, u64::from(b) + 7)).collect();
    server.connect(Role::Writer, idle.tenant_id, idle_timeline, 1).append_wal(&records).unwrap();
    // The busy tenant keeps a connection open: it is never unloaded.
    let mut busy_conn = server.connect(Role::Writer, busy.tenant_id, busy_timeline, 1);
    busy_conn.append_wal(&records).unwrap();
    let files_loaded = open_files_of(&server, idle.tenant_id);
    assert!(files_loaded > 0);
    let started = Instant::now();
    while !server.admin().tenant(idle.tenant_id).unwrap().unloaded {
        assert!(started.elapsed() < Duration::from_secs(10), "the idle tenant was not unloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = server.admin().tenant(idle.tenant_id).unwrap();
    assert!(info.timelines.is_empty(), "an unloaded tenant holds no timeline: {info:?}");
    assert!(!server.admin().tenant(busy.tenant_id).unwrap().unloaded);
    assert_eq!(server.metric("pagecore_tenants_unloaded_total"), 1.0);
    assert_eq!(open_files_of(&server, idle.tenant_id), 0, "{files_loaded} files were open");
    assert!(open_files_of(&server, busy.tenant_id) > 0);
    // A Hello loads it again; every page reads back, and appends go on.
    let mut reader = server.connect(Role::Reader, idle.tenant_id, idle_timeline, 0);
    let last = Lsn(0x15);
    for record in &records {
        let RecordBody::Image(page) = &record.body else { unreachable!() };
        assert!(reader.get_page(record.key, last, last).unwrap()[..] == page[..]);
    }
    assert_eq!(server.metric("pagecore_tenants_reactivated_total"), 1.0);
    assert!(!server.admin().tenant(idle.tenant_id).unwrap().unloaded);
    let mut writer = server.connect(Role::Writer, idle.tenant_id, idle_timeline, 1);
    writer.append_wal(&[image(0x20, 0, 99)]).unwrap();
    let page = reader.get_page(key(0), Lsn(0x20), Lsn(0x20)).unwrap();
    assert_eq!(page[0], {
        let RecordBody::Image(page) = image(0x20, 0, 99).body else { unreachable!() };
        page[0]
    });
    busy_conn.ping().unwrap();
    server.assert_log_clean(&[]);
}

#[test]
fn a_revoked_idle_tenant_is_loaded_once_by_its_restore() {
    let server = TestServer::start_with_top(1, "tenant_idle_unload_secs = 1\n");
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let records: Vec<_> = (0..4).map(|b| image(0x10 + u64::from(b), b, 3)).collect();
    server.connect(Role::Writer, tenant, timeline, 1).append_wal(&records).unwrap();
    let started = Instant::now();
    while !server.admin().tenant(tenant).unwrap().unloaded {
        assert!(started.elapsed() < Duration::from_secs(10), "the idle tenant was not unloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let key_op = |op: &str| {
        let url = format!("http://{}/v1/tenants/{tenant}/keys/{op}", server.admin_addr);
        ureq::post(&url).call().unwrap_or_else(|e| panic!("{op}: {e}"));
    };
    key_op("revoke");
    key_op("restore");
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let last = Lsn(0x13);
    for record in &records {
        let RecordBody::Image(page) = &record.body else { unreachable!() };
        assert!(reader.get_page(record.key, last, last).unwrap()[..] == page[..]);
    }
    // Opened when created and when restored; the Hello found it loaded (two timeline objects
    // on one WAL directory would be a second writer).
    let opened = server.log().matches(&format!("timeline recovered tenant={tenant}")).count();
    assert_eq!(opened, 2, "{}", server.log());
}
