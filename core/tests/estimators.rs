//! The STDE estimators against closed forms: exact estimators equal analytic operators, stochastic
//! estimators are unbiased (sample means within 4 standard errors over ≥ 100 000 draws, variances as
//! predicted), the official code's biased dense path is caught, errors are reported, and collapsed
//! and uncollapsed readouts agree.
//!
//! Test functions are closed forms in `x`, evaluated along every probe curve with `stde_core::series`
//! arithmetic, so the probe sets, the input batch layout and the readout are exercised without a
//! network; the last section pushes the probes through a small `Model`.

use stde_core::batch::JetBatch;
use stde_core::estimator::{
    Distribution, Estimator, EstimatorError, Operator, ProbeDirection, ProbeRng, ProbeSet, Readout,
    Tangent,
};
use stde_core::mlp::{Activation, Mlp, MlpShape, Model};
use stde_core::pde::{Equation, ExactSolution, Problem};
use stde_core::planner::MultiIndex;
use stde_core::series::{self, Unary};

mod common;
use common::TestRng;

/// This file's generator: Philox stream 77, radius uniform on `[0, r_max)`.
fn test_rng(seed: u64) -> TestRng {
    TestRng::new(seed, 77, 0.0)
}

// ---------------------------------------------------------------------------------------------
// Series helpers and the closed-form pushforward
// ---------------------------------------------------------------------------------------------

fn s_mul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    series::mul(a, b, &mut out);
    out
}

fn s_add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn s_scale(a: &[f64], c: f64) -> Vec<f64> {
    a.iter().map(|x| c * x).collect()
}

fn s_axpy(acc: &mut [f64], c: f64, a: &[f64]) {
    for (y, x) in acc.iter_mut().zip(a) {
        *y += c * x;
    }
}

/// A scalar function of `x ∈ R^d` evaluated on Taylor series: `xs[i]` is the series of coordinate `i`
/// (all of one length), the result is the series of `u(x(t))`.
type SeriesFn<'a> = &'a dyn Fn(&[Vec<f64>]) -> Vec<f64>;

/// The output batch (width 1) of `u` on the input batch of `set` at `points`.
///
/// Collapsed batches are handled with the identity the library relies on: every direction is evaluated
/// with its top coefficient zeroed, the tops are summed, and the part linear in the top input,
/// `∇u(x)·Σ_s c_K^s`, is added once — computed here as the first coefficient of `u` along the line
/// `x + t·Σ_s c_K^s`.
fn push_output(set: &ProbeSet, points: &[f64], collapsed: bool, u: SeriesFn<'_>) -> JetBatch {
    let input = set.input_batch(points, collapsed);
    let input = input.as_ref();
    let shape = input.shape();
    let (k, d) = (shape.order, shape.width);
    let mut out = JetBatch::zeros(shape.with_width(1));
    for n in 0..shape.n_points {
        let mut top_sum = 0.0;
        for s in 0..shape.n_dirs {
            let xs: Vec<Vec<f64>> = (0..d)
                .map(|i| {
                    let mut c = input.series(s, n, i);
                    if collapsed {
                        c[k] = 0.0;
                    }
                    c
                })
                .collect();
            let y = u(&xs);
            assert_eq!(y.len(), k + 1);
            if s == 0 {
                out.set(0, 0, n, 0, y[0]);
            }
            let upper = if collapsed { k - 1 } else { k };
            for j in 1..=upper {
                out.set(j, s, n, 0, y[j]);
            }
            top_sum += y[k];
        }
        if collapsed {
            let line: Vec<Vec<f64>> = (0..d)
                .map(|i| vec![input.get(0, 0, n, i), input.get(k, 0, n, i)])
                .collect();
            out.set(k, 0, n, 0, top_sum + u(&line)[1]);
        }
    }
    out
}

/// The per-point estimate of `set` for the closed form `u`.
fn push(set: &ProbeSet, points: &[f64], collapsed: bool, u: SeriesFn<'_>) -> Vec<f64> {
    set.estimate(push_output(set, points, collapsed, u).as_ref())
}

/// A polynomial `Σ c·Π x_i^{e_i}` with symbolic derivatives.
#[derive(Clone, Debug)]
struct Poly {
    dim: usize,
    terms: Vec<(f64, Vec<u32>)>,
}

impl Poly {
    fn new(dim: usize) -> Self {
        Self {
            dim,
            terms: Vec::new(),
        }
    }

    /// Adds `c·Π x_var^mult`.
    fn term(mut self, c: f64, factors: &[(usize, u32)]) -> Self {
        let mut e = vec![0; self.dim];
        for &(v, m) in factors {
            e[v] += m;
        }
        self.terms.push((c, e));
        self
    }

    fn series(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        let len = xs[0].len();
        let mut acc = vec![0.0; len];
        for (c, e) in &self.terms {
            let mut m = series::constant(*c, len);
            for (i, &p) in e.iter().enumerate() {
                for _ in 0..p {
                    m = s_mul(&m, &xs[i]);
                }
            }
            acc = s_add(&acc, &m);
        }
        acc
    }

    /// `∂^α u(x)` symbolically (`alpha[i]` = multiplicity of `x_i`).
    fn partial(&self, alpha: &[u32], x: &[f64]) -> f64 {
        self.terms
            .iter()
            .map(|(c, e)| {
                let mut v = *c;
                for i in 0..self.dim {
                    if alpha[i] > e[i] {
                        return 0.0;
                    }
                    for f in 0..alpha[i] {
                        v *= f64::from(e[i] - f);
                    }
                    v *= x[i].powi((e[i] - alpha[i]) as i32);
                }
                v
            })
            .sum()
    }

    fn partial_mi(&self, alpha: &MultiIndex, x: &[f64]) -> f64 {
        let a: Vec<u32> = (0..self.dim).map(|i| alpha.multiplicity(i)).collect();
        self.partial(&a, x)
    }

    /// `Σ_{|e| = deg} c·Π v^e`: the `t^deg` coefficient of `u(x + t·v)` for a polynomial of degree
    /// `≤ deg` (independent of `x`).
    fn form(&self, deg: u32, v: &[f64]) -> f64 {
        self.terms
            .iter()
            .filter(|(_, e)| e.iter().sum::<u32>() == deg)
            .map(|(c, e)| {
                c * e
                    .iter()
                    .zip(v)
                    .map(|(&p, x)| x.powi(p as i32))
                    .product::<f64>()
            })
            .sum()
    }
}

/// `u = ½xᵀAx + bᵀx + c·exp(gᵀx)` with a symmetric `A`: Hessian `A + c·e^{gᵀx} g gᵀ`.
#[derive(Clone, Debug)]
struct QuadExp {
    dim: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    g: Vec<f64>,
    c: f64,
}

impl QuadExp {
    /// Random `A = MᵀM/d + ½I − 0.3·(random symmetric)`, `b`, `g`, with a clearly non-zero trace.
    fn random(rng: &mut TestRng, dim: usize, c: f64) -> Self {
        let m = rng.uniform_vec(dim * dim, -1.0, 1.0);
        let noise = rng.uniform_vec(dim * dim, -1.0, 1.0);
        let mut a = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                let mut s = 0.0;
                for k in 0..dim {
                    s += m[k * dim + i] * m[k * dim + j];
                }
                a[i * dim + j] = s / dim as f64
                    + if i == j { 0.5 } else { 0.0 }
                    + 0.3 * (noise[i * dim + j] + noise[j * dim + i]);
            }
        }
        Self {
            dim,
            a,
            b: rng.uniform_vec(dim, -1.0, 1.0),
            g: rng.uniform_vec(dim, -0.8, 0.8),
            c,
        }
    }

    fn series(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        let len = xs[0].len();
        let d = self.dim;
        let mut acc = vec![0.0; len];
        let mut lin = vec![0.0; len];
        for i in 0..d {
            s_axpy(&mut acc, self.b[i], &xs[i]);
            s_axpy(&mut lin, self.g[i], &xs[i]);
            for j in 0..d {
                s_axpy(&mut acc, 0.5 * self.a[i * d + j], &s_mul(&xs[i], &xs[j]));
            }
        }
        s_axpy(&mut acc, self.c, &series::unary(Unary::Exp, &lin));
        acc
    }

    fn hessian(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim;
        let e = self.c * self.g.iter().zip(x).map(|(g, x)| g * x).sum::<f64>().exp();
        let mut h = self.a.clone();
        for i in 0..d {
            for j in 0..d {
                h[i * d + j] += e * self.g[i] * self.g[j];
            }
        }
        h
    }
}

/// `vᵀHv`.
fn quad_form(h: &[f64], v: &[f64]) -> f64 {
    let d = v.len();
    let mut s = 0.0;
    for i in 0..d {
        let mut r = 0.0;
        for j in 0..d {
            r += h[i * d + j] * v[j];
        }
        s += v[i] * r;
    }
    s
}

fn trace(h: &[f64], d: usize) -> f64 {
    (0..d).map(|i| h[i * d + i]).sum()
}

/// `½·tr(σᵀHσ)` for `σ` row-major `d × m`.
fn half_sigma_trace(h: &[f64], sigma: &[f64], d: usize, m: usize) -> f64 {
    0.5 * (0..m)
        .map(|c| {
            let col: Vec<f64> = (0..d).map(|r| sigma[r * m + c]).collect();
            quad_form(h, &col)
        })
        .sum::<f64>()
}

/// The slot-1 tangent of a direction as a dense vector (the stochastic estimators' probes).
fn tangent_vector(dir: &ProbeDirection, d: usize) -> Vec<f64> {
    assert_eq!(dir.slots.len(), 1, "one slot per stochastic probe");
    assert_eq!(dir.slots[0].0, 1, "stochastic probes use slot 1");
    match &dir.slots[0].1 {
        Tangent::Basis { index, scale } => {
            let mut v = vec![0.0; d];
            v[*index] = *scale;
            v
        }
        Tangent::Dense(v) => {
            assert_eq!(v.len(), d);
            v.clone()
        }
    }
}

/// `Σ weight·y_order(dir)` with `y` given per (tangent, order) in closed form.
fn closed_estimate(set: &ProbeSet, y: impl Fn(&[f64], usize) -> f64) -> f64 {
    let tangents: Vec<Vec<f64>> = set
        .dirs
        .iter()
        .map(|dir| tangent_vector(dir, set.dim))
        .collect();
    set.readouts
        .iter()
        .map(|r| r.weight * y(&tangents[r.dir], r.order))
        .sum()
}

#[track_caller]
fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs();
    assert!(
        err <= tol * want.abs().max(1e-300),
        "{what}: got {got:.15e}, want {want:.15e}, rel. error {:.3e} > {tol:e}",
        err / want.abs()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Exact estimators equal analytic operators
// ---------------------------------------------------------------------------------------------

const EXACT_TOL: f64 = 1e-9;

fn random_sigma(rng: &mut TestRng, d: usize, m: usize) -> Vec<f64> {
    rng.uniform_vec(d * m, -1.0, 1.0)
}

#[test]
fn exact_laplacian_and_sigma_trace_of_quadratic_forms() {
    let mut rng = test_rng(11);
    let d = 6;
    let points = rng.ball_points(3, d, 0.9);
    for c in [0.0, 0.7] {
        let f = QuadExp::random(&mut rng, d, c);
        let u = |xs: &[Vec<f64>]| f.series(xs);
        for collapsed in [false, true] {
            // Laplacian: tr A (+ c·e^{gᵀx}|g|²).
            let set = Estimator::Exact
                .probes(&Operator::Laplacian, d, &mut rng)
                .unwrap();
            assert_eq!(set.n_dirs(), d);
            let est = push(&set, &points, collapsed, &u);
            for (n, x) in points.chunks(d).enumerate() {
                let want = trace(&f.hessian(x), d);
                if c == 0.0 {
                    assert_rel(want, trace(&f.a, d), 1e-14, "tr A");
                }
                assert_rel(est[n], want, EXACT_TOL, "exact Laplacian");
            }
            // Sparse with V = d is exact too (weight d/V = 1).
            let set = Estimator::Sparse { rand_dims: d }
                .probes(&Operator::Laplacian, d, &mut rng)
                .unwrap();
            let est2 = push(&set, &points, collapsed, &u);
            for (a, b) in est.iter().zip(&est2) {
                assert_rel(*b, *a, 1e-12, "sparse V = d Laplacian");
            }
            // σ-trace ½tr(σσᵀH), σ: d × m with m < d and m > d.
            for m in [4, 9] {
                let sigma = random_sigma(&mut rng, d, m);
                let op = Operator::SigmaTrace {
                    sigma: sigma.clone(),
                    cols: m,
                };
                let set = Estimator::Exact.probes(&op, d, &mut rng).unwrap();
                assert_eq!(set.n_dirs(), m);
                let est = push(&set, &points, collapsed, &u);
                for (n, x) in points.chunks(d).enumerate() {
                    let want = half_sigma_trace(&f.hessian(x), &sigma, d, m);
                    if c == 0.0 {
                        // ½tr(σσᵀA) written the other way round.
                        let mut sst = vec![0.0; d * d];
                        for i in 0..d {
                            for j in 0..d {
                                sst[i * d + j] =
                                    (0..m).map(|k| sigma[i * m + k] * sigma[j * m + k]).sum();
                            }
                        }
                        let tr: f64 = (0..d)
                            .map(|i| (0..d).map(|j| sst[i * d + j] * f.a[j * d + i]).sum::<f64>())
                            .sum();
                        assert_rel(want, 0.5 * tr, 1e-13, "½tr(σσᵀA)");
                    }
                    assert_rel(est[n], want, EXACT_TOL, "exact σ-trace");
                }
                // Sparse over all m columns equals the exact value.
                let set = Estimator::Sparse { rand_dims: m }
                    .probes(&op, d, &mut rng)
                    .unwrap();
                let est2 = push(&set, &points, collapsed, &u);
                for (a, b) in est.iter().zip(&est2) {
                    assert_rel(*b, *a, 1e-12, "sparse V = m σ-trace");
                }
            }
        }
    }
}

/// `(1 − ‖x‖²)·S(x)` on series, for the exact solutions of `pde.rs`.
fn exact_solution_series(p: &Problem, xs: &[Vec<f64>]) -> Vec<f64> {
    let len = xs[0].len();
    let mut phi = series::constant(1.0, len);
    for x in xs {
        s_axpy(&mut phi, -1.0, &s_mul(x, x));
    }
    let mut s = vec![0.0; len];
    match p.solution {
        ExactSolution::TwoBody => {
            for (i, c) in p.coeffs.iter().enumerate() {
                let (a, b) = (&xs[i], &xs[i + 1]);
                let theta = s_add(
                    &s_add(a, &series::unary(Unary::Cos, b)),
                    &s_mul(b, &series::unary(Unary::Cos, a)),
                );
                s_axpy(&mut s, *c, &series::unary(Unary::Sin, &theta));
            }
        }
        ExactSolution::ThreeBody => {
            for (i, c) in p.coeffs.iter().enumerate() {
                let prod = s_mul(&s_mul(&xs[i], &xs[i + 1]), &xs[i + 2]);
                s_axpy(&mut s, *c, &series::unary(Unary::Exp, &prod));
            }
        }
    }
    s_mul(&phi, &s)
}

#[test]
fn exact_laplacian_of_pde_solutions_matches_closed_form() {
    let mut rng = test_rng(12);
    for solution in [ExactSolution::TwoBody, ExactSolution::ThreeBody] {
        for d in [3, 10] {
            let p = Problem::new(Equation::Poisson, solution, d, 1234 + d as u64).unwrap();
            let points = rng.ball_points(6, d, 0.95);
            let u = |xs: &[Vec<f64>]| exact_solution_series(&p, xs);
            let set = Estimator::Exact
                .probes(&Operator::Laplacian, d, &mut rng)
                .unwrap();
            for collapsed in [false, true] {
                let out = push_output(&set, &points, collapsed, &u);
                let est = set.estimate(out.as_ref());
                for (n, x) in points.chunks(d).enumerate() {
                    // The primal is u*(x) itself.
                    assert_rel(out.get(0, 0, n, 0), p.exact(x), 1e-12, "u* primal");
                    assert_rel(
                        est[n],
                        p.laplacian(x),
                        EXACT_TOL,
                        &format!("{} d={d} Laplacian", solution.name()),
                    );
                }
            }
        }
    }
}

/// `Σ_{i,j} B_ij x_i²x_j²` plus terms that `Δ²` annihilates, and its hand-derived `Δ²u`.
///
/// `Δ(x_i²x_j²) = 2x_j² + 2x_i²` for `i ≠ j`, so `Δ²(x_i²x_j²) = 4 + 4 = 8`; `Δx_i⁴ = 12x_i²`, so
/// `Δ²x_i⁴ = 24`. The extra quartics `x0³x1` (`Δ = 6x0x1`), `x0²x1x2` (`Δ = 2x1x2`) and
/// `x0x1x2x3` (`Δ = 0`) are biharmonic, and terms of degree ≤ 3 vanish under `Δ²`.
fn biharmonic_quartic(rng: &mut TestRng, d: usize) -> (Poly, f64) {
    assert!(d >= 4);
    let b = rng.uniform_vec(d * d, -1.0, 1.0);
    let mut p = Poly::new(d);
    let mut bih = 0.0;
    for i in 0..d {
        for j in 0..d {
            p = p.term(b[i * d + j], &[(i, 2), (j, 2)]);
            bih += if i == j { 24.0 } else { 8.0 } * b[i * d + j];
        }
    }
    p = p
        .term(1.3, &[(0, 3), (1, 1)])
        .term(-0.7, &[(0, 2), (1, 1), (2, 1)])
        .term(0.9, &[(0, 1), (1, 1), (2, 1), (3, 1)])
        .term(0.4, &[(2, 3)])
        .term(-1.1, &[(1, 2), (3, 1)])
        .term(0.6, &[(0, 1), (2, 1)])
        .term(2.0, &[(3, 1)])
        .term(-0.3, &[]);
    (p, bih)
}

#[test]
fn exact_biharmonic_of_quartic_matches_hand_derivation() {
    let mut rng = test_rng(13);
    for d in [4, 5] {
        let (p, bih) = biharmonic_quartic(&mut rng, d);
        // The symbolic Σ_{i,j} u_iijj agrees with the hand formula (everywhere: Δ²u is constant).
        let x0 = rng.ball_points(1, d, 0.9);
        let mut sym = 0.0;
        for i in 0..d {
            for j in 0..d {
                let mut a = vec![0; d];
                a[i] += 2;
                a[j] += 2;
                sym += p.partial(&a, &x0);
            }
        }
        assert_rel(sym, bih, 1e-13, "symbolic vs hand Δ²");
        let set = Estimator::Exact
            .probes(&Operator::Biharmonic, d, &mut rng)
            .unwrap();
        let points = rng.ball_points(3, d, 0.9);
        let u = |xs: &[Vec<f64>]| p.series(xs);
        let mut modes = vec![false];
        if set.can_collapse() {
            modes.push(true);
        }
        for collapsed in modes {
            let est = push(&set, &points, collapsed, &u);
            for e in est {
                assert_rel(e, bih, EXACT_TOL, &format!("exact biharmonic d={d}"));
            }
        }
    }
}

#[test]
fn exact_biharmonic_and_laplacian_of_exponential() {
    // u = exp(gᵀx): Δu = |g|²u, Δ²u = |g|⁴u.
    let mut rng = test_rng(14);
    let d = 4;
    let g = rng.uniform_vec(d, -1.0, 1.0);
    let g2: f64 = g.iter().map(|x| x * x).sum();
    let u = |xs: &[Vec<f64>]| {
        let mut lin = vec![0.0; xs[0].len()];
        for (gi, x) in g.iter().zip(xs) {
            s_axpy(&mut lin, *gi, x);
        }
        series::unary(Unary::Exp, &lin)
    };
    let points = rng.ball_points(3, d, 0.9);
    let bih = Estimator::Exact
        .probes(&Operator::Biharmonic, d, &mut rng)
        .unwrap();
    let lap = Estimator::Exact
        .probes(&Operator::Laplacian, d, &mut rng)
        .unwrap();
    let e_bih = push(&bih, &points, false, &u);
    let e_lap = push(&lap, &points, false, &u);
    for (n, x) in points.chunks(d).enumerate() {
        let ux = g.iter().zip(x).map(|(a, b)| a * b).sum::<f64>().exp();
        assert_rel(e_lap[n], g2 * ux, EXACT_TOL, "Δ exp");
        assert_rel(e_bih[n], g2 * g2 * ux, EXACT_TOL, "Δ² exp");
    }
}

#[test]
fn exact_diagonal_derivatives_of_exponentials() {
    // u = Σ w_i exp(a_i x_i) + exp(x0 x1): Σ_j ∂_j^k u = Σ w_i a_i^k e^{a_i x_i} + (x1^k + x0^k) e^{x0 x1}.
    let mut rng = test_rng(15);
    let d = 5;
    let a = rng.uniform_vec(d, -1.5, 1.5);
    let w = rng.uniform_vec(d, -1.0, 1.0);
    let u = |xs: &[Vec<f64>]| {
        let mut acc = s_scale(&series::unary(Unary::Exp, &s_mul(&xs[0], &xs[1])), 1.0);
        for i in 0..d {
            s_axpy(
                &mut acc,
                w[i],
                &series::unary(Unary::Exp, &s_scale(&xs[i], a[i])),
            );
        }
        acc
    };
    let points = rng.ball_points(4, d, 0.9);
    for k in 1..=6 {
        let op = Operator::DiagonalDerivative { order: k };
        let exact = Estimator::Exact.probes(&op, d, &mut rng).unwrap();
        let full_sparse = Estimator::Sparse { rand_dims: d }
            .probes(&op, d, &mut rng)
            .unwrap();
        for collapsed in [false, true] {
            let est = push(&exact, &points, collapsed, &u);
            let est2 = push(&full_sparse, &points, collapsed, &u);
            for (n, x) in points.chunks(d).enumerate() {
                let kk = k as i32;
                let want = (0..d)
                    .map(|i| w[i] * a[i].powi(kk) * (a[i] * x[i]).exp())
                    .sum::<f64>()
                    + (x[1].powi(kk) + x[0].powi(kk)) * (x[0] * x[1]).exp();
                assert_rel(est[n], want, EXACT_TOL, &format!("Σ∂^{k} exact"));
                assert_rel(est2[n], want, EXACT_TOL, &format!("Σ∂^{k} sparse V=d"));
            }
        }
    }
}

fn partials_poly() -> Poly {
    Poly::new(4)
        .term(2.0, &[(0, 2), (1, 1)])
        .term(3.0, &[(0, 1), (1, 1), (2, 2)])
        .term(-1.0, &[(1, 3), (2, 1)])
        .term(0.5, &[(0, 4)])
        .term(1.0, &[(0, 1), (1, 1), (2, 1), (3, 1)])
        .term(1.5, &[(2, 2), (3, 3)])
        .term(-0.8, &[(0, 3), (3, 2)])
        .term(0.25, &[(1, 2), (2, 2), (3, 1)])
        .term(1.0, &[(3, 1)])
}

fn partials_terms() -> Vec<(f64, MultiIndex)> {
    vec![
        (1.0, MultiIndex::new(&[(0, 1), (1, 1)])),
        (-2.0, MultiIndex::new(&[(0, 2), (1, 1)])),
        (0.5, MultiIndex::new(&[(1, 2), (2, 1)])),
        (3.0, MultiIndex::new(&[(2, 2), (3, 1)])),
        (1.0, MultiIndex::new(&[(0, 1), (1, 1), (2, 1), (3, 1)])),
        (0.7, MultiIndex::new(&[(2, 2), (3, 3)])),
        (-1.2, MultiIndex::new(&[(0, 3), (3, 1)])),
        (0.9, MultiIndex::new(&[(1, 2), (2, 2)])),
        (2.5, MultiIndex::new(&[(3, 1)])),
        (-0.4, MultiIndex::new(&[(0, 2)])),
    ]
}

#[test]
fn exact_partials_of_polynomial_match_symbolic_derivatives() {
    let mut rng = test_rng(16);
    let p = partials_poly();
    let d = p.dim;
    let u = |xs: &[Vec<f64>]| p.series(xs);
    let points = rng.ball_points(3, d, 0.9);
    let terms = partials_terms();
    // Each term alone, then the whole combination.
    let mut cases: Vec<Vec<(f64, MultiIndex)>> = terms.iter().map(|t| vec![t.clone()]).collect();
    cases.push(terms.clone());
    for case in cases {
        let set = Estimator::Exact
            .probes(&Operator::Partials(case.clone()), d, &mut rng)
            .unwrap();
        let mut modes = vec![false];
        if set.can_collapse() {
            modes.push(true);
        }
        for collapsed in modes {
            let est = push(&set, &points, collapsed, &u);
            for (n, x) in points.chunks(d).enumerate() {
                let want: f64 = case.iter().map(|(c, a)| c * p.partial_mi(a, x)).sum();
                let label = case
                    .iter()
                    .map(|(c, a)| format!("{c}·{a}"))
                    .collect::<Vec<_>>()
                    .join(" + ");
                assert_rel(
                    est[n],
                    want,
                    EXACT_TOL,
                    &format!("{label} (collapsed {collapsed})"),
                );
            }
        }
        // Sampling every term is exact.
        let set = Estimator::Sparse {
            rand_dims: case.len(),
        }
        .probes(&Operator::Partials(case.clone()), d, &mut rng)
        .unwrap();
        let est = push(&set, &points, false, &u);
        for (n, x) in points.chunks(d).enumerate() {
            let want: f64 = case.iter().map(|(c, a)| c * p.partial_mi(a, x)).sum();
            assert_rel(est[n], want, EXACT_TOL, "sparse partials, V = all terms");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Stochastic estimators are unbiased
// ---------------------------------------------------------------------------------------------

/// Draws per stochastic check.
const DRAWS: usize = 100_000;
/// Of which pushed through the jet path (and compared with the closed form draw by draw).
const JET_DRAWS: usize = 4_000;

/// Welford mean and variance.
#[derive(Debug, Default)]
struct Stats {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Stats {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    fn var(&self) -> f64 {
        self.m2 / (self.n - 1) as f64
    }

    fn std_err(&self) -> f64 {
        (self.var() / self.n as f64).sqrt()
    }

    /// `|mean − want| ≤ 4 SE`.
    #[track_caller]
    fn assert_mean(&self, want: f64, what: &str) {
        let z = (self.mean - want) / self.std_err();
        println!(
            "{what}: mean {:.6} ± {:.2e} (want {want:.6}, z = {z:+.2}), var {:.4}",
            self.mean,
            self.std_err(),
            self.var()
        );
        assert!(
            z.abs() <= 4.0,
            "{what}: mean {} is {z:.2} standard errors ({:.3e}) from {want}",
            self.mean,
            self.std_err()
        );
    }

    /// The sample variance is within `rel` of the predicted one.
    #[track_caller]
    fn assert_var(&self, want: f64, rel: f64, what: &str) {
        assert!(
            (self.var() - want).abs() <= rel * want,
            "{what}: sample variance {} vs predicted {want}",
            self.var()
        );
    }
}

/// Runs `DRAWS` probe sets of `est` for `op`; the first `JET_DRAWS` go through the jet path (alternately
/// collapsed) and must equal the closed-form per-draw estimate.
fn sample(
    est: Estimator,
    op: &Operator,
    d: usize,
    seed: u64,
    x: &[f64],
    u: SeriesFn<'_>,
    closed: &dyn Fn(&ProbeSet) -> f64,
    mut inspect: impl FnMut(&ProbeSet),
) -> Stats {
    let mut rng = test_rng(seed);
    let mut stats = Stats::default();
    for draw in 0..DRAWS {
        let set = est.probes(op, d, &mut rng).unwrap();
        inspect(&set);
        let e = closed(&set);
        if draw < JET_DRAWS {
            let jet = push(&set, x, draw % 2 == 1, u)[0];
            assert!(
                (jet - e).abs() <= 1e-10 * (1.0 + e.abs()),
                "draw {draw}: jet estimate {jet} vs closed form {e}"
            );
        }
        stats.push(e);
    }
    stats
}

/// The Laplacian test function at a fixed point: `(u, x, H(x))`.
fn laplacian_setup(d: usize, seed: u64) -> (QuadExp, Vec<f64>, Vec<f64>) {
    let mut rng = test_rng(seed);
    let f = QuadExp::random(&mut rng, d, 0.8);
    let x = rng.ball_points(1, d, 0.8);
    let h = f.hessian(&x);
    (f, x, h)
}

#[test]
fn sparse_laplacian_is_unbiased_and_samples_without_replacement() {
    let (d, v) = (10, 7);
    let (f, x, h) = laplacian_setup(d, 21);
    let u = |xs: &[Vec<f64>]| f.series(xs);
    let closed = |set: &ProbeSet| {
        closed_estimate(set, |t, k| {
            assert_eq!(k, 2);
            quad_form(&h, t)
        })
    };
    let inspect = |set: &ProbeSet| {
        assert!(set.is_first_order_one_hot());
        let mut idx: Vec<usize> = set
            .dirs
            .iter()
            .map(|dir| match dir.slots[0].1 {
                Tangent::Basis { index, .. } => index,
                _ => unreachable!(),
            })
            .collect();
        idx.sort_unstable();
        idx.dedup();
        assert_eq!(idx.len(), v, "indices drawn with replacement");
        assert!(set.readouts.iter().all(|r| r.weight == d as f64 / v as f64));
    };
    let stats = sample(
        Estimator::Sparse { rand_dims: v },
        &Operator::Laplacian,
        d,
        210,
        &x,
        &u,
        &closed,
        inspect,
    );
    let exact = trace(&h, d);
    stats.assert_mean(exact, "sparse Laplacian");
    // Without replacement: Var = (d/V)²·V·σ²·(d − V)/(d − 1), σ² the population variance of H_jj.
    // (With replacement it would be (d − 1)/(d − V) = 3 times larger.)
    let mean_diag = exact / d as f64;
    let sigma2 = (0..d)
        .map(|i| (h[i * d + i] - mean_diag).powi(2))
        .sum::<f64>()
        / d as f64;
    let (df, vf) = (d as f64, v as f64);
    let want = (df / vf).powi(2) * vf * sigma2 * (df - vf) / (df - 1.0);
    stats.assert_var(want, 0.03, "sparse Laplacian variance");
}

fn dense_laplacian(distribution: Distribution, seed: u64) {
    let (d, v) = (10, 4);
    let (f, x, h) = laplacian_setup(d, seed);
    let u = |xs: &[Vec<f64>]| f.series(xs);
    let closed = |set: &ProbeSet| closed_estimate(set, |t, _| quad_form(&h, t));
    let inspect = |set: &ProbeSet| {
        assert_eq!(set.n_dirs(), v);
        for dir in &set.dirs {
            let t = tangent_vector(dir, d);
            if distribution == Distribution::Rademacher {
                assert!(t.iter().all(|c| c.abs() == 1.0));
            }
        }
    };
    let stats = sample(
        Estimator::Dense {
            rand_dims: v,
            distribution,
        },
        &Operator::Laplacian,
        d,
        seed * 10,
        &x,
        &u,
        &closed,
        inspect,
    );
    let name = format!("dense {distribution:?} Laplacian");
    stats.assert_mean(trace(&h, d), &name);
    // Var(vᵀHv) = 2‖H‖_F² (Gaussian) or 2Σ_{i≠j}H_ij² (Rademacher), divided by V.
    let frob: f64 = h.iter().map(|c| c * c).sum();
    let diag: f64 = (0..d).map(|i| h[i * d + i].powi(2)).sum();
    let per_probe = match distribution {
        Distribution::Gaussian => 2.0 * frob,
        Distribution::Rademacher => 2.0 * (frob - diag),
    };
    stats.assert_var(per_probe / v as f64, 0.05, &format!("{name} variance"));
}

#[test]
fn dense_rademacher_laplacian_is_unbiased() {
    dense_laplacian(Distribution::Rademacher, 22);
}

#[test]
fn dense_gaussian_laplacian_is_unbiased() {
    dense_laplacian(Distribution::Gaussian, 23);
}

#[test]
fn dense_gaussian_biharmonic_is_unbiased() {
    let (d, v) = (4, 3);
    let mut rng = test_rng(24);
    let (p, bih) = biharmonic_quartic(&mut rng, d);
    let x = rng.ball_points(1, d, 0.8);
    let u = |xs: &[Vec<f64>]| p.series(xs);
    // y4(v) = 4!·(quartic form of u)(v), whatever x.
    let closed = |set: &ProbeSet| {
        closed_estimate(set, |t, k| {
            assert_eq!(k, 4);
            24.0 * p.form(4, t)
        })
    };
    let inspect = |set: &ProbeSet| {
        assert_eq!(set.order, 4);
        assert!(set
            .readouts
            .iter()
            .all(|r| (r.weight - 1.0 / (3.0 * v as f64)).abs() < 1e-15));
    };
    let stats = sample(
        Estimator::Dense {
            rand_dims: v,
            distribution: Distribution::Gaussian,
        },
        &Operator::Biharmonic,
        d,
        240,
        &x,
        &u,
        &closed,
        inspect,
    );
    stats.assert_mean(bih, "dense Gaussian biharmonic");
    // The paper's Eq. 88 extra factor d would land far away.
    assert!((stats.mean * d as f64 - bih).abs() > 20.0 * stats.std_err() * d as f64);
}

fn sigma_trace_case(est: Estimator, seed: u64) {
    let (d, m) = (6, 9);
    let (f, x, h) = laplacian_setup(d, seed);
    let mut rng = test_rng(seed + 1);
    let sigma = random_sigma(&mut rng, d, m);
    let op = Operator::SigmaTrace {
        sigma: sigma.clone(),
        cols: m,
    };
    let u = |xs: &[Vec<f64>]| f.series(xs);
    let closed = |set: &ProbeSet| closed_estimate(set, |t, _| quad_form(&h, t));
    let stats = sample(est, &op, d, seed * 10, &x, &u, &closed, |_| {});
    stats.assert_mean(
        half_sigma_trace(&h, &sigma, d, m),
        &format!("{} σ-trace", est.name()),
    );
}

#[test]
fn sparse_sigma_trace_is_unbiased() {
    sigma_trace_case(Estimator::Sparse { rand_dims: 4 }, 25);
}

#[test]
fn dense_sigma_trace_is_unbiased() {
    sigma_trace_case(
        Estimator::Dense {
            rand_dims: 3,
            distribution: Distribution::Rademacher,
        },
        26,
    );
    sigma_trace_case(
        Estimator::Dense {
            rand_dims: 3,
            distribution: Distribution::Gaussian,
        },
        27,
    );
}

#[test]
fn sparse_partials_are_unbiased() {
    // Sampling V of the T terms, scaled by T/V; fewer draws (every one goes through the planner and
    // the jet path).
    let p = partials_poly();
    let d = p.dim;
    let terms = partials_terms();
    let mut rng = test_rng(28);
    let x = rng.ball_points(1, d, 0.8);
    let u = |xs: &[Vec<f64>]| p.series(xs);
    let want: f64 = terms.iter().map(|(c, a)| c * p.partial_mi(a, &x)).sum();
    let op = Operator::Partials(terms);
    let mut stats = Stats::default();
    for _ in 0..3_000 {
        let set = Estimator::Sparse { rand_dims: 3 }
            .probes(&op, d, &mut rng)
            .unwrap();
        stats.push(push(&set, &x, false, &u)[0]);
    }
    stats.assert_mean(want, "sparse partials");
}

#[test]
fn biased_dense_estimator_of_the_official_code_is_caught() {
    // The official dense path fills only V of the d coordinates with random signs and forgets the
    // d/V factor: E[vvᵀ] = (V/d)·I, so its mean is (V/d)·Δu. The same 4-SE test rejects it.
    let (d, v) = (10, 4);
    let (f, x, h) = laplacian_setup(d, 29);
    let u = |xs: &[Vec<f64>]| f.series(xs);
    let exact = trace(&h, d);
    let mut rng = test_rng(290);
    let (mut biased, mut fixed) = (Stats::default(), Stats::default());
    for draw in 0..DRAWS {
        let idx = rng.index_set(d, v);
        let signs = rng.rademacher(v);
        let mut t = vec![0.0; d];
        for (i, s) in idx.iter().zip(&signs) {
            t[*i] = *s;
        }
        let set = ProbeSet {
            order: 2,
            dim: d,
            dirs: vec![ProbeDirection {
                slots: vec![(1, Tangent::Dense(t.clone()))],
            }],
            readouts: vec![Readout {
                dir: 0,
                order: 2,
                weight: 1.0,
            }],
        };
        let e = quad_form(&h, &t);
        if draw < JET_DRAWS {
            let jet = push(&set, &x, draw % 2 == 0, &u)[0];
            assert!((jet - e).abs() <= 1e-10 * (1.0 + e.abs()));
        }
        biased.push(e);
        fixed.push(e * d as f64 / v as f64);
    }
    let z = (biased.mean - exact) / biased.std_err();
    println!(
        "official dense: mean {} vs Δu {exact}: z = {z:.1}",
        biased.mean
    );
    assert!(
        z.abs() > 20.0,
        "the unbiasedness test has no power: z = {z}"
    );
    biased.assert_mean(exact * v as f64 / d as f64, "official dense vs (V/d)·Δu");
    fixed.assert_mean(exact, "official dense with the d/V factor");
}

// ---------------------------------------------------------------------------------------------
// 3. Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn estimator_errors() {
    let mut rng = test_rng(31);
    let d = 5;
    // Sparse V > d (and V = 0).
    for v in [0, d + 1] {
        let err = Estimator::Sparse { rand_dims: v }
            .probes(&Operator::Laplacian, d, &mut rng)
            .unwrap_err();
        assert_eq!(
            err,
            EstimatorError::BadRandDims {
                rand_dims: v,
                population: d
            }
        );
    }
    // Sparse σ-trace samples columns: V > m.
    let op = Operator::SigmaTrace {
        sigma: vec![1.0; d * 3],
        cols: 3,
    };
    assert_eq!(
        Estimator::Sparse { rand_dims: 4 }
            .probes(&op, d, &mut rng)
            .unwrap_err(),
        EstimatorError::BadRandDims {
            rand_dims: 4,
            population: 3
        }
    );
    // Malformed σ.
    let op = Operator::SigmaTrace {
        sigma: vec![1.0; d * 3 - 1],
        cols: 3,
    };
    assert!(matches!(
        Estimator::Exact.probes(&op, d, &mut rng),
        Err(EstimatorError::Shape { dim: 5, .. })
    ));
    // Biharmonic with Rademacher tangents: unsupported, and the message says why.
    let err = Estimator::Dense {
        rand_dims: 2,
        distribution: Distribution::Rademacher,
    }
    .probes(&Operator::Biharmonic, d, &mut rng)
    .unwrap_err();
    assert!(matches!(err, EstimatorError::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("biharmonic") && msg.contains("Gaussian"),
        "{msg}"
    );
    // Sparse biharmonic is unsupported too.
    assert!(matches!(
        Estimator::Sparse { rand_dims: 2 }.probes(&Operator::Biharmonic, d, &mut rng),
        Err(EstimatorError::Unsupported { .. })
    ));
    // Partials on a coordinate ≥ d.
    let op = Operator::Partials(vec![
        (1.0, MultiIndex::new(&[(0, 1), (1, 1)])),
        (1.0, MultiIndex::new(&[(d, 2)])),
    ]);
    for est in [Estimator::Exact, Estimator::Sparse { rand_dims: 1 }] {
        let err = est.probes(&op, d, &mut rng).unwrap_err();
        match &err {
            EstimatorError::Shape { dim, reason } => {
                assert_eq!(*dim, d);
                assert!(reason.contains(&d.to_string()), "{reason}");
            }
            other => panic!("expected a shape error, got {other:?}"),
        }
    }
    // Empty partials.
    assert!(matches!(
        Estimator::Exact.probes(&Operator::Partials(vec![]), d, &mut rng),
        Err(EstimatorError::Shape { .. })
    ));
    // Dense mixed partials.
    let op = Operator::Partials(vec![(1.0, MultiIndex::new(&[(0, 1), (1, 1)]))]);
    for distribution in [Distribution::Rademacher, Distribution::Gaussian] {
        let err = Estimator::Dense {
            rand_dims: 2,
            distribution,
        }
        .probes(&op, d, &mut rng)
        .unwrap_err();
        assert!(matches!(err, EstimatorError::Unsupported { .. }), "{err:?}");
    }
    // Dense diagonal derivative of order ≠ 2, and out-of-range orders.
    let err = Estimator::Dense {
        rand_dims: 2,
        distribution: Distribution::Gaussian,
    }
    .probes(&Operator::DiagonalDerivative { order: 3 }, d, &mut rng)
    .unwrap_err();
    assert!(matches!(err, EstimatorError::Unsupported { .. }), "{err:?}");
    for order in [0, 17] {
        assert!(matches!(
            Estimator::Exact.probes(&Operator::DiagonalDerivative { order }, d, &mut rng),
            Err(EstimatorError::Shape { .. })
        ));
    }
    // Dense with V = 0.
    assert!(matches!(
        Estimator::Dense {
            rand_dims: 0,
            distribution: Distribution::Gaussian
        }
        .probes(&Operator::Laplacian, d, &mut rng),
        Err(EstimatorError::BadRandDims { rand_dims: 0, .. })
    ));
}

/// An order-3 set whose directions fill slots 1, 2 and 3 (so the top input coefficient is non-zero),
/// read at order 3 with one common weight and at orders 1 and 2 with other weights.
fn multi_slot_set(d: usize, rng: &mut TestRng) -> ProbeSet {
    let dirs = (0..3)
        .map(|s| ProbeDirection {
            slots: vec![
                (1, Tangent::Dense(rng.uniform_vec(d, -1.0, 1.0))),
                (
                    2,
                    Tangent::Basis {
                        index: (2 * s + 1) % d,
                        scale: 0.8,
                    },
                ),
                (3, Tangent::Dense(rng.uniform_vec(d, -1.0, 1.0))),
            ],
        })
        .collect();
    let mut readouts: Vec<Readout> = (0..3)
        .map(|dir| Readout {
            dir,
            order: 3,
            weight: 0.7,
        })
        .collect();
    readouts.extend([
        Readout {
            dir: 0,
            order: 1,
            weight: 0.3,
        },
        Readout {
            dir: 1,
            order: 2,
            weight: -1.1,
        },
        Readout {
            dir: 2,
            order: 2,
            weight: 0.5,
        },
    ]);
    let set = ProbeSet {
        order: 3,
        dim: d,
        dirs,
        readouts,
    };
    assert!(set.can_collapse());
    set
}

#[test]
fn collapsed_readout_of_closed_forms_with_a_non_zero_top_slot() {
    // The collapsed input batch and readout, against the uncollapsed ones, on closed forms whose
    // collapsed output is assembled independently of the library's jet rules (see `push_output`).
    let mut rng = test_rng(35);
    let d = 4;
    let points = rng.ball_points(3, d, 0.9);
    let set = multi_slot_set(d, &mut rng);
    let (quartic, _) = biharmonic_quartic(&mut rng, d);
    let p = Problem::new(Equation::Poisson, ExactSolution::TwoBody, d, 5).unwrap();
    let fns: [SeriesFn<'_>; 2] = [&|xs| quartic.series(xs), &|xs| {
        exact_solution_series(&p, xs)
    }];
    for u in fns {
        let plain = push(&set, &points, false, u);
        let coll = push(&set, &points, true, u);
        for (a, b) in plain.iter().zip(&coll) {
            assert_rel(*b, *a, 1e-12, "multi-slot collapsed vs uncollapsed");
        }
    }
}

#[test]
#[should_panic(expected = "collapsed")]
fn collapsing_a_set_with_unequal_top_weights_panics() {
    let set = ProbeSet {
        order: 2,
        dim: 2,
        dirs: vec![
            ProbeDirection {
                slots: vec![(
                    1,
                    Tangent::Basis {
                        index: 0,
                        scale: 1.0,
                    },
                )],
            },
            ProbeDirection {
                slots: vec![(
                    1,
                    Tangent::Basis {
                        index: 1,
                        scale: 1.0,
                    },
                )],
            },
        ],
        readouts: vec![
            Readout {
                dir: 0,
                order: 2,
                weight: 1.0,
            },
            Readout {
                dir: 1,
                order: 2,
                weight: 2.0,
            },
        ],
    };
    assert!(!set.can_collapse());
    let _ = set.input_batch(&[0.1, 0.2], true);
}

// ---------------------------------------------------------------------------------------------
// 4. Collapsed and uncollapsed estimates agree on a model
// ---------------------------------------------------------------------------------------------

fn small_model(d: usize, activation: Activation, seed: u64) -> Model {
    let mut rng = test_rng(seed);
    Model {
        mlp: Mlp::init(MlpShape::new(d, 8, 3, activation), || rng.uniform()),
        hard_ball_boundary: true,
    }
}

fn model_estimate(model: &Model, set: &ProbeSet, points: &[f64], collapsed: bool) -> Vec<f64> {
    let tape = model.jet_forward(set.input_batch(points, collapsed));
    set.estimate(tape.output.as_ref())
}

#[track_caller]
fn assert_vec_rel(a: &[f64], b: &[f64], tol: f64, what: &str) {
    let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        diff <= tol * norm,
        "{what}: ‖a − b‖/‖a‖ = {:.3e} > {tol:e} (a = {a:?}, b = {b:?})",
        diff / norm
    );
}

#[test]
fn collapsed_equals_uncollapsed_on_a_model() {
    let d = 5;
    let mut rng = test_rng(41);
    let points = rng.ball_points(4, d, 0.9);
    let sigma = random_sigma(&mut rng, d, 3);
    let cases: Vec<(Estimator, Operator)> = vec![
        (Estimator::Exact, Operator::Laplacian),
        (Estimator::Sparse { rand_dims: 3 }, Operator::Laplacian),
        (
            Estimator::Dense {
                rand_dims: 3,
                distribution: Distribution::Rademacher,
            },
            Operator::Laplacian,
        ),
        (
            Estimator::Dense {
                rand_dims: 3,
                distribution: Distribution::Gaussian,
            },
            Operator::Laplacian,
        ),
        (
            Estimator::Dense {
                rand_dims: 2,
                distribution: Distribution::Gaussian,
            },
            Operator::Biharmonic,
        ),
        (Estimator::Exact, Operator::Biharmonic),
        (
            Estimator::Sparse { rand_dims: 2 },
            Operator::SigmaTrace { sigma, cols: 3 },
        ),
        (Estimator::Exact, Operator::DiagonalDerivative { order: 3 }),
        // Order 1: the top input coefficient is the tangent itself, so every linear top term
        // (including the ball factor's −2·x·Σ_s x_K^s) is exercised from the first layer on.
        (Estimator::Exact, Operator::DiagonalDerivative { order: 1 }),
        (
            Estimator::Sparse { rand_dims: 2 },
            Operator::DiagonalDerivative { order: 1 },
        ),
    ];
    for activation in [Activation::Tanh, Activation::Sin] {
        let model = small_model(d, activation, 42);
        for (est, op) in &cases {
            let set = est.probes(op, d, &mut rng).unwrap();
            let plain = model_estimate(&model, &set, &points, false);
            if !set.can_collapse() {
                println!("{} {}: readout does not collapse", est.name(), op.name());
                continue;
            }
            let coll = model_estimate(&model, &set, &points, true);
            assert_vec_rel(
                &plain,
                &coll,
                1e-12,
                &format!("{activation:?} {} {}", est.name(), op.name()),
            );
        }
        // A hand-built set with a non-zero top input slot and lower-order readouts.
        let set = multi_slot_set(d, &mut rng);
        assert_vec_rel(
            &model_estimate(&model, &set, &points, false),
            &model_estimate(&model, &set, &points, true),
            1e-12,
            &format!("{activation:?} multi-slot set"),
        );
        // Sparse with V = d equals the exact Laplacian on the model too.
        let exact = Estimator::Exact
            .probes(&Operator::Laplacian, d, &mut rng)
            .unwrap();
        let full = Estimator::Sparse { rand_dims: d }
            .probes(&Operator::Laplacian, d, &mut rng)
            .unwrap();
        assert_vec_rel(
            &model_estimate(&model, &exact, &points, false),
            &model_estimate(&model, &full, &points, true),
            1e-12,
            "sparse V = d vs exact on the model",
        );
    }
}
