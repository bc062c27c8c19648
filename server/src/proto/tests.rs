//! Tests of the wire codec: round trips of every request and response, frame boundaries, decoder
//! errors, and the example frames of `PROTOCOL.md` (STYLE S15, S32).
//!
//! Most tests go through one of the `check_*` helpers below (STYLE S30): `check_request` for a
//! request round trip, `check_frame` for frame cutting, `check_decode` for the typed decoding of
//! a raw frame, and `check_request_example` / `check_response_example` for the spec's examples.

use super::frame::{begin_frame, decode_frame, finish_frame, TAG_PROTOCOL_ERROR};
use super::request::{block_list, record_list, RecordList};
use super::response::{
    begin_ok, encode_error, encode_protocol_error, finish, get_pages_entries, HelloOk,
    MalformedResponse,
};
use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use wal::codec::Writer;
use wal::{
    BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, TenantId, TimelineId,
    PAGE_SIZE,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Encodes `request` with `request_id`, then checks that the bytes are exactly one frame that
/// decodes back to the same request, and that a second encoding gives the same bytes.
fn check_request(request: &Request<'_>, request_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(request_id, &mut out);
    let (frame, used) = decode_frame(&out).expect("valid frame").expect("complete frame");
    assert_eq!(used, out.len(), "the encoding is exactly one frame");
    assert_eq!(frame.request_id, request_id);
    assert_eq!(frame.flags, 0);
    assert_eq!(Request::decode(&frame).as_ref(), Ok(request));
    let mut again = Vec::new();
    Request::decode(&frame).expect("decoded above").encode(request_id, &mut again);
    assert_eq!(again, out, "re-encoding the decoded request gives the same bytes");
    out
}

/// Cuts the first frame off `input` and compares the outcome: `Ok(Some(used))` for a complete
/// frame of `used` bytes, `Ok(None)` for "need more bytes", or the frame error.
fn check_frame(input: &[u8], expected: Result<Option<usize>, FrameError>) {
    let got = decode_frame(input).map(|found| found.map(|(_, used)| used));
    assert_eq!(
        got,
        expected,
        "input of {} bytes starting {:02x?}",
        input.len(),
        &input[..input.len().min(16)]
    );
}

/// Decodes the single frame `bytes` as a request and compares with `expected`.
fn check_decode(bytes: &[u8], expected: Result<Request<'_>, RequestError>) {
    let (frame, used) = decode_frame(bytes).expect("valid frame").expect("complete frame");
    assert_eq!(used, bytes.len());
    assert_eq!(Request::decode(&frame), expected);
}

/// A frame with any tag, flags and payload, built by hand.
fn raw_frame(tag: u8, flags: u8, request_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let start = begin_frame(&mut out, tag, request_id);
    out.put_bytes(payload);
    finish_frame(&mut out, start);
    out[5] = flags;
    out
}

/// Decodes `bytes` as exactly one response frame.
fn decode_response(bytes: &[u8]) -> Result<Response<'_>, MalformedResponse> {
    let (frame, used) = decode_frame(bytes).expect("valid frame").expect("complete frame");
    assert_eq!(used, bytes.len(), "exactly one frame");
    Response::decode(&frame)
}

fn rel(rel_number: u32) -> RelTag {
    RelTag { spc_oid: 1663, db_oid: 16384, rel_number, fork: Fork::Main }
}

fn rel_bytes(rel: &RelTag) -> Vec<u8> {
    let mut out = Vec::new();
    request::encode_rel(rel, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn arb_rel() -> impl Strategy<Value = RelTag> {
    (any::<u32>(), any::<u32>(), any::<u32>(), 0u8..4).prop_map(
        |(spc_oid, db_oid, rel_number, fork)| RelTag {
            spc_oid,
            db_oid,
            rel_number,
            fork: Fork::from_u8(fork).expect("0..4 are forks"),
        },
    )
}

fn arb_key() -> impl Strategy<Value = PageKey> {
    (arb_rel(), any::<u32>()).prop_map(|(rel, block)| PageKey { rel, block: BlockNumber(block) })
}

fn arb_record() -> impl Strategy<Value = Record> {
    let patches = proptest::collection::vec(
        (0u16..8000, proptest::collection::vec(any::<u8>(), 0..64)),
        0..8,
    );
    let body = prop_oneof![
        any::<u8>().prop_map(|fill| RecordBody::Image(Box::new([fill; PAGE_SIZE]))),
        patches.prop_map(|patches| {
            let delta =
                Delta::from_patches(patches.iter().map(|(offset, data)| (*offset, &data[..])));
            RecordBody::Delta(delta.expect("patches lie within the page"))
        }),
        any::<u32>().prop_map(RecordBody::RelSize),
        Just(RecordBody::RelDrop),
    ];
    (1..=u64::MAX, arb_key(), body).prop_map(|(lsn, key, body)| Record { lsn: Lsn(lsn), key, body })
}

fn arb_error_status() -> impl Strategy<Value = Status> {
    proptest::sample::select(Status::ALL[1..].to_vec())
}

// ---------------------------------------------------------------------------------------------
// (a) Round trips

proptest! {
    #[test]
    fn hello_round_trips(
        protocol_version in any::<u16>(),
        writer in any::<bool>(),
        tenant in any::<u128>(),
        timeline in any::<u128>(),
        writer_term in any::<u64>(),
        token in proptest::collection::vec(any::<u8>(), 0..=MAX_TOKEN_SIZE),
        request_id in any::<u64>(),
    ) {
        let hello = Hello {
            protocol_version,
            role: if writer { Role::Writer } else { Role::Reader },
            tenant_id: TenantId::from_u128(tenant),
            timeline_id: TimelineId::from_u128(timeline),
            writer_term,
            auth_token: &token,
        };
        let bytes = check_request(&Request::Hello(hello), request_id);
        prop_assert_eq!(bytes.len(), FRAME_HEADER_SIZE + 46 + token.len());
    }

    #[test]
    fn ping_round_trips(request_id in any::<u64>()) {
        let bytes = check_request(&Request::Ping, request_id);
        prop_assert_eq!(bytes.len(), FRAME_HEADER_SIZE);
    }

    #[test]
    fn get_page_round_trips(
        key in arb_key(),
        request_lsn in any::<u64>(),
        not_modified_since in any::<u64>(),
        request_id in any::<u64>(),
    ) {
        let request = Request::GetPage {
            key,
            request_lsn: Lsn(request_lsn),
            not_modified_since: Lsn(not_modified_since),
        };
        let bytes = check_request(&request, request_id);
        prop_assert_eq!(bytes.len(), FRAME_HEADER_SIZE + 36);
    }

    #[test]
    fn get_pages_round_trips(
        rel in arb_rel(),
        lsn in any::<u64>(),
        blocks in proptest::collection::vec(any::<u32>(), 0..=MAX_GET_PAGES_BLOCKS),
        request_id in any::<u64>(),
    ) {
        let blocks: Vec<BlockNumber> = blocks.into_iter().map(BlockNumber).collect();
        let mut storage = Vec::new();
        let list = block_list(&blocks, &mut storage);
        let bytes = check_request(&Request::GetPages { rel, lsn: Lsn(lsn), blocks: list }, request_id);
        prop_assert_eq!(bytes.len(), FRAME_HEADER_SIZE + 28 + 4 * blocks.len());
        prop_assert_eq!(list.len(), blocks.len());
        prop_assert_eq!(list.iter().collect::<Vec<_>>(), blocks);
    }

    #[test]
    fn rel_size_round_trips(rel in arb_rel(), lsn in any::<u64>(), request_id in any::<u64>()) {
        let bytes = check_request(&Request::RelSize { rel, lsn: Lsn(lsn) }, request_id);
        prop_assert_eq!(bytes.len(), FRAME_HEADER_SIZE + 24);
    }

    #[test]
    fn append_wal_round_trips(
        records in proptest::collection::vec(arb_record(), 0..12),
        request_id in any::<u64>(),
    ) {
        let mut storage = Vec::new();
        let list = record_list(&records, &mut storage);
        let bytes = check_request(&Request::AppendWal { records: list }, request_id);
        let (frame, _) = decode_frame(&bytes).expect("valid").expect("complete");
        let Ok(Request::AppendWal { records: decoded }) = Request::decode(&frame) else {
            panic!("an AppendWal decodes as AppendWal");
        };
        prop_assert_eq!(decoded.len(), records.len());
        prop_assert_eq!(decoded.decode(), Ok(records));
    }

    /// Requests sent back to back (pipelining) are cut apart in order.
    #[test]
    fn pipelined_requests_decode_in_order(
        picks in proptest::collection::vec((0u8..3, arb_key(), any::<u64>(), any::<u64>()), 1..20),
    ) {
        let requests: Vec<Request<'static>> = picks
            .iter()
            .map(|(kind, key, a, b)| match kind {
                0 => Request::Ping,
                1 => Request::GetPage { key: *key, request_lsn: Lsn(*a), not_modified_since: Lsn(*b) },
                _ => Request::RelSize { rel: key.rel, lsn: Lsn(*a) },
            })
            .collect();
        let mut out = Vec::new();
        for (id, request) in (100u64..).zip(&requests) {
            request.encode(id, &mut out);
        }
        let mut rest = &out[..];
        for (id, request) in (100u64..).zip(&requests) {
            let (frame, used) = decode_frame(rest).expect("valid").expect("complete");
            prop_assert_eq!(frame.request_id, id);
            let decoded = Request::decode(&frame);
            prop_assert_eq!(decoded.as_ref(), Ok(request));
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn ok_response_round_trips(
        tag in 0x81u8..=0xBF,
        request_id in any::<u64>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut out = Vec::new();
        let start = begin_ok(&mut out, tag, request_id);
        out.put_bytes(&body);
        finish(&mut out, start);
        let response = decode_response(&out).expect("well-formed response");
        prop_assert_eq!(response, Response { tag, request_id, status_code: 0, body: &body });
        prop_assert_eq!(response.status(), Status::Ok);
        prop_assert_eq!(response.message(), "");
    }

    /// Error responses keep status and message; messages are cut at `MAX_MESSAGE_SIZE` bytes on a
    /// character boundary, so what arrives is the longest prefix that fits.
    #[test]
    fn error_response_round_trips(
        tag in 0x81u8..=0xBF,
        request_id in any::<u64>(),
        status in arb_error_status(),
        message in ".{0,1200}",
    ) {
        let mut out = Vec::new();
        encode_error(&mut out, tag, request_id, status, format_args!("{message}"));
        let response = decode_response(&out).expect("well-formed response");
        let mut cut = message.len().min(MAX_MESSAGE_SIZE);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        prop_assert_eq!(response.tag, tag);
        prop_assert_eq!(response.request_id, request_id);
        prop_assert_eq!(response.status(), status);
        prop_assert_eq!(response.status_code, status as u16);
        prop_assert_eq!(response.body, &message.as_bytes()[..cut]);
        prop_assert_eq!(response.message(), &message[..cut]);
        prop_assert_eq!(out.len(), FRAME_HEADER_SIZE + 6 + cut);
    }

    #[test]
    fn hello_ok_round_trips(
        protocol_version in any::<u16>(),
        core in any::<u16>(),
        last_lsn in any::<u64>(),
        writer_term in any::<u64>(),
    ) {
        let hello_ok = HelloOk { protocol_version, core, last_lsn, writer_term };
        let mut body = Vec::new();
        hello_ok.encode(&mut body);
        prop_assert_eq!(body.len(), 24);
        prop_assert_eq!(HelloOk::decode(&body), Ok(hello_ok));
    }

    #[test]
    fn get_pages_entries_round_trip(entries in proptest::collection::vec(
        (proptest::sample::select(vec![Status::Ok, Status::NotFound]), any::<u8>()), 0..6,
    )) {
        let mut body = Vec::new();
        body.put_u16(u16::try_from(entries.len()).expect("small"));
        body.put_u16(0);
        for (status, fill) in &entries {
            body.put_u16(*status as u16);
            body.put_u16(0);
            if *status == Status::Ok {
                body.put_bytes(&[*fill; PAGE_SIZE]);
            }
        }
        let decoded = get_pages_entries(&body).expect("well-formed body");
        prop_assert_eq!(decoded.len(), entries.len());
        for ((status, fill), (got_status, got_page)) in entries.iter().zip(&decoded) {
            prop_assert_eq!(got_status, status);
            match got_page {
                Some(page) => prop_assert!(*status == Status::Ok && page.iter().all(|b| b == fill)),
                None => prop_assert_eq!(*status, Status::NotFound),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Decoders never panic

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(Some((frame, _))) = decode_frame(&bytes) {
            let _ = Request::decode(&frame);
            let _ = Response::decode(&frame);
            let _ = HelloOk::decode(frame.payload);
            let _ = get_pages_entries(frame.payload);
        }
    }

    /// Arbitrary payloads behind a valid header, for every tag: the typed decoders see far more
    /// interesting input than behind a random length field.
    #[test]
    fn typed_decoders_never_panic(
        tag in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let bytes = raw_frame(tag, 0, 1, &payload);
        let (frame, _) = decode_frame(&bytes).expect("valid").expect("complete");
        if let Ok(Request::AppendWal { records }) = Request::decode(&frame) {
            let _ = records.decode();
            prop_assert!(records.raw().count() == records.len());
        }
        let _ = Response::decode(&frame);
        let _ = get_pages_entries(&payload);
    }

    /// Every strict prefix of a valid frame asks for more input; never an error, never a frame.
    #[test]
    fn partial_frames_need_more_bytes(key in arb_key(), lsn in any::<u64>(), request_id in any::<u64>()) {
        let mut out = Vec::new();
        Request::GetPage { key, request_lsn: Lsn(lsn), not_modified_since: Lsn(lsn) }.encode(request_id, &mut out);
        for cut in 0..out.len() {
            check_frame(&out[..cut], Ok(None));
        }
        check_frame(&out, Ok(Some(out.len())));
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Frame boundaries and decoder errors

#[test]
fn frame_lengths_outside_bounds_are_frame_errors() {
    for frame_len in 0..12u32 {
        check_frame(&frame_len.to_le_bytes(), Err(FrameError::TooShort(frame_len)));
    }
    let too_large = u32::try_from(MAX_FRAME_SIZE + 1).expect("fits");
    check_frame(&too_large.to_le_bytes(), Err(FrameError::TooLarge(too_large)));
    check_frame(&u32::MAX.to_le_bytes(), Err(FrameError::TooLarge(u32::MAX)));
    // The length field alone decides: no payload needs to have arrived.
    let mut header = too_large.to_le_bytes().to_vec();
    header.extend_from_slice(&[0x02, 0, 0, 0]);
    check_frame(&header, Err(FrameError::TooLarge(too_large)));
}

#[test]
fn frame_lengths_at_the_bounds_are_accepted() {
    let mut minimal = 12u32.to_le_bytes().to_vec();
    minimal.extend_from_slice(&[0x02, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    check_frame(&minimal, Ok(Some(16)));
    let largest = u32::try_from(MAX_FRAME_SIZE).expect("fits");
    let mut header = largest.to_le_bytes().to_vec();
    header.extend_from_slice(&[0x06, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    check_frame(&header, Ok(None));
    header.resize(4 + MAX_FRAME_SIZE, 0);
    check_frame(&header, Ok(Some(4 + MAX_FRAME_SIZE)));
}

#[test]
fn partial_input_needs_more_bytes() {
    check_frame(&[], Ok(None));
    check_frame(&[16], Ok(None));
    check_frame(&[16, 0, 0], Ok(None));
    check_frame(&[16, 0, 0, 0], Ok(None));
    check_frame(&[16, 0, 0, 0, 0x02, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Ok(None));
}

#[test]
fn a_frame_uses_only_its_own_bytes() {
    let mut out = Vec::new();
    Request::Ping.encode(1, &mut out);
    Request::Ping.encode(2, &mut out);
    out.push(0x99);
    check_frame(&out, Ok(Some(FRAME_HEADER_SIZE)));
    let (frame, _) = decode_frame(&out).expect("valid").expect("complete");
    assert_eq!(frame.request_id, 1);
    assert_eq!(frame.payload, &[] as &[u8]);
}

#[test]
fn malformed_requests_are_request_errors() {
    let rel = rel_bytes(&rel(16385));
    check_decode(&raw_frame(0x07, 0, 1, &[]), Err(RequestError::UnknownTag(0x07)));
    check_decode(&raw_frame(0x3F, 0, 1, &[]), Err(RequestError::UnknownTag(0x3F)));
    check_decode(&raw_frame(0x82, 0, 1, &[]), Err(RequestError::UnknownTag(0x82)));
    check_decode(&raw_frame(0x02, 1, 1, &[]), Err(RequestError::NonZeroFlags));
    check_decode(&raw_frame(0x02, 0, 1, &[0]), Err(RequestError::TrailingBytes(1)));
    check_decode(&raw_frame(0x03, 0, 1, &[0; 35]), Err(RequestError::Truncated));
    check_decode(&raw_frame(0x03, 0, 1, &[0; 37]), Err(RequestError::TrailingBytes(1)));

    let mut bad_fork = rel.clone();
    bad_fork[12] = 4;
    bad_fork.extend_from_slice(&1u64.to_le_bytes());
    check_decode(&raw_frame(0x05, 0, 1, &bad_fork), Err(RequestError::UnknownFork(4)));

    let mut hello = vec![1, 0, 3, 0];
    hello.extend_from_slice(&[0; 16 + 16 + 8 + 2]);
    check_decode(&raw_frame(0x01, 0, 1, &hello), Err(RequestError::UnknownRole(3)));
    hello[2] = 1;
    check_decode(&raw_frame(0x01, 0, 1, &hello[..hello.len() - 1]), Err(RequestError::Truncated));
    let token_len = u16::try_from(MAX_TOKEN_SIZE + 1).expect("fits");
    let at = hello.len() - 2;
    hello[at..].copy_from_slice(&token_len.to_le_bytes());
    hello.resize(hello.len() + MAX_TOKEN_SIZE + 1, 0);
    let too_many = RequestError::TooMany {
        what: "auth token length",
        count: MAX_TOKEN_SIZE + 1,
        max: MAX_TOKEN_SIZE,
    };
    check_decode(&raw_frame(0x01, 0, 1, &hello), Err(too_many));

    let mut get_pages = rel.clone();
    get_pages.extend_from_slice(&1u64.to_le_bytes());
    get_pages.extend_from_slice(&[65, 0, 0, 0]);
    get_pages.resize(get_pages.len() + 65 * 4, 0);
    let too_many = RequestError::TooMany {
        what: "GetPages block count",
        count: 65,
        max: MAX_GET_PAGES_BLOCKS,
    };
    check_decode(&raw_frame(0x04, 0, 1, &get_pages), Err(too_many));

    let too_many = RequestError::TooMany {
        what: "AppendWal record count",
        count: 1025,
        max: MAX_APPEND_RECORDS,
    };
    check_decode(&raw_frame(0x06, 0, 1, &1025u32.to_le_bytes()), Err(too_many));
    let mut append = 1u32.to_le_bytes().to_vec();
    append.extend_from_slice(&32u32.to_le_bytes());
    append.extend_from_slice(&[0; 31]);
    check_decode(&raw_frame(0x06, 0, 1, &append), Err(RequestError::Truncated));
}

/// Reserved bytes are written as zero but not checked by readers (PROTOCOL.md, "Conventions").
#[test]
fn reserved_bytes_are_ignored() {
    let key = PageKey { rel: rel(16385), block: BlockNumber(7) };
    let mut out = Vec::new();
    Request::GetPage { key, request_lsn: Lsn(9), not_modified_since: Lsn(8) }.encode(5, &mut out);
    out[6] = 0xAA; // frame header reserved
    out[FRAME_HEADER_SIZE + 13] = 0xBB; // RelTag reserved
    check_decode(
        &out,
        Ok(Request::GetPage { key, request_lsn: Lsn(9), not_modified_since: Lsn(8) }),
    );
}

/// The record list is validated only for framing when the request is decoded; an invalid record
/// inside is found by `RecordList::decode` (the server answers it `BadRequest` as well).
#[test]
fn invalid_records_are_found_when_decoded() {
    let record = Record {
        lsn: Lsn(1),
        key: PageKey { rel: rel(1), block: BlockNumber(0) },
        body: RecordBody::RelDrop,
    };
    let mut storage = Vec::new();
    let list = record_list(std::slice::from_ref(&record), &mut storage);
    let mut out = Vec::new();
    Request::AppendWal { records: list }.encode(1, &mut out);
    let kind_at = FRAME_HEADER_SIZE + 8 + 21;
    out[kind_at] = 9;
    let (frame, _) = decode_frame(&out).expect("valid").expect("complete");
    let Ok(Request::AppendWal { records }) = Request::decode(&frame) else {
        panic!("record framing is valid");
    };
    assert_eq!(records.decode(), Err(wal::RecordError::UnknownKind(9)));
}

#[test]
fn malformed_responses_are_errors() {
    let check = |bytes: Vec<u8>, expected: &'static str| {
        assert_eq!(decode_response(&bytes), Err(MalformedResponse(expected)));
    };
    check(raw_frame(0x02, 0, 1, &[0, 0, 0, 0]), "tag is not a response tag");
    check(raw_frame(0x82, 0, 1, &[0, 0, 0]), "truncated");
    check(raw_frame(0x82, 0, 1, &[1, 0, 0, 0]), "truncated");
    check(raw_frame(0x82, 0, 1, &[1, 0, 0, 0, 5, 0, b'a']), "truncated");

    let check_entries = |body: &[u8], expected: &'static str| {
        assert_eq!(get_pages_entries(body), Err(MalformedResponse(expected)));
    };
    check_entries(&[1, 0, 0, 0, 0, 0, 0, 0], "truncated");
    // An entry status from a newer server reads as Internal, with no page.
    assert_eq!(get_pages_entries(&[1, 0, 0, 0, 99, 0, 0, 0]), Ok(vec![(Status::Internal, None)]));
    check_entries(&[1, 0, 0, 0, 1, 0, 0, 0, 0], "trailing bytes after GetPages entries");
    check_entries(&[0, 0], "truncated");
}

#[test]
fn error_messages_are_cut_on_a_character_boundary() {
    let message = format!("{}é", "x".repeat(MAX_MESSAGE_SIZE - 1));
    let mut out = Vec::new();
    encode_error(&mut out, 0x83, 1, Status::NotFound, format_args!("{message}"));
    let response = decode_response(&out).expect("well-formed");
    assert_eq!(response.body.len(), MAX_MESSAGE_SIZE - 1);
    assert_eq!(response.message(), "x".repeat(MAX_MESSAGE_SIZE - 1));
}

#[test]
fn unknown_status_codes_read_as_internal() {
    let bytes = raw_frame(0x82, 0, 1, &[200, 0, 0, 0, 2, 0, b'h', b'i']);
    let response = decode_response(&bytes).expect("well-formed");
    assert_eq!(response.status_code, 200);
    assert_eq!(response.status(), Status::Internal);
    assert_eq!(response.message(), "hi");
}

#[test]
fn tags_and_statuses_form_registries() {
    let tags = [Tag::Hello, Tag::Ping, Tag::GetPage, Tag::GetPages, Tag::RelSize, Tag::AppendWal];
    for tag in tags {
        let value = tag as u8;
        assert!((0x01..=0x3E).contains(&value), "request tag {value:#04x}");
        assert_eq!(Tag::from_u8(value), Some(tag));
        assert_eq!(tag.response(), value | 0x80);
        assert_ne!(tag.response(), TAG_PROTOCOL_ERROR);
    }
    let known = (0..=u8::MAX).filter(|value| Tag::from_u8(*value).is_some()).count();
    assert_eq!(known, tags.len());
    for (code, status) in (0u16..).zip(Status::ALL) {
        assert_eq!(status as u16, code, "status codes are dense and in order");
        assert_eq!(Status::from_u16(code), Some(status));
        assert_eq!(status.to_string(), status.name());
    }
    assert_eq!(Status::from_u16(14), None);
}

// ---------------------------------------------------------------------------------------------
// (d) The example frames of PROTOCOL.md

const SPEC: &str = include_str!("../../../PROTOCOL.md");

/// Every ```` ```hex name=… ```` block of the spec: name → bytes. Text after `#` on a line is a
/// comment; every other token is one byte as two hex digits.
fn spec_examples() -> BTreeMap<String, Vec<u8>> {
    let mut examples = BTreeMap::new();
    let mut lines = SPEC.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("```hex name=") else { continue };
        let mut bytes = Vec::new();
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            let data = line.split('#').next().unwrap_or("");
            for token in data.split_whitespace() {
                assert_eq!(token.len(), 2, "example {name}: token {token:?} is not one byte");
                let byte = u8::from_str_radix(token, 16)
                    .unwrap_or_else(|_| panic!("example {name}: {token:?} is not hex"));
                bytes.push(byte);
            }
        }
        let previous = examples.insert(name.trim().to_string(), bytes);
        assert!(previous.is_none(), "example {name} appears twice");
    }
    examples
}

/// Checks that example `name` is exactly one request frame with `request_id` that decodes to
/// `expected`, and that encoding `expected` gives the example's bytes.
fn check_request_example(
    examples: &BTreeMap<String, Vec<u8>>,
    name: &str,
    request_id: u64,
    expected: Request<'_>,
) {
    let bytes = examples.get(name).unwrap_or_else(|| panic!("PROTOCOL.md lacks example {name}"));
    let (frame, used) = decode_frame(bytes).expect("valid frame").expect("complete frame");
    assert_eq!(used, bytes.len(), "example {name} is exactly one frame");
    assert_eq!(frame.request_id, request_id, "example {name}");
    assert_eq!(Request::decode(&frame).as_ref(), Ok(&expected), "example {name}");
    let mut encoded = Vec::new();
    expected.encode(request_id, &mut encoded);
    assert_eq!(&encoded, bytes, "example {name} re-encodes to the same bytes");
}

/// Checks that example `name` is exactly one response frame with `tag`, `request_id` and
/// `status`, and that `encode` (the server's way to produce it) gives the example's bytes.
/// Returns the response's body (Ok) or message (otherwise).
fn check_response_example<'a>(
    examples: &'a BTreeMap<String, Vec<u8>>,
    name: &str,
    (tag, request_id, status): (u8, u64, Status),
    encode: impl FnOnce(&mut Vec<u8>),
) -> &'a [u8] {
    let bytes = examples.get(name).unwrap_or_else(|| panic!("PROTOCOL.md lacks example {name}"));
    let response = decode_response(bytes).unwrap_or_else(|e| panic!("example {name}: {e}"));
    assert_eq!(
        (response.tag, response.request_id, response.status()),
        (tag, request_id, status),
        "example {name}"
    );
    assert_eq!(response.status_code, status as u16, "example {name}");
    let mut encoded = Vec::new();
    encode(&mut encoded);
    assert_eq!(&encoded, bytes, "example {name} re-encodes to the same bytes");
    response.body
}

fn encode_ok(out: &mut Vec<u8>, tag: u8, request_id: u64, body: impl FnOnce(&mut Vec<u8>)) {
    let start = begin_ok(out, tag, request_id);
    body(out);
    finish(out, start);
}

#[test]
fn spec_examples_decode_as_documented() {
    let examples = spec_examples();
    let names: Vec<&str> = examples.keys().map(String::as_str).collect();
    let documented = [
        "append-wal-delta-request",
        "append-wal-fenced-response",
        "append-wal-request",
        "append-wal-response",
        "get-page-not-found-response",
        "get-page-request",
        "get-pages-request",
        "get-pages-response",
        "hello-request",
        "hello-response",
        "ping-request",
        "ping-response",
        "protocol-error",
        "rel-size-request",
        "rel-size-response",
    ];
    assert_eq!(names, documented, "every example in PROTOCOL.md is checked here, and only those");

    let rel = rel(16385);
    let lsn_a8 = Lsn(0x1_0000_00A8);
    let lsn_100 = Lsn(0x1_0000_0100);

    let hello = Hello {
        protocol_version: 1,
        role: Role::Writer,
        tenant_id: "00112233445566778899aabbccddeeff".parse().expect("valid id"),
        timeline_id: "0f0e0d0c0b0a09080706050403020100".parse().expect("valid id"),
        writer_term: 7,
        auth_token: b"secret",
    };
    check_request_example(&examples, "hello-request", 1, Request::Hello(hello));
    let hello_ok = HelloOk { protocol_version: 1, core: 2, last_lsn: lsn_a8.0, writer_term: 7 };
    let body = check_response_example(&examples, "hello-response", (0x81, 1, Status::Ok), |out| {
        encode_ok(out, 0x81, 1, |out| hello_ok.encode(out));
    });
    assert_eq!(HelloOk::decode(body), Ok(hello_ok));

    check_request_example(&examples, "ping-request", 2, Request::Ping);
    let body = check_response_example(&examples, "ping-response", (0x82, 2, Status::Ok), |out| {
        encode_ok(out, 0x82, 2, |_| {});
    });
    assert!(body.is_empty());

    let key = PageKey { rel, block: BlockNumber(7) };
    let get_page = Request::GetPage { key, request_lsn: lsn_100, not_modified_since: lsn_a8 };
    check_request_example(&examples, "get-page-request", 3, get_page);
    let message = "block 7 is beyond the end of the relation";
    let body = check_response_example(
        &examples,
        "get-page-not-found-response",
        (0x83, 3, Status::NotFound),
        |out| {
            encode_error(out, 0x83, 3, Status::NotFound, format_args!("{message}"));
        },
    );
    assert_eq!(body, message.as_bytes());

    let mut storage = Vec::new();
    let blocks = block_list(&[BlockNumber(8), BlockNumber(9)], &mut storage);
    check_request_example(
        &examples,
        "get-pages-request",
        4,
        Request::GetPages { rel, lsn: lsn_100, blocks },
    );
    let body =
        check_response_example(&examples, "get-pages-response", (0x84, 4, Status::Ok), |out| {
            encode_ok(out, 0x84, 4, |out| {
                out.put_u16(2);
                out.put_u16(0);
                for _ in 0..2 {
                    out.put_u16(Status::NotFound as u16);
                    out.put_u16(0);
                }
            });
        });
    assert_eq!(
        get_pages_entries(body),
        Ok(vec![(Status::NotFound, None), (Status::NotFound, None)])
    );

    check_request_example(&examples, "rel-size-request", 5, Request::RelSize { rel, lsn: lsn_100 });
    let body =
        check_response_example(&examples, "rel-size-response", (0x85, 5, Status::Ok), |out| {
            encode_ok(out, 0x85, 5, |out| {
                out.put_u32(4);
                out.put_u32(0);
            });
        });
    assert_eq!(body, [4, 0, 0, 0, 0, 0, 0, 0]);

    let rel_size = Record {
        lsn: lsn_100,
        key: PageKey { rel, block: BlockNumber(0) },
        body: RecordBody::RelSize(4),
    };
    let records = check_append_example(&examples, "append-wal-request", 6, &rel_size);
    assert_eq!(records.len(), 1);
    let body =
        check_response_example(&examples, "append-wal-response", (0x86, 6, Status::Ok), |out| {
            encode_ok(out, 0x86, 6, |out| out.put_u64(lsn_100.0));
        });
    assert_eq!(body, lsn_100.0.to_le_bytes());

    let patch = [0xde, 0xad, 0xbe, 0xef];
    let delta = Delta::from_patches([(24u16, &patch[..])]).expect("within the page");
    let delta = Record {
        lsn: Lsn(0x1_0000_0140),
        key: PageKey { rel, block: BlockNumber(3) },
        body: RecordBody::Delta(delta),
    };
    let records = check_append_example(&examples, "append-wal-delta-request", 7, &delta);
    let Some(RecordBody::Delta(decoded)) = records.first().map(|r| &r.body) else {
        panic!("append-wal-delta-request carries a delta");
    };
    assert_eq!(decoded.patches().collect::<Vec<_>>(), vec![(24, &patch[..])]);
    let message = "writer term 7 was fenced by term 8";
    let body = check_response_example(
        &examples,
        "append-wal-fenced-response",
        (0x86, 7, Status::Fenced),
        |out| {
            encode_error(out, 0x86, 7, Status::Fenced, format_args!("{message}"));
        },
    );
    assert_eq!(body, message.as_bytes());

    // The spec's protocol error is the one the server sends for a 4-byte frame length.
    let message = FrameError::TooShort(4).to_string();
    let body = check_response_example(
        &examples,
        "protocol-error",
        (TAG_PROTOCOL_ERROR, 0, Status::ProtocolError),
        |out| {
            encode_protocol_error(out, format_args!("{message}"));
        },
    );
    assert_eq!(body, message.as_bytes());
    check_frame(&4u32.to_le_bytes(), Err(FrameError::TooShort(4)));
}

/// Checks an `AppendWal` example holding exactly `record`; returns the decoded records.
fn check_append_example(
    examples: &BTreeMap<String, Vec<u8>>,
    name: &str,
    request_id: u64,
    record: &Record,
) -> Vec<Record> {
    let mut storage = Vec::new();
    let list: RecordList<'_> = record_list(std::slice::from_ref(record), &mut storage);
    check_request_example(examples, name, request_id, Request::AppendWal { records: list });
    let records = list.decode().expect("valid records");
    assert_eq!(records, std::slice::from_ref(record), "example {name}");
    records
}

/// The limits table of the spec states the values this build uses.
#[test]
fn spec_states_the_limits() {
    let limits = [
        ("FRAME_HEADER_SIZE", FRAME_HEADER_SIZE),
        ("MAX_FRAME_SIZE", MAX_FRAME_SIZE),
        ("MAX_GET_PAGES_BLOCKS", MAX_GET_PAGES_BLOCKS),
        ("MAX_APPEND_RECORDS", MAX_APPEND_RECORDS),
        ("MAX_TOKEN_SIZE", MAX_TOKEN_SIZE),
        ("MAX_MESSAGE_SIZE", MAX_MESSAGE_SIZE),
        ("PAGE_SIZE", PAGE_SIZE),
        ("MAX_RECORD_SIZE", wal::record::MAX_RECORD_SIZE),
        ("MAX_PATCHES", wal::record::MAX_PATCHES),
    ];
    for (name, value) in limits {
        let row = SPEC
            .lines()
            .find(|line| line.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("PROTOCOL.md limits table lacks {name}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells.get(2), Some(&value.to_string().as_str()), "PROTOCOL.md row for {name}");
    }
    for status in Status::ALL {
        let row = format!("| {:<4} | {:<15} |", status as u16, status.name());
        assert!(SPEC.contains(&row), "PROTOCOL.md status table lacks {row:?}");
    }
    assert!(SPEC.contains(&format!("# pagecore wire protocol, version {PROTOCOL_VERSION}")));
}
