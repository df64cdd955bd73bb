//! The within-step variance that `Trainer::direction_variance` reports, against the spread of the
//! term estimates and of the loss over thousands of redraws of the directions at fixed parameters
//! and points: sparse coordinates (without replacement), dense Rademacher tangents, sampled windows,
//! collapsed and uncollapsed plans, and a gradient-matching constraint.
//!
//! # Tolerance
//!
//! The reported value `v_r` of draw `r` is an unbiased estimate of `Var[T̂]` (averaged over the
//! points); the empirical side is `q_r = mean_p (T̂_pr − T̄_p)²·R/(R − 1)`, whose mean over the `R`
//! draws is the unbiased sample variance across draws. Both are means over the same draws, so
//! their difference `D = mean_r (v_r − q_r)` has standard error `sd_r(v_r − q_r)/√R` (up to the
//! `O(1/R)` dependence that centring on `T̄` adds). `|D| ≤ 4·SE` fails with probability about
//! `6·10⁻⁵` when the estimate is unbiased (normal approximation, `R ≥ 3000`). Each test also checks
//! that it has the power to see a wrong finite-population correction: `4·SE` is below the gap that
//! the factor `(P − V)/(P − 1)` (or none) would open.

use stde_core::backend::reference::ReferenceBackend;
use stde_core::problem::{self, ProblemSpec};
use stde_core::train::{EstimatorKind, TrainConfig};
use stde_core::trainer::Trainer;
use stde_core::variance::DirectionVariance;

/// Redraws of the directions at fixed parameters and points.
struct Redraws {
    /// Per draw: the step's term estimates (`n_terms` columns of `N`), as training read them.
    estimates: Vec<Vec<f64>>,
    /// Per draw: the step's loss.
    losses: Vec<f64>,
    /// Per draw: what the trainer reported.
    reported: Vec<DirectionVariance>,
    n_points: usize,
    /// The residual's term names, in order.
    terms: Vec<String>,
}

fn config(name: &str, dim: usize, rand_dims: usize, estimator: EstimatorKind) -> TrainConfig {
    TrainConfig {
        equation: name.into(),
        dim,
        rand_dims,
        estimator,
        batch: 8,
        width: 8,
        depth: 3,
        test_points: 10,
        ..TrainConfig::default()
    }
}

fn redraw(spec: &ProblemSpec, cfg: TrainConfig, draws: u32) -> Redraws {
    let be = ReferenceBackend;
    let n_points = cfg.batch;
    let mut t = Trainer::with_problem(&be, cfg, spec, None).unwrap();
    assert!(
        t.variance_support().is_measured(),
        "{:?}",
        t.variance_support()
    );
    let mut out = Redraws {
        estimates: Vec::new(),
        losses: Vec::new(),
        reported: Vec::new(),
        n_points,
        terms: t.plan().terms.clone(),
    };
    for r in 0..draws {
        // Draw 0 is the step's own; the others are what other steps would have drawn here.
        t.accumulate_gradient_with_directions(r);
        let features = pollster::block_on(t.term_estimates()).unwrap();
        let report = pollster::block_on(t.direction_variance())
            .unwrap()
            .expect("measured");
        // The host readout split by direction sums to what training read (collapsed or not).
        for (host, dev) in report.estimates.iter().zip(&features) {
            let dev = f64::from(*dev);
            assert!(
                (host - dev).abs() <= 1e-5 * (1.0 + dev.abs()),
                "draw {r}: direction shares sum to {host}, the step read {dev}"
            );
        }
        out.estimates
            .push(features.iter().map(|&v| f64::from(v)).collect());
        out.losses.push(pollster::block_on(t.loss()).unwrap());
        out.reported.push(report);
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn sd(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// `(D, SE, empirical variance)` for the mean over points of term `k`'s variance.
fn term_agreement(red: &Redraws, k: usize) -> (f64, f64, f64) {
    let np = red.n_points;
    let r = red.estimates.len() as f64;
    let centre: Vec<f64> = (0..np)
        .map(|p| {
            mean(
                &red.estimates
                    .iter()
                    .map(|e| e[k * np + p])
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let q: Vec<f64> = red
        .estimates
        .iter()
        .map(|e| {
            (0..np)
                .map(|p| (e[k * np + p] - centre[p]).powi(2))
                .sum::<f64>()
                / np as f64
                * r
                / (r - 1.0)
        })
        .collect();
    let v: Vec<f64> = red
        .reported
        .iter()
        .map(|rep| rep.term_variance[k].expect("a random term"))
        .collect();
    let diff: Vec<f64> = v.iter().zip(&q).map(|(a, b)| a - b).collect();
    (mean(&diff), sd(&diff) / r.sqrt(), mean(&q))
}

/// Checks term `k` and that a correction off by `wrong` (the ratio of a wrong factor to the right
/// one) would have been caught.
#[track_caller]
fn assert_term_unbiased(red: &Redraws, k: usize, wrong: f64, what: &str) {
    let (d, se, empirical) = term_agreement(red, k);
    assert!(empirical > 0.0, "{what}: no spread");
    assert!(
        d.abs() <= 4.0 * se,
        "{what}: reported − empirical = {d:.4e} (empirical {empirical:.4e}), beyond 4 SE = {:.4e}",
        4.0 * se
    );
    let reported = empirical + d;
    let wrong_gap = (reported * wrong - empirical).abs();
    assert!(
        wrong_gap > 4.0 * se,
        "{what}: too few draws to tell a correction {wrong}× off ({wrong_gap:.3e} vs 4 SE {:.3e})",
        4.0 * se
    );
}

/// Sparse coordinates, `V = 3` of `d = 6` without replacement: the correction is `1 − V/d = 1/2`;
/// `(d − V)/(d − 1) = 3/5` would report 6/5 of the variance, and none twice. Collapsed (an
/// uncollapsed diagnostic pass) and uncollapsed (the step's own jets).
#[test]
fn sparse_term_variance_matches_redraws_without_replacement() {
    let spec = problem::builtin("sine-gordon-two-body").unwrap().unwrap();
    for collapsed in [true, false] {
        let cfg = TrainConfig {
            collapsed,
            ..config("sine-gordon-two-body", 6, 3, EstimatorKind::Sparse)
        };
        let red = redraw(&spec, cfg, 4000);
        let what = format!("sparse, collapsed {collapsed}");
        assert_term_unbiased(&red, 0, (3.0 / 5.0) / 0.5, &what);
        assert_term_unbiased(&red, 0, 1.0 / 0.5, &what);
    }
}

/// Dense Rademacher tangents are independent: no correction; one of `1 − V/d` would halve it.
#[test]
fn dense_term_variance_matches_redraws_of_independent_tangents() {
    let spec = problem::builtin("poisson-two-body").unwrap().unwrap();
    let red = redraw(
        &spec,
        config("poisson-two-body", 6, 3, EstimatorKind::Dense),
        4000,
    );
    assert_term_unbiased(&red, 0, 0.5, "dense Rademacher");
}

/// Coordinates and windows drawn independently (`V = 2` of `d = 5` coordinates, of 4 windows, each
/// window the planner's jets): the Laplacian and the mixed-window term each match their redraws.
#[test]
fn sampled_windows_and_coordinates_match_their_redraws() {
    let spec = problem::builtin("third-order-mixed").unwrap().unwrap();
    let red = redraw(
        &spec,
        config("third-order-mixed", 5, 2, EstimatorKind::Sparse),
        4000,
    );
    // lap: 1 − 2/5 against (5 − 2)/4; mix: 1 − 2/4 against (4 − 2)/3.
    assert_term_unbiased(&red, 0, (3.0 / 4.0) / (3.0 / 5.0), "coordinates");
    assert_term_unbiased(&red, 1, (2.0 / 3.0) / 0.5, "windows");
}

/// The loss variance (delta method through the loss program's cotangents) against the spread of
/// the loss over redraws. The delta method is first order, so besides `4·SE` the tolerance allows
/// for the loss's curvature, measured from the same draws: with `ε_pr = T̂_pr − T̄_p` and the
/// residual affine in the Laplacian with coefficient 1 (`lap + sin(u) − g`), the loss is exactly
/// `L̄' + X_r + Q_r` with `Q_r = (w/N)·Σ_p (ε_pr² − mean_r ε_pr²)` and `X_r` linear in `ε`. The
/// curvature moves `Var L` away from `Var X` by `2·Cov(X, Q) + Var Q`, and evaluating the
/// cotangents at `r̄ + ε` instead of `r̄` moves the estimate by a relative `O(sd Q / sd X)`; the
/// allowance is `|Var L − Var X| + 4·(sd Q/sd X)·Var L`, and the test requires `sd Q/sd X` below
/// 5 % so that the check stays tight.
#[test]
fn loss_variance_matches_redraws_to_first_order() {
    for (name, estimator) in [
        ("sine-gordon-two-body", EstimatorKind::Sparse),
        ("poisson-two-body", EstimatorKind::Dense),
    ] {
        let spec = problem::builtin(name).unwrap().unwrap();
        let red = redraw(&spec, config(name, 6, 3, estimator), 4000);
        let np = red.n_points as f64;
        let w = spec.pde.weight;
        let r = red.losses.len() as f64;
        let centre: Vec<f64> = (0..red.n_points)
            .map(|p| mean(&red.estimates.iter().map(|e| e[p]).collect::<Vec<_>>()))
            .collect();
        let sq_mean: Vec<f64> = (0..red.n_points)
            .map(|p| {
                mean(
                    &red.estimates
                        .iter()
                        .map(|e| (e[p] - centre[p]).powi(2))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let q: Vec<f64> = red
            .estimates
            .iter()
            .map(|e| {
                w / np
                    * (0..red.n_points)
                        .map(|p| (e[p] - centre[p]).powi(2) - sq_mean[p])
                        .sum::<f64>()
            })
            .collect();
        let l_mean = mean(&red.losses);
        let x: Vec<f64> = red
            .losses
            .iter()
            .zip(&q)
            .map(|(l, q)| l - l_mean - q)
            .collect();
        let var_l = sd(&red.losses).powi(2);
        let var_x = sd(&x).powi(2);
        let kappa = sd(&q) / sd(&x);
        assert!(
            kappa < 0.05,
            "{name}: curvature {kappa:.3} too large for a tight test"
        );
        let sq: Vec<f64> = red
            .losses
            .iter()
            .map(|l| (l - l_mean).powi(2) * r / (r - 1.0))
            .collect();
        let diff: Vec<f64> = red
            .reported
            .iter()
            .zip(&sq)
            .map(|(rep, s)| rep.loss_variance - s)
            .collect();
        let (d, se) = (mean(&diff), sd(&diff) / r.sqrt());
        let allowance = (var_l - var_x).abs() + 4.0 * kappa * var_l;
        assert!(
            d.abs() <= 4.0 * se + allowance,
            "{name}: reported − empirical loss variance = {d:.4e} (empirical {var_l:.4e}), beyond \
             4 SE {:.3e} + curvature allowance {allowance:.3e}",
            4.0 * se
        );
        assert!(
            4.0 * se + allowance < 0.25 * var_l,
            "{name}: the tolerance {:.3e} is too loose against {var_l:.3e}",
            4.0 * se + allowance
        );
    }
}

/// A gradient-matching constraint's loss `w·(e² + C_g·(d/V)·Σ_s (∂_{j_s} e)²)` is linear in its
/// sampled coordinates, so its reported variance is exact in expectation: with the residual
/// weighted 0, the whole loss variance is the constraint's, checked to `4·SE` against redraws, and
/// `(d − V)/(d − 1)` in place of `1 − V/d` would be caught.
#[test]
fn gradient_matching_loss_variance_matches_redraws() {
    let text = "name = \"terminal\"\n[time]\nend = 0.5\n[terms]\nut = \"time-derivative\"\n\
                lap = \"laplacian\"\n[pde]\ndomain = \"sde-marginal\"\nlhs = \"ut + lap\"\n\
                rhs = \"0\"\nweight = 0.0\n[[constraint]]\ndomain = { gaussian = 0.8 }\n\
                at-time = 0.5\nequation = \"2 * u - 5 / (10 + 2 * norm2(x))\"\nweight = 3.0\n\
                gradient-weight = 0.25\n[reference]\nx = 0.0\nt = 0.0\nvalue = 1.0\n";
    let spec = problem::read("terminal.toml", text).unwrap();
    let red = redraw(&spec, config("terminal", 5, 2, EstimatorKind::Sparse), 4000);
    let r = red.losses.len() as f64;
    let l_mean = mean(&red.losses);
    let diff: Vec<f64> = red
        .reported
        .iter()
        .zip(&red.losses)
        .map(|(rep, l)| rep.loss_variance - (l - l_mean).powi(2) * r / (r - 1.0))
        .collect();
    let (d, se) = (mean(&diff), sd(&diff) / r.sqrt());
    let empirical = sd(&red.losses).powi(2);
    assert!(
        d.abs() <= 4.0 * se,
        "reported − empirical = {d:.4e} (empirical {empirical:.4e}), beyond 4 SE {:.4e}",
        4.0 * se
    );
    let wrong = (empirical + d) * (3.0 / 4.0) / (3.0 / 5.0);
    assert!((wrong - empirical).abs() > 4.0 * se, "too few draws");
    // The Laplacian is still random; `ut` reads a fixed jet and has no variance to report.
    let last = red.reported.last().unwrap();
    for (k, name) in red.terms.iter().enumerate() {
        assert_eq!(last.term_variance[k].is_some(), name == "lap", "{name}");
    }
}

/// Nothing is measured where nothing is random, and a step must be pending.
#[test]
fn deterministic_plans_report_no_variance() {
    let be = ReferenceBackend;
    let spec = problem::builtin("sine-gordon-two-body").unwrap().unwrap();
    for (estimator, v) in [(EstimatorKind::Exact, 3), (EstimatorKind::Sparse, 6)] {
        let mut t = Trainer::with_problem(
            &be,
            config("sine-gordon-two-body", 6, v, estimator),
            &spec,
            None,
        )
        .unwrap();
        assert!(!t.variance_support().is_measured());
        assert!(t.variance_support().reason().is_some());
        t.accumulate_gradient();
        assert!(pollster::block_on(t.direction_variance())
            .unwrap()
            .is_none());
    }
    let t = Trainer::with_problem(
        &be,
        config("sine-gordon-two-body", 6, 1, EstimatorKind::Sparse),
        &spec,
        None,
    )
    .unwrap();
    assert!(matches!(
        t.variance_support(),
        stde_core::variance::VarianceSupport::Unavailable { .. }
    ));
}
