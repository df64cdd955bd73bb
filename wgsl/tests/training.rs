//! Training on the wgpu backend follows the CPU and reference backends step for step: same seed,
//! same configuration, the same losses (to 1e-3 relative), the same first gradient and the same
//! test error after 20 steps, with either kernel family.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{CpuBackend, GenericStep};
use stde_core::train::{EstimatorKind, TrainConfig, Trainer};
use stde_wgpu::WgpuParams;

fn config(estimator: EstimatorKind, collapsed: bool) -> TrainConfig {
    TrainConfig {
        equation: "sine-gordon-two-body".into(),
        dim: 20,
        steps: 1000,
        batch: 100,
        rand_dims: 16,
        estimator,
        test_points: 1000,
        collapsed,
        seed: 7,
        ..TrainConfig::default()
    }
}

/// The first gradient, the losses of `steps` steps and the final relative L2 test error.
fn run<B: GenericStep>(backend: &B, cfg: &TrainConfig, steps: usize) -> (Vec<f32>, Vec<f64>, f64) {
    let mut trainer = Trainer::new(backend, cfg.clone(), None).expect("trainer");
    trainer.accumulate_gradient();
    let grad = pollster::block_on(trainer.gradient()).expect("gradient");
    let mut losses = vec![pollster::block_on(trainer.loss()).expect("loss")];
    trainer.apply_update();
    for _ in 1..steps {
        trainer.step();
        losses.push(pollster::block_on(trainer.loss()).expect("loss"));
    }
    let eval = pollster::block_on(trainer.evaluate()).expect("evaluation");
    (grad, losses, eval.rel_l2)
}

#[track_caller]
fn same_losses(what: &str, got: &[f64], expected: &[f64], rel: f64) {
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= rel * e.abs(),
            "{what}: loss of step {i}: got {g}, expected {e} (relative difference {:e})",
            (g - e).abs() / e.abs()
        );
    }
}

#[track_caller]
fn same_gradient(what: &str, got: &[f32], expected: &[f32]) {
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= 1e-4 * scale + 1e-3 * e.abs(),
            "{what}: gradient {i}: got {g}, expected {e} (scale {scale})"
        );
    }
}

#[test]
fn sparse_training_matches_cpu_backend() {
    let cfg = config(EstimatorKind::Sparse, true);
    let (grad_cpu, losses_cpu, err_cpu) = run(&CpuBackend::new(), &cfg, 20);
    for variant in common::VARIANTS {
        let b = backend_or_skip!(WgpuParams {
            kernel_variant: variant,
            ..WgpuParams::default()
        });
        let (grad, losses, err) = run(&b, &cfg, 20);
        let what = format!("sparse ({variant:?})");
        same_gradient(&format!("{what} first gradient"), &grad, &grad_cpu);
        same_losses(&what, &losses, &losses_cpu, 1e-3);
        same_losses(&format!("{what} test error"), &[err], &[err_cpu], 1e-3);
        assert!(losses[19] < losses[0], "{what}: the loss did not fall");
    }
}

#[test]
fn dense_uncollapsed_training_matches_reference_backend() {
    let b = backend_or_skip!();
    let cfg = TrainConfig {
        batch: 24,
        rand_dims: 4,
        width: 32,
        ..config(EstimatorKind::Dense, false)
    };
    let (grad, losses, err) = run(&b, &cfg, 20);
    let (grad_ref, losses_ref, err_ref) = run(&ReferenceBackend, &cfg, 20);
    same_gradient("dense first gradient", &grad, &grad_ref);
    same_losses("dense", &losses, &losses_ref, 1e-3);
    same_losses("dense test error", &[err], &[err_ref], 1e-3);
}
