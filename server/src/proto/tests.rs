use super::frame::{decode_frame, TAG_PROTOCOL_ERROR};
use super::request::record_list;
use super::response::{begin_ok, encode_error, encode_protocol_error, finish, HelloOk};
use super::*;
use wal::codec::Writer;
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, TenantId, TimelineId};

fn dump(name: &str, bytes: &[u8]) {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("EX {name} {}", hex.join(" "));
}

#[test]
fn gen_examples() {
    let rel = RelTag { spc_oid: 1663, db_oid: 16384, rel_number: 16385, fork: Fork::Main };
    let tenant = TenantId::from_u128(0x00112233445566778899aabbccddeeff);
    let timeline = TimelineId::from_u128(0x0f0e0d0c0b0a09080706050403020100);
    let mut out = Vec::new();
    Request::Hello(Hello { protocol_version: 1, role: Role::Writer, tenant_id: tenant, timeline_id: timeline, writer_term: 7, auth_token: b"secret" }).encode(1, &mut out);
    dump("hello-request", &out); out.clear();
    let s = begin_ok(&mut out, 0x81, 1);
    HelloOk { protocol_version: 1, core: 2, last_lsn: 0x1_0000_00A8, writer_term: 7 }.encode(&mut out);
    finish(&mut out, s);
    dump("hello-response", &out); out.clear();
    Request::Ping.encode(2, &mut out);
    dump("ping-request", &out); out.clear();
    let s = begin_ok(&mut out, 0x82, 2); finish(&mut out, s);
    dump("ping-response", &out); out.clear();
    Request::GetPage { key: PageKey { rel, block: BlockNumber(7) }, request_lsn: Lsn(0x1_0000_0100), not_modified_since: Lsn(0x1_0000_00A8) }.encode(3, &mut out);
    dump("get-page-request", &out); out.clear();
    encode_error(&mut out, 0x83, 3, Status::NotFound, format_args!("block 7 is beyond the end of the relation"));
    dump("get-page-not-found-response", &out); out.clear();
    let mut st = Vec::new();
    Request::GetPages { rel, lsn: Lsn(0x1_0000_0100), blocks: request::block_list(&[BlockNumber(8), BlockNumber(9)], &mut st) }.encode(4, &mut out);
    dump("get-pages-request", &out); out.clear();
    let s = begin_ok(&mut out, 0x84, 4); out.put_u16(2); out.put_u16(0); out.put_u16(1); out.put_u16(0); out.put_u16(1); out.put_u16(0); finish(&mut out, s);
    dump("get-pages-response", &out); out.clear();
    Request::RelSize { rel, lsn: Lsn(0x1_0000_0100) }.encode(5, &mut out);
    dump("rel-size-request", &out); out.clear();
    let s = begin_ok(&mut out, 0x85, 5); out.put_u32(4); out.put_u32(0); finish(&mut out, s);
    dump("rel-size-response", &out); out.clear();
    let recs = [Record { lsn: Lsn(0x1_0000_0100), key: PageKey { rel, block: BlockNumber(0) }, body: RecordBody::RelSize(4) }];
    Request::AppendWal { records: record_list(&recs, &mut st) }.encode(6, &mut out);
    dump("append-wal-request", &out); out.clear();
    let s = begin_ok(&mut out, 0x86, 6); out.put_u64(0x1_0000_0100); finish(&mut out, s);
    dump("append-wal-response", &out); out.clear();
    let recs = [Record { lsn: Lsn(0x1_0000_0140), key: PageKey { rel, block: BlockNumber(3) }, body: RecordBody::Delta(Delta::from_patches([(24u16, &b"\xde\xad\xbe\xef"[..])]).unwrap()) }];
    Request::AppendWal { records: record_list(&recs, &mut st) }.encode(7, &mut out);
    dump("append-wal-delta-request", &out); out.clear();
    encode_error(&mut out, 0x86, 7, Status::Fenced, format_args!("writer term 7 was fenced by term 8"));
    dump("append-wal-fenced-response", &out); out.clear();
    encode_protocol_error(&mut out, format_args!("frame length 4 is below the 12-byte minimum"));
    dump("protocol-error", &out); out.clear();
    let _ = (TAG_PROTOCOL_ERROR, decode_frame(&[]));
}
