//! Fuzz target: the wire decoders, `server::proto::frame::decode_frame` and, on each frame it
//! cuts, `Request::decode` (with the AppendWal records and GetPages blocks it carries),
//! `Response::decode`, `HelloOk::decode` and `get_pages_entries`.
//!
//! The input is a byte stream as a connection would buffer it: frames are cut off its front
//! until one is incomplete or framing breaks. Every decoder must return `Ok` or `Err`, never
//! panic or over-read; a frame may not claim more bytes than were given; a request that decodes
//! must re-encode to a frame that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server::proto::frame::decode_frame;
use server::proto::response::{get_pages_entries, HelloOk};
use server::proto::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, used))) = decode_frame(rest) {
        assert!(used <= rest.len(), "frame claims more bytes than the input holds");
        assert!(used > 0, "a frame must consume bytes");
        if let Ok(request) = Request::decode(&frame) {
            check_request(&request, frame.request_id);
        }
        if let Ok(response) = Response::decode(&frame) {
            let _ = response.status();
            let _ = response.message();
            let _ = HelloOk::decode(response.body);
            let _ = get_pages_entries(response.body);
        }
        let _ = get_pages_entries(frame.payload);
        rest = &rest[used..];
    }
});

fn check_request(request: &Request<'_>, request_id: u64) {
    match request {
        Request::AppendWal { records } => {
            assert_eq!(records.raw().count(), records.len());
            let _ = records.decode();
        }
        Request::GetPages { blocks, .. } => assert_eq!(blocks.iter().count(), blocks.len()),
        _ => {}
    }
    let mut encoded = Vec::new();
    request.encode(request_id, &mut encoded);
    let (frame, used) = decode_frame(&encoded)
        .expect("a re-encoded request has valid framing")
        .expect("a re-encoded request is complete");
    assert_eq!(used, encoded.len());
    assert_eq!(Request::decode(&frame).as_ref(), Ok(request), "round trip changed a request");
}
