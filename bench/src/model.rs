//! An independent model of page versions used to check what the server returns: it replays
//! every record of a page up to the LSN asked, with no shared code path with the server's
//! index beyond the record types and `Delta::apply`.

use std::collections::BTreeMap;
use wal::{Lsn, PageKey, Record, RecordBody, PAGE_SIZE};

#[derive(Default)]
pub struct Model {
    records: BTreeMap<PageKey, Vec<Record>>,
}

impl Model {
    pub fn add(&mut self, record: &Record) {
        self.records.entry(record.key).or_default().push(record.clone());
    }

    /// The page as of `lsn`, or `None` if it had no version then.
    pub fn page_at(&self, key: PageKey, lsn: Lsn) -> Option<[u8; PAGE_SIZE]> {
        let mut page: Option<[u8; PAGE_SIZE]> = None;
        for record in self.records.get(&key)?.iter().filter(|r| r.lsn <= lsn) {
            let current = page.get_or_insert([0; PAGE_SIZE]);
            match &record.body {
                RecordBody::Image(image) => current.copy_from_slice(&image[..]),
                RecordBody::Delta(delta) => {
                    for (offset, bytes) in delta.patches() {
                        current[offset..offset + bytes.len()].copy_from_slice(bytes);
                    }
                }
                RecordBody::RelSize(_) | RecordBody::RelDrop => {}
            }
        }
        page
    }
}
