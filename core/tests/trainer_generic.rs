//! The problem-as-data trainer: its gradient against finite differences of its loss on problems
//! that exercise every path of the step plan, and the CPU backend against the f64 reference on
//! every shipped problem. (`train_gradient.rs` checks it against an independent model-level
//! computation with the closed forms of `pde.rs`.)

use stde_core::backend::reference::ReferenceBackend;
use stde_core::train::{self, EstimatorKind, TrainConfig};
use stde_core::trainer;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// The generic trainer's gradient equals central finite differences of its loss, on the f64
/// reference backend, for problems that exercise every new path: dense Gaussian 4-jets
/// (biharmonic), parameter-weighted first-order readouts (advection), planner jets in several slots
/// (third-order mixed), and a time column with a soft initial-condition loss (heat).
#[test]
fn generic_gradient_matches_finite_differences() {
    let be = ReferenceBackend;
    for (name, dim, estimator, rand_dims) in [
        ("biharmonic", 3usize, EstimatorKind::Dense, 4usize),
        ("advection-diffusion", 4, EstimatorKind::Sparse, 2),
        ("third-order-mixed", 3, EstimatorKind::Exact, 2),
        ("heat", 2, EstimatorKind::Sparse, 2),
        ("sine-gordon-two-body", 4, EstimatorKind::Sparse, 2),
        // Gradient matching on sampled coordinates (d/V scaling) and on every coordinate.
        ("heat-parabolic", 3, EstimatorKind::Sparse, 2),
        ("allen-cahn-parabolic", 2, EstimatorKind::Exact, 2),
        // The residual gradient's paired 7-jets and the forcing's series along them.
        ("sine-gordon-two-body-gpinn", 3, EstimatorKind::Sparse, 4),
    ] {
        let cfg = TrainConfig {
            equation: name.into(),
            dim,
            rand_dims,
            estimator,
            batch: 3,
            width: 5,
            depth: 3,
            test_points: 10,
            ..TrainConfig::default()
        };
        let spec = stde_core::problem::builtin(name).unwrap().unwrap();
        let loss_at = |params: &[f32]| {
            let state = train::HostState {
                params: params.to_vec(),
                adam_m: vec![0.0; params.len()],
                adam_v: vec![0.0; params.len()],
                progress: train::Progress {
                    step: 0,
                    best: None,
                    last: None,
                },
            };
            let mut t =
                trainer::Trainer::with_problem(&be, cfg.clone(), &spec, Some(state)).unwrap();
            t.accumulate_gradient();
            (
                pollster::block_on(t.loss()).unwrap(),
                pollster::block_on(t.gradient()).unwrap(),
            )
        };
        let t0 = trainer::Trainer::with_problem(&be, cfg.clone(), &spec, None).unwrap();
        let p0 = pollster::block_on(t0.host_state()).unwrap().params;
        let (_, grad) = loss_at(&p0);
        let n = p0.len();
        // Directional derivatives along random directions supported on one part of the model at a
        // time (first-layer weights incl. the time column, first-layer biases, the rest): the loss
        // is read back in f32, so a whole direction moves it far more than its rounding.
        let in_w = dim * 5 + usize::from(spec.time.is_some()) * 5;
        let parts = [(0, in_w), (in_w, in_w + 5), (in_w + 5, n)];
        for (part, &(lo, hi)) in parts.iter().enumerate() {
            let dir: Vec<f64> = (0..n)
                .map(|i| {
                    if (lo..hi).contains(&i) {
                        ((i * 7919 + part * 31) as f64 * 0.618).sin()
                    } else {
                        0.0
                    }
                })
                .collect();
            let along = |eps: f64| {
                let step = |sign: f64| -> Vec<f32> {
                    p0.iter()
                        .zip(&dir)
                        .map(|(&p, &d)| (f64::from(p) + sign * eps * d) as f32)
                        .collect()
                };
                (loss_at(&step(1.0)).0 - loss_at(&step(-1.0)).0) / (2.0 * eps)
            };
            let fd = (4.0 * along(1e-3) - along(2e-3)) / 3.0;
            let g: f64 = grad.iter().zip(&dir).map(|(&g, &d)| f64::from(g) * d).sum();
            assert!(
                (fd - g).abs() <= 2e-3 * (1.0 + g.abs()),
                "{name}, part {part}: gradient·δ = {g}, finite differences {fd}"
            );
        }
    }
}

/// The CPU backend runs the generic step like the f64 reference: first-step loss and gradient of
/// every shipped problem agree to f32 accuracy.
#[test]
fn cpu_generic_step_matches_reference_on_every_problem() {
    let reference = ReferenceBackend;
    let cpu = stde_core::backend::cpu::CpuBackend::new();
    for (name, _) in stde_core::problem::BUILTIN {
        let spec = stde_core::problem::builtin(name).unwrap().unwrap();
        // Problems fixed to a low dimension (the high-order ones) run at it.
        let dim = spec.max_dim.map_or(5, |m| m.min(5));
        let estimator = spec.defaults.estimator.unwrap_or(EstimatorKind::Sparse);
        // The residual gradient pairs its directions, so V is even there.
        let rand_dims = if spec.pde.gradient_weight > 0.0 { 4 } else { 3 };
        let cfg = TrainConfig {
            equation: name.into(),
            dim,
            rand_dims,
            estimator,
            batch: 7,
            width: 16,
            depth: 3,
            test_points: 30,
            ..TrainConfig::default()
        };
        let mut a = trainer::Trainer::new(&reference, cfg.clone(), None).unwrap();
        let mut b = trainer::Trainer::new(&cpu, cfg.clone(), None).unwrap();
        for step in 0..2 {
            a.accumulate_gradient();
            b.accumulate_gradient();
            let (la, lb) = (
                pollster::block_on(a.loss()).unwrap(),
                pollster::block_on(b.loss()).unwrap(),
            );
            assert!(close(la, lb, 2e-4), "{name} step {step}: loss {la} vs {lb}");
            let (ga, gb) = (
                pollster::block_on(a.gradient()).unwrap(),
                pollster::block_on(b.gradient()).unwrap(),
            );
            let norm = ga.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>().sqrt();
            let diff = ga
                .iter()
                .zip(&gb)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                diff <= 2e-4 * norm,
                "{name} step {step}: gradient differs by {diff:e} of {norm:e}"
            );
            a.apply_update();
            b.apply_update();
        }
        let (ea, eb) = (
            pollster::block_on(a.evaluate()).unwrap(),
            pollster::block_on(b.evaluate()).unwrap(),
        );
        match (ea.point_value, eb.point_value) {
            // Judged at a point without a reference value at d = 5: compare the model's values.
            (Some(va), Some(vb)) => {
                assert!(ea.rel_l2.is_nan() && eb.rel_l2.is_nan(), "{name}");
                assert!(close(va, vb, 1e-4), "{name}: u(point) {va} vs {vb}");
            }
            _ => assert!(
                close(ea.rel_l2, eb.rel_l2, 1e-3),
                "{name}: rel L2 {} vs {}",
                ea.rel_l2,
                eb.rel_l2
            ),
        }
    }
}

/// A problem judged at a reference point reports the relative error of the model's value there,
/// which equals `|u_θ(point) − value| / |value|` computed from `predict`.
#[test]
fn a_problem_judged_at_a_point_reports_its_error_there() {
    let spec = stde_core::problem::builtin("heat-parabolic")
        .unwrap()
        .unwrap();
    let cfg = TrainConfig {
        equation: "heat-parabolic".into(),
        dim: 10,
        rand_dims: 3,
        batch: 8,
        width: 16,
        depth: 3,
        ..TrainConfig::default()
    };
    let mut t = trainer::Trainer::with_problem(&ReferenceBackend, cfg, &spec, None).unwrap();
    t.step();
    let eval = pollster::block_on(t.evaluate()).unwrap();
    let mut point = vec![0.0; 10];
    point.push(0.0);
    let u = pollster::block_on(t.predict(&point)).unwrap()[0];
    let expected = (u - 0.47006).abs() / 0.47006;
    assert!(
        close(eval.rel_l2, expected, 1e-6),
        "{} vs {expected}",
        eval.rel_l2
    );
    assert!(close(eval.rel_l1, expected, 1e-6));
    assert!(close(eval.point_value.unwrap(), u, 1e-6));
    assert_eq!(t.progress().last, Some(eval));
}

/// A problem without an exact solution is refused with one clear error (training evaluates its
/// error against one).
#[test]
fn a_problem_without_an_exact_solution_is_refused() {
    let text = "name = \"no-exact\"\n[terms]\nlap = \"laplacian\"\n[pde]\ndomain = \"ball\"\nlhs = \"lap\"\nrhs = \"1\"\n";
    let spec = stde_core::problem::read("no-exact.toml", text).unwrap();
    let cfg = TrainConfig {
        equation: "no-exact".into(),
        dim: 3,
        rand_dims: 2,
        ..TrainConfig::default()
    };
    let err = trainer::Trainer::with_problem(&ReferenceBackend, cfg, &spec, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("neither an [exact] solution nor a [reference] value"),
        "{err}"
    );
}
