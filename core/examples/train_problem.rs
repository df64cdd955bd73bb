//! Trains a shipped problem with the CLI's defaults on the CPU backend and prints the loss and the
//! relative L2 error every 500 steps: `cargo run --release -p stde-core --example train_problem --
//! heat 10 2000`.

use stde_core::backend::cpu::CpuBackend;
use stde_core::problem;
use stde_core::train::{EstimatorKind, TrainConfig};
use stde_core::trainer::Trainer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("heat", String::as_str);
    let dim: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let steps: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let spec = problem::builtin(name)
        .expect("a shipped problem")
        .expect("reads");
    let cfg = TrainConfig {
        equation: name.into(),
        dim,
        steps,
        estimator: spec.defaults.estimator.unwrap_or(EstimatorKind::Sparse),
        rand_dims: spec.defaults.rand_dims.unwrap_or(16),
        ..TrainConfig::default()
    };
    let be = CpuBackend::new();
    rayon::scope(|_| {
        let mut t = Trainer::with_problem(&be, cfg, &spec, None).expect("config");
        let start = std::time::Instant::now();
        while !t.finished() {
            t.step();
            let s = t.progress().step;
            if s % 500 == 0 || t.finished() {
                let loss = pollster::block_on(t.loss()).expect("loss");
                let e = pollster::block_on(t.evaluate()).expect("eval");
                println!(
                    "{name} d={dim} step {s}: loss {loss:.3e}, rel L2 {:.3e} ({:.1} s)",
                    e.rel_l2,
                    start.elapsed().as_secs_f64()
                );
            }
        }
    });
}
