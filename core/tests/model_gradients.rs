//! Parameter gradients of jet-based losses through `ProbeSet` → `Model::jet_forward` → `estimate`
//! (and back through `estimate_adjoint` → `Model::jet_backward`) against central finite differences;
//! collapsed and uncollapsed batches agree in value and gradient for orders 1..=6; the model's jets
//! agree with an independent plain forward pass and with finite differences of `Model::eval`.

use stde_core::estimator::{Distribution, Estimator, Operator, ProbeSet};
use stde_core::mlp::{Activation, Mlp, MlpShape, Model};

mod common;
use common::TestRng;

/// This file's generator: Philox stream 78, radius uniform on `[0.2·r_max, r_max)` (away from the
/// centre).
fn test_rng(seed: u64) -> TestRng {
    TestRng::new(seed, 78, 0.2)
}

// ---------------------------------------------------------------------------------------------
// Models, losses and gradients
// ---------------------------------------------------------------------------------------------

fn model(d: usize, activation: Activation, seed: u64, ball: bool) -> Model {
    let mut rng = test_rng(seed);
    Model {
        mlp: Mlp::init(MlpShape::new(d, 8, 3, activation), || rng.uniform()),
        hard_ball_boundary: ball,
    }
}

/// The per-point estimates of `set` on `model` at `points`.
fn estimates(model: &Model, set: &ProbeSet, points: &[f64], collapsed: bool) -> Vec<f64> {
    let tape = model.jet_forward(set.input_batch(points, collapsed));
    set.estimate(tape.output.as_ref())
}

/// `L(θ) = mean_n est_n²`.
fn loss(model: &Model, set: &ProbeSet, points: &[f64], collapsed: bool) -> f64 {
    let est = estimates(model, set, points, collapsed);
    est.iter().map(|e| e * e).sum::<f64>() / est.len() as f64
}

/// `(L, ∂L/∂θ, estimates)` by the adjoint chain.
fn loss_and_grad(
    model: &Model,
    set: &ProbeSet,
    points: &[f64],
    collapsed: bool,
) -> (f64, Vec<f64>, Vec<f64>) {
    let tape = model.jet_forward(set.input_batch(points, collapsed));
    let est = set.estimate(tape.output.as_ref());
    let n = est.len() as f64;
    let l = est.iter().map(|e| e * e).sum::<f64>() / n;
    let est_bar: Vec<f64> = est.iter().map(|e| 2.0 * e / n).collect();
    let out_bar = set.estimate_adjoint(tape.output.shape(), &est_bar);
    assert_eq!(out_bar.shape(), tape.output.shape());
    let mut grad = vec![0.0; model.mlp.params.len()];
    model.jet_backward(&tape, out_bar, &mut grad);
    (l, grad, est)
}

/// Central finite differences of `L` in every parameter, Richardson-extrapolated over `h` and `h/2`
/// (error `O(h⁴)`), `h = 1e-4·max(1, |θ_i|)`.
fn fd_grad(model: &Model, set: &ProbeSet, points: &[f64], collapsed: bool) -> Vec<f64> {
    let mut m = model.clone();
    (0..model.mlp.params.len())
        .map(|i| {
            let theta = model.mlp.params[i];
            let h = 1e-4 * theta.abs().max(1.0);
            let mut central = |h: f64| {
                m.mlp.params[i] = theta + h;
                let lp = loss(&m, set, points, collapsed);
                m.mlp.params[i] = theta - h;
                let lm = loss(&m, set, points, collapsed);
                m.mlp.params[i] = theta;
                (lp - lm) / (2.0 * h)
            };
            let (d1, d2) = (central(h), central(h / 2.0));
            (4.0 * d2 - d1) / 3.0
        })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `‖a − b‖ ≤ tol·‖b‖`, and per component `|a_i − b_i| ≤ tol·max(|b_i|, floor·‖b‖_∞)`.
#[track_caller]
fn assert_grad_close(got: &[f64], want: &[f64], tol: f64, floor: f64, what: &str) {
    assert_eq!(got.len(), want.len());
    let diff: Vec<f64> = got.iter().zip(want).map(|(a, b)| a - b).collect();
    let rel = norm(&diff) / norm(want);
    assert!(
        rel <= tol,
        "{what}: ‖g − g_ref‖/‖g_ref‖ = {rel:.3e} > {tol:e}"
    );
    let inf = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(inf > 0.0, "{what}: zero reference gradient");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let bound = tol * b.abs().max(floor * inf);
        assert!(
            (a - b).abs() <= bound,
            "{what}: parameter {i}: {a:.12e} vs {b:.12e} (|diff| {:.3e} > {bound:.3e})",
            (a - b).abs()
        );
    }
}

/// Checks the adjoint gradient against finite differences, for both layouts where the set allows.
fn check_against_fd(model: &Model, set: &ProbeSet, points: &[f64], what: &str) {
    let mut layouts = vec![false];
    if set.can_collapse() {
        layouts.push(true);
    }
    for collapsed in layouts {
        let (l, g, _) = loss_and_grad(model, set, points, collapsed);
        assert!(l.is_finite() && l > 0.0, "{what}: loss {l}");
        let fd = fd_grad(model, set, points, collapsed);
        let rel = norm(&g.iter().zip(&fd).map(|(a, b)| a - b).collect::<Vec<_>>()) / norm(&fd);
        println!(
            "{what} (collapsed {collapsed}): L = {l:.6e}, ‖g‖ = {:.3e}, rel. error vs FD {rel:.2e}",
            norm(&g)
        );
        assert_grad_close(
            &g,
            &fd,
            1e-6,
            1e-3,
            &format!("{what} (collapsed {collapsed})"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Gradients against finite differences
// ---------------------------------------------------------------------------------------------

const D: usize = 3;
const N_POINTS: usize = 5;

fn setup(seed: u64) -> (TestRng, Vec<f64>) {
    let mut rng = test_rng(seed);
    let points = rng.ball_points(N_POINTS, D, 0.9);
    (rng, points)
}

#[test]
fn exact_laplacian_loss_gradient_matches_finite_differences() {
    let (mut rng, points) = setup(1);
    let set = Estimator::Exact
        .probes(&Operator::Laplacian, D, &mut rng)
        .unwrap();
    assert_eq!(set.n_dirs(), D);
    assert!(set.can_collapse());
    for activation in [Activation::Tanh, Activation::Sin] {
        let m = model(D, activation, 10, true);
        assert_eq!(m.mlp.params.len(), 8 * 4 + 8 * 9 + 9);
        check_against_fd(&m, &set, &points, &format!("exact Δ, {activation:?}"));
    }
    // Without the ball factor as well.
    let m = model(D, Activation::Tanh, 11, false);
    check_against_fd(&m, &set, &points, "exact Δ, tanh, no ball");
}

#[test]
fn sparse_laplacian_loss_gradient_matches_finite_differences() {
    let (mut rng, points) = setup(2);
    let set = Estimator::Sparse { rand_dims: 2 }
        .probes(&Operator::Laplacian, D, &mut rng)
        .unwrap();
    assert!(set.is_first_order_one_hot());
    for activation in [Activation::Tanh, Activation::Sin] {
        let m = model(D, activation, 20, true);
        check_against_fd(&m, &set, &points, &format!("sparse Δ, {activation:?}"));
    }
}

#[test]
fn dense_rademacher_laplacian_loss_gradient_matches_finite_differences() {
    let (mut rng, points) = setup(3);
    let set = Estimator::Dense {
        rand_dims: 3,
        distribution: Distribution::Rademacher,
    }
    .probes(&Operator::Laplacian, D, &mut rng)
    .unwrap();
    for activation in [Activation::Tanh, Activation::Sin] {
        let m = model(D, activation, 30, true);
        check_against_fd(
            &m,
            &set,
            &points,
            &format!("dense Rademacher Δ, {activation:?}"),
        );
    }
}

#[test]
fn biharmonic_loss_gradient_matches_finite_differences() {
    let (mut rng, points) = setup(4);
    // Dense Gaussian 4-jets: collapsed top at order 4.
    let set = Estimator::Dense {
        rand_dims: 2,
        distribution: Distribution::Gaussian,
    }
    .probes(&Operator::Biharmonic, D, &mut rng)
    .unwrap();
    assert_eq!(set.order, 4);
    assert!(set.can_collapse());
    for activation in [Activation::Tanh, Activation::Sin] {
        let m = model(D, activation, 40, true);
        check_against_fd(
            &m,
            &set,
            &points,
            &format!("dense Gaussian Δ², {activation:?}"),
        );
    }
    // The exact biharmonic through the planner (mixed slots, several read orders).
    let set = Estimator::Exact
        .probes(&Operator::Biharmonic, D, &mut rng)
        .unwrap();
    let m = model(D, Activation::Tanh, 41, true);
    check_against_fd(&m, &set, &points, "exact Δ², tanh");
}

#[test]
fn sigma_trace_loss_gradient_matches_finite_differences() {
    // Dense tangents σ·v that are not ±1 and a σ with m ≠ d.
    let (mut rng, points) = setup(5);
    let sigma: Vec<f64> = (0..D * 4).map(|_| 2.0 * rng.uniform() - 1.0).collect();
    let set = Estimator::Dense {
        rand_dims: 2,
        distribution: Distribution::Gaussian,
    }
    .probes(&Operator::SigmaTrace { sigma, cols: 4 }, D, &mut rng)
    .unwrap();
    let m = model(D, Activation::Tanh, 50, true);
    check_against_fd(&m, &set, &points, "dense σ-trace, tanh");
}

// ---------------------------------------------------------------------------------------------
// 2. Collapsed equals uncollapsed, orders 1..=6
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn assert_vec_rel(a: &[f64], b: &[f64], tol: f64, what: &str) {
    let diff = norm(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>());
    let n = norm(a);
    assert!(n > 0.0, "{what}: zero reference");
    assert!(
        diff <= tol * n,
        "{what}: ‖a − b‖/‖a‖ = {:.3e} > {tol:e}",
        diff / n
    );
}

#[test]
fn collapsed_matches_uncollapsed_for_orders_1_to_6() {
    let (mut rng, points) = setup(6);
    let mut worst = 0.0f64;
    for activation in [Activation::Tanh, Activation::Sin] {
        let m = model(D, activation, 60, true);
        for k in 1..=6 {
            let op = Operator::DiagonalDerivative { order: k };
            let mut sets = vec![
                ("exact", Estimator::Exact.probes(&op, D, &mut rng).unwrap()),
                (
                    "sparse V=2",
                    Estimator::Sparse { rand_dims: 2 }
                        .probes(&op, D, &mut rng)
                        .unwrap(),
                ),
                (
                    "sparse V=1",
                    Estimator::Sparse { rand_dims: 1 }
                        .probes(&op, D, &mut rng)
                        .unwrap(),
                ),
            ];
            if k == 2 {
                sets.push((
                    "dense Gaussian",
                    Estimator::Dense {
                        rand_dims: 3,
                        distribution: Distribution::Gaussian,
                    }
                    .probes(&op, D, &mut rng)
                    .unwrap(),
                ));
            }
            for (name, set) in &sets {
                assert!(set.can_collapse());
                let what = format!("{activation:?} order {k} {name}");
                let (l0, g0, e0) = loss_and_grad(&m, set, &points, false);
                let (l1, g1, e1) = loss_and_grad(&m, set, &points, true);
                assert_vec_rel(&e0, &e1, 1e-12, &format!("{what}: estimates"));
                assert_vec_rel(&[l0], &[l1], 1e-12, &format!("{what}: loss"));
                assert_vec_rel(&g0, &g1, 1e-12, &format!("{what}: gradient"));
                let rel =
                    norm(&g0.iter().zip(&g1).map(|(a, b)| a - b).collect::<Vec<_>>()) / norm(&g0);
                worst = worst.max(rel);
            }
        }
    }
    println!("worst collapsed/uncollapsed gradient difference: {worst:.2e}");
}

// ---------------------------------------------------------------------------------------------
// 3. The primal and the jets against independent computations
// ---------------------------------------------------------------------------------------------

/// A plain f64 forward pass written from the documented parameter layout (per layer: weight
/// `out × in` row-major, then bias), independent of the jet code.
fn plain_forward(m: &Model, x: &[f64]) -> f64 {
    let dims = &m.mlp.shape.dims;
    let p = &m.mlp.params;
    let mut h = x.to_vec();
    let mut off = 0;
    for l in 0..dims.len() - 1 {
        let (fan_in, fan_out) = (dims[l], dims[l + 1]);
        let w = &p[off..off + fan_in * fan_out];
        let b = &p[off + fan_in * fan_out..off + fan_in * fan_out + fan_out];
        off += fan_out * (fan_in + 1);
        let mut z: Vec<f64> = (0..fan_out)
            .map(|o| b[o] + (0..fan_in).map(|i| w[o * fan_in + i] * h[i]).sum::<f64>())
            .collect();
        if l + 2 < dims.len() {
            for v in &mut z {
                *v = match m.mlp.shape.activation {
                    Activation::Tanh => v.tanh(),
                    Activation::Sin => v.sin(),
                };
            }
        }
        h = z;
    }
    assert_eq!(off, p.len());
    let phi = if m.hard_ball_boundary {
        1.0 - x.iter().map(|c| c * c).sum::<f64>()
    } else {
        1.0
    };
    phi * h[0]
}

#[test]
fn eval_equals_primal_of_jet_forward() {
    let (mut rng, points) = setup(7);
    for activation in [Activation::Tanh, Activation::Sin] {
        for ball in [true, false] {
            let m = model(D, activation, 70, ball);
            let eval = m.eval(&points);
            let net_eval = m.mlp.eval(&points);
            for (n, x) in points.chunks(D).enumerate() {
                let want = plain_forward(&m, x);
                assert!(
                    (eval[n] - want).abs() <= 1e-14 * (1.0 + want.abs()),
                    "eval {} vs plain {want}",
                    eval[n]
                );
            }
            let sets = [
                Estimator::Exact
                    .probes(&Operator::Laplacian, D, &mut rng)
                    .unwrap(),
                Estimator::Dense {
                    rand_dims: 2,
                    distribution: Distribution::Gaussian,
                }
                .probes(&Operator::Biharmonic, D, &mut rng)
                .unwrap(),
                Estimator::Exact
                    .probes(&Operator::DiagonalDerivative { order: 6 }, D, &mut rng)
                    .unwrap(),
                Estimator::Exact
                    .probes(&Operator::DiagonalDerivative { order: 1 }, D, &mut rng)
                    .unwrap(),
            ];
            for set in &sets {
                for collapsed in [false, true] {
                    let tape = m.jet_forward(set.input_batch(&points, collapsed));
                    for (n, e) in eval.iter().enumerate() {
                        // The network's primal row is the same computation as `Mlp::eval`: bit
                        // for bit. The ball factor sums ‖x‖² in another order: a few ulps.
                        let net = tape.mlp.output.get(0, 0, n, 0);
                        assert_eq!(
                            net.to_bits(),
                            net_eval[n].to_bits(),
                            "order {} collapsed {collapsed}: MLP primal {net} vs Mlp::eval {}",
                            set.order,
                            net_eval[n]
                        );
                        let p = tape.output.get(0, 0, n, 0);
                        assert!(
                            (p - e).abs() <= 4.0 * f64::EPSILON * e.abs(),
                            "order {} collapsed {collapsed}: primal {p} vs eval {e}",
                            set.order
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn jet_laplacian_matches_finite_differences_of_eval() {
    // Fourth-order central second differences of the plain forward: error O(h⁴) + O(ε/h²).
    let (mut rng, points) = setup(8);
    let set = Estimator::Exact
        .probes(&Operator::Laplacian, D, &mut rng)
        .unwrap();
    for activation in [Activation::Tanh, Activation::Sin] {
        let m = model(D, activation, 80, true);
        for collapsed in [false, true] {
            let est = estimates(&m, &set, &points, collapsed);
            for (n, x) in points.chunks(D).enumerate() {
                let h = 1e-2;
                let f0 = plain_forward(&m, x);
                let mut lap = 0.0;
                for i in 0..D {
                    let at = |t: f64| {
                        let mut y = x.to_vec();
                        y[i] += t;
                        plain_forward(&m, &y)
                    };
                    lap += (-at(2.0 * h) + 16.0 * at(h) - 30.0 * f0 + 16.0 * at(-h) - at(-2.0 * h))
                        / (12.0 * h * h);
                }
                assert!(
                    (est[n] - lap).abs() <= 1e-6 * (1.0 + lap.abs()),
                    "{activation:?} collapsed {collapsed}: jet Δu {} vs FD {lap}",
                    est[n]
                );
            }
        }
    }
}
