//! `stde-cuda`: the STDE [`Backend`](stde_core::backend::Backend) on NVIDIA GPUs, with hand-written
//! CUDA C kernels compiled at run time by NVRTC and cuBLAS for the matrix products.
//!
//! ```no_run
//! use stde_core::backend::Backend;
//! use stde_cuda::{CudaBackend, CudaParams};
//! # fn main() -> Result<(), stde_core::backend::BackendError> {
//! if stde_cuda::cuda_available() {
//!     let backend = CudaBackend::new(CudaParams::default())?;
//!     println!("{}", backend.describe());
//! }
//! # Ok(()) }
//! ```
//!
//! # How it is built
//!
//! * **No CUDA needed to build.** cudarc loads `libcuda`, `libnvrtc` and `libcublas` at run time
//!   (`dynamic-loading`), so the crate builds and its host-side tests run anywhere. cudarc panics on
//!   a missing library, so [`CudaBackend::new`] first asks whether each one loads and returns
//!   [`BackendError::NoDevice`](stde_core::backend::BackendError::NoDevice) with the reason instead;
//!   [`cuda_available`] answers the same question for `--backend auto` and never panics.
//! * **Kernels** are CUDA C files in `native-cuda/kernels/`, embedded with `include_str!` and
//!   addressed by [`kernels::Kernel`]. NVRTC compiles each file once per run, lazily, for the device's
//!   own architecture (`--gpu-architecture=sm_XY`); the jet kernels are specialised by a generated
//!   `#define STDE_K <order>` prelude and cached per (file, order). The cubin is loaded (no PTX JIT),
//!   with the PTX as a fallback. `tests/nvrtc_compile.rs` compiles every file at every order for
//!   `sm_80` and `sm_90` without a GPU, failing on any error or warning.
//! * **Programs** (residuals, forcing, exact solutions, ansatz factors as data,
//!   [`stde_core::program`]) become generated CUDA C ([`codegen`]): only the per-program bodies are
//!   generated, between fixed files (`program.cuh`, `program_series.cuh`, `program_primal.cu`,
//!   `program_series.cu`). Primal mode serves a point with a thread, a warp or a block (sums in f64,
//!   max with its argmax); series mode runs one thread per (point, direction), re-evaluating only the
//!   windows a one-hot direction touches, with the order fixed by `#define STDE_K`. NVRTC builds the
//!   primal module at `compile_program` and each order's series module on first use;
//!   `tests/nvrtc_programs.rs` compiles generated code for `sm_80` and `sm_90`, and the emulator runs
//!   it against the f64 interpreter.
//! * **One stream, no host round trips.** Every primitive enqueues cuBLAS calls and kernel launches
//!   on one stream; element offsets become device pointer offsets. Only `download` synchronises.
//!   Failures of work that cannot return an error (a launch, a copy, a lazy kernel build) are
//!   recorded and returned by the next `download` as `DeviceLost`.
//! * **GEMM** is `cublasSgemm` (64-bit sizes): the row-major product `C = op(A)·op(B)` is the
//!   column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`, so the operands swap and no data moves. The default math mode
//!   keeps full f32 products; TF32 tensor cores only with [`CudaParams::allow_tf32`].
//! * **One implementation, two executors.** [`Engine`] implements the trait once over an
//!   [`exec::Executor`]: [`CudaDevice`] on a GPU, and in `tests/emulated.rs` the CPU, which runs the
//!   same kernel files compiled by the host C++ compiler behind a small CUDA shim. The conformance suite
//!   and a few training steps against the f64 reference run that way on every machine, so the kernels
//!   and everything above `cudarc` are checked without a GPU.
//! * **Memory.** Buffers come from the stream-ordered pool (`cuMemAllocAsync`); an allocation that does
//!   not fit waits for pending frees, retries once, then returns
//!   [`BackendError::OutOfMemory`](stde_core::backend::BackendError::OutOfMemory) naming the buffer.
//!   Kernels that need temporaries share one scratch area that grows on demand.

mod backend;
pub mod codegen;
mod device;
pub mod exec;
mod generic;
pub mod kernels;
mod program;

pub use device::{
    cuda_available, CudaBackend, CudaBuf, CudaDevice, CudaIdx, CudaParams, DeviceInfo,
};
pub use exec::Engine;
pub use program::CudaProgram;
