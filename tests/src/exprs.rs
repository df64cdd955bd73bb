//! Random expression trees of the problem language for property tests: coordinates, time,
//! parameters, constants, every function on arguments inside its domain, and windowed reductions.

/// A tiny deterministic generator, so that the trees are reproducible from a seed without a
/// property-testing crate in the library.
mod proptest_free {
    /// SplitMix64.
    #[derive(Debug, Clone)]
    pub struct Rng(pub u64);

    impl Rng {
        /// The next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n`.
        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n.max(1) as u64) as usize
        }

        /// Uniform in `[lo, hi)`.
        pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}

pub use proptest_free::Rng;

/// Text of a random expression over `x[0..dim]`, `t` (if `time`) and the parameter array `c` of
/// length `dim`, of depth at most `depth`. Functions with a restricted domain get `1 + a^2`.
pub fn random_text(rng: &mut Rng, dim: usize, time: bool, depth: usize) -> String {
    node(rng, dim, time, depth, None)
}

fn leaf(rng: &mut Rng, dim: usize, time: bool, window: Option<usize>) -> String {
    match (rng.below(5), window) {
        (0, _) => format!("{:.3}", rng.uniform(-2.0, 2.0)),
        (1, _) if time => "t".into(),
        (2, Some(w)) => format!("c[i+{}]", rng.below(w)),
        (2, None) => format!("c[{}]", rng.below(dim)),
        (_, Some(w)) => format!("x[i+{}]", rng.below(w)),
        (_, None) => format!("x[{}]", rng.below(dim)),
    }
}

fn node(rng: &mut Rng, dim: usize, time: bool, depth: usize, window: Option<usize>) -> String {
    if depth == 0 {
        return leaf(rng, dim, time, window);
    }
    let sub = |rng: &mut Rng| node(rng, dim, time, depth - 1, window);
    match rng.below(if window.is_none() { 14 } else { 12 }) {
        0 => format!("({} + {})", sub(rng), sub(rng)),
        1 => format!("({} - {})", sub(rng), sub(rng)),
        2 | 3 => format!("({} * {})", sub(rng), sub(rng)),
        4 => format!("({} / (1 + {}^2))", sub(rng), sub(rng)),
        5 => format!(
            "{}({})",
            ["sin", "cos", "tanh", "atan"][rng.below(4)],
            sub(rng)
        ),
        6 => format!("exp(tanh({}))", sub(rng)),
        7 => format!("{}(1 + {}^2)", ["log", "sqrt"][rng.below(2)], sub(rng)),
        8 => format!("({})^{}", sub(rng), 1 + rng.below(3)),
        9 => format!(
            "{}({}, {})",
            ["min", "max"][rng.below(2)],
            sub(rng),
            sub(rng)
        ),
        10 => format!("(1 + ({})^2)^{:.2}", sub(rng), rng.uniform(-1.0, 1.5)),
        11 => format!("abs({})", sub(rng)),
        12 => {
            let w = 1 + rng.below(dim.min(3));
            let body = node(rng, dim, time, depth - 1, Some(w));
            format!("sum(i in 0..d-{}, {})", w - 1, body)
        }
        _ => {
            let w = 1 + rng.below(dim.min(2));
            let body = node(rng, dim, time, depth.saturating_sub(2), Some(w));
            format!("max(i in 0..d-{}, {})", w - 1, body)
        }
    }
}
