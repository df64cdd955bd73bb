//! `impl ProgramBackend for WgpuBackend`: compiled [`Program`]s as generated WGSL kernels
//! ([`crate::codegen`]), dispatched over windows of points that each fit a storage binding.
//!
//! Compiling builds the primal kernel at once (so that a device that rejects it says so then); the
//! series mode's reduction pass and its kernel for each order are built on first use and kept in
//! the compiled program. Both modes split the points into ranges whose rows fit one binding; the
//! other arrays a dispatch binds whole (features and outputs of the batch, the jet batch of a
//! series, the probes, the parameters) must each fit one binding, which a caller exceeding them is
//! told by a panic.
//!
//! # Choosing the kernel variants
//!
//! llvmpipe (lavapipe) ends every loop of an invocation, silently, once all its loops together have
//! run 65535 iterations, and the series helpers' coefficient loops count too. So a pass whose
//! estimated iterations per invocation ([`codegen::primal_iterations`],
//! [`codegen::series_every_window_iterations`]) exceed [`codegen::ITERATION_BUDGET`] spreads its
//! windows over a workgroup, on every adapter; GPUs also do so from 256 windows on, for
//! parallelism. Where even a workgroup would exceed the limit on a software adapter (dense series
//! directions over about 10⁵ windows of a body over pairs of coordinates at order 2), the call
//! panics rather than return truncated sums; lifting that needs a pass that splits a point's
//! windows over several workgroups.
//!
//! Series mode at order 0 (the primal values in the jet layout, as soft constraints read them) is
//! primal mode's kernel writing rows of the outputs instead of columns: no probes, no second pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stde_core::backend::{BackendError, ProbeKind, ProgramBackend, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::program::Program;

use crate::buffer::WgpuBuf;
use crate::codegen::{self, ProgramKernel};
use crate::context::{GeneratedPipeline, Tmp};
use crate::kernels::{Kernel, MAX_ORDER};
use crate::plan::ranges;
use crate::WgpuBackend;

/// Invocations per workgroup of the group kernels (one workgroup per point, or per point and
/// direction).
const GROUP_WG: u32 = 128;
/// Invocations per workgroup of the per-invocation kernels on GPUs.
const THREAD_WG: u32 = 64;
/// Fewest windows (over all loops) for which a GPU spreads a point over a workgroup: below, one
/// invocation per point keeps more points in flight for the same work. Software adapters spread a
/// point only when one invocation would exceed [`codegen::ITERATION_BUDGET`].
const GROUP_MIN_WINDOWS: u64 = 256;
/// Loop iterations llvmpipe allows one invocation over all its loops (then they exit silently).
const LLVMPIPE_ITERATIONS: u64 = 65535;
/// Workgroup memory every adapter offers (WebGPU's minimum), which bounds the series workgroup.
const WORKGROUP_BYTES: usize = 16384;

/// Invocations per workgroup of the series kernel with a workgroup per (point, direction): 256
/// where its tree of `Series` (`K + 1` values each) fits workgroup memory, else 128.
fn series_group_wg(order: usize) -> u32 {
    if 256 * (order + 1) * 4 <= WORKGROUP_BYTES {
        256
    } else {
        128
    }
}

/// A [`Program`] compiled for [`WgpuBackend`] (see [`ProgramBackend::compile_program`]). It holds
/// the device's pipelines, so it runs only on the backend that compiled it.
#[derive(Debug)]
pub struct WgpuProgram {
    program: Program,
    /// Whether the per-point kernels spread a point over a workgroup.
    group: bool,
    /// Invocations per workgroup of the per-invocation kernels.
    thread_wg: u32,
    primal: GeneratedPipeline,
    /// Series mode's pipelines, built on first use.
    series: Mutex<SeriesPipelines>,
}

#[derive(Debug, Default)]
struct SeriesPipelines {
    reduce: Option<Arc<GeneratedPipeline>>,
    /// By order and whether a workgroup works on one (point, direction).
    by_order: HashMap<(usize, bool), Arc<GeneratedPipeline>>,
}

impl WgpuProgram {
    /// The program this was compiled from.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Whether the per-point passes (primal mode, series mode's reductions) run one workgroup per
    /// point with a workgroup reduction (GPUs at enough windows, and any adapter where one
    /// invocation would run too many loop iterations) rather than one invocation.
    pub fn uses_workgroups(&self) -> bool {
        self.group
    }

    /// Whether series mode at `order` runs one workgroup per (point, direction) for directions of
    /// `kind` (those that move every window of a long loop), rather than one invocation.
    pub fn series_uses_workgroups(&self, order: usize, kind: ProbeKind, simple: bool) -> bool {
        let (iterations, fixed) = codegen::series_every_window_iterations(&self.program, order);
        let every = kind == ProbeKind::Dense || fixed;
        every
            && (iterations > codegen::ITERATION_BUDGET
                || (!simple && windows(&self.program) >= GROUP_MIN_WINDOWS))
    }

    /// Series mode's reduction pass and its workgroup size.
    fn reduce_kernel(&self) -> (ProgramKernel, u32) {
        if self.group {
            (ProgramKernel::ReduceGroup, GROUP_WG)
        } else {
            (ProgramKernel::Reduce, self.thread_wg)
        }
    }

    /// Workgroups for `rows` points of a per-point pass.
    fn point_groups(&self, rows: usize) -> usize {
        if self.group {
            rows
        } else {
            rows.div_ceil(self.thread_wg as usize)
        }
    }
}

/// Windows over all loops that accumulate something.
fn windows(p: &Program) -> u64 {
    p.loops
        .iter()
        .filter(|l| !l.accumulators.is_empty())
        .map(|l| u64::from(l.hi.saturating_sub(l.lo)))
        .sum()
}

/// `u32` of a size or index that the caller's shapes already bound (kernels index with u32).
#[track_caller]
fn u(x: usize) -> u32 {
    u32::try_from(x).expect("a size above u32 reached a kernel")
}

/// Panics with a caller-facing message unless `need <= have`.
#[track_caller]
fn check_len(what: &str, need: usize, have: usize) {
    assert!(
        need <= have,
        "{what}: needs {need} values, the buffer holds {have}"
    );
}

impl WgpuBackend {
    /// Panics unless `values` consecutive values fit in one storage binding.
    #[track_caller]
    fn check_binding(&self, what: &str, values: usize) {
        assert!(
            values <= self.win_elems,
            "{what}: {values} values are bound whole and do not fit in one storage binding of {} \
             bytes; run fewer points per call",
            self.bind_bytes
        );
    }

    /// Rows of `row_len` values that fit in one window.
    #[track_caller]
    fn program_rows(&self, row_len: usize) -> usize {
        self.check_binding("a point row", row_len);
        (self.win_elems / row_len.max(1)).max(1)
    }

    /// Generates and builds one kernel of a compiled program; a failure is recorded as the fault
    /// the next download returns.
    fn build_program_kernel(
        &self,
        program: &Program,
        kernel: ProgramKernel,
        order: usize,
        wg: u32,
    ) -> Option<Arc<GeneratedPipeline>> {
        let src = codegen::source(program, kernel, order, wg)
            .unwrap_or_else(|e| panic!("{}: {e}", kernel.name()));
        match self.create_generated(
            kernel.name(),
            src,
            kernel.bindings(),
            kernel.param_names().len(),
        ) {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                self.set_fault(e);
                None
            }
        }
    }

    /// The reduction pass (when the program has accumulators) and the series kernel of `order`
    /// (`group`: a workgroup per point and direction).
    fn series_pipelines(
        &self,
        c: &WgpuProgram,
        order: usize,
        group: bool,
    ) -> Option<(Option<Arc<GeneratedPipeline>>, Arc<GeneratedPipeline>)> {
        let mut cache = c.series.lock().unwrap_or_else(|e| e.into_inner());
        let reduce = if c.program.n_accumulators() > 0 {
            if cache.reduce.is_none() {
                let (kernel, wg) = c.reduce_kernel();
                cache.reduce = Some(self.build_program_kernel(&c.program, kernel, 0, wg)?);
            }
            cache.reduce.clone()
        } else {
            None
        };
        let series = match cache.by_order.get(&(order, group)) {
            Some(s) => s.clone(),
            None => {
                let (kernel, wg) = if group {
                    (ProgramKernel::SeriesGroup, series_group_wg(order))
                } else {
                    (ProgramKernel::Series, c.thread_wg)
                };
                let s = self.build_program_kernel(&c.program, kernel, order, wg)?;
                cache.by_order.insert((order, group), s.clone());
                s
            }
        };
        Some((reduce, series))
    }
}

impl WgpuBackend {
    /// Primal mode's dispatches over windows of points: output `o` of point `n` goes to
    /// `out[o·o_col + n·o_point]` (`layout = (o_col, o_point)`); the caller has checked the lengths
    /// and that the features and outputs fit one binding.
    #[allow(clippy::too_many_arguments)]
    fn primal_dispatches(
        &self,
        c: &WgpuProgram,
        n_points: usize,
        points: &WgpuBuf,
        features: &WgpuBuf,
        params: &WgpuBuf,
        out: &WgpuBuf,
        (o_col, o_point): (usize, usize),
    ) {
        let p = &c.program;
        let stride = p.point_stride();
        let (n_features, n_out) = (p.n_features as usize, p.n_outputs());
        let n_params = p.n_params as usize;
        let rows = self.program_rows(stride);
        let mut st = self.lock();
        let st = &mut *st;
        for (r0, r1) in ranges(n_points, rows) {
            let wx = self.window(st, &points.raw, r0 * stride, r1 * stride);
            let wf = self.window(st, &features.raw, 0, (n_features * n_points).max(1));
            let wp = self.window(st, &params.raw, 0, n_params.max(1));
            let wo = self.window(st, &out.raw, 0, n_out * n_points);
            let q = [
                u(r1 - r0),
                u(r0),
                u(n_points),
                wx.base(r0 * stride),
                wf.base(0),
                wp.base(0),
                wo.base(0),
                u(o_col),
                u(o_point),
            ];
            let groups = c.point_groups(r1 - r0);
            self.dispatch_generated(st, &c.primal, &q, &[&wx, &wf, &wp, &wo], groups);
        }
    }
}

impl ProgramBackend for WgpuBackend {
    type Compiled = WgpuProgram;

    /// # Panics
    /// If the program breaks an invariant of [`Program`] (see [`codegen::check`]): a bug in
    /// whatever built it. On a software adapter, also if even a workgroup per point would run more
    /// loop iterations per invocation than llvmpipe allows (about 16 million windows of a simple
    /// body).
    #[track_caller]
    fn compile_program(&self, program: &Program) -> Result<WgpuProgram, BackendError> {
        if let Err(e) = codegen::check(program) {
            panic!("an invalid program (a bug in whatever built it): {e}");
        }
        let iterations = codegen::primal_iterations(program);
        assert!(
            !self.is_software() || iterations / u64::from(GROUP_WG) < LLVMPIPE_ITERATIONS / 2,
            "the program's loops need about {} iterations per invocation even with a workgroup \
             per point, beyond what a software adapter runs",
            iterations / u64::from(GROUP_WG)
        );
        let thread_wg = if self.simple {
            Kernel::SIMPLE_WG as u32
        } else {
            THREAD_WG
        };
        let group = iterations > codegen::ITERATION_BUDGET
            || (!self.simple && windows(program) >= GROUP_MIN_WINDOWS);
        let (kernel, wg) = if group {
            (ProgramKernel::PrimalGroup, GROUP_WG)
        } else {
            (ProgramKernel::Primal, thread_wg)
        };
        let src = codegen::source(program, kernel, 0, wg)
            .unwrap_or_else(|e| panic!("{}: {e}", kernel.name()));
        let primal = self.create_generated(
            kernel.name(),
            src,
            kernel.bindings(),
            kernel.param_names().len(),
        )?;
        Ok(WgpuProgram {
            program: program.clone(),
            group,
            thread_wg,
            primal,
            series: Mutex::new(SeriesPipelines::default()),
        })
    }

    /// # Panics
    /// If a buffer is shorter than the program and `n_points` need, or the features or the outputs
    /// of the batch do not fit in one storage binding.
    #[track_caller]
    fn run_program(
        &self,
        c: &WgpuProgram,
        n_points: usize,
        points: &WgpuBuf,
        features: &WgpuBuf,
        params: &WgpuBuf,
        out: &mut WgpuBuf,
    ) {
        let p = &c.program;
        let stride = p.point_stride();
        let (n_features, n_out) = (p.n_features as usize, p.n_outputs());
        let n_params = p.n_params as usize;
        check_len("points", n_points * stride, points.len());
        check_len("features", n_features * n_points, features.len());
        check_len("parameters", n_params, params.len());
        check_len("outputs", n_out * n_points, out.len());
        if n_points == 0 || n_out == 0 {
            return;
        }
        self.check_binding("features", n_features * n_points);
        self.check_binding("parameters", n_params);
        self.check_binding("outputs", n_out * n_points);
        // Columns of `n_points` values, one per output.
        self.primal_dispatches(c, n_points, points, features, params, out, (n_points, 1));
    }

    /// # Panics
    /// If the shape is collapsed, its width is not the number of outputs or its order is above
    /// [`MAX_ORDER`]; if the program reads features; if a buffer is shorter than the shapes need;
    /// or if the jet batch, the probes or the parameters do not fit in one storage binding.
    #[track_caller]
    fn run_program_series(
        &self,
        c: &WgpuProgram,
        shape: JetShape,
        points: &WgpuBuf,
        probes: &SlotProbes<'_, Self>,
        params: &WgpuBuf,
        out: &mut WgpuBuf,
    ) {
        let p = &c.program;
        assert!(!shape.collapsed, "series outputs are never collapsed");
        assert_eq!(
            shape.width,
            p.n_outputs(),
            "the width of a program's series is its number of outputs"
        );
        assert!(
            !p.reads_features(),
            "a program that reads features runs in primal mode only"
        );
        assert!(
            shape.order <= MAX_ORDER,
            "series order {} is above {MAX_ORDER}",
            shape.order
        );
        let stride = p.point_stride();
        let n_params = p.n_params as usize;
        let (k, v, n) = (shape.order, shape.n_dirs, shape.n_points);
        check_len("points", n * stride, points.len());
        check_len("parameters", n_params, params.len());
        check_len("series outputs", shape.len(), out.len());
        let one_hot = probes.kind == ProbeKind::OneHot;
        // Order 0 reads no probes.
        if k > 0 && one_hot {
            check_len("probe slot indices", v * k, probes.slot_index.len());
            check_len("probe slot coefficients", v * k, probes.slot_coeff.len());
            self.check_binding("probe slots", v * k);
        } else if k > 0 {
            check_len("dense probe tangents", v * stride, probes.dense.len());
            self.check_binding("dense probe tangents", v * stride);
        }
        if shape.is_empty() {
            return;
        }
        self.check_binding("parameters", n_params);
        self.check_binding("series outputs", shape.len());
        if k == 0 {
            // Only the primal block, rows of the outputs: primal mode's kernel writing rows (the
            // program reads no features, so the points stand in for them).
            let width = shape.width;
            self.primal_dispatches(c, n, points, points, params, out, (1, width));
            return;
        }
        let group = c.series_uses_workgroups(k, probes.kind, self.simple);
        if self.is_software() && group {
            let (iterations, _) = codegen::series_every_window_iterations(p, k);
            let per_lane = iterations / u64::from(series_group_wg(k));
            assert!(
                per_lane < LLVMPIPE_ITERATIONS / 2,
                "series order {k}: about {per_lane} loop iterations per invocation even with a \
                 workgroup per point and direction, beyond what a software adapter runs"
            );
        }
        let Some((reduce, series)) = self.series_pipelines(c, k, group) else {
            return;
        };
        // Per point: the accumulators' bits, then their argmax windows.
        let red_len = 2 * p.n_accumulators();
        let mut rows = self.program_rows(stride);
        if let Some(fit) = self.win_elems.checked_div(red_len) {
            rows = rows.min(fit.max(1));
        }
        let mut st = self.lock();
        let st = &mut *st;
        let Some(red) = self.take_tmp(st, Tmp::ProgramReductions, rows.min(n) * red_len.max(1))
        else {
            return;
        };
        let (slots, dense) = if one_hot { (v * k, 1) } else { (1, v * stride) };
        for (r0, r1) in ranges(n, rows) {
            let rows = r1 - r0;
            if let Some(reduce) = &reduce {
                let wx = self.window(st, &points.raw, r0 * stride, r1 * stride);
                let wp = self.window(st, &params.raw, 0, n_params.max(1));
                let wr = self.window(st, &red, 0, rows * red_len);
                let q = [u(rows), wx.base(r0 * stride), wp.base(0), wr.base(0)];
                let groups = c.point_groups(rows);
                self.dispatch_generated(st, reduce, &q, &[&wx, &wp, &wr], groups);
            }
            let wx = self.window(st, &points.raw, r0 * stride, r1 * stride);
            let wp = self.window(st, &params.raw, 0, n_params.max(1));
            let wr = self.window(st, &red, 0, (rows * red_len).max(1));
            let wi = self.window(st, &probes.slot_index.raw, 0, slots);
            let wc = self.window(st, &probes.slot_coeff.raw, 0, slots);
            let wd = self.window(st, &probes.dense.raw, 0, dense);
            let wo = self.window(st, &out.raw, 0, shape.len());
            let q = [
                u(rows),
                u(r0),
                u(n),
                u(v),
                u32::from(one_hot),
                wx.base(r0 * stride),
                wp.base(0),
                wr.base(0),
                wi.base(0),
                wc.base(0),
                wd.base(0),
                wo.base(0),
            ];
            let groups = if group {
                rows * v
            } else {
                (rows * v).div_ceil(c.thread_wg as usize)
            };
            let wins = [&wx, &wp, &wr, &wi, &wc, &wd, &wo];
            self.dispatch_generated(st, &series, &q, &wins, groups);
        }
        st.tmp.insert(Tmp::ProgramReductions, red);
    }
}
