//! Unit tests of `CpuBackend` against `ReferenceBackend` (the f64 oracle) on random inputs, plus
//! accuracy checks of the fast f32 math.
//!
//! Tolerance: unless a test says otherwise, a value passes when
//! `|got − want| ≤ 1e-4 · (|want| + rms)`, where `rms` is the root mean square of the expected values
//! of the same block (one jet coefficient block, one matrix, one set of per-point values). Pure
//! elementwise relative error would fail on values that cancel to near zero in f64 while f32 keeps an
//! absolute error at the scale of their terms; the block RMS is that scale.

use super::simd;
use super::*;
use crate::backend::reference::ReferenceBackend;
use crate::rng::Philox;

/// The relative tolerance of these tests (see the module documentation).
const REL: f64 = 1e-4;

/// `n` uniforms in `[lo, hi)` from a Philox stream keyed by `seed`.
fn uniforms(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut u = vec![0.0f32; n];
    Philox::new(seed).fill_uniform_f32(99, 0, &mut u);
    u.iter().map(|v| lo + (hi - lo) * v).collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Compares `got` with `want` block by block (`block` values each, the last may be shorter).
#[track_caller]
fn assert_close(case: &str, got: &[f32], want: &[f64], block: usize, rel: f64) {
    assert_eq!(got.len(), want.len(), "{case}: lengths differ");
    let block = block.max(1);
    for (b, (g, w)) in got.chunks(block).zip(want.chunks(block)).enumerate() {
        let rms = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
        for (i, (&gv, &wv)) in g.iter().zip(w).enumerate() {
            let err = (f64::from(gv) - wv).abs();
            let tol = rel * (wv.abs() + rms) + 1e-30;
            assert!(
                err <= tol,
                "{case}: index {} (block {b}, offset {i}): got {gv}, expected {wv} (|err| {err:.3e} > tol {tol:.3e})",
                b * block + i
            );
        }
    }
}

/// A jet shape from its five numbers.
fn shape(order: usize, dirs: usize, points: usize, width: usize, collapsed: bool) -> JetShape {
    JetShape {
        order,
        n_dirs: dirs,
        n_points: points,
        width,
        collapsed,
    }
}

/// A random jet batch: primal in `[−3, 3]`, higher coefficients in `[−1, 1]`.
fn random_batch(seed: u64, sh: JetShape) -> Vec<f32> {
    let block = sh.n_points * sh.width;
    let mut v = uniforms(seed, sh.len(), -1.0, 1.0);
    for x in &mut v[..block] {
        *x *= 3.0;
    }
    v
}

const ACTS: [Activation; 2] = [Activation::Tanh, Activation::Sin];
const WIDTHS: [usize; 5] = [1, 7, 16, 33, 128];

fn check_activation_case(cpu: &CpuBackend, act: Activation, sh: JetShape, seed: u64) {
    let rf = ReferenceBackend;
    let z = random_batch(seed, sh);
    let hb = uniforms(seed ^ 0x5555, sh.len(), -1.0, 1.0);
    let case = format!("{act:?} {sh:?}");
    let mut h = vec![f32::NAN; sh.len()];
    cpu.jet_activation_forward(act, sh, &z, &mut h);
    let mut h_ref = vec![0.0; sh.len()];
    rf.jet_activation_forward(act, sh, &to_f64(&z), &mut h_ref);
    assert_close(
        &format!("forward {case}"),
        &h,
        &h_ref,
        sh.n_points * sh.width,
        REL,
    );

    let mut zb = vec![f32::NAN; sh.len()];
    cpu.jet_activation_backward(act, sh, &z, &hb, &mut zb);
    let mut zb_ref = vec![0.0; sh.len()];
    rf.jet_activation_backward(act, sh, &to_f64(&z), &to_f64(&hb), &mut zb_ref);
    assert_close(
        &format!("backward {case}"),
        &zb,
        &zb_ref,
        sh.n_points * sh.width,
        REL,
    );
}

#[test]
fn activation_kernels_match_reference_for_orders_1_to_8() {
    let cpu = CpuBackend::new();
    let mut seed = 1;
    for act in ACTS {
        for order in 1..=8 {
            for collapsed in [false, true] {
                for (i, width) in WIDTHS.into_iter().enumerate() {
                    let dirs = 1 + (order + i) % 3;
                    let sh = shape(order, dirs, 3, width, collapsed);
                    check_activation_case(&cpu, act, sh, seed);
                    seed += 1;
                }
            }
        }
    }
}

#[test]
fn activation_kernels_match_reference_at_high_orders_order_zero_and_wide_rows() {
    let cpu = CpuBackend::new();
    for act in ACTS {
        // Order 0 (uncollapsed) is the plain elementwise function; 12 and 16 use the generic path.
        check_activation_case(&cpu, act, shape(0, 1, 2, 20, false), 7);
        check_activation_case(&cpu, act, shape(12, 2, 2, 17, false), 8);
        check_activation_case(&cpu, act, shape(16, 1, 2, 17, true), 9);
        // Rows wider than one 128-feature chunk, on the closed-form and the recurrence paths.
        check_activation_case(&cpu, act, shape(2, 2, 3, 300, true), 10);
        check_activation_case(&cpu, act, shape(1, 2, 2, 257, false), 11);
        check_activation_case(&cpu, act, shape(3, 2, 2, 257, false), 12);
    }
}

#[test]
fn activation_kernels_split_across_threads_like_one_task() {
    // Large enough for several point ranges: the Laplacian shape and an uncollapsed 3-jet.
    let cpu = CpuBackend::new();
    let serial = CpuBackend::with_threads(1);
    for (act, sh) in [
        (Activation::Tanh, shape(2, 16, 50, 128, true)),
        (Activation::Sin, shape(3, 4, 41, 40, false)),
    ] {
        assert!(
            cpu.threads() == 1 || cpu.jet_tasks(sh) > 1,
            "{sh:?} should be split"
        );
        check_activation_case(&cpu, act, sh, 42);
        let z = random_batch(3, sh);
        let (mut a, mut b) = (vec![0.0; sh.len()], vec![0.0; sh.len()]);
        cpu.jet_activation_forward(act, sh, &z, &mut a);
        serial.jet_activation_forward(act, sh, &z, &mut b);
        assert_eq!(a, b, "{act:?} {sh:?}: split and serial results differ");
    }
}

#[test]
fn every_simd_level_gives_the_same_jets() {
    // The dispatcher must not change results beyond rounding; the baseline path runs everywhere.
    let mut cpu = CpuBackend::with_threads(1);
    let best = Simd::detect();
    let supported = |level: Simd| match best {
        Simd::Avx512 => true,
        Simd::Avx2 => level != Simd::Avx512,
        Simd::Baseline => level == Simd::Baseline,
    };
    for (act, sh) in [
        (Activation::Tanh, shape(2, 3, 4, 37, true)),
        (Activation::Sin, shape(3, 2, 4, 37, false)),
    ] {
        let z = random_batch(11, sh);
        let mut outs = Vec::new();
        for level in [Simd::Avx512, Simd::Avx2, Simd::Baseline] {
            if !supported(level) {
                continue;
            }
            cpu.simd = level;
            let mut h = vec![0.0; sh.len()];
            cpu.jet_activation_forward(act, sh, &z, &mut h);
            let mut zb = vec![0.0; sh.len()];
            cpu.jet_activation_backward(act, sh, &z, &z, &mut zb);
            outs.push((level, h, zb));
        }
        let (_, h0, zb0) = &outs[outs.len() - 1];
        for (level, h, zb) in &outs {
            let case = format!("{act:?} {sh:?} {level:?}");
            assert_close(&case, h, &to_f64(h0), sh.n_points * sh.width, 1e-6);
            assert_close(&case, zb, &to_f64(zb0), sh.n_points * sh.width, 1e-6);
        }
    }
}

/// Max relative error of `f` against an f64 `want` over `xs`, relative to `max(|want|, floor)`.
fn max_rel_err(xs: &[f32], f: impl Fn(f32) -> f32, want: impl Fn(f64) -> f64, floor: f64) -> f64 {
    xs.iter()
        .map(|&x| {
            let w = want(f64::from(x));
            (f64::from(f(x)) - w).abs() / w.abs().max(floor)
        })
        .fold(0.0, f64::max)
}

/// `sin_cos_f32` with the `std` fix-up for large arguments, as the kernels use it.
fn sin_cos(x: f32) -> (f32, f32) {
    let (mut s, mut c) = simd::sin_cos_f32(x);
    let (mut s1, mut c1) = ([s], [c]);
    simd::sin_cos_fixup(&[x], &mut s1, &mut c1);
    (s, c) = (s1[0], c1[0]);
    (s, c)
}

#[test]
fn fast_math_is_accurate_to_a_few_ulps() {
    let xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 1e-3).collect();
    let tanh = max_rel_err(&xs, |x| simd::tanh_d_f32(x).0, f64::tanh, 1e-30);
    let sech2 = max_rel_err(
        &xs,
        |x| simd::tanh_d_f32(x).1,
        |x| 1.0 / x.cosh().powi(2),
        1e-30,
    );
    assert!(tanh < 5e-7, "tanh max relative error {tanh:.3e}");
    assert!(sech2 < 2e-6, "sech² max relative error {sech2:.3e}");
    // Tiny arguments (the `tanh x = x` branch) and the saturated tail.
    let tiny: Vec<f32> = (1..2000).map(|i| i as f32 * 1e-6).collect();
    let tanh_tiny = max_rel_err(&tiny, |x| simd::tanh_d_f32(x).0, f64::tanh, 1e-30);
    assert!(tanh_tiny < 5e-7, "tanh near 0: {tanh_tiny:.3e}");
    let far: Vec<f32> = (0..2000).map(|i| 5.0 + i as f32 * 0.01).collect();
    let tanh_far = max_rel_err(&far, |x| simd::tanh_d_f32(x).0, f64::tanh, 1e-30);
    assert!(tanh_far < 3e-7, "tanh tail error {tanh_far:.3e}");
    let wide: Vec<f32> = (-100_000..=100_000).map(|i| i as f32 * 1e-3).collect();
    // sin/cos relative to max(|value|, 1e-3): absolute accuracy is what matters near zeros.
    let s = max_rel_err(&wide, |x| sin_cos(x).0, f64::sin, 1e-3);
    let c = max_rel_err(&wide, |x| sin_cos(x).1, f64::cos, 1e-3);
    assert!(s < 1e-6 && c < 1e-6, "sin {s:.3e}, cos {c:.3e}");
    let huge = [1e5f32, -3.3e6, 1e9, 8192.5];
    let s = max_rel_err(&huge, |x| sin_cos(x).0, f64::sin, 1e-3);
    assert!(s < 1e-5, "sin of large arguments (std fallback) {s:.3e}");
    let e: Vec<f32> = (-8000..=8000).map(|i| i as f32 * 1e-2).collect();
    let exp = max_rel_err(&e, simd::exp_f32, f64::exp, 1e-30);
    assert!(exp < 5e-7, "exp max relative error {exp:.3e}");
    eprintln!("fast math max relative errors: tanh {tanh:.2e} (near 0: {tanh_tiny:.2e}, tail: {tanh_far:.2e}), sech² {sech2:.2e}, exp {exp:.2e}");
}

#[test]
fn gemm_matches_reference_for_all_transposes_offsets_and_betas() {
    // Two threads whatever the machine, so the parallel and split-K paths run everywhere.
    let cpu = CpuBackend::with_threads(2);
    let rf = ReferenceBackend;
    let mut seed = 100;
    // (128, 128, 128) runs gemm's parallel path, (3, 5, 40 000) the split along k.
    for (m, n, k) in [
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (128, 128, 128),
        (3, 5, 40_000),
        (4, 3, 0),
    ] {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                for beta in [0.0f32, 1.0, -0.5] {
                    seed += 1;
                    let g = Gemm {
                        m,
                        n,
                        k,
                        trans_a,
                        trans_b,
                        alpha: 0.75,
                        beta,
                        a_offset: 3,
                        b_offset: 5,
                        c_offset: 2,
                    };
                    let a = uniforms(seed, 3 + m * k, -1.0, 1.0);
                    let b = uniforms(seed + 1000, 5 + k * n + 4, -1.0, 1.0);
                    let c0 = uniforms(seed + 2000, 2 + m * n, -1.0, 1.0);
                    let mut c = c0.clone();
                    if beta == 0.0 {
                        // β = 0 must not read C: garbage (NaN) has to disappear.
                        c[2..].fill(f32::NAN);
                    }
                    cpu.gemm(g, &a, &b, &mut c);
                    let mut c_ref = to_f64(&c0);
                    rf.gemm(g, &to_f64(&a), &to_f64(&b), &mut c_ref);
                    assert_close(&format!("{g:?}"), &c, &c_ref, m * n + 2, REL);
                }
            }
        }
    }
}

#[test]
fn bias_kernels_match_reference() {
    let cpu = CpuBackend::new();
    let rf = ReferenceBackend;
    for width in WIDTHS {
        let sh = shape(2, 3, 5, width, true);
        let params = uniforms(1, 10 + width, -1.0, 1.0);
        let z0 = uniforms(2, sh.len(), -1.0, 1.0);
        let (mut z, mut z_ref) = (z0.clone(), to_f64(&z0));
        cpu.add_bias(sh, &params, 10, &mut z);
        rf.add_bias(sh, &to_f64(&params), 10, &mut z_ref);
        assert_close(&format!("add_bias {width}"), &z, &z_ref, sh.len(), REL);
        let (mut g, mut g_ref) = (params.clone(), to_f64(&params));
        cpu.bias_grad(sh, &z0, &mut g, 10);
        rf.bias_grad(sh, &to_f64(&z0), &mut g_ref, 10);
        assert_close(&format!("bias_grad {width}"), &g, &g_ref, g.len(), REL);
    }
}

#[test]
fn samples_are_bit_identical_to_reference() {
    let cpu = CpuBackend::new();
    let rf = ReferenceBackend;
    let kinds = [
        Sampling::BallPoints {
            first: 0,
            n: 7,
            d: 5,
            stream: 1,
        },
        // Large enough to be drawn in parallel chunks, starting mid-sequence.
        Sampling::BallPoints {
            first: 13,
            n: 100,
            d: 1001,
            stream: 2,
        },
        Sampling::Rademacher { count: 1003 },
        Sampling::Rademacher { count: 200_003 },
        Sampling::Gaussian { count: 7 },
        Sampling::Gaussian { count: 200_001 },
    ];
    for what in kinds {
        let len = match what {
            Sampling::BallPoints { n, d, .. } => n * d,
            Sampling::Rademacher { count } | Sampling::Gaussian { count } => count,
        };
        let mut out = vec![-7.0f32; len + 3];
        cpu.sample(what, 0xDEAD_BEEF_1234, 17, &mut out);
        let mut out_ref = vec![-7.0f64; len + 3];
        rf.sample(what, 0xDEAD_BEEF_1234, 17, &mut out_ref);
        for (i, (a, b)) in out.iter().zip(&out_ref).enumerate() {
            assert!(
                f64::from(*a).to_bits() == b.to_bits(),
                "{what:?}: index {i}: got {a}, expected {b}"
            );
        }
    }
}

#[test]
fn adam_matches_reference() {
    let cpu = CpuBackend::new();
    let rf = ReferenceBackend;
    for n in [1, 37, 200_003] {
        let mut p = uniforms(1, n, -1.0, 1.0);
        let mut p_ref = to_f64(&p);
        let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
        let (mut m_ref, mut v_ref) = (vec![0.0f64; n], vec![0.0f64; n]);
        for t in 1..=3 {
            let g = uniforms(10 + t as u64, n, -1.0, 1.0);
            let (mut g_cpu, mut g_ref) = (g.clone(), to_f64(&g));
            let step = AdamStep {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t,
            };
            cpu.adam(step, &mut p, &mut g_cpu, &mut m, &mut v);
            rf.adam(step, &mut p_ref, &mut g_ref, &mut m_ref, &mut v_ref);
            assert!(g_cpu.iter().all(|&x| x == 0.0), "gradient not zeroed");
        }
        // Parameters move by ~1e-3 per step from O(1) values: compare the updates, not the values.
        let start = to_f64(&uniforms(1, n, -1.0, 1.0));
        let delta: Vec<f32> = p
            .iter()
            .zip(&start)
            .map(|(a, b)| (f64::from(*a) - b) as f32)
            .collect();
        let delta_ref: Vec<f64> = p_ref.iter().zip(&start).map(|(a, b)| a - b).collect();
        // The f32 parameters themselves round at ~6e-8, i.e. 2e-5 of a 3e-3 update.
        assert_close(&format!("adam n={n}"), &delta, &delta_ref, n, 1e-3);
        assert_close(&format!("adam m n={n}"), &m, &m_ref, n, REL);
        assert_close(&format!("adam v n={n}"), &v, &v_ref, n, REL);
    }
}

#[test]
fn allocation_reports_out_of_memory_instead_of_aborting() {
    let cpu = CpuBackend::new();
    let err = cpu.alloc(usize::MAX / 2, "huge").unwrap_err();
    assert!(
        matches!(err, BackendError::OutOfMemory { what: "huge", .. }),
        "{err:?}"
    );
    let err = cpu.alloc_idx(usize::MAX / 2, "huge idx").unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::OutOfMemory {
                what: "huge idx",
                ..
            }
        ),
        "{err:?}"
    );
    let mut buf = cpu.alloc(10, "small").expect("small allocation");
    assert!(buf.iter().all(|&x| x == 0.0));
    cpu.upload(&mut buf, 2, &[1.0, 2.0]);
    let back = pollster::block_on(cpu.download(&buf, 1, 3)).expect("download");
    assert_eq!(back, vec![0.0, 1.0, 2.0]);
}
