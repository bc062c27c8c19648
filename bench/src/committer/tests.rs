use super::*;

fn tx(aid: u64, full: bool) -> CommitRequest {
    CommitRequest {
        job: 0,
        client: 0,
        slot: 0,
        rows: TxRows { aid, tid: 3, bid: 1, delta: -7 },
        full,
    }
}

#[test]
fn lsns_strictly_increase_across_groups() {
    let mut lsns = LsnAllocator::new(Lsn(0x100_0000));
    let mut history_row = 500;
    let mut records = Vec::new();
    build_records(&[tx(1, true), tx(70, false)], &mut lsns, &mut history_row, &mut records);
    build_records(&[tx(100_000, true)], &mut lsns, &mut history_row, &mut records);
    assert_eq!(records.len(), 4 + 2 + 4);
    assert!(records[0].lsn > Lsn(0x100_0000));
    for pair in records.windows(2) {
        assert!(pair[1].lsn > pair[0].lsn, "{} then {}", pair[0].lsn, pair[1].lsn);
        // Each LSN is the previous advanced by the record's own encoded size.
        assert_eq!(pair[1].lsn.0 - pair[0].lsn.0, pair[1].encoded_size() as u64);
    }
    assert_eq!(lsns.last(), records.last().unwrap().lsn);
    assert_eq!(history_row, 503);
}

#[test]
fn tpcb_records_touch_account_teller_branch_and_history() {
    let mut lsns = LsnAllocator::new(Lsn(1000));
    let mut history_row = 99;
    let mut records = Vec::new();
    build_records(&[tx(62, true)], &mut lsns, &mut history_row, &mut records);
    let keys: Vec<PageKey> = records.iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        vec![
            Table::Accounts.locate(62).0,
            Table::Tellers.locate(3).0,
            Table::Branches.locate(1).0,
            Table::History.locate(100).0,
        ]
    );
    // Row 99 is the last of history page 0.
    assert_eq!(keys[3].block.0, 0);
    for record in &records {
        let RecordBody::Delta(delta) = &record.body else { panic!("updates are deltas") };
        // The page's pd_lsn patch carries the record's own LSN.
        let (offset, bytes) = delta.patches().next().unwrap();
        assert_eq!((offset, bytes), (0, &record.lsn.0.to_le_bytes()[..]));
    }
}

#[test]
fn a_full_group_fits_one_append() {
    let mut lsns = LsnAllocator::new(Lsn(1));
    let mut history_row = 0;
    let mut records = Vec::new();
    let group: Vec<CommitRequest> =
        (1..=MAX_TX_PER_APPEND as u64).map(|aid| tx(aid, true)).collect();
    build_records(&group, &mut lsns, &mut history_row, &mut records);
    assert!(records.len() <= server::proto::MAX_APPEND_RECORDS);
    let bytes: usize = records.iter().map(|r| r.encoded_size() + 4).sum();
    assert!(bytes + 64 < server::proto::MAX_FRAME_SIZE);
}
