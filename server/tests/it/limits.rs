//! Per-tenant rate limits: a tenant over its rate gets `SlowDown` at once, other tenants on the
//! same core are not affected, and the limited tenant is served again once it slows down.

use crate::harness::TestServer;
use crate::support::{image, key};
use server::proto::{Role, Status};
use wal::{Lsn, TenantId};

const LIMITED: &str = "0000000000000000000000000000000a";
const FREE: &str = "0000000000000000000000000000000b";

#[test]
fn a_flooding_tenant_is_slowed_and_its_neighbour_is_not() {
    let config = format!(
        "[limits]\nburst_secs = 1.0\n[limits.tenants.\"{LIMITED}\"]\nget_page_per_sec = 50\n\
         wal_bytes_per_sec = 100000\n[placement]\n\"{LIMITED}\" = 0\n\"{FREE}\" = 0\n"
    );
    let server = TestServer::start_with(1, &config);
    let admin = server.admin();
    let mut readers = Vec::new();
    for id in [LIMITED, FREE] {
        let tenant: TenantId = id.parse().unwrap();
        admin.create_tenant(Some(tenant)).unwrap();
        let timeline = admin.create_timeline(tenant, None).unwrap().timeline_id;
        let mut writer = server.connect(Role::Writer, tenant, timeline, 1);
        writer.append_wal(&[image(0x10, 0, 1)]).unwrap();
        readers.push((writer, server.connect(Role::Reader, tenant, timeline, 0)));
    }
    let mut outcome = Vec::new();
    let flood_started = std::time::Instant::now();
    let mut limited_elapsed = 0.0;
    for (_, reader) in &mut readers {
        let ids: Vec<u64> =
            (0..300).map(|_| reader.send_get_page(key(0), Lsn(0x10), Lsn(0x10))).collect();
        let mut counts = (0, 0);
        for id in ids {
            let response = reader.recv().unwrap();
            assert_eq!(response.request_id, id);
            match response.status {
                Status::Ok => counts.0 += 1,
                Status::SlowDown => counts.1 += 1,
                other => panic!("unexpected {other}"),
            }
        }
        outcome.push(counts);
        if outcome.len() == 1 {
            limited_elapsed = flood_started.elapsed().as_secs_f64();
        }
    }
    let (limited_ok, limited_slowed) = outcome[0];
    // At most the burst (50) plus what 50/s refilled while the requests were answered.
    let allowed = 50.0 + 50.0 * limited_elapsed + 1.0;
    assert!(
        limited_slowed > 0 && f64::from(limited_ok) <= allowed,
        "limited tenant: {outcome:?} in {limited_elapsed:.3} s"
    );
    assert_eq!(outcome[1], (300, 0), "the other tenant is not limited");
    // After a pause the limited tenant is served again.
    std::thread::sleep(std::time::Duration::from_millis(200));
    readers[0].1.get_page(key(0), Lsn(0x10), Lsn(0x10)).unwrap();
    // WAL bytes: the bucket holds 100 kB; a second 82 kB batch right after a first is refused
    // with SlowDown (nothing appended), while the neighbour appends freely.
    let batch = |first: u64| -> Vec<_> { (0..10).map(|b| image(first + b, b as u32, 2)).collect() };
    readers[0].0.append_wal(&batch(0x100)).unwrap();
    let error = readers[0].0.append_wal(&batch(0x200)).unwrap_err();
    assert_eq!(error.status(), Some(Status::SlowDown), "{error}");
    for round in 0..3 {
        readers[1].0.append_wal(&batch(0x100 + round * 0x100)).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(900));
    readers[0].0.append_wal(&batch(0x200)).unwrap();
}
