//! Steps per second of the closed-form trainer and the problem-as-data trainer on the CPU backend,
//! alternating, at the paper's sizes: `cargo run --release -p stde-core --example step_speed -- 1000`.

use std::time::Instant;

use stde_core::backend::cpu::CpuBackend;
use stde_core::train::{self, TrainConfig};
use stde_core::trainer;

fn main() {
    let dim: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let steps: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let cfg = TrainConfig {
        dim,
        ..TrainConfig::default()
    };
    let be = CpuBackend::new();
    rayon::scope(|_| {
        for round in 0..3 {
            let mut old = train::Trainer::new(&be, cfg.clone(), None).expect("config");
            let t0 = Instant::now();
            for _ in 0..steps {
                old.step();
            }
            let l_old = pollster::block_on(old.loss()).expect("loss");
            let old_rate = steps as f64 / t0.elapsed().as_secs_f64();
            let mut new = trainer::Trainer::new(&be, cfg.clone(), None).expect("config");
            let t0 = Instant::now();
            for _ in 0..steps {
                new.step();
            }
            let l_new = pollster::block_on(new.loss()).expect("loss");
            let new_rate = steps as f64 / t0.elapsed().as_secs_f64();
            println!(
                "d={dim} round {round}: closed-form {old_rate:.1} steps/s (loss {l_old:.4e}), generic {new_rate:.1} steps/s (loss {l_new:.4e}), ratio {:.3}",
                new_rate / old_rate
            );
        }
    });
}
