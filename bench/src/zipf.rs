//! Zipf-distributed page choice for `getpage-zipf`.
//!
//! Ranks `1..=n` are drawn with probability proportional to `1 / rank^theta` by rejection
//! inversion (Hörmann and Derflinger, "Rejection-inversion to generate variates from monotone
//! discrete distributions", 1996; the same method as Apache Commons'
//! `RejectionInversionZipfSampler`). It needs no O(n) table of zeta sums, takes O(1) expected
//! time per draw, and is valid for any `theta > 0`, on both sides of 1 — so YCSB's 0.99 and
//! pgbench's `random_zipfian` parameters above 1 both work.
//!
//! Rank 1 is the hottest. Ranks are then scattered over the page indexes by a fixed bijection
//! (`index = (rank - 1) * stride mod n`, `gcd(stride, n) = 1`), so hot pages are not all
//! neighbours in one relation, as in YCSB's "scrambled" zipfian.

use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    theta: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
    stride: u64,
}

impl Zipf {
    /// A sampler over `n > 0` items with exponent `theta > 0`.
    pub fn new(n: u64, theta: f64) -> Zipf {
        assert!(n > 0, "zipf needs at least one item");
        assert!(theta > 0.0 && theta.is_finite(), "zipf theta must be positive");
        let mut zipf = Zipf { n, theta, h_integral_x1: 0.0, h_integral_n: 0.0, s: 0.0, stride: 1 };
        zipf.h_integral_x1 = zipf.h_integral(1.5) - 1.0;
        zipf.h_integral_n = zipf.h_integral(n as f64 + 0.5);
        zipf.s = 2.0 - zipf.h_integral_inverse(zipf.h_integral(2.5) - zipf.h(2.0));
        zipf.stride = coprime_stride(n);
        zipf
    }

    /// A rank in `1..=n`; rank 1 is the most frequent.
    pub fn rank(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.s || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k;
            }
        }
    }

    /// An item index in `0..n`, scattered by the fixed bijection.
    pub fn index(&self, rng: &mut Rng) -> u64 {
        self.index_of_rank(self.rank(rng))
    }

    pub fn index_of_rank(&self, rank: u64) -> u64 {
        ((u128::from(rank - 1) * u128::from(self.stride)) % u128::from(self.n)) as u64
    }

    fn h(&self, x: f64) -> f64 {
        (-self.theta * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.theta) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.theta)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// A stride near `0.618 n` that is coprime with `n`, so `rank * stride mod n` is a bijection
/// that spreads neighbouring ranks far apart.
fn coprime_stride(n: u64) -> u64 {
    if n <= 2 {
        return 1;
    }
    let mut stride = ((n as f64 * 0.618_033_988_75) as u64).max(1);
    while gcd(stride, n) != 1 {
        stride += 1;
    }
    stride
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests;
