//! [`CudaDevice`], the [`Executor`] behind [`CudaBackend`]: discovery, the context and its one stream,
//! cuBLAS, device memory, the per-(file, order) module cache, kernel launches, and the sticky error that
//! reports asynchronous failures at the next download.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::cublas::{sys as cublas_sys, CudaBlas};
use cudarc::driver::{
    result as driver_result, sys as driver_sys, CudaContext, CudaFunction, CudaModule, CudaSlice,
    CudaStream, DevicePtr, DeviceRepr, DriverError, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use stde_core::backend::BackendError;

use crate::codegen::{ProgramKernel, Unit};
use crate::exec::{Arg, ColMajorGemm, DeviceBuffer, Engine, Executor, Grid, Op, BLOCK, MAX_GRID_Y};
use crate::kernels::{self, Arch, Kernel, Source};

/// The STDE backend on one CUDA device: [`Engine`] over the real device. Open it with
/// [`CudaBackend::new`].
pub type CudaBackend = Engine<CudaDevice>;

/// The name every [`BackendError`] of this backend carries.
const BACKEND: &str = "cuda";

/// Knobs of [`CudaBackend::new`]. The default is the first device without TF32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CudaParams {
    /// Which CUDA device to use (`0` is the first).
    pub device_ordinal: usize,
    /// Whether cuBLAS may round GEMM inputs to TF32 on tensor cores (about 3 decimal digits): faster
    /// on A100/H100, but the conformance tolerances assume full f32 products, so it is off by default.
    pub allow_tf32: bool,
}

/// A device buffer of `f32` ([`stde_core::backend::Backend::Buf`]).
pub struct CudaBuf {
    pub(crate) slice: CudaSlice<f32>,
    pub(crate) len: usize,
}

/// A device buffer of `u32` ([`stde_core::backend::Backend::Idx`]).
pub struct CudaIdx {
    pub(crate) slice: CudaSlice<u32>,
    pub(crate) len: usize,
}

impl CudaBuf {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl CudaIdx {
    /// Number of indices.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no index.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for CudaBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBuf(f32 × {})", self.len)
    }
}

impl std::fmt::Debug for CudaIdx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaIdx(u32 × {})", self.len)
    }
}

/// What [`CudaBackend::describe`](stde_core::backend::Backend::describe) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Its compute capability.
    pub arch: Arch,
    /// Total device memory in bytes.
    pub total_memory: u64,
    /// The driver's CUDA version `(major, minor)`.
    pub driver_version: (i32, i32),
    /// NVRTC's version `(major, minor)`.
    pub nvrtc_version: (i32, i32),
}

/// A generated program's module on the device ([`Executor::Module`] of [`CudaDevice`]): its entry
/// points, each keeping the module loaded.
pub struct ProgramModule {
    name: String,
    functions: Vec<(ProgramKernel, CudaFunction)>,
}

impl std::fmt::Debug for ProgramModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramModule")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Loaded kernels by (kernel, jet order).
type FunctionCache = HashMap<(Kernel, Option<usize>), Arc<CudaFunction>>;

/// Compiled modules by (kernel file, jet order).
type ModuleCache = HashMap<(Source, Option<usize>), Arc<CudaModule>>;

/// One CUDA device: a context with one stream, a cuBLAS handle, NVRTC-built kernels and scratch
/// memory. It is the [`Executor`] of [`CudaBackend`].
pub struct CudaDevice {
    // Fields drop in declaration order: kernels, scratch memory and the cuBLAS handle go before the
    // stream and the context they live in.
    functions: Mutex<FunctionCache>,
    modules: Mutex<ModuleCache>,
    scratch: Mutex<Option<CudaSlice<f32>>>,
    blas: CudaBlas,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    /// The first failure of work that could not report it (a launch, a copy, a kernel compile); every
    /// later `download` returns it, because results computed after it are meaningless.
    error: Mutex<Option<BackendError>>,
    info: DeviceInfo,
    params: CudaParams,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("info", &self.info)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, ignoring poisoning: every value guarded here stays consistent across a panic
/// (a cache entry is inserted whole or not at all).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn no_device(reason: impl Into<String>) -> BackendError {
    BackendError::NoDevice {
        backend: BACKEND,
        reason: reason.into(),
    }
}

fn lost(what: impl std::fmt::Display, e: impl std::fmt::Debug) -> BackendError {
    BackendError::DeviceLost {
        backend: BACKEND,
        reason: format!("{what}: {e:?}"),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Whether the driver library (`libcuda.so`) can be loaded. cudarc panics on the first driver call
/// without it, so this is asked before anything else.
fn driver_present() -> bool {
    // SAFETY: loading the driver library by name runs only its initialisers.
    std::panic::catch_unwind(|| unsafe { driver_sys::is_culib_present() }).unwrap_or(false)
}

/// Whether cuBLAS can be loaded.
fn cublas_present() -> bool {
    // SAFETY: as for the driver.
    std::panic::catch_unwind(|| unsafe { cublas_sys::is_culib_present() }).unwrap_or(false)
}

/// Whether a CUDA device is usable here: the driver library loads, initialises, and reports at least
/// one device. Never panics; `--backend auto` asks this before choosing CUDA.
pub fn cuda_available() -> bool {
    std::panic::catch_unwind(|| {
        driver_present()
            && driver_result::init().is_ok()
            && driver_result::device::get_count().is_ok_and(|n| n > 0)
    })
    .unwrap_or(false)
}

fn is_oom(e: &DriverError) -> bool {
    e.0 == driver_sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY
}

impl CudaBackend {
    /// Opens CUDA device `params.device_ordinal`; see [`CudaDevice::open`].
    ///
    /// # Errors
    /// As [`CudaDevice::open`]: [`BackendError::NoDevice`] with the reason when CUDA is unusable here.
    pub fn new(params: CudaParams) -> Result<Self, BackendError> {
        CudaDevice::open(params).map(Engine::from_executor)
    }

    /// The device's name, architecture, memory and library versions.
    pub fn device_info(&self) -> &DeviceInfo {
        &self.exec.info
    }

    /// The parameters it was opened with.
    pub fn params(&self) -> CudaParams {
        self.exec.params
    }

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    /// [`BackendError::DeviceLost`] if the driver cannot tell.
    pub fn memory_info(&self) -> Result<(u64, u64), BackendError> {
        self.exec.memory_info()
    }
}

impl CudaDevice {
    /// Opens CUDA device `params.device_ordinal`: the driver, a context with one stream, cuBLAS, and
    /// NVRTC (checked by compiling the smallest kernel file for the device's architecture).
    ///
    /// # Errors
    /// [`BackendError::NoDevice`] when the driver library, a device, cuBLAS or NVRTC is missing, when
    /// the driver fails to initialise, or when NVRTC cannot compile for the device. Never panics on a
    /// missing library.
    pub fn open(params: CudaParams) -> Result<Self, BackendError> {
        // cudarc panics when a library or symbol is missing; the checks below avoid every case we
        // know of, and this turns any other into an error instead of aborting a caller's `auto` probe.
        std::panic::catch_unwind(AssertUnwindSafe(|| Self::open_unguarded(params))).unwrap_or_else(
            |p| {
                Err(no_device(format!(
                    "the CUDA libraries failed to load: {}",
                    panic_message(p.as_ref())
                )))
            },
        )
    }

    fn open_unguarded(params: CudaParams) -> Result<Self, BackendError> {
        if !driver_present() {
            return Err(no_device(
                "the CUDA driver library (libcuda.so) was not found: no NVIDIA driver is installed, \
                 or it is not on the library path",
            ));
        }
        driver_result::init()
            .map_err(|e| no_device(format!("the CUDA driver failed to initialise: {e}")))?;
        let count = driver_result::device::get_count()
            .map_err(|e| no_device(format!("the CUDA driver cannot count devices: {e}")))?;
        if count <= 0 {
            return Err(no_device("the CUDA driver reports no device"));
        }
        if params.device_ordinal >= count as usize {
            return Err(no_device(format!(
                "device {} was requested, but the driver reports {count}",
                params.device_ordinal
            )));
        }
        if !cublas_present() {
            return Err(no_device(
                "cuBLAS (libcublas.so.13) was not found: add the CUDA toolkit's lib64 directory \
                 (e.g. /usr/local/cuda/lib64) to LD_LIBRARY_PATH",
            ));
        }
        let nvrtc_version = kernels::nvrtc_version().map_err(|e| no_device(e.to_string()))?;
        let ctx = CudaContext::new(params.device_ordinal)
            .map_err(|e| no_device(format!("creating a CUDA context failed: {e}")))?;
        // Everything runs in order on one stream, so cudarc's per-buffer events (a record and a wait
        // around every launch) would only cost time.
        // SAFETY: no buffer is shared between streams: this backend creates exactly one.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| no_device(format!("creating a CUDA stream failed: {e}")))?;
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| no_device(format!("cuBLAS failed to initialise: {e:?}")))?;
        let math = if params.allow_tf32 {
            cublas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            cublas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: the handle is live.
        unsafe { cublas_sys::cublasSetMathMode(*blas.handle(), math) }
            .result()
            .map_err(|e| no_device(format!("cuBLAS refused its math mode: {e:?}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| no_device(format!("reading the compute capability failed: {e}")))?;
        let mut driver = 0;
        // SAFETY: `driver` is valid for writes.
        unsafe { driver_sys::cuDriverGetVersion(&mut driver) }
            .result()
            .map_err(|e| no_device(format!("reading the driver version failed: {e}")))?;
        let info = DeviceInfo {
            name: ctx.name().unwrap_or_else(|_| "unknown CUDA device".into()),
            arch: Arch {
                major: major as u32,
                minor: minor as u32,
            },
            total_memory: ctx.total_mem().map(|m| m as u64).unwrap_or(0),
            driver_version: (driver / 1000, (driver % 1000) / 10),
            nvrtc_version,
        };
        let backend = Self {
            functions: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
            scratch: Mutex::new(None),
            blas,
            stream,
            ctx,
            error: Mutex::new(None),
            info,
            params,
        };
        // Compiling and loading the smallest file proves that NVRTC knows this architecture and that
        // the driver accepts what it makes, before the caller commits to this backend.
        backend.function(Kernel::Adam, None).map_err(|e| {
            no_device(format!(
                "NVRTC cannot build kernels for {}: {e}",
                backend.info.arch.sm()
            ))
        })?;
        Ok(backend)
    }

    /// The device's name, architecture, memory and library versions.
    pub fn device_info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Records the first failure of work that cannot return it.
    fn record(&self, e: BackendError) {
        lock(&self.error).get_or_insert(e);
    }

    /// The recorded failure, if any (it stays recorded).
    fn error(&self) -> Option<BackendError> {
        lock(&self.error).clone()
    }

    /// The kernel `kernel` at `order` (compiling its file on first use).
    fn function(
        &self,
        kernel: Kernel,
        order: Option<usize>,
    ) -> Result<Arc<CudaFunction>, BackendError> {
        let key = (kernel, order);
        if let Some(f) = lock(&self.functions).get(&key) {
            return Ok(f.clone());
        }
        let module = self.module(kernel.source(), order)?;
        let f = Arc::new(
            module
                .load_function(kernel.entry())
                .map_err(|e| lost(format!("loading kernel {}", kernel.entry()), e))?,
        );
        lock(&self.functions).insert(key, f.clone());
        Ok(f)
    }

    /// Loads compiled code: the cubin when there is one (SASS for this exact GPU needs no PTX JIT, and
    /// it still loads when the toolkit's NVRTC is newer than the driver, which rejects PTX of a newer
    /// ISA version), else the PTX.
    fn load(
        &self,
        program: &str,
        compiled: kernels::CompiledProgram,
    ) -> Result<Arc<CudaModule>, BackendError> {
        let from_cubin = compiled
            .cubin
            .map(|c| self.ctx.load_module(Ptx::from_binary(c)));
        match from_cubin {
            Some(Ok(m)) => Ok(m),
            _ => self
                .ctx
                .load_module(Ptx::from_src(compiled.ptx))
                .map_err(|e| lost(format!("loading kernel module {program}"), e)),
        }
    }

    /// The module of `source` at `order`, compiled with NVRTC for this device once per run.
    fn module(
        &self,
        source: Source,
        order: Option<usize>,
    ) -> Result<Arc<CudaModule>, BackendError> {
        let key = (source, order);
        if let Some(m) = lock(&self.modules).get(&key) {
            return Ok(m.clone());
        }
        let program = kernels::program_name(source, order);
        let compiled = kernels::compile(source, order, self.info.arch).map_err(|e| {
            BackendError::DeviceLost {
                backend: BACKEND,
                reason: format!("kernel {program} failed to build: {e}"),
            }
        })?;
        let module = self.load(&program, compiled)?;
        lock(&self.modules).insert(key, module.clone());
        Ok(module)
    }

    /// A zeroed device buffer of `len` values of `T` (at least one, so that every buffer has an
    /// address).
    ///
    /// # Errors
    /// [`BackendError::OutOfMemory`] when the device is full; [`BackendError::DeviceLost`] otherwise.
    fn alloc_zeroed<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
        what: &'static str,
    ) -> Result<CudaSlice<T>, BackendError> {
        let n = len.max(1);
        let requested_bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        let oom = || BackendError::OutOfMemory {
            requested_bytes,
            what,
        };
        match self.stream.alloc_zeros::<T>(n) {
            Ok(s) => Ok(s),
            Err(e) if is_oom(&e) => {
                // Buffers freed on the stream return to the memory pool only once the stream reaches
                // their frees: wait for that and try once more before giving up.
                self.stream
                    .synchronize()
                    .map_err(|e| lost("synchronising before a retried allocation", e))?;
                self.stream.alloc_zeros::<T>(n).map_err(|e| {
                    if is_oom(&e) {
                        oom()
                    } else {
                        lost(format!("allocating {requested_bytes} bytes ({what})"), e)
                    }
                })
            }
            Err(e) => Err(lost(
                format!("allocating {requested_bytes} bytes ({what})"),
                e,
            )),
        }
    }

    /// Waits for all enqueued work and reports any failure, recorded or asynchronous.
    fn finish(&self) -> Result<(), BackendError> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        if let Err(e) = self.stream.synchronize() {
            let e = lost("running enqueued work", e);
            self.record(e.clone());
            return Err(e);
        }
        if let Err(e) = self.ctx.check_err() {
            let e = lost("freeing device memory", e);
            self.record(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    /// [`BackendError::DeviceLost`] if the driver cannot tell.
    pub fn memory_info(&self) -> Result<(u64, u64), BackendError> {
        self.ctx
            .mem_get_info()
            .map(|(free, total)| (free as u64, total as u64))
            .map_err(|e| lost("querying device memory", e))
    }

    /// Launches a loaded kernel on `grid` blocks of [`BLOCK`] threads with `args` (checked by the engine).
    fn launch_function(&self, f: &CudaFunction, entry: &str, grid: Grid, args: &[Arg]) {
        let mut builder = self.stream.launch_builder(f);
        for arg in args {
            match arg {
                Arg::F32In(p) | Arg::F32Out(p) | Arg::U32In(p) | Arg::U64(p) => builder.arg(p),
                Arg::U32(v) => builder.arg(v),
                Arg::F32(v) => builder.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid.0, grid.1.clamp(1, MAX_GRID_Y), 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's parameters (checked by the engine against the
        // table that tests compare with the `.cu` declarations); every address was bounds-checked
        // against its buffer; buffers outlive the work because the stream runs in order and frees are
        // stream-ordered.
        if let Err(e) = unsafe { builder.launch(cfg) } {
            self.record(lost(format!("launching {entry}"), e));
        }
    }
}

/// The device address of element `offset` of a slice (event tracking is off, so no guard matters).
fn slice_addr<T>(slice: &CudaSlice<T>, offset: usize) -> u64 {
    let (p, _sync) = slice.device_ptr(slice.stream());
    p + (offset * std::mem::size_of::<T>()) as u64
}

impl DeviceBuffer for CudaBuf {
    fn len(&self) -> usize {
        self.len
    }

    fn addr(&self, offset: usize) -> u64 {
        slice_addr(&self.slice, offset)
    }
}

impl DeviceBuffer for CudaIdx {
    fn len(&self) -> usize {
        self.len
    }

    fn addr(&self, offset: usize) -> u64 {
        slice_addr(&self.slice, offset)
    }
}

impl Executor for CudaDevice {
    type F32Buf = CudaBuf;
    type U32Buf = CudaIdx;

    fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "cuda: {} ({}, {:.1} GiB, driver CUDA {}.{}, NVRTC {}.{}{})",
            i.name,
            i.arch.sm(),
            i.total_memory as f64 / f64::from(1u32 << 30),
            i.driver_version.0,
            i.driver_version.1,
            i.nvrtc_version.0,
            i.nvrtc_version.1,
            if self.params.allow_tf32 {
                ", TF32 GEMM"
            } else {
                ""
            }
        )
    }

    fn alloc_f32(&self, len: usize, what: &'static str) -> Result<CudaBuf, BackendError> {
        Ok(CudaBuf {
            slice: self.alloc_zeroed::<f32>(len, what)?,
            len,
        })
    }

    fn alloc_u32(&self, len: usize, what: &'static str) -> Result<CudaIdx, BackendError> {
        Ok(CudaIdx {
            slice: self.alloc_zeroed::<u32>(len, what)?,
            len,
        })
    }

    fn upload_f32(&self, dst: &mut CudaBuf, offset: usize, src: &[f32]) {
        if src.is_empty() || self.failed() {
            return;
        }
        // A pageable source is staged by the driver before the call returns, so `src` may be reused
        // at once; the copy itself is ordered on the stream like every kernel.
        let mut view = dst.slice.slice_mut(offset..offset + src.len());
        if let Err(e) = self.stream.memcpy_htod(src, &mut view) {
            self.record(lost("uploading", e));
        }
    }

    fn upload_u32(&self, dst: &mut CudaIdx, src: &[u32]) {
        if src.is_empty() || self.failed() {
            return;
        }
        let mut view = dst.slice.slice_mut(0..src.len());
        if let Err(e) = self.stream.memcpy_htod(src, &mut view) {
            self.record(lost("uploading indices", e));
        }
    }

    fn download(&self, src: &CudaBuf, offset: usize, len: usize) -> Result<Vec<f32>, BackendError> {
        // The only host synchronisation of the backend: the copy waits for all enqueued work.
        if let Some(e) = self.error() {
            return Err(e);
        }
        let mut out = vec![0.0f32; len];
        if len > 0 {
            let view = src.slice.slice(offset..offset + len);
            self.stream
                .memcpy_dtoh(&view, &mut out)
                .map_err(|e| lost("downloading", e))?;
        }
        self.finish()?;
        Ok(out)
    }

    fn launch(&self, kernel: Kernel, order: Option<usize>, grid: Grid, args: &[Arg]) {
        if self.failed() {
            return;
        }
        let f = match self.function(kernel, order) {
            Ok(f) => f,
            Err(e) => return self.record(e),
        };
        self.launch_function(&f, kernel.entry(), grid, args);
    }

    fn sgemm_col_major(&self, g: ColMajorGemm) {
        if self.failed() {
            return;
        }
        // cuBLAS runs in the context current on the calling thread, which cudarc's own calls set but a
        // raw cuBLAS call does not: a backend used from another thread would otherwise have none.
        if let Err(e) = self.ctx.bind_to_thread() {
            return self.record(lost("binding the CUDA context", e));
        }
        let op = |o: Op| match o {
            Op::N => cublas_sys::cublasOperation_t::CUBLAS_OP_N,
            Op::T => cublas_sys::cublasOperation_t::CUBLAS_OP_T,
        };
        // SAFETY: the handle is live and bound to our stream; the engine checked that every matrix lies
        // inside its buffer; alpha and beta are read from the host during the call (host pointer mode,
        // cuBLAS's default). The 64-bit entry point keeps d·width > 2³¹ products legal.
        let status = unsafe {
            cublas_sys::cublasSgemm_v2_64(
                *self.blas.handle(),
                op(g.op_a),
                op(g.op_b),
                g.m as i64,
                g.n as i64,
                g.k as i64,
                &g.alpha,
                g.a as *const f32,
                g.lda as i64,
                g.b as *const f32,
                g.ldb as i64,
                &g.beta,
                g.c as *mut f32,
                g.ldc as i64,
            )
        };
        if let Err(e) = status.result() {
            self.record(lost(format!("cublasSgemm ({}×{}×{})", g.m, g.n, g.k), e));
        }
    }

    fn scratch(&self, len: usize) -> Option<u64> {
        let mut guard = lock(&self.scratch);
        let big_enough = guard.as_ref().is_some_and(|s| s.len() >= len);
        if !big_enough {
            // Grow geometrically so that alternating sizes do not reallocate every step. The old area
            // is freed on the stream, after the work already enqueued on it.
            let want = len.max(guard.as_ref().map_or(0, |s| s.len() * 3 / 2));
            *guard = None;
            match self.alloc_zeroed::<f32>(want, "scratch") {
                Ok(s) => *guard = Some(s),
                Err(e) => {
                    self.record(e);
                    return None;
                }
            }
        }
        guard.as_ref().map(|s| slice_addr(s, 0))
    }

    fn failed(&self) -> bool {
        lock(&self.error).is_some()
    }

    type Module = ProgramModule;

    fn build_module(&self, unit: &Unit) -> Result<ProgramModule, BackendError> {
        let compiled = kernels::compile_text(&unit.name, unit.text.clone(), self.info.arch)
            .map_err(|e| BackendError::DeviceLost {
                backend: BACKEND,
                reason: format!("program {} failed to build: {e}", unit.name),
            })?;
        let module = self.load(&unit.name, compiled)?;
        let functions = unit
            .kernels
            .iter()
            .map(|&k| {
                module
                    .load_function(k.entry())
                    .map(|f| (k, f))
                    .map_err(|e| lost(format!("loading kernel {} of {}", k.entry(), unit.name), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProgramModule {
            name: unit.name.clone(),
            functions,
        })
    }

    fn launch_module(
        &self,
        module: &ProgramModule,
        kernel: ProgramKernel,
        grid: Grid,
        args: &[Arg],
    ) {
        if self.failed() {
            return;
        }
        match module.functions.iter().find(|(k, _)| *k == kernel) {
            Some((_, f)) => self.launch_function(f, kernel.entry(), grid, args),
            None => panic!("{} has no entry point {}", module.name, kernel.entry()),
        }
    }

    fn record_failure(&self, error: BackendError) {
        self.record(error);
    }
}
