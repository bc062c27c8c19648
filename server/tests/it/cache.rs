//! The per-core buffer cache through the real server: a cached version is served only at LSNs
//! where it is valid, newer records end it, older versions stay available, and truncations and
//! branches do not leak stale pages.

use crate::harness::TestServer;
use crate::support::{delta, image, key, FirstByte, Model, REL};
use server::proto::{Role, Status};
use wal::{Lsn, Record, RecordBody};

#[test]
fn cached_versions_are_served_only_where_valid() {
    let server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let mut model = Model::default();
    let first = [image(0x10, 0, 1)];
    writer.append_wal(&first).unwrap();
    model.add(&first);
    let hits_before = server.metric("pagecore_cache_hits_total");
    for _ in 0..3 {
        assert_eq!(
            reader.get_page(key(0), Lsn(0x10), Lsn(0x10)).unwrap()[0],
            first[0].body_first_byte()
        );
    }
    assert!(server.metric("pagecore_cache_hits_total") >= hits_before + 2.0, "repeated reads hit");
    let hit_latency = server.metric("pagecore_latency_seconds_count{op=\"get_page_cache_hit\"}");
    assert!(hit_latency >= 2.0, "cache hits are timed as their own operation");
    let tenant_hits =
        server.metric(&format!("pagecore_tenant_cache_hits_total{{tenant=\"{tenant}\"}}"));
    assert!(tenant_hits >= 2.0, "per-tenant cache hits: {tenant_hits}");
    // A newer record ends the cached version: reads at or after it see the new page.
    let second = [delta(0x20, 0, 0, b"new")];
    writer.append_wal(&second).unwrap();
    model.add(&second);
    for at in [0x20u64, 0x25, 0x1000] {
        let page = reader.get_page(key(0), Lsn(at), Lsn(0x20)).unwrap();
        assert_eq!(&page[..3], b"new", "read at {at:#x} must not return the stale version");
    }
    // Older LSNs still get the older version, cached or not.
    for _ in 0..2 {
        for at in [0x10u64, 0x1f] {
            let page = reader.get_page(key(0), Lsn(at), Lsn(at)).unwrap();
            assert!(page[..] == model.page_at(key(0), Lsn(at)).unwrap()[..], "at {at:#x}");
        }
    }
    // A record that arrives while the page is cached at the newest LSN ends it too.
    reader.get_page(key(0), Lsn(0x30), Lsn(0x20)).unwrap();
    let third = [delta(0x40, 0, 1, b"Z")];
    writer.append_wal(&third).unwrap();
    model.add(&third);
    assert_eq!(&reader.get_page(key(0), Lsn(0x40), Lsn(0x40)).unwrap()[..3], b"nZw");
    server.assert_log_clean(&[]);
}

#[test]
fn truncation_and_reextension_do_not_resurrect_cached_pages() {
    let server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let tenant = tenant.tenant_id;
    let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let pages: Vec<Record> = (0..4).map(|b| image(0x10 + u64::from(b), b, 9)).collect();
    writer.append_wal(&pages).unwrap();
    for _ in 0..2 {
        assert_eq!(
            reader.get_page(key(3), Lsn(0x13), Lsn(0x13)).unwrap()[0],
            pages[3].body_first_byte()
        );
    }
    let truncate = Record { lsn: Lsn(0x20), key: key(0), body: RecordBody::RelSize(2) };
    let extend = Record { lsn: Lsn(0x30), key: key(0), body: RecordBody::RelSize(4) };
    writer.append_wal(&[truncate, extend]).unwrap();
    let error = reader.get_page(key(3), Lsn(0x25), Lsn(0x25)).unwrap_err();
    assert_eq!(error.status(), Some(Status::NotFound));
    assert_eq!(
        reader.get_page(key(3), Lsn(0x30), Lsn(0x30)).unwrap()[..],
        [0u8; wal::PAGE_SIZE][..]
    );
    assert_eq!(
        reader.get_page(key(3), Lsn(0x13), Lsn(0x13)).unwrap()[0],
        pages[3].body_first_byte()
    );
    assert_eq!(reader.rel_size(REL, Lsn(0x30)).unwrap(), 4);
}

#[test]
fn without_a_cache_reads_still_work_and_no_cache_metrics_are_exported() {
    let server = TestServer::start_with_top(1, "cache_bytes = 0\n");
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    writer.append_wal(&[image(0x10, 0, 3)]).unwrap();
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    for _ in 0..3 {
        reader.get_page(key(0), Lsn(0x10), Lsn(0x10)).unwrap();
    }
    let text = ureq::get(&format!("http://{}/metrics", server.admin_addr))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(!text.contains("pagecore_cache_hits_total"));
}
