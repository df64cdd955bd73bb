//! `impl ProgramBackend for Engine<E>`: compiled [`Program`]s as generated CUDA C ([`crate::codegen`])
//! built by the executor (NVRTC on a device, the host compiler in the emulator), with every buffer
//! checked on the host before a launch.
//!
//! Primal mode is one launch: the primal kernel of the program's [`PointLayout`]. Series mode is two:
//! the same primal kernel writes block 0 of the jet batch and stores each point's accumulators (f64
//! values and argmax windows) in scratch memory, then one thread per (point, direction) computes
//! coefficients `1..=K`, re-evaluating only the windows its direction touches. The series module of an
//! order is built on first use and kept with the compiled program.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use stde_core::backend::{BackendError, ProbeKind, ProgramBackend, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::program::Program;

use crate::backend::{check_range, u32_of};
use crate::codegen::{self, PointLayout, ProgramKernel};
use crate::exec::{grid_for, Arg, DeviceBuffer, Engine, Executor, Grid, MAX_GRID_X};
use crate::kernels::MAX_ORDER;

/// A [`Program`] compiled for the CUDA backend: its primal module (built by
/// [`ProgramBackend::compile_program`]) and its series modules by jet order (built on first use).
pub struct CudaProgram<M> {
    program: Program,
    name: String,
    layout: PointLayout,
    primal: M,
    series: Mutex<HashMap<usize, Arc<M>>>,
}

impl<M> CudaProgram<M> {
    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// How many threads serve a point in the primal kernel.
    pub fn layout(&self) -> PointLayout {
        self.layout
    }

    /// The same program served by another layout (every layout computes the same values; tests run
    /// each).
    pub fn with_layout(self, layout: PointLayout) -> Self {
        Self { layout, ..self }
    }

    fn series_modules(&self) -> MutexGuard<'_, HashMap<usize, Arc<M>>> {
        // A poisoned lock still guards a consistent map: entries are inserted whole.
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<M> std::fmt::Debug for CudaProgram<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaProgram")
            .field("name", &self.name)
            .field("layout", &self.layout)
            .field(
                "series_orders",
                &self.series_modules().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Blocks covering `n` points in `layout` (grid-stride loops cover the rest past [`MAX_GRID_X`]).
fn primal_grid(layout: PointLayout, n: usize) -> Grid {
    let blocks = (n as u64).div_ceil(u64::from(layout.points_per_block()));
    (blocks.clamp(1, MAX_GRID_X) as u32, 1)
}

impl<E: Executor> Engine<E> {
    /// Checks `args` against the entry point's parameters, then launches it.
    #[track_caller]
    fn launch_program(&self, module: &E::Module, kernel: ProgramKernel, grid: Grid, args: &[Arg]) {
        codegen::check_args(kernel, args);
        self.exec.launch_module(module, kernel, grid, args);
    }

    /// The primal kernel at device addresses: output `j` of point `n` goes to
    /// `out[n·point_stride + j·output_stride]`; with `acc` non-zero it also stores the accumulators.
    fn launch_primal(
        &self,
        compiled: &CudaProgram<E::Module>,
        n_points: usize,
        addrs: [u64; 5],
        point_stride: usize,
        output_stride: usize,
    ) {
        let [points, features, params, out, acc] = addrs;
        let layout = compiled.layout;
        self.launch_program(
            &compiled.primal,
            layout.kernel(),
            primal_grid(layout, n_points),
            &[
                Arg::F32In(points),
                Arg::F32In(features),
                Arg::F32In(params),
                Arg::F32Out(out),
                Arg::F32Out(acc),
                Arg::U32(u32_of("points", n_points)),
                Arg::U32(u32_of("output point stride", point_stride)),
                Arg::U32(u32_of("output stride", output_stride)),
            ],
        );
    }

    /// The series module of `order`, built now if this is its first use.
    fn series_module(
        &self,
        compiled: &CudaProgram<E::Module>,
        order: usize,
    ) -> Result<Arc<E::Module>, BackendError> {
        let mut modules = compiled.series_modules();
        if let Some(m) = modules.get(&order) {
            return Ok(m.clone());
        }
        let unit = codegen::series_unit(&compiled.program, order)
            .unwrap_or_else(|e| panic!("{}: {e}", compiled.name));
        let module = Arc::new(self.exec.build_module(&unit)?);
        modules.insert(order, module.clone());
        Ok(module)
    }
}

impl<E: Executor> ProgramBackend for Engine<E> {
    type Compiled = CudaProgram<E::Module>;

    /// Generates the program's primal unit and builds it (NVRTC on a device); series units are built
    /// per jet order on first use.
    ///
    /// # Panics
    /// If the program is malformed ([`codegen::validate`]): programs come from core's lowering, so that
    /// is a bug there, caught before any kernel could read out of bounds.
    #[track_caller]
    fn compile_program(&self, program: &Program) -> Result<Self::Compiled, BackendError> {
        let unit = codegen::primal_unit(program)
            .unwrap_or_else(|e| panic!("{}: {e}", codegen::program_id(program)));
        let primal = self.exec.build_module(&unit)?;
        Ok(CudaProgram {
            program: program.clone(),
            name: unit.name,
            layout: PointLayout::for_program(program),
            primal,
            series: Mutex::new(HashMap::new()),
        })
    }

    #[track_caller]
    fn run_program(
        &self,
        compiled: &Self::Compiled,
        n_points: usize,
        points: &Self::Buf,
        features: &Self::Buf,
        params: &Self::Buf,
        out: &mut Self::Buf,
    ) {
        let p = &compiled.program;
        check_range(
            "program points",
            points.len(),
            0,
            n_points * p.point_stride(),
        );
        check_range(
            "program features",
            features.len(),
            0,
            n_points * p.n_features as usize,
        );
        check_range("program parameters", params.len(), 0, p.n_params as usize);
        check_range("program outputs", out.len(), 0, n_points * p.n_outputs());
        if n_points == 0 || p.n_outputs() == 0 {
            return;
        }
        self.launch_primal(
            compiled,
            n_points,
            [
                points.addr(0),
                features.addr(0),
                params.addr(0),
                out.addr(0),
                0,
            ],
            1,
            n_points,
        );
    }

    #[track_caller]
    fn run_program_series(
        &self,
        compiled: &Self::Compiled,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        out: &mut Self::Buf,
    ) {
        let p = &compiled.program;
        assert!(!shape.collapsed, "program series are never collapsed");
        assert_eq!(
            shape.width,
            p.n_outputs(),
            "the series batch of a program has one feature per output"
        );
        assert!(
            !p.reads_features(),
            "a program that reads features runs in primal mode only"
        );
        assert!(
            shape.order <= MAX_ORDER,
            "program series exist for jet orders up to {MAX_ORDER}, got {}",
            shape.order
        );
        let (n, v, k) = (shape.n_points, shape.n_dirs, shape.order);
        check_range("program points", points.len(), 0, n * p.point_stride());
        check_range("program parameters", params.len(), 0, p.n_params as usize);
        check_range("program series", out.len(), 0, shape.len());
        match probes.kind {
            ProbeKind::OneHot => {
                check_range("probe slot indices", probes.slot_index.len(), 0, v * k);
                check_range("probe slot coefficients", probes.slot_coeff.len(), 0, v * k);
            }
            ProbeKind::Dense => {
                check_range("dense probes", probes.dense.len(), 0, v * p.point_stride());
            }
        }
        if n == 0 || p.n_outputs() == 0 || self.exec.failed() {
            return;
        }
        let n_acc = p.n_accumulators();
        let acc = if n_acc > 0 {
            // Three words per accumulator and point (program.cuh); the scratch stays valid until the
            // next scratch request, after both launches are enqueued.
            match self.exec.scratch(3 * n_acc * n) {
                Some(a) => a,
                None => return,
            }
        } else {
            0
        };
        // Block 0 (the shared primal) and the accumulators.
        self.launch_primal(
            compiled,
            n,
            [points.addr(0), 0, params.addr(0), out.addr(0), acc],
            p.n_outputs(),
            1,
        );
        if k == 0 {
            return;
        }
        let module = match self.series_module(compiled, k) {
            Ok(m) => m,
            Err(e) => return self.exec.record_failure(e),
        };
        let (slot_index, slot_coeff, dense, dense_probes) = match probes.kind {
            // Null marks the buffers the kernel does not read.
            ProbeKind::OneHot => (probes.slot_index.addr(0), probes.slot_coeff.addr(0), 0, 0),
            ProbeKind::Dense => (0, 0, probes.dense.addr(0), 1),
        };
        self.launch_program(
            &module,
            ProgramKernel::Series,
            (grid_for((n * v) as u64), 1),
            &[
                Arg::F32In(points.addr(0)),
                Arg::F32In(params.addr(0)),
                Arg::F32In(acc),
                Arg::U32In(slot_index),
                Arg::F32In(slot_coeff),
                Arg::F32In(dense),
                Arg::F32Out(out.addr(0)),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("directions", v)),
                Arg::U32(dense_probes),
            ],
        );
    }
}
