//! Fuzz target: `wal::Record::decode` and `wal::Delta::decode_payload` on arbitrary bytes.
//!
//! Both must return `Ok` or `Err` and never panic or over-read. A record that decodes must
//! survive a round trip (`decode(encode(r)) == r`), and a decoded delta must apply to a page
//! without leaving it (its patches were checked against the page size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wal::{Delta, Record, RecordBody, PAGE_SIZE};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        let mut encoded = Vec::new();
        let written = record.encode_into(&mut encoded);
        assert_eq!(written, record.encoded_size());
        assert_eq!(Record::decode(&encoded).as_ref(), Ok(&record), "round trip changed a record");
        if let RecordBody::Delta(delta) = &record.body {
            delta.apply(&mut Box::new([0u8; PAGE_SIZE]));
        }
    }
    if let Ok(delta) = Delta::decode_payload(data) {
        let mut encoded = Vec::new();
        delta.encode_payload(&mut encoded);
        assert_eq!(Delta::decode_payload(&encoded).as_ref(), Ok(&delta));
        delta.apply(&mut Box::new([0u8; PAGE_SIZE]));
    }
});
