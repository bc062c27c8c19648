//! Writes the seed corpus of the wire fuzz target from real encodings: one stream per request
//! kind and a few responses. `cargo run --example write_seeds` (from `server/fuzz/`); seeds are
//! small and committed; rerun after a protocol change and commit the result.

use server::proto::request::{block_list, record_list};
use server::proto::response::{begin_ok, encode_error, finish, HelloOk};
use server::proto::{Hello, Request, Role, Status, Tag};
use std::path::Path;
use wal::{
    BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, TenantId, TimelineId,
};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/frame_decode");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let rel = RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main };
    let key = PageKey { rel, block: BlockNumber(3) };

    // A writer's session as one stream: Hello, Ping, AppendWal.
    let mut stream = Vec::new();
    let hello = Hello::new(Role::Writer, TenantId([0x11; 16]), TimelineId([0x22; 16]), 1);
    Request::Hello(hello).encode(1, &mut stream);
    Request::Ping.encode(2, &mut stream);
    let delta = Delta::from_patches([(16u16, &b"abc"[..])]).unwrap();
    let records = [
        Record { lsn: Lsn(0x100), key, body: RecordBody::Delta(delta) },
        Record { lsn: Lsn(0x200), key, body: RecordBody::RelSize(4) },
    ];
    let mut storage = Vec::new();
    Request::AppendWal { records: record_list(&records, &mut storage) }.encode(3, &mut stream);
    write("writer-session", &stream);

    // A reader's requests.
    let mut stream = Vec::new();
    let lsn = Lsn(0x200);
    Request::GetPage { key, request_lsn: lsn, not_modified_since: Lsn(0x100) }
        .encode(4, &mut stream);
    let mut storage = Vec::new();
    let blocks = block_list(&[BlockNumber(0), BlockNumber(7)], &mut storage);
    Request::GetPages { rel, lsn, blocks }.encode(5, &mut stream);
    Request::RelSize { rel, lsn }.encode(6, &mut stream);
    write("reader-requests", &stream);

    // Responses: HelloOk, an error, and a GetPages answer with one missing block (no page, so
    // the seed stays small).
    let mut stream = Vec::new();
    let start = begin_ok(&mut stream, Tag::Hello.response(), 1);
    HelloOk { protocol_version: 1, core: 0, last_lsn: 0x200, writer_term: 1 }.encode(&mut stream);
    finish(&mut stream, start);
    encode_error(
        &mut stream,
        Tag::GetPage.response(),
        4,
        Status::LsnTooOld,
        format_args!("too old"),
    );
    let start = begin_ok(&mut stream, Tag::GetPages.response(), 5);
    stream.extend_from_slice(&1u16.to_le_bytes());
    stream.extend_from_slice(&[0, 0]);
    stream.extend_from_slice(&(Status::NotFound as u16).to_le_bytes());
    stream.extend_from_slice(&[0, 0]);
    finish(&mut stream, start);
    write("responses", &stream);
}
