//! Tests for `jet.rs` and the forward rules of `series.rs` against independent oracles: Faà di Bruno with
//! closed-form scalar derivatives (unary rules), the Leibniz rule (binary rules), the convention round
//! trip, operator overloads, order checks, and finite differences of a composite function.

use stde_core::jet::{Jet, MAX_ORDER};
use stde_core::series::{self, Unary};

/// Random points per rule per order.
const CASES: usize = 100;
/// Relative tolerance of the rule checks.
const TOL: f64 = 1e-9;

// ---------------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64).
// ---------------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

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
}

// ---------------------------------------------------------------------------------------------------
// Failure collection.
// ---------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Checker {
    checks: usize,
    failures: Vec<String>,
    /// Largest `|diff| / bound` seen (printed with `--nocapture`, to judge the margin).
    worst: f64,
}

impl Checker {
    /// Records a failure unless `|got − expected| ≤ tol·max(1, |expected|, scale)`.
    fn close(
        &mut self,
        case: &str,
        order: usize,
        index: usize,
        got: f64,
        expected: f64,
        scale: f64,
        tol: f64,
    ) {
        self.checks += 1;
        let bound = tol * 1f64.max(expected.abs()).max(scale);
        let ok = (got - expected).abs() <= bound;
        self.worst = self.worst.max((got - expected).abs() / bound);
        if !ok && self.failures.len() < 30 {
            self.failures.push(format!(
                "{case}: order {order}, index {index}: got {got:e}, expected {expected:e}, \
                 |diff| {:e} > bound {bound:e}",
                (got - expected).abs()
            ));
        }
    }

    fn finish(self, what: &str) {
        eprintln!(
            "{what}: {} checks, worst |diff|/bound {:.3e}",
            self.checks, self.worst
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

// ---------------------------------------------------------------------------------------------------
// Combinatorics: factorials, binomials, integer partitions, Faà di Bruno.
// ---------------------------------------------------------------------------------------------------

fn fact(n: usize) -> f64 {
    let mut f = 1.0;
    for i in 2..=n {
        f *= i as f64;
    }
    f
}

fn binom(n: usize, k: usize) -> f64 {
    fact(n) / (fact(k) * fact(n - k))
}

/// All partitions of `k ≥ 1` as multiplicity vectors `p` of length `k + 1` (`p[i]` parts of size `i`,
/// `p[0]` unused).
fn partitions(k: usize) -> Vec<Vec<usize>> {
    fn rec(rest: usize, max_part: usize, p: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if rest == 0 {
            out.push(p.clone());
            return;
        }
        for part in (1..=max_part.min(rest)).rev() {
            p[part] += 1;
            rec(rest - part, part, p, out);
            p[part] -= 1;
        }
    }
    let mut out = Vec::new();
    rec(k, k, &mut vec![0; k + 1], &mut out);
    out
}

/// Number of partitions p(k), for checking the enumeration.
const PARTITION_COUNTS: [usize; 11] = [1, 1, 2, 3, 5, 7, 11, 15, 22, 30, 42];

/// Faà di Bruno in the derivative convention. `sigma[m] = σ^{(m)}(a_0)` for `m = 0..=K`, `y` the
/// derivative coefficients of the input curve (`y[0]` unused). Returns, for each `k`, the expected
/// output derivative coefficient and the sum of the magnitudes of its terms.
fn faa_di_bruno(sigma: &[f64], y: &[f64], parts: &[Vec<Vec<usize>>]) -> Vec<(f64, f64)> {
    let order = y.len() - 1;
    let mut out = vec![(sigma[0], sigma[0].abs())];
    for k in 1..=order {
        let (mut sum, mut mag) = (0.0, 0.0);
        for p in &parts[k] {
            let mut denom = 1.0;
            let mut prod = 1.0;
            let mut m = 0;
            for i in 1..=k {
                if p[i] > 0 {
                    denom *= fact(p[i]) * fact(i).powi(p[i] as i32);
                    prod *= y[i].powi(p[i] as i32);
                    m += p[i];
                }
            }
            let term = fact(k) / denom * sigma[m] * prod;
            sum += term;
            mag += term.abs();
        }
        out.push((sum, mag));
    }
    out
}

#[test]
fn partition_enumeration_is_complete() {
    for (k, &count) in PARTITION_COUNTS.iter().enumerate().skip(1) {
        let ps = partitions(k);
        assert_eq!(ps.len(), count, "p({k})");
        for p in &ps {
            let total: usize = p.iter().enumerate().map(|(i, &c)| i * c).sum();
            assert_eq!(total, k);
        }
        // Σ over partitions of k!/Π(p_i!·(i!)^{p_i}) is the Bell number B_k (set partitions).
        let bell: f64 = ps
            .iter()
            .map(|p| {
                let d: f64 = (1..=k)
                    .map(|i| fact(p[i]) * fact(i).powi(p[i] as i32))
                    .product();
                fact(k) / d
            })
            .sum();
        let bell_numbers = [
            1.0, 1.0, 2.0, 5.0, 15.0, 52.0, 203.0, 877.0, 4140.0, 21147.0, 115975.0,
        ];
        assert_eq!(bell, bell_numbers[k], "Bell number B_{k}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Closed-form scalar derivatives σ^{(m)}(x), m = 0..count.
// ---------------------------------------------------------------------------------------------------

/// Polynomials as ascending coefficient vectors.
fn poly_deriv(p: &[f64]) -> Vec<f64> {
    if p.len() <= 1 {
        return vec![0.0];
    }
    (1..p.len()).map(|i| i as f64 * p[i]).collect()
}

fn poly_mul(p: &[f64], q: &[f64]) -> Vec<f64> {
    let mut r = vec![0.0; p.len() + q.len() - 1];
    for (i, &a) in p.iter().enumerate() {
        for (j, &b) in q.iter().enumerate() {
            r[i + j] += a * b;
        }
    }
    r
}

fn poly_eval(p: &[f64], x: f64) -> f64 {
    p.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

/// Derivatives of `g` where `g' = q(g)`: returns `P_m` with `g^{(m)} = P_m(g)`, `P_0 = T`,
/// `P_{m+1} = P_m'·q`.
fn chain_polys(q: &[f64], count: usize) -> Vec<Vec<f64>> {
    let mut ps = vec![vec![0.0, 1.0]];
    while ps.len() < count {
        let next = poly_mul(&poly_deriv(ps.last().unwrap()), q);
        ps.push(next);
    }
    ps
}

/// Falling factorial `r·(r−1)·…·(r−m+1)`.
fn falling(r: f64, m: usize) -> f64 {
    (0..m).map(|i| r - i as f64).product()
}

/// Power rule: `d^m/dx^m x^r`.
fn power_derivs(x: f64, r: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|m| {
            let f = falling(r, m);
            if f == 0.0 {
                0.0
            } else if r.fract() == 0.0 {
                f * x.powi(r as i32 - m as i32)
            } else {
                f * x.powf(r - m as f64)
            }
        })
        .collect()
}

fn sigmoid_scalar(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn sigmoid_derivs(x: f64, count: usize) -> Vec<f64> {
    let s = sigmoid_scalar(x);
    chain_polys(&[0.0, 1.0, -1.0], count)
        .iter()
        .map(|p| poly_eval(p, s))
        .collect()
}

/// `σ^{(m)}(x)` for `m = 0..count`.
fn scalar_derivs(op: Unary, x: f64, count: usize) -> Vec<f64> {
    let mut d = vec![0.0; count];
    match op {
        Unary::Neg => {
            d[0] = -x;
            if count > 1 {
                d[1] = -1.0;
            }
        }
        Unary::Scale(s) => {
            d[0] = s * x;
            if count > 1 {
                d[1] = s;
            }
        }
        Unary::Square => d = power_derivs(x, 2.0, count),
        Unary::Recip => d = power_derivs(x, -1.0, count),
        Unary::Sqrt => d = power_derivs(x, 0.5, count),
        Unary::Powi(n) => d = power_derivs(x, f64::from(n), count),
        Unary::Exp => d.fill(x.exp()),
        Unary::Log => {
            d[0] = x.ln();
            for m in 1..count {
                let sign = if m % 2 == 1 { 1.0 } else { -1.0 };
                d[m] = sign * fact(m - 1) / x.powi(m as i32);
            }
        }
        Unary::Sin | Unary::Cos => {
            let (s, c) = (x.sin(), x.cos());
            let cycle = [s, c, -s, -c];
            let shift = if op == Unary::Sin { 0 } else { 1 };
            for m in 0..count {
                d[m] = cycle[(m + shift) % 4];
            }
        }
        Unary::Tanh => {
            let t = x.tanh();
            d = chain_polys(&[1.0, 0.0, -1.0], count)
                .iter()
                .map(|p| poly_eval(p, t))
                .collect();
        }
        Unary::Sigmoid => d = sigmoid_derivs(x, count),
        Unary::Softplus => {
            d[0] = x.exp().ln_1p();
            let s = sigmoid_derivs(x, count.saturating_sub(1));
            d[1..].copy_from_slice(&s);
        }
    }
    d
}

#[test]
fn closed_form_derivatives_match_known_values() {
    // tanh' = 1 − T², tanh'' = −2T(1 − T²); sigmoid' = S(1 − S).
    let x = 0.7f64;
    let t = x.tanh();
    let d = scalar_derivs(Unary::Tanh, x, 3);
    assert!((d[1] - (1.0 - t * t)).abs() < 1e-15);
    assert!((d[2] + 2.0 * t * (1.0 - t * t)).abs() < 1e-15);
    let s = sigmoid_scalar(x);
    let d = scalar_derivs(Unary::Softplus, x, 3);
    assert!((d[0] - (1.0 + x.exp()).ln()).abs() < 1e-15);
    assert!((d[1] - s).abs() < 1e-15);
    assert!((d[2] - s * (1.0 - s)).abs() < 1e-15);
    // Third derivative of tanh against a central difference of the second.
    let h = 1e-5;
    let d2 = |x: f64| scalar_derivs(Unary::Tanh, x, 3)[2];
    let fd = (d2(x + h) - d2(x - h)) / (2.0 * h);
    assert!((scalar_derivs(Unary::Tanh, x, 4)[3] - fd).abs() < 1e-8);
    // Log: d³/dx³ ln x = 2/x³.
    assert!((scalar_derivs(Unary::Log, 2.0, 4)[3] - 0.25).abs() < 1e-15);
    // Powi(3): 6 at the third derivative, 0 after.
    assert_eq!(scalar_derivs(Unary::Powi(3), 1.5, 5)[3..], [6.0, 0.0]);
}

// ---------------------------------------------------------------------------------------------------
// Unary rules.
// ---------------------------------------------------------------------------------------------------

/// The jet method for `op` (exercises `jet.rs` on top of `series.rs`).
fn apply(op: Unary, j: &Jet) -> Jet {
    match op {
        Unary::Neg => j.neg(),
        Unary::Scale(s) => j.scale(s),
        Unary::Square => j.square(),
        Unary::Recip => j.recip(),
        Unary::Exp => j.exp(),
        Unary::Log => j.log(),
        Unary::Sin => j.sin(),
        Unary::Cos => j.cos(),
        Unary::Tanh => j.tanh(),
        Unary::Sigmoid => j.sigmoid(),
        Unary::Softplus => j.softplus(),
        Unary::Sqrt => j.sqrt(),
        Unary::Powi(n) => j.powi(n),
    }
}

/// A random `a_0` in a domain where `op` is well-conditioned.
fn sample_a0(op: Unary, rng: &mut Rng) -> f64 {
    match op {
        Unary::Log | Unary::Sqrt => rng.uniform(0.5, 3.0),
        Unary::Recip => rng.signed(0.5, 2.0),
        Unary::Powi(n) if n < 0 => rng.signed(0.5, 2.0),
        Unary::Sin | Unary::Cos | Unary::Sigmoid | Unary::Softplus => rng.uniform(-3.0, 3.0),
        _ => rng.uniform(-2.0, 2.0),
    }
}

/// A random input curve: `a_0` from the op's domain; the higher coefficients uniform in `[-1, 1]`,
/// alternately as Taylor coefficients and as derivative coefficients. Returned in the derivative
/// convention.
fn sample_curve(op: Unary, order: usize, case: usize, rng: &mut Rng) -> Vec<f64> {
    let mut y = vec![sample_a0(op, rng)];
    for k in 1..=order {
        let v = rng.uniform(-1.0, 1.0);
        y.push(if case.is_multiple_of(2) {
            v
        } else {
            v * fact(k)
        });
    }
    y
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
    ops.extend([-3, -2, -1, 0, 1, 2, 3, 4, 7].map(Unary::Powi));
    ops
}

#[test]
fn unary_rules_match_faa_di_bruno() {
    let parts: Vec<_> = (0..=8).map(partitions).collect();
    let mut chk = Checker::default();
    let mut rng = Rng::new(0x5EED_0001);
    for op in unary_ops() {
        for order in 1..=8 {
            for case in 0..CASES {
                let y = sample_curve(op, order, case, &mut rng);
                let a = Jet::from_derivatives(&y);
                let name = format!("{op:?} case {case} a0={:.4}", y[0]);

                // Output series through the Jet method and through `Jet::unary`.
                let got = apply(op, &a);
                assert_eq!(got, a.unary(op), "{name}: method and Jet::unary disagree");
                assert_eq!(got.order(), order);
                let sigma = scalar_derivs(op, y[0], order + 2);
                let expected = faa_di_bruno(&sigma[..=order], &y, &parts);
                for (k, (g, &(e, mag))) in got.derivatives().iter().zip(&expected).enumerate() {
                    chk.close(&name, order, k, *g, e, mag, TOL);
                }

                // The σ'(a(t)) series that feeds the adjoints: Faà di Bruno of σ'.
                let (out, deriv) = a.unary_with_derivative(op);
                assert_eq!(out, got, "{name}: unary_with_derivative output differs");
                let expected = faa_di_bruno(&sigma[1..=order + 1], &y, &parts);
                for (k, (g, &(e, mag))) in deriv.derivatives().iter().zip(&expected).enumerate() {
                    chk.close(&format!("{name} (σ')"), order, k, *g, e, mag, TOL);
                }
            }
        }
    }
    chk.finish("unary rules vs Faà di Bruno");
}

#[test]
fn powi_at_zero_base() {
    // Non-negative powers are exact polynomials, also with a_0 = 0, and so is their σ' series.
    let parts: Vec<_> = (0..=6).map(partitions).collect();
    let mut chk = Checker::default();
    let mut rng = Rng::new(0x5EED_0002);
    for n in 0..=5 {
        let op = Unary::Powi(n);
        for order in 1..=6 {
            let mut y: Vec<f64> = (0..=order).map(|_| rng.uniform(-1.0, 1.0)).collect();
            y[0] = 0.0;
            let a = Jet::from_derivatives(&y);
            let (out, deriv) = a.unary_with_derivative(op);
            let sigma = scalar_derivs(op, 0.0, order + 2);
            let name = format!("{op:?} at a0 = 0");
            let expected = faa_di_bruno(&sigma[..=order], &y, &parts);
            for (k, (g, &(e, mag))) in out.derivatives().iter().zip(&expected).enumerate() {
                chk.close(&name, order, k, *g, e, mag, TOL);
            }
            let expected = faa_di_bruno(&sigma[1..=order + 1], &y, &parts);
            for (k, (g, &(e, mag))) in deriv.derivatives().iter().zip(&expected).enumerate() {
                chk.close(&format!("{name} (σ')"), order, k, *g, e, mag, TOL);
            }
        }
    }
    chk.finish("powi at a0 = 0");
}

#[test]
fn sin_cos_together_match_separate_rules() {
    let mut rng = Rng::new(0x5EED_0003);
    for order in 1..=8 {
        for _ in 0..CASES {
            let a: Vec<f64> = (0..=order).map(|_| rng.uniform(-2.0, 2.0)).collect();
            let (mut s, mut c) = (vec![0.0; order + 1], vec![0.0; order + 1]);
            series::sin_cos(&a, &mut s, &mut c);
            let j = Jet::from_taylor(a);
            assert_eq!(j.sin().taylor(), &s[..]);
            assert_eq!(j.cos().taylor(), &c[..]);
            // sin² + cos² = 1 as series.
            let one = &j.sin().square() + &j.cos().square();
            assert!((one.value() - 1.0).abs() < 1e-14);
            for (k, &v) in one.taylor().iter().enumerate().skip(1) {
                assert!(v.abs() < 1e-11, "sin²+cos² coefficient {k} = {v:e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Binary rules.
// ---------------------------------------------------------------------------------------------------

/// Leibniz in the derivative convention: `(u·w)_k = Σ_j binom(k, j)·u_j·w_{k−j}`, with the sum of the
/// magnitudes of its terms.
fn leibniz(u: &[f64], w: &[f64]) -> Vec<(f64, f64)> {
    (0..u.len())
        .map(|k| {
            let (mut s, mut m) = (0.0, 0.0);
            for j in 0..=k {
                let term = binom(k, j) * u[j] * w[k - j];
                s += term;
                m += term.abs();
            }
            (s, m)
        })
        .collect()
}

/// Quotient in the derivative convention from `a = q·w` by Leibniz:
/// `q_k = (a_k − Σ_{j<k} binom(k, j)·q_j·w_{k−j}) / w_0`, with a magnitude for the tolerance.
fn leibniz_quotient(a: &[f64], w: &[f64]) -> Vec<(f64, f64)> {
    let mut q: Vec<f64> = Vec::with_capacity(a.len());
    let mut out = Vec::with_capacity(a.len());
    for k in 0..a.len() {
        let mut s = a[k];
        let mut m = a[k].abs();
        for j in 0..k {
            let term = binom(k, j) * q[j] * w[k - j];
            s -= term;
            m += term.abs();
        }
        q.push(s / w[0]);
        out.push((s / w[0], m / w[0].abs()));
    }
    out
}

fn sample_pair(order: usize, case: usize, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let mut u = Vec::new();
    let mut w = Vec::new();
    for k in 0..=order {
        let scale = if case.is_multiple_of(2) { 1.0 } else { fact(k) };
        u.push(rng.uniform(-1.0, 1.0) * scale);
        w.push(rng.uniform(-1.0, 1.0) * scale);
    }
    u[0] = rng.uniform(-2.0, 2.0);
    w[0] = rng.signed(0.5, 2.0);
    (u, w)
}

#[test]
fn binary_rules_match_leibniz() {
    let mut chk = Checker::default();
    let mut rng = Rng::new(0x5EED_0004);
    for order in 1..=8 {
        for case in 0..CASES {
            let (u, w) = sample_pair(order, case, &mut rng);
            let (ju, jw) = (Jet::from_derivatives(&u), Jet::from_derivatives(&w));

            let sum = ju.add(&jw).derivatives();
            let diff = ju.sub(&jw).derivatives();
            for k in 0..=order {
                let mag = u[k].abs() + w[k].abs();
                chk.close("add", order, k, sum[k], u[k] + w[k], mag, TOL);
                chk.close("sub", order, k, diff[k], u[k] - w[k], mag, TOL);
            }

            let prod = ju.mul(&jw).derivatives();
            for (k, &(e, mag)) in leibniz(&u, &w).iter().enumerate() {
                chk.close("mul", order, k, prod[k], e, mag, TOL);
            }

            let quot = ju.div(&jw);
            let qd = quot.derivatives();
            for (k, &(e, mag)) in leibniz_quotient(&u, &w).iter().enumerate() {
                chk.close("div vs Leibniz recursion", order, k, qd[k], e, mag, TOL);
            }
            // (u / w)·w reproduces u (Leibniz on the computed quotient).
            for (k, &(e, mag)) in leibniz(&qd, &w).iter().enumerate() {
                chk.close("(u/w)·w", order, k, e, u[k], mag, TOL);
            }
            // And through the jet product too.
            let back = (&quot * &jw).derivatives();
            for k in 0..=order {
                chk.close(
                    "(u/w)·w (jet)",
                    order,
                    k,
                    back[k],
                    u[k],
                    leibniz(&qd, &w)[k].1,
                    TOL,
                );
            }
            // recip(w) = 1 / w.
            let r = jw.recip();
            let one_over = Jet::constant(1.0, order).div(&jw);
            for k in 0..=order {
                let scale = r.taylor()[k].abs();
                chk.close(
                    "recip vs 1/w",
                    order,
                    k,
                    r.taylor()[k],
                    one_over.taylor()[k],
                    scale,
                    TOL,
                );
            }
        }
    }
    chk.finish("binary rules vs Leibniz");
}

// ---------------------------------------------------------------------------------------------------
// Conventions, constructors, operators, panics.
// ---------------------------------------------------------------------------------------------------

#[test]
fn convention_round_trip() {
    let mut rng = Rng::new(0x5EED_0005);
    for order in 1..=MAX_ORDER {
        for _ in 0..20 {
            let y: Vec<f64> = (0..=order).map(|_| rng.uniform(-5.0, 5.0)).collect();
            let j = Jet::from_derivatives(&y);
            assert_eq!(j.order(), order);
            assert_eq!(j.value(), y[0]);
            for k in 0..=order {
                let c = j.taylor()[k];
                assert!((c - y[k] / fact(k)).abs() <= 1e-15 * (y[k] / fact(k)).abs());
            }
            for (k, (&got, &want)) in j.derivatives().iter().zip(&y).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-14 * want.abs(),
                    "order {order}, index {k}: {got} vs {want}"
                );
            }
            let c: Vec<f64> = (0..=order).map(|_| rng.uniform(-5.0, 5.0)).collect();
            let jc = Jet::from_taylor(c.clone());
            assert_eq!(jc.taylor(), &c[..]);
            let back = Jet::from_derivatives(&jc.derivatives());
            for k in 0..=order {
                assert!((back.taylor()[k] - c[k]).abs() <= 1e-14 * c[k].abs());
            }
            assert_eq!(series::taylor_to_derivative(&c), jc.derivatives());
        }
    }
}

#[test]
fn constructors() {
    let c = Jet::constant(2.5, 4);
    assert_eq!(c.taylor(), &[2.5, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(c.order(), 4);
    let v = Jet::variable(-1.5, 3);
    assert_eq!(v.taylor(), &[-1.5, 1.0, 0.0, 0.0]);
    assert_eq!(v.derivatives(), vec![-1.5, 1.0, 0.0, 0.0]);
    assert_eq!(Jet::variable(0.0, MAX_ORDER).order(), MAX_ORDER);
    assert_eq!(Jet::from_taylor(vec![1.0, 2.0]).order(), 1);
}

#[test]
fn operators_match_methods() {
    let mut rng = Rng::new(0x5EED_0006);
    for order in 1..=8 {
        let a = Jet::from_taylor((0..=order).map(|_| rng.uniform(-1.0, 1.0)).collect());
        let mut wc: Vec<f64> = (0..=order).map(|_| rng.uniform(-1.0, 1.0)).collect();
        wc[0] = 1.5;
        let b = Jet::from_taylor(wc);
        let s = rng.uniform(0.5, 2.0);

        for (got, want) in [
            (&a + &b, a.add(&b)),
            (a.clone() + &b, a.add(&b)),
            (&a + b.clone(), a.add(&b)),
            (a.clone() + b.clone(), a.add(&b)),
            (&a - &b, a.sub(&b)),
            (a.clone() - b.clone(), a.sub(&b)),
            (&a * &b, a.mul(&b)),
            (a.clone() * b.clone(), a.mul(&b)),
            (&a / &b, a.div(&b)),
            (a.clone() / b.clone(), a.div(&b)),
            (-&a, a.neg()),
            (-a.clone(), a.neg()),
            (&a * s, a.scale(s)),
            (a.clone() * s, a.scale(s)),
        ] {
            assert_eq!(got, want);
        }

        let shifted = &a + s;
        assert_eq!(shifted.value(), a.value() + s);
        assert_eq!(shifted.taylor()[1..], a.taylor()[1..]);
        assert_eq!(a.clone() + s, shifted);
        let lowered = &a - s;
        assert_eq!(lowered.value(), a.value() - s);
        assert_eq!(lowered.taylor()[1..], a.taylor()[1..]);
        assert_eq!(a.clone() - s, lowered);
        let divided = &a / s;
        for k in 0..=order {
            assert_eq!(divided.taylor()[k], a.taylor()[k] / s);
        }
        assert_eq!(a.clone() / s, divided);
        // a/s agrees with the jet quotient by a constant.
        let q = a.div(&Jet::constant(s, order));
        for k in 0..=order {
            assert!(
                (q.taylor()[k] - divided.taylor()[k]).abs() <= 1e-15 * divided.taylor()[k].abs()
            );
        }
        // Square and powi(2) agree with the product.
        let sq = a.mul(&a);
        for k in 0..=order {
            let m = sq.taylor()[k].abs().max(1e-300);
            assert!((a.square().taylor()[k] - sq.taylor()[k]).abs() <= 1e-14 * m.max(1.0));
            assert!((a.powi(2).taylor()[k] - sq.taylor()[k]).abs() <= 1e-14 * m.max(1.0));
        }
    }
}

#[test]
#[should_panic(expected = "jet order must be in 1..=16")]
fn order_zero_panics() {
    let _ = Jet::constant(1.0, 0);
}

#[test]
#[should_panic(expected = "jet order must be in 1..=16")]
fn order_too_high_panics() {
    let _ = Jet::variable(1.0, MAX_ORDER + 1);
}

#[test]
#[should_panic(expected = "jet order must be in 1..=16")]
fn from_taylor_single_coefficient_panics() {
    let _ = Jet::from_taylor(vec![1.0]);
}

#[test]
#[should_panic(expected = "jet order must be in 1..=16")]
fn from_derivatives_empty_panics() {
    let _ = Jet::from_derivatives(&[]);
}

#[test]
#[should_panic(expected = "jet order must be in 1..=16")]
fn from_taylor_too_long_panics() {
    let _ = Jet::from_taylor(vec![0.0; MAX_ORDER + 2]);
}

#[test]
#[should_panic(expected = "jet orders differ")]
fn mismatched_orders_panic_add() {
    let _ = &Jet::variable(1.0, 2) + &Jet::variable(1.0, 3);
}

#[test]
#[should_panic(expected = "jet orders differ")]
fn mismatched_orders_panic_mul() {
    let _ = Jet::variable(1.0, 4) * Jet::variable(1.0, 3);
}

#[test]
#[should_panic(expected = "jet orders differ")]
fn mismatched_orders_panic_div() {
    let _ = Jet::variable(1.0, 4).div(&Jet::constant(2.0, 5));
}

#[test]
#[should_panic(expected = "jet orders differ")]
fn mismatched_orders_panic_sub() {
    let _ = Jet::variable(1.0, 1) - Jet::variable(1.0, 16);
}

// ---------------------------------------------------------------------------------------------------
// Composite function against finite differences.
// ---------------------------------------------------------------------------------------------------

/// Fornberg's algorithm: weights `w[j][m]` so that `f^{(m)}(z) ≈ Σ_j w[j][m]·f(x_j)`.
fn fornberg(z: f64, x: &[f64], max_deriv: usize) -> Vec<Vec<f64>> {
    let n = x.len();
    let mut c = vec![vec![0.0; max_deriv + 1]; n];
    let mut c1 = 1.0;
    let mut c4 = x[0] - z;
    c[0][0] = 1.0;
    for i in 1..n {
        let mn = i.min(max_deriv);
        let mut c2 = 1.0;
        let c5 = c4;
        c4 = x[i] - z;
        for j in 0..i {
            let c3 = x[i] - x[j];
            c2 *= c3;
            if j == i - 1 {
                for k in (1..=mn).rev() {
                    c[i][k] = c1 * (k as f64 * c[i - 1][k - 1] - c5 * c[i - 1][k]) / c2;
                }
                c[i][0] = -c1 * c5 * c[i - 1][0] / c2;
            }
            for k in (1..=mn).rev() {
                c[j][k] = (c4 * c[j][k] - k as f64 * c[j][k - 1]) / c3;
            }
            c[j][0] = c4 * c[j][0] / c3;
        }
        c1 = c2;
    }
    c
}

#[test]
fn fornberg_weights_are_the_textbook_ones() {
    let grid: Vec<f64> = (-2..=2).map(f64::from).collect();
    let w = fornberg(0.0, &grid, 2);
    let d1 = [1.0 / 12.0, -2.0 / 3.0, 0.0, 2.0 / 3.0, -1.0 / 12.0];
    let d2 = [-1.0 / 12.0, 4.0 / 3.0, -5.0 / 2.0, 4.0 / 3.0, -1.0 / 12.0];
    for j in 0..5 {
        assert!((w[j][1] - d1[j]).abs() < 1e-14);
        assert!((w[j][2] - d2[j]).abs() < 1e-14);
    }
}

#[test]
fn composite_matches_finite_differences() {
    let f = |x: f64| (x.sin() * x.exp()).tanh();
    let jet_f = |x: &Jet| (&x.sin() * &x.exp()).tanh();
    // An 11-point central stencil on the integer grid, scaled by h^k.
    let grid: Vec<f64> = (-5..=5).map(f64::from).collect();
    let weights = fornberg(0.0, &grid, 4);
    let h = 0.02;
    let mut chk = Checker::default();
    let mut rng = Rng::new(0x5EED_0007);
    for case in 0..25 {
        let x0 = rng.uniform(-1.5, 1.0);
        for order in [4, 8] {
            let y = jet_f(&Jet::variable(x0, order)).derivatives();
            chk.close("composite value", order, 0, y[0], f(x0), 0.0, 1e-14);
            for k in 1..=4 {
                let fd: f64 = grid
                    .iter()
                    .zip(&weights)
                    .map(|(&g, w)| w[k] * f(x0 + g * h))
                    .sum::<f64>()
                    / h.powi(k as i32);
                chk.close(
                    &format!("composite x0={x0:.4} case {case}"),
                    order,
                    k,
                    y[k],
                    fd,
                    0.0,
                    1e-5,
                );
            }
        }
    }
    chk.finish("tanh(sin(x)·exp(x)) vs finite differences");
}
