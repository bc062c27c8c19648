use super::*;

#[test]
fn percentiles_come_from_the_recorded_values() {
    let mut recorder = Recorder::default();
    for us in 1..=1000u64 {
        recorder.record("get_page", Duration::from_micros(us));
    }
    let summary = &recorder.summaries(Duration::from_secs(2))["get_page"];
    assert_eq!(summary.count, 1000);
    assert_eq!(summary.throughput_per_s, 500.0);
    let near = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
    assert!(near(summary.p50_us, 500.0), "p50 {}", summary.p50_us);
    assert!(near(summary.p90_us, 900.0), "p90 {}", summary.p90_us);
    assert!(near(summary.p99_us, 990.0), "p99 {}", summary.p99_us);
    assert!(near(summary.max_us, 1000.0), "max {}", summary.max_us);
    assert!(near(summary.mean_us, 500.5), "mean {}", summary.mean_us);
}

#[test]
fn merge_adds_counts_and_errors() {
    let mut a = Recorder::default();
    let mut b = Recorder::default();
    a.record("transaction", Duration::from_micros(10));
    b.record("transaction", Duration::from_micros(30));
    b.record("commit", Duration::from_micros(300));
    b.error("NotFound");
    b.late = 2;
    a.merge(&b);
    a.merge(&b);
    assert_eq!(a.count("transaction"), 3);
    assert_eq!(a.count("commit"), 2);
    assert_eq!(a.errors["NotFound"], 2);
    assert_eq!(a.late, 4);
    assert_eq!(a.error_count(), 2);
}

#[test]
fn huge_and_zero_latencies_are_clamped() {
    let mut recorder = Recorder::default();
    recorder.record("x", Duration::ZERO);
    recorder.record("x", Duration::from_secs(1000));
    assert_eq!(recorder.count("x"), 2);
    let summary = &recorder.summaries(Duration::from_secs(1))["x"];
    assert!(summary.max_us >= 99_000_000.0);
}
