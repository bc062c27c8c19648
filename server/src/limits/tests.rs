use super::*;
use std::time::Duration;

#[test]
fn a_bucket_allows_its_burst_then_its_rate() {
    let bucket = TokenBucket::new(100, 1.0);
    let start = Instant::now();
    let allowed = (0..150).filter(|_| bucket.take_at(1, start)).count();
    assert_eq!(allowed, 100, "a full bucket holds one second of rate");
    assert!(!bucket.take_at(1, start));
    assert!(bucket.take_at(1, start + Duration::from_millis(20)), "refilled at 100/s");
    let after_second = start + Duration::from_secs(2);
    assert_eq!(
        (0..300).filter(|_| bucket.take_at(1, after_second)).count(),
        100,
        "capped at the burst"
    );
}

#[test]
fn zero_rate_never_limits_and_huge_requests_are_slowed_not_starved() {
    let open = TokenBucket::new(0, 1.0);
    assert!((0..10_000).all(|_| open.take(1_000_000)));
    let bucket = TokenBucket::new(10, 1.0);
    let start = Instant::now();
    assert!(
        bucket.take_at(1_000, start),
        "a full bucket lets a request larger than the burst through"
    );
    assert!(!bucket.take_at(1, start));
}
