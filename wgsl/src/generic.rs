//! `impl GenericStep for WgpuBackend`: the input layer with probe tangents in any slot, the
//! ansatz-and-readout and its adjoint, and every point sampler, as dispatches over windows of at
//! most the storage binding limit. The kernels are addressed by [`GenericKernel`] and built on
//! first use through the machinery of generated pipelines.
//!
//! # How the primitives map onto kernels
//!
//! * **Input layer.** The primal rows are [`Backend::gemm`] and [`Backend::add_bias`]. The tangent
//!   rows are shared by every point, so they are formed once, one row per non-primal block of the
//!   output (one-hot probes: [`GenericKernel::InputGather`], a scaled column gather that also sums
//!   the directions' top slots of a collapsed shape; dense probes: a `V × stride` GEMM), and
//!   broadcast by the `input_fill` kernels. The paper's case (one-hot, order 2) thus costs four
//!   dispatches: GEMM, bias, gather, fill.
//! * **Its weight adjoint.** One-hot probes sum each slot's cotangent block over the points and
//!   scatter-add it into the probed column of `∂W1` in one pass
//!   ([`GenericKernel::ColumnScatter`]), or, when the cotangent or the gradient exceeds a binding,
//!   through per-block sums (`column_sums`) and [`GenericKernel::Scatter`] over windows of rows of
//!   `∂W1`. Slots may share a coordinate, so the lowest slot holding one adds every contribution
//!   to it and the others skip: no atomics. Dense probes (slot 1 only) are the per-direction sums
//!   (`column_sums`) and one GEMM, `∂W1 += Gᵀ·V`.
//! * **Shared block map** (a weight-shared first block). The primal rows are products: the points
//!   seen as `(N·d/B) × B` rows times `w` (one product per point when a time column breaks that
//!   view), then [`Backend::add_bias`] for `c`. The tangent rows are shared by every point: one-hot
//!   probes fill a table with [`GenericKernel::SharedRows`] (`a·w[j mod B]` in column `j / B`), dense
//!   probes with one product per direction (the tangent's blocks times `w`), and the `input_fill`
//!   kernels broadcast it. The adjoint: `∂w += ȳ_0ᵀ·X` and `∂c` by [`Backend::bias_grad`] as above;
//!   the tangent blocks' column sums (`column_sums`), then [`GenericKernel::SharedScatter`] (one
//!   invocation per weight, the slots in order: no atomics) or one product per dense direction.
//! * **Readout.** One invocation per point ([`GenericKernel::Readout`], specialised per jet order);
//!   the model output, the ansatz series, the weights and the features are bound whole.
//! * **Samplers.** The ball without a time column is [`Backend::sample`]'s ball sampler (the
//!   paper's case, unchanged); every other sampler is [`GenericKernel::SamplePoints`], one
//!   workgroup per point on GPUs and one invocation per point on software adapters.
//!
//! Dispatches of these kernels are counted (and timed) in [`crate::Profile::programs`] under
//! their names (`generic_…`).

use std::sync::Arc;

use stde_core::backend::{
    Backend, Gemm, GenericStep, PointSampling, ProbeKind, ReadoutShape, Sampling, SharedBlocks,
    SlotProbes,
};
use stde_core::batch::JetShape;
use stde_core::rng::{PointSampler, TimeSampler};

use crate::backend::check_len;
use crate::buffer::{RawBuf, WgpuBuf};
use crate::context::{GeneratedPipeline, State, Tmp};
use crate::kernels::{Access, Kernel, MAX_ORDER};
use crate::plan::ranges;
use crate::WgpuBackend;

const COMMON: &str = include_str!("shaders/common.wgsl");
const PHILOX: &str = include_str!("shaders/philox.wgsl");
const SLOTS: &str = include_str!("shaders/generic_slots.wgsl");
const INPUT_GATHER: &str = include_str!("shaders/generic_input_gather.wgsl");
const COLUMN_SCATTER: &str = include_str!("shaders/generic_column_scatter.wgsl");
const SCATTER: &str = include_str!("shaders/generic_scatter.wgsl");
const SHARED_ROWS: &str = include_str!("shaders/generic_shared_rows.wgsl");
const SHARED_SCATTER: &str = include_str!("shaders/generic_shared_scatter.wgsl");
const READOUT_COMMON: &str = include_str!("shaders/generic_readout_common.wgsl");
const READOUT_FORWARD: &str = include_str!("shaders/generic_readout_forward.wgsl");
const READOUT_BACKWARD: &str = include_str!("shaders/generic_readout_backward.wgsl");
const SAMPLE_COMMON: &str = include_str!("shaders/generic_sample_common.wgsl");
const SAMPLE: &str = include_str!("shaders/generic_sample.wgsl");
const SAMPLE_SIMPLE: &str = include_str!("shaders/generic_sample_simple.wgsl");

/// Invocations per workgroup of the readout kernels on GPUs.
const READOUT_WG: u32 = 64;

/// Which readout kernel a [`GenericKernel::Readout`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Readout {
    /// The jet order `K` (a constant of the source, sizing private arrays).
    pub order: u32,
    /// The adjoint rather than the readout.
    pub backward: bool,
    /// Workgroups of [`Kernel::SIMPLE_WG`] invocations (software adapters) rather than 64.
    pub simple: bool,
}

/// The kernels of the generic step primitives. Like [`Kernel`], each has one entry point `main`,
/// binding 0 its uniform parameter block and storage bindings `1..` with the access of
/// [`GenericKernel::bindings`]; the source is a generated prelude and real `.wgsl` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GenericKernel {
    /// One-hot slot probes: the input layer's tangent rows, one per non-primal block.
    InputGather,
    /// One-hot slot probes: the weight adjoint of the tangent rows in one pass.
    ColumnScatter,
    /// One-hot slot probes: the weight adjoint from per-block sums, by windows of rows of `∂W1`.
    Scatter,
    /// One-hot slot probes: the tangent rows of a weight-shared first block's map.
    SharedRows,
    /// One-hot slot probes: the weight adjoint of a weight-shared first block's map from per-block
    /// sums.
    SharedScatter,
    /// The ansatz-and-readout or its adjoint.
    Readout(Readout),
    /// Every point sampler; `simple`: one invocation per point (software adapters).
    SamplePoints {
        /// The software-adapter variant.
        simple: bool,
    },
}

use Access::{Read, ReadWrite};

impl GenericKernel {
    /// Every variant: the readouts for every order up to [`MAX_ORDER`].
    pub fn all() -> Vec<GenericKernel> {
        let mut out = vec![
            GenericKernel::InputGather,
            GenericKernel::ColumnScatter,
            GenericKernel::Scatter,
            GenericKernel::SharedRows,
            GenericKernel::SharedScatter,
            GenericKernel::SamplePoints { simple: false },
            GenericKernel::SamplePoints { simple: true },
        ];
        for order in 0..=MAX_ORDER as u32 {
            for backward in [false, true] {
                for simple in [false, true] {
                    out.push(GenericKernel::Readout(Readout {
                        order,
                        backward,
                        simple,
                    }));
                }
            }
        }
        out
    }

    /// A label for pipelines, profiles and error messages (shared by the orders of a readout).
    pub fn name(self) -> &'static str {
        match self {
            GenericKernel::InputGather => "generic_input_gather",
            GenericKernel::ColumnScatter => "generic_column_scatter",
            GenericKernel::Scatter => "generic_scatter",
            GenericKernel::SharedRows => "generic_shared_rows",
            GenericKernel::SharedScatter => "generic_shared_scatter",
            GenericKernel::Readout(r) => match (r.backward, r.simple) {
                (false, false) => "generic_readout_forward",
                (false, true) => "generic_readout_forward_simple",
                (true, false) => "generic_readout_backward",
                (true, true) => "generic_readout_backward_simple",
            },
            GenericKernel::SamplePoints { simple: false } => "generic_sample",
            GenericKernel::SamplePoints { simple: true } => "generic_sample_simple",
        }
    }

    /// The files after the prelude, in order.
    pub fn parts(self) -> &'static [&'static str] {
        match self {
            GenericKernel::InputGather => &[COMMON, INPUT_GATHER],
            GenericKernel::ColumnScatter => &[COMMON, SLOTS, COLUMN_SCATTER],
            GenericKernel::Scatter => &[COMMON, SLOTS, SCATTER],
            GenericKernel::SharedRows => &[COMMON, SHARED_ROWS],
            GenericKernel::SharedScatter => &[COMMON, SHARED_SCATTER],
            GenericKernel::Readout(r) if r.backward => &[COMMON, READOUT_COMMON, READOUT_BACKWARD],
            GenericKernel::Readout(_) => &[COMMON, READOUT_COMMON, READOUT_FORWARD],
            GenericKernel::SamplePoints { simple: false } => {
                &[COMMON, PHILOX, SAMPLE_COMMON, SAMPLE]
            }
            GenericKernel::SamplePoints { simple: true } => {
                &[COMMON, PHILOX, SAMPLE_COMMON, SAMPLE_SIMPLE]
            }
        }
    }

    /// Access of storage bindings `1, 2, …` (binding 0 is the uniform parameter block).
    pub fn bindings(self) -> &'static [Access] {
        match self {
            GenericKernel::InputGather
            | GenericKernel::ColumnScatter
            | GenericKernel::Scatter
            | GenericKernel::SharedRows
            | GenericKernel::SharedScatter
            | GenericKernel::Readout(_) => &[Read, Read, Read, ReadWrite],
            GenericKernel::SamplePoints { .. } => &[ReadWrite],
        }
    }

    /// Field names of the uniform `Params` struct, in declaration order (4 bytes each).
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            GenericKernel::InputGather => &[
                "rows",
                "h_count",
                "stride",
                "width",
                "h0",
                "n_dirs",
                "order",
                "collapsed",
                "w_base",
                "i_base",
                "c_base",
                "t_base",
            ],
            GenericKernel::ColumnScatter => &[
                "n_points",
                "width",
                "n_dirs",
                "order",
                "collapsed",
                "stride",
                "z_base",
                "i_base",
                "c_base",
                "g_base",
            ],
            GenericKernel::Scatter => &[
                "n_dirs",
                "order",
                "collapsed",
                "h_count",
                "stride",
                "width",
                "h0",
                "s_base",
                "i_base",
                "c_base",
                "g_base",
            ],
            GenericKernel::Readout(r) if r.backward => &[
                "n_points",
                "n_dirs",
                "n_terms",
                "collapsed",
                "a_base",
                "w_base",
                "fb_base",
                "mb_base",
            ],
            GenericKernel::Readout(_) => &[
                "n_points",
                "n_dirs",
                "n_terms",
                "collapsed",
                "m_base",
                "a_base",
                "w_base",
                "f_base",
            ],
            GenericKernel::SharedRows => &[
                "rows",
                "n_blocks",
                "block",
                "mapped",
                "n_dirs",
                "order",
                "collapsed",
                "w_base",
                "i_base",
                "c_base",
                "t_base",
            ],
            GenericKernel::SharedScatter => &[
                "block",
                "n_blocks",
                "mapped",
                "n_dirs",
                "order",
                "collapsed",
                "g_base",
                "i_base",
                "c_base",
                "w_base",
            ],
            GenericKernel::SamplePoints { .. } => &[
                "rows",
                "dim",
                "stride",
                "key0",
                "key1",
                "step",
                "stream",
                "first",
                "o_base",
                "sampler",
                "time_kind",
                "time_value",
                "a",
                "b",
            ],
        }
    }

    /// The full WGSL source: [`Kernel::prelude`] (the jet order of a readout, else 0), the
    /// readout's workgroup size `WG`, then [`GenericKernel::parts`].
    pub fn source(self) -> String {
        let mut src = match self {
            GenericKernel::Readout(r) => {
                let wg = if r.simple {
                    Kernel::SIMPLE_WG as u32
                } else {
                    READOUT_WG
                };
                format!("{}const WG: u32 = {wg}u;\n", Kernel::prelude(r.order))
            }
            _ => Kernel::prelude(0),
        };
        for part in self.parts() {
            src.push('\n');
            src.push_str(part);
        }
        src
    }
}

/// `u32` of a size or index that the caller's shapes already bound (kernels index with u32).
#[track_caller]
fn u(x: usize) -> u32 {
    u32::try_from(x).expect("a size above u32 reached a kernel")
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

/// The tangent-row count of the input layer's output: its non-primal blocks.
fn tangent_rows(shape: &JetShape) -> usize {
    if shape.order == 0 {
        0
    } else {
        shape.n_blocks() - 1
    }
}

impl WgpuBackend {
    /// The pipeline of a generic kernel, built on first use; `None` (with the fault recorded for
    /// the next download) if the device could not build it.
    fn generic_pipeline(&self, kernel: GenericKernel) -> Option<Arc<GeneratedPipeline>> {
        if let Some(p) = self.lock().generic.get(&kernel) {
            return Some(p.clone());
        }
        // Built without the lock, which `create_generated` takes itself.
        match self.create_generated(
            kernel.name(),
            kernel.source(),
            kernel.bindings(),
            kernel.param_names().len(),
        ) {
            Ok(p) => Some(
                self.lock()
                    .generic
                    .entry(kernel)
                    .or_insert(Arc::new(p))
                    .clone(),
            ),
            Err(e) => {
                self.set_fault(e);
                None
            }
        }
    }

    /// Rows of `row_len` values that fit in one window.
    ///
    /// # Panics
    /// If a single row does not fit in a storage binding.
    #[track_caller]
    fn generic_rows(&self, what: &str, row_len: usize) -> usize {
        self.check_whole(what, row_len);
        (self.win_elems / row_len.max(1)).max(1)
    }

    /// Panics unless `values` consecutive values fit in one storage binding.
    #[track_caller]
    fn check_whole(&self, what: &str, values: usize) {
        assert!(
            values <= self.win_elems,
            "{what}: {values} values must fit in one storage binding of {} bytes",
            self.bind_bytes
        );
    }

    /// Panics unless the buffers of the shared block map or its adjoint hold what `shape` reads:
    /// the points, the probes, `parameters` (the block's `w` and `c`, or their gradient) and
    /// `features` (the block features or their cotangent), each as `(name, length)`. `false` when
    /// there is nothing to compute.
    #[track_caller]
    fn check_shared_block(
        map: SharedBlocks,
        shape: JetShape,
        points: &WgpuBuf,
        probes: &SlotProbes<'_, Self>,
        parameters: (&str, usize),
        features: (&str, usize),
    ) -> bool {
        check_len("points", shape.n_points * map.stride, points.len());
        check_len(parameters.0, map.offset + map.block + 1, parameters.1);
        check_len(features.0, map.features(shape).len(), features.1);
        Self::check_slot_probes(probes, &shape, map.stride);
        shape.n_points * map.n_blocks * map.block != 0
    }

    /// Panics unless the probe buffers hold what `shape` reads.
    #[track_caller]
    fn check_slot_probes(probes: &SlotProbes<'_, Self>, shape: &JetShape, stride: usize) {
        if shape.order == 0 {
            return;
        }
        let (v, k) = (shape.n_dirs, shape.order);
        match probes.kind {
            ProbeKind::OneHot => {
                check_len("probe slot indices", v * k, probes.slot_index.len());
                check_len("probe slot coefficients", v * k, probes.slot_coeff.len());
            }
            ProbeKind::Dense => check_len("dense probes", v * stride, probes.dense.len()),
        }
    }

    /// Broadcasts the tangent table `t` to every point of the non-primal blocks of `z` with the
    /// `input_fill` kernels: block `1 + b` gets row `b` for `b < rows`, zero above; or, with
    /// `sum_rows`, the single non-primal block gets the sum of the `rows` rows.
    fn fill_tangent_blocks(
        &self,
        st: &mut State,
        shape: &JetShape,
        t: &RawBuf,
        rows: usize,
        sum_rows: bool,
        z: &RawBuf,
    ) {
        let (n, h) = (shape.n_points, shape.width);
        let rest = shape.len() - n * h;
        // The simple kernel fills whole rows, so its windows hold whole rows.
        let step = if self.simple {
            self.generic_rows("a row of the input layer's output", h) * h
        } else {
            self.win_elems
        };
        for (e0, e1) in ranges(rest, step) {
            let wt = self.window(st, t, 0, rows * h);
            let wz = self.window(st, z, n * h + e0, n * h + e1);
            let p = [
                u(e1 - e0),
                u(e0),
                u(n),
                u(h),
                u(rows),
                u32::from(sum_rows),
                wt.base(0),
                wz.base(n * h + e0),
            ];
            let (kernel, groups) = if self.simple {
                (
                    Kernel::InputFillSimple,
                    ((e1 - e0) / h).div_ceil(Kernel::SIMPLE_WG),
                )
            } else {
                (Kernel::InputFill, (e1 - e0).div_ceil(256))
            };
            self.dispatch(st, kernel, 0, &p, &[&wt, &wz], groups);
        }
    }

    /// Points, ansatz-series length and feature length of a readout, after checking the shape the
    /// readout kernels take (a model output of width 1, an order they are built for).
    #[track_caller]
    fn readout_lengths(r: ReadoutShape) -> (usize, usize, usize) {
        let shape = r.shape;
        assert_eq!(
            shape.width, 1,
            "the readout takes the model output (width 1)"
        );
        assert!(
            shape.order <= MAX_ORDER,
            "jet order {} above the supported {MAX_ORDER}",
            shape.order
        );
        let np = shape.n_points;
        (np, r.ansatz_shape().len(), r.n_features() * np)
    }

    /// `G[s, :] = Σ_n z̄[slot-1 block of s, n, :]` into `g` (`V × width`) with `column_sums`, by
    /// windows of blocks (one shared block for a collapsed order-1 shape).
    fn slot1_sums(&self, st: &mut State, shape: &JetShape, z_bar: &RawBuf, g: &RawBuf) {
        let (n, h, v) = (shape.n_points, shape.width, shape.n_dirs);
        let block = n * h;
        self.check_whole("one block of the input layer's cotangent", block);
        let one_block = shape.collapsed && shape.order == 1;
        let dir_windows: Vec<(usize, usize)> = if one_block {
            vec![(0, v)]
        } else {
            ranges(v, self.win_elems / block.max(1)).collect()
        };
        for (s0, s1) in dir_windows {
            let (lo, hi) = if one_block {
                (block, 2 * block)
            } else {
                ((1 + s0) * block, (1 + s1) * block)
            };
            let wz = self.window(st, z_bar, lo, hi);
            let wg = self.window(st, g, 0, v * h);
            let p = [
                u(n),
                u(h),
                u(s1 - s0),
                u(s0),
                u32::from(one_block),
                wz.base(lo),
                wg.base(0),
            ];
            let groups = ((s1 - s0) * h).div_ceil(64);
            self.dispatch(st, Kernel::ColumnSums, 0, &p, &[&wz, &wg], groups);
        }
    }
}

impl WgpuBackend {
    /// The products of the shared block map's primal rows, `(rows, first point)`: one product over
    /// every point when each point row is exactly its blocks (the points are then `N·d/B` rows of
    /// `B`), else one per point.
    fn shared_primal_products(map: SharedBlocks, n: usize) -> Vec<(usize, usize)> {
        let nb = map.n_blocks;
        if map.stride == map.mapped() {
            vec![(n * nb, 0)]
        } else {
            (0..n).map(|p| (nb, p)).collect()
        }
    }

    /// The order-0 shape of the `N·d/B` block values, one per "point" of width 1 (for the bias `c`
    /// and its gradient).
    fn shared_values(map: SharedBlocks, n: usize) -> JetShape {
        JetShape {
            order: 0,
            n_dirs: 1,
            n_points: n * map.n_blocks,
            width: 1,
            collapsed: false,
        }
    }

    /// Column sums over the points of tangent blocks `1 + b`, `b` in `0..rows`, of a batch of
    /// `shape` into the rows of `sums`, by windows of whole blocks.
    fn block_sums(
        &self,
        st: &mut State,
        shape: &JetShape,
        rows: usize,
        src: &RawBuf,
        sums: &RawBuf,
    ) {
        let (n, h) = (shape.n_points, shape.width);
        let block = n * h;
        self.check_whole("one block of the cotangent", block);
        for (b0, b1) in ranges(rows, self.win_elems / block.max(1)) {
            let (lo, hi) = ((1 + b0) * block, (1 + b1) * block);
            let wz = self.window(st, src, lo, hi);
            let ws = self.window(st, sums, 0, rows * h);
            let p = [u(n), u(h), u(b1 - b0), u(b0), 0, wz.base(lo), ws.base(0)];
            let groups = ((b1 - b0) * h).div_ceil(64);
            self.dispatch(st, Kernel::ColumnSums, 0, &p, &[&wz, &ws], groups);
        }
    }
}

impl GenericStep for WgpuBackend {
    #[track_caller]
    fn shared_block_forward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &WgpuBuf,
        probes: &SlotProbes<'_, Self>,
        params: &WgpuBuf,
        out: &mut WgpuBuf,
    ) {
        let fshape = map.features(shape);
        let (n, nb, bl, v, k) = (
            shape.n_points,
            map.n_blocks,
            map.block,
            shape.n_dirs,
            shape.order,
        );
        if !Self::check_shared_block(
            map,
            shape,
            points,
            probes,
            ("shared block parameters", params.len()),
            ("shared block output", out.len()),
        ) {
            return;
        }
        for (rows, p) in Self::shared_primal_products(map, n) {
            let g = Gemm {
                a_offset: p * map.stride,
                b_offset: map.offset,
                c_offset: p * nb,
                ..Gemm::nt(rows, 1, bl)
            };
            self.gemm(g, points, params, out);
        }
        self.add_bias(Self::shared_values(map, n), params, map.offset + bl, out);
        let rows = tangent_rows(&shape);
        if rows == 0 {
            return;
        }
        let pipeline = match probes.kind {
            ProbeKind::OneHot => match self.generic_pipeline(GenericKernel::SharedRows) {
                Some(g) => Some(g),
                None => return,
            },
            ProbeKind::Dense => None,
        };
        let mut st = self.lock();
        let st = &mut *st;
        let table = match probes.kind {
            ProbeKind::OneHot => rows,
            ProbeKind::Dense => v,
        };
        self.check_whole("the shared block's tangent rows", table * nb);
        let Some(t) = self.take_tmp(st, Tmp::Tangents, table * nb) else {
            return;
        };
        match pipeline {
            Some(pipeline) => {
                let ww = self.window(st, &params.raw, map.offset, map.offset + bl);
                let wi = self.window(st, &probes.slot_index.raw, 0, v * k);
                let wc = self.window(st, &probes.slot_coeff.raw, 0, v * k);
                let wt = self.window(st, &t, 0, rows * nb);
                let p = [
                    u(rows),
                    u(nb),
                    u(bl),
                    u(map.mapped()),
                    u(v),
                    u(k),
                    u32::from(shape.collapsed),
                    ww.base(map.offset),
                    wi.base(0),
                    wc.base(0),
                    wt.base(0),
                ];
                let groups = (rows * nb).div_ceil(64);
                self.dispatch_generated(st, &pipeline, &p, &[&ww, &wi, &wc, &wt], groups);
                self.fill_tangent_blocks(st, &fshape, &t, rows, false, &out.raw);
            }
            None => {
                // Row s: the blocks of the dense tangent of direction s times w.
                for s in 0..v {
                    let g = Gemm {
                        a_offset: s * map.stride,
                        b_offset: map.offset,
                        c_offset: s * nb,
                        ..Gemm::nt(nb, 1, bl)
                    };
                    self.gemm_raw(st, g, &probes.dense.raw, &params.raw, &t);
                }
                let one_block = shape.collapsed && k == 1;
                self.fill_tangent_blocks(st, &fshape, &t, v, one_block, &out.raw);
            }
        }
        st.tmp.insert(Tmp::Tangents, t);
    }

    #[track_caller]
    fn shared_block_backward(
        &self,
        map: SharedBlocks,
        shape: JetShape,
        points: &WgpuBuf,
        probes: &SlotProbes<'_, Self>,
        y_bar: &WgpuBuf,
        grad: &mut WgpuBuf,
    ) {
        let fshape = map.features(shape);
        let (n, nb, bl, v, k) = (
            shape.n_points,
            map.n_blocks,
            map.block,
            shape.n_dirs,
            shape.order,
        );
        if !Self::check_shared_block(
            map,
            shape,
            points,
            probes,
            ("shared block gradient", grad.len()),
            ("shared block cotangent", y_bar.len()),
        ) {
            return;
        }
        for (rows, p) in Self::shared_primal_products(map, n) {
            let g = Gemm {
                m: 1,
                n: bl,
                k: rows,
                trans_a: true,
                trans_b: false,
                alpha: 1.0,
                beta: 1.0,
                a_offset: p * nb,
                b_offset: p * map.stride,
                c_offset: map.offset,
            };
            self.gemm(g, y_bar, points, grad);
        }
        self.bias_grad(Self::shared_values(map, n), y_bar, grad, map.offset + bl);
        let rows = tangent_rows(&shape);
        if rows == 0 {
            return;
        }
        let pipeline = match probes.kind {
            ProbeKind::OneHot => match self.generic_pipeline(GenericKernel::SharedScatter) {
                Some(g) => Some(g),
                None => return,
            },
            ProbeKind::Dense => None,
        };
        let mut st = self.lock();
        let st = &mut *st;
        // One-hot: a row per tangent block; dense: a row per direction.
        let table = match probes.kind {
            ProbeKind::OneHot => rows,
            ProbeKind::Dense => v,
        };
        self.check_whole("the shared block's tangent cotangents", table * nb);
        let Some(sums) = self.take_tmp(st, Tmp::Tangents, table * nb) else {
            return;
        };
        match pipeline {
            Some(pipeline) => {
                self.block_sums(st, &fshape, rows, &y_bar.raw, &sums);
                let ws = self.window(st, &sums, 0, rows * nb);
                let wi = self.window(st, &probes.slot_index.raw, 0, v * k);
                let wc = self.window(st, &probes.slot_coeff.raw, 0, v * k);
                let wg = self.window(st, &grad.raw, map.offset, map.offset + bl);
                let p = [
                    u(bl),
                    u(nb),
                    u(map.mapped()),
                    u(v),
                    u(k),
                    u32::from(shape.collapsed),
                    ws.base(0),
                    wi.base(0),
                    wc.base(0),
                    wg.base(map.offset),
                ];
                let groups = bl.div_ceil(64);
                self.dispatch_generated(st, &pipeline, &p, &[&ws, &wi, &wc, &wg], groups);
            }
            None => {
                // G[s] = Σ_n ȳ[slot-1 block of s], then ∂w += G[s]·(blocks of the tangent s).
                self.slot1_sums(st, &fshape, &y_bar.raw, &sums);
                for s in 0..v {
                    let g = Gemm {
                        m: 1,
                        n: bl,
                        k: nb,
                        trans_a: false,
                        trans_b: false,
                        alpha: 1.0,
                        beta: 1.0,
                        a_offset: s * nb,
                        b_offset: s * map.stride,
                        c_offset: map.offset,
                    };
                    self.gemm_raw(st, g, &sums, &probes.dense.raw, &grad.raw);
                }
            }
        }
        st.tmp.insert(Tmp::Tangents, sums);
    }

    #[track_caller]
    fn input_layer_forward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &WgpuBuf,
        probes: &SlotProbes<'_, Self>,
        params: &WgpuBuf,
        weight_offset: usize,
        z: &mut WgpuBuf,
    ) {
        let (n, h, v, k) = (shape.n_points, shape.width, shape.n_dirs, shape.order);
        let rows = tangent_rows(&shape);
        let out_len = n * h * (1 + rows);
        check_len("points", n * stride, points.len());
        check_len(
            "input layer parameters",
            weight_offset + h * (stride + 1),
            params.len(),
        );
        check_len("input layer output", out_len, z.len());
        Self::check_slot_probes(probes, &shape, stride);
        // Primal rows: X·W1ᵀ + b1.
        let primal = Gemm {
            b_offset: weight_offset,
            ..Gemm::nt(n, h, stride)
        };
        self.gemm(primal, points, params, z);
        self.add_bias(shape, params, weight_offset + h * stride, z);
        if rows == 0 || n * h == 0 {
            return;
        }
        let gather = match probes.kind {
            ProbeKind::OneHot => match self.generic_pipeline(GenericKernel::InputGather) {
                Some(g) => Some(g),
                None => return,
            },
            ProbeKind::Dense => None,
        };
        let mut st = self.lock();
        let st = &mut *st;
        // One tangent row per non-primal block (dense: the V slot-1 rows), shared by every point.
        let table = match probes.kind {
            ProbeKind::OneHot => rows,
            ProbeKind::Dense => v,
        };
        self.check_whole("the input layer's tangent rows", table * h);
        let Some(t) = self.take_tmp(st, Tmp::Tangents, table * h) else {
            return;
        };
        match gather {
            Some(gather) => {
                for (h0, h1) in ranges(h, self.generic_rows("a row of W1", stride)) {
                    let (lo, hi) = (weight_offset + h0 * stride, weight_offset + h1 * stride);
                    let ww = self.window(st, &params.raw, lo, hi);
                    let wi = self.window(st, &probes.slot_index.raw, 0, v * k);
                    let wc = self.window(st, &probes.slot_coeff.raw, 0, v * k);
                    let wt = self.window(st, &t, 0, rows * h);
                    let p = [
                        u(rows),
                        u(h1 - h0),
                        u(stride),
                        u(h),
                        u(h0),
                        u(v),
                        u(k),
                        u32::from(shape.collapsed),
                        ww.base(lo),
                        wi.base(0),
                        wc.base(0),
                        wt.base(0),
                    ];
                    let groups = (rows * (h1 - h0)).div_ceil(64);
                    self.dispatch_generated(st, &gather, &p, &[&ww, &wi, &wc, &wt], groups);
                }
                self.fill_tangent_blocks(st, &shape, &t, rows, false, &z.raw);
            }
            None => {
                // W1·v_s for every direction: one small product; only slot 1 is dense.
                let g = Gemm {
                    b_offset: weight_offset,
                    ..Gemm::nt(v, h, stride)
                };
                self.gemm_raw(st, g, &probes.dense.raw, &params.raw, &t);
                let one_block = shape.collapsed && k == 1;
                self.fill_tangent_blocks(st, &shape, &t, v, one_block, &z.raw);
            }
        }
        st.tmp.insert(Tmp::Tangents, t);
    }

    #[track_caller]
    fn input_layer_backward_slots(
        &self,
        shape: JetShape,
        stride: usize,
        points: &WgpuBuf,
        probes: &SlotProbes<'_, Self>,
        z_bar: &WgpuBuf,
        grad: &mut WgpuBuf,
        weight_offset: usize,
    ) {
        let (n, h, v, k) = (shape.n_points, shape.width, shape.n_dirs, shape.order);
        let rows = tangent_rows(&shape);
        let block = n * h;
        check_len("points", n * stride, points.len());
        check_len(
            "input layer gradient",
            weight_offset + h * (stride + 1),
            grad.len(),
        );
        check_len("input layer cotangent", block * (1 + rows), z_bar.len());
        Self::check_slot_probes(probes, &shape, stride);
        self.bias_grad(shape, z_bar, grad, weight_offset + h * stride);
        // ∂W1 += z̄_primalᵀ·X, by windows of rows of ∂W1 accumulating over windows of points.
        let primal = Gemm {
            m: h,
            n: stride,
            k: n,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 1.0,
            a_offset: 0,
            b_offset: 0,
            c_offset: weight_offset,
        };
        self.gemm(primal, z_bar, points, grad);
        if rows == 0 || block == 0 || v == 0 {
            return;
        }
        if probes.kind == ProbeKind::Dense {
            let mut st = self.lock();
            let st = &mut *st;
            // G[s] = Σ_n z̄[slot-1 block of s], then ∂W1 += Gᵀ·V (V × stride).
            let Some(g) = self.take_tmp(st, Tmp::Tangents, v * h) else {
                return;
            };
            self.slot1_sums(st, &shape, &z_bar.raw, &g);
            let gd = Gemm {
                m: h,
                n: stride,
                k: v,
                trans_a: true,
                trans_b: false,
                alpha: 1.0,
                beta: 1.0,
                a_offset: 0,
                b_offset: 0,
                c_offset: weight_offset,
            };
            self.gemm_raw(st, gd, &g, &probes.dense.raw, &grad.raw);
            st.tmp.insert(Tmp::Tangents, g);
            return;
        }
        let rest = rows * block;
        let fused = rest <= self.win_elems && h * stride <= self.win_elems;
        let kernel = if fused {
            GenericKernel::ColumnScatter
        } else {
            GenericKernel::Scatter
        };
        let Some(pipeline) = self.generic_pipeline(kernel) else {
            return;
        };
        let mut st = self.lock();
        let st = &mut *st;
        let slots = v * k;
        if fused {
            // Sum and scatter in one pass (the usual case).
            let wz = self.window(st, &z_bar.raw, block, block + rest);
            let wi = self.window(st, &probes.slot_index.raw, 0, slots);
            let wc = self.window(st, &probes.slot_coeff.raw, 0, slots);
            let wg = self.window(st, &grad.raw, weight_offset, weight_offset + h * stride);
            let p = [
                u(n),
                u(h),
                u(v),
                u(k),
                u32::from(shape.collapsed),
                u(stride),
                wz.base(block),
                wi.base(0),
                wc.base(0),
                wg.base(weight_offset),
            ];
            let groups = (slots * h).div_ceil(64);
            self.dispatch_generated(st, &pipeline, &p, &[&wz, &wi, &wc, &wg], groups);
            return;
        }
        // Per-block sums over points (rows × width), by windows of whole blocks, then the
        // scatter by windows of rows of ∂W1.
        self.check_whole("one block of the input layer's cotangent", block);
        self.check_whole("the input layer's tangent cotangents", rows * h);
        let Some(sums) = self.take_tmp(st, Tmp::Tangents, rows * h) else {
            return;
        };
        for (b0, b1) in ranges(rows, self.win_elems / block) {
            let (lo, hi) = ((1 + b0) * block, (1 + b1) * block);
            let wz = self.window(st, &z_bar.raw, lo, hi);
            let ws = self.window(st, &sums, 0, rows * h);
            let p = [u(n), u(h), u(b1 - b0), u(b0), 0, wz.base(lo), ws.base(0)];
            let groups = ((b1 - b0) * h).div_ceil(64);
            self.dispatch(st, Kernel::ColumnSums, 0, &p, &[&wz, &ws], groups);
        }
        for (h0, h1) in ranges(h, self.generic_rows("a row of W1", stride)) {
            let (lo, hi) = (weight_offset + h0 * stride, weight_offset + h1 * stride);
            let ws = self.window(st, &sums, 0, rows * h);
            let wi = self.window(st, &probes.slot_index.raw, 0, slots);
            let wc = self.window(st, &probes.slot_coeff.raw, 0, slots);
            let wg = self.window(st, &grad.raw, lo, hi);
            let p = [
                u(v),
                u(k),
                u32::from(shape.collapsed),
                u(h1 - h0),
                u(stride),
                u(h),
                u(h0),
                ws.base(0),
                wi.base(0),
                wc.base(0),
                wg.base(lo),
            ];
            let groups = (slots * (h1 - h0)).div_ceil(64);
            self.dispatch_generated(st, &pipeline, &p, &[&ws, &wi, &wc, &wg], groups);
        }
        st.tmp.insert(Tmp::Tangents, sums);
    }

    #[track_caller]
    fn readout_forward(
        &self,
        r: ReadoutShape,
        m: &WgpuBuf,
        ansatz: &WgpuBuf,
        weights: &WgpuBuf,
        features: &mut WgpuBuf,
    ) {
        let shape = r.shape;
        let (np, a_len, f_len) = Self::readout_lengths(r);
        check_len("model output", shape.len(), m.len());
        check_len("ansatz series", a_len, ansatz.len());
        check_len("readout weights", r.n_weights(), weights.len());
        check_len("features", f_len, features.len());
        if np == 0 {
            return;
        }
        let kernel = GenericKernel::Readout(Readout {
            order: u(shape.order),
            backward: false,
            simple: self.simple,
        });
        let Some(pipeline) = self.generic_pipeline(kernel) else {
            return;
        };
        // Per point, the series run one block apart across whole buffers: bind them whole.
        self.check_whole("the readout's model output", shape.len());
        self.check_whole("the readout's ansatz series", a_len);
        self.check_whole("the readout's weights", r.n_weights());
        self.check_whole("the readout's features", f_len);
        let mut st = self.lock();
        let st = &mut *st;
        let wm = self.window(st, &m.raw, 0, shape.len());
        let wa = self.window(st, &ansatz.raw, 0, a_len);
        let ww = self.window(st, &weights.raw, 0, r.n_weights());
        let wf = self.window(st, &features.raw, 0, f_len);
        let p = [
            u(np),
            u(shape.n_dirs),
            u(r.n_terms),
            u32::from(shape.collapsed),
            wm.base(0),
            wa.base(0),
            ww.base(0),
            wf.base(0),
        ];
        let wg = if self.simple {
            Kernel::SIMPLE_WG
        } else {
            READOUT_WG as usize
        };
        self.dispatch_generated(st, &pipeline, &p, &[&wm, &wa, &ww, &wf], np.div_ceil(wg));
    }

    #[track_caller]
    fn readout_backward(
        &self,
        r: ReadoutShape,
        ansatz: &WgpuBuf,
        weights: &WgpuBuf,
        feature_bar: &WgpuBuf,
        m_bar: &mut WgpuBuf,
    ) {
        let shape = r.shape;
        let (np, a_len, f_len) = Self::readout_lengths(r);
        check_len("ansatz series", a_len, ansatz.len());
        check_len("readout weights", r.n_weights(), weights.len());
        check_len("feature cotangents", f_len, feature_bar.len());
        check_len("model output cotangent", shape.len(), m_bar.len());
        if np == 0 {
            return;
        }
        let kernel = GenericKernel::Readout(Readout {
            order: u(shape.order),
            backward: true,
            simple: self.simple,
        });
        let Some(pipeline) = self.generic_pipeline(kernel) else {
            return;
        };
        self.check_whole("the readout's ansatz series", a_len);
        self.check_whole("the readout's weights", r.n_weights());
        self.check_whole("the readout's feature cotangents", f_len);
        self.check_whole("the readout's model output cotangent", shape.len());
        let mut st = self.lock();
        let st = &mut *st;
        let wa = self.window(st, &ansatz.raw, 0, a_len);
        let ww = self.window(st, &weights.raw, 0, r.n_weights());
        let wf = self.window(st, &feature_bar.raw, 0, f_len);
        let wb = self.window(st, &m_bar.raw, 0, shape.len());
        let p = [
            u(np),
            u(shape.n_dirs),
            u(r.n_terms),
            u32::from(shape.collapsed),
            wa.base(0),
            ww.base(0),
            wf.base(0),
            wb.base(0),
        ];
        let wg = if self.simple {
            Kernel::SIMPLE_WG
        } else {
            READOUT_WG as usize
        };
        self.dispatch_generated(st, &pipeline, &p, &[&wa, &ww, &wf, &wb], np.div_ceil(wg));
    }

    #[track_caller]
    fn sample_points(&self, s: PointSampling, seed: u64, step: u32, out: &mut WgpuBuf) {
        let stride = s.stride();
        check_len("points", s.n * stride, out.len());
        assert!(
            !matches!(s.sampler, PointSampler::SdeMarginal)
                || matches!(s.time, TimeSampler::Uniform { .. }),
            "the SDE marginal sampler needs a uniform time"
        );
        if s.sampler == PointSampler::Ball && s.time == TimeSampler::None {
            // The paper's sampler: the same kernel (and bits) as `Backend::sample`.
            let what = Sampling::BallPoints {
                first: s.first,
                n: s.n,
                d: s.d,
                stream: s.stream,
            };
            self.sample(what, seed, step, out);
            return;
        }
        if s.n == 0 {
            return;
        }
        let (sampler, a, b) = match s.sampler {
            PointSampler::Ball => (0, 0.0, 0.0),
            PointSampler::Sphere => (1, 0.0, 0.0),
            PointSampler::Box { lo, hi } => (2, lo, hi),
            PointSampler::Gaussian { std } => (3, std, 0.0),
            PointSampler::SdeMarginal => (4, 0.0, 0.0),
        };
        let (time_kind, time_value) = match s.time {
            TimeSampler::None => (0, 0.0),
            TimeSampler::Uniform { end } => (1, end),
            TimeSampler::Fixed(t) => (2, t),
        };
        let Some(pipeline) = self.generic_pipeline(GenericKernel::SamplePoints {
            simple: self.simple,
        }) else {
            return;
        };
        let (key0, key1) = (seed as u32, (seed >> 32) as u32);
        let mut st = self.lock();
        let st = &mut *st;
        for (r0, r1) in ranges(s.n, self.generic_rows("a point", stride)) {
            let wo = self.window(st, &out.raw, r0 * stride, r1 * stride);
            let p = [
                u(r1 - r0),
                u(s.d),
                u(stride),
                key0,
                key1,
                step,
                s.stream,
                // The generator addresses points with u32 counters, as the host does.
                (s.first + r0) as u32,
                wo.base(r0 * stride),
                sampler,
                time_kind,
                f(time_value),
                f(a),
                f(b),
            ];
            let rows = r1 - r0;
            let groups = if self.simple {
                rows.div_ceil(Kernel::SIMPLE_WG)
            } else {
                rows
            };
            self.dispatch_generated(st, &pipeline, &p, &[&wo], groups);
        }
    }
}
