//! The seam between the primitives and the device: [`Executor`] is what a CUDA device must do (device
//! memory, kernel launches, a column-major `sgemm` with cuBLAS's semantics, scratch memory), and
//! [`Engine`] implements [`Backend`](stde_core::backend::Backend) once on top of any executor.
//!
//! [`CudaDevice`](crate::CudaDevice) is the real executor. The seam exists so that everything above
//! it — bounds checks, scratch layouts, argument lists, launch shapes, the row-major to column-major
//! GEMM mapping — and the CUDA C kernels themselves can be checked without a GPU: the test
//! `tests/emulated.rs` compiles the kernel files with a host C++ compiler behind a small CUDA shim and
//! runs the conformance suite on an executor that emulates the device on the CPU.

use stde_core::backend::BackendError;

use crate::codegen::{ProgramKernel, Unit};
use crate::kernels::{Kernel, ParamType};

/// One kernel argument. Pointers are device addresses with the element offset already applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// `const float*`.
    F32In(u64),
    /// `float*`.
    F32Out(u64),
    /// `const u32*`.
    U32In(u64),
    /// `u32`.
    U32(u32),
    /// `u64`.
    U64(u64),
    /// `float`.
    F32(f32),
}

impl Arg {
    /// The parameter type this argument fills.
    pub fn ty(self) -> ParamType {
        match self {
            Arg::F32In(_) => ParamType::F32In,
            Arg::F32Out(_) => ParamType::F32Out,
            Arg::U32In(_) => ParamType::U32In,
            Arg::U32(_) => ParamType::U32,
            Arg::U64(_) => ParamType::U64,
            Arg::F32(_) => ParamType::F32,
        }
    }

    /// The argument as one 64-bit slot: addresses and integers zero-extended, a float's bits in the
    /// low half (how the host emulator passes arguments).
    pub fn to_bits(self) -> u64 {
        match self {
            Arg::F32In(p) | Arg::F32Out(p) | Arg::U32In(p) | Arg::U64(p) => p,
            Arg::U32(v) => u64::from(v),
            Arg::F32(v) => u64::from(v.to_bits()),
        }
    }
}

/// Panics unless `args` match the parameters `kernel` declares (a bug in this crate).
#[track_caller]
pub fn check_args(kernel: Kernel, args: &[Arg]) {
    let params = kernel.params();
    assert_eq!(
        params.len(),
        args.len(),
        "{} takes {} arguments, {} given",
        kernel.entry(),
        params.len(),
        args.len()
    );
    for ((name, ty), arg) in params.iter().zip(args) {
        assert_eq!(*ty, arg.ty(), "argument {name} of {}", kernel.entry());
    }
}

/// A launch shape: `grid.0 × grid.1` blocks of [`BLOCK`] threads.
pub type Grid = (u32, u32);

/// Threads per block of every kernel (`STDE_BLOCK` in `common.cuh`; a multiple of the warp size).
pub const BLOCK: u32 = 256;

/// Largest `grid.y` (a hardware limit); kernels walk larger ranges with strided loops.
pub const MAX_GRID_Y: u32 = 65_535;

/// Largest one-dimensional grid launched; every kernel has a grid-stride loop, so the cap bounds the
/// launch, never the work.
pub const MAX_GRID_X: u64 = 1 << 20;

/// Blocks of [`BLOCK`] threads covering `n` items (at least one, at most [`MAX_GRID_X`]).
pub fn grid_for(n: u64) -> u32 {
    n.div_ceil(u64::from(BLOCK)).clamp(1, MAX_GRID_X) as u32
}

/// A transpose flag of the column-major [`Executor::sgemm_col_major`], as in cuBLAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `CUBLAS_OP_N`.
    N,
    /// `CUBLAS_OP_T`.
    T,
}

/// A column-major matrix product with exactly `cublasSgemm`'s meaning:
/// `C = alpha·op(A)·op(B) + beta·C` with `op(A)` `m × k`, `op(B)` `k × n`, `C` `m × n`, each matrix
/// column-major with its leading dimension; `beta = 0` never reads `C`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColMajorGemm {
    /// Transpose of `A`.
    pub op_a: Op,
    /// Transpose of `B`.
    pub op_b: Op,
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Address of `A`.
    pub a: u64,
    /// Leading dimension of `A`.
    pub lda: usize,
    /// Address of `B`.
    pub b: u64,
    /// Leading dimension of `B`.
    pub ldb: usize,
    /// Scale of the old `C`.
    pub beta: f32,
    /// Address of `C`.
    pub c: u64,
    /// Leading dimension of `C`.
    pub ldc: usize,
}

/// A device buffer: its length in elements and the device address of an element.
pub trait DeviceBuffer {
    /// Number of elements.
    fn len(&self) -> usize;

    /// Whether it holds no element.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device address of element `offset`.
    fn addr(&self, offset: usize) -> u64;
}

/// What the primitives need from a device. Work is enqueued in order (one stream); failures of work
/// that cannot return an error are recorded and returned by the next [`Executor::download`].
pub trait Executor {
    /// A buffer of `f32`.
    type F32Buf: DeviceBuffer + std::fmt::Debug;
    /// A buffer of `u32`.
    type U32Buf: DeviceBuffer + std::fmt::Debug;

    /// A human-readable description.
    fn describe(&self) -> String;

    /// A zeroed buffer of `len` floats.
    ///
    /// # Errors
    /// [`BackendError::OutOfMemory`] when it does not fit; another error if the device failed.
    fn alloc_f32(&self, len: usize, what: &'static str) -> Result<Self::F32Buf, BackendError>;

    /// A zeroed buffer of `len` indices.
    ///
    /// # Errors
    /// As [`Executor::alloc_f32`].
    fn alloc_u32(&self, len: usize, what: &'static str) -> Result<Self::U32Buf, BackendError>;

    /// Copies `src` to `dst[offset..]` (bounds already checked).
    fn upload_f32(&self, dst: &mut Self::F32Buf, offset: usize, src: &[f32]);

    /// Copies `src` to the start of `dst` (bounds already checked).
    fn upload_u32(&self, dst: &mut Self::U32Buf, src: &[u32]);

    /// Reads `src[offset..offset + len]` after all enqueued work, or the first recorded failure.
    ///
    /// # Errors
    /// The first failure of any work enqueued so far.
    fn download(
        &self,
        src: &Self::F32Buf,
        offset: usize,
        len: usize,
    ) -> Result<Vec<f32>, BackendError>;

    /// Launches `kernel` (of `order` for order-specialised files) on `grid` blocks of [`BLOCK`]
    /// threads; `args` have been checked against the kernel's parameters.
    fn launch(&self, kernel: Kernel, order: Option<usize>, grid: Grid, args: &[Arg]);

    /// `cublasSgemm` (see [`ColMajorGemm`]); `m`, `n` are non-zero.
    fn sgemm_col_major(&self, g: ColMajorGemm);

    /// The address of a scratch area of at least `len` floats, valid until the next call (work already
    /// enqueued keeps using the old one safely). `None` after recording an allocation failure.
    fn scratch(&self, len: usize) -> Option<u64>;

    /// Whether a failure has been recorded (later work is pointless and may be skipped).
    fn failed(&self) -> bool;

    /// A module built from generated CUDA C (a compiled [`Program`](stde_core::program::Program)).
    type Module;

    /// Compiles a generated unit for this device and loads its entry points.
    ///
    /// # Errors
    /// [`BackendError::DeviceLost`] naming the unit when the compiler rejects it or the module does not
    /// load.
    fn build_module(&self, unit: &Unit) -> Result<Self::Module, BackendError>;

    /// Launches `kernel` of a module from [`Executor::build_module`] on `grid` blocks of [`BLOCK`]
    /// threads; `args` have been checked against the kernel's parameters.
    fn launch_module(&self, module: &Self::Module, kernel: ProgramKernel, grid: Grid, args: &[Arg]);

    /// Records a failure of work that cannot return it (a module built lazily inside a launch); the
    /// next [`Executor::download`] returns it.
    fn record_failure(&self, error: BackendError);
}

/// The [`Backend`](stde_core::backend::Backend) implementation over an [`Executor`]. The public
/// CUDA backend is [`CudaBackend`](crate::CudaBackend) `= Engine<CudaDevice>`.
pub struct Engine<E> {
    pub(crate) exec: E,
}

impl<E> Engine<E> {
    /// The backend over `exec`.
    pub fn from_executor(exec: E) -> Self {
        Self { exec }
    }

    /// The executor.
    pub fn executor(&self) -> &E {
        &self.exec
    }
}

impl<E: Executor> std::fmt::Debug for Engine<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("device", &self.exec.describe())
            .finish()
    }
}
