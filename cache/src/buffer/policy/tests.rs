use super::*;

/// Inserts entries `0..frames` with `placement`, then evicts `count` times, returning victims.
fn victims(policy: &mut Policy, count: usize) -> Vec<u32> {
    (0..count)
        .map(|_| {
            let victim = policy.evict(u64::from);
            policy.check();
            victim
        })
        .collect()
}

fn filled(kind: PolicyKind, frames: u32) -> Policy {
    let mut policy = Policy::new(kind, frames as usize);
    for index in 0..frames {
        let placement = policy.admit(u64::from(index), false, false);
        policy.inserted(index, placement);
    }
    policy.check();
    policy
}

#[test]
fn lru_evicts_the_least_recently_touched() {
    let mut policy = filled(PolicyKind::Lru, 4);
    policy.touched(0);
    policy.touched(2);
    assert_eq!(victims(&mut policy, 4), [1, 3, 0, 2]);
}

#[test]
fn lru_close_demotes_to_the_tail() {
    let mut policy = filled(PolicyKind::Lru, 4);
    policy.closed(3);
    assert_eq!(victims(&mut policy, 2), [3, 0]);
}

#[test]
fn sieve_spares_visited_entries_and_keeps_its_hand() {
    let mut policy = filled(PolicyKind::SieveNoAdmission, 4);
    policy.touched(0);
    policy.touched(1);
    // The hand clears 0 and 1, evicts 2; then continues towards the head: 3.
    assert_eq!(victims(&mut policy, 2), [2, 3]);
    let placement = policy.admit(9, true, false);
    policy.inserted(2, placement);
    // From the head the hand wraps to the tail: 0 and 1 lost their bits.
    assert_eq!(victims(&mut policy, 1), [0]);
}

#[test]
fn sieve_doorkeeper_admits_on_the_second_miss_once_full() {
    let mut policy = Policy::new(PolicyKind::Sieve, 4);
    assert_eq!(policy.admit(5, false, false), Placement::Main);
    assert_eq!(policy.admit(6, true, false), Placement::Reject);
    assert_eq!(policy.admit(6, true, false), Placement::Main);
    assert_eq!(policy.admit(6, true, false), Placement::Reject);
    assert_eq!(policy.admit(7, true, true), Placement::Main);
}

#[test]
fn s3fifo_promotes_touched_small_entries_and_ghosts_the_rest() {
    let mut policy = filled(PolicyKind::S3Fifo, 10);
    policy.touched(0);
    // Small queue holds all 10 (target 1): 0 is promoted, 1 evicted into the ghost.
    assert_eq!(victims(&mut policy, 1), [1]);
    // The ghost sends a returning key straight to main.
    assert_eq!(policy.admit(1, true, false), Placement::Main);
    assert_eq!(policy.admit(1, true, false), Placement::Small);
    // A new version of a cached key skips probation.
    assert_eq!(policy.admit(77, true, true), Placement::Main);
}

#[test]
fn s3fifo_main_reinserts_while_the_counter_lasts() {
    let mut policy = filled(PolicyKind::S3FifoNoAdmission, 3);
    for _ in 0..5 {
        policy.touched(0);
    }
    policy.touched(1);
    // 0 has 3 (capped), 1 has 1: 2 goes first, then 1 after one pass, 0 last.
    assert_eq!(victims(&mut policy, 3), [2, 1, 0]);
}

#[test]
fn remove_detaches_from_any_queue() {
    for kind in PolicyKind::ALL {
        let mut policy = filled(kind, 6);
        policy.touched(3);
        let _ = policy.evict(u64::from);
        for index in [0, 5, 4] {
            if policy.nodes[index as usize].queue != Queue::Detached {
                policy.remove(index);
                policy.check();
            }
        }
        while policy.len() > 0 {
            let _ = policy.evict(u64::from);
            policy.check();
        }
    }
}

#[test]
fn closing_a_version_drops_its_credit() {
    let mut policy = filled(PolicyKind::S3FifoNoAdmission, 3);
    for index in 0..3 {
        policy.touched(index);
        policy.touched(index);
    }
    policy.closed(1);
    assert_eq!(victims(&mut policy, 1), [1]);
}
