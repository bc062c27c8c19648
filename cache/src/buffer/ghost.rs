//! The ghost: an approximate, fixed-size FIFO set of recently seen key hashes, for admission.
//!
//! It remembers the last `window` insertions. Each entry is a 32-bit tag (high half of the key
//! hash, low bit forced on so a tag is never 0 = empty) and the insertion sequence number; an
//! entry older than `window` insertions reads as absent. Entries live in 4-way buckets picked
//! by the low bits of the hash, with twice `window` slots in all; a full bucket overwrites its
//! oldest entry. So the set is approximate both ways: a tag collision can report a key never
//! inserted, and a crowded bucket can forget a key early (and a sequence number that wrapped
//! 2^32 insertions ago can look fresh). Each error only changes where one entry is placed,
//! never what a read returns. No allocation after construction.

/// Ways per bucket.
const WAYS: usize = 4;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// 0 = empty.
    tag: u32,
    seq: u32,
}

pub(crate) struct Ghost {
    buckets: Vec<[Slot; WAYS]>,
    mask: usize,
    /// Sequence number of the next insertion.
    seq: u32,
    window: u32,
}

impl Ghost {
    /// A ghost remembering the last `window` insertions (`0`: remembers nothing, allocates one
    /// bucket).
    pub(crate) fn new(window: u32) -> Ghost {
        let buckets = (2 * window as usize).div_ceil(WAYS).next_power_of_two();
        Ghost { buckets: vec![[Slot::default(); WAYS]; buckets], mask: buckets - 1, seq: 0, window }
    }

    pub(crate) fn insert(&mut self, hash: u64) {
        if self.window == 0 {
            return;
        }
        let tag = tag_of(hash);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let bucket = &mut self.buckets[hash as usize & self.mask];
        // Refresh the key's own slot if present, else take the oldest (empty slots are oldest).
        let mut victim = 0;
        let mut victim_age = 0;
        for (way, slot) in bucket.iter().enumerate() {
            if slot.tag == tag {
                victim = way;
                break;
            }
            let age = if slot.tag == 0 { u32::MAX } else { seq.wrapping_sub(slot.seq) };
            if age > victim_age {
                victim = way;
                victim_age = age;
            }
        }
        bucket[victim] = Slot { tag, seq };
    }

    /// Whether `hash` was inserted within the window; forgets it if so.
    pub(crate) fn take(&mut self, hash: u64) -> bool {
        if self.window == 0 {
            return false;
        }
        let tag = tag_of(hash);
        let now = self.seq;
        let window = self.window;
        let bucket = &mut self.buckets[hash as usize & self.mask];
        for slot in bucket.iter_mut() {
            if slot.tag == tag && now.wrapping_sub(slot.seq) <= window {
                *slot = Slot::default();
                return true;
            }
        }
        false
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<[Slot; WAYS]>()
    }
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

#[cfg(test)]
mod tests;
