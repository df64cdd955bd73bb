//! Compiled programs on the device against the f64 interpreter, beyond the generic suite: sums over
//! d = 10⁵ windows (primal, one-hot and dense series) stay within `Tolerance::F32`, series mode at
//! orders 0 (the primal values in the jet layout) to 6, and the binding-window splits (64 KiB
//! bindings, 96 KiB wgpu buffers) give the same results. Points lie
//! inside the unit ball, as the PDE suite samples them. Every case runs once per kernel family.
//!
//! Without an adapter each test prints one `skipped: no wgpu adapter (…)` line and returns, unless
//! `STDE_REQUIRE_GPU=1`, which turns that into a failure.

mod common;

use stde_core::backend::{Backend, ProbeKind, ProgramBackend, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, Tolerance};
use stde_core::program::conformance::{pair_windows, triple_windows_time};
use stde_core::program::interp::{run_primal, run_series, HostProbes};
use stde_core::program::Program;
use stde_core::rng::Philox;
use stde_wgpu::{KernelVariant, WgpuBackend, WgpuParams};

/// Uniforms in `[lo, hi)`, rounded to f32.
fn uniform(seed: u32, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut u = vec![0.0f32; len];
    Philox::new(11).fill_uniform_f32(7, seed, &mut u);
    u.iter()
        .map(|&v| f64::from((lo + (hi - lo) * f64::from(v)) as f32))
        .collect()
}

/// `n` points inside the unit ball (radius up to 0.9), times in `[0, 1)`.
fn ball_points(p: &Program, n: usize) -> Vec<f64> {
    let (stride, dim) = (p.point_stride(), p.dim as usize);
    let mut pts = uniform(1, n * stride, -1.0, 1.0);
    let radii = uniform(2, n, 0.1, 0.9);
    for (row, r) in pts.chunks_mut(stride).zip(radii) {
        let norm = row[..dim].iter().map(|x| x * x).sum::<f64>().sqrt();
        for x in &mut row[..dim] {
            *x = f64::from((*x * r / norm) as f32);
        }
        if p.has_time {
            row[dim] = f64::from((0.5 + 0.5 * row[dim]) as f32);
        }
    }
    pts
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn up(b: &WgpuBackend, data: &[f64]) -> stde_wgpu::WgpuBuf {
    let mut buf = b.alloc(data.len().max(1), "test").expect("alloc");
    b.upload(&mut buf, 0, &f32s(data));
    buf
}

/// Primal mode, then series mode with one-hot and dense probes, against the interpreter (at order
/// 0, where no probe is read, with one-hot ones only: the interpreter's dense curves start at
/// slot 1).
fn check(b: &WgpuBackend, case: &str, p: &Program, n: usize, order: usize, n_dirs: usize) {
    let kinds: &[ProbeKind] = if order == 0 {
        &[ProbeKind::OneHot]
    } else {
        &[ProbeKind::OneHot, ProbeKind::Dense]
    };
    check_kinds(b, case, p, (n, order, n_dirs), kinds);
}

/// [`check`] with series mode for the given probe kinds only.
fn check_kinds(
    b: &WgpuBackend,
    case: &str,
    p: &Program,
    (n, order, n_dirs): (usize, usize, usize),
    kinds: &[ProbeKind],
) {
    let stride = p.point_stride();
    let pts = ball_points(p, n);
    let params = uniform(3, p.n_params as usize, -1.0, 1.0);
    let compiled = b.compile_program(p).expect("compiles");
    let (pb, qb) = (up(b, &pts), up(b, &params));
    let fb = up(b, &[]);
    let expected = run_primal(p, n, &pts, &[], &params);
    let mut out = b.alloc(expected.len(), "out").expect("alloc");
    b.run_program(&compiled, n, &pb, &fb, &qb, &mut out);
    let got = pollster::block_on(b.download(&out, 0, expected.len())).expect("download");
    let tol = Tolerance::F32;
    let report = |r: stde_core::conformance::CheckResult| {
        if let Err(m) = r {
            panic!("{m}");
        }
    };
    report(compare(
        &format!("{case} primal"),
        &got,
        &f32s(&expected),
        tol,
    ));
    let shape = JetShape {
        order,
        n_dirs,
        n_points: n,
        width: p.n_outputs(),
        collapsed: false,
    };
    // One-hot: slot 1 everywhere, higher slots on some directions, the time column and a repeated
    // coordinate included; dense: every coordinate.
    let mut slot_index = Vec::new();
    for s in 0..n_dirs {
        for k in 1..=order {
            slot_index.push(match (s + k) % 3 {
                _ if k == 1 => ((s * 7919 + 13) % stride) as u32,
                0 => HostProbes::EMPTY,
                1 => (stride - 1) as u32,
                _ => ((s * 7919 + 13) % stride) as u32,
            });
        }
    }
    let slot_coeff = uniform(4, n_dirs * order, -1.0, 1.0);
    let dense = uniform(5, n_dirs * stride, -1.0, 1.0);
    let mut idx = b.alloc_idx(slot_index.len().max(1), "idx").expect("alloc");
    b.upload_idx(&mut idx, &slot_index);
    let (cb, db) = (up(b, &slot_coeff), up(b, &dense));
    for &kind in kinds {
        let probes = HostProbes {
            kind,
            slot_index: slot_index.clone(),
            slot_coeff: slot_coeff.clone(),
            dense: dense.clone(),
        };
        let expected = run_series(p, shape, &pts, &probes, &params);
        let sp = SlotProbes {
            kind,
            slot_index: &idx,
            slot_coeff: &cb,
            dense: &db,
        };
        let mut out = b.alloc(shape.len(), "series").expect("alloc");
        b.run_program_series(&compiled, shape, &pb, &sp, &qb, &mut out);
        let got = pollster::block_on(b.download(&out, 0, shape.len())).expect("download");
        report(compare(
            &format!("{case} series K={order} {kind:?}"),
            &got,
            &f32s(&expected),
            tol,
        ));
    }
}

fn params(kernel_variant: KernelVariant) -> WgpuParams {
    WgpuParams {
        kernel_variant,
        ..WgpuParams::default()
    }
}

/// One-hot directions (the STDE case) at d = 10⁵, and dense ones at d = 2·10⁴: a dense direction
/// visits every window, and on llvmpipe a (point, direction) must fit its loop-iteration limit even
/// spread over a workgroup (see `WgpuProgram`).
#[test]
fn sums_over_many_windows_stay_accurate() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(variant));
        let case = format!("pair windows d=1e5 {variant:?}");
        let p = pair_windows(100_000);
        check_kinds(&b, &case, &p, (3, 2, 4), &[ProbeKind::OneHot]);
        let case = format!("pair windows d=2e4 {variant:?}");
        let p = pair_windows(20_000);
        check_kinds(&b, &case, &p, (2, 2, 2), &[ProbeKind::Dense]);
    }
}

#[test]
fn programs_agree_across_orders_inside_the_ball() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(variant));
        // Order 0: the primal values in the jet layout (rows of the outputs).
        for order in [0, 1, 3, 6] {
            let case = format!("{variant:?} K={order}");
            check(
                &b,
                &format!("pair windows d=300 {case}"),
                &pair_windows(300),
                5,
                order,
                3,
            );
            let three = triple_windows_time(1000);
            check(
                &b,
                &format!("triple windows with time d=1000 {case}"),
                &three,
                4,
                order,
                3,
            );
        }
    }
}

#[test]
fn programs_split_over_small_bindings() {
    for variant in common::VARIANTS {
        for chunked in [false, true] {
            let b = backend_or_skip!(WgpuParams {
                max_binding_bytes: Some(64 << 10),
                max_buffer_bytes: chunked.then_some(96 << 10),
                kernel_variant: variant,
                ..WgpuParams::default()
            });
            // One binding holds 5 rows of 3001 values: 12 points take three dispatches.
            let p = triple_windows_time(3000);
            for (order, n_dirs) in [(2, 2), (0, 1)] {
                check(
                    &b,
                    &format!("split {variant:?} chunked={chunked}"),
                    &p,
                    12,
                    order,
                    n_dirs,
                );
            }
        }
    }
}
