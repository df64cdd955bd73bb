//! `ReferenceBackend`: the [`Backend`] trait in f64 on the host, written with the obvious loops of
//! [`crate::reference`]. Slow on purpose; it is the oracle the conformance suite compares every
//! backend with.

use std::future::Future;

use super::host_step::{self, HostSlots};
use super::{
    AdamStep, Backend, BackendError, Gemm, GenericStep, PointSampling, ProgramBackend,
    ReadoutShape, Sampling, SharedBlocks, SlotProbes,
};
use crate::batch::{JetBatchRef, JetShape};
use crate::mlp::Activation;
use crate::program::interp::{self, HostProbes};
use crate::program::Program;
use crate::reference;
use crate::rng;

/// The f64 host backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReferenceBackend;

/// `op(X)[r][c]` of a row-major matrix stored `rows × cols` (or transposed).
fn at(
    buf: &[f64],
    off: usize,
    trans: bool,
    ld_rows: usize,
    ld_cols: usize,
    r: usize,
    c: usize,
) -> f64 {
    if trans {
        buf[off + c * ld_rows + r]
    } else {
        buf[off + r * ld_cols + c]
    }
}

impl Backend for ReferenceBackend {
    type Buf = Vec<f64>;
    type Idx = Vec<u32>;

    fn describe(&self) -> String {
        "reference (f64, host)".into()
    }

    fn alloc(&self, len: usize, _what: &'static str) -> Result<Self::Buf, BackendError> {
        Ok(vec![0.0; len])
    }

    fn alloc_idx(&self, len: usize, _what: &'static str) -> Result<Self::Idx, BackendError> {
        Ok(vec![0; len])
    }

    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[f32]) {
        for (d, s) in dst[offset..offset + src.len()].iter_mut().zip(src) {
            *d = f64::from(*s);
        }
    }

    fn upload_idx(&self, dst: &mut Self::Idx, src: &[u32]) {
        dst[..src.len()].copy_from_slice(src);
    }

    fn download(
        &self,
        src: &Self::Buf,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>> {
        let out: Vec<f32> = src[offset..offset + len]
            .iter()
            .map(|&v| v as f32)
            .collect();
        std::future::ready(Ok(out))
    }

    fn gemm(&self, g: Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut acc = 0.0;
                for p in 0..g.k {
                    acc += at(a, g.a_offset, g.trans_a, g.m, g.k, i, p)
                        * at(b, g.b_offset, g.trans_b, g.k, g.n, p, j);
                }
                let ci = g.c_offset + i * g.n + j;
                let old = if g.beta == 0.0 {
                    0.0
                } else {
                    f64::from(g.beta) * c[ci]
                };
                c[ci] = f64::from(g.alpha) * acc + old;
            }
        }
    }

    fn add_bias(&self, shape: JetShape, params: &Self::Buf, bias_offset: usize, z: &mut Self::Buf) {
        for n in 0..shape.n_points {
            for h in 0..shape.width {
                z[n * shape.width + h] += params[bias_offset + h];
            }
        }
    }

    fn bias_grad(
        &self,
        shape: JetShape,
        z_bar: &Self::Buf,
        grad: &mut Self::Buf,
        bias_offset: usize,
    ) {
        for n in 0..shape.n_points {
            for h in 0..shape.width {
                grad[bias_offset + h] += z_bar[n * shape.width + h];
            }
        }
    }

    fn jet_activation_forward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h: &mut Self::Buf,
    ) {
        let out = reference::unary_forward(act.unary(), JetBatchRef::new(shape, &z[..shape.len()]));
        h[..shape.len()].copy_from_slice(out.as_slice());
    }

    fn jet_activation_backward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h_bar: &Self::Buf,
        z_bar: &mut Self::Buf,
    ) {
        let out = reference::unary_adjoint(
            act.unary(),
            JetBatchRef::new(shape, &z[..shape.len()]),
            JetBatchRef::new(shape, &h_bar[..shape.len()]),
        );
        z_bar[..shape.len()].copy_from_slice(out.as_slice());
    }

    fn sample(&self, what: Sampling, seed: u64, step: u32, out: &mut Self::Buf) {
        let mut tmp = vec![0.0f32; out.len()];
        let philox = rng::Philox::new(seed);
        match what {
            Sampling::BallPoints {
                first,
                n,
                d,
                stream,
            } => {
                tmp.truncate(n * d);
                rng::sample_ball_points_from(seed, stream, step, first, n, d, &mut tmp);
            }
            Sampling::Rademacher { count } => {
                tmp.truncate(count);
                philox.fill_rademacher_f32(rng::streams::DENSE_TANGENTS, step, &mut tmp);
            }
            Sampling::Gaussian { count } => {
                tmp.truncate(count);
                philox.fill_normal_f32(rng::streams::DENSE_TANGENTS, step, &mut tmp);
            }
        }
        self.upload(out, 0, &tmp);
    }

    fn adam(
        &self,
        s: AdamStep,
        params: &mut Self::Buf,
        grad: &mut Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
    ) {
        let (b1, b2) = (f64::from(s.beta1), f64::from(s.beta2));
        let c1 = 1.0 - b1.powf(f64::from(s.t));
        let c2 = 1.0 - b2.powf(f64::from(s.t));
        for i in 0..params.len() {
            let g = grad[i];
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let mh = m[i] / c1;
            let vh = v[i] / c2;
            params[i] -= f64::from(s.lr) * mh / (vh.sqrt() + f64::from(s.eps));
            grad[i] = 0.0;
        }
    }
}

impl ProgramBackend for ReferenceBackend {
    type Compiled = Program;

    fn compile_program(&self, program: &Program) -> Result<Program, BackendError> {
        Ok(program.clone())
    }

    fn run_program(
        &self,
        program: &Program,
        n_points: usize,
        points: &Vec<f64>,
        features: &Vec<f64>,
        params: &Vec<f64>,
        out: &mut Vec<f64>,
    ) {
        let values = interp::run_primal(program, n_points, points, features, params);
        out[..values.len()].copy_from_slice(&values);
    }

    fn run_program_series(
        &self,
        program: &Program,
        shape: JetShape,
        points: &Vec<f64>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f64>,
        out: &mut Vec<f64>,
    ) {
        let host = HostProbes {
            kind: probes.kind,
            slot_index: probes.slot_index.clone(),
            slot_coeff: probes.slot_coeff.clone(),
            dense: probes.dense.clone(),
        };
        let values = interp::run_series(program, shape, points, &host, params);
        out[..values.len()].copy_from_slice(&values);
    }
}

impl GenericStep for ReferenceBackend {
    fn input_layer_forward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Vec<f64>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f64>,
        weight_offset: usize,
        z: &mut Vec<f64>,
    ) {
        let (np, width) = (shape.n_points, shape.width);
        let bias = weight_offset + width * stride;
        for n in 0..np {
            for h in 0..width {
                let w = &params[weight_offset + h * stride..weight_offset + (h + 1) * stride];
                let x = &points[n * stride..(n + 1) * stride];
                z[n * width + h] =
                    w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + params[bias + h];
            }
        }
        host_step::input_tangent_blocks(
            shape,
            stride,
            &HostSlots::of(probes),
            params,
            weight_offset,
            z,
        );
    }

    fn input_layer_backward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Vec<f64>,
        probes: &SlotProbes<'_, Self>,
        z_bar: &Vec<f64>,
        grad: &mut Vec<f64>,
        weight_offset: usize,
    ) {
        let (np, width) = (shape.n_points, shape.width);
        let bias = weight_offset + width * stride;
        for n in 0..np {
            for h in 0..width {
                let zb = z_bar[n * width + h];
                grad[bias + h] += zb;
                for j in 0..stride {
                    grad[weight_offset + h * stride + j] += zb * points[n * stride + j];
                }
            }
        }
        host_step::input_tangent_grad(
            shape,
            stride,
            &HostSlots::of(probes),
            z_bar,
            grad,
            weight_offset,
        );
    }

    fn shared_block_forward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Vec<f64>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f64>,
        out: &mut Vec<f64>,
    ) {
        host_step::shared_block_forward(map, shape, points, &HostSlots::of(probes), params, out);
    }

    fn shared_block_backward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Vec<f64>,
        probes: &SlotProbes<'_, Self>,
        y_bar: &Vec<f64>,
        grad: &mut Vec<f64>,
    ) {
        host_step::shared_block_backward(map, shape, points, &HostSlots::of(probes), y_bar, grad);
    }

    fn readout_forward(
        &self,
        r: ReadoutShape,
        m: &Vec<f64>,
        ansatz: &Vec<f64>,
        weights: &Vec<f64>,
        features: &mut Vec<f64>,
    ) {
        host_step::readout_forward(r, m, ansatz, weights, features);
    }

    fn readout_backward(
        &self,
        r: ReadoutShape,
        ansatz: &Vec<f64>,
        weights: &Vec<f64>,
        feature_bar: &Vec<f64>,
        m_bar: &mut Vec<f64>,
    ) {
        host_step::readout_backward(r, ansatz, weights, feature_bar, m_bar);
    }

    fn sample_points(&self, s: PointSampling, seed: u64, step: u32, out: &mut Vec<f64>) {
        let mut host = vec![0.0f32; s.n * s.stride()];
        rng::sample_points_from(
            seed, s.sampler, s.time, s.stream, step, s.first, s.n, s.d, &mut host,
        );
        for (o, v) in out.iter_mut().zip(&host) {
            *o = f64::from(*v);
        }
    }
}
