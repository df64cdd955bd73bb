//! The generic step primitives ([`GenericStep`]) on the CPU backend: the input layer with probes in
//! any slot (one large product for the primal rows, column gathers and scatter-adds for one-hot
//! tangents), the shared block map of a weight-shared first block (vectorised block dot products
//! across points for its primal rows and their adjoint), the ansatz-and-readout and its adjoint,
//! and every point sampler.

use rayon::prelude::*;

use super::simd::multiversioned;
use super::{add_bias_rows, CpuBackend, MatRef};
use crate::backend::host_step::{self, HostSlots};
use crate::backend::{
    Backend, GenericStep, PointSampling, ProbeKind, ReadoutShape, Sampling, SharedBlocks,
    SlotProbes,
};
use crate::batch::JetShape;
use crate::rng::{self, PointSampler, TimeSampler};

impl GenericStep for CpuBackend {
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
        let (np, width) = (shape.n_points, shape.width);
        let block_len = np * width;
        let bias_offset = weight_offset + width * stride;
        self.gemm_raw(
            (np, width, stride),
            1.0,
            (points, MatRef::row_major(0, stride)),
            (params, MatRef::transposed(weight_offset, stride)),
            0.0,
            (&mut z[..block_len], MatRef::row_major(0, width)),
        );
        add_bias_rows(
            &mut z[..block_len],
            &params[bias_offset..bias_offset + width],
        );
        if shape.order == 0 {
            return;
        }
        if probes.kind == ProbeKind::Dense {
            // W1·v_s for all directions is one small product; the host helper then places the rows.
            let v = shape.n_dirs;
            let mut rows = vec![0.0f32; v * width];
            self.gemm_raw(
                (v, width, stride),
                1.0,
                (probes.dense, MatRef::row_major(0, stride)),
                (params, MatRef::transposed(weight_offset, stride)),
                0.0,
                (&mut rows, MatRef::row_major(0, width)),
            );
            let z = &mut z[..shape.len()];
            z[block_len..].fill(0.0);
            let mut top = vec![0.0f32; width];
            for (s, row) in rows.chunks_exact(width.max(1)).enumerate().take(v) {
                if shape.collapsed && shape.order == 1 {
                    top.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                    continue;
                }
                let b = shape.block(1, s);
                for dst in z[b * block_len..(b + 1) * block_len].chunks_exact_mut(width.max(1)) {
                    dst.copy_from_slice(row);
                }
            }
            if shape.collapsed && shape.order == 1 {
                let b = shape.block(1, 0);
                for dst in z[b * block_len..(b + 1) * block_len].chunks_exact_mut(width.max(1)) {
                    dst.copy_from_slice(&top);
                }
            }
            return;
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
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        z_bar: &Vec<f32>,
        grad: &mut Vec<f32>,
        weight_offset: usize,
    ) {
        let (np, width) = (shape.n_points, shape.width);
        let block_len = np * width;
        let bias_offset = weight_offset + width * stride;
        // ∂W1 += z̄_primalᵀ·X: the one large product of a step at high dimension.
        self.gemm_raw(
            (width, stride, np),
            1.0,
            (z_bar, MatRef::transposed(0, width)),
            (points, MatRef::row_major(0, stride)),
            1.0,
            (grad, MatRef::row_major(weight_offset, stride)),
        );
        let mut acc = vec![0.0f64; width];
        self.column_sums(&z_bar[..block_len], width, &mut acc);
        for (g, a) in grad[bias_offset..bias_offset + width].iter_mut().zip(&acc) {
            *g = (f64::from(*g) + a) as f32;
        }
        if shape.order == 0 {
            return;
        }
        if probes.kind == ProbeKind::Dense {
            // G[s] = Σ_n z̄[slot-1 block of s], then ∂W1 += Gᵀ·V (one small product).
            let v = shape.n_dirs;
            let mut sums = vec![0.0f32; v * width];
            for s in 0..v {
                let b = shape.block(1, s);
                self.column_sums(&z_bar[b * block_len..(b + 1) * block_len], width, &mut acc);
                for (g, a) in sums[s * width..(s + 1) * width].iter_mut().zip(&acc) {
                    *g = *a as f32;
                }
            }
            self.gemm_raw(
                (width, stride, v),
                1.0,
                (&sums, MatRef::transposed(0, width)),
                (probes.dense, MatRef::row_major(0, stride)),
                1.0,
                (grad, MatRef::row_major(weight_offset, stride)),
            );
            return;
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
        points: &Vec<f32>,
        probes: &SlotProbes<'_, Self>,
        params: &Vec<f32>,
        out: &mut Vec<f32>,
    ) {
        let (np, nb, bl, stride) = (shape.n_points, map.n_blocks, map.block, map.stride);
        let mapped = map.mapped();
        let w = &params[map.offset..map.offset + bl];
        let c = params[map.offset + bl];
        let points = &points[..np * stride];
        // The primal rows: `d/B` dot products of length `B` per point, one task per point.
        let row = |(n, y): (usize, &mut [f32])| {
            block_dots(self.simd, &points[n * stride..n * stride + mapped], w, c, y);
        };
        let y = &mut out[..np * nb];
        if self.threads == 1 || np < 2 {
            y.chunks_mut(nb.max(1)).enumerate().for_each(row);
        } else {
            y.par_chunks_mut(nb.max(1)).enumerate().for_each(row);
        }
        host_step::shared_tangent_blocks(map, shape, &HostSlots::of(probes), params, out);
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
        let (np, nb, bl, stride) = (shape.n_points, map.n_blocks, map.block, map.stride);
        let mapped = map.mapped();
        // ∂w and ∂c from the primal rows, in fixed chunks of points (so the order of the sums
        // does not depend on the thread count), each chunk's points in order, then the chunks in
        // order; f64 throughout.
        let chunks = np.div_ceil(SHARED_GRAD_CHUNK);
        let mut partial = vec![0.0f64; chunks * (bl + 1)];
        let chunk = |(ci, acc): (usize, &mut [f64])| {
            let end = ((ci + 1) * SHARED_GRAD_CHUNK).min(np);
            for n in ci * SHARED_GRAD_CHUNK..end {
                block_axpy(
                    self.simd,
                    &points[n * stride..n * stride + mapped],
                    &y_bar[n * nb..(n + 1) * nb],
                    acc,
                );
            }
        };
        if self.threads == 1 || chunks < 2 {
            partial.chunks_mut(bl + 1).enumerate().for_each(chunk);
        } else {
            partial.par_chunks_mut(bl + 1).enumerate().for_each(chunk);
        }
        for acc in partial.chunks_exact(bl + 1) {
            for (g, a) in grad[map.offset..=map.offset + bl].iter_mut().zip(acc) {
                *g = (f64::from(*g) + a) as f32;
            }
        }
        if shape.order == 0 {
            return;
        }
        // The tangent blocks: column sums of each block over the points, then the scatter (one-hot)
        // or the block products with the dense tangents on the host.
        let fshape = map.features(shape);
        let block_len = np * nb;
        let mut sums = vec![0.0f64; (fshape.n_blocks() - 1) * nb];
        let tangents = &y_bar[block_len..fshape.len()];
        let sum = |(b, acc): (usize, &mut [f64])| {
            let rows = &tangents[b * block_len..(b + 1) * block_len];
            self.column_sums(rows, nb, acc);
        };
        if self.threads == 1 {
            sums.chunks_mut(nb.max(1)).enumerate().for_each(sum);
        } else {
            sums.par_chunks_mut(nb.max(1)).enumerate().for_each(sum);
        }
        host_step::shared_tangent_grad(map, shape, &HostSlots::of(probes), &sums, grad);
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
        if s.sampler == PointSampler::Ball && s.time == TimeSampler::None {
            // The vectorised ball sampler draws the same bits.
            self.sample(
                Sampling::BallPoints {
                    first: s.first,
                    n: s.n,
                    d: s.d,
                    stream: s.stream,
                },
                seed,
                step,
                out,
            );
            return;
        }
        let stride = s.stride();
        let out = &mut out[..s.n * stride];
        let draw = |first: usize, chunk: &mut [f32]| {
            let n = chunk.len() / stride.max(1);
            rng::sample_points_from(
                seed, s.sampler, s.time, s.stream, step, first, n, s.d, chunk,
            );
        };
        match self.stream_items(s.n, stride) {
            None => draw(s.first, out),
            Some(rows) => out
                .par_chunks_mut(rows * stride)
                .enumerate()
                .for_each(|(c, chunk)| draw(s.first + c * rows, chunk)),
        }
    }
}

/// Points per partial sum of the shared map's weight adjoint.
const SHARED_GRAD_CHUNK: usize = 8;

multiversioned! {
    /// `y[b] = Σ_i w_i·x[bB + i] + c` for every block `b` of one point's mapped coordinates `x`
    /// (`B = w.len()`), with sixteen f32 partial sums per block.
    fn block_dots(x: &[f32], w: &[f32], c: f32, y: &mut [f32]) {
        let bl = w.len();
        for (yb, xb) in y.iter_mut().zip(x.chunks_exact(bl.max(1))) {
            let mut acc = [0.0f32; 16];
            let mut xs = xb.chunks_exact(16);
            let mut ws = w.chunks_exact(16);
            for (a, b) in (&mut xs).zip(&mut ws) {
                for l in 0..16 {
                    acc[l] += a[l] * b[l];
                }
            }
            let mut tail = 0.0f32;
            for (a, b) in xs.remainder().iter().zip(ws.remainder()) {
                tail += a * b;
            }
            *yb = acc.iter().sum::<f32>() + tail + c;
        }
    }
}

multiversioned! {
    /// `acc[i] += Σ_b ȳ_b·x[bB + i]` and `acc[B] += Σ_b ȳ_b` for one point (`B = acc.len() − 1`),
    /// in f64.
    fn block_axpy(x: &[f32], y_bar: &[f32], acc: &mut [f64]) {
        let bl = acc.len() - 1;
        let (acc, c) = acc.split_at_mut(bl);
        for (&yb, xb) in y_bar.iter().zip(x.chunks_exact(bl.max(1))) {
            let yb = f64::from(yb);
            for (a, &v) in acc.iter_mut().zip(xb) {
                *a += yb * f64::from(v);
            }
            c[0] += yb;
        }
    }
}
