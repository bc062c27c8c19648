use super::frame::decode_frame;
use super::*;
use proptest::prelude::*;

#[test]
fn placeholder_roundtrip() {
    let mut out = Vec::new();
    Request::Ping.encode(7, &mut out);
    let (frame, used) = decode_frame(&out).unwrap().unwrap();
    assert_eq!(used, out.len());
    assert_eq!(Request::decode(&frame), Ok(Request::Ping));
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(Some((frame, _))) = decode_frame(&bytes) {
            let _ = Request::decode(&frame);
            let _ = Response::decode(&frame);
        }
    }
}
