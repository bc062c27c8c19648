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

/// First byte of an image record's page (for quick checks).
pub trait FirstByte {
    fn body_first_byte(&self) -> u8;
}

impl FirstByte for Record {
    fn body_first_byte(&self) -> u8 {
        match &self.body {
            RecordBody::Image(page) => page[0],
            _ => panic!("not an image"),
        }
    }
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

    /// The page as of `lsn`: replayed from its records; all zeros if it has none but a later
    /// block of its relation was written by then (the relation was extended past it); `None`
    /// if the relation had no block that far.
    pub fn page_at(&self, key: PageKey, lsn: Lsn) -> Option<Vec<u8>> {
        let mut page: Option<Vec<u8>> = None;
        for record in self.records.get(&key).into_iter().flatten().filter(|r| r.lsn <= lsn) {
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
        if page.is_none() {
            let extended = self.records.iter().any(|(k, records)| {
                k.rel == key.rel && k.block > key.block && records.iter().any(|r| r.lsn <= lsn)
            });
            if extended {
                return Some(vec![0; PAGE_SIZE]);
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

/// A small seeded generator (xorshift64*) so failures replay with `SEED=<n>`.
pub struct Rng(u64);

impl Rng {
    /// Seed from `SEED` if set, else from the clock; prints it so a failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64
        });
        println!("{test}: SEED={seed}");
        Rng(seed | 1)
    }

    /// A generator derived from another's output (threads of one seeded run).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random batch of records for `blocks` blocks starting after `lsn`; returns the new last LSN.
pub fn random_batch(rng: &mut Rng, lsn: &mut u64, blocks: u32, len: usize) -> Vec<Record> {
    (0..len)
        .map(|_| {
            *lsn += 1 + rng.below(0x40);
            let block = rng.below(u64::from(blocks)) as u32;
            if rng.below(4) == 0 {
                image(*lsn, block, rng.next())
            } else {
                let offset = rng.below(8000) as u16;
                let bytes: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                delta(*lsn, block, offset, &bytes)
            }
        })
        .collect()
}
