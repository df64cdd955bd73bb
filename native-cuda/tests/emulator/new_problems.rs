//! The first training steps of the problems beyond the paper's suite on the emulated CUDA backend
//! against `stde_core`'s CPU backend: dense Gaussian 4-jets (`biharmonic`), a parameter-weighted
//! directional readout (`advection-diffusion`), planner jets in several slots (`third-order-mixed`)
//! and a time column with a soft initial-condition loss (`heat`), each with its default estimator.

use stde_core::backend::cpu::CpuBackend;
use stde_core::train::{EstimatorKind, TrainConfig, Trainer};

use super::emulated_or_skip;

/// `|a − b| ≤ tol·(1 + max(|a|, |b|))`.
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn first_steps_of_the_newer_problems_match_the_cpu_backend() {
    let emulated = emulated_or_skip!();
    let cpu = CpuBackend::new();
    for (name, dim) in [
        ("biharmonic", 6usize),
        ("advection-diffusion", 10),
        ("third-order-mixed", 5),
        ("heat", 6),
        // Paired 7-jets and the forcing's series along them (V must be even there).
        ("sine-gordon-two-body-gpinn", 6),
    ] {
        let spec = stde_core::problem::builtin(name)
            .unwrap_or_else(|| panic!("{name} is a shipped problem"))
            .unwrap_or_else(|e| panic!("{name} reads: {e}"));
        let estimator = spec.defaults.estimator.unwrap_or(EstimatorKind::Sparse);
        let cfg = TrainConfig {
            equation: name.into(),
            dim,
            steps: 3,
            batch: 4,
            rand_dims: if spec.pde.gradient_weight > 0.0 { 4 } else { 3 },
            estimator,
            width: 8,
            depth: 3,
            lr: 1e-2,
            seed: 11,
            eval_every: 3,
            test_points: 16,
            ..TrainConfig::default()
        };
        let mut want = Trainer::new(&cpu, cfg.clone(), None).expect("CPU trainer");
        let mut got = Trainer::new(&emulated, cfg.clone(), None).expect("emulated trainer");
        for step in 0..cfg.steps {
            want.accumulate_gradient();
            got.accumulate_gradient();
            let (lw, lg) = (
                pollster::block_on(want.loss()).expect("CPU loss"),
                pollster::block_on(got.loss()).expect("emulated loss"),
            );
            assert!(
                lw.is_finite() && lw > 0.0,
                "{name} step {step}: the CPU loss is {lw}"
            );
            assert!(
                close(lw, lg, 1e-3),
                "{name} ({estimator:?}) step {step}: loss {lg} vs CPU {lw}"
            );
            let (gw, gg) = (
                pollster::block_on(want.gradient()).expect("CPU gradient"),
                pollster::block_on(got.gradient()).expect("emulated gradient"),
            );
            assert_eq!(gw.len(), gg.len(), "{name}: gradient lengths");
            let norm = gw.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>().sqrt();
            let diff = gw
                .iter()
                .zip(&gg)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                norm > 0.0 && diff <= 1e-3 * norm,
                "{name} ({estimator:?}) step {step}: gradient differs by {diff:e} of {norm:e}"
            );
            want.apply_update();
            got.apply_update();
        }
    }
}
