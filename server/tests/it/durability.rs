//! Nothing acknowledged is lost: clean restarts, kill -9 under load, and torn WAL tails.

use crate::harness::TestServer;
use crate::support::{delta, image, key, Model};
use server::proto::Role;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wal::{Lsn, PAGE_SIZE};

/// Checks every page at every LSN the model knows.
fn verify(server: &TestServer, tenant: wal::TenantId, timeline: wal::TimelineId, model: &Model) {
    let mut reader = server.connect(Role::Reader, tenant, timeline, 0);
    let lsns = model.lsns();
    let last = *lsns.last().unwrap();
    assert!(Lsn(reader.hello().last_lsn) >= last, "server lost acknowledged records");
    for key in model.keys().collect::<Vec<_>>() {
        for &lsn in lsns.iter().step_by(3).chain(std::iter::once(&last)) {
            let expected = model.page_at(key, lsn);
            let got = reader.get_page(key, lsn, lsn);
            match expected {
                Some(page) => {
                    assert!(got.unwrap()[..] == page[..], "{key} at {lsn} differs from the model")
                }
                None => assert!(got.is_err(), "{key} at {lsn} must not exist"),
            }
        }
    }
}

fn workload(round: u64) -> Vec<wal::Record> {
    // 6 records per round across 4 blocks: images now and then, deltas otherwise. With 64 KiB
    // segments every few rounds cross a segment boundary.
    (0..6)
        .map(|i| {
            let lsn = 0x1000 + round * 0x100 + i * 0x10;
            let block = ((round + i) % 4) as u32;
            if (round + i) % 5 == 0 || round == 0 {
                image(lsn, block, lsn)
            } else {
                delta(lsn, block, ((lsn * 13) % 8000) as u16, format!("r{round}i{i}").as_bytes())
            }
        })
        .collect()
}

#[test]
fn clean_restart_keeps_every_acknowledged_record() {
    let mut server = TestServer::start(2);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let mut model = Model::default();
    for round in 0..40 {
        let batch = workload(round);
        writer.append_wal(&batch).unwrap();
        model.add(&batch);
    }
    drop(writer);
    server.restart_clean();
    verify(&server, tenant.tenant_id, timeline, &model);
    // Appends continue after the restart, with a term at least the old one.
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let batch = workload(40);
    writer.append_wal(&batch).unwrap();
    model.add(&batch);
    server.restart_clean();
    verify(&server, tenant.tenant_id, timeline, &model);
    assert!(server.log().contains("case=\"clean-end\""));
    server.assert_log_clean(&[]);
}

#[test]
fn kill9_under_load_loses_nothing_acknowledged() {
    let mut server = TestServer::start(2);
    let (tenant, timeline) = server.create_tenant();
    let acknowledged = Arc::new(Mutex::new(Model::default()));
    let in_flight = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer_thread = std::thread::spawn({
        let (addr, acknowledged, in_flight, stop) =
            (server.addr.clone(), acknowledged.clone(), in_flight.clone(), stop.clone());
        let tenant_id = tenant.tenant_id;
        move || {
            let mut writer =
                server::client::Client::connect(addr, Role::Writer, tenant_id, timeline, 1)
                    .unwrap();
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let batch = workload(round);
                *in_flight.lock().unwrap() = batch.clone();
                match writer.append_wal(&batch) {
                    Ok(_) => acknowledged.lock().unwrap().add(&batch),
                    Err(_) => return round, // the server died under us: not acknowledged
                }
                round += 1;
            }
            round
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let rounds = writer_thread.join().unwrap();
    assert!(rounds > 5, "the writer made too little progress ({rounds} rounds)");
    server.restart_after_kill9();
    // The batch in flight at the kill was not acknowledged: it may be durable or not, but all
    // or nothing of it.
    let mut model = acknowledged.lock().unwrap().clone();
    let acked_last = *model.lsns().last().unwrap();
    let in_flight = in_flight.lock().unwrap().clone();
    let recovered_last = {
        let reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
        Lsn(reader.hello().last_lsn)
    };
    if recovered_last != acked_last {
        assert_eq!(recovered_last, in_flight.last().unwrap().lsn, "a batch was half recovered");
        model.add(&in_flight);
    }
    verify(&server, tenant.tenant_id, timeline, &model);
    // Writes go on after the crash, and survive another one.
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 2);
    let next = writer.hello().last_lsn / 0x100 + 1;
    let batch: Vec<_> = workload(next).into_iter().collect();
    writer.append_wal(&batch).unwrap();
    model.add(&batch);
    server.restart_after_kill9();
    verify(&server, tenant.tenant_id, timeline, &model);
}

#[test]
fn torn_wal_tail_is_cut_and_appends_continue() {
    let mut server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let mut model = Model::default();
    for round in 0..3 {
        let batch = workload(round);
        writer.append_wal(&batch).unwrap();
        model.add(&batch);
    }
    drop(writer);
    server.stop();
    // A torn write: garbage that looks like the start of a frame right after the last record.
    let wal_dir = server
        .dir
        .path()
        .join("data/tenants")
        .join(tenant.tenant_id.to_string())
        .join("timelines")
        .join(timeline.to_string())
        .join("wal");
    let mut segments: Vec<_> =
        std::fs::read_dir(&wal_dir).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    // The end of the written frames, found by walking their lengths (the last written byte may
    // itself be zero: a checksum ending in 0x00 once made "the last non-zero byte" cut into the
    // last frame, and the test then lost the batch it had just had acknowledged).
    let mut end = wal::segment::DATA_START as usize;
    loop {
        let len = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        end += len;
    }
    bytes[end..end + 4].copy_from_slice(&200u32.to_le_bytes());
    bytes[end + 8..end + 200].fill(0xAB);
    std::fs::write(last, &bytes).unwrap();
    server.restart_clean_after_stop();
    assert!(server.log().contains("case=\"torn-tail\""), "{}", server.log());
    verify(&server, tenant.tenant_id, timeline, &model);
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let batch = workload(3);
    writer.append_wal(&batch).unwrap();
    model.add(&batch);
    drop(writer);
    server.restart_after_kill9();
    verify(&server, tenant.tenant_id, timeline, &model);
    let page = model.page_at(key(0), Lsn(u64::MAX)).unwrap();
    assert_eq!(page.len(), PAGE_SIZE);
}
