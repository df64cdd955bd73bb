//! `impl GenericStep for Engine<E>`: the problem-agnostic step primitives as cuBLAS products and the
//! kernels of `generic.cu` and `input_layer.cu`, with every buffer checked on the host before a launch.
//!
//! * **Input layer with slot probes.** The primal rows are the GEMM `x·W1ᵀ`. One-hot probes:
//!   `slot_gather` computes one row `Σ c·W1[:, j]` per tangent block (the collapsed top sums slot `K`
//!   of every direction), and `input_fill` adds the bias and broadcasts each row to every point; the
//!   adjoint is the column sums of the tangent blocks' cotangents and `slot_scatter`. Dense probes
//!   (slot 1 only): the `V × stride` tangents through `W1` by cuBLAS, `input_fill`, and
//!   `∂W1 += Gᵀ·V`.
//! * **Shared block map** (a weight-shared first block). Primal rows: `shared_primal`, one thread
//!   per (point, block) dot product. Tangent rows: `shared_rows`, one row per tangent block (one-hot
//!   `a·w[j mod B]` in column `j / B`, dense the block dot products of the tangent), broadcast to
//!   every point by `shared_fill`. Adjoint: `shared_grad_partial` sums the primal part over fixed
//!   chunks of (point, block) pairs, then `shared_grad_reduce` adds the chunks in order and the
//!   tangent blocks' part (from their column sums), one thread per weight: no atomics, and the same
//!   order of additions on every run.
//! * **Readout.** One thread per point in `readout_forward`/`readout_backward`: the model output and the
//!   ansatz series are block-major with the point innermost, so neighbouring threads read neighbouring
//!   values of every block.
//! * **Point samplers.** The unit ball without a time column is `Backend::sample`'s `sample_ball`
//!   kernel (the same draws); every other sampler and time rule is `sample_points`, one thread block
//!   per point.

use stde_core::backend::{
    Backend, Gemm, GenericStep, PointSampling, ProbeKind, ReadoutShape, Sampling, SharedBlocks,
    SlotProbes,
};
use stde_core::batch::JetShape;
use stde_core::rng::{PointSampler, TimeSampler};

use crate::backend::{check_range, u32_of};
use crate::exec::{check_args, grid_for, Arg, DeviceBuffer, Engine, Executor, Grid, MAX_GRID_Y};
use crate::kernels::Kernel;

/// Checks `args` against the kernel's parameters, then launches it (no kernel here is order-specialised).
#[track_caller]
fn launch<E: Executor>(engine: &Engine<E>, kernel: Kernel, grid: Grid, args: &[Arg]) {
    check_args(kernel, args);
    engine.exec.launch(kernel, None, grid, args);
}

/// `C[m × n] += Aᵀ·B` (row-major, no offsets, accumulating into `C`).
fn gemm_tn_acc(m: usize, n: usize, k: usize) -> Gemm {
    Gemm {
        trans_a: true,
        trans_b: false,
        beta: 1.0,
        ..Gemm::nt(m, n, k)
    }
}

/// (Point, block) pairs per chunk of the shared block map's weight adjoint, and the most chunks.
const SHARED_PAIRS_PER_CHUNK: usize = 2048;
const SHARED_MAX_CHUNKS: usize = 1024;

/// Rows of tangent blocks: every block but the primal.
fn tangent_blocks(shape: JetShape) -> usize {
    shape.n_blocks() - 1
}

/// Panics unless the probe buffers hold what `shape` reads: `V·K` slots (one-hot) or `V × stride`
/// tangents (dense).
#[track_caller]
fn check_probes<E: Executor>(probes: &SlotProbes<'_, Engine<E>>, shape: JetShape, stride: usize) {
    let (v, k) = (shape.n_dirs, shape.order);
    match probes.kind {
        ProbeKind::OneHot => {
            check_range("probe slot indices", probes.slot_index.len(), 0, v * k);
            check_range("probe slot coefficients", probes.slot_coeff.len(), 0, v * k);
        }
        ProbeKind::Dense if k >= 1 => {
            check_range("dense probes", probes.dense.len(), 0, v * stride);
        }
        ProbeKind::Dense => {}
    }
}

/// Panics unless the shape is one the layout allows.
#[track_caller]
fn check_shape(shape: JetShape) {
    assert!(
        shape.order >= 1 || !shape.collapsed,
        "a collapsed batch needs jet order at least 1"
    );
    assert!(
        shape.n_dirs >= 1,
        "a jet batch needs at least one direction"
    );
}

/// The device code of a point sampler: `(sampler, p0, p1)` as `sample_points` reads them.
fn sampler_code(s: PointSampler) -> (u32, f32, f32) {
    match s {
        PointSampler::Ball => (0, 0.0, 0.0),
        PointSampler::Sphere => (1, 0.0, 0.0),
        PointSampler::Box { lo, hi } => (2, lo, hi),
        PointSampler::Gaussian { std } => (3, std, 0.0),
        PointSampler::SdeMarginal => (4, 0.0, 0.0),
    }
}

/// The device code of a time rule: `(time_kind, time_value)`.
fn time_code(t: TimeSampler) -> (u32, f32) {
    match t {
        TimeSampler::None => (0, 0.0),
        TimeSampler::Uniform { end } => (1, end),
        TimeSampler::Fixed(t) => (2, t),
    }
}

/// The points of a readout, after checking its shape (a model output of width 1) and the lengths
/// of the ansatz series and weights that both directions read.
#[track_caller]
fn readout_checks<B: DeviceBuffer>(r: ReadoutShape, ansatz: &B, weights: &B) -> usize {
    let shape = r.shape;
    check_shape(shape);
    assert_eq!(
        shape.width, 1,
        "the readout reads a model output of width 1"
    );
    check_range("readout ansatz", ansatz.len(), 0, r.ansatz_shape().len());
    check_range("readout weights", weights.len(), 0, r.n_weights());
    shape.n_points
}

impl<E: Executor> GenericStep for Engine<E> {
    #[track_caller]
    fn input_layer_forward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        weight_offset: usize,
        z: &mut Self::Buf,
    ) {
        check_shape(shape);
        let (n, w, v, k) = (shape.n_points, shape.width, shape.n_dirs, shape.order);
        check_range("input layer points", points.len(), 0, n * stride);
        check_range(
            "input layer parameters",
            params.len(),
            weight_offset,
            w * (stride + 1),
        );
        check_range("input layer output", z.len(), 0, shape.len());
        check_probes(probes, shape, stride);
        if n * w == 0 || self.exec.failed() {
            return;
        }
        let w1 = params.addr(weight_offset);
        // Primal rows: x·W1ᵀ (the bias is added by the fill below).
        self.sgemm(Gemm::nt(n, w, stride), points.addr(0), w1, z.addr(0));
        // `(rows, n_rows, summed_top)` for `input_fill`: tangent block b ≥ 1 gets row b − 1 when
        // b ≤ n_rows, zero otherwise; with summed_top the one tangent block gets the sum of the rows.
        let (rows, n_rows, summed_top) = if k == 0 {
            // No tangent block: the fill never reads the rows.
            (w1, 0, false)
        } else {
            match probes.kind {
                ProbeKind::OneHot => {
                    let n_rows = tangent_blocks(shape);
                    let Some(rows) = self.exec.scratch(n_rows * w) else {
                        return;
                    };
                    launch(
                        self,
                        Kernel::SlotGather,
                        (grid_for((n_rows * w) as u64), 1),
                        &[
                            Arg::F32In(w1),
                            Arg::U32In(probes.slot_index.addr(0)),
                            Arg::F32In(probes.slot_coeff.addr(0)),
                            Arg::F32Out(rows),
                            Arg::U32(u32_of("directions", v)),
                            Arg::U32(u32_of("order", k)),
                            Arg::U32(u32_of("width", w)),
                            Arg::U64(stride as u64),
                            Arg::U32(u32::from(shape.collapsed)),
                        ],
                    );
                    (rows, n_rows, false)
                }
                ProbeKind::Dense => {
                    // Slot 1 of direction s is block 1 + s, or the summed top of a collapsed 1-jet.
                    let Some(rows) = self.exec.scratch(v * w) else {
                        return;
                    };
                    self.sgemm(Gemm::nt(v, w, stride), probes.dense.addr(0), w1, rows);
                    (rows, v, shape.collapsed && k == 1)
                }
            }
        };
        let n_blocks = shape.n_blocks();
        launch(
            self,
            Kernel::InputFill,
            (
                grid_for((n * w) as u64),
                u32_of("blocks", n_blocks.min(MAX_GRID_Y as usize)),
            ),
            &[
                Arg::F32Out(z.addr(0)),
                Arg::F32In(params.addr(weight_offset + w * stride)),
                Arg::F32In(rows),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("width", w)),
                Arg::U32(u32_of("blocks", n_blocks)),
                Arg::U32(u32_of("rows", n_rows)),
                Arg::U32(u32::from(summed_top)),
            ],
        );
    }

    #[track_caller]
    fn input_layer_backward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        z_bar: &Self::Buf,
        grad: &mut Self::Buf,
        weight_offset: usize,
    ) {
        check_shape(shape);
        let (n, w, v, k) = (shape.n_points, shape.width, shape.n_dirs, shape.order);
        check_range("input layer points", points.len(), 0, n * stride);
        check_range("input layer cotangent", z_bar.len(), 0, shape.len());
        check_range(
            "input layer gradient",
            grad.len(),
            weight_offset,
            w * (stride + 1),
        );
        check_probes(probes, shape, stride);
        if n * w == 0 || self.exec.failed() {
            return;
        }
        let w1_grad = grad.addr(weight_offset);
        // Primal rows: ∂W1 += z̄_0ᵀ·x (a W × stride product with N inner terms), ∂b1 += Σ_n z̄_0.
        self.sgemm(
            gemm_tn_acc(w, stride, n),
            z_bar.addr(0),
            points.addr(0),
            w1_grad,
        );
        self.column_sums(
            z_bar.addr(0),
            grad.addr(weight_offset + w * stride),
            n,
            w,
            0,
            1,
            0,
            true,
        );
        if k == 0 {
            return;
        }
        let block_len = n * w;
        match probes.kind {
            ProbeKind::OneHot => {
                // g[b − 1] = Σ_n z̄[block b, n] for every tangent block, then the scatter.
                let n_rows = tangent_blocks(shape);
                let Some(g) = self.exec.scratch(n_rows * w) else {
                    return;
                };
                self.column_sums(z_bar.addr(block_len), g, n, w, block_len, n_rows, w, false);
                launch(
                    self,
                    Kernel::SlotScatter,
                    (grid_for((v * k * w) as u64), 1),
                    &[
                        Arg::F32In(g),
                        Arg::U32In(probes.slot_index.addr(0)),
                        Arg::F32In(probes.slot_coeff.addr(0)),
                        Arg::F32Out(w1_grad),
                        Arg::U32(u32_of("directions", v)),
                        Arg::U32(u32_of("order", k)),
                        Arg::U32(u32_of("width", w)),
                        Arg::U64(stride as u64),
                        Arg::U32(u32::from(shape.collapsed)),
                    ],
                );
            }
            ProbeKind::Dense => {
                // g[s] = Σ_n z̄[slot 1 of s, n] (V × W; every direction reads the summed top of a
                // collapsed 1-jet), then ∂W1 += gᵀ·V.
                let Some(g) = self.exec.scratch(v * w) else {
                    return;
                };
                let shared = shape.collapsed && k == 1;
                self.column_sums(
                    z_bar.addr(block_len),
                    g,
                    n,
                    w,
                    if shared { 0 } else { block_len },
                    v,
                    w,
                    false,
                );
                self.sgemm(gemm_tn_acc(w, stride, v), g, probes.dense.addr(0), w1_grad);
            }
        }
    }

    #[track_caller]
    fn readout_forward(
        &self,
        r: ReadoutShape,
        m: &Self::Buf,
        ansatz: &Self::Buf,
        weights: &Self::Buf,
        features: &mut Self::Buf,
    ) {
        let shape = r.shape;
        let n = readout_checks(r, ansatz, weights);
        check_range("readout model output", m.len(), 0, shape.len());
        check_range("readout features", features.len(), 0, r.n_features() * n);
        if n == 0 || self.exec.failed() {
            return;
        }
        launch(
            self,
            Kernel::ReadoutForward,
            (grid_for(n as u64), 1),
            &[
                Arg::F32In(m.addr(0)),
                Arg::F32In(ansatz.addr(0)),
                Arg::F32In(weights.addr(0)),
                Arg::F32Out(features.addr(0)),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("directions", shape.n_dirs)),
                Arg::U32(u32_of("order", shape.order)),
                Arg::U32(u32_of("terms", r.n_terms)),
                Arg::U32(u32::from(shape.collapsed)),
            ],
        );
    }

    #[track_caller]
    fn readout_backward(
        &self,
        r: ReadoutShape,
        ansatz: &Self::Buf,
        weights: &Self::Buf,
        feature_bar: &Self::Buf,
        m_bar: &mut Self::Buf,
    ) {
        let shape = r.shape;
        let n = readout_checks(r, ansatz, weights);
        check_range(
            "readout feature cotangents",
            feature_bar.len(),
            0,
            r.n_features() * n,
        );
        check_range("readout model cotangent", m_bar.len(), 0, shape.len());
        if n == 0 || self.exec.failed() {
            return;
        }
        launch(
            self,
            Kernel::ReadoutBackward,
            (grid_for(n as u64), 1),
            &[
                Arg::F32In(ansatz.addr(0)),
                Arg::F32In(weights.addr(0)),
                Arg::F32In(feature_bar.addr(0)),
                Arg::F32Out(m_bar.addr(0)),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("directions", shape.n_dirs)),
                Arg::U32(u32_of("order", shape.order)),
                Arg::U32(u32_of("terms", r.n_terms)),
                Arg::U32(u32::from(shape.collapsed)),
            ],
        );
    }

    #[track_caller]
    fn shared_block_forward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        out: &mut Self::Buf,
    ) {
        check_shape(shape);
        let (n, nb, bl) = (shape.n_points, map.n_blocks, map.block);
        check_range("shared block points", points.len(), 0, n * map.stride);
        check_range("shared block parameters", params.len(), map.offset, bl + 1);
        check_range(
            "shared block output",
            out.len(),
            0,
            map.features(shape).len(),
        );
        check_probes(probes, shape, map.stride);
        if n * nb == 0 || bl == 0 || self.exec.failed() {
            return;
        }
        launch(
            self,
            Kernel::SharedPrimal,
            (grid_for((n * nb) as u64), 1),
            &[
                Arg::F32In(points.addr(0)),
                Arg::F32In(params.addr(0)),
                Arg::F32Out(out.addr(0)),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("blocks", nb)),
                Arg::U32(u32_of("block", bl)),
                Arg::U64(map.stride as u64),
                Arg::U64(map.offset as u64),
            ],
        );
        if shape.order == 0 {
            return;
        }
        let n_rows = tangent_blocks(shape);
        let Some(rows) = self.exec.scratch(n_rows * nb) else {
            return;
        };
        launch(
            self,
            Kernel::SharedRows,
            (grid_for((n_rows * nb) as u64), 1),
            &[
                Arg::F32In(params.addr(0)),
                Arg::U32In(probes.slot_index.addr(0)),
                Arg::F32In(probes.slot_coeff.addr(0)),
                Arg::F32In(probes.dense.addr(0)),
                Arg::F32Out(rows),
                Arg::U32(u32_of("directions", shape.n_dirs)),
                Arg::U32(u32_of("order", shape.order)),
                Arg::U32(u32_of("blocks", nb)),
                Arg::U32(u32_of("block", bl)),
                Arg::U64(map.stride as u64),
                Arg::U64(map.offset as u64),
                Arg::U32(u32::from(probes.kind == ProbeKind::Dense)),
                Arg::U32(u32::from(shape.collapsed)),
            ],
        );
        launch(
            self,
            Kernel::SharedFill,
            (grid_for((n_rows * n * nb) as u64), 1),
            &[
                Arg::F32In(rows),
                Arg::F32Out(out.addr(0)),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("blocks", nb)),
                Arg::U32(u32_of("tangent blocks", n_rows)),
            ],
        );
    }

    #[track_caller]
    fn shared_block_backward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        y_bar: &Self::Buf,
        grad: &mut Self::Buf,
    ) {
        check_shape(shape);
        let (n, nb, bl) = (shape.n_points, map.n_blocks, map.block);
        let fshape = map.features(shape);
        check_range("shared block points", points.len(), 0, n * map.stride);
        check_range("shared block cotangent", y_bar.len(), 0, fshape.len());
        check_range("shared block gradient", grad.len(), map.offset, bl + 1);
        check_probes(probes, shape, map.stride);
        if n == 0 || nb == 0 || self.exec.failed() {
            return;
        }
        // Fixed chunks of the (point, block) pairs, chosen from the shape alone.
        let pairs = n * nb;
        let n_chunks = pairs
            .div_ceil(SHARED_PAIRS_PER_CHUNK)
            .clamp(1, SHARED_MAX_CHUNKS);
        let partial_len = n_chunks * (bl + 1);
        let n_rows = if shape.order == 0 {
            0
        } else {
            tangent_blocks(shape)
        };
        let Some(scratch) = self.exec.scratch(partial_len + n_rows * nb) else {
            return;
        };
        let sums = scratch + (partial_len * std::mem::size_of::<f32>()) as u64;
        launch(
            self,
            Kernel::SharedGradPartial,
            (
                grid_for((bl + 1) as u64),
                u32_of("chunks", n_chunks.min(MAX_GRID_Y as usize)),
            ),
            &[
                Arg::F32In(points.addr(0)),
                Arg::F32In(y_bar.addr(0)),
                Arg::F32Out(scratch),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("blocks", nb)),
                Arg::U32(u32_of("block", bl)),
                Arg::U64(map.stride as u64),
                Arg::U32(u32_of("chunks", n_chunks)),
            ],
        );
        if n_rows > 0 {
            let block_len = n * nb;
            self.column_sums(
                y_bar.addr(block_len),
                sums,
                n,
                nb,
                block_len,
                n_rows,
                nb,
                false,
            );
        }
        launch(
            self,
            Kernel::SharedGradReduce,
            (grid_for((bl + 1) as u64), 1),
            &[
                Arg::F32In(scratch),
                Arg::F32In(sums),
                Arg::U32In(probes.slot_index.addr(0)),
                Arg::F32In(probes.slot_coeff.addr(0)),
                Arg::F32In(probes.dense.addr(0)),
                Arg::F32Out(grad.addr(map.offset)),
                Arg::U32(u32_of("chunks", n_chunks)),
                Arg::U32(u32_of("directions", shape.n_dirs)),
                Arg::U32(u32_of("order", shape.order)),
                Arg::U32(u32_of("blocks", nb)),
                Arg::U32(u32_of("block", bl)),
                Arg::U64(map.stride as u64),
                Arg::U32(u32::from(probes.kind == ProbeKind::Dense)),
                Arg::U32(u32::from(shape.collapsed)),
            ],
        );
    }

    #[track_caller]
    fn sample_points(&self, s: PointSampling, seed: u64, step: u32, out: &mut Self::Buf) {
        assert!(
            !matches!(s.sampler, PointSampler::SdeMarginal)
                || matches!(s.time, TimeSampler::Uniform { .. }),
            "the SDE marginal sampler needs a uniform time"
        );
        if s.sampler == PointSampler::Ball && s.time == TimeSampler::None {
            // The ball without time: `Backend::sample`'s kernel draws the same points.
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
        check_range("points", out.len(), 0, s.n * stride);
        assert!(
            ((s.first + s.n) as u64) < u64::from(u32::MAX),
            "points: point index {} does not fit the counter's sub word",
            s.first + s.n
        );
        if s.n == 0 || stride == 0 || self.exec.failed() {
            return;
        }
        let (sampler, p0, p1) = sampler_code(s.sampler);
        let (time_kind, time_value) = time_code(s.time);
        launch(
            self,
            Kernel::SamplePoints,
            (u32_of("points", s.n.min(MAX_GRID_Y as usize)), 1),
            &[
                Arg::F32Out(out.addr(0)),
                Arg::U32(u32_of("points", s.n)),
                Arg::U32(u32_of("dimension", s.d)),
                Arg::U32(u32_of("row length", stride)),
                Arg::U32(u32_of("first point", s.first)),
                Arg::U32(seed as u32),
                Arg::U32((seed >> 32) as u32),
                Arg::U32(s.stream),
                Arg::U32(step),
                Arg::U32(sampler),
                Arg::F32(p0),
                Arg::F32(p1),
                Arg::U32(time_kind),
                Arg::F32(time_value),
            ],
        );
    }
}
