//! Program → CUDA C: the generated part of a compiled [`Program`]'s kernels, between the fixed files
//! that every program shares.
//!
//! A program becomes two kinds of NVRTC program ([`Unit`]):
//!
//! * **Primal** (one per program): `common.cuh`, `program.cuh`, the generated part, `program_primal.cu`.
//!   The generated part holds the sizes, each loop body as a function of the window
//!   (`prog_loop<L>_primal`, in f32), the reduction of every loop over the lanes serving a point
//!   (`prog_point_loops<TPP>`: sums in f64, max with its first window) and the main body
//!   (`prog_main_primal`, in f64). Its three entry points serve a point with one thread, a warp or a
//!   block ([`PointLayout`]).
//! * **Series** (one per program and jet order, built on first use): the prelude `#define STDE_K <K>`,
//!   `common.cuh`, `program.cuh`, `program_series.cuh`, the generated part, `program_series.cu`. The
//!   generated part holds each loop body on series (`prog_loop<L>_series`), the code that re-evaluates
//!   only the windows a one-hot direction touches (`O(window)` per direction: the windows `j − o` for each
//!   probed coordinate `j` and each offset `o` the body reads, each once), or every window for a dense
//!   direction or one that moves a fixed coordinate the body reads, and the main body on series.
//!
//! Nodes whose value cannot move along a direction (constants, parameters and what is computed from
//! them alone) stay scalars in series code; the others are arrays `T[K + 1]` handled by the helpers of
//! `program_series.cuh`, so that every series rule is written once, in a real file. Constants are printed
//! exactly: hex-float literals, rounded to f32 once in the f32 window bodies.
//!
//! Programs are validated first ([`validate`]): node order, every index against the program's sizes, and
//! every window read against its loop's range, so the generated code never reads outside its buffers.

use std::fmt::{self, Write as _};
use std::hash::{Hash as _, Hasher as _};

use stde_core::program::{Func, Loop, NodeId, Op, Program, ReduceKind};

use crate::exec::BLOCK;
use crate::kernels::{
    self, Header, Param, ParamType, COMMON, MAX_ORDER, PROGRAM, PROGRAM_PRIMAL_ENTRY,
    PROGRAM_SERIES, PROGRAM_SERIES_ENTRY,
};

/// A node list of a program: the main body or the body of a loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// [`Program::nodes`].
    Main,
    /// [`Loop::nodes`] of loop `l`.
    Loop(usize),
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Main => f.write_str("the main body"),
            Body::Loop(l) => write!(f, "the body of loop {l}"),
        }
    }
}

/// Why a program cannot be turned into CUDA C. Programs come from the lowering in core, so each of
/// these is a bug there (or in a hand-built program), reported before any code reads out of bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodegenError {
    /// An operand that is not an earlier node.
    #[error("node {node} of {body} reads node {operand}, which does not come before it")]
    ForwardOperand {
        /// Where.
        body: Body,
        /// The reading node.
        node: u32,
        /// The operand's id.
        operand: u32,
    },
    /// An op in a body where it has no meaning (a window read in the main body, a feature or a
    /// reduced value in a loop body, the time without a time column).
    #[error("node {node} of {body}: {op} cannot appear there")]
    Misplaced {
        /// Where.
        body: Body,
        /// The node.
        node: u32,
        /// What it is.
        op: &'static str,
    },
    /// A fixed index past the end of what it indexes.
    #[error("node {node} of {body} reads {what} {index}, but there are {count}")]
    OutOfRange {
        /// Where.
        body: Body,
        /// The node.
        node: u32,
        /// Coordinate, parameter, feature or accumulator.
        what: &'static str,
        /// The index read.
        index: u64,
        /// How many exist.
        count: u64,
    },
    /// A window read that leaves its array for some window of the loop's range.
    #[error(
        "node {node} of loop {loop_index} reads {what} {first}..={last} over windows {lo}..{hi}, \
         outside 0..{count}"
    )]
    WindowOutOfRange {
        /// The loop.
        loop_index: usize,
        /// The node.
        node: u32,
        /// Coordinates or parameters.
        what: &'static str,
        /// The index read at the first window.
        first: i64,
        /// The index read at the last window.
        last: i64,
        /// First window.
        lo: u32,
        /// One past the last window.
        hi: u32,
        /// Length of the array.
        count: u64,
    },
    /// A loop whose first window is past its end.
    #[error("loop {loop_index} runs from window {lo} to {hi}")]
    BadRange {
        /// The loop.
        loop_index: usize,
        /// First window.
        lo: u32,
        /// One past the last window.
        hi: u32,
    },
    /// An output or accumulated value that names no node.
    #[error("{what} {index} is node {node}, but {body} has {len} nodes")]
    BadRoot {
        /// Output or accumulator.
        what: &'static str,
        /// Its position.
        index: usize,
        /// The node named.
        node: u32,
        /// Where.
        body: Body,
        /// Nodes in that body.
        len: usize,
    },
    /// Series mode on a program that reads features.
    #[error("a program that reads features runs in primal mode only")]
    ReadsFeatures,
    /// A jet order without series kernels.
    #[error("series kernels exist for jet orders 1..={max}, got {order}")]
    Order {
        /// The order asked for.
        order: usize,
        /// The largest supported.
        max: usize,
    },
}

/// How many threads serve one point in the primal kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointLayout {
    /// One thread per point: programs without loops or with short ones.
    Thread,
    /// A warp per point: loops up to a few hundred windows.
    Warp,
    /// A block of [`BLOCK`] threads per point: long loops (`d` in the thousands and beyond).
    Block,
}

/// Loops up to this many windows run on one thread per point.
const THREAD_MAX_WINDOWS: u32 = 8;
/// Loops up to this many windows run on one warp per point.
const WARP_MAX_WINDOWS: u32 = 512;

impl PointLayout {
    /// Every layout.
    pub const ALL: [PointLayout; 3] = [PointLayout::Thread, PointLayout::Warp, PointLayout::Block];

    /// The layout for `program`, by its longest loop: a warp's lanes would idle on a few windows, and
    /// a block's reduction costs more than it saves below a few hundred.
    pub fn for_program(program: &Program) -> Self {
        let longest = program
            .loops
            .iter()
            .map(|l| l.hi.saturating_sub(l.lo))
            .max()
            .unwrap_or(0);
        if longest <= THREAD_MAX_WINDOWS {
            PointLayout::Thread
        } else if longest <= WARP_MAX_WINDOWS {
            PointLayout::Warp
        } else {
            PointLayout::Block
        }
    }

    /// Threads serving one point.
    pub fn threads_per_point(self) -> u32 {
        match self {
            PointLayout::Thread => 1,
            PointLayout::Warp => 32,
            PointLayout::Block => BLOCK,
        }
    }

    /// Points served by one block.
    pub fn points_per_block(self) -> u32 {
        BLOCK / self.threads_per_point()
    }

    /// The primal entry point of this layout.
    pub fn kernel(self) -> ProgramKernel {
        match self {
            PointLayout::Thread => ProgramKernel::PrimalThread,
            PointLayout::Warp => ProgramKernel::PrimalWarp,
            PointLayout::Block => ProgramKernel::PrimalBlock,
        }
    }
}

/// The entry points of generated programs (the same for every program; the files
/// `program_primal.cu` and `program_series.cu` declare them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgramKernel {
    /// Primal mode, one thread per point.
    PrimalThread,
    /// Primal mode, one warp per point.
    PrimalWarp,
    /// Primal mode, one block per point.
    PrimalBlock,
    /// Series mode, one thread per (point, direction).
    Series,
}

use ParamType::{F32In, F32Out, U32In, U32};

/// Parameters of the three primal entry points.
const PRIMAL_PARAMS: [Param; 8] = [
    ("points", F32In),
    ("features", F32In),
    ("params", F32In),
    ("out", F32Out),
    ("acc", F32Out),
    ("n_points", U32),
    ("out_point_stride", U32),
    ("out_output_stride", U32),
];

/// Parameters of the series entry point.
const SERIES_PARAMS: [Param; 10] = [
    ("points", F32In),
    ("params", F32In),
    ("acc", F32In),
    ("slot_index", U32In),
    ("slot_coeff", F32In),
    ("dense", F32In),
    ("out", F32Out),
    ("n_points", U32),
    ("n_dirs", U32),
    ("dense_probes", U32),
];

impl ProgramKernel {
    /// Every entry point.
    pub const ALL: [ProgramKernel; 4] = [
        ProgramKernel::PrimalThread,
        ProgramKernel::PrimalWarp,
        ProgramKernel::PrimalBlock,
        ProgramKernel::Series,
    ];

    /// The entry points of a primal unit.
    pub const PRIMAL: [ProgramKernel; 3] = [
        ProgramKernel::PrimalThread,
        ProgramKernel::PrimalWarp,
        ProgramKernel::PrimalBlock,
    ];

    /// The `extern "C"` name.
    pub fn entry(self) -> &'static str {
        match self {
            ProgramKernel::PrimalThread => "prog_primal_thread",
            ProgramKernel::PrimalWarp => "prog_primal_warp",
            ProgramKernel::PrimalBlock => "prog_primal_block",
            ProgramKernel::Series => "prog_series",
        }
    }

    /// The parameters in order, exactly as the `.cu` file declares them.
    pub fn params(self) -> &'static [Param] {
        match self {
            ProgramKernel::Series => &SERIES_PARAMS,
            _ => &PRIMAL_PARAMS,
        }
    }

    /// Whether its threads synchronise (warp shuffles, `__syncthreads`).
    pub fn cooperative(self) -> bool {
        matches!(self, ProgramKernel::PrimalWarp | ProgramKernel::PrimalBlock)
    }

    /// The file declaring it.
    pub fn file(self) -> Header {
        match self {
            ProgramKernel::Series => PROGRAM_SERIES_ENTRY,
            _ => PROGRAM_PRIMAL_ENTRY,
        }
    }
}

/// One generated NVRTC program: its whole text and the entry points it defines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// A name for messages and file names: `program-<hash>` or `program-<hash>[K=4]`.
    pub name: String,
    /// The jet order of a series unit.
    pub order: Option<usize>,
    /// The text handed to the compiler.
    pub text: String,
    /// Its entry points.
    pub kernels: &'static [ProgramKernel],
}

/// A short, stable name of a program: a hash of its contents.
pub fn program_id(program: &Program) -> String {
    // SipHash with fixed keys: the same program gets the same name in every run (file names, logs).
    let mut h = std::hash::DefaultHasher::new();
    format!("{program:?}").hash(&mut h);
    format!("program-{:016x}", h.finish())
}

/// The primal unit of `program`.
///
/// # Errors
/// [`CodegenError`] if the program is malformed.
pub fn primal_unit(program: &Program) -> Result<Unit, CodegenError> {
    validate(program)?;
    let name = program_id(program);
    let generated = generate_primal(program);
    let text = assemble(
        &name,
        None,
        &[COMMON, PROGRAM],
        &generated,
        PROGRAM_PRIMAL_ENTRY,
    );
    Ok(Unit {
        name,
        order: None,
        text,
        kernels: &ProgramKernel::PRIMAL,
    })
}

/// The series unit of `program` at jet order `order`.
///
/// # Errors
/// [`CodegenError`] if the program is malformed, reads features, or the order is outside
/// `1..=MAX_ORDER`.
pub fn series_unit(program: &Program, order: usize) -> Result<Unit, CodegenError> {
    validate(program)?;
    if program.reads_features() {
        return Err(CodegenError::ReadsFeatures);
    }
    if !(1..=MAX_ORDER).contains(&order) {
        return Err(CodegenError::Order {
            order,
            max: MAX_ORDER,
        });
    }
    let id = program_id(program);
    let name = format!("{id}[K={order}]");
    let generated = generate_series(program);
    let text = assemble(
        &name,
        Some(order),
        &[COMMON, PROGRAM, PROGRAM_SERIES],
        &generated,
        PROGRAM_SERIES_ENTRY,
    );
    Ok(Unit {
        name,
        order: Some(order),
        text,
        kernels: &[ProgramKernel::Series],
    })
}

/// Prelude, headers, the generated part and the entry file, each after a `#line 1 "<file>"` directive
/// so that compiler messages point into the right file.
fn assemble(
    name: &str,
    order: Option<usize>,
    headers: &[Header],
    generated: &str,
    entry: Header,
) -> String {
    let mut text = format!("// Generated by stde-cuda: {name}.\n");
    if let Some(k) = order {
        text.push_str(&format!("#define STDE_K {k}\n"));
    }
    let generated_name = format!("{name}.generated.cu");
    let parts = headers.iter().map(|h| (h.file_name, h.text)).chain([
        (generated_name.as_str(), generated),
        (entry.file_name, entry.text),
    ]);
    for (file, body) in parts {
        text.push_str(&format!("#line 1 \"{file}\"\n"));
        text.push_str(body);
        if !body.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// The operands of an op.
fn operands(op: &Op) -> impl Iterator<Item = NodeId> {
    let (a, b) = match *op {
        Op::Neg(a) | Op::PowInt(a, _) | Op::Call(_, a) => (Some(a), None),
        Op::Add(a, b)
        | Op::Sub(a, b)
        | Op::Mul(a, b)
        | Op::Div(a, b)
        | Op::Min(a, b)
        | Op::Max(a, b)
        | Op::Pow(a, b) => (Some(a), Some(b)),
        _ => (None, None),
    };
    a.into_iter().chain(b)
}

/// Checks that `program` is well formed: operands precede their users, every op sits in a body where
/// it means something, every fixed index is in range, every window read stays inside its array for
/// every window of its loop, and outputs and accumulators name existing nodes.
///
/// # Errors
/// The first problem found.
pub fn validate(program: &Program) -> Result<(), CodegenError> {
    let n_acc = program.n_accumulators() as u64;
    for (l, lp) in program.loops.iter().enumerate() {
        if lp.lo > lp.hi {
            return Err(CodegenError::BadRange {
                loop_index: l,
                lo: lp.lo,
                hi: lp.hi,
            });
        }
        check_body(program, Body::Loop(l), &lp.nodes, n_acc)?;
        if lp.lo < lp.hi {
            check_windows(program, l, lp)?;
        }
        for (a, acc) in lp.accumulators.iter().enumerate() {
            if acc.value as usize >= lp.nodes.len() {
                return Err(CodegenError::BadRoot {
                    what: "accumulator",
                    index: a,
                    node: acc.value,
                    body: Body::Loop(l),
                    len: lp.nodes.len(),
                });
            }
        }
    }
    check_body(program, Body::Main, &program.nodes, n_acc)?;
    for (o, &id) in program.outputs.iter().enumerate() {
        if id as usize >= program.nodes.len() {
            return Err(CodegenError::BadRoot {
                what: "output",
                index: o,
                node: id,
                body: Body::Main,
                len: program.nodes.len(),
            });
        }
    }
    Ok(())
}

fn check_body(program: &Program, body: Body, nodes: &[Op], n_acc: u64) -> Result<(), CodegenError> {
    let in_loop = matches!(body, Body::Loop(_));
    for (i, op) in nodes.iter().enumerate() {
        let node = i as u32;
        if let Some(operand) = operands(op).find(|&o| o >= node) {
            return Err(CodegenError::ForwardOperand {
                body,
                node,
                operand,
            });
        }
        let misplaced = |op: &'static str| Err(CodegenError::Misplaced { body, node, op });
        let range = |what: &'static str, index: u32, count: u64| {
            if u64::from(index) < count {
                Ok(())
            } else {
                Err(CodegenError::OutOfRange {
                    body,
                    node,
                    what,
                    index: u64::from(index),
                    count,
                })
            }
        };
        match *op {
            Op::Coord(j) => range("coordinate", j, u64::from(program.dim))?,
            Op::Time if !program.has_time => return misplaced("the time (no time column)"),
            Op::Param(p) => range("parameter", p, u64::from(program.n_params))?,
            Op::Feature(_) if in_loop => return misplaced("a feature"),
            Op::Feature(f) => range("feature", f, u64::from(program.n_features))?,
            Op::Reduced(_) if in_loop => return misplaced("a reduced value"),
            Op::Reduced(a) => range("accumulator", a, n_acc)?,
            Op::WinCoord(_) | Op::WinParam { .. } if !in_loop => return misplaced("a window read"),
            _ => {}
        }
    }
    Ok(())
}

fn check_windows(program: &Program, l: usize, lp: &Loop) -> Result<(), CodegenError> {
    for (i, op) in lp.nodes.iter().enumerate() {
        let (what, offset, count) = match *op {
            Op::WinCoord(k) => ("coordinates", i64::from(k), u64::from(program.dim)),
            Op::WinParam { base, k } => (
                "parameters",
                i64::from(base) + i64::from(k),
                u64::from(program.n_params),
            ),
            _ => continue,
        };
        let first = i64::from(lp.lo) + offset;
        let last = i64::from(lp.hi) - 1 + offset;
        if first < 0 || last >= count as i64 {
            return Err(CodegenError::WindowOutOfRange {
                loop_index: l,
                node: i as u32,
                what,
                first,
                last,
                lo: lp.lo,
                hi: lp.hi,
                count,
            });
        }
    }
    Ok(())
}

/// The scalar type a body computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prec {
    /// Window bodies: evaluated once per window.
    F32,
    /// Main bodies: once per point, where sums of many windows meet.
    F64,
}

impl Prec {
    fn ty(self) -> &'static str {
        match self {
            Prec::F32 => "float",
            Prec::F64 => "double",
        }
    }

    /// `c` as an exact literal of this type (rounded to f32 once for [`Prec::F32`]).
    fn literal(self, c: f64) -> String {
        match self {
            Prec::F32 => f32_literal(c as f32),
            Prec::F64 => f64_literal(c),
        }
    }

    /// A cast of a float expression to this type (none for f32).
    fn widen_f32(self, expr: &str) -> String {
        match self {
            Prec::F32 => expr.to_string(),
            Prec::F64 => format!("(double){expr}"),
        }
    }
}

/// A hex-float literal of `mantissa_bits` fraction bits: `0x1.8p+1`, `-0x1p-3`, subnormals as `0x0.…`.
fn hex_float(
    negative: bool,
    biased_exp: u64,
    fraction: u64,
    fraction_bits: u32,
    bias: i64,
) -> String {
    // Pad the fraction to whole hex digits and drop trailing zero digits.
    let digits = fraction_bits.div_ceil(4);
    let padded = fraction << (digits * 4 - fraction_bits);
    let mut hex = format!("{padded:0width$x}", width = digits as usize);
    while hex.ends_with('0') {
        hex.pop();
    }
    let (lead, exp) = if biased_exp == 0 {
        ('0', 1 - bias)
    } else {
        ('1', biased_exp as i64 - bias)
    };
    let sign = if negative { "-" } else { "" };
    if hex.is_empty() {
        format!("{sign}0x{lead}p{exp:+}")
    } else {
        format!("{sign}0x{lead}.{hex}p{exp:+}")
    }
}

/// An f32 constant, bit-exact, parenthesised when negative.
fn f32_literal(c: f32) -> String {
    let bits = c.to_bits();
    if !c.is_finite() {
        return format!("__uint_as_float({bits:#010x}u)");
    }
    let negative = bits >> 31 == 1;
    let text = if c == 0.0 {
        format!("{}0.0f", if negative { "-" } else { "" })
    } else {
        let exp = u64::from((bits >> 23) & 0xff);
        let fraction = u64::from(bits & 0x7f_ffff);
        format!("{}f", hex_float(negative, exp, fraction, 23, 127))
    };
    if negative {
        format!("({text})")
    } else {
        text
    }
}

/// An f64 constant, bit-exact, parenthesised when negative.
fn f64_literal(c: f64) -> String {
    let bits = c.to_bits();
    if !c.is_finite() {
        return format!("__longlong_as_double((long long){bits:#018x}ull)");
    }
    let negative = bits >> 63 == 1;
    let text = if c == 0.0 {
        format!("{}0.0", if negative { "-" } else { "" })
    } else {
        let exp = (bits >> 52) & 0x7ff;
        let fraction = bits & 0xf_ffff_ffff_ffff;
        hex_float(negative, exp, fraction, 52, 1023)
    };
    if negative {
        format!("({text})")
    } else {
        text
    }
}

/// An `int` literal (`i32::MIN` has no literal of its own in C).
fn int_literal(n: i32) -> String {
    if n == i32::MIN {
        "(-2147483647 - 1)".to_string()
    } else {
        n.to_string()
    }
}

/// `i + k` for the window index `i` (a `u32`) and a constant offset, in `u64` so that no sum wraps.
fn window_index(k: i64) -> String {
    match k {
        0 => "i".to_string(),
        k if k > 0 => format!("(u64)i + {k}ull"),
        // The program was validated: i + k ≥ 0 for every window of the loop.
        k => format!("(u64)(i - {}u)", -k),
    }
}

/// The name of a math function's scalar and series helpers.
fn func_name(f: Func) -> &'static str {
    match f {
        Func::Exp => "exp",
        Func::Log => "log",
        Func::Sin => "sin",
        Func::Cos => "cos",
        Func::Tanh => "tanh",
        Func::Atan => "atan",
        Func::Sqrt => "sqrt",
        Func::Abs => "abs",
    }
}

/// Whether a node's value is a scalar or a series (series mode only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scalar,
    Series,
}

/// Which nodes the roots need (the rest is not emitted: no unused variables).
fn live_nodes(nodes: &[Op], roots: impl IntoIterator<Item = NodeId>) -> Vec<bool> {
    let mut live = vec![false; nodes.len()];
    for r in roots {
        live[r as usize] = true;
    }
    for i in (0..nodes.len()).rev() {
        if live[i] {
            for o in operands(&nodes[i]) {
                live[o as usize] = true;
            }
        }
    }
    live
}

/// Emits the statements of one body.
struct BodyWriter<'a> {
    nodes: &'a [Op],
    /// f32 in loop bodies, f64 in the main body.
    prec: Prec,
    dim: u32,
    live: Vec<bool>,
    kinds: Vec<Kind>,
    out: String,
}

impl<'a> BodyWriter<'a> {
    fn new(
        program: &Program,
        nodes: &'a [Op],
        in_loop: bool,
        series: bool,
        roots: impl IntoIterator<Item = NodeId>,
    ) -> Self {
        let kinds = if series {
            let mut kinds: Vec<Kind> = Vec::with_capacity(nodes.len());
            for op in nodes {
                let kind = match op {
                    Op::Coord(_) | Op::Time | Op::WinCoord(_) | Op::Reduced(_) => Kind::Series,
                    Op::Const(_) | Op::Param(_) | Op::WinParam { .. } | Op::Feature(_) => {
                        Kind::Scalar
                    }
                    op => {
                        if operands(op).any(|o| kinds[o as usize] == Kind::Series) {
                            Kind::Series
                        } else {
                            Kind::Scalar
                        }
                    }
                };
                kinds.push(kind);
            }
            kinds
        } else {
            vec![Kind::Scalar; nodes.len()]
        };
        Self {
            nodes,
            prec: if in_loop { Prec::F32 } else { Prec::F64 },
            dim: program.dim,
            live: live_nodes(nodes, roots),
            kinds,
            out: String::new(),
        }
    }

    fn kind(&self, id: NodeId) -> Kind {
        self.kinds[id as usize]
    }

    fn line(&mut self, text: &str) {
        self.out.push_str("    ");
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// Every live node, in order.
    fn emit(mut self) -> String {
        for i in 0..self.nodes.len() {
            if self.live[i] {
                let op = self.nodes[i];
                if self.kinds[i] == Kind::Series {
                    self.emit_series(i, &op);
                } else {
                    self.emit_scalar(i, &op);
                }
            }
        }
        self.out
    }

    /// A scalar node: `const T n<i> = <expr>;`.
    fn emit_scalar(&mut self, i: usize, op: &Op) {
        let t = self.prec.ty();
        let p = self.prec;
        let n = |id: NodeId| format!("n{id}");
        let expr = match *op {
            Op::Const(c) => p.literal(c),
            Op::Coord(j) => p.widen_f32(&format!("x[{j}u]")),
            Op::Time => p.widen_f32(&format!("x[{}u]", self.dim)),
            Op::Feature(f) => p.widen_f32(&format!("features[(u64){f}u * n_points + n]")),
            Op::Param(q) => p.widen_f32(&format!("params[{q}u]")),
            Op::WinCoord(k) => p.widen_f32(&format!("x[{}]", window_index(i64::from(k)))),
            Op::WinParam { base, k } => p.widen_f32(&format!(
                "params[{}]",
                window_index(i64::from(base) + i64::from(k))
            )),
            Op::Reduced(a) => format!("r[{a}]"),
            Op::Neg(a) => format!("-{}", n(a)),
            Op::Add(a, b) => format!("{} + {}", n(a), n(b)),
            Op::Sub(a, b) => format!("{} - {}", n(a), n(b)),
            Op::Mul(a, b) => format!("{} * {}", n(a), n(b)),
            Op::Div(a, b) => format!("{} / {}", n(a), n(b)),
            Op::Min(a, b) => format!("prog_min({}, {})", n(a), n(b)),
            Op::Max(a, b) => format!("prog_max({}, {})", n(a), n(b)),
            Op::PowInt(a, e) => format!("prog_powi({}, {})", n(a), int_literal(e)),
            Op::Pow(a, b) => format!("prog_pow({}, {})", n(a), n(b)),
            Op::Call(f, a) => format!("prog_{}({})", func_name(f), n(a)),
        };
        self.line(&format!("const {t} n{i} = {expr};"));
    }

    /// A series node: `T n<i>[K + 1];` filled by a helper of `program_series.cuh`.
    fn emit_series(&mut self, i: usize, op: &Op) {
        let t = self.prec.ty();
        let n = |id: NodeId| format!("n{id}");
        if let Op::Reduced(a) = *op {
            // The accumulator's series already exists: refer to it.
            self.line(&format!("const double* n{i} = r[{a}];"));
            return;
        }
        self.line(&format!("{t} n{i}[K + 1];"));
        let call = match *op {
            Op::Coord(j) => format!("prog_coord_series(dir, x, {j}u, n{i})"),
            Op::Time => format!("prog_coord_series(dir, x, {}u, n{i})", self.dim),
            Op::WinCoord(k) => format!(
                "prog_coord_series(dir, x, (u32)({}), n{i})",
                window_index(i64::from(k))
            ),
            Op::Neg(a) => format!("ser_neg({}, n{i})", n(a)),
            Op::Add(a, b) => match (self.kind(a), self.kind(b)) {
                (Kind::Series, Kind::Series) => format!("ser_add({}, {}, n{i})", n(a), n(b)),
                (Kind::Series, Kind::Scalar) => {
                    format!("ser_add_scalar({}, {}, n{i})", n(a), n(b))
                }
                _ => format!("ser_add_scalar({}, {}, n{i})", n(b), n(a)),
            },
            Op::Sub(a, b) => match (self.kind(a), self.kind(b)) {
                (Kind::Series, Kind::Series) => format!("ser_sub({}, {}, n{i})", n(a), n(b)),
                (Kind::Series, Kind::Scalar) => {
                    format!("ser_sub_scalar({}, {}, n{i})", n(a), n(b))
                }
                _ => format!("ser_scalar_sub({}, {}, n{i})", n(a), n(b)),
            },
            Op::Mul(a, b) => match (self.kind(a), self.kind(b)) {
                (Kind::Series, Kind::Series) => format!("ser_mul({}, {}, n{i})", n(a), n(b)),
                (Kind::Series, Kind::Scalar) => format!("ser_scale({}, {}, n{i})", n(a), n(b)),
                _ => format!("ser_scale({}, {}, n{i})", n(b), n(a)),
            },
            Op::Div(a, b) => match (self.kind(a), self.kind(b)) {
                (Kind::Series, Kind::Series) => format!("ser_div({}, {}, n{i})", n(a), n(b)),
                (Kind::Series, Kind::Scalar) => {
                    format!("ser_div_scalar({}, {}, n{i})", n(a), n(b))
                }
                _ => format!("ser_scalar_div({}, {}, n{i})", n(a), n(b)),
            },
            Op::Min(a, b) | Op::Max(a, b) | Op::Pow(a, b) => {
                let name = match op {
                    Op::Min(..) => "ser_min",
                    Op::Max(..) => "ser_max",
                    _ => "ser_pow",
                };
                let a = self.as_series(i, a, "a");
                let b = self.as_series(i, b, "b");
                format!("{name}({a}, {b}, n{i})")
            }
            Op::PowInt(a, e) => format!("ser_powi({}, {}, n{i})", n(a), int_literal(e)),
            Op::Call(f, a) => format!("ser_{}({}, n{i})", func_name(f), n(a)),
            Op::Const(_) | Op::Param(_) | Op::WinParam { .. } | Op::Feature(_) | Op::Reduced(_) => {
                unreachable!("scalar leaves are never series")
            }
        };
        self.line(&format!("{call};"));
    }

    /// The name of operand `id` as a series: itself, or a constant series made from the scalar.
    fn as_series(&mut self, user: usize, id: NodeId, tag: &str) -> String {
        if self.kind(id) == Kind::Series {
            format!("n{id}")
        } else {
            let t = self.prec.ty();
            self.line(&format!("{t} n{user}_{tag}[K + 1];"));
            self.line(&format!("ser_const(n{user}_{tag}, n{id});"));
            format!("n{user}_{tag}")
        }
    }

    /// `dst = <series of node id>` for an accumulator or output slot `dst` (a `T*`).
    fn store_series(&self, dst: &str, id: NodeId) -> String {
        match self.kind(id) {
            Kind::Series => format!("ser_copy(n{id}, {dst});"),
            Kind::Scalar => format!("ser_const({dst}, n{id});"),
        }
    }
}

/// The sizes every entry file reads.
fn sizes(program: &Program) -> String {
    let n_acc = program.n_accumulators();
    let n_out = program.n_outputs();
    format!(
        "// Sizes: a point row holds {stride} values; {n_out} outputs; {n_acc} accumulators.\n\
         constexpr u32 PROG_STRIDE = {stride}u;\n\
         constexpr int PROG_N_OUT = {n_out};\n\
         constexpr int PROG_N_ACC = {n_acc};\n\
         // Array lengths (C++ has no empty arrays).\n\
         constexpr int PROG_ACC_LEN = {acc_len};\n\
         constexpr int PROG_OUT_LEN = {out_len};\n\n",
        stride = program.point_stride(),
        acc_len = n_acc.max(1),
        out_len = n_out.max(1),
    )
}

/// The first accumulator number of each loop.
fn accumulator_bases(program: &Program) -> Vec<usize> {
    program
        .loops
        .iter()
        .scan(0, |next, lp| {
            let base = *next;
            *next += lp.accumulators.len();
            Some(base)
        })
        .collect()
}

/// The generated part of the primal unit.
fn generate_primal(program: &Program) -> String {
    let mut out = sizes(program);
    for (l, lp) in program.loops.iter().enumerate() {
        let body = BodyWriter::new(
            program,
            &lp.nodes,
            true,
            false,
            lp.accumulators.iter().map(|a| a.value),
        );
        let mut stores = String::new();
        for (a, acc) in lp.accumulators.iter().enumerate() {
            let _ = writeln!(stores, "    v[{a}] = n{};", acc.value);
        }
        let _ = write!(
            out,
            "// Loop {l}: the accumulated values of window i (f32).\n\
             __device__ __forceinline__ void prog_loop{l}_primal(u32 i, const float* __restrict__ x,\n\
             \x20                                                   const float* __restrict__ params,\n\
             \x20                                                   float* __restrict__ v) {{\n\
             {}{stores}}}\n\n",
            body.emit()
        );
    }
    // The reductions.
    let bases = accumulator_bases(program);
    out.push_str(
        "// Every accumulator of the point, reduced over the TPP lanes serving it (valid in lane 0).\n\
         template <int TPP>\n\
         __device__ __forceinline__ void prog_point_loops(const float* __restrict__ x,\n\
         \x20                                                const float* __restrict__ params, u32 lane,\n\
         \x20                                                double* __restrict__ r, u32* __restrict__ window,\n\
         \x20                                                ProgShared& shared) {\n",
    );
    for (l, lp) in program.loops.iter().enumerate() {
        let base = bases[l];
        let _ = writeln!(out, "    // Loop {l}: windows {}..{}.", lp.lo, lp.hi);
        out.push_str("    {\n");
        for (a, acc) in lp.accumulators.iter().enumerate() {
            let g = base + a;
            match acc.kind {
                ReduceKind::Sum => {
                    let _ = writeln!(out, "        double acc{g} = 0.0;");
                }
                ReduceKind::Max => {
                    let _ = writeln!(out, "        float acc{g} = prog_neg_inf();");
                    let _ = writeln!(out, "        u32 arg{g} = PROG_NONE;");
                }
            }
        }
        if lp.lo < lp.hi && !lp.accumulators.is_empty() {
            let start = if lp.lo == 0 {
                "lane".to_string()
            } else {
                format!("{}u + lane", lp.lo)
            };
            let _ = writeln!(
                out,
                "        for (u32 i = {start}; i < {}u; i += TPP) {{",
                lp.hi
            );
            let _ = writeln!(out, "            float v[{}];", lp.accumulators.len());
            let _ = writeln!(out, "            prog_loop{l}_primal(i, x, params, v);");
            for (a, acc) in lp.accumulators.iter().enumerate() {
                let g = base + a;
                match acc.kind {
                    ReduceKind::Sum => {
                        let _ = writeln!(out, "            acc{g} += (double)v[{a}];");
                    }
                    ReduceKind::Max => {
                        let _ = writeln!(
                            out,
                            "            prog_argmax_take(acc{g}, arg{g}, v[{a}], i);"
                        );
                    }
                }
            }
            out.push_str("        }\n");
        }
        for (a, acc) in lp.accumulators.iter().enumerate() {
            let g = base + a;
            match acc.kind {
                ReduceKind::Sum => {
                    let _ = writeln!(
                        out,
                        "        r[{g}] = prog_reduce_sum<TPP>(acc{g}, shared);"
                    );
                    let _ = writeln!(out, "        window[{g}] = PROG_NONE;");
                }
                ReduceKind::Max => {
                    let _ = writeln!(
                        out,
                        "        prog_reduce_argmax<TPP>(acc{g}, arg{g}, shared);"
                    );
                    let _ = writeln!(out, "        r[{g}] = (double)acc{g};");
                    let _ = writeln!(out, "        window[{g}] = arg{g};");
                }
            }
        }
        out.push_str("    }\n");
    }
    out.push_str("}\n\n");
    // The main body.
    let body = BodyWriter::new(
        program,
        &program.nodes,
        false,
        false,
        program.outputs.iter().copied(),
    );
    let mut stores = String::new();
    for (o, &id) in program.outputs.iter().enumerate() {
        let _ = writeln!(stores, "    o[{o}] = n{id};");
    }
    let _ = write!(
        out,
        "// The main body (f64): every output of point n from its row, features, the parameters and the\n\
         // reduced values.\n\
         __device__ __forceinline__ void prog_main_primal(const float* __restrict__ x,\n\
         \x20                                                const float* __restrict__ features, u64 n,\n\
         \x20                                                u32 n_points, const float* __restrict__ params,\n\
         \x20                                                const double* __restrict__ r,\n\
         \x20                                                double* __restrict__ o) {{\n\
         {}{stores}}}\n",
        body.emit()
    );
    out
}

/// The coordinates a loop body reads at fixed indices (the time as `dim`): a direction that moves one
/// of them moves every window.
fn fixed_reads(program: &Program, lp: &Loop, live: &[bool]) -> Vec<u32> {
    let mut js: Vec<u32> = lp
        .nodes
        .iter()
        .zip(live)
        .filter(|(_, &l)| l)
        .filter_map(|(op, _)| match *op {
            Op::Coord(j) => Some(j),
            Op::Time => Some(program.dim),
            _ => None,
        })
        .collect();
    js.sort_unstable();
    js.dedup();
    js
}

/// The window offsets `k` of `x[i + k]` a loop body reads.
fn window_offsets(lp: &Loop, live: &[bool]) -> Vec<i32> {
    let mut ks: Vec<i32> = lp
        .nodes
        .iter()
        .zip(live)
        .filter(|(_, &l)| l)
        .filter_map(|(op, _)| match *op {
            Op::WinCoord(k) => Some(k),
            _ => None,
        })
        .collect();
    ks.sort_unstable();
    ks.dedup();
    ks
}

/// `a == x || a == y …`, or `false`.
fn any_equal(a: &str, values: impl IntoIterator<Item = String>) -> String {
    let terms: Vec<String> = values.into_iter().map(|v| format!("{a} == {v}")).collect();
    if terms.is_empty() {
        "false".to_string()
    } else {
        terms.join(" || ")
    }
}

/// The statements of `prog_loop<L>_fixed_touched` for the fixed reads `fixed`.
fn fixed_touched_body(fixed: &[u32]) -> String {
    if fixed.is_empty() {
        return "    return dir.dense != nullptr;\n".to_string();
    }
    format!(
        "    if (dir.dense != nullptr) {{\n\
         \x20       return true;\n\
         \x20   }}\n\
         \x20   for (int k = 0; k < K; ++k) {{\n\
         \x20       const u32 j = dir.index[k];\n\
         \x20       if ({}) {{\n\
         \x20           return true;\n\
         \x20       }}\n\
         \x20   }}\n\
         \x20   return false;\n",
        any_equal("j", fixed.iter().map(|j| format!("{j}u")))
    )
}

/// The generated part of the series unit.
fn generate_series(program: &Program) -> String {
    let mut out = sizes(program);
    let bases = accumulator_bases(program);
    let mut reduce = String::from(
        "// Every accumulator's series at point n along the direction: the primal from the primal\n\
         // kernel, plus the moving part of the windows the direction touches (sums), or the series of\n\
         // the window attaining the max.\n\
         __device__ __forceinline__ void prog_point_loops_series(const ProgDir& dir, const float* __restrict__ x,\n\
         \x20                                                       const float* __restrict__ params,\n\
         \x20                                                       const u32* __restrict__ acc, u64 n,\n\
         \x20                                                       u32 n_points, double (*r)[K + 1]) {\n\
         \x20   for (int a = 0; a < PROG_N_ACC; ++a) {\n\
         \x20       ser_const(r[a], prog_load_acc_value(acc, a, n, n_points));\n\
         \x20   }\n",
    );
    for (l, lp) in program.loops.iter().enumerate() {
        let roots: Vec<NodeId> = lp.accumulators.iter().map(|a| a.value).collect();
        if lp.lo == lp.hi || roots.is_empty() {
            // Nothing moves: an empty sum stays 0 and an empty max stays −∞.
            continue;
        }
        let body = BodyWriter::new(program, &lp.nodes, true, true, roots.iter().copied());
        let live = body.live.clone();
        let mut stores = String::new();
        for (a, acc) in lp.accumulators.iter().enumerate() {
            let _ = writeln!(
                stores,
                "    {}",
                body.store_series(&format!("v[{a}]"), acc.value)
            );
        }
        let n_acc = lp.accumulators.len();
        let _ = write!(
            out,
            "// Loop {l}: the series of the accumulated values of window i (f32).\n\
             // Not inlined: called from up to three places, each of which would otherwise get its own\n\
             // copy of the whole body's unrolled series code (compile time grows as K²·nodes).\n\
             __device__ __noinline__ void prog_loop{l}_series(u32 i, const ProgDir& dir, const float* __restrict__ x,\n\
             \x20                                   const float* __restrict__ params, float (*v)[K + 1]) {{\n\
             {}{stores}}}\n\n",
            body.emit()
        );
        let fixed = fixed_reads(program, lp, &live);
        let offsets = window_offsets(lp, &live);
        let _ = write!(
            out,
            "// Whether loop {l}'s body reads x[i + offset].\n\
             __device__ __forceinline__ bool prog_loop{l}_reads(long long offset) {{\n\
             \x20   return {};\n\
             }}\n\n\
             // Whether the direction is dense or moves a coordinate that loop {l} reads at a fixed index\n\
             // (then every window moves).\n\
             __device__ __forceinline__ bool prog_loop{l}_fixed_touched(const ProgDir& dir) {{\n\
             {}\
             }}\n\n\
             // Whether window i of loop {l} moves along the direction.\n\
             __device__ __forceinline__ bool prog_loop{l}_touched(const ProgDir& dir, u32 i) {{\n\
             \x20   if (prog_loop{l}_fixed_touched(dir)) {{\n\
             \x20       return true;\n\
             \x20   }}\n\
             \x20   for (int k = 0; k < K; ++k) {{\n\
             \x20       const u32 j = dir.index[k];\n\
             \x20       if (j != PROG_NONE && prog_loop{l}_reads((long long)j - (long long)i)) {{\n\
             \x20           return true;\n\
             \x20       }}\n\
             \x20   }}\n\
             \x20   return false;\n\
             }}\n\n",
            any_equal("offset", offsets.iter().map(|k| format!("{k}ll"))),
            fixed_touched_body(&fixed),
        );
        let sums: Vec<(usize, usize)> = lp
            .accumulators
            .iter()
            .enumerate()
            .filter(|(_, a)| a.kind == ReduceKind::Sum)
            .map(|(a, _)| (a, bases[l] + a))
            .collect();
        if !sums.is_empty() {
            let mut adds = String::new();
            for &(a, g) in &sums {
                let _ = write!(
                    adds,
                    "#pragma unroll\n\
                     \x20   for (int c = 1; c <= K; ++c) {{\n\
                     \x20       r[{g}][c] += (double)v[{a}][c];\n\
                     \x20   }}\n"
                );
            }
            let _ = write!(
                out,
                "// Adds the moving part of window i of loop {l} to its sums.\n\
                 __device__ __noinline__ void prog_loop{l}_add(const ProgDir& dir, const float* __restrict__ x,\n\
                 \x20                                const float* __restrict__ params, u32 i, double (*r)[K + 1]) {{\n\
                 \x20   float v[{n_acc}][K + 1];\n\
                 \x20   prog_loop{l}_series(i, dir, x, params, v);\n\
                 {adds}}}\n\n\
                 // Window i of loop {l}, reached from slot k: added unless outside the range or already\n\
                 // added from an earlier slot.\n\
                 __device__ __forceinline__ void prog_loop{l}_touch(const ProgDir& dir, const float* __restrict__ x,\n\
                 \x20                                                const float* __restrict__ params, int k,\n\
                 \x20                                                long long i, double (*r)[K + 1]) {{\n\
                 \x20   if (i < {lo}ll || i >= {hi}ll) {{\n\
                 \x20       return;\n\
                 \x20   }}\n\
                 \x20   for (int q = 0; q < k; ++q) {{\n\
                 \x20       const u32 j = dir.index[q];\n\
                 \x20       if (j != PROG_NONE && prog_loop{l}_reads((long long)j - i)) {{\n\
                 \x20           return;\n\
                 \x20       }}\n\
                 \x20   }}\n\
                 \x20   prog_loop{l}_add(dir, x, params, (u32)i, r);\n\
                 }}\n\n",
                lo = lp.lo,
                hi = lp.hi,
            );
            let _ = writeln!(
                reduce,
                "    // Loop {l}: sums over windows {}..{}.",
                lp.lo, lp.hi
            );
            let _ = writeln!(reduce, "    if (prog_loop{l}_fixed_touched(dir)) {{");
            let _ = writeln!(
                reduce,
                "        for (u32 i = {}u; i < {}u; ++i) {{\n            prog_loop{l}_add(dir, x, params, i, r);\n        }}",
                lp.lo, lp.hi
            );
            if !offsets.is_empty() {
                reduce.push_str(
                    "    } else {\n\
                     \x20       for (int k = 0; k < K; ++k) {\n\
                     \x20           const u32 j = dir.index[k];\n\
                     \x20           if (j == PROG_NONE) {\n\
                     \x20               continue;\n\
                     \x20           }\n",
                );
                for k in &offsets {
                    let _ = writeln!(
                        reduce,
                        "            prog_loop{l}_touch(dir, x, params, k, (long long)j - ({k}ll), r);"
                    );
                }
                reduce.push_str("        }\n");
            }
            reduce.push_str("    }\n");
        }
        for (a, acc) in lp.accumulators.iter().enumerate() {
            if acc.kind != ReduceKind::Max {
                continue;
            }
            let g = bases[l] + a;
            let _ = write!(
                reduce,
                "    // Loop {l}: the max {g} moves with the window attaining it.\n\
                 \x20   {{\n\
                 \x20       const u32 w = prog_load_acc_window(acc, {g}, n, n_points);\n\
                 \x20       if (w != PROG_NONE && prog_loop{l}_touched(dir, w)) {{\n\
                 \x20           float v[{n_acc}][K + 1];\n\
                 \x20           prog_loop{l}_series(w, dir, x, params, v);\n\
                 #pragma unroll\n\
                 \x20           for (int c = 1; c <= K; ++c) {{\n\
                 \x20               r[{g}][c] = (double)v[{a}][c];\n\
                 \x20           }}\n\
                 \x20       }}\n\
                 \x20   }}\n"
            );
        }
    }
    reduce.push_str("}\n\n");
    out.push_str(&reduce);
    let body = BodyWriter::new(
        program,
        &program.nodes,
        false,
        true,
        program.outputs.iter().copied(),
    );
    let mut stores = String::new();
    for (o, &id) in program.outputs.iter().enumerate() {
        let _ = writeln!(stores, "    {}", body.store_series(&format!("o[{o}]"), id));
    }
    let _ = write!(
        out,
        "// The main body on series (f64): every output's Taylor coefficients along the direction.\n\
         __device__ __forceinline__ void prog_main_series(const ProgDir& dir, const float* __restrict__ x,\n\
         \x20                                                const float* __restrict__ params, double (*r)[K + 1],\n\
         \x20                                                double (*o)[K + 1]) {{\n\
         {}{stores}}}\n",
        body.emit()
    );
    out
}

/// Checks that `args` match the parameters `kernel` declares (a bug in this crate otherwise).
///
/// # Panics
/// On a mismatch in count or type.
#[track_caller]
pub fn check_args(kernel: ProgramKernel, args: &[crate::exec::Arg]) {
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

/// Compiles a unit with NVRTC for `arch` (no GPU needed).
///
/// # Errors
/// As [`kernels::compile_text`].
pub fn compile_unit(
    unit: &Unit,
    arch: kernels::Arch,
) -> Result<kernels::CompiledProgram, kernels::CompileError> {
    kernels::compile_text(&unit.name, unit.text.clone(), arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact_hex_floats() {
        assert_eq!(f64_literal(1.0), "0x1p+0");
        assert_eq!(f64_literal(3.0), "0x1.8p+1");
        assert_eq!(f64_literal(-0.375), "(-0x1.8p-2)");
        assert_eq!(f64_literal(0.0), "0.0");
        assert_eq!(f64_literal(-0.0), "(-0.0)");
        assert_eq!(f64_literal(f64::MIN_POSITIVE / 2.0), "0x0.8p-1022");
        assert_eq!(f32_literal(1.5), "0x1.8p+0f");
        assert_eq!(f32_literal(0.1), "0x1.99999ap-4f");
        assert_eq!(f32_literal(-2.0), "(-0x1p+1f)");
        assert_eq!(f32_literal(f32::INFINITY), "__uint_as_float(0x7f800000u)");
        assert_eq!(
            f64_literal(f64::NEG_INFINITY),
            "__longlong_as_double((long long)0xfff0000000000000ull)"
        );
        assert_eq!(int_literal(i32::MIN), "(-2147483647 - 1)");
    }

    /// `(name, type)` of a parameter declaration such as `const float* __restrict__ z`.
    fn parse_param(decl: &str) -> (String, ParamType) {
        let words: Vec<&str> = decl
            .split_whitespace()
            .filter(|w| *w != "__restrict__")
            .collect();
        let (name, ty) = words.split_last().expect("a parameter has a name");
        let ty = match ty.join(" ").as_str() {
            "const float*" => F32In,
            "float*" => F32Out,
            "const u32*" => U32In,
            "u32" => U32,
            other => panic!("parameter {name}: type `{other}` has no ParamType here"),
        };
        (name.to_string(), ty)
    }

    #[test]
    fn entry_files_declare_each_kernel_with_its_parameters() {
        for kernel in ProgramKernel::ALL {
            let text = kernel.file().text;
            let marker = format!("extern \"C\" __global__ void {}(", kernel.entry());
            let at = text.find(&marker).unwrap_or_else(|| {
                panic!("{} declares {}", kernel.file().file_name, kernel.entry())
            });
            let rest = &text[at + marker.len()..];
            let params: Vec<(String, ParamType)> = rest[..rest.find(')').expect("a list closes")]
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(parse_param)
                .collect();
            let expected: Vec<(String, ParamType)> = kernel
                .params()
                .iter()
                .map(|(n, t)| (n.to_string(), *t))
                .collect();
            assert_eq!(params, expected, "parameters of {}", kernel.entry());
        }
    }

    fn window_program(lo: u32, hi: u32, k: i32) -> Program {
        Program {
            dim: 4,
            has_time: false,
            n_features: 0,
            n_params: 0,
            loops: vec![Loop {
                lo,
                hi,
                nodes: vec![Op::WinCoord(k)],
                accumulators: vec![stde_core::program::Accumulator {
                    kind: ReduceKind::Sum,
                    value: 0,
                }],
            }],
            nodes: vec![Op::Reduced(0)],
            outputs: vec![0],
        }
    }

    #[test]
    fn malformed_programs_are_rejected_before_any_code_is_generated() {
        assert!(validate(&window_program(0, 4, 0)).is_ok());
        assert!(validate(&window_program(1, 4, -1)).is_ok());
        assert!(matches!(
            validate(&window_program(0, 4, -1)),
            Err(CodegenError::WindowOutOfRange { first: -1, .. })
        ));
        assert!(matches!(
            validate(&window_program(0, 4, 1)),
            Err(CodegenError::WindowOutOfRange { last: 4, .. })
        ));
        // An empty range reads nothing, wherever its offsets point.
        assert!(validate(&window_program(3, 3, 5)).is_ok());
        assert!(matches!(
            validate(&window_program(3, 2, 0)),
            Err(CodegenError::BadRange { .. })
        ));
        let mut p = window_program(0, 4, 0);
        p.nodes = vec![Op::Add(0, 1), Op::Reduced(0)];
        assert!(matches!(
            validate(&p),
            Err(CodegenError::ForwardOperand { operand: 0, .. })
        ));
        let mut p = window_program(0, 4, 0);
        p.nodes = vec![Op::Time];
        assert!(matches!(validate(&p), Err(CodegenError::Misplaced { .. })));
        let mut p = window_program(0, 4, 0);
        p.nodes = vec![Op::Reduced(1)];
        assert!(matches!(
            validate(&p),
            Err(CodegenError::OutOfRange {
                what: "accumulator",
                ..
            })
        ));
        let mut p = window_program(0, 4, 0);
        p.loops[0].nodes.push(Op::Feature(0));
        assert!(matches!(validate(&p), Err(CodegenError::Misplaced { .. })));
        let mut p = window_program(0, 4, 0);
        p.outputs = vec![3];
        assert!(matches!(validate(&p), Err(CodegenError::BadRoot { .. })));
        let mut p = window_program(0, 4, 0);
        p.nodes = vec![Op::Feature(0)];
        assert!(matches!(validate(&p), Err(CodegenError::OutOfRange { .. })));
        p.n_features = 1;
        assert!(validate(&p).is_ok());
        assert_eq!(series_unit(&p, 2), Err(CodegenError::ReadsFeatures));
        let q = window_program(0, 4, 0);
        assert!(matches!(
            series_unit(&q, 0),
            Err(CodegenError::Order { .. })
        ));
        assert!(matches!(
            series_unit(&q, MAX_ORDER + 1),
            Err(CodegenError::Order { .. })
        ));
    }

    #[test]
    fn units_are_prelude_headers_generated_part_then_entry_file() {
        let p = window_program(0, 4, 0);
        let unit = series_unit(&p, 3).expect("a valid program");
        assert_eq!(unit.order, Some(3));
        assert!(unit.name.ends_with("[K=3]"), "{}", unit.name);
        assert!(unit.text.contains("#define STDE_K 3\n"));
        let at = |needle: &str| {
            unit.text
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} in the unit"))
        };
        let order = [
            at("#line 1 \"common.cuh\""),
            at("#line 1 \"program.cuh\""),
            at("#line 1 \"program_series.cuh\""),
            at(".generated.cu\""),
            at("#line 1 \"program_series.cu\""),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        let primal = primal_unit(&p).expect("a valid program");
        assert!(!primal.text.contains("STDE_K"));
        assert_eq!(primal.kernels, &ProgramKernel::PRIMAL);
        assert_eq!(program_id(&p), program_id(&p.clone()));
        assert_ne!(program_id(&p), program_id(&window_program(1, 4, 0)));
    }
}
