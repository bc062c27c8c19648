//! Thread-per-core routing: a connection is served by the tenant's owner core, whichever core
//! accepted it.

use crate::harness::TestServer;
use crate::support::image;
use server::proto::Role;
use wal::Lsn;

#[test]
fn every_connection_is_served_by_the_owner_core() {
    let server = TestServer::start(2);
    let mut tenants = Vec::new();
    while !(tenants.iter().any(|(t, _): &(server::admin_client::TenantInfo, _)| t.core == 0)
        && tenants.iter().any(|(t, _)| t.core == 1))
    {
        assert!(tenants.len() < 64, "placement never used both cores");
        tenants.push(server.create_tenant());
    }
    for (tenant, timeline) in &tenants {
        let mut writer = server.connect(Role::Writer, tenant.tenant_id, *timeline, 1);
        writer.append_wal(&[image(0x10, 0, tenant.core as u64)]).unwrap();
    }
    // The kernel spreads accepts over both cores' listeners; over many connections each owner
    // core receives connections accepted on the other core and must serve them.
    for round in 0..20 {
        for (tenant, timeline) in &tenants {
            let mut reader = server.connect(Role::Reader, tenant.tenant_id, *timeline, 0);
            assert_eq!(usize::from(reader.hello().core), tenant.core, "round {round}");
            let page = reader.get_page(crate::support::key(0), Lsn(0x10), Lsn(0x10)).unwrap();
            assert_eq!(page[..], image(0, 0, tenant.core as u64).body_bytes()[..]);
        }
    }
    let handed = server.log().matches("handoff").count();
    assert_eq!(handed, 0, "handoff failures logged:\n{}", server.log());
    server.assert_log_clean(&[]);
}

trait BodyBytes {
    fn body_bytes(&self) -> Vec<u8>;
}

impl BodyBytes for wal::Record {
    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            wal::RecordBody::Image(page) => page.to_vec(),
            _ => unreachable!("only images"),
        }
    }
}
