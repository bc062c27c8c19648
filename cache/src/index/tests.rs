use super::*;
use proptest::prelude::*;
use wal::Fork;

fn rel(n: u32) -> RelTag {
    RelTag { spc_oid: 1663, db_oid: 1, rel_number: n, fork: Fork::Main }
}

fn key(r: u32, block: u32) -> PageKey {
    PageKey { rel: rel(r), block: BlockNumber(block) }
}

fn image(lsn: u64, k: PageKey, fill: u8) -> Record {
    Record { lsn: Lsn(lsn), key: k, body: RecordBody::Image(Box::new([fill; PAGE_SIZE])) }
}

fn delta(lsn: u64, k: PageKey, offset: u16, bytes: &[u8]) -> Record {
    let d = Delta::from_patches([(offset, bytes)]).unwrap();
    Record { lsn: Lsn(lsn), key: k, body: RecordBody::Delta(d) }
}

fn read(index: &TimelineIndex, k: PageKey, lsn: u64) -> Result<Vec<u8>, Error> {
    let mut page = [0u8; PAGE_SIZE];
    index.get_page(k, Lsn(lsn), &mut page).map(|()| page.to_vec())
}

#[test]
fn reads_versions_as_of_lsn() {
    let mut index = TimelineIndex::new();
    index.apply(image(10, key(1, 0), 1)).unwrap();
    index.apply(delta(20, key(1, 0), 0, b"ab")).unwrap();
    index.apply(image(30, key(1, 0), 3)).unwrap();
    index.apply(delta(40, key(1, 0), 1, b"z")).unwrap();
    assert!(matches!(read(&index, key(1, 0), 9), Err(Error::NoRelation { .. })));
    assert_eq!(read(&index, key(1, 0), 10).unwrap()[..3], [1, 1, 1]);
    assert_eq!(read(&index, key(1, 0), 25).unwrap()[..3], [b'a', b'b', 1]);
    assert_eq!(read(&index, key(1, 0), 30).unwrap()[..3], [3, 3, 3]);
    assert_eq!(read(&index, key(1, 0), 1000).unwrap()[..3], [3, b'z', 3]);
    assert_eq!(index.stats().versions, 4);
}

#[test]
fn relation_size_follows_writes_truncation_and_drop() {
    let mut index = TimelineIndex::new();
    index.apply(image(10, key(1, 4), 1)).unwrap();
    assert_eq!(index.rel_size(rel(1), Lsn(10)), Some(5));
    assert_eq!(read(&index, key(1, 2), 10).unwrap(), vec![0; PAGE_SIZE]);
    assert!(matches!(read(&index, key(1, 5), 10), Err(Error::BeyondEnd { .. })));
    let truncate = Record { lsn: Lsn(20), key: key(1, 0), body: RecordBody::RelSize(2) };
    index.apply(truncate).unwrap();
    assert!(matches!(read(&index, key(1, 4), 20), Err(Error::BeyondEnd { .. })));
    assert_eq!(read(&index, key(1, 4), 15).unwrap()[0], 1);
    let extend = Record { lsn: Lsn(30), key: key(1, 0), body: RecordBody::RelSize(8) };
    index.apply(extend).unwrap();
    assert_eq!(
        read(&index, key(1, 4), 30).unwrap(),
        vec![0; PAGE_SIZE],
        "re-extended block is zero"
    );
    index.apply(Record { lsn: Lsn(40), key: key(1, 0), body: RecordBody::RelDrop }).unwrap();
    assert_eq!(index.rel_size(rel(1), Lsn(40)), None);
    assert_eq!(index.rel_size(rel(1), Lsn(39)), Some(8));
    assert!(matches!(read(&index, key(1, 0), 40), Err(Error::NoRelation { .. })));
}

#[test]
fn rejects_lsn_regression() {
    let mut index = TimelineIndex::new();
    index.apply(image(10, key(1, 0), 1)).unwrap();
    assert_eq!(
        index.apply(image(10, key(1, 1), 1)).unwrap_err(),
        Error::LsnOrder { lsn: Lsn(10), last: Lsn(10) }
    );
}

proptest! {
    /// Random images and deltas on a few pages; every read at every LSN equals a model that
    /// replays the records up to that LSN.
    #[test]
    fn matches_replay_model(ops in proptest::collection::vec((0u32..3, any::<bool>(), 0u16..8000, any::<u8>()), 1..40)) {
        let mut index = TimelineIndex::new();
        let mut records = Vec::new();
        for (i, (block, is_image, offset, byte)) in ops.iter().enumerate() {
            let lsn = (i as u64 + 1) * 10;
            let record = if *is_image {
                image(lsn, key(1, *block), *byte)
            } else {
                delta(lsn, key(1, *block), *offset, &[*byte, byte.wrapping_add(1)])
            };
            records.push(record.clone());
            index.apply(record).unwrap();
        }
        for probe in 1..=(ops.len() as u64 * 10 + 5) {
            for block in 0..3u32 {
                let mut model: Option<[u8; PAGE_SIZE]> = None;
                let mut max_block: Option<u32> = None;
                for r in records.iter().filter(|r| r.lsn.0 <= probe) {
                    max_block = Some(max_block.map_or(r.key.block.0, |m| m.max(r.key.block.0)));
                    if r.key.block.0 != block { continue; }
                    let page = model.get_or_insert([0; PAGE_SIZE]);
                    match &r.body {
                        RecordBody::Image(img) => page.copy_from_slice(&img[..]),
                        RecordBody::Delta(d) => d.apply(page),
                        _ => unreachable!(),
                    }
                }
                let got = read(&index, key(1, block), probe);
                match max_block {
                    None => prop_assert!(got.is_err()),
                    Some(m) if block > m => prop_assert!(got.is_err()),
                    Some(_) => prop_assert_eq!(got.unwrap(), model.unwrap_or([0; PAGE_SIZE]).to_vec()),
                }
            }
        }
    }
}
