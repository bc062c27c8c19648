//! Eviction and admission for the buffer cache: which entry gives up its frame, and whether a
//! new entry gets one at all.
//!
//! The policy sees entries only as slab indexes (`u32`, one per frame); it owns the per-entry
//! queue links and frequency bits in a slab of its own ([`Node`]), sized once at construction.
//! It knows nothing of keys, LSNs or page bytes: the cache hands it a key hash where an
//! admission decision or a ghost entry needs one. Every operation is O(1) except eviction,
//! whose loops are bounded by the number of entries (each pass clears a bit or decrements a
//! counter, so a victim appears within two sweeps).
//!
//! Queues are intrusive doubly-linked lists: `head` is the newest insertion, `tail` the oldest;
//! `next` points towards the tail, `prev` towards the head.
//!
//! | kind                  | queues                         | on hit            | admission            |
//! |-----------------------|--------------------------------|-------------------|----------------------|
//! | `S3Fifo`              | small (10 %) + main, ghost     | freq += 1 (max 3) | small queue + ghost  |
//! | `S3FifoNoAdmission`   | main only (FIFO-reinsertion)   | freq += 1 (max 3) | none                 |
//! | `Sieve`               | one queue and a hand           | visited = 1       | ghost doorkeeper     |
//! | `SieveNoAdmission`    | one queue and a hand           | visited = 1       | none                 |
//! | `Lru`                 | one queue, hit moves to head   | move to head      | none                 |
//!
//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023): new
//! entries go to a small FIFO holding about 10 % of the frames; an entry reaching its tail is
//! promoted to the main queue if it was hit since insertion, else evicted and its key hash
//! remembered in a ghost FIFO as long as the main queue. A key found in the ghost goes straight
//! to main. Main is FIFO with reinsertion: a tail entry with a nonzero 2-bit counter is
//! reinserted at the head with the counter decremented. One-off accesses (scans) thus only
//! ever churn the small queue.
//!
//! SIEVE (Zhang et al., NSDI 2024): one FIFO, a visited bit set on hit, and a hand moving from
//! tail to head that clears visited bits and evicts the first unvisited entry. `Sieve` adds the
//! doorkeeper admission rule: once the cache is full, a key is admitted only if it missed
//! recently (its hash is in the ghost) or already has a cached version; a first miss only
//! records the hash.
//!
//! Versions that stop being current ([`Policy::closed`]) are demoted (counter or visited bit
//! cleared, LRU: moved to the tail): only point-in-time readers still want them.

use super::ghost::Ghost;

/// The "no entry" index in links and queue ends.
pub(crate) const NIL: u32 = u32::MAX;

/// Ceiling of the S3-FIFO frequency counter (2 bits).
const FREQ_MAX: u8 = 3;

/// Hits an entry needs while in the small queue to be promoted to main rather than evicted.
/// With two, the simulator's hit ratios moved by at most 0.1 point on every trace and size, so
/// the simpler rule stays: any reuse while on probation earns a place in main.
const PROMOTE_FREQ: u8 = 1;

/// Share of the frames the small queue aims to hold, in percent.
const SMALL_PERCENT: usize = 10;

/// Eviction policy and admission rule of a [`super::BufferCache`]. The study behind the choice
/// is in the `buffer` module doc and `bench/RESULTS.md`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PolicyKind {
    /// S3-FIFO: a small probationary FIFO, a main FIFO with reinsertion, a ghost of recent
    /// evictions from the small queue. The production choice.
    S3Fifo,
    /// S3-FIFO's main queue alone (FIFO-reinsertion with a 2-bit counter, CLOCK-like): every
    /// insert is admitted to main.
    S3FifoNoAdmission,
    /// SIEVE with the doorkeeper admission rule (admit on a recent second miss once full).
    Sieve,
    /// Plain SIEVE.
    SieveNoAdmission,
    /// Least-recently-used, no admission rule: the baseline.
    Lru,
}

impl PolicyKind {
    /// Every kind, in the order the simulator reports them.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::S3Fifo,
        PolicyKind::S3FifoNoAdmission,
        PolicyKind::Sieve,
        PolicyKind::SieveNoAdmission,
        PolicyKind::Lru,
    ];

    /// A short stable name for tables and command lines.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::S3Fifo => "s3fifo",
            PolicyKind::S3FifoNoAdmission => "s3fifo-noadm",
            PolicyKind::Sieve => "sieve",
            PolicyKind::SieveNoAdmission => "sieve-noadm",
            PolicyKind::Lru => "lru",
        }
    }
}

/// Where an admitted entry starts, or that it is refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Placement {
    Reject,
    Small,
    Main,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Queue {
    Detached,
    Small,
    Main,
}

/// Per-entry policy state.
#[derive(Clone, Copy, Debug)]
struct Node {
    prev: u32,
    next: u32,
    /// S3-FIFO counter, or SIEVE's visited bit (0 or 1). Unused by LRU.
    freq: u8,
    queue: Queue,
}

const DETACHED: Node = Node { prev: NIL, next: NIL, freq: 0, queue: Queue::Detached };

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY_LIST: List = List { head: NIL, tail: NIL, len: 0 };

pub(crate) struct Policy {
    kind: PolicyKind,
    nodes: Vec<Node>,
    small: List,
    main: List,
    /// SIEVE's hand: the next entry to examine, moving tail to head; `NIL` restarts at the tail.
    hand: u32,
    /// S3-FIFO: hashes evicted from the small queue. `Sieve`: hashes refused once.
    ghost: Ghost,
    /// S3-FIFO: the small queue's share of the frames.
    small_target: u32,
}

impl Policy {
    /// A policy for `frames` entries (indexes `0..frames`), all detached.
    pub(crate) fn new(kind: PolicyKind, frames: usize) -> Policy {
        let frames_u32 = u32::try_from(frames).expect("frame count fits the u32 entry index");
        let small_target = (frames * SMALL_PERCENT / 100).max(1) as u32;
        let ghost_window = match kind {
            PolicyKind::S3Fifo => frames_u32.saturating_sub(small_target).max(1),
            PolicyKind::Sieve => frames_u32,
            PolicyKind::S3FifoNoAdmission | PolicyKind::SieveNoAdmission | PolicyKind::Lru => 0,
        };
        Policy {
            kind,
            nodes: vec![DETACHED; frames],
            small: EMPTY_LIST,
            main: EMPTY_LIST,
            hand: NIL,
            ghost: Ghost::new(ghost_window),
            small_target,
        }
    }

    pub(crate) fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Admission: where a new entry for the key with `hash` goes. `full`: no free frame, so
    /// admitting evicts. `resident`: the key already has a cached version (so it is not a
    /// one-off access).
    pub(crate) fn admit(&mut self, hash: u64, full: bool, resident: bool) -> Placement {
        match self.kind {
            PolicyKind::S3Fifo => {
                // Take the ghost entry even for a resident key: it has done its job.
                if self.ghost.take(hash) || resident {
                    Placement::Main
                } else {
                    Placement::Small
                }
            }
            PolicyKind::Sieve => {
                if !full || resident || self.ghost.take(hash) {
                    Placement::Main
                } else {
                    self.ghost.insert(hash);
                    Placement::Reject
                }
            }
            PolicyKind::S3FifoNoAdmission | PolicyKind::SieveNoAdmission | PolicyKind::Lru => {
                Placement::Main
            }
        }
    }

    /// Entry `index` was just filled, with the placement [`Policy::admit`] chose.
    pub(crate) fn inserted(&mut self, index: u32, placement: Placement) {
        debug_assert_eq!(self.nodes[index as usize].queue, Queue::Detached);
        match placement {
            Placement::Small => self.push_head(index, Queue::Small, 0),
            Placement::Main => self.push_head(index, Queue::Main, 0),
            Placement::Reject => unreachable!("a refused entry is never inserted"),
        }
    }

    /// Entry `index` served a read.
    pub(crate) fn touched(&mut self, index: u32) {
        debug_assert_ne!(self.nodes[index as usize].queue, Queue::Detached);
        match self.kind {
            PolicyKind::S3Fifo | PolicyKind::S3FifoNoAdmission => {
                let node = &mut self.nodes[index as usize];
                node.freq = (node.freq + 1).min(FREQ_MAX);
            }
            PolicyKind::Sieve | PolicyKind::SieveNoAdmission => self.nodes[index as usize].freq = 1,
            PolicyKind::Lru => {
                if self.main.head != index {
                    self.unlink(index);
                    self.push_head(index, Queue::Main, 0);
                }
            }
        }
    }

    /// Entry `index` stopped being the current version of its key: demote it.
    pub(crate) fn closed(&mut self, index: u32) {
        match self.kind {
            PolicyKind::Lru => {
                if self.main.tail != index {
                    self.unlink(index);
                    self.push_tail(index, Queue::Main);
                }
            }
            _ => self.nodes[index as usize].freq = 0,
        }
    }

    /// Entry `index` leaves the cache for a reason other than eviction (purge, invalidation).
    pub(crate) fn remove(&mut self, index: u32) {
        self.unlink(index);
    }

    /// Chooses a victim, detaches it and returns its index. `hash_of` gives an entry's key
    /// hash, for the ghost. Needs at least one attached entry.
    pub(crate) fn evict(&mut self, hash_of: impl Fn(u32) -> u64) -> u32 {
        assert!(self.small.len + self.main.len > 0, "evict from an empty cache");
        match self.kind {
            PolicyKind::S3Fifo | PolicyKind::S3FifoNoAdmission => self.evict_s3fifo(hash_of),
            PolicyKind::Sieve | PolicyKind::SieveNoAdmission => self.evict_sieve(),
            PolicyKind::Lru => {
                let victim = self.main.tail;
                self.unlink(victim);
                victim
            }
        }
    }

    /// Entries attached to a queue.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        (self.small.len + self.main.len) as usize
    }

    /// Heap bytes held per frame: the node slab plus the ghost.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node>() + self.ghost.heap_bytes()
    }

    fn evict_s3fifo(&mut self, hash_of: impl Fn(u32) -> u64) -> u32 {
        loop {
            let from_small =
                self.small.len > 0 && (self.small.len >= self.small_target || self.main.len == 0);
            if from_small {
                let tail = self.small.tail;
                self.unlink(tail);
                if self.nodes[tail as usize].freq >= PROMOTE_FREQ {
                    self.push_head(tail, Queue::Main, 0);
                } else {
                    self.ghost.insert(hash_of(tail));
                    return tail;
                }
            } else {
                let tail = self.main.tail;
                let freq = self.nodes[tail as usize].freq;
                self.unlink(tail);
                if freq > 0 {
                    self.push_head(tail, Queue::Main, freq - 1);
                } else {
                    return tail;
                }
            }
        }
    }

    fn evict_sieve(&mut self) -> u32 {
        let mut at = if self.hand == NIL { self.main.tail } else { self.hand };
        loop {
            let node = &mut self.nodes[at as usize];
            if node.freq == 0 {
                // `unlink` moves the hand off the victim, to its `prev`.
                self.hand = at;
                self.unlink(at);
                return at;
            }
            node.freq = 0;
            at = if node.prev == NIL { self.main.tail } else { node.prev };
        }
    }

    fn list_mut(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
            Queue::Detached => unreachable!("a detached entry is in no list"),
        }
    }

    fn push_head(&mut self, index: u32, queue: Queue, freq: u8) {
        let old_head = self.list_mut(queue).head;
        self.nodes[index as usize] = Node { prev: NIL, next: old_head, freq, queue };
        if old_head == NIL {
            self.list_mut(queue).tail = index;
        } else {
            self.nodes[old_head as usize].prev = index;
        }
        let list = self.list_mut(queue);
        list.head = index;
        list.len += 1;
    }

    fn push_tail(&mut self, index: u32, queue: Queue) {
        let freq = self.nodes[index as usize].freq;
        let old_tail = self.list_mut(queue).tail;
        self.nodes[index as usize] = Node { prev: old_tail, next: NIL, freq, queue };
        if old_tail == NIL {
            self.list_mut(queue).head = index;
        } else {
            self.nodes[old_tail as usize].next = index;
        }
        let list = self.list_mut(queue);
        list.tail = index;
        list.len += 1;
    }

    /// Detaches `index` from its queue; keeps its frequency (callers that reinsert reset it).
    fn unlink(&mut self, index: u32) {
        let Node { prev, next, queue, .. } = self.nodes[index as usize];
        assert_ne!(queue, Queue::Detached, "unlink of a detached entry");
        if self.hand == index {
            self.hand = prev;
        }
        if prev == NIL {
            self.list_mut(queue).head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.list_mut(queue).tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.list_mut(queue).len -= 1;
        let node = &mut self.nodes[index as usize];
        node.prev = NIL;
        node.next = NIL;
        node.queue = Queue::Detached;
    }

    /// O(n) consistency check of the queues, for tests and debug builds.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut seen = 0;
        for (list, queue) in [(&self.small, Queue::Small), (&self.main, Queue::Main)] {
            let mut count = 0;
            let mut prev = NIL;
            let mut at = list.head;
            while at != NIL {
                let node = self.nodes[at as usize];
                assert_eq!(node.queue, queue);
                assert_eq!(node.prev, prev);
                prev = at;
                at = node.next;
                count += 1;
            }
            assert_eq!(list.tail, prev);
            assert_eq!(list.len, count);
            seen += count;
        }
        let attached = self.nodes.iter().filter(|n| n.queue != Queue::Detached).count();
        assert_eq!(attached, seen as usize);
        if self.hand != NIL {
            assert_eq!(self.nodes[self.hand as usize].queue, Queue::Main);
        }
    }
}

#[cfg(test)]
mod tests;
