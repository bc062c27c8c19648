use super::*;

#[test]
fn tpcb_like_reads_account_teller_branch_then_commits() {
    let mut chooser = Chooser::new(Workload::TpcbLike, 2, 0.99, 1);
    for _ in 0..100 {
        let plan = chooser.plan();
        assert_eq!(plan.read_count, 3);
        assert_eq!(plan.reads[0], Table::Accounts.locate(plan.rows.aid).0);
        assert_eq!(plan.reads[1], Table::Tellers.locate(plan.rows.tid).0);
        assert_eq!(plan.reads[2], Table::Branches.locate(plan.rows.bid).0);
        assert_eq!(plan.commit, Some(true));
    }
}

#[test]
fn read_only_workloads_do_not_commit() {
    for workload in [Workload::SelectOnly, Workload::GetpageUniform, Workload::GetpageZipf] {
        let plan = Chooser::new(workload, 1, 0.99, 1).plan();
        assert_eq!((plan.read_count, plan.commit), (1, None), "{workload:?}");
        assert!(!workload.writes());
    }
    assert_eq!(Chooser::new(Workload::SimpleUpdate, 1, 0.99, 1).plan().commit, Some(false));
}

#[test]
fn uniform_reads_cover_every_table() {
    let mut chooser = Chooser::new(Workload::GetpageUniform, 1, 0.99, 5);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50_000 {
        seen.insert(chooser.plan().reads[0]);
    }
    assert!(seen.contains(&Table::Branches.locate(1).0));
    assert!(seen.contains(&Table::Tellers.locate(1).0));
    assert!(seen.len() > 1600, "only {} of 1642 pages read", seen.len());
}

#[test]
fn window_lsns_stay_in_the_window() {
    let mut chooser = Chooser::new(Workload::SelectOnly, 1, 0.99, 9);
    let (start, latest) = (Lsn(1000), Lsn(2000));
    for _ in 0..10_000 {
        let lsn = chooser.read_lsn(LsnMode::RandomInWindow, latest, start);
        assert!(lsn >= start && lsn <= latest);
    }
    assert_eq!(chooser.read_lsn(LsnMode::Latest, latest, start), latest);
    assert_eq!(chooser.read_lsn(LsnMode::RandomInWindow, start, start), start);
}
