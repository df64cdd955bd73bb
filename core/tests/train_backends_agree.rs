//! At the paper's sizes (N = 100, V = 16, width 128, depth 4), the fast CPU backend's loss and
//! gradient of a training step equal the f64 reference backend's: conformance cases are small, and
//! this catches what only appears at large sizes (split-K products, parallel chunks, long sums).

use stde_core::backend::cpu::CpuBackend;
use stde_core::backend::reference::ReferenceBackend;
use stde_core::train::{EstimatorKind, TrainConfig, Trainer};

fn first_step(cfg: &TrainConfig) -> ((f64, Vec<f32>), (f64, Vec<f32>)) {
    let run = |cpu: bool| {
        let reference = ReferenceBackend;
        let fast = CpuBackend::new();
        if cpu {
            let mut t = Trainer::new(&fast, cfg.clone(), None).unwrap();
            t.accumulate_gradient();
            (
                pollster::block_on(t.loss()).unwrap(),
                pollster::block_on(t.gradient()).unwrap(),
            )
        } else {
            let mut t = Trainer::new(&reference, cfg.clone(), None).unwrap();
            t.accumulate_gradient();
            (
                pollster::block_on(t.loss()).unwrap(),
                pollster::block_on(t.gradient()).unwrap(),
            )
        }
    };
    (run(true), run(false))
}

fn check(cfg: TrainConfig) {
    let ((loss_fast, grad_fast), (loss_ref, grad_ref)) = first_step(&cfg);
    assert!(
        (loss_fast - loss_ref).abs() <= 1e-4 * loss_ref.abs(),
        "d={} {:?}: loss {loss_fast} vs {loss_ref}",
        cfg.dim,
        cfg.estimator
    );
    let norm = grad_ref
        .iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt();
    let diff = grad_fast
        .iter()
        .zip(&grad_ref)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        diff <= 1e-4 * norm,
        "d={} {:?}: gradient differs by {diff:e} (norm {norm:e})",
        cfg.dim,
        cfg.estimator
    );
    // Every parameter group, including the first layer's columns that no probe touched.
    for (i, (&a, &b)) in grad_fast.iter().zip(&grad_ref).enumerate() {
        assert!(
            (f64::from(a) - f64::from(b)).abs()
                <= 1e-4 * norm / (grad_ref.len() as f64).sqrt() + 1e-3 * f64::from(b).abs(),
            "d={} {:?}: parameter {i}: {a} vs {b}",
            cfg.dim,
            cfg.estimator
        );
    }
}

#[test]
fn cpu_step_matches_reference_at_paper_sizes_sparse() {
    check(TrainConfig {
        dim: 1000,
        test_points: 10,
        ..TrainConfig::default()
    });
}

#[test]
fn cpu_step_matches_reference_at_paper_sizes_dense_uncollapsed() {
    check(TrainConfig {
        dim: 300,
        estimator: EstimatorKind::Dense,
        collapsed: false,
        test_points: 10,
        equation: "allen-cahn-two-body".into(),
        ..TrainConfig::default()
    });
}
