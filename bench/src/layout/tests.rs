use super::*;

#[test]
fn scale_one_has_pgbench_page_counts() {
    assert_eq!(Table::Accounts.pages(1), 1640);
    assert_eq!(Table::Tellers.pages(1), 1);
    assert_eq!(Table::Branches.pages(1), 1);
    assert_eq!(Table::Accounts.pages(10), 16394);
    assert_eq!(PageSpace::new(1).total(), 1642);
}

#[test]
fn page_space_covers_each_table_in_order() {
    let space = PageSpace::new(2);
    assert_eq!(space.key(0).rel, Table::Branches.rel());
    assert_eq!(space.key(1).rel, Table::Tellers.rel());
    assert_eq!(space.key(2).rel, Table::Accounts.rel());
    assert_eq!(space.key(2).block, BlockNumber(0));
    let last = space.key(space.total() - 1);
    assert_eq!(last.rel, Table::Accounts.rel());
    assert_eq!(u64::from(last.block.0), Table::Accounts.pages(2) - 1);
}

#[test]
fn locate_maps_rows_to_pages() {
    assert_eq!(Table::Accounts.locate(1).0.block, BlockNumber(0));
    assert_eq!(Table::Accounts.locate(61).0.block, BlockNumber(0));
    assert_eq!(Table::Accounts.locate(62), (Table::Accounts.locate(62).0, 0));
    assert_eq!(Table::Accounts.locate(62).0.block, BlockNumber(1));
    assert_eq!(Table::Accounts.locate(100_000).0.block, BlockNumber(1639));
}

#[test]
fn update_delta_rewrites_the_tuple_in_the_image() {
    let lsn = Lsn(0x1000);
    let mut page = initial_image(Table::Accounts, 1, 1, lsn);
    let delta = update_delta(Table::Accounts, 70, 1, -42, Lsn(0x2000));
    delta.apply(&mut page);
    assert_eq!(page[0..8], 0x2000u64.to_le_bytes());
    let offset = PAGE_SIZE - (70 - 62 + 1) * TUPLE_BYTES;
    assert_eq!(page[offset..offset + 4], 70u32.to_le_bytes());
    assert_eq!(page[offset + 8..offset + 12], (-42i32).to_le_bytes());
}

#[test]
fn random_rows_stay_in_range() {
    let mut rng = Rng::new(3);
    for _ in 0..10_000 {
        let rows = TxRows::random(&mut rng, 2);
        assert!((1..=200_000).contains(&rows.aid));
        assert!((1..=20).contains(&rows.tid));
        assert!((1..=2).contains(&rows.bid));
        assert!((-5000..=5000).contains(&rows.delta));
    }
}
