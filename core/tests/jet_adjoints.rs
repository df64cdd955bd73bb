//! Tests for the adjoints of `series.rs` (`unary_adjoint` for every `Unary` op, `mul_adjoint`,
//! `div_adjoint`) against central finite differences of their forward rules.

use stde_core::jet::Jet;
use stde_core::series::{self, Unary};

/// Random cases per op per order.
const CASES: usize = 20;
/// Relative tolerance of the finite-difference comparison.
const TOL: f64 = 1e-6;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }

    /// Uniform magnitude in `[lo, hi)` with a random sign.
    fn signed(&mut self, lo: f64, hi: f64) -> f64 {
        let m = self.uniform(lo, hi);
        if self.next_u64() & 1 == 0 {
            m
        } else {
            -m
        }
    }

    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

#[derive(Default)]
struct Checker {
    checks: usize,
    failures: Vec<String>,
    /// Largest `|diff| / bound` seen (printed with `--nocapture`, to judge the margin).
    worst: f64,
    /// Largest share of the bound taken by the finite difference's own rounding error.
    worst_roundoff: f64,
}

impl Checker {
    /// Records a failure unless `|adjoint − fd| ≤ TOL·max(1, |fd|) + roundoff`, where `roundoff` bounds
    /// the cancellation error of the finite difference itself.
    fn close(
        &mut self,
        case: &str,
        order: usize,
        index: usize,
        adjoint: f64,
        fd: f64,
        roundoff: f64,
    ) {
        self.checks += 1;
        let bound = TOL * 1f64.max(fd.abs()) + roundoff;
        self.worst = self.worst.max((adjoint - fd).abs() / bound);
        self.worst_roundoff = self.worst_roundoff.max(roundoff / bound);
        // Written so that a NaN counts as a failure.
        let ok = (adjoint - fd).abs() <= bound;
        if !ok && self.failures.len() < 30 {
            self.failures.push(format!(
                "{case}: order {order}, index {index}: adjoint {adjoint:e}, finite difference {fd:e}, \
                 |diff| {:e} > bound {bound:e}",
                (adjoint - fd).abs()
            ));
        }
    }

    fn finish(self, what: &str) {
        eprintln!(
            "{what}: {} checks, worst |diff|/bound {:.3e}, worst roundoff share {:.3e}",
            self.checks, self.worst, self.worst_roundoff
        );
        assert!(
            self.failures.is_empty(),
            "{what}: {} failure(s) out of {} checks, first ones:\n{}",
            self.failures.len(),
            self.checks,
            self.failures.join("\n")
        );
        assert!(self.checks > 0, "{what}: nothing was checked");
    }
}

/// `L = Σ_k b̄_k·b_k` and `Σ_k |b̄_k·b_k|` (the scale of its rounding error).
fn pairing(out_bar: &[f64], b: &[f64]) -> (f64, f64) {
    out_bar.iter().zip(b).fold((0.0, 0.0), |(s, m), (&u, &v)| {
        (s + u * v, m + (u * v).abs())
    })
}

/// Central finite difference of `loss` with respect to `x[j]`, with a bound on its rounding error.
fn central_difference(x: &[f64], j: usize, loss: impl Fn(&[f64]) -> (f64, f64)) -> (f64, f64) {
    let h = 1e-6 * 1f64.max(x[j].abs());
    let mut xp = x.to_vec();
    let mut xm = x.to_vec();
    xp[j] += h;
    xm[j] -= h;
    let step = xp[j] - xm[j];
    let (lp, mp) = loss(&xp);
    let (lm, mm) = loss(&xm);
    let roundoff = 8.0 * f64::EPSILON * (mp + mm) / step;
    ((lp - lm) / step, roundoff)
}

fn unary_ops() -> Vec<Unary> {
    let mut ops = vec![
        Unary::Neg,
        Unary::Scale(-2.5),
        Unary::Scale(0.75),
        Unary::Square,
        Unary::Recip,
        Unary::Exp,
        Unary::Log,
        Unary::Sin,
        Unary::Cos,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Sqrt,
    ];
    ops.extend([-3, -2, -1, 0, 1, 2, 3, 5].map(Unary::Powi));
    ops
}

fn sample_a0(op: Unary, rng: &mut Rng) -> f64 {
    match op {
        Unary::Log | Unary::Sqrt => rng.uniform(0.5, 3.0),
        Unary::Recip => rng.signed(0.5, 2.0),
        Unary::Powi(n) if n < 0 => rng.signed(0.5, 2.0),
        Unary::Sin | Unary::Cos | Unary::Sigmoid | Unary::Softplus => rng.uniform(-3.0, 3.0),
        _ => rng.uniform(-2.0, 2.0),
    }
}

#[test]
fn unary_adjoints_match_finite_differences() {
    let mut chk = Checker::default();
    let mut rng = Rng(0xAD_0001);
    for op in unary_ops() {
        for order in 1..=8 {
            let n = order + 1;
            for case in 0..CASES {
                let mut a = rng.vec(n, -1.0, 1.0);
                a[0] = sample_a0(op, &mut rng);
                let out_bar = rng.vec(n, -1.0, 1.0);

                let mut out = vec![0.0; n];
                let mut deriv = vec![0.0; n];
                series::unary_forward(op, &a, &mut out, &mut deriv);
                // The adjoint accumulates: start from a random ā and subtract it afterwards.
                let start = rng.vec(n, -1.0, 1.0);
                let mut a_bar = start.clone();
                series::unary_adjoint(&deriv, &out_bar, &mut a_bar);

                // The jet API hands out the same σ' series.
                let (jet_out, jet_deriv) = Jet::from_taylor(a.clone()).unary_with_derivative(op);
                assert_eq!(jet_out.taylor(), &out[..]);
                assert_eq!(jet_deriv.taylor(), &deriv[..]);

                let loss = |x: &[f64]| pairing(&out_bar, &series::unary(op, x));
                let name = format!("{op:?} case {case} a0={:.4}", a[0]);
                for j in 0..n {
                    let (fd, roundoff) = central_difference(&a, j, loss);
                    chk.close(&name, order, j, a_bar[j] - start[j], fd, roundoff);
                }
            }
        }
    }
    chk.finish("unary adjoints vs finite differences");
}

#[test]
fn mul_adjoint_matches_finite_differences() {
    let mut chk = Checker::default();
    let mut rng = Rng(0xAD_0002);
    for order in 1..=8 {
        let n = order + 1;
        for case in 0..CASES {
            let a = rng.vec(n, -2.0, 2.0);
            let w = rng.vec(n, -2.0, 2.0);
            let out_bar = rng.vec(n, -1.0, 1.0);
            let (start_a, start_w) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
            let (mut a_bar, mut w_bar) = (start_a.clone(), start_w.clone());
            series::mul_adjoint(&a, &w, &out_bar, &mut a_bar, &mut w_bar);

            let prod = |x: &[f64], y: &[f64]| {
                let mut o = vec![0.0; n];
                series::mul(x, y, &mut o);
                pairing(&out_bar, &o)
            };
            let name = format!("mul case {case}");
            for j in 0..n {
                let (fd, r) = central_difference(&a, j, |x| prod(x, &w));
                chk.close(&format!("{name} ā"), order, j, a_bar[j] - start_a[j], fd, r);
                let (fd, r) = central_difference(&w, j, |y| prod(&a, y));
                chk.close(&format!("{name} w̄"), order, j, w_bar[j] - start_w[j], fd, r);
            }
        }
    }
    chk.finish("mul adjoint vs finite differences");
}

#[test]
fn div_adjoint_matches_finite_differences() {
    let mut chk = Checker::default();
    let mut rng = Rng(0xAD_0003);
    for order in 1..=8 {
        let n = order + 1;
        for case in 0..CASES {
            let a = rng.vec(n, -2.0, 2.0);
            let mut w = rng.vec(n, -1.0, 1.0);
            w[0] = rng.signed(0.5, 2.0);
            let out_bar = rng.vec(n, -1.0, 1.0);
            let mut q = vec![0.0; n];
            series::div(&a, &w, &mut q);
            let (start_a, start_w) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
            let (mut a_bar, mut w_bar) = (start_a.clone(), start_w.clone());
            series::div_adjoint(&w, &q, &out_bar, &mut a_bar, &mut w_bar);

            let quot = |x: &[f64], y: &[f64]| {
                let mut o = vec![0.0; n];
                series::div(x, y, &mut o);
                pairing(&out_bar, &o)
            };
            let name = format!("div case {case} w0={:.4}", w[0]);
            for j in 0..n {
                let (fd, r) = central_difference(&a, j, |x| quot(x, &w));
                chk.close(&format!("{name} ā"), order, j, a_bar[j] - start_a[j], fd, r);
                let (fd, r) = central_difference(&w, j, |y| quot(&a, y));
                chk.close(&format!("{name} w̄"), order, j, w_bar[j] - start_w[j], fd, r);
            }
        }
    }
    chk.finish("div adjoint vs finite differences");
}

#[test]
fn powi_zero_adjoint_at_zero_base_is_zero() {
    // a⁰ = 1 does not depend on a, also when a_0 = 0.
    for order in 1..=8 {
        let n = order + 1;
        let mut a: Vec<f64> = (0..n).map(|k| 0.1 * k as f64).collect();
        a[0] = 0.0;
        let mut out = vec![0.0; n];
        let mut deriv = vec![0.0; n];
        series::unary_forward(Unary::Powi(0), &a, &mut out, &mut deriv);
        assert_eq!(out, series::constant(1.0, n));
        let mut a_bar = vec![0.0; n];
        series::unary_adjoint(&deriv, &vec![1.0; n], &mut a_bar);
        assert_eq!(a_bar, vec![0.0; n]);
    }
}

#[test]
fn linear_adjoints_are_exact() {
    // For Neg and Scale the adjoint is exactly −b̄ and s·b̄.
    let mut rng = Rng(0xAD_0004);
    for order in 1..=8 {
        let n = order + 1;
        let a = rng.vec(n, -1.0, 1.0);
        let out_bar = rng.vec(n, -1.0, 1.0);
        for (op, s) in [(Unary::Neg, -1.0), (Unary::Scale(1.75), 1.75)] {
            let mut out = vec![0.0; n];
            let mut deriv = vec![0.0; n];
            series::unary_forward(op, &a, &mut out, &mut deriv);
            let mut a_bar = vec![0.0; n];
            series::unary_adjoint(&deriv, &out_bar, &mut a_bar);
            let want: Vec<f64> = out_bar.iter().map(|&b| s * b).collect();
            assert_eq!(a_bar, want, "{op:?}");
        }
    }
}
