use super::*;
use proptest::prelude::*;

fn key(rel_number: u32, block: u32) -> PageKey {
    PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number, fork: Fork::Main },
        block: BlockNumber(block),
    }
}

fn check(record: &Record) {
    let mut out = Vec::new();
    let written = record.encode_into(&mut out);
    assert_eq!(written, out.len());
    assert_eq!(written, record.encoded_size());
    assert_eq!(Record::decode(&out).as_ref(), Ok(record));
}

#[test]
fn each_kind_round_trips() {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    page[100] = 7;
    check(&Record { lsn: Lsn(10), key: key(1, 2), body: RecordBody::Image(page) });
    let delta = Delta::from_patches([(0u16, &b"abc"[..]), (8189, &b"xyz"[..])]).unwrap();
    check(&Record { lsn: Lsn(11), key: key(1, 2), body: RecordBody::Delta(delta) });
    check(&Record { lsn: Lsn(12), key: key(1, 0), body: RecordBody::RelSize(9) });
    check(&Record { lsn: Lsn(13), key: key(1, 0), body: RecordBody::RelDrop });
}

#[test]
fn rejects_bad_input_with_errors() {
    assert_eq!(
        Delta::from_patches([(8190u16, &b"xyz"[..])]).unwrap_err(),
        RecordError::PatchOutOfPage { offset: 8190, len: 3 }
    );
    let mut out = Vec::new();
    Record { lsn: Lsn(1), key: key(1, 0), body: RecordBody::RelDrop }.encode_into(&mut out);
    let mut zero_lsn = out.clone();
    zero_lsn[..8].fill(0);
    assert_eq!(Record::decode(&zero_lsn), Err(RecordError::ZeroLsn));
    let mut bad_kind = out.clone();
    bad_kind[21] = 9;
    assert_eq!(Record::decode(&bad_kind), Err(RecordError::UnknownKind(9)));
    let mut trailing = out.clone();
    trailing.push(0);
    assert_eq!(Record::decode(&trailing), Err(RecordError::TrailingBytes(1)));
    assert_eq!(Record::decode(&out[..5]), Err(RecordError::Truncated));
}

#[test]
fn delta_applies_patches_in_order() {
    let delta = Delta::from_patches([(1u16, &b"aaaa"[..]), (2, &b"b"[..])]).unwrap();
    let mut page = [0u8; PAGE_SIZE];
    delta.apply(&mut page);
    assert_eq!(&page[..6], b"\0abaa\0");
}

pub(crate) fn arb_record() -> impl Strategy<Value = Record> {
    let body = prop_oneof![
        any::<u8>().prop_map(|fill| RecordBody::Image(Box::new([fill; PAGE_SIZE]))),
        proptest::collection::vec(
            (0u16..8000, proptest::collection::vec(any::<u8>(), 0..64)),
            0..8
        )
        .prop_map(|patches| RecordBody::Delta(
            Delta::from_patches(patches.iter().map(|(o, b)| (*o, &b[..]))).unwrap()
        )),
        any::<u32>().prop_map(RecordBody::RelSize),
        Just(RecordBody::RelDrop),
    ];
    (1u64.., any::<u32>(), 0u8..4, any::<u32>(), body).prop_map(|(lsn, rel, fork, block, body)| {
        let fork = Fork::from_u8(fork).unwrap();
        Record {
            lsn: Lsn(lsn),
            key: PageKey {
                rel: RelTag { spc_oid: 1663, db_oid: 1, rel_number: rel, fork },
                block: BlockNumber(block),
            },
            body,
        }
    })
}

proptest! {
    #[test]
    fn decode_inverts_encode(record in arb_record()) {
        check(&record);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let _ = Record::decode(&bytes);
    }
}
