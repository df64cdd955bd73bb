//! The CUDA C kernels: the typed [`Kernel`] enum, the kernel files ([`Source`]) they live in, each
//! entry point's argument list, the generated prelude that fixes the jet order, and NVRTC compilation.
//!
//! A program handed to NVRTC is a generated prelude (a comment naming it and, for order-specialised
//! files, `#define STDE_K 4`), then the shared headers (`common.cuh`, and `philox.cuh` where needed),
//! then the kernel file, each introduced by a `#line 1 "<file>"` directive so that NVRTC's messages
//! point at the real file and line. Nothing is spliced into the middle of a file.
//!
//! Compilation needs only the NVRTC library, not a GPU, so `tests/nvrtc_compile.rs` compiles every
//! file for every order it is specialised for, for `sm_80` and `sm_90`, in CI.

use std::ffi::{c_char, CString};

use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};

/// Highest jet order the jet kernels are built for (their series live in registers, `K + 1` each).
pub const MAX_ORDER: usize = 16;

/// The architectures the NVRTC check compiles for: A100 (`sm_80`) and H100/H200 (`sm_90`).
pub const CHECKED_ARCHS: [Arch; 2] = [Arch { major: 8, minor: 0 }, Arch { major: 9, minor: 0 }];

/// A header prepended to kernel files: its file name and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// File name under `native-cuda/kernels/`.
    pub file_name: &'static str,
    /// Contents.
    pub text: &'static str,
}

/// Integer types, launch helpers and block reductions.
pub const COMMON: Header = Header {
    file_name: "common.cuh",
    text: include_str!("../kernels/common.cuh"),
};

/// Philox4x32-10 and the uniform, Rademacher and normal conversions.
pub const PHILOX: Header = Header {
    file_name: "philox.cuh",
    text: include_str!("../kernels/philox.cuh"),
};

/// Math overloads, reductions and accumulator storage of generated program kernels
/// ([`crate::codegen`]).
pub const PROGRAM: Header = Header {
    file_name: "program.cuh",
    text: include_str!("../kernels/program.cuh"),
};

/// Taylor series helpers of order `STDE_K` and the probe direction, for generated series kernels.
pub const PROGRAM_SERIES: Header = Header {
    file_name: "program_series.cuh",
    text: include_str!("../kernels/program_series.cuh"),
};

/// The primal entry points of a generated program, appended after its generated part.
pub const PROGRAM_PRIMAL_ENTRY: Header = Header {
    file_name: "program_primal.cu",
    text: include_str!("../kernels/program_primal.cu"),
};

/// The series entry point of a generated program, appended after its generated part.
pub const PROGRAM_SERIES_ENTRY: Header = Header {
    file_name: "program_series.cu",
    text: include_str!("../kernels/program_series.cu"),
};

/// Every header, for tests that check each file under `kernels/` is used.
pub const HEADERS: [Header; 6] = [
    COMMON,
    PHILOX,
    PROGRAM,
    PROGRAM_SERIES,
    PROGRAM_PRIMAL_ENTRY,
    PROGRAM_SERIES_ENTRY,
];

/// A kernel file: the unit NVRTC compiles (once per jet order for [`Source::JetActivation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `bias.cu`: bias addition and column sums.
    Bias,
    /// `input_layer.cu`: the broadcast of the input layer's tangent rows to every point.
    InputLayer,
    /// `jet_activation.cu`: fused jet rules of tanh and sin, forward and adjoint.
    JetActivation,
    /// `sample.cu`: counter-based sampling.
    Sample,
    /// `adam.cu`: the fused Adam update.
    Adam,
    /// `generic.cu`: the generic step primitives (slot probes, readout, point samplers).
    Generic,
}

impl Source {
    /// Every kernel file.
    pub const ALL: [Source; 6] = [
        Source::Bias,
        Source::InputLayer,
        Source::JetActivation,
        Source::Sample,
        Source::Adam,
        Source::Generic,
    ];

    /// The file name under `native-cuda/kernels/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Source::Bias => "bias.cu",
            Source::InputLayer => "input_layer.cu",
            Source::JetActivation => "jet_activation.cu",
            Source::Sample => "sample.cu",
            Source::Adam => "adam.cu",
            Source::Generic => "generic.cu",
        }
    }

    /// The file's text.
    pub fn text(self) -> &'static str {
        match self {
            Source::Bias => include_str!("../kernels/bias.cu"),
            Source::InputLayer => include_str!("../kernels/input_layer.cu"),
            Source::JetActivation => include_str!("../kernels/jet_activation.cu"),
            Source::Sample => include_str!("../kernels/sample.cu"),
            Source::Adam => include_str!("../kernels/adam.cu"),
            Source::Generic => include_str!("../kernels/generic.cu"),
        }
    }

    /// The headers prepended before the file, in order.
    pub fn headers(self) -> &'static [Header] {
        match self {
            Source::Sample | Source::Generic => &[COMMON, PHILOX],
            _ => &[COMMON],
        }
    }

    /// Whether the file is specialised by the jet order (`STDE_K`): then one module per order.
    pub fn depends_on_order(self) -> bool {
        self == Source::JetActivation
    }

    /// The orders a module of this file is built for: `Some(0..=MAX_ORDER)` for order-specialised
    /// files, `None` alone otherwise.
    pub fn orders(self) -> Vec<Option<usize>> {
        if self.depends_on_order() {
            (0..=MAX_ORDER).map(Some).collect()
        } else {
            vec![None]
        }
    }

    /// The kernels whose entry points live in this file.
    pub fn kernels(self) -> impl Iterator<Item = Kernel> {
        Kernel::ALL.into_iter().filter(move |k| k.source() == self)
    }
}

/// The type of one kernel parameter, as written in the `.cu` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// `const float* __restrict__`: read.
    F32In,
    /// `float* __restrict__`: written (or read and written).
    F32Out,
    /// `const u32* __restrict__`: read.
    U32In,
    /// `u32` (unsigned int) by value.
    U32,
    /// `u64` (unsigned long long) by value.
    U64,
    /// `float` by value.
    F32,
}

/// One kernel parameter: its name in the `.cu` file and its type.
pub type Param = (&'static str, ParamType);

/// Every compute kernel (entry point) of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// Bias added to the primal rows.
    AddBias,
    /// Column sums (bias gradient, per-direction tangent cotangents).
    ColumnSums,
    /// The input layer's bias on the primal rows, and its tangent rows broadcast to every point of
    /// the tangent blocks.
    InputFill,
    /// Jet rule of tanh.
    JetTanhForward,
    /// Adjoint of the jet rule of tanh.
    JetTanhBackward,
    /// Jet rule of sin.
    JetSinForward,
    /// Adjoint of the jet rule of sin.
    JetSinBackward,
    /// Flat Rademacher or Gaussian fills.
    SampleFlat,
    /// Unit-ball points.
    SampleBall,
    /// Fused Adam update.
    Adam,
    /// One-hot probe tangents in any slot: a scaled gather of columns of `W1`, one row per tangent block.
    SlotGather,
    /// Adjoint of [`Kernel::SlotGather`]: scaled scatter-add into columns of `∂W1`.
    SlotScatter,
    /// The ansatz `u = A + B·m` and the weighted readout of the term estimates.
    ReadoutForward,
    /// Adjoint of [`Kernel::ReadoutForward`]: the cotangent of the model output.
    ReadoutBackward,
    /// Points of every sampler, with an optional time column.
    SamplePoints,
    /// The shared block map's primal rows: one block dot product per (point, block).
    SharedPrimal,
    /// The shared block map's tangent rows, one per tangent block (one-hot or dense probes).
    SharedRows,
    /// The shared block map's tangent rows broadcast to every point.
    SharedFill,
    /// The shared block map's weight adjoint from the primal rows, in chunks of (point, block) pairs.
    SharedGradPartial,
    /// The shared block map's weight adjoint: the chunks summed in order, plus the tangent blocks' part.
    SharedGradReduce,
}

use ParamType::{F32In, F32Out, U32In, F32, U32, U64};

impl Kernel {
    /// All kernels.
    pub const ALL: [Kernel; 20] = [
        Kernel::AddBias,
        Kernel::ColumnSums,
        Kernel::InputFill,
        Kernel::JetTanhForward,
        Kernel::JetTanhBackward,
        Kernel::JetSinForward,
        Kernel::JetSinBackward,
        Kernel::SampleFlat,
        Kernel::SampleBall,
        Kernel::Adam,
        Kernel::SlotGather,
        Kernel::SlotScatter,
        Kernel::ReadoutForward,
        Kernel::ReadoutBackward,
        Kernel::SamplePoints,
        Kernel::SharedPrimal,
        Kernel::SharedRows,
        Kernel::SharedFill,
        Kernel::SharedGradPartial,
        Kernel::SharedGradReduce,
    ];

    /// The `extern "C"` entry point's name.
    pub fn entry(self) -> &'static str {
        match self {
            Kernel::AddBias => "add_bias",
            Kernel::ColumnSums => "column_sums",
            Kernel::InputFill => "input_fill",
            Kernel::JetTanhForward => "jet_tanh_forward",
            Kernel::JetTanhBackward => "jet_tanh_backward",
            Kernel::JetSinForward => "jet_sin_forward",
            Kernel::JetSinBackward => "jet_sin_backward",
            Kernel::SampleFlat => "sample_flat",
            Kernel::SampleBall => "sample_ball",
            Kernel::Adam => "adam",
            Kernel::SlotGather => "slot_gather",
            Kernel::SlotScatter => "slot_scatter",
            Kernel::ReadoutForward => "readout_forward",
            Kernel::ReadoutBackward => "readout_backward",
            Kernel::SamplePoints => "sample_points",
            Kernel::SharedPrimal => "shared_primal",
            Kernel::SharedRows => "shared_rows",
            Kernel::SharedFill => "shared_fill",
            Kernel::SharedGradPartial => "shared_grad_partial",
            Kernel::SharedGradReduce => "shared_grad_reduce",
        }
    }

    /// The file holding the entry point.
    pub fn source(self) -> Source {
        match self {
            Kernel::AddBias | Kernel::ColumnSums => Source::Bias,
            Kernel::InputFill => Source::InputLayer,
            Kernel::JetTanhForward
            | Kernel::JetTanhBackward
            | Kernel::JetSinForward
            | Kernel::JetSinBackward => Source::JetActivation,
            Kernel::SampleFlat | Kernel::SampleBall => Source::Sample,
            Kernel::Adam => Source::Adam,
            Kernel::SlotGather
            | Kernel::SlotScatter
            | Kernel::ReadoutForward
            | Kernel::ReadoutBackward
            | Kernel::SamplePoints
            | Kernel::SharedPrimal
            | Kernel::SharedRows
            | Kernel::SharedFill
            | Kernel::SharedGradPartial
            | Kernel::SharedGradReduce => Source::Generic,
        }
    }

    /// The parameters in order, exactly as the `.cu` file declares them (checked by a test that reads
    /// the files). The launcher checks every launch's arguments against this list.
    pub fn params(self) -> &'static [Param] {
        match self {
            Kernel::AddBias => &[
                ("z", F32Out),
                ("bias", F32In),
                ("n_points", U32),
                ("width", U32),
            ],
            Kernel::ColumnSums => &[
                ("src", F32In),
                ("dst", F32Out),
                ("rows", U32),
                ("width", U32),
                ("src_block_stride", U64),
                ("n_src_blocks", U32),
                ("dst_stride", U32),
                ("accumulate", U32),
            ],
            Kernel::InputFill => &[
                ("z", F32Out),
                ("bias", F32In),
                ("rows", F32In),
                ("n_points", U32),
                ("width", U32),
                ("n_blocks", U32),
                ("n_rows", U32),
                ("summed_top", U32),
            ],
            Kernel::JetTanhForward | Kernel::JetSinForward => &[
                ("z", F32In),
                ("h", F32Out),
                ("n_points", U32),
                ("width", U32),
                ("n_dirs", U32),
                ("collapsed", U32),
            ],
            Kernel::JetTanhBackward | Kernel::JetSinBackward => &[
                ("z", F32In),
                ("h_bar", F32In),
                ("z_bar", F32Out),
                ("n_points", U32),
                ("width", U32),
                ("n_dirs", U32),
                ("collapsed", U32),
            ],
            Kernel::SampleFlat => &[
                ("out", F32Out),
                ("count", U64),
                ("key0", U32),
                ("key1", U32),
                ("stream", U32),
                ("step", U32),
                ("kind", U32),
            ],
            Kernel::SampleBall => &[
                ("out", F32Out),
                ("n_points", U32),
                ("dim", U32),
                ("first", U32),
                ("key0", U32),
                ("key1", U32),
                ("stream", U32),
                ("step", U32),
            ],
            Kernel::Adam => &[
                ("params", F32Out),
                ("grad", F32Out),
                ("m", F32Out),
                ("v", F32Out),
                ("len", U64),
                ("lr", F32),
                ("beta1", F32),
                ("beta2", F32),
                ("one_minus_beta1", F32),
                ("one_minus_beta2", F32),
                ("c1", F32),
                ("c2", F32),
                ("eps", F32),
            ],
            Kernel::SlotGather => &[
                ("w1", F32In),
                ("slot_index", U32In),
                ("slot_coeff", F32In),
                ("rows", F32Out),
                ("n_dirs", U32),
                ("order", U32),
                ("width", U32),
                ("stride", U64),
                ("collapsed", U32),
            ],
            Kernel::SlotScatter => &[
                ("g", F32In),
                ("slot_index", U32In),
                ("slot_coeff", F32In),
                ("grad_w1", F32Out),
                ("n_dirs", U32),
                ("order", U32),
                ("width", U32),
                ("stride", U64),
                ("collapsed", U32),
            ],
            Kernel::ReadoutForward => &[
                ("m", F32In),
                ("ansatz", F32In),
                ("weights", F32In),
                ("features", F32Out),
                ("n_points", U32),
                ("n_dirs", U32),
                ("order", U32),
                ("n_terms", U32),
                ("collapsed", U32),
            ],
            Kernel::ReadoutBackward => &[
                ("ansatz", F32In),
                ("weights", F32In),
                ("feature_bar", F32In),
                ("m_bar", F32Out),
                ("n_points", U32),
                ("n_dirs", U32),
                ("order", U32),
                ("n_terms", U32),
                ("collapsed", U32),
            ],
            Kernel::SamplePoints => &[
                ("out", F32Out),
                ("n_points", U32),
                ("dim", U32),
                ("stride", U32),
                ("first", U32),
                ("key0", U32),
                ("key1", U32),
                ("stream", U32),
                ("step", U32),
                ("sampler", U32),
                ("p0", F32),
                ("p1", F32),
                ("time_kind", U32),
                ("time_value", F32),
            ],
            Kernel::SharedPrimal => &[
                ("points", F32In),
                ("params", F32In),
                ("out", F32Out),
                ("n_points", U32),
                ("n_blocks", U32),
                ("block", U32),
                ("stride", U64),
                ("offset", U64),
            ],
            Kernel::SharedRows => &[
                ("params", F32In),
                ("slot_index", U32In),
                ("slot_coeff", F32In),
                ("dense", F32In),
                ("rows", F32Out),
                ("n_dirs", U32),
                ("order", U32),
                ("n_blocks", U32),
                ("block", U32),
                ("stride", U64),
                ("offset", U64),
                ("dense_kind", U32),
                ("collapsed", U32),
            ],
            Kernel::SharedFill => &[
                ("rows", F32In),
                ("out", F32Out),
                ("n_points", U32),
                ("n_blocks", U32),
                ("n_rows", U32),
            ],
            Kernel::SharedGradPartial => &[
                ("points", F32In),
                ("y_bar", F32In),
                ("partial", F32Out),
                ("n_points", U32),
                ("n_blocks", U32),
                ("block", U32),
                ("stride", U64),
                ("n_chunks", U32),
            ],
            Kernel::SharedGradReduce => &[
                ("partial", F32In),
                ("sums", F32In),
                ("slot_index", U32In),
                ("slot_coeff", F32In),
                ("dense", F32In),
                ("grad", F32Out),
                ("n_chunks", U32),
                ("n_dirs", U32),
                ("order", U32),
                ("n_blocks", U32),
                ("block", U32),
                ("stride", U64),
                ("dense_kind", U32),
                ("collapsed", U32),
            ],
        }
    }
}

/// A GPU architecture (compute capability), e.g. `sm_90` for an H100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arch {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Arch {
    /// NVRTC's name for it: `sm_90`.
    pub fn sm(self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

/// Checks that `order` is given exactly for order-specialised files and is at most [`MAX_ORDER`].
#[track_caller]
fn check_order(source: Source, order: Option<usize>) {
    match order {
        Some(k) => {
            assert!(
                source.depends_on_order(),
                "{} is not specialised by the jet order",
                source.file_name()
            );
            assert!(
                k <= MAX_ORDER,
                "the CUDA jet kernels support orders up to {MAX_ORDER}, got {k}"
            );
        }
        None => assert!(
            !source.depends_on_order(),
            "{} needs a jet order",
            source.file_name()
        ),
    }
}

/// The generated prelude of one program: a comment naming it and, for order-specialised files,
/// `#define STDE_K <order>`.
///
/// # Panics
/// If `order` is given for a file that does not depend on it, is missing for one that does, or is
/// above [`MAX_ORDER`].
#[track_caller]
pub fn prelude(source: Source, order: Option<usize>) -> String {
    check_order(source, order);
    let mut out = format!(
        "// Generated by stde-cuda: the program of {}",
        source.file_name()
    );
    match order {
        Some(k) => out.push_str(&format!(" for jet order {k}.\n#define STDE_K {k}\n")),
        None => out.push_str(".\n"),
    }
    out
}

/// The whole program text handed to NVRTC: prelude, headers, then the file, each part after a
/// `#line 1 "<file>"` directive.
///
/// # Panics
/// As [`prelude`].
#[track_caller]
pub fn program_text(source: Source, order: Option<usize>) -> String {
    let mut text = prelude(source, order);
    for part in source
        .headers()
        .iter()
        .map(|h| (h.file_name, h.text))
        .chain(std::iter::once((source.file_name(), source.text())))
    {
        text.push_str(&format!("#line 1 \"{}\"\n", part.0));
        text.push_str(part.1);
        if !part.1.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// The program's name in NVRTC's messages: `jet_activation.cu[K=4]`.
pub fn program_name(source: Source, order: Option<usize>) -> String {
    match order {
        Some(k) => format!("{}[K={k}]", source.file_name()),
        None => source.file_name().to_string(),
    }
}

/// The NVRTC options for `arch`. No fast math (the samplers must use the accurate `logf`/`sinf`/…, and
/// the jet rules keep their f32 accuracy); C++17 for `if constexpr`.
pub fn compile_options(arch: Arch) -> Vec<String> {
    vec![
        format!("--gpu-architecture={}", arch.sm()),
        "--std=c++17".to_string(),
        "--display-error-number".to_string(),
    ]
}

/// What NVRTC produced for one program.
#[derive(Clone, Debug)]
pub struct CompiledProgram {
    /// The PTX (text).
    pub ptx: String,
    /// The SASS binary for the real architecture, when NVRTC produced one.
    pub cubin: Option<Vec<u8>>,
    /// The compiler's log: empty for a clean compile; warnings otherwise.
    pub log: String,
}

impl CompiledProgram {
    /// Whether the log reports any warning (NVRTC has no `-Werror`, so the check reads the log).
    pub fn has_warnings(&self) -> bool {
        self.log.to_ascii_lowercase().contains("warning")
    }
}

/// Why NVRTC did not produce a program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// The NVRTC library could not be loaded.
    #[error(
        "the NVRTC library (libnvrtc.so.13) was not found on the library path; install the CUDA \
         toolkit or the `nvidia-cuda-nvrtc` wheel and add its lib directory to LD_LIBRARY_PATH"
    )]
    NvrtcNotFound,
    /// An NVRTC call failed outside compilation proper.
    #[error("NVRTC failed to {step} for {program}: {code}")]
    Nvrtc {
        /// The program.
        program: String,
        /// What was being done.
        step: &'static str,
        /// NVRTC's result code.
        code: String,
    },
    /// The program did not compile.
    #[error("{program} does not compile with {options:?}:\n{log}")]
    Compile {
        /// The program.
        program: String,
        /// The options used.
        options: Vec<String>,
        /// The compiler's log.
        log: String,
    },
}

/// Whether the NVRTC library can be loaded (never panics).
pub fn nvrtc_available() -> bool {
    // SAFETY: loading a shared library by name runs its initialisers; NVRTC's are benign.
    std::panic::catch_unwind(|| unsafe { nvrtc_sys::is_culib_present() }).unwrap_or(false)
}

/// NVRTC's version `(major, minor)`.
///
/// # Errors
/// [`CompileError::NvrtcNotFound`] without the library; [`CompileError::Nvrtc`] if the call fails.
pub fn nvrtc_version() -> Result<(i32, i32), CompileError> {
    if !nvrtc_available() {
        return Err(CompileError::NvrtcNotFound);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: both pointers are valid for writes.
    let status = unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) };
    status.result().map_err(|e| CompileError::Nvrtc {
        program: "-".into(),
        step: "report its version",
        code: format!("{e:?}"),
    })?;
    Ok((major, minor))
}

/// Destroys an NVRTC program when dropped, on every path out of [`compile`].
struct ProgramGuard(nvrtc_sys::nvrtcProgram);

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        // SAFETY: the program was created by `create_program` and is destroyed only here. A failure to
        // free it leaks a little host memory, nothing worse.
        let _ = unsafe { nvrtc::destroy_program(self.0) };
    }
}

/// NVRTC's byte buffers as a string (they end with a NUL).
fn c_chars_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles one program (`source` at `order`) for `arch` with NVRTC: PTX, the cubin, and the log.
///
/// # Errors
/// [`CompileError`] if NVRTC is missing, fails, or rejects the program (with its log).
///
/// # Panics
/// As [`prelude`].
#[track_caller]
pub fn compile(
    source: Source,
    order: Option<usize>,
    arch: Arch,
) -> Result<CompiledProgram, CompileError> {
    compile_text(
        &program_name(source, order),
        program_text(source, order),
        arch,
    )
}

/// Compiles a whole program text (e.g. a generated one, [`crate::codegen::Unit`]) named `program` in
/// NVRTC's messages, for `arch`.
///
/// # Errors
/// As [`compile`].
///
/// # Panics
/// If the text contains a NUL byte (neither kernel files nor generated code do).
pub fn compile_text(
    program: &str,
    text: String,
    arch: Arch,
) -> Result<CompiledProgram, CompileError> {
    if !nvrtc_available() {
        return Err(CompileError::NvrtcNotFound);
    }
    let program = program.to_string();
    let nvrtc_err = |step: &'static str| {
        let program = program.clone();
        move |e: nvrtc::NvrtcError| CompileError::Nvrtc {
            program,
            step,
            code: format!("{e:?}"),
        }
    };
    let src = CString::new(text).expect("kernel sources contain no NUL byte");
    let name = CString::new(program.clone()).expect("program names contain no NUL byte");
    let prog = ProgramGuard(
        nvrtc::create_program(&src, Some(&name)).map_err(nvrtc_err("create the program"))?,
    );
    let options = compile_options(arch);
    // SAFETY: `prog` is a live program; `src` and `name` outlive it (dropped after the guard).
    let compiled = unsafe { nvrtc::compile_program(prog.0, &options) };
    // SAFETY: as above.
    let log = unsafe { nvrtc::get_program_log(prog.0) }
        .map(|l| c_chars_to_string(&l))
        .map_err(nvrtc_err("read the program log"))?;
    if compiled.is_err() {
        return Err(CompileError::Compile {
            program,
            options,
            log,
        });
    }
    // SAFETY: as above, after a successful compilation.
    let ptx = unsafe { nvrtc::get_ptx(prog.0) }
        .map(|p| c_chars_to_string(&p))
        .map_err(nvrtc_err("read the PTX"))?;
    let cubin = get_cubin(&prog);
    drop(prog);
    drop((src, name));
    Ok(CompiledProgram { ptx, cubin, log })
}

/// The cubin of a compiled program, `None` if NVRTC made none (a virtual architecture) or fails.
fn get_cubin(prog: &ProgramGuard) -> Option<Vec<u8>> {
    let mut size = 0usize;
    // SAFETY: `prog` is a live, compiled program; `size` is valid for writes.
    let status = unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog.0, &mut size) };
    if status.result().is_err() || size == 0 {
        return None;
    }
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds the `size` bytes NVRTC reported.
    let status = unsafe { nvrtc_sys::nvrtcGetCUBIN(prog.0, buf.as_mut_ptr().cast::<c_char>()) };
    status.result().ok().map(|()| buf)
}
