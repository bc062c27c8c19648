//! Bad input gets its defined error, and the server keeps serving everyone else.

use crate::harness::TestServer;
use crate::support::{image, key};
use server::client::{Client, ClientError};
use server::proto::{Role, Status};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use wal::{Lsn, TenantId, TimelineId};

/// Sends raw bytes on a fresh socket and returns everything the server sends before closing.
fn raw_exchange(server: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Status code and tag of the first frame in `bytes`.
fn first_status(bytes: &[u8]) -> (u8, u16) {
    assert!(bytes.len() >= 20, "no complete response: {bytes:?}");
    (bytes[4], u16::from_le_bytes([bytes[16], bytes[17]]))
}

#[test]
fn broken_framing_gets_a_protocol_error_and_close() {
    let server = TestServer::start(2);
    // A frame length below the header size.
    let answer = raw_exchange(&server, &[3, 0, 0, 0, 0xde, 0xad, 0xbe]);
    assert_eq!(first_status(&answer), (0xBF, Status::ProtocolError as u16));
    // A frame length above the maximum.
    let answer = raw_exchange(&server, &(64u32 << 20).to_le_bytes());
    assert_eq!(first_status(&answer), (0xBF, Status::ProtocolError as u16));
    // A well-framed first frame that is not Hello.
    let mut ping = Vec::new();
    server::proto::Request::Ping.encode(1, &mut ping);
    let answer = raw_exchange(&server, &ping);
    assert_eq!(first_status(&answer), (0xBF, Status::ProtocolError as u16));
    // Pure garbage.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let answer = raw_exchange(&server, &garbage);
    assert_eq!(answer[4], 0xBF);
    // The server still serves.
    let (tenant, timeline) = server.create_tenant();
    server.connect(Role::Reader, tenant.tenant_id, timeline, 0).ping().unwrap();
    server.assert_log_clean(&[]);
}

#[test]
fn unknown_tenant_and_timeline_are_refused() {
    let server = TestServer::start(2);
    let error = Client::connect(
        &server.addr,
        Role::Reader,
        TenantId::from_u128(42),
        TimelineId::from_u128(1),
        0,
    )
    .err()
    .unwrap();
    assert_eq!(error.status(), Some(Status::UnknownTimeline), "{error}");
    let (tenant, _) = server.create_tenant();
    let error =
        Client::connect(&server.addr, Role::Reader, tenant.tenant_id, TimelineId::from_u128(1), 0)
            .err()
            .unwrap();
    assert_eq!(error.status(), Some(Status::UnknownTimeline));
}

#[test]
fn bad_requests_are_answered_in_band_and_the_connection_goes_on() {
    let server = TestServer::start(2);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 5);
    writer.append_wal(&[image(0x100, 0, 1)]).unwrap();
    // LSN regression and repetition: LsnOutOfOrder, nothing appended.
    let error = writer.append_wal(&[image(0x200, 0, 2), image(0x90, 1, 2)]).unwrap_err();
    assert_eq!(error.status(), Some(Status::LsnOutOfOrder), "{error}");
    let error = writer.append_wal(&[image(0x100, 0, 2)]).unwrap_err();
    assert_eq!(error.status(), Some(Status::LsnOutOfOrder));
    // Unknown request tag, with a valid frame around it.
    let mut frame = Vec::new();
    server::proto::Request::Ping.encode(77, &mut frame);
    frame[4] = 0x3e;
    writer.send_raw(&frame).unwrap();
    let response = writer.recv().unwrap();
    assert_eq!((response.request_id, response.status), (77, Status::BadRequest));
    // A GetPage whose not_modified_since is after request_lsn, and LSN 0.
    let error = writer.get_page(key(0), Lsn(0x10), Lsn(0x20)).unwrap_err();
    assert_eq!(error.status(), Some(Status::BadRequest));
    let error = writer.get_page(key(0), Lsn(0), Lsn(0)).unwrap_err();
    assert_eq!(error.status(), Some(Status::BadRequest));
    // The connection still works, and the batch with the regression left no trace.
    assert_eq!(writer.get_page(key(0), Lsn(0x200), Lsn(0x100)).unwrap()[..], *image_bytes(1));
    assert_eq!(writer.rel_size(crate::support::REL, Lsn(0x100)).unwrap(), 1);
    // Readers cannot append.
    let mut reader = server.connect(Role::Reader, tenant.tenant_id, timeline, 0);
    let error = reader.append_wal(&[image(0x300, 0, 3)]).unwrap_err();
    assert_eq!(error.status(), Some(Status::Unauthorized));
    server.assert_log_clean(&[]);
}

fn image_bytes(seed: u64) -> Box<[u8]> {
    match image(1, 0, seed).body {
        wal::RecordBody::Image(page) => page,
        _ => unreachable!(),
    }
}

#[test]
fn a_newer_writer_term_fences_the_old_writer() {
    let mut server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut old = server.connect(Role::Writer, tenant.tenant_id, timeline, 3);
    old.append_wal(&[image(0x10, 0, 1)]).unwrap();
    let mut new = server.connect(Role::Writer, tenant.tenant_id, timeline, 4);
    let error = old.append_wal(&[image(0x20, 0, 2)]).unwrap_err();
    assert_eq!(error.status(), Some(Status::Fenced), "{error}");
    new.append_wal(&[image(0x20, 0, 3)]).unwrap();
    // A stale term cannot even connect, also after a restart (the term is durable).
    let stale =
        Client::connect(&server.addr, Role::Writer, tenant.tenant_id, timeline, 3).err().unwrap();
    assert_eq!(stale.status(), Some(Status::Fenced));
    drop((old, new));
    server.restart_clean();
    let stale =
        Client::connect(&server.addr, Role::Writer, tenant.tenant_id, timeline, 3).err().unwrap();
    assert!(matches!(stale, ClientError::Server { status: Status::Fenced, .. }));
    let mut again = server.connect(Role::Writer, tenant.tenant_id, timeline, 4);
    assert_eq!(again.hello().writer_term, 4);
    again.append_wal(&[image(0x30, 0, 4)]).unwrap();
}

/// The client refuses a batch that cannot fit one frame instead of panicking (found while
/// writing PROTOCOL.md: 128 page images exceed the 1 MiB frame limit).
#[test]
fn the_client_refuses_oversized_requests() {
    let server = TestServer::start(1);
    let (tenant, timeline) = server.create_tenant();
    let mut writer = server.connect(Role::Writer, tenant.tenant_id, timeline, 1);
    let images: Vec<_> = (0..200).map(|b| image(0x10 + u64::from(b), b, 1)).collect();
    assert!(matches!(writer.append_wal(&images), Err(ClientError::TooLarge(_))));
    let blocks: Vec<_> = (0..65).map(wal::BlockNumber).collect();
    assert!(matches!(
        writer.get_pages(crate::support::REL, Lsn(1), &blocks),
        Err(ClientError::TooLarge(_))
    ));
    // The connection is untouched and the halves fit.
    writer.append_wal(&images[..100]).unwrap();
    writer.append_wal(&images[100..]).unwrap();
}
