//! GetPage@LSN, GetPages and RelSize through the real server.

use crate::harness::TestServer;
use crate::support::{delta, image, key, Model, REL};
use server::proto::{Request, Role, Status};
use std::time::{Duration, Instant};
use wal::{BlockNumber, Lsn, PAGE_SIZE};

#[test]
fn reads_pages_at_old_new_and_future_lsns() {
    let server = TestServer::start(2);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let mut model = Model::default();
    let batches = [
        vec![image(0x10, 0, 1), image(0x20, 1, 2)],
        vec![delta(0x30, 0, 100, b"hello"), delta(0x40, 1, 8000, b"tail")],
        vec![image(0x50, 0, 3), delta(0x60, 0, 0, b"head")],
    ];
    for batch in &batches {
        let durable = writer.append_wal(batch).unwrap();
        assert_eq!(durable, batch.last().unwrap().lsn);
        model.add(batch);
    }
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    assert_eq!(reader.hello().last_lsn, 0x60);
    for lsn in [0x10, 0x1f, 0x20, 0x35, 0x40, 0x55, 0x60, 0x1000] {
        for block in [0, 1] {
            let expected = model.page_at(key(block), Lsn(lsn.min(0x60)));
            let got = reader.get_page(key(block), Lsn(lsn), Lsn(lsn.min(0x60)));
            match expected {
                Some(page) => assert_eq!(got.unwrap()[..], page[..], "block {block} at {lsn:#x}"),
                None => assert_eq!(got.unwrap_err().status(), Some(Status::NotFound)),
            }
        }
    }
    // Batched read of both blocks plus one beyond the relation end.
    let blocks = [BlockNumber(0), BlockNumber(1), BlockNumber(7)];
    let pages = reader.get_pages(REL, Lsn(0x40), &blocks).unwrap();
    assert_eq!(pages[0].as_ref().unwrap()[..], model.page_at(key(0), Lsn(0x40)).unwrap()[..]);
    assert_eq!(pages[1].as_ref().unwrap()[..], model.page_at(key(1), Lsn(0x40)).unwrap()[..]);
    assert_eq!(pages[2], Err(Status::NotFound));
    assert_eq!(reader.rel_size(REL, Lsn(0x10)).unwrap(), 1);
    assert_eq!(reader.rel_size(REL, Lsn(0x60)).unwrap(), 2);
    assert_eq!(reader.rel_size(REL, Lsn(0x5)).unwrap_err().status(), Some(Status::NotFound));

    // A future LSN times out after the configured 500 ms ...
    let started = Instant::now();
    let error = reader.get_page(key(0), Lsn(0x70), Lsn(0x70)).unwrap_err();
    assert_eq!(error.status(), Some(Status::LsnTimeout));
    assert!(started.elapsed() >= Duration::from_millis(450), "timed out too early");
    // ... but a future LSN that arrives while the read waits is served.
    let waiting = std::thread::spawn({
        let (addr, tenant_id) = (server.addr.clone(), tenant.tenant_id);
        move || {
            let mut reader =
                server::client::Client::connect(addr, Role::Reader, tenant_id, timeline, 0)
                    .unwrap();
            reader.get_page(key(0), Lsn(0x80), Lsn(0x80)).unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    writer.append_wal(&[delta(0x80, 0, 0, b"late")]).unwrap();
    assert_eq!(&waiting.join().unwrap()[..4], b"late");
    // Reads that only need an older LSN do not wait for newer ones (not_modified_since).
    let started = Instant::now();
    let page = reader.get_page(key(1), Lsn(0x9000), Lsn(0x40)).unwrap();
    assert_eq!(page[..], model.page_at(key(1), Lsn(0x60)).unwrap()[..]);
    assert!(started.elapsed() < Duration::from_millis(400));
    server.assert_log_clean(&[]);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let records: Vec<_> = (0..32).map(|b| image(0x100 + u64::from(b), b, u64::from(b))).collect();
    writer.append_wal(&records).unwrap();
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    let ids: Vec<u64> =
        (0..200u32).map(|i| reader.send_get_page(key(i % 40), Lsn(0x200), Lsn(0x11f))).collect();
    for (i, id) in ids.into_iter().enumerate() {
        let response = reader.recv().unwrap();
        assert_eq!(response.request_id, id);
        let block = i as u32 % 40;
        if block < 32 {
            assert_eq!(response.status, Status::Ok);
            assert_eq!(response.body[..], image(0, block, u64::from(block)).encoded_image()[..]);
        } else {
            assert_eq!(response.status, Status::NotFound);
        }
    }
}

/// A client that pipelines far more answers than the socket buffers hold and does not read
/// them stalls only itself: the server writes what the socket takes, stops handling (and
/// reading) that connection's requests while its bounded output waits, serves other
/// connections meanwhile, and answers everything in order once the client reads.
#[test]
fn a_client_that_does_not_read_its_answers_is_paused_in_order() {
    let server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let records: Vec<_> = (0..8).map(|b| image(0x100 + u64::from(b), b, u64::from(b))).collect();
    writer.append_wal(&records).unwrap();
    let mut stalled = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    // 2,000 answers are 16 MB, more than loopback's socket buffers take.
    let ids: Vec<u64> =
        (0..2000u32).map(|i| stalled.send_get_page(key(i % 8), Lsn(0x200), Lsn(0x107))).collect();
    stalled.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut other = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    let started = Instant::now();
    let page = other.get_page(key(3), Lsn(0x200), Lsn(0x107)).unwrap();
    assert_eq!(page[..], image(0, 3, 3).encoded_image()[..]);
    assert!(started.elapsed() < Duration::from_secs(1), "another connection was held up");
    for (i, id) in ids.into_iter().enumerate() {
        let response = stalled.recv().unwrap();
        assert_eq!(response.request_id, id);
        assert_eq!(response.status, Status::Ok);
        let block = i as u32 % 8;
        assert_eq!(response.body[..], image(0, block, u64::from(block)).encoded_image()[..]);
    }
    server.assert_log_clean(&[]);
}

/// Cache hits are sent straight from their frames, so the server must put a pending hit's
/// bytes in place before anything that can change the cache or await: a miss in the same
/// batch, a GetPages, a RelSize. One pipelined write mixing them all must be answered in
/// order with every byte right.
#[test]
fn hits_misses_and_other_requests_in_one_batch_are_answered_in_order() {
    let server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let records: Vec<_> = (0..8).map(|b| image(0x100 + u64::from(b), b, u64::from(b))).collect();
    writer.append_wal(&records).unwrap();
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    let lsn = Lsn(0x107);
    for block in 0..4 {
        reader.get_page(key(block), lsn, lsn).unwrap(); // cached from now on
    }
    let pages_blocks = [BlockNumber(0), BlockNumber(6), BlockNumber(1)];
    let expected_pages = reader.get_pages(REL, lsn, &pages_blocks).unwrap();
    // Hits, a miss, a hit, GetPages, a hit, RelSize, Ping, a miss, NotFound, a hit.
    let plan: [(Option<u32>, &str); 11] = [
        (Some(0), "hit"),
        (Some(1), "hit"),
        (Some(5), "miss"),
        (Some(2), "hit"),
        (None, "get_pages"),
        (Some(3), "hit"),
        (None, "rel_size"),
        (None, "ping"),
        (Some(7), "miss"),
        (Some(99), "not found"),
        (Some(0), "hit"),
    ];
    let mut ids = Vec::new();
    for (block, what) in plan {
        ids.push(match (block, what) {
            (Some(block), _) => reader.send_get_page(key(block), lsn, lsn),
            (None, "get_pages") => reader.send_get_pages(REL, lsn, &pages_blocks).unwrap(),
            (None, "rel_size") => reader.send(&Request::RelSize { rel: REL, lsn }),
            _ => reader.send(&Request::Ping),
        });
    }
    reader.flush().unwrap();
    for ((block, what), id) in plan.into_iter().zip(ids) {
        let response = reader.recv().unwrap();
        assert_eq!(response.request_id, id, "{what}");
        match (block, what) {
            (Some(99), _) => assert_eq!(response.status, Status::NotFound),
            (Some(block), _) => {
                assert_eq!(response.status, Status::Ok, "{what} {block}");
                let expected = image(0, block, u64::from(block)).encoded_image();
                assert_eq!(response.body[..], expected[..], "{what} {block}");
            }
            (None, "get_pages") => {
                assert_eq!(response.status, Status::Ok);
                let pages: Vec<_> = expected_pages.iter().map(|p| p.as_ref().unwrap()).collect();
                assert_eq!(response.body.len(), 4 + pages.len() * (4 + PAGE_SIZE));
                for (i, page) in pages.iter().enumerate() {
                    let at = 4 + i * (4 + PAGE_SIZE) + 4;
                    assert_eq!(&response.body[at..at + PAGE_SIZE], &page[..], "GetPages {i}");
                }
            }
            (None, "rel_size") => {
                assert_eq!(response.status, Status::Ok);
                assert_eq!(response.body[..4], 8u32.to_le_bytes());
            }
            _ => assert_eq!(response.status, Status::Ok, "ping"),
        }
    }
    server.assert_log_clean(&[]);
}

trait ImageBytes {
    fn encoded_image(&self) -> Vec<u8>;
}

impl ImageBytes for wal::Record {
    fn encoded_image(&self) -> Vec<u8> {
        match &self.body {
            wal::RecordBody::Image(page) => page.to_vec(),
            _ => unreachable!("only images"),
        }
    }
}
