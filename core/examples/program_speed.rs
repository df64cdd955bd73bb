//! Times the compiled two-body forcing program (`CpuBackend::run_program`) in primal mode, and the
//! series mode of the same program over one-hot directions against its primal.
//!
//! `cargo run -p stde-core --release --example program_speed [threads]` (default: rayon's pool).

#[path = "../tests/common/forcing_program.rs"]
mod forcing_program;

use std::time::{Duration, Instant};

use stde_core::backend::{Backend, CpuBackend, ProbeKind, ProgramBackend, Sampling, SlotProbes};
use stde_core::batch::JetShape;

/// Median and minimum of `times`, in milliseconds.
fn stats(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[times.len() / 2]), ms(times[0]))
}

fn main() {
    let threads = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(rayon::current_num_threads);
    let b = CpuBackend::with_threads(threads);
    println!("{}", b.describe());
    let n = 100;
    for d in [1_000usize, 100_000] {
        let mut points = b.alloc(n * d, "points").expect("points");
        b.sample(
            Sampling::BallPoints {
                first: 0,
                n,
                d,
                stream: 1,
            },
            7,
            0,
            &mut points,
        );
        let mut coeffs = b.alloc(d - 1, "coefficients").expect("coefficients");
        b.sample(Sampling::Gaussian { count: d - 1 }, 7, 0, &mut coeffs);
        let program = forcing_program::two_body_forcing(d as u32);
        let compiled = b.compile_program(&program).expect("compiles");
        let mut out = vec![0.0f32; 2 * n];
        let rounds = if d >= 100_000 { 40 } else { 400 };
        let mut t_prog = Vec::new();
        for r in 0..rounds + 2 {
            let t0 = Instant::now();
            b.run_program(&compiled, n, &points, &Vec::new(), &coeffs, &mut out);
            // The first two rounds warm caches and the pool.
            if r >= 2 {
                t_prog.push(t0.elapsed());
            }
        }
        let (pm, pmin) = stats(&mut t_prog);
        println!("d = {d:>7}, {n} points: program {pm:8.3} ms (min {pmin:8.3})");
    }

    // Series mode at d = 10⁶: 16 one-hot directions of order 2 cost O(window) each, so the series
    // run takes about as long as the primal run it starts with.
    let (d, n, v, k) = (1_000_000usize, 8, 16, 2);
    let mut points = b.alloc(n * d, "points").expect("points");
    b.sample(
        Sampling::BallPoints {
            first: 0,
            n,
            d,
            stream: 1,
        },
        7,
        0,
        &mut points,
    );
    let mut coeffs = b.alloc(d - 1, "coefficients").expect("coefficients");
    b.sample(Sampling::Gaussian { count: d - 1 }, 7, 0, &mut coeffs);
    let program = forcing_program::two_body_forcing(d as u32);
    let compiled = b.compile_program(&program).expect("compiles");
    let slot_index: Vec<u32> = (0..v * k).map(|e| ((e * 48_271) % d) as u32).collect();
    let slot_coeff = vec![1.0f32; v * k];
    let dense = vec![0.0f32];
    let probes = SlotProbes::<CpuBackend> {
        kind: ProbeKind::OneHot,
        slot_index: &slot_index,
        slot_coeff: &slot_coeff,
        dense: &dense,
    };
    let shape = JetShape {
        order: k,
        n_dirs: v,
        n_points: n,
        width: 2,
        collapsed: false,
    };
    let mut series = vec![0.0f32; shape.len()];
    let mut out = vec![0.0f32; 2 * n];
    let (mut t_primal, mut t_series) = (Vec::new(), Vec::new());
    for r in 0..12 {
        let t0 = Instant::now();
        b.run_program(&compiled, n, &points, &Vec::new(), &coeffs, &mut out);
        let t1 = Instant::now();
        b.run_program_series(&compiled, shape, &points, &probes, &coeffs, &mut series);
        let t2 = Instant::now();
        if r >= 2 {
            t_primal.push(t1 - t0);
            t_series.push(t2 - t1);
        }
    }
    let (pm, _) = stats(&mut t_primal);
    let (sm, _) = stats(&mut t_series);
    println!(
        "d = {d}, {n} points, {v} one-hot directions, order {k}: primal {pm:.2} ms, series {sm:.2} ms \
         (series/primal {:.2})",
        sm / pm
    );
}
