use super::*;
use proptest::prelude::*;
use wal::{BlockNumber, Fork, RelTag};

fn key(block: u32) -> PageKey {
    PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 1, rel_number: 9, fork: Fork::Main },
        block: BlockNumber(block),
    }
}

fn image(lsn: u64, block: u32, fill: u8) -> Record {
    Record { lsn: Lsn(lsn), key: key(block), body: RecordBody::Image(Box::new([fill; PAGE_SIZE])) }
}

fn delta(lsn: u64, block: u32, offset: u16, bytes: &[u8]) -> Record {
    Record {
        lsn: Lsn(lsn),
        key: key(block),
        body: RecordBody::Delta(Delta::from_patches([(offset, bytes)]).unwrap()),
    }
}

/// Reads a page from one in-memory layer the way the server's read path does.
fn read(layer: &InMemoryLayer, rels: &RelSizes, k: PageKey, lsn: u64) -> Option<Vec<u8>> {
    let lsn = Lsn(lsn);
    let nblocks = rels.size_at(k.rel, lsn)?;
    if k.block.0 >= nblocks {
        return None;
    }
    let versions = layer.versions(k, rels.floor_for(k, lsn), lsn);
    let base = versions.iter().rposition(|v| matches!(v.body, PageBody::Image(_)));
    let image = base.and_then(|i| match &versions[i].body {
        PageBody::Image(page) => Some(&**page),
        PageBody::Delta(_) => None,
    });
    let deltas = versions[base.map_or(0, |i| i + 1)..].iter().filter_map(|v| match &v.body {
        PageBody::Delta(d) => Some(d),
        PageBody::Image(_) => None,
    });
    let mut out = [0u8; PAGE_SIZE];
    redo(image, deltas, &mut out);
    Some(out.to_vec())
}

#[test]
fn reads_versions_as_of_lsn() {
    let mut layer = InMemoryLayer::new(Lsn(0));
    let mut rels = RelSizes::new();
    for record in [image(10, 0, 1), delta(20, 0, 0, b"ab"), image(30, 0, 3), delta(40, 0, 1, b"z")]
    {
        layer.ingest(record, &mut rels);
    }
    assert_eq!(read(&layer, &rels, key(0), 9), None);
    assert_eq!(read(&layer, &rels, key(0), 10).unwrap()[..3], [1, 1, 1]);
    assert_eq!(read(&layer, &rels, key(0), 25).unwrap()[..3], [b'a', b'b', 1]);
    assert_eq!(read(&layer, &rels, key(0), 30).unwrap()[..3], [3, 3, 3]);
    assert_eq!(read(&layer, &rels, key(0), 1000).unwrap()[..3], [3, b'z', 3]);
    assert_eq!(layer.stats().versions, 4);
    assert_eq!(layer.last_lsn(), Lsn(40));
}

proptest! {
    /// Random images and deltas; every read at every LSN equals a model replaying the records.
    #[test]
    fn matches_replay_model(ops in proptest::collection::vec((0u32..3, any::<bool>(), 0u16..8000, any::<u8>()), 1..40)) {
        let mut layer = InMemoryLayer::new(Lsn(0));
        let mut rels = RelSizes::new();
        let mut records = Vec::new();
        for (i, (block, is_image, offset, byte)) in ops.iter().enumerate() {
            let lsn = (i as u64 + 1) * 10;
            let record = if *is_image { image(lsn, *block, *byte) } else { delta(lsn, *block, *offset, &[*byte, byte.wrapping_add(1)]) };
            records.push(record.clone());
            layer.ingest(record, &mut rels);
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
                let got = read(&layer, &rels, key(block), probe);
                match max_block {
                    Some(m) if block <= m => prop_assert_eq!(got.unwrap(), model.unwrap_or([0; PAGE_SIZE]).to_vec()),
                    _ => prop_assert!(got.is_none()),
                }
            }
        }
    }
}

#[test]
fn long_delta_runs_ask_to_be_materialized() {
    let mut layer = InMemoryLayer::new(Lsn(0));
    let mut rels = RelSizes::new();
    assert_eq!(layer.ingest(image(1, 0, 0), &mut rels), None);
    let mut asked = None;
    for i in 0..MATERIALIZE_AFTER as u64 {
        asked = layer.ingest(delta(2 + i, 0, i as u16, b"x"), &mut rels);
        if i + 1 < MATERIALIZE_AFTER as u64 {
            assert_eq!(asked, None);
        }
    }
    let (k, lsn) = asked.expect("the 32nd delta asks");
    let before = read(&layer, &rels, k, lsn.0).unwrap();
    assert!(layer.materialize(k, lsn, &before.clone().try_into().unwrap()));
    assert_eq!(read(&layer, &rels, k, lsn.0).unwrap(), before);
    assert_eq!(
        read(&layer, &rels, k, lsn.0 - 1).unwrap()[..3],
        [b'x', b'x', b'x'],
        "older versions unchanged"
    );
    assert_eq!(layer.ingest(delta(lsn.0 + 1, 0, 0, b"y"), &mut rels), None, "the run starts over");
}
