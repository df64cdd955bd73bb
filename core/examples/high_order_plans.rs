//! Steps per second of the high-order problems (`kdv-2d`, `kp-2d`, `gkdv-1d`) under the planned
//! fixed jets (shared between terms, clean coefficients reused) and under the naive plan of one
//! pushforward per derivative, on the CPU backend, alternating the two in rounds so that a shared
//! machine's load falls on both alike:
//! `cargo run --release -p stde-core --example high_order_plans -- [steps] [rounds]`.
//!
//! Each measurement is whole training steps of the same run (same seed, points and model: the two
//! plans estimate the same derivatives, so the first losses agree to f32 rounding): sampling, the
//! ansatz and loss programs, the jets through the MLP and back, and Adam. Only the fixed jets
//! differ; every direction of a plan is pushed to the plan's order `K`.

use std::time::Instant;

use stde_core::backend::cpu::CpuBackend;
use stde_core::problem;
use stde_core::step_plan::JetSharing;
use stde_core::train::TrainConfig;
use stde_core::trainer::Trainer;

fn main() {
    let steps: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let be = CpuBackend::new();
    rayon::scope(|_| {
        for (name, dim) in [("kdv-2d", 2usize), ("kp-2d", 2), ("gkdv-1d", 1)] {
            let base = problem::builtin(name)
                .expect("a shipped problem")
                .expect("reads");
            let cfg = TrainConfig {
                equation: name.into(),
                dim,
                steps,
                estimator: base.defaults.estimator.expect("suggested"),
                test_points: 1000,
                eval_every: steps,
                ..TrainConfig::default()
            };
            let mut rates = [Vec::new(), Vec::new()];
            let sharings = [JetSharing::Shared, JetSharing::PerDerivative];
            for round in 0..rounds {
                for (m, &sharing) in sharings.iter().enumerate() {
                    let mut spec = base.clone();
                    spec.defaults.jets = sharing;
                    let mut t =
                        Trainer::with_problem(&be, cfg.clone(), &spec, None).expect("config");
                    t.step();
                    let first = pollster::block_on(t.loss()).expect("loss");
                    let t0 = Instant::now();
                    while !t.finished() {
                        t.step();
                    }
                    let last = pollster::block_on(t.loss()).expect("loss");
                    let rate = (steps - 1) as f64 / t0.elapsed().as_secs_f64();
                    rates[m].push(rate);
                    if round == 0 {
                        let plan = t.plan();
                        println!(
                            "{name} {:?}: {} directions of order {} ({} rows per layer at batch \
                             {}), first loss {first:.6e}, loss after {steps} steps {last:.3e}",
                            sharing,
                            plan.n_dirs,
                            plan.order,
                            cfg.batch * (1 + plan.n_dirs * plan.order),
                            cfg.batch,
                        );
                    }
                }
                println!(
                    "{name} round {round}: planned {:.1} steps/s, naive {:.1} steps/s",
                    rates[0][round], rates[1][round]
                );
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (p, n) = (median(&mut rates[0]), median(&mut rates[1]));
            println!(
                "{name}: median planned {p:.1} steps/s, naive {n:.1} steps/s, speed-up {:.2}×",
                p / n
            );
        }
    });
}
