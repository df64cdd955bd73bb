//! `MinimalBackend`: a complete STDE backend in plain, single-threaded f32 Rust, kept small on
//! purpose. It is the worked example for anyone porting STDE training to a new device: it passes
//! the conformance suite ([`stde_core::conformance_tests!`]) and trains the shipped problems with the
//! same [`stde_core::trainer::Trainer`] as every other backend (see `tests/tests/minimal_backend.rs`).
//!
//! What is written here, as a device port would write it as kernels: buffers and transfers, the
//! matrix product, the bias and its gradient, the jet rules of `tanh` and `sin` at any order with
//! their adjoints, the counter-based draws and Adam. What is reused from `stde-core`, because a
//! backend whose buffers are host vectors may: the program interpreter
//! ([`stde_core::program::interp`]) for compiled programs, the tangent rows of the input layer, the
//! shared block map of a weight-shared first block and the ansatz-and-readout
//! ([`stde_core::backend::host_step`]), and the generator's reference functions
//! ([`stde_core::rng`]), which a GPU port would transcribe instead.
//!
//! Nothing here knows a problem: equations, exact solutions and operators reach the backend only as
//! compiled programs, probe tangents and readout weights.

use std::future::Future;

use stde_core::backend::host_step::{self, HostSlots};
use stde_core::backend::{
    AdamStep, Backend, BackendError, Gemm, GenericStep, PointSampling, ProgramBackend,
    ReadoutShape, Sampling, SharedBlocks, SlotProbes,
};
use stde_core::batch::JetShape;
use stde_core::mlp::Activation;
use stde_core::program::interp::{self, HostProbes};
use stde_core::program::Program;
use stde_core::rng;

/// The minimal f32 host backend (no state: every buffer is a `Vec`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MinimalBackend;

/// A zeroed vector, or [`BackendError::OutOfMemory`] instead of the abort a plain `vec!` would give,
/// so that the trainer can tell the user to shrink the batch.
fn zeroed<T: Clone + Default>(len: usize, what: &'static str) -> Result<Vec<T>, BackendError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| BackendError::OutOfMemory {
            requested_bytes: (len * std::mem::size_of::<T>()) as u64,
            what,
        })?;
    v.resize(len, T::default());
    Ok(v)
}

/// The Taylor series of `σ(a(t))` into `b` and of `σ'(a(t))` into `d`, coefficients `0..=K`, for
/// one input series `a`. Both rules integrate `b' = σ'(a)·a'` one coefficient at a time,
/// `k·b_k = Σ_{j=1..k} j·a_j·d_{k−j}`, which needs `d` only up to `k − 1`: so each step first
/// finishes `b_k`, then the next coefficient of `σ'`. O(K²) per series and exact at any order.
fn jet_series(act: Activation, a: &[f32], b: &mut [f32], d: &mut [f32]) {
    let chain = |k: usize, d: &[f32]| -> f32 {
        (1..=k).map(|j| j as f32 * a[j] * d[k - j]).sum::<f32>() / k as f32
    };
    match act {
        Activation::Tanh => {
            // tanh' = 1 − tanh², a Cauchy product of the part of `b` already known.
            b[0] = a[0].tanh();
            d[0] = 1.0 - b[0] * b[0];
            for k in 1..a.len() {
                b[k] = chain(k, d);
                d[k] = -(0..=k).map(|i| b[i] * b[k - i]).sum::<f32>();
            }
        }
        Activation::Sin => {
            // sin' = cos and cos' = −sin: the two series grow together, `d` holding cos.
            b[0] = a[0].sin();
            d[0] = a[0].cos();
            for k in 1..a.len() {
                let minus_sin: f32 = (1..=k).map(|j| j as f32 * a[j] * b[k - j]).sum();
                b[k] = chain(k, d);
                d[k] = -minus_sin / k as f32;
            }
        }
    }
}

/// `σ''(a_0)` from `σ(a_0)` and `σ'(a_0)`: the collapsed adjoint needs it for the primal.
fn second_derivative(act: Activation, b0: f32, d0: f32) -> f32 {
    match act {
        Activation::Tanh => -2.0 * b0 * d0,
        Activation::Sin => -b0,
    }
}

/// Reads the input series of direction `s` at (point `n`, feature `f`) into `a`. A collapsed batch
/// stores only `Σ_s a_K^s`, and every jet rule is linear in its top coefficient, so each direction
/// runs with its top zeroed and the linear top term is added once by the caller.
fn load_series(shape: JetShape, z: &[f32], n: usize, f: usize, s: usize, a: &mut [f32]) {
    for (k, ak) in a.iter_mut().enumerate() {
        *ak = if shape.collapsed && k == shape.order {
            0.0
        } else {
            z[shape.index(shape.block(k, s), n, f)]
        };
    }
}

impl Backend for MinimalBackend {
    type Buf = Vec<f32>;
    type Idx = Vec<u32>;

    fn describe(&self) -> String {
        "minimal (f32, host, one thread)".into()
    }

    fn alloc(&self, len: usize, what: &'static str) -> Result<Vec<f32>, BackendError> {
        zeroed(len, what)
    }

    fn alloc_idx(&self, len: usize, what: &'static str) -> Result<Vec<u32>, BackendError> {
        zeroed(len, what)
    }

    fn upload(&self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) {
        dst[offset..offset + src.len()].copy_from_slice(src);
    }

    fn upload_idx(&self, dst: &mut Vec<u32>, src: &[u32]) {
        dst[..src.len()].copy_from_slice(src);
    }

    fn download(
        &self,
        src: &Vec<f32>,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>> {
        // Every method above ran to completion when it returned, so the data are ready now; a
        // device backend would await its queue here instead.
        std::future::ready(Ok(src[offset..offset + len].to_vec()))
    }

    fn gemm(&self, g: Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) {
        // op(A)[i][p] and op(B)[p][j], reading a stored transpose in place.
        let op_a = |i: usize, p: usize| {
            if g.trans_a {
                a[g.a_offset + p * g.m + i]
            } else {
                a[g.a_offset + i * g.k + p]
            }
        };
        let op_b = |p: usize, j: usize| {
            if g.trans_b {
                b[g.b_offset + j * g.k + p]
            } else {
                b[g.b_offset + p * g.n + j]
            }
        };
        for i in 0..g.m {
            for j in 0..g.n {
                let dot: f32 = (0..g.k).map(|p| op_a(i, p) * op_b(p, j)).sum();
                let ci = g.c_offset + i * g.n + j;
                // β = 0 overwrites without reading: C may hold garbage, and 0·NaN is NaN.
                c[ci] = if g.beta == 0.0 {
                    g.alpha * dot
                } else {
                    g.alpha * dot + g.beta * c[ci]
                };
            }
        }
    }

    fn add_bias(&self, shape: JetShape, params: &Vec<f32>, bias_offset: usize, z: &mut Vec<f32>) {
        // Only the primal rows (block 0, the first `n_points` rows): a constant has no higher
        // Taylor coefficients.
        let bias = &params[bias_offset..bias_offset + shape.width];
        for row in z[..shape.n_points * shape.width].chunks_exact_mut(shape.width) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }

    fn bias_grad(
        &self,
        shape: JetShape,
        z_bar: &Vec<f32>,
        grad: &mut Vec<f32>,
        bias_offset: usize,
    ) {
        let grad = &mut grad[bias_offset..bias_offset + shape.width];
        for row in z_bar[..shape.n_points * shape.width].chunks_exact(shape.width) {
            grad.iter_mut().zip(row).for_each(|(g, v)| *g += v);
        }
    }

    fn jet_activation_forward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Vec<f32>,
        h: &mut Vec<f32>,
    ) {
        let big_k = shape.order;
        let mut a = vec![0.0; big_k + 1];
        let (mut b, mut d) = (vec![0.0; big_k + 1], vec![0.0; big_k + 1]);
        for n in 0..shape.n_points {
            for f in 0..shape.width {
                let at = |k: usize, s: usize| shape.index(shape.block(k, s), n, f);
                let mut top_sum = 0.0;
                for s in 0..shape.n_dirs {
                    load_series(shape, z, n, f, s, &mut a);
                    jet_series(act, &a, &mut b, &mut d);
                    // The primal is shared by all directions; every direction computes the same.
                    h[at(0, 0)] = b[0];
                    for k in 1..=big_k {
                        if shape.collapsed && k == big_k {
                            top_sum += b[k];
                        } else {
                            h[at(k, s)] = b[k];
                        }
                    }
                }
                if shape.collapsed {
                    // b_K = σ'(a_0)·a_K + (the rest, summed above): the linear part, once, on the sum.
                    h[at(big_k, 0)] = top_sum + d[0] * z[at(big_k, 0)];
                }
            }
        }
    }

    fn jet_activation_backward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Vec<f32>,
        h_bar: &Vec<f32>,
        z_bar: &mut Vec<f32>,
    ) {
        let big_k = shape.order;
        let mut a = vec![0.0; big_k + 1];
        let (mut b, mut d) = (vec![0.0; big_k + 1], vec![0.0; big_k + 1]);
        for n in 0..shape.n_points {
            for f in 0..shape.width {
                let at = |k: usize, s: usize| shape.index(shape.block(k, s), n, f);
                let mut primal_bar = 0.0;
                for s in 0..shape.n_dirs {
                    load_series(shape, z, n, f, s, &mut a);
                    jet_series(act, &a, &mut b, &mut d);
                    if s == 0 {
                        primal_bar += d[0] * h_bar[at(0, 0)];
                    }
                    // Moving a_j moves b(t) by t^j·σ'(a(t)), so ā_j = Σ_{k≥j} b̄_k·d_{k−j}: the same
                    // `d` the forward rule built, and no second-order rule. The primal cotangent is
                    // shared, so it was counted once above and b̄_0 is left out here.
                    let b_bar = |k: usize| h_bar[at(k, s)];
                    for j in 0..=big_k {
                        let a_bar: f32 = (j.max(1)..=big_k).map(|k| b_bar(k) * d[k - j]).sum();
                        if j == 0 {
                            primal_bar += a_bar;
                        } else if !(shape.collapsed && j == big_k) {
                            z_bar[at(j, s)] = a_bar;
                        }
                    }
                }
                if shape.collapsed {
                    // The summed top enters only through σ'(a_0)·a_K: its cotangent is σ'(a_0)·b̄_K,
                    // and σ'(a_0) itself depends on a_0 through σ''.
                    let (top, top_bar) = (z[at(big_k, 0)], h_bar[at(big_k, 0)]);
                    z_bar[at(big_k, 0)] = d[0] * top_bar;
                    primal_bar += top_bar * second_derivative(act, b[0], d[0]) * top;
                }
                z_bar[at(0, 0)] = primal_bar;
            }
        }
    }

    fn sample(&self, what: Sampling, seed: u64, step: u32, out: &mut Vec<f32>) {
        // Draws must equal every other backend's, which the counter-based generator makes a pure
        // function of (seed, stream, step, index): call its reference functions.
        match what {
            Sampling::BallPoints {
                first,
                n,
                d,
                stream,
            } => rng::sample_ball_points_from(seed, stream, step, first, n, d, &mut out[..n * d]),
            Sampling::Rademacher { count } => rng::Philox::new(seed).fill_rademacher_f32(
                rng::streams::DENSE_TANGENTS,
                step,
                &mut out[..count],
            ),
            Sampling::Gaussian { count } => rng::Philox::new(seed).fill_normal_f32(
                rng::streams::DENSE_TANGENTS,
                step,
                &mut out[..count],
            ),
        }
    }

    fn adam(
        &self,
        s: AdamStep,
        params: &mut Vec<f32>,
        grad: &mut Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
    ) {
        // Bias corrections in f64: β₂^t with β₂ = 0.999 is where f32 powers lose digits first.
        let c1 = 1.0 - f64::from(s.beta1).powf(f64::from(s.t));
        let c2 = 1.0 - f64::from(s.beta2).powf(f64::from(s.t));
        let (lr_t, inv_sqrt_c2) = ((f64::from(s.lr) / c1) as f32, (1.0 / c2.sqrt()) as f32);
        for i in 0..params.len() {
            let g = grad[i];
            m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * g;
            v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * g * g;
            // m̂ / (√v̂ + ε) with m̂ = m/c1 and √v̂ = √v/√c2, both corrections folded into scalars.
            params[i] -= lr_t * m[i] / (v[i].sqrt() * inv_sqrt_c2 + s.eps);
            // Fused: the trainer accumulates the next step's gradient into a zeroed buffer.
            grad[i] = 0.0;
        }
    }
}

/// An f32 buffer as the f64 host vector that [`interp`] reads.
fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Copies the interpreter's f64 results into the front of an f32 buffer.
fn narrow_into(values: &[f64], out: &mut [f32]) {
    out[..values.len()]
        .iter_mut()
        .zip(values)
        .for_each(|(o, v)| *o = *v as f32);
}

impl ProgramBackend for MinimalBackend {
    // Core's interpreter defines what a program means; a host backend can simply run it. A device
    // backend would generate kernels here instead (see `stde-wgpu` and `stde-cuda`).
    type Compiled = Program;

    fn compile_program(&self, program: &Program) -> Result<Program, BackendError> {
        Ok(program.clone())
    }

    fn run_program(
        &self,
        program: &Program,
        n_points: usize,
        points: &Vec<f32>,
        features: &Vec<f32>,
        params: &Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let (points, features, params) = (widen(points), widen(features), widen(params));
        let values = interp::run_primal(program, n_points, &points, &features, &params);
        narrow_into(&values, out);
    }

    fn run_program_series(
        &self,
        program: &Program,
        shape: JetShape,
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let host = HostProbes {
            kind: probes.kind,
            slot_index: probes.slot_index.clone(),
            slot_coeff: widen(probes.slot_coeff),
            dense: widen(probes.dense),
        };
        let values = interp::run_series(program, shape, &widen(points), &host, &widen(params));
        narrow_into(&values, out);
    }
}

impl GenericStep for MinimalBackend {
    fn input_layer_forward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f32>,
        weight_offset: usize,
        z: &mut Vec<f32>,
    ) {
        // Primal rows: x·W1ᵀ + b1. The tangent rows W1·v_k^s are the same for every point (the
        // probes are shared), which core's host helper computes once and broadcasts.
        let (np, width) = (shape.n_points, shape.width);
        let w1 = &params[weight_offset..weight_offset + width * stride];
        let b1 = &params[weight_offset + width * stride..weight_offset + width * (stride + 1)];
        for n in 0..np {
            let x = &points[n * stride..(n + 1) * stride];
            for h in 0..width {
                let w = &w1[h * stride..(h + 1) * stride];
                z[n * width + h] = w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + b1[h];
            }
        }
        let slots = HostSlots::of(probes);
        host_step::input_tangent_blocks(shape, stride, &slots, params, weight_offset, z);
    }

    fn input_layer_backward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        z_bar: &Vec<f32>,
        grad: &mut Vec<f32>,
        weight_offset: usize,
    ) {
        // The primal rows give the usual outer-product gradient; the tangent rows scatter into the
        // probed columns of W1 (core's helper).
        let (np, width) = (shape.n_points, shape.width);
        let bias = weight_offset + width * stride;
        for n in 0..np {
            let x = &points[n * stride..(n + 1) * stride];
            for h in 0..width {
                let zb = z_bar[n * width + h];
                grad[bias + h] += zb;
                let row = &mut grad[weight_offset + h * stride..weight_offset + (h + 1) * stride];
                row.iter_mut().zip(x).for_each(|(g, xj)| *g += zb * xj);
            }
        }
        let slots = HostSlots::of(probes);
        host_step::input_tangent_grad(shape, stride, &slots, z_bar, grad, weight_offset);
    }

    fn shared_block_forward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        host_step::shared_block_forward(map, shape, points, &HostSlots::of(probes), params, out);
    }

    fn shared_block_backward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        y_bar: &Vec<f32>,
        grad: &mut Vec<f32>,
    ) {
        host_step::shared_block_backward(map, shape, points, &HostSlots::of(probes), y_bar, grad);
    }

    fn readout_forward(
        &self,
        r: ReadoutShape,
        m: &Vec<f32>,
        ansatz: &Vec<f32>,
        weights: &Vec<f32>,
        features: &mut Vec<f32>,
    ) {
        host_step::readout_forward(r, m, ansatz, weights, features);
    }

    fn readout_backward(
        &self,
        r: ReadoutShape,
        ansatz: &Vec<f32>,
        weights: &Vec<f32>,
        feature_bar: &Vec<f32>,
        m_bar: &mut Vec<f32>,
    ) {
        host_step::readout_backward(r, ansatz, weights, feature_bar, m_bar);
    }

    fn sample_points(&self, s: PointSampling, seed: u64, step: u32, out: &mut Vec<f32>) {
        let len = s.n * s.stride();
        rng::sample_points_from(
            seed,
            s.sampler,
            s.time,
            s.stream,
            step,
            s.first,
            s.n,
            s.d,
            &mut out[..len],
        );
    }
}
