use super::*;
use wal::{BlockNumber, Fork};

fn rel(n: u32) -> RelTag {
    RelTag { spc_oid: 1663, db_oid: 1, rel_number: n, fork: Fork::Main }
}

fn key(r: u32, block: u32) -> PageKey {
    PageKey { rel: rel(r), block: BlockNumber(block) }
}

#[test]
fn sizes_follow_writes_truncation_and_drop() {
    let mut sizes = RelSizes::new();
    sizes.note_page_write(key(1, 4), Lsn(10));
    sizes.note_page_write(key(1, 2), Lsn(11));
    assert_eq!(sizes.size_at(rel(1), Lsn(10)), Some(5));
    assert_eq!(sizes.lookup(rel(1), Lsn(9)), None);
    sizes.set(rel(1), Lsn(20), Some(2));
    assert_eq!(sizes.size_at(rel(1), Lsn(20)), Some(2));
    assert_eq!(sizes.floor_for(key(1, 4), Lsn(25)), Lsn(20));
    assert_eq!(sizes.floor_for(key(1, 1), Lsn(25)), Lsn::INVALID);
    assert_eq!(sizes.floor_for(key(1, 4), Lsn(15)), Lsn::INVALID);
    assert_eq!(sizes.next_cut(key(1, 4), Lsn(15)), Some(Lsn(20)));
    assert_eq!(sizes.next_cut(key(1, 1), Lsn(15)), None);
    sizes.set(rel(1), Lsn(40), None);
    assert_eq!(sizes.lookup(rel(1), Lsn(40)), Some(None));
    assert_eq!(sizes.next_cut(key(1, 1), Lsn(15)), Some(Lsn(40)));
    assert_eq!(sizes.floor_for(key(1, 0), Lsn(40)), Lsn(40));
}

#[test]
fn events_rebuild_the_same_history() {
    let mut sizes = RelSizes::new();
    sizes.note_page_write(key(1, 4), Lsn(10));
    sizes.note_page_write(key(2, 0), Lsn(12));
    sizes.set(rel(1), Lsn(20), Some(2));
    sizes.set(rel(2), Lsn(30), None);
    let mut events = sizes.events_in(Lsn(0), Lsn(20));
    events.extend(sizes.events_in(Lsn(20), Lsn(100)));
    events.extend(sizes.snapshot_at(Lsn(20)));
    events.reverse();
    let rebuilt = RelSizes::from_events(events, None);
    for lsn in 0..40 {
        for r in [1, 2] {
            assert_eq!(
                rebuilt.lookup(rel(r), Lsn(lsn)),
                sizes.lookup(rel(r), Lsn(lsn)),
                "rel {r} at {lsn}"
            );
            assert_eq!(
                rebuilt.floor_for(key(r, 3), Lsn(lsn)),
                sizes.floor_for(key(r, 3), Lsn(lsn))
            );
        }
    }
    assert_eq!(
        sizes.snapshot_at(Lsn(35)),
        vec![RelEvent { rel: rel(1), lsn: Lsn(35), nblocks: Some(2) }]
    );
}

#[test]
fn a_branch_extends_and_truncates_from_the_inherited_size() {
    let inherit: Inherit = std::rc::Rc::new(|r: RelTag| (r == rel(1)).then_some(7));
    let mut sizes = RelSizes::inheriting(Some(inherit.clone()));
    sizes.note_page_write(key(1, 3), Lsn(100));
    assert_eq!(sizes.size_at(rel(1), Lsn(100)), None, "no event: the ancestor answers");
    sizes.note_page_write(key(1, 9), Lsn(110));
    assert_eq!(sizes.size_at(rel(1), Lsn(110)), Some(10));
    let mut truncating = RelSizes::inheriting(Some(inherit.clone()));
    truncating.set(rel(1), Lsn(100), Some(2));
    assert_eq!(truncating.floor_for(key(1, 5), Lsn(100)), Lsn(100), "inherited blocks 2.. are cut");
    let rebuilt = RelSizes::from_events(truncating.events_in(Lsn(0), Lsn(200)), Some(inherit));
    assert_eq!(rebuilt.floor_for(key(1, 5), Lsn(100)), Lsn(100));
}
