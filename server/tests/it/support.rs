//! Record builders and an independent replay model shared by the integration tests.

use std::collections::BTreeMap;
use wal::{BlockNumber, Delta, Fork, Lsn, PageKey, Record, RecordBody, RelTag, PAGE_SIZE};

pub const REL: RelTag = RelTag { spc_oid: 1663, db_oid: 5, rel_number: 16384, fork: Fork::Main };

pub fn key(block: u32) -> PageKey {
    PageKey { rel: REL, block: BlockNumber(block) }
}

/// A full page whose bytes depend on `seed`, so different versions differ everywhere.
pub fn image(lsn: u64, block: u32, seed: u64) -> Record {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    for (i, byte) in page.iter_mut().enumerate() {
        *byte = (i as u64).wrapping_mul(31).wrapping_add(seed) as u8;
    }
    Record { lsn: Lsn(lsn), key: key(block), body: RecordBody::Image(page) }
}

pub fn delta(lsn: u64, block: u32, offset: u16, bytes: &[u8]) -> Record {
    let delta = Delta::from_patches([(offset, bytes)]).unwrap();
    Record { lsn: Lsn(lsn), key: key(block), body: RecordBody::Delta(delta) }
}

/// Replays records per page; independent of the server's index.
#[derive(Default, Clone)]
pub struct Model {
    records: BTreeMap<PageKey, Vec<Record>>,
}

impl Model {
    pub fn add(&mut self, records: &[Record]) {
        for record in records {
            self.records.entry(record.key).or_default().push(record.clone());
        }
    }

    pub fn page_at(&self, key: PageKey, lsn: Lsn) -> Option<Vec<u8>> {
        let mut page: Option<Vec<u8>> = None;
        for record in self.records.get(&key)?.iter().filter(|r| r.lsn <= lsn) {
            let current = page.get_or_insert_with(|| vec![0; PAGE_SIZE]);
            match &record.body {
                RecordBody::Image(image) => current.copy_from_slice(&image[..]),
                RecordBody::Delta(delta) => {
                    for (offset, bytes) in delta.patches() {
                        current[offset..offset + bytes.len()].copy_from_slice(bytes);
                    }
                }
                _ => {}
            }
        }
        page
    }

    pub fn keys(&self) -> impl Iterator<Item = PageKey> + '_ {
        self.records.keys().copied()
    }

    /// Every LSN at which some page changed.
    pub fn lsns(&self) -> Vec<Lsn> {
        let mut lsns: Vec<Lsn> = self.records.values().flatten().map(|r| r.lsn).collect();
        lsns.sort();
        lsns
    }
}
