//! Writes the seed corpus of the layer fuzz target from real layer files made by
//! `LayerWriter`: `cargo run --example write_seeds` (from `cache/fuzz/`). The zero padding after
//! each index is cut (a reader only reads `index_len` bytes) to keep the committed seeds small.

use cache::layer::{decode_header, LayerKind, LayerWriter, RelEvent};
use std::path::Path;
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, RelTag, TenantId, TimelineId, PAGE_SIZE};

fn key(block: u32) -> PageKey {
    PageKey {
        rel: RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main },
        block: BlockNumber(block),
    }
}

/// `flags` byte, then the file up to the end of its index.
fn seed(flags: u8, file: &[u8]) -> Vec<u8> {
    let header = decode_header(file).unwrap();
    let end = (header.index_offset + header.index_len) as usize;
    let mut bytes = vec![flags];
    bytes.extend_from_slice(&file[..end]);
    bytes
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/layer_read");
    std::fs::create_dir_all(&dir).unwrap();
    let tenant = TenantId::from_u128(1);
    let timeline = TimelineId::from_u128(2);

    let mut delta = LayerWriter::new(LayerKind::Delta, tenant, timeline, Lsn(0x10), Lsn(0x40));
    let mut payload = Vec::new();
    Delta::from_patches([(8u16, &b"pagecore"[..])]).unwrap().encode_payload(&mut payload);
    delta.add_delta(key(0), Lsn(0x20), &payload);
    delta.add_delta(key(0), Lsn(0x30), &payload);
    delta.add_delta(key(1), Lsn(0x30), &payload);
    delta.add_rel_event(RelEvent { rel: key(0).rel, lsn: Lsn(0x30), nblocks: Some(2) });
    delta.add_rel_event(RelEvent { rel: key(0).rel, lsn: Lsn(0x40), nblocks: None });
    let (file, _) = delta.finish(None);
    std::fs::write(dir.join("delta-raw"), seed(0, &file)).unwrap();
    std::fs::write(dir.join("delta-fix"), seed(1, &file)).unwrap();

    let mut image = LayerWriter::new(LayerKind::Image, tenant, timeline, Lsn(0x40), Lsn(0x40));
    image.add_image(key(0), Lsn(0x40), &[3u8; PAGE_SIZE]);
    image.add_rel_event(RelEvent { rel: key(0).rel, lsn: Lsn(0x40), nblocks: Some(1) });
    let (file, _) = image.finish(None);
    std::fs::write(dir.join("image-fix"), seed(1, &file)).unwrap();
}
