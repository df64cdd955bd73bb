//! The backend conformance suite: every primitive of [`Backend`], [`crate::backend::ProgramBackend`]
//! and [`GenericStep`] checked against the f64 [`ReferenceBackend`] on random inputs, across orders,
//! layouts and sizes that cross workgroup and SIMD boundaries.
//!
//! A backend author runs it with the [`conformance_tests!`](crate::conformance_tests) macro, which
//! expands to one `#[test]` per group of primitives (compiled programs included):
//!
//! ```text
//! stde_core::conformance_tests!(my_backend, MyBackend::new(), stde_core::conformance::Tolerance::F32);
//! ```
//!
//! Each check returns a [`Mismatch`] naming the case, the index, the value and the expectation.

use crate::backend::reference::ReferenceBackend;
use crate::backend::{AdamStep, Backend, Gemm, GenericStep, Sampling};
use crate::batch::JetShape;
pub use crate::generic_conformance::{
    check_box_points_exact, check_input_layer_slots, check_readout, check_sample_points,
    check_shared_block,
};
use crate::mlp::Activation;
pub use crate::program::conformance::check_programs;
use crate::rng::Philox;

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
pub fn run_all<B: GenericStep>(b: &B, tol: Tolerance) -> CheckResult {
    check_transfers(b)?;
    check_gemm(b, tol)?;
    check_bias(b, tol)?;
    check_activations(b, tol)?;
    check_sampling(b, tol)?;
    check_adam(b, tol)?;
    check_programs(b, tol)?;
    check_input_layer_slots(b, tol)?;
    check_shared_block(b, tol)?;
    check_readout(b, tol)?;
    check_sample_points(b, tol)?;
    check_box_points_exact(b)
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

            #[test]
            fn box_points_exact() {
                let b = $backend;
                report(c::check_box_points_exact(&b));
            }

            $crate::conformance_tests!(@checks $backend, $tol;
                gemm => check_gemm,
                bias => check_bias,
                activations => check_activations,
                sampling => check_sampling,
                adam => check_adam,
                programs => check_programs,
                input_layer_slots => check_input_layer_slots,
                shared_block => check_shared_block,
                readout => check_readout,
                sample_points => check_sample_points);
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
