//! Deterministic randomness shared by the estimator and model-gradient tests: a [`ProbeRng`] on a
//! running Philox counter, plus uniforms and ball points for test inputs.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use stde_core::estimator::ProbeRng;
use stde_core::rng::{box_muller_f64, uniform_f64, Philox};

/// A deterministic [`ProbeRng`]: every call consumes fresh Philox blocks from a running counter of
/// its own stream.
#[derive(Debug)]
pub struct TestRng {
    philox: Philox,
    stream: u32,
    counter: u64,
    inner_radius: f64,
}

impl TestRng {
    /// Draws from `stream` of `seed`; ball points keep a radius of at least `inner_radius·r_max`.
    pub fn new(seed: u64, stream: u32, inner_radius: f64) -> Self {
        Self {
            philox: Philox::new(seed),
            stream,
            counter: 0,
            inner_radius,
        }
    }

    fn block(&mut self) -> [u32; 4] {
        let c = self.counter;
        self.counter += 1;
        self.philox.block(self.stream, (c >> 32) as u32, c as u32)
    }

    /// Uniform on `0..n` (64-bit multiply-shift; the bias is below `n / 2⁶⁴`).
    pub fn below(&mut self, n: usize) -> usize {
        let b = self.block();
        let w = u64::from(b[0]) | (u64::from(b[1]) << 32);
        ((u128::from(w) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        let b = self.block();
        uniform_f64(b[0], b[1])
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// `n` uniforms in `[lo, hi)`.
    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform_in(lo, hi)).collect()
    }

    /// `n` points in the ball of radius `r_max` (Gaussian direction, radius uniform between
    /// `inner_radius·r_max` and `r_max`).
    pub fn ball_points(&mut self, n: usize, d: usize, r_max: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let z = self.gaussian(d);
            let norm = z.iter().map(|c| c * c).sum::<f64>().sqrt();
            let r = r_max * (self.inner_radius + (1.0 - self.inner_radius) * self.uniform());
            out.extend(z.iter().map(|c| c * r / norm));
        }
        out
    }
}

impl ProbeRng for TestRng {
    /// Floyd's algorithm: for `j = n − k .. n`, draw `t` on `0..=j` and take `j` if `t` is taken.
    fn index_set(&mut self, population: usize, count: usize) -> Vec<usize> {
        assert!(count <= population);
        let mut out: Vec<usize> = Vec::with_capacity(count);
        for j in population - count..population {
            let t = self.below(j + 1);
            out.push(if out.contains(&t) { j } else { t });
        }
        out
    }

    fn rademacher(&mut self, count: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(count + 3);
        while out.len() < count {
            for w in self.block() {
                out.push(if w & 0x8000_0000 != 0 { -1.0 } else { 1.0 });
            }
        }
        out.truncate(count);
        out
    }

    fn gaussian(&mut self, count: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(count + 1);
        while out.len() < count {
            out.extend(box_muller_f64(self.block()));
        }
        out.truncate(count);
        out
    }
}
