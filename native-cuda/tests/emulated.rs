//! The conformance suite on the CUDA backend's own code with the GPU replaced by the CPU: the real
//! kernel files, compiled by the host C++ compiler behind `tests/emulator/cuda_host.h`, driven by the
//! real [`Engine`] (bounds checks, argument lists, launch shapes, scratch layouts, the row-major to
//! column-major GEMM mapping), with an executor that emulates device memory, launches and
//! `cublasSgemm` (including cuBLAS's leading-dimension rules) on the host. On top of the suite
//! (whose `programs` test runs core's random programs against the f64 interpreter): training steps
//! against the f64 reference, the first steps of the newer problems against the CPU backend
//! (`emulator/new_problems.rs`) and generated programs in every layout (`emulator/programs.rs`).
//!
//! What it cannot check is what only a GPU has: cudarc's calls, NVRTC's code generation (checked
//! separately by `tests/nvrtc_compile.rs`), the device's math library and real warp scheduling.
//! Without a C++ compiler each test prints one `skipped: no C++ compiler (…)` line and returns.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use stde_core::backend::BackendError;
use stde_core::conformance::Tolerance;
use stde_cuda::codegen::{ProgramKernel, Unit};
use stde_cuda::exec::{Arg, ColMajorGemm, DeviceBuffer, Engine, Executor, Grid, Op, BLOCK};
use stde_cuda::kernels::{self, Kernel, ParamType, Source};

/// Host memory standing in for a device buffer; its address is the "device pointer". Kernels write
/// through raw addresses, so the memory is only ever touched through raw pointers here too.
struct HostBuf<T> {
    ptr: *mut T,
    len: usize,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer owns its allocation; access is serialised by the test's use (one backend per
// test, every launch synchronous).
unsafe impl<T> Send for HostBuf<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for HostBuf<T> {}

/// Live "device" allocations, start address → size in bytes, so that every address the engine hands
/// to a launch or a GEMM can be checked against the buffer it points into (a real GPU would corrupt
/// memory or fault later; here the test fails at the culprit).
fn allocations() -> &'static Mutex<BTreeMap<u64, u64>> {
    static ALLOCATIONS: OnceLock<Mutex<BTreeMap<u64, u64>>> = OnceLock::new();
    ALLOCATIONS.get_or_init(Default::default)
}

/// Panics unless `[addr, addr + bytes)` lies inside one live allocation.
#[track_caller]
fn check_extent(what: &str, addr: u64, bytes: u64) {
    let map = allocations().lock().unwrap_or_else(|e| e.into_inner());
    let inside = map
        .range(..=addr)
        .next_back()
        .is_some_and(|(&start, &len)| addr + bytes <= start + len);
    assert!(
        inside,
        "{what}: {bytes} bytes at {addr:#x} are outside every device allocation"
    );
}

impl<T> HostBuf<T> {
    fn zeroed(len: usize) -> Self {
        let layout = std::alloc::Layout::array::<T>(len.max(1)).expect("buffer size fits");
        // SAFETY: the layout has a non-zero size; all-zero bits are valid f32 and u32.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
        assert!(!ptr.is_null(), "host allocation failed");
        allocations()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ptr as u64, layout.size() as u64);
        Self { ptr, len, layout }
    }
}

impl<T> Drop for HostBuf<T> {
    fn drop(&mut self) {
        allocations()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.ptr as u64));
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.cast(), self.layout) };
    }
}

impl<T> DeviceBuffer for HostBuf<T> {
    fn len(&self) -> usize {
        self.len
    }

    fn addr(&self, offset: usize) -> u64 {
        assert!(offset <= self.len, "address past the end of a buffer");
        self.ptr as u64 + (offset * std::mem::size_of::<T>()) as u64
    }
}

impl<T> std::fmt::Debug for HostBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostBuf({} values)", self.len)
    }
}

/// The launch entry point every emulated program exports.
type LaunchFn = unsafe extern "C" fn(*const c_char, u32, u32, u32, i32, *const u64) -> i32;

/// The host C++ compiler, or why there is none.
fn compiler() -> Result<String, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    match Command::new(&cxx).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(cxx),
        Ok(o) => Err(format!("`{cxx} --version` exited with {}", o.status)),
        Err(e) => Err(format!("`{cxx}` cannot run: {e}")),
    }
}

fn cast(ty: ParamType, i: usize) -> String {
    match ty {
        ParamType::F32In => format!("(const float*)(uintptr_t)a[{i}]"),
        ParamType::F32Out => format!("(float*)(uintptr_t)a[{i}]"),
        ParamType::U32In => format!("(const u32*)(uintptr_t)a[{i}]"),
        ParamType::U32 => format!("(u32)a[{i}]"),
        ParamType::U64 => format!("(u64)a[{i}]"),
        ParamType::F32 => format!("stde_emu::bits_to_float((uint32_t)a[{i}])"),
    }
}

/// The shim's `#include` line.
fn shim_include() -> String {
    let shim = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/emulator/cuda_host.h");
    format!("#include \"{}\"\n", shim.display())
}

/// A dispatcher generated from each entry point's declared parameters: `stde_emu_launch(entry, …)`.
fn dispatcher(entries: &[(&str, &[(&str, ParamType)])]) -> String {
    let mut tu = String::from("\n// Generated dispatch.\n");
    for (entry, params) in entries {
        let args: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| cast(*ty, i))
            .collect();
        tu.push_str(&format!(
            "static void call_{0}(const uint64_t* a) {{ {0}({1}); }}\n",
            entry,
            args.join(", ")
        ));
    }
    tu.push_str(
        "extern \"C\" __attribute__((visibility(\"default\"))) int stde_emu_launch(const char* entry, \
         unsigned gx, unsigned gy, unsigned block, int cooperative, const uint64_t* args) {\n\
         static std::mutex launch_lock;\n\
         std::lock_guard<std::mutex> guard(launch_lock);\n\
         void (*fn)(const uint64_t*) = nullptr;\n",
    );
    for (entry, _) in entries {
        tu.push_str(&format!(
            "if (!strcmp(entry, \"{0}\")) fn = call_{0};\n",
            entry
        ));
    }
    tu.push_str(
        "if (!fn) return 1;\nstde_emu::run_grid(fn, args, gx, gy, block, cooperative != 0);\nreturn 0;\n}\n",
    );
    tu
}

/// The C++ translation unit of one program: the shim, the exact text NVRTC gets, and the dispatcher.
fn translation_unit(source: Source, order: Option<usize>) -> String {
    let entries: Vec<(&str, &[(&str, ParamType)])> =
        source.kernels().map(|k| (k.entry(), k.params())).collect();
    shim_include() + &kernels::program_text(source, order) + &dispatcher(&entries)
}

/// The C++ translation unit of a generated program: the shim, the text NVRTC gets, the dispatcher.
fn unit_translation_unit(unit: &Unit) -> String {
    let entries: Vec<(&str, &[(&str, ParamType)])> = unit
        .kernels
        .iter()
        .map(|k| (k.entry(), k.params()))
        .collect();
    shim_include() + &unit.text + &dispatcher(&entries)
}

/// Compiles a translation unit to a shared library and loads it; `stem` names its files.
fn build_library(stem: &str, tu: &str, what: &str) -> libloading::Library {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stde-cuda-emulator");
    std::fs::create_dir_all(&dir).expect("emulator directory");
    let stem = stem.replace(['.', '[', ']', '='], "_");
    // The process id keeps concurrent test runs (debug and release) from sharing files, the counter
    // concurrent builds of one binary.
    let tag = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let cpp = dir.join(format!("{stem}-{tag}.cpp"));
    let so = dir.join(format!("{stem}-{tag}.so"));
    std::fs::write(&cpp, tu).expect("writing the translation unit");
    let cxx = compiler().expect("checked before the backend was built");
    let out = Command::new(cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-fPIC",
            "-shared",
            "-pthread",
            "-fvisibility=hidden",
        ])
        .arg("-Wno-unknown-pragmas")
        .arg("-o")
        .arg(&so)
        .arg(&cpp)
        .output()
        .expect("running the C++ compiler");
    assert!(
        out.status.success(),
        "{what} does not compile for the host emulator:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: the library is ours, built just now; its initialisers only set up the shim's globals.
    let lib = unsafe { libloading::Library::new(&so) }.expect("loading the emulated kernels");
    let _ = std::fs::remove_file(&so);
    let _ = std::fs::remove_file(&cpp);
    lib
}

/// Loaded programs by (kernel file, jet order).
type Libraries = HashMap<(Source, Option<usize>), Arc<libloading::Library>>;

/// Compiled programs, shared by every test of this binary (compiled once each).
fn library(source: Source, order: Option<usize>) -> Arc<libloading::Library> {
    static LIBS: OnceLock<Mutex<Libraries>> = OnceLock::new();
    let mut libs = LIBS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(lib) = libs.get(&(source, order)) {
        return lib.clone();
    }
    let name = kernels::program_name(source, order);
    let lib = Arc::new(build_library(
        &name,
        &translation_unit(source, order),
        &name,
    ));
    libs.insert((source, order), lib.clone());
    lib
}

/// Generated programs by unit name (a hash of the program, and the order): tests that compile the
/// same program share one build.
fn unit_library(unit: &Unit) -> Arc<libloading::Library> {
    static LIBS: OnceLock<Mutex<HashMap<String, Arc<libloading::Library>>>> = OnceLock::new();
    let libs = LIBS.get_or_init(Default::default);
    if let Some(lib) = libs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&unit.name)
    {
        return lib.clone();
    }
    // Built without the lock, so that tests compile different programs in parallel.
    let lib = Arc::new(build_library(
        &unit.name,
        &unit_translation_unit(unit),
        &unit.name,
    ));
    libs.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(unit.name.clone())
        .or_insert(lib)
        .clone()
}

/// Calls `stde_emu_launch` of `lib`.
fn emulated_launch(
    lib: &libloading::Library,
    entry: &str,
    grid: Grid,
    cooperative: bool,
    args: &[Arg],
) {
    // SAFETY: every emulated program exports `stde_emu_launch` with this signature.
    let launch: libloading::Symbol<'_, LaunchFn> =
        unsafe { lib.get(b"stde_emu_launch\0") }.expect("the dispatcher is exported");
    let bits: Vec<u64> = args.iter().map(|a| a.to_bits()).collect();
    let c_entry = CString::new(entry).expect("entry names have no NUL");
    // SAFETY: the arguments were checked against the kernel's parameters by the engine, and every
    // address lies in a live host buffer (the engine checked the ranges).
    let rc = unsafe {
        launch(
            c_entry.as_ptr(),
            grid.0,
            grid.1,
            BLOCK,
            i32::from(cooperative),
            bits.as_ptr(),
        )
    };
    assert_eq!(rc, 0, "{entry} is not in its program");
}

/// Panics unless every non-null pointer argument points into a live allocation.
fn check_pointer_args(entry: &str, params: &[(&str, ParamType)], args: &[Arg]) {
    for (arg, (name, _)) in args.iter().zip(params) {
        // Null marks a pointer the kernel does not read.
        if let Arg::F32In(p) | Arg::F32Out(p) | Arg::U32In(p) = arg {
            if *p != 0 {
                check_extent(&format!("{entry} argument {name}"), *p, 0);
            }
        }
    }
}

/// Kernels that synchronise a block (`__syncthreads`, warp shuffles): they get one OS thread per
/// CUDA thread. The shim aborts if any other kernel tries to synchronise.
fn cooperative(kernel: Kernel) -> bool {
    matches!(
        kernel,
        Kernel::ColumnSums | Kernel::SampleBall | Kernel::SamplePoints
    )
}

/// The CPU standing in for a CUDA device.
#[derive(Default)]
struct Emulator {
    scratch: Mutex<Option<HostBuf<f32>>>,
    error: Mutex<Option<BackendError>>,
}

impl Executor for Emulator {
    type F32Buf = HostBuf<f32>;
    type U32Buf = HostBuf<u32>;

    fn describe(&self) -> String {
        "cuda kernels emulated on the host".into()
    }

    fn alloc_f32(&self, len: usize, _what: &'static str) -> Result<HostBuf<f32>, BackendError> {
        Ok(HostBuf::zeroed(len))
    }

    fn alloc_u32(&self, len: usize, _what: &'static str) -> Result<HostBuf<u32>, BackendError> {
        Ok(HostBuf::zeroed(len))
    }

    fn upload_f32(&self, dst: &mut HostBuf<f32>, offset: usize, src: &[f32]) {
        assert!(
            offset + src.len() <= dst.len,
            "the engine checks upload bounds"
        );
        // SAFETY: in bounds (checked above); source and destination are different allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.ptr.add(offset), src.len()) };
    }

    fn upload_u32(&self, dst: &mut HostBuf<u32>, src: &[u32]) {
        assert!(src.len() <= dst.len, "the engine checks upload bounds");
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.ptr, src.len()) };
    }

    fn download(
        &self,
        src: &HostBuf<f32>,
        offset: usize,
        len: usize,
    ) -> Result<Vec<f32>, BackendError> {
        if let Some(e) = self.error.lock().unwrap().clone() {
            return Err(e);
        }
        assert!(offset + len <= src.len, "the engine checks download bounds");
        let mut out = vec![0.0; len];
        // SAFETY: in bounds; different allocations.
        unsafe { std::ptr::copy_nonoverlapping(src.ptr.add(offset), out.as_mut_ptr(), len) };
        Ok(out)
    }

    fn launch(&self, kernel: Kernel, order: Option<usize>, grid: Grid, args: &[Arg]) {
        assert!(grid.0 >= 1 && grid.1 >= 1, "{}: empty grid", kernel.entry());
        assert!(
            grid.1 <= 65_535,
            "{}: grid.y above the hardware limit",
            kernel.entry()
        );
        check_pointer_args(kernel.entry(), kernel.params(), args);
        let lib = library(kernel.source(), order);
        emulated_launch(&lib, kernel.entry(), grid, cooperative(kernel), args);
    }

    fn sgemm_col_major(&self, g: ColMajorGemm) {
        // cuBLAS's argument rules (it returns CUBLAS_STATUS_INVALID_VALUE otherwise).
        let rows_a = if g.op_a == Op::N { g.m } else { g.k };
        let rows_b = if g.op_b == Op::N { g.k } else { g.n };
        assert!(
            g.lda >= rows_a.max(1),
            "lda {} < {}: {g:?}",
            g.lda,
            rows_a.max(1)
        );
        assert!(
            g.ldb >= rows_b.max(1),
            "ldb {} < {}: {g:?}",
            g.ldb,
            rows_b.max(1)
        );
        assert!(g.ldc >= g.m.max(1), "ldc {} < {}: {g:?}", g.ldc, g.m.max(1));
        // Elements spanned by a column-major rows × cols matrix with leading dimension ld.
        let span = |rows: usize, cols: usize, ld: usize| {
            if rows == 0 || cols == 0 {
                0
            } else {
                (ld * (cols - 1) + rows) as u64 * 4
            }
        };
        let (ra, ca) = if g.op_a == Op::N {
            (g.m, g.k)
        } else {
            (g.k, g.m)
        };
        let (rb, cb) = if g.op_b == Op::N {
            (g.k, g.n)
        } else {
            (g.n, g.k)
        };
        check_extent("sgemm A", g.a, span(ra, ca, g.lda));
        check_extent("sgemm B", g.b, span(rb, cb, g.ldb));
        check_extent("sgemm C", g.c, span(g.m, g.n, g.ldc));
        let (a, b, c) = (g.a as *const f32, g.b as *const f32, g.c as *mut f32);
        for j in 0..g.n {
            for i in 0..g.m {
                let mut acc = 0.0f64;
                for p in 0..g.k {
                    let ai = if g.op_a == Op::N {
                        i + p * g.lda
                    } else {
                        p + i * g.lda
                    };
                    let bi = if g.op_b == Op::N {
                        p + j * g.ldb
                    } else {
                        j + p * g.ldb
                    };
                    // SAFETY: the engine checked that every matrix lies inside its buffer.
                    acc += f64::from(unsafe { *a.add(ai) }) * f64::from(unsafe { *b.add(bi) });
                }
                let ci = i + j * g.ldc;
                // SAFETY: as above.
                unsafe {
                    let old = if g.beta == 0.0 {
                        0.0
                    } else {
                        g.beta * *c.add(ci)
                    };
                    *c.add(ci) = g.alpha * acc as f32 + old;
                }
            }
        }
    }

    fn scratch(&self, len: usize) -> Option<u64> {
        let mut s = self.scratch.lock().unwrap();
        if s.as_ref().is_none_or(|b| b.len < len) {
            // Fill with NaN rather than zeros so that a kernel reading scratch it did not write fails.
            let buf = HostBuf::<f32>::zeroed(len);
            for i in 0..len {
                // SAFETY: in bounds of the new buffer.
                unsafe { *buf.ptr.add(i) = f32::NAN };
            }
            *s = Some(buf);
        }
        s.as_ref().map(|b| b.addr(0))
    }

    fn failed(&self) -> bool {
        self.error.lock().unwrap().is_some()
    }

    type Module = Arc<libloading::Library>;

    fn build_module(&self, unit: &Unit) -> Result<Self::Module, BackendError> {
        Ok(unit_library(unit))
    }

    fn launch_module(
        &self,
        module: &Self::Module,
        kernel: ProgramKernel,
        grid: Grid,
        args: &[Arg],
    ) {
        assert!(grid.0 >= 1 && grid.1 >= 1, "{}: empty grid", kernel.entry());
        check_pointer_args(kernel.entry(), kernel.params(), args);
        emulated_launch(module, kernel.entry(), grid, kernel.cooperative(), args);
    }

    fn record_failure(&self, error: BackendError) {
        self.error.lock().unwrap().get_or_insert(error);
    }
}

/// The emulated backend, or `None` after printing why it cannot be built here.
fn emulated_or_skip() -> Option<Engine<Emulator>> {
    match compiler() {
        Ok(_) => Some(Engine::from_executor(Emulator::default())),
        Err(why) => {
            eprintln!("skipped: no C++ compiler ({why}; set CXX)");
            None
        }
    }
}

macro_rules! emulated_or_skip {
    () => {
        match emulated_or_skip() {
            Some(b) => b,
            None => return,
        }
    };
}

stde_core::conformance_tests!(emulated, emulated_or_skip!(), Tolerance::F32);

/// Training steps composed by `stde_core::train` (sampling, the jet forward pass, the residual, the
/// adjoint, Adam, evaluation) on the emulated kernels against the f64 reference backend, for every
/// estimator, collapsed or not, and with a weight-shared first block.
#[test]
fn training_steps_match_the_reference() {
    use stde_core::backend::reference::ReferenceBackend;
    use stde_core::train::{EstimatorKind, TrainConfig, Trainer};

    let Some(emulated) = emulated_or_skip() else {
        return;
    };
    for (estimator, collapsed, share_blocks) in [
        (EstimatorKind::Sparse, true, None),
        (EstimatorKind::Sparse, false, None),
        (EstimatorKind::Dense, true, None),
        (EstimatorKind::Exact, false, None),
        (EstimatorKind::Sparse, true, Some(3)),
        (EstimatorKind::Dense, false, Some(3)),
    ] {
        let cfg = TrainConfig {
            equation: "allen-cahn-two-body".into(),
            dim: 9,
            steps: 4,
            batch: 5,
            rand_dims: 3,
            estimator,
            width: 16,
            depth: 3,
            lr: 1e-2,
            seed: 7,
            eval_every: 2,
            test_points: 40,
            collapsed,
            share_blocks,
            ..TrainConfig::default()
        };
        let reference = ReferenceBackend;
        let mut expected = Trainer::new(&reference, cfg.clone(), None).expect("reference trainer");
        let mut got = Trainer::new(&emulated, cfg.clone(), None).expect("emulated trainer");
        for step in 0..cfg.steps {
            expected.accumulate_gradient();
            got.accumulate_gradient();
            let ge = pollster::block_on(expected.gradient()).unwrap();
            let gg = pollster::block_on(got.gradient()).unwrap();
            stde_core::conformance::compare(
                &format!("gradient {estimator:?} collapsed={collapsed} share-blocks={share_blocks:?} step {step}"),
                &gg,
                &ge,
                Tolerance {
                    rel: 1e-3,
                    abs: 1e-4,
                },
            )
            .unwrap_or_else(|m| panic!("{m}"));
            let (le, lg) = (
                pollster::block_on(expected.loss()).unwrap(),
                pollster::block_on(got.loss()).unwrap(),
            );
            assert!(
                (le - lg).abs() <= 1e-4 * le.abs().max(1e-3),
                "{estimator:?} collapsed={collapsed} share-blocks={share_blocks:?} step {step}: loss {lg} vs reference {le}"
            );
            expected.apply_update();
            got.apply_update();
        }
        let (ee, eg) = (
            pollster::block_on(expected.evaluate()).unwrap(),
            pollster::block_on(got.evaluate()).unwrap(),
        );
        assert!(
            (ee.rel_l2 - eg.rel_l2).abs() <= 1e-3 * ee.rel_l2,
            "{estimator:?} collapsed={collapsed} share-blocks={share_blocks:?}: relative L2 {} vs reference {}",
            eg.rel_l2,
            ee.rel_l2
        );
    }
}

mod program_cases;

#[path = "emulator/programs.rs"]
mod programs;

#[path = "emulator/new_problems.rs"]
mod new_problems;
