//! The backend conformance suite: every [`Backend`] primitive checked against the f64
//! [`ReferenceBackend`] on random inputs, across orders, layouts and sizes that cross workgroup and
//! SIMD boundaries.
//!
//! A backend author runs it with the [`conformance_tests!`](crate::conformance_tests) macro, which
//! expands to one `#[test]` per primitive:
//!
//! ```text
//! stde_core::conformance_tests!(my_backend, MyBackend::new(), stde_core::conformance::Tolerance::F32);
//! ```
//!
//! Each check returns a [`Mismatch`] naming the case, the index, the value and the expectation.

use crate::backend::reference::ReferenceBackend;
use crate::backend::{
    AdamStep, Backend, Gemm, Nonlinearity, ProbeKind, Probes, ResidualParams, Sampling,
    SolutionKind,
};
use crate::batch::JetShape;
use crate::mlp::Activation;
use crate::rng::{self, Philox};

/// Allowed error: `|got − expected| ≤ abs·scale + rel·|expected|`, where `scale` is the largest
/// `|expected|` of the case (so that tiny entries of a large result are judged against its size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative part.
    pub rel: f64,
    /// Absolute part, relative to the case's scale.
    pub abs: f64,
}

impl Tolerance {
    /// What an f32 backend is held to.
    pub const F32: Tolerance = Tolerance {
        rel: 2e-4,
        abs: 2e-5,
    };
    /// What the reference backend is held to against itself.
    pub const EXACT: Tolerance = Tolerance { rel: 0.0, abs: 0.0 };
}

/// A failed comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// The case (primitive and parameters).
    pub case: String,
    /// Flat index of the first bad value.
    pub index: usize,
    /// What the backend gave.
    pub got: f64,
    /// What the reference gave.
    pub expected: f64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: index {}: got {:e}, expected {:e} (difference {:e})",
            self.case,
            self.index,
            self.got,
            self.expected,
            (self.got - self.expected).abs()
        )
    }
}

/// Result of one check.
pub type CheckResult = Result<(), Mismatch>;

/// Compares two vectors under `tol`.
///
/// # Errors
/// The first index out of tolerance (or a length mismatch, reported at the shorter length).
pub fn compare(case: &str, got: &[f32], expected: &[f32], tol: Tolerance) -> CheckResult {
    if got.len() != expected.len() {
        return Err(Mismatch {
            case: format!("{case} (length {} vs {})", got.len(), expected.len()),
            index: got.len().min(expected.len()),
            got: f64::NAN,
            expected: f64::NAN,
        });
    }
    let scale = expected
        .iter()
        .map(|v| f64::from(v.abs()))
        .fold(0.0, f64::max);
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let (g, e) = (f64::from(g), f64::from(e));
        let bound = tol.abs * scale + tol.rel * e.abs();
        // Written so that a NaN fails too.
        let within = (g - e).abs() <= bound;
        if !within {
            return Err(Mismatch {
                case: case.to_string(),
                index: i,
                got: g,
                expected: e,
            });
        }
    }
    Ok(())
}

/// Deterministic test data from the counter-based generator.
#[derive(Debug)]
struct Data {
    philox: Philox,
    counter: u32,
}

impl Data {
    fn new(seed: u64) -> Self {
        Self {
            philox: Philox::new(seed),
            counter: 0,
        }
    }

    /// `len` values uniform in `[lo, hi)`.
    fn uniform(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        let mut out = vec![0.0; len];
        self.counter += 1;
        self.philox.fill_uniform_f32(1000, self.counter, &mut out);
        out.iter_mut().for_each(|v| *v = lo + (hi - lo) * *v);
        out
    }
}

pub(crate) fn dl<B: Backend>(b: &B, buf: &B::Buf, len: usize) -> Vec<f32> {
    pollster::block_on(b.download(buf, 0, len)).expect("download failed")
}

pub(crate) fn up<B: Backend>(b: &B, data: &[f32]) -> B::Buf {
    let mut buf = b
        .alloc(data.len().max(1), "conformance")
        .expect("alloc failed");
    b.upload(&mut buf, 0, data);
    buf
}

pub(crate) fn up_idx<B: Backend>(b: &B, data: &[u32]) -> B::Idx {
    let mut buf = b
        .alloc_idx(data.len().max(1), "conformance")
        .expect("alloc failed");
    b.upload_idx(&mut buf, data);
    buf
}

/// Upload at an offset and download a window.
///
/// # Errors
/// A mismatch if the round trip changes a value.
pub fn check_transfers<B: Backend>(b: &B) -> CheckResult {
    let mut data = Data::new(1);
    for len in [1, 3, 64, 1000] {
        let src = data.uniform(len, -5.0, 5.0);
        let mut buf = b.alloc(len + 7, "transfer").expect("alloc failed");
        b.upload(&mut buf, 7, &src);
        let back = pollster::block_on(b.download(&buf, 7, len)).expect("download failed");
        compare(
            &format!("transfer len {len}"),
            &back,
            &src,
            Tolerance::EXACT,
        )?;
        let head = pollster::block_on(b.download(&buf, 0, 7)).expect("download failed");
        compare(
            &format!("zeroed head len {len}"),
            &head,
            &[0.0; 7],
            Tolerance::EXACT,
        )?;
    }
    Ok(())
}

/// Matrix products with every transpose combination, offsets, `alpha`, `beta`.
///
/// # Errors
/// The first mismatch.
pub fn check_gemm<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let mut data = Data::new(2);
    let sizes = [
        (1, 1, 1),
        (7, 5, 3),
        (16, 33, 17),
        (65, 9, 130),
        (33, 64, 64),
    ];
    for &(m, n, k) in &sizes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for &(alpha, beta) in &[(1.0f32, 0.0f32), (0.5, 1.0)] {
                let g = Gemm {
                    m,
                    n,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    alpha,
                    beta,
                    a_offset: 3,
                    b_offset: 5,
                    c_offset: 2,
                };
                let a = data.uniform(3 + m * k, -1.0, 1.0);
                let bm = data.uniform(5 + k * n, -1.0, 1.0);
                let c = data.uniform(2 + m * n, -1.0, 1.0);
                let (ab, bb, mut cb) = (up(b, &a), up(b, &bm), up(b, &c));
                let (ar, br, mut cr) = (up(&r, &a), up(&r, &bm), up(&r, &c));
                b.gemm(g, &ab, &bb, &mut cb);
                r.gemm(g, &ar, &br, &mut cr);
                let case = format!("gemm m={m} n={n} k={k} ta={ta} tb={tb} beta={beta}");
                compare(&case, &dl(b, &cb, 2 + m * n), &dl(&r, &cr, 2 + m * n), tol)?;
            }
        }
    }
    Ok(())
}

fn shapes() -> Vec<JetShape> {
    let mut out = Vec::new();
    for order in 0..=8 {
        for &(n_dirs, n_points, width) in &[(1, 1, 1), (3, 2, 7), (2, 3, 33), (4, 2, 130)] {
            for collapsed in [false, true] {
                if collapsed && order == 0 {
                    continue;
                }
                out.push(JetShape {
                    order,
                    n_dirs,
                    n_points,
                    width,
                    collapsed,
                });
            }
        }
    }
    out
}

/// Bias addition and its gradient.
///
/// # Errors
/// The first mismatch.
pub fn check_bias<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let mut data = Data::new(3);
    for shape in shapes().into_iter().filter(|s| s.order <= 2) {
        let params = data.uniform(shape.width + 4, -1.0, 1.0);
        let z = data.uniform(shape.len(), -1.0, 1.0);
        let (pb, mut zb) = (up(b, &params), up(b, &z));
        let (pr, mut zr) = (up(&r, &params), up(&r, &z));
        b.add_bias(shape, &pb, 4, &mut zb);
        r.add_bias(shape, &pr, 4, &mut zr);
        compare(
            &format!("add_bias {shape:?}"),
            &dl(b, &zb, shape.len()),
            &dl(&r, &zr, shape.len()),
            tol,
        )?;
        let grad = data.uniform(shape.width + 4, -1.0, 1.0);
        let (mut gb, mut gr) = (up(b, &grad), up(&r, &grad));
        b.bias_grad(shape, &zb, &mut gb, 4);
        r.bias_grad(shape, &zr, &mut gr, 4);
        compare(
            &format!("bias_grad {shape:?}"),
            &dl(b, &gb, grad.len()),
            &dl(&r, &gr, grad.len()),
            tol,
        )?;
    }
    Ok(())
}

/// Jet activations forward and adjoint, orders 0..=8, both layouts.
///
/// # Errors
/// The first mismatch.
pub fn check_activations<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let mut data = Data::new(4);
    for act in [Activation::Tanh, Activation::Sin] {
        for shape in shapes() {
            let len = shape.len();
            // Higher coefficients shrink like a Taylor series of a smooth curve would.
            let z = data.uniform(len, -1.0, 1.0);
            let h_bar = data.uniform(len, -1.0, 1.0);
            let (zb, hbb) = (up(b, &z), up(b, &h_bar));
            let (zr, hbr) = (up(&r, &z), up(&r, &h_bar));
            let (mut hb, mut hr) = (up(b, &vec![0.0; len]), up(&r, &vec![0.0; len]));
            b.jet_activation_forward(act, shape, &zb, &mut hb);
            r.jet_activation_forward(act, shape, &zr, &mut hr);
            let case = format!("activation forward {act:?} {shape:?}");
            compare(&case, &dl(b, &hb, len), &dl(&r, &hr, len), tol)?;
            let (mut zbb, mut zbr) = (up(b, &vec![0.0; len]), up(&r, &vec![0.0; len]));
            b.jet_activation_backward(act, shape, &zb, &hbb, &mut zbb);
            r.jet_activation_backward(act, shape, &zr, &hbr, &mut zbr);
            let case = format!("activation backward {act:?} {shape:?}");
            compare(&case, &dl(b, &zbb, len), &dl(&r, &zbr, len), tol)?;
        }
    }
    Ok(())
}

/// A case's probes uploaded to one backend.
struct ProbeBufs<B: Backend> {
    kind: ProbeKind,
    indices: B::Idx,
    dense: B::Buf,
}

impl<B: Backend> ProbeBufs<B> {
    fn upload(b: &B, kind: ProbeKind, (idx, dense): (&[u32], &[f32])) -> Self {
        Self {
            kind,
            indices: up_idx(b, idx),
            dense: up(b, dense),
        }
    }

    fn probes(&self) -> Probes<'_, B> {
        Probes {
            kind: self.kind,
            indices: &self.indices,
            dense: &self.dense,
        }
    }
}

/// The probes of a case: `V` distinct indices, or `V × d` dense tangents.
fn probe_data(data: &mut Data, kind: ProbeKind, n_dirs: usize, dim: usize) -> (Vec<u32>, Vec<f32>) {
    match kind {
        ProbeKind::OneHot => {
            let mut idx = vec![0u32; n_dirs];
            rng::sample_index_set(9, data.counter, dim, n_dirs, &mut idx);
            data.counter += 1;
            (idx, vec![0.0])
        }
        ProbeKind::Dense => (vec![0], data.uniform(n_dirs * dim, -1.0, 1.0)),
    }
}

/// The sparse (one-hot) and dense input layer, forward and weight adjoint.
///
/// # Errors
/// The first mismatch.
pub fn check_input_layer<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let mut data = Data::new(5);
    for kind in [ProbeKind::OneHot, ProbeKind::Dense] {
        for &dim in &[1usize, 5, 300] {
            for order in 1..=3 {
                for collapsed in [false, true] {
                    for &(n_dirs, n_points, width) in &[(1, 1, 3), (3, 4, 33), (5, 7, 16)] {
                        let n_dirs = n_dirs.min(dim);
                        let shape = JetShape {
                            order,
                            n_dirs,
                            n_points,
                            width,
                            collapsed,
                        };
                        let (idx, dense) = probe_data(&mut data, kind, n_dirs, dim);
                        let points = data.uniform(n_points * dim, -1.0, 1.0);
                        let params = data.uniform(2 + width * (dim + 1), -1.0, 1.0);
                        let (xb, pb) = (up(b, &points), up(b, &params));
                        let (xr, pr) = (up(&r, &points), up(&r, &params));
                        let bufs_b = ProbeBufs::upload(b, kind, (&idx, &dense));
                        let bufs_r = ProbeBufs::upload(&r, kind, (&idx, &dense));
                        let (probes_b, probes_r) = (bufs_b.probes(), bufs_r.probes());
                        let garbage = data.uniform(shape.len(), -9.0, 9.0);
                        let (mut zb, mut zr) = (up(b, &garbage), up(&r, &garbage));
                        b.input_layer_forward(shape, dim, &xb, &probes_b, &pb, 2, &mut zb);
                        r.input_layer_forward(shape, dim, &xr, &probes_r, &pr, 2, &mut zr);
                        let case = format!("input layer forward {kind:?} d={dim} {shape:?}");
                        compare(
                            &case,
                            &dl(b, &zb, shape.len()),
                            &dl(&r, &zr, shape.len()),
                            tol,
                        )?;
                        let z_bar = data.uniform(shape.len(), -1.0, 1.0);
                        let grad = data.uniform(params.len(), -1.0, 1.0);
                        let (zbb, zbr) = (up(b, &z_bar), up(&r, &z_bar));
                        let (mut gb, mut gr) = (up(b, &grad), up(&r, &grad));
                        b.input_layer_backward(shape, dim, &xb, &probes_b, &zbb, &mut gb, 2);
                        r.input_layer_backward(shape, dim, &xr, &probes_r, &zbr, &mut gr, 2);
                        let case = format!("input layer backward {kind:?} d={dim} {shape:?}");
                        compare(
                            &case,
                            &dl(b, &gb, grad.len()),
                            &dl(&r, &gr, grad.len()),
                            tol,
                        )?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The PINN residual, loss terms and output cotangent.
///
/// # Errors
/// The first mismatch.
pub fn check_residual<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let mut data = Data::new(6);
    for kind in [ProbeKind::OneHot, ProbeKind::Dense] {
        for nonlinearity in [
            Nonlinearity::Zero,
            Nonlinearity::AllenCahn,
            Nonlinearity::SineGordon,
        ] {
            for order in [1, 2, 4] {
                for collapsed in [false, true] {
                    for hard in [true, false] {
                        for &(n_dirs, n_points, dim) in &[(1, 1, 2), (3, 5, 9), (16, 33, 40)] {
                            let shape = JetShape {
                                order,
                                n_dirs,
                                n_points,
                                width: 1,
                                collapsed,
                            };
                            let (idx, dense) = probe_data(&mut data, kind, n_dirs, dim);
                            let points = data.uniform(n_points * dim, -0.3, 0.3);
                            let m = data.uniform(shape.len(), -1.0, 1.0);
                            let g = data.uniform(n_points, -1.0, 1.0);
                            let p = ResidualParams {
                                shape,
                                dim,
                                top_weight: dim as f32 / n_dirs as f32,
                                nonlinearity,
                                hard_ball_boundary: hard,
                            };
                            let (xb, mb, gb) = (up(b, &points), up(b, &m), up(b, &g));
                            let (xr, mr, gr) = (up(&r, &points), up(&r, &m), up(&r, &g));
                            let bufs_b = ProbeBufs::upload(b, kind, (&idx, &dense));
                            let bufs_r = ProbeBufs::upload(&r, kind, (&idx, &dense));
                            let (probes_b, probes_r) = (bufs_b.probes(), bufs_r.probes());
                            let (mut lb, mut lr) =
                                (up(b, &vec![0.0; n_points]), up(&r, &vec![0.0; n_points]));
                            let (mut mbb, mut mbr) = (
                                up(b, &vec![0.0; shape.len()]),
                                up(&r, &vec![0.0; shape.len()]),
                            );
                            b.pinn_residual(p, &mb, &xb, &probes_b, &gb, &mut lb, &mut mbb);
                            r.pinn_residual(p, &mr, &xr, &probes_r, &gr, &mut lr, &mut mbr);
                            let case = format!(
                                "residual loss {kind:?} {nonlinearity:?} hard={hard} d={dim} {shape:?}"
                            );
                            compare(&case, &dl(b, &lb, n_points), &dl(&r, &lr, n_points), tol)?;
                            let case = format!(
                                "residual cotangent {kind:?} {nonlinearity:?} hard={hard} d={dim} {shape:?}"
                            );
                            compare(
                                &case,
                                &dl(b, &mbb, shape.len()),
                                &dl(&r, &mbr, shape.len()),
                                tol,
                            )?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Closed-form forcing and exact values of the PDE suite.
///
/// # Errors
/// The first mismatch.
pub fn check_forcing<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    for solution in [SolutionKind::TwoBody, SolutionKind::ThreeBody] {
        for nonlinearity in [
            Nonlinearity::Zero,
            Nonlinearity::AllenCahn,
            Nonlinearity::SineGordon,
        ] {
            for &(n, dim) in &[(1, 3), (7, 10), (33, 257)] {
                let coeffs: Vec<f32> = rng::solution_coeffs(dim as u64, dim)
                    .iter()
                    .map(|&c| c as f32)
                    .collect();
                let mut points = vec![0.0; n * dim];
                rng::sample_ball_points(dim as u64, 2, 0, n, dim, &mut points);
                let (cb, xb) = (up(b, &coeffs), up(b, &points));
                let (cr, xr) = (up(&r, &coeffs), up(&r, &points));
                let (mut gb, mut eb) = (up(b, &vec![0.0; n]), up(b, &vec![0.0; n]));
                let (mut gr, mut er) = (up(&r, &vec![0.0; n]), up(&r, &vec![0.0; n]));
                b.forcing(solution, nonlinearity, n, dim, &cb, &xb, &mut gb, &mut eb);
                r.forcing(solution, nonlinearity, n, dim, &cr, &xr, &mut gr, &mut er);
                let case = format!("forcing {solution:?} {nonlinearity:?} n={n} d={dim}");
                compare(&case, &dl(b, &gb, n), &dl(&r, &gr, n), tol)?;
                let case = format!("exact {solution:?} n={n} d={dim}");
                compare(&case, &dl(b, &eb, n), &dl(&r, &er, n), tol)?;
            }
        }
    }
    Ok(())
}

/// Counter-based sampling: identical draws to the reference (to rounding for normals).
///
/// # Errors
/// The first mismatch.
pub fn check_sampling<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let cases = [
        Sampling::BallPoints {
            first: 0,
            n: 5,
            d: 7,
            stream: 1,
        },
        Sampling::BallPoints {
            first: 11,
            n: 3,
            d: 130,
            stream: 2,
        },
        Sampling::Rademacher { count: 1001 },
        Sampling::Gaussian { count: 999 },
    ];
    for what in cases {
        let len = match what {
            Sampling::BallPoints { n, d, .. } => n * d,
            Sampling::Rademacher { count } | Sampling::Gaussian { count } => count,
        };
        for step in [0u32, 17] {
            let (mut ob, mut or) = (up(b, &vec![0.0; len]), up(&r, &vec![0.0; len]));
            b.sample(what, 42, step, &mut ob);
            r.sample(what, 42, step, &mut or);
            compare(
                &format!("sample {what:?} step {step}"),
                &dl(b, &ob, len),
                &dl(&r, &or, len),
                tol,
            )?;
        }
    }
    Ok(())
}

/// The fused Adam update (and that it zeroes the gradient).
///
/// # Errors
/// The first mismatch.
pub fn check_adam<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let mut data = Data::new(8);
    for &len in &[1usize, 17, 1000, 4099] {
        let p = data.uniform(len, -1.0, 1.0);
        let m = data.uniform(len, -0.1, 0.1);
        let v = data.uniform(len, 0.0, 0.01);
        let (mut pb, mut mb, mut vb) = (up(b, &p), up(b, &m), up(b, &v));
        let (mut pr, mut mr, mut vr) = (up(&r, &p), up(&r, &m), up(&r, &v));
        for t in 1..=3 {
            let g = data.uniform(len, -1.0, 1.0);
            let (mut gb, mut gr) = (up(b, &g), up(&r, &g));
            let step = AdamStep {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t,
            };
            b.adam(step, &mut pb, &mut gb, &mut mb, &mut vb);
            r.adam(step, &mut pr, &mut gr, &mut mr, &mut vr);
            compare(
                &format!("adam grad zeroed len {len}"),
                &dl(b, &gb, len),
                &vec![0.0; len],
                Tolerance::EXACT,
            )?;
        }
        compare(
            &format!("adam params len {len}"),
            &dl(b, &pb, len),
            &dl(&r, &pr, len),
            tol,
        )?;
        compare(
            &format!("adam m len {len}"),
            &dl(b, &mb, len),
            &dl(&r, &mr, len),
            tol,
        )?;
        compare(
            &format!("adam v len {len}"),
            &dl(b, &vb, len),
            &dl(&r, &vr, len),
            tol,
        )?;
    }
    Ok(())
}

/// Every check in turn.
///
/// # Errors
/// The first mismatch of any check.
pub fn run_all<B: Backend>(b: &B, tol: Tolerance) -> CheckResult {
    check_transfers(b)?;
    check_gemm(b, tol)?;
    check_bias(b, tol)?;
    check_activations(b, tol)?;
    check_input_layer(b, tol)?;
    check_residual(b, tol)?;
    check_forcing(b, tol)?;
    check_sampling(b, tol)?;
    check_adam(b, tol)
}

/// Expands to one `#[test]` per conformance check for a backend.
///
/// `$name` names the generated module, `$backend` is an expression building the backend (it may
/// `return` early to skip, printing why), `$tol` a [`Tolerance`].
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $backend:expr, $tol:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as c;

            fn report(r: c::CheckResult) {
                if let Err(m) = r {
                    panic!("conformance failure: {m}");
                }
            }

            #[test]
            fn transfers() {
                let b = $backend;
                report(c::check_transfers(&b));
            }

            $crate::conformance_tests!(@checks $backend, $tol;
                gemm => check_gemm,
                bias => check_bias,
                activations => check_activations,
                input_layer => check_input_layer,
                residual => check_residual,
                forcing => check_forcing,
                sampling => check_sampling,
                adam => check_adam);
        }
    };
    // One `#[test]` per tolerance-taking check (an implementation detail of the arm above).
    (@checks $backend:expr, $tol:expr; $($test:ident => $check:ident),*) => {
        $(
            #[test]
            fn $test() {
                let b = $backend;
                report(c::$check(&b, $tol));
            }
        )*
    };
}
