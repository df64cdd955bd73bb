//! End-to-end training on the f64 reference backend: the loss falls, the error falls, and runs are
//! reproducible and resumable.

use stde_core::backend::reference::ReferenceBackend;
use stde_core::rng::{self, streams};
use stde_core::train::{EstimatorKind, TrainConfig, Trainer};

fn small_config() -> TrainConfig {
    TrainConfig {
        equation: "sine-gordon-two-body".into(),
        dim: 4,
        steps: 150,
        batch: 16,
        rand_dims: 2,
        estimator: EstimatorKind::Sparse,
        width: 16,
        depth: 3,
        lr: 1e-2,
        eval_every: 50,
        test_points: 200,
        ..TrainConfig::default()
    }
}

#[test]
fn reference_training_reduces_loss_and_error() {
    let backend = ReferenceBackend;
    let mut trainer = Trainer::new(&backend, small_config(), None).unwrap();
    let initial = pollster::block_on(trainer.evaluate()).unwrap();
    trainer.step();
    let first_loss = pollster::block_on(trainer.loss()).unwrap();
    let mut losses = Vec::new();
    while !trainer.finished() {
        trainer.step();
        losses.push(pollster::block_on(trainer.loss()).unwrap());
    }
    let last: f64 = losses[losses.len() - 20..].iter().sum::<f64>() / 20.0;
    let fin = pollster::block_on(trainer.evaluate()).unwrap();
    eprintln!(
        "loss {first_loss} -> {last}; rel L2 {} -> {}",
        initial.rel_l2, fin.rel_l2
    );
    assert!(
        last < 0.2 * first_loss,
        "loss did not fall: {first_loss} -> {last}"
    );
    assert!(fin.rel_l2 < 0.7 * initial.rel_l2, "error did not fall");
}

/// The trainer's test errors equal an independent host computation: the test points redrawn from
/// the generator, the f64 model and the closed-form solution.
#[test]
fn evaluation_matches_a_host_computation() {
    let backend = ReferenceBackend;
    let cfg = small_config();
    let (n, d) = (cfg.test_points, cfg.dim);
    let mut trainer = Trainer::new(&backend, cfg.clone(), None).unwrap();
    for _ in 0..30 {
        trainer.step();
    }
    let eval = pollster::block_on(trainer.evaluate()).unwrap();
    let mut points = vec![0.0f32; n * d];
    rng::sample_ball_points(cfg.seed, streams::TEST_POINTS, 0, n, d, &mut points);
    let points: Vec<f64> = points.iter().map(|&v| f64::from(v)).collect();
    let predicted = pollster::block_on(trainer.predict(&points)).unwrap();
    // The hand-derived closed form, independent of the problem language.
    let kind: stde_core::pde::ProblemKind = cfg.equation.parse().unwrap();
    let closed = stde_core::pde::Problem::from_kind(kind, d, cfg.seed).unwrap();
    let (mut diff2, mut ref2, mut diff1, mut ref1) = (0.0, 0.0, 0.0, 0.0);
    for (x, u) in points.chunks_exact(d).zip(&predicted) {
        let exact = closed.exact(x);
        diff2 += (u - exact) * (u - exact);
        ref2 += exact * exact;
        diff1 += (u - exact).abs();
        ref1 += exact.abs();
    }
    let close = |what: &str, got: f64, want: f64| {
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "{what}: trainer {got}, host {want}"
        );
    };
    close("rel L2", eval.rel_l2, (diff2 / ref2).sqrt());
    close("rel L1", eval.rel_l1, diff1 / ref1);
    close("exact RMS", eval.exact_rms, (ref2 / n as f64).sqrt());
    assert!(eval.rel_l2 > 0.0 && eval.exact_rms > 0.0);
}
