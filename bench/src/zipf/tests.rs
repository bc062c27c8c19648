use super::*;

/// Draws `draws` ranks and compares each of the first ranks' frequency with the exact
/// probability `rank^-theta / H(n, theta)`.
fn check(n: u64, theta: f64, draws: u64, tolerance: f64) {
    let zipf = Zipf::new(n, theta);
    let mut rng = Rng::new(7);
    let mut counts = vec![0u64; n as usize + 1];
    for _ in 0..draws {
        let rank = zipf.rank(&mut rng);
        assert!((1..=n).contains(&rank), "rank {rank} out of 1..={n}");
        counts[rank as usize] += 1;
    }
    let norm: f64 = (1..=n).map(|k| (k as f64).powf(-theta)).sum();
    for rank in 1..=n.min(10) {
        let expected = (rank as f64).powf(-theta) / norm;
        let got = counts[rank as usize] as f64 / draws as f64;
        assert!(
            (got - expected).abs() <= tolerance * expected,
            "n={n} theta={theta} rank {rank}: frequency {got:.5}, expected {expected:.5}"
        );
    }
}

#[test]
fn frequencies_match_the_zipf_law_below_one() {
    check(1000, 0.99, 400_000, 0.05);
    check(1640, 0.5, 400_000, 0.08);
}

#[test]
fn frequencies_match_the_zipf_law_above_one() {
    check(1000, 1.5, 400_000, 0.05);
    check(50, 1.0, 400_000, 0.05);
}

#[test]
fn single_item() {
    let zipf = Zipf::new(1, 0.99);
    let mut rng = Rng::new(1);
    assert!((0..100).all(|_| zipf.index(&mut rng) == 0));
}

#[test]
fn scatter_is_a_bijection() {
    for n in [1u64, 2, 3, 10, 1640, 4096, 16_400] {
        let zipf = Zipf::new(n, 0.99);
        let mut seen = vec![false; n as usize];
        for rank in 1..=n {
            let index = zipf.index_of_rank(rank);
            assert!(!seen[index as usize], "n={n}: index {index} hit twice");
            seen[index as usize] = true;
        }
    }
}

#[test]
fn hottest_pages_are_not_neighbours() {
    let zipf = Zipf::new(1640, 0.99);
    let first = zipf.index_of_rank(1);
    let second = zipf.index_of_rank(2);
    assert!(first.abs_diff(second) > 100, "ranks 1 and 2 map to {first} and {second}");
}
