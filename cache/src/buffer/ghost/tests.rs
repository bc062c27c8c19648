use super::*;

#[test]
fn remembers_the_last_window_insertions_and_forgets_on_take() {
    let mut ghost = Ghost::new(64);
    let hash = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in 0..64 {
        ghost.insert(hash(i));
    }
    // A 4-way table with twice the window in slots keeps (nearly) every recent key.
    let kept = (0..64).filter(|&i| ghost.take(hash(i))).count();
    assert!(kept >= 60, "kept {kept} of 64");
    // Taken keys are gone.
    assert_eq!((0..64).filter(|&i| ghost.take(hash(i))).count(), 0);
}

#[test]
fn entries_older_than_the_window_read_as_absent() {
    let mut ghost = Ghost::new(8);
    ghost.insert(0xdead_beef_0000_0001);
    for i in 0..8 {
        ghost.insert(i << 40 | 2);
    }
    assert!(!ghost.take(0xdead_beef_0000_0001));
    ghost.insert(0xdead_beef_0000_0001);
    assert!(ghost.take(0xdead_beef_0000_0001));
}

#[test]
fn a_zero_window_remembers_nothing() {
    let mut ghost = Ghost::new(0);
    ghost.insert(42);
    assert!(!ghost.take(42));
}
