//! Where a training step's time goes on the wgpu backend: the wall time per step of an ordinary
//! run (the loss read back after every step, as the CLI does), then a per-kernel profile of the
//! same steps with every dispatch timed alone (see `stde_wgpu::Profile`).
//!
//! ```text
//! cargo run --release -p stde-wgpu --example profile_step -- [dim] [steps] [auto|tiled|simple]
//! ```

use std::time::Instant;

use stde_core::train::{TrainConfig, Trainer};
use stde_wgpu::{KernelVariant, WgpuBackend, WgpuParams};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dim: usize = args.first().map_or(100, |a| a.parse().expect("dim"));
    let steps: u64 = args.get(1).map_or(20, |a| a.parse().expect("steps"));
    let kernel_variant = match args.get(2).map(String::as_str) {
        None | Some("auto") => KernelVariant::Auto,
        Some("tiled") => KernelVariant::Tiled,
        Some("simple") => KernelVariant::Simple,
        Some(other) => panic!("unknown kernel variant {other}"),
    };
    let params = WgpuParams {
        kernel_variant,
        ..WgpuParams::default()
    };
    let backend = pollster::block_on(WgpuBackend::new(params)).expect("a wgpu adapter");
    println!("{} ({kernel_variant:?})", backend.describe());
    let cfg = TrainConfig {
        dim,
        steps: 1_000_000,
        test_points: 500,
        ..TrainConfig::default()
    };
    println!(
        "d = {dim}, N = {}, V = {}, width {}, depth {}",
        cfg.batch, cfg.rand_dims, cfg.width, cfg.depth
    );
    let mut trainer = Trainer::new(&backend, cfg, None).expect("trainer");
    let run = |trainer: &mut Trainer<'_, WgpuBackend>, n: u64| {
        for _ in 0..n {
            trainer.step();
            pollster::block_on(trainer.loss()).expect("loss");
        }
    };
    // Warm-up: pipelines, bind groups, temporaries and staging buffers are created here.
    let t = Instant::now();
    run(&mut trainer, 1);
    let first = t.elapsed().as_secs_f64();
    let created = backend.profile();
    println!(
        "first step {:.0} ms ({} pipelines, {} bind groups, {} buffers created)",
        1e3 * first,
        created.pipelines_created,
        created.bind_groups_created,
        created.buffers_created
    );
    run(&mut trainer, 2);
    backend.reset_profile();
    // The fastest of five rounds: the machine may be shared, and interference only adds time.
    let rounds = 5;
    let per_round = steps.div_ceil(rounds).max(1);
    let mut best = f64::MAX;
    let mut total = 0.0;
    let cpu0 = cpu_seconds();
    for _ in 0..rounds {
        let t = Instant::now();
        run(&mut trainer, per_round);
        let dt = t.elapsed().as_secs_f64();
        total += dt;
        best = best.min(dt / per_round as f64);
    }
    let done = rounds * per_round;
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| (b - a) / done as f64);
    let counters = backend.profile();
    println!(
        "{:.2} ms per step, best of {rounds} rounds of {per_round} ({:.1} steps/s; mean {:.2} ms), \
         {:.1} dispatches, {:.1} submits per step",
        1e3 * best,
        1.0 / best,
        1e3 * total / done as f64,
        counters.dispatches() as f64 / done as f64,
        counters.submits as f64 / done as f64
    );
    if let Some(cpu) = cpu {
        // Less sensitive than wall time to other processes on a shared machine.
        println!(
            "{:.2} ms of CPU time per step (all threads of the process)",
            1e3 * cpu
        );
    }
    backend.set_profiling(true);
    backend.reset_profile();
    run(&mut trainer, steps);
    backend.set_profiling(false);
    println!("per step, every dispatch timed alone:");
    println!("{}", backend.profile().report(steps));
}

/// User + system CPU seconds of this process (Linux), from `/proc/self/stat` at 100 ticks per
/// second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
