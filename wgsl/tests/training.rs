//! Training on the wgpu backend follows the CPU and reference backends step for step: same seed,
//! same configuration, the same losses (to 1e-3 relative), the same first gradient and the same
//! test error after 20 steps, with either kernel family; and the first steps of the problems that
//! exercise the rest of the generic step (dense 4-jets, parameter-weighted first-order readouts,
//! planner jets in several slots, a time column) and of weight-shared networks agree with the CPU
//! and reference backends.
//!
//! Without an adapter each test prints one `skipped: no wgpu adapter (…)` line and returns, unless
//! `STDE_REQUIRE_GPU=1`, which turns that into a failure.

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

/// The first gradient and the losses of the first `steps` steps.
fn first_steps<B: GenericStep>(
    backend: &B,
    cfg: &TrainConfig,
    steps: usize,
) -> (Vec<f32>, Vec<f64>) {
    let mut trainer = Trainer::new(backend, cfg.clone(), None).expect("trainer");
    trainer.accumulate_gradient();
    let grad = pollster::block_on(trainer.gradient()).expect("gradient");
    let mut losses = vec![pollster::block_on(trainer.loss()).expect("loss")];
    trainer.apply_update();
    for _ in 1..steps {
        trainer.step();
        losses.push(pollster::block_on(trainer.loss()).expect("loss"));
    }
    (grad, losses)
}

/// Biharmonic (dense Gaussian 4-jets, d = 6), advection-diffusion (sparse, a first-order term
/// weighted by drawn parameters, d = 10), third-order-mixed (the planner's jets in several slots,
/// d = 5) and heat (a time column and a soft initial-condition loss, d = 6), each with the
/// estimator its problem file defaults to: the first gradient and the losses of the first three
/// steps on both kernel families equal the CPU backend's and the f64 reference's.
#[test]
fn first_steps_of_the_generic_problems_match_cpu_and_reference() {
    let cases = [
        ("biharmonic", 6usize, EstimatorKind::Dense, 8usize),
        ("advection-diffusion", 10, EstimatorKind::Sparse, 4),
        ("third-order-mixed", 5, EstimatorKind::Exact, 4),
        ("heat", 6, EstimatorKind::Exact, 4),
        // Paired 7-jets, the forcing's series copied into the features by GEMMs.
        ("sine-gordon-two-body-gpinn", 6, EstimatorKind::Sparse, 4),
    ];
    let backends: Vec<_> = common::VARIANTS
        .iter()
        .map_while(|&variant| {
            common::backend_with(WgpuParams {
                kernel_variant: variant,
                ..WgpuParams::default()
            })
            .map(|b| (variant, b))
        })
        .collect();
    if backends.is_empty() {
        return;
    }
    for (name, dim, estimator, rand_dims) in cases {
        let spec = stde_core::problem::builtin(name)
            .expect("shipped problem")
            .expect("problem file parses");
        assert_eq!(
            spec.defaults.estimator.unwrap_or(EstimatorKind::Sparse),
            estimator,
            "{name}: the test should use the problem's own estimator"
        );
        let cfg = TrainConfig {
            equation: name.into(),
            dim,
            rand_dims,
            estimator,
            batch: 8,
            width: 16,
            depth: 3,
            test_points: 16,
            seed: 11,
            ..TrainConfig::default()
        };
        let (grad_cpu, losses_cpu) = first_steps(&CpuBackend::new(), &cfg, 3);
        let (grad_ref, losses_ref) = first_steps(&ReferenceBackend, &cfg, 3);
        // The CPU backend is itself held to the reference, so a failure below is the device's.
        same_gradient(&format!("{name} cpu first gradient"), &grad_cpu, &grad_ref);
        same_losses(&format!("{name} cpu"), &losses_cpu, &losses_ref, 1e-3);
        for (variant, b) in &backends {
            let (grad, losses) = first_steps(b, &cfg, 3);
            let what = format!("{name} d={dim} ({variant:?})");
            assert!(
                losses.iter().all(|l| l.is_finite() && *l > 0.0),
                "{what}: losses {losses:?}"
            );
            same_gradient(&format!("{what} first gradient vs cpu"), &grad, &grad_cpu);
            same_gradient(
                &format!("{what} first gradient vs reference"),
                &grad,
                &grad_ref,
            );
            same_losses(&format!("{what} vs cpu"), &losses, &losses_cpu, 1e-3);
            same_losses(&format!("{what} vs reference"), &losses, &losses_ref, 1e-3);
        }
    }
}

/// A weight-shared network (`share-blocks`) trains as on the CPU backend: sparse and dense probes
/// on sine-gordon-two-body, and the heat problem, whose time column reaches the MLP unshared.
#[test]
fn shared_training_matches_cpu_backend() {
    let heat = TrainConfig {
        equation: "heat".into(),
        dim: 6,
        batch: 20,
        estimator: EstimatorKind::Exact,
        share_blocks: Some(3),
        test_points: 200,
        ..config(EstimatorKind::Exact, false)
    };
    for cfg in [
        TrainConfig {
            share_blocks: Some(4),
            ..config(EstimatorKind::Sparse, true)
        },
        TrainConfig {
            share_blocks: Some(5),
            ..config(EstimatorKind::Dense, false)
        },
        heat,
    ] {
        let (grad_cpu, losses_cpu, err_cpu) = run(&CpuBackend::new(), &cfg, 10);
        for variant in common::VARIANTS {
            let b = backend_or_skip!(WgpuParams {
                kernel_variant: variant,
                ..WgpuParams::default()
            });
            let (grad, losses, err) = run(&b, &cfg, 10);
            let what = format!(
                "{} {:?} share-blocks {:?} ({variant:?})",
                cfg.equation, cfg.estimator, cfg.share_blocks
            );
            same_gradient(&format!("{what} first gradient"), &grad, &grad_cpu);
            same_losses(&what, &losses, &losses_cpu, 1e-3);
            assert!(
                (err - err_cpu).abs() <= 1e-3 * err_cpu,
                "{what}: rel L2 {err} vs {err_cpu}"
            );
        }
    }
}
