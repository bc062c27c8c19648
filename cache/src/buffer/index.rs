//! The buffer cache's key index: an open-addressing hash table from a key to the newest cached
//! version of it (the head of that key's version chain in the entry slab).
//!
//! Linear probing over a power-of-two slot array sized at construction to at least twice the
//! number of entries, so the load factor stays at or below one half whatever the churn: the
//! table holds at most one slot per distinct cached key and there are never more keys than
//! entries. Deletion shifts later slots of the probe run back (no tombstones), so lookups never
//! slow down with churn and nothing ever rehashes or allocates after construction.
//!
//! A slot stores the entry index and 32 bits of the key hash, so a probe compares keys only on
//! a tag match. The table does not own keys: callers pass a closure that compares an entry's
//! key, and one that gives an entry's full hash (for deletion).

use super::policy::NIL;

#[derive(Clone, Copy)]
struct Slot {
    tag: u32,
    /// Head entry of the key's version chain; `NIL` = empty slot.
    entry: u32,
}

const EMPTY: Slot = Slot { tag: 0, entry: NIL };

pub(crate) struct KeyIndex {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

/// Position of a key's slot, valid until the next insertion or removal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SlotPos(usize);

impl KeyIndex {
    /// A table for at most `keys` keys.
    pub(crate) fn new(keys: usize) -> KeyIndex {
        let slots = (2 * keys).next_power_of_two().max(8);
        KeyIndex { slots: vec![EMPTY; slots], mask: slots - 1, len: 0 }
    }

    /// The slot of the key with `hash` for which `is_key(head_entry)` holds.
    pub(crate) fn find(&self, hash: u64, is_key: impl Fn(u32) -> bool) -> Option<SlotPos> {
        let tag = tag_of(hash);
        let mut at = hash as usize & self.mask;
        loop {
            let slot = self.slots[at];
            if slot.entry == NIL {
                return None;
            }
            if slot.tag == tag && is_key(slot.entry) {
                return Some(SlotPos(at));
            }
            at = (at + 1) & self.mask;
        }
    }

    pub(crate) fn head(&self, pos: SlotPos) -> u32 {
        self.slots[pos.0].entry
    }

    pub(crate) fn set_head(&mut self, pos: SlotPos, entry: u32) {
        debug_assert_ne!(entry, NIL);
        self.slots[pos.0].entry = entry;
    }

    /// Adds a key known to be absent, with `entry` as its chain head.
    pub(crate) fn insert(&mut self, hash: u64, entry: u32) {
        assert!(2 * (self.len + 1) <= self.slots.len(), "key index over its sized load");
        let mut at = hash as usize & self.mask;
        while self.slots[at].entry != NIL {
            at = (at + 1) & self.mask;
        }
        self.slots[at] = Slot { tag: tag_of(hash), entry };
        self.len += 1;
    }

    /// Removes the key at `pos`. `hash_of` gives the full hash of any entry in the table.
    pub(crate) fn remove(&mut self, pos: SlotPos, hash_of: impl Fn(u32) -> u64) {
        let mut hole = pos.0;
        let mut at = (hole + 1) & self.mask;
        loop {
            let slot = self.slots[at];
            if slot.entry == NIL {
                break;
            }
            let home = hash_of(slot.entry) as usize & self.mask;
            // The slot may fill the hole if its home is not inside (hole, at]: probing from its
            // home then still passes the hole before reaching `at`.
            if at.wrapping_sub(home) & self.mask >= at.wrapping_sub(hole) & self.mask {
                self.slots[hole] = slot;
                hole = at;
            }
            at = (at + 1) & self.mask;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>()
    }
}

fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

#[cfg(test)]
mod tests;
