//! The training loop's gradient (the Backend primitives composed by `Trainer`) equals the gradient of
//! the same loss computed independently with the jet-batch model code and the estimator readout.

#[path = "common/first_step.rs"]
mod first_step;

use first_step::first_step;
use stde_core::backend::reference::ReferenceBackend;
use stde_core::mlp::{Mlp, Model};
use stde_core::pde::Problem;
use stde_core::train::{initial_params_for, EstimatorKind, TrainConfig, Trainer};

fn config(estimator: EstimatorKind, collapsed: bool, equation: &str) -> TrainConfig {
    TrainConfig {
        equation: equation.into(),
        dim: 5,
        steps: 10,
        batch: 4,
        rand_dims: 3,
        estimator,
        width: 8,
        depth: 3,
        seed: 7,
        test_points: 10,
        collapsed,
        ..TrainConfig::default()
    }
}

/// Loss and gradient of the first step, computed with `Model` and `ProbeSet` (f64).
fn independent_loss_and_gradient(cfg: &TrainConfig) -> (f64, Vec<f64>) {
    let (n, d) = (cfg.batch, cfg.dim);
    let params: Vec<f64> = initial_params_for(cfg, cfg.dim)
        .iter()
        .map(|&p| f64::from(p))
        .collect();
    let model = Model {
        mlp: Mlp {
            shape: cfg.mlp_shape(),
            params,
        },
        hard_ball_boundary: true,
    };
    let (points, probes) = first_step(cfg);
    let mut problem = Problem::from_kind(cfg.equation.parse().unwrap(), d, cfg.seed).unwrap();
    // The device holds the coefficients in f32.
    for c in &mut problem.coeffs {
        *c = f64::from(*c as f32);
    }
    let tape = model.jet_forward(probes.input_batch(&points, cfg.collapsed));
    let est = probes.estimate(tape.output.as_ref());
    let shape = tape.output.shape();
    let mut loss = 0.0;
    let mut est_bar = vec![0.0; n];
    let mut u0_bar = vec![0.0; n];
    for p in 0..n {
        let x = &points[p * d..(p + 1) * d];
        let u0 = tape.output.get(0, 0, p, 0);
        let r = est[p] + problem.nonlinearity(u0) - problem.forcing(x);
        loss += r * r / n as f64;
        est_bar[p] = 2.0 * r / n as f64;
        u0_bar[p] = 2.0 * r / n as f64 * problem.nonlinearity_deriv(u0);
    }
    let mut out_bar = probes.estimate_adjoint(shape, &est_bar);
    for (p, g) in u0_bar.iter().enumerate() {
        out_bar.as_mut().add(0, 0, p, 0, *g);
    }
    let mut grad = vec![0.0; model.mlp.params.len()];
    model.jet_backward(&tape, out_bar, &mut grad);
    (loss, grad)
}

fn check(cfg: TrainConfig) {
    let (loss, expected) = independent_loss_and_gradient(&cfg);
    let backend = ReferenceBackend;
    let mut trainer = Trainer::new(&backend, cfg.clone(), None).unwrap();
    trainer.accumulate_gradient();
    let got = pollster::block_on(trainer.gradient()).unwrap();
    let got_loss = pollster::block_on(trainer.loss()).unwrap();
    assert!(
        (got_loss - loss).abs() <= 1e-6 * loss.abs(),
        "{cfg:?}: loss {got_loss} vs {loss}"
    );
    let norm: f64 = expected.iter().map(|g| g * g).sum::<f64>().sqrt();
    for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
        assert!(
            (f64::from(g) - e).abs() <= 1e-6 * norm + 1e-6 * e.abs(),
            "{:?} collapsed={}: parameter {i}: got {g}, expected {e}",
            cfg.estimator,
            cfg.collapsed
        );
    }
}

#[test]
fn trainer_gradient_matches_model_gradient_sparse() {
    for collapsed in [true, false] {
        for eq in [
            "sine-gordon-two-body",
            "allen-cahn-three-body",
            "poisson-two-body",
        ] {
            check(config(EstimatorKind::Sparse, collapsed, eq));
        }
    }
}

#[test]
fn trainer_gradient_matches_model_gradient_dense() {
    for collapsed in [true, false] {
        check(config(
            EstimatorKind::Dense,
            collapsed,
            "sine-gordon-two-body",
        ));
    }
}
