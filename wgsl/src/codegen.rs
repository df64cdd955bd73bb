//! WGSL from [`Program`]s: the per-program part of a compiled program's kernels.
//!
//! A kernel's source is a generated constant prelude (the series order `K`, the program's
//! dimensions, the workgroup size), real `.wgsl` files embedded with `include_str!` (math, series
//! helpers, bindings and the entry point: [`ProgramKernel::parts`]), then the generated body: one
//! function per loop body and the per-point code that calls them (`pg_*`). Nothing is spliced into
//! a fixed file.
//!
//! # Kernels
//!
//! * **Primal** ([`ProgramKernel::Primal`], [`ProgramKernel::PrimalGroup`]): the reductions, then
//!   the main body, per point. One invocation per point runs its windows serially; the group
//!   variant spreads a point's windows over a workgroup and combines them with a tree reduction in
//!   workgroup memory (GPUs at large `d`, and wherever one invocation would run more loop
//!   iterations than [`ITERATION_BUDGET`]: llvmpipe silently ends the loops of an invocation past
//!   65535 iterations in total).
//! * **Series**: a reduction pass ([`ProgramKernel::Reduce`], [`ProgramKernel::ReduceGroup`])
//!   stores every point's accumulators and argmax windows once, then [`ProgramKernel::Series`] runs
//!   one invocation per (point, direction). A sum's series is the stored total plus the higher
//!   coefficients of the windows that move: for a one-hot direction only the windows that read one
//!   of its coordinates (`O(window)` work), for a dense one every window (shared by a workgroup,
//!   [`ProgramKernel::SeriesGroup`], when that is long). A max takes the series of
//!   its argmax window. Values that cannot move along any curve (constants, parameters, reductions
//!   whose body reads no coordinate) stay plain numbers, and the `s_*_c` helpers combine them with
//!   series without the products of their zero coefficients.
//!
//! # Numerics
//!
//! Everything is f32. Sums over windows are blocked: blocks of 16 windows, 16 blocks, 16 of those,
//! then the top-level sum, so that rounding grows with `48 + n/4096` additions rather than `n`
//! (a compensated sum would be more accurate, but shader compilers that reassociate floating-point
//! arithmetic may cancel its correction term; blocking survives any evaluation order). The group
//! variant blocks each invocation's share and adds the shares in a tree. Constants are printed as
//! the f32 nearest to the program's f64 with the shortest decimal that parses back to it (exact),
//! and non-finite ones through `f32_bits` (a non-finite constant expression is a WGSL error).

use std::fmt::{self, Write as _};

use stde_core::program::{Func, Loop, NodeId, Op, Program, ReduceKind};

use crate::kernels::{Access, MAX_ORDER};

const COMMON: &str = include_str!("shaders/common.wgsl");
const PROGRAM_COMMON: &str = include_str!("shaders/program_common.wgsl");
const PROGRAM_THREAD: &str = include_str!("shaders/program_thread.wgsl");
const PROGRAM_GROUP: &str = include_str!("shaders/program_group.wgsl");
const PROGRAM_PRIMAL: &str = include_str!("shaders/program_primal.wgsl");
const PROGRAM_REDUCE: &str = include_str!("shaders/program_reduce.wgsl");
const PROGRAM_SERIES: &str = include_str!("shaders/program_series.wgsl");
const PROGRAM_SERIES_KERNEL: &str = include_str!("shaders/program_series_kernel.wgsl");
const PROGRAM_SERIES_THREAD: &str = include_str!("shaders/program_series_thread.wgsl");
const PROGRAM_SERIES_GROUP: &str = include_str!("shaders/program_series_group.wgsl");

/// Windows per block at each of the three blocking levels of a sum.
const BLOCK: u32 = 16;

/// The largest dimension and loop bound a program may have (a point row that long is 4 GiB, far
/// beyond any storage binding).
pub const MAX_INDEX: u32 = 1 << 30;

/// The kernels a compiled program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProgramKernel {
    /// Primal mode, one invocation per point.
    Primal,
    /// Primal mode, one workgroup per point.
    PrimalGroup,
    /// Series mode's reduction pass, one invocation per point.
    Reduce,
    /// Series mode's reduction pass, one workgroup per point.
    ReduceGroup,
    /// Series mode, one invocation per (point, direction).
    Series,
    /// Series mode, one workgroup per (point, direction), for directions that move every window
    /// of a long loop.
    SeriesGroup,
}

use Access::{Read, ReadWrite};

impl ProgramKernel {
    /// All six.
    pub const ALL: [ProgramKernel; 6] = [
        ProgramKernel::Primal,
        ProgramKernel::PrimalGroup,
        ProgramKernel::Reduce,
        ProgramKernel::ReduceGroup,
        ProgramKernel::Series,
        ProgramKernel::SeriesGroup,
    ];

    /// A label for pipelines, profiles and error messages.
    pub fn name(self) -> &'static str {
        match self {
            ProgramKernel::Primal => "program_primal",
            ProgramKernel::PrimalGroup => "program_primal_group",
            ProgramKernel::Reduce => "program_reduce",
            ProgramKernel::ReduceGroup => "program_reduce_group",
            ProgramKernel::Series => "program_series",
            ProgramKernel::SeriesGroup => "program_series_group",
        }
    }

    /// Whether a workgroup works on one point (or one point and direction); its size must then
    /// be a power of two.
    pub fn is_group(self) -> bool {
        matches!(
            self,
            ProgramKernel::PrimalGroup | ProgramKernel::ReduceGroup | ProgramKernel::SeriesGroup
        )
    }

    /// Whether this is a series-mode kernel (specialised for a series order).
    pub fn is_series(self) -> bool {
        matches!(self, ProgramKernel::Series | ProgramKernel::SeriesGroup)
    }

    /// The fixed files between the prelude and the generated body, in order.
    pub fn parts(self) -> &'static [&'static str] {
        match self {
            ProgramKernel::Primal => &[COMMON, PROGRAM_COMMON, PROGRAM_PRIMAL, PROGRAM_THREAD],
            ProgramKernel::PrimalGroup => &[COMMON, PROGRAM_COMMON, PROGRAM_PRIMAL, PROGRAM_GROUP],
            ProgramKernel::Reduce => &[COMMON, PROGRAM_COMMON, PROGRAM_REDUCE, PROGRAM_THREAD],
            ProgramKernel::ReduceGroup => &[COMMON, PROGRAM_COMMON, PROGRAM_REDUCE, PROGRAM_GROUP],
            ProgramKernel::Series => &[
                COMMON,
                PROGRAM_COMMON,
                PROGRAM_SERIES,
                PROGRAM_SERIES_KERNEL,
                PROGRAM_SERIES_THREAD,
            ],
            ProgramKernel::SeriesGroup => &[
                COMMON,
                PROGRAM_COMMON,
                PROGRAM_SERIES,
                PROGRAM_SERIES_KERNEL,
                PROGRAM_SERIES_GROUP,
            ],
        }
    }

    /// Access of storage bindings `1, 2, …` (binding 0 is the uniform parameter block).
    pub fn bindings(self) -> &'static [Access] {
        match self {
            // points, features, params, out
            ProgramKernel::Primal | ProgramKernel::PrimalGroup => &[Read, Read, Read, ReadWrite],
            // points, params, reductions
            ProgramKernel::Reduce | ProgramKernel::ReduceGroup => &[Read, Read, ReadWrite],
            // points, params, reductions, slot indices, slot coefficients, dense tangents, out
            ProgramKernel::Series | ProgramKernel::SeriesGroup => {
                &[Read, Read, Read, Read, Read, Read, ReadWrite]
            }
        }
    }

    /// Field names of the kernel's uniform `Params` struct, in declaration order (4-byte fields).
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            ProgramKernel::Primal | ProgramKernel::PrimalGroup => &[
                "rows", "row0", "n_points", "x_base", "f_base", "p_base", "o_base", "o_col",
                "o_point",
            ],
            ProgramKernel::Reduce | ProgramKernel::ReduceGroup => {
                &["rows", "x_base", "p_base", "r_base"]
            }
            ProgramKernel::Series | ProgramKernel::SeriesGroup => &[
                "rows", "row0", "n_points", "n_dirs", "one_hot", "x_base", "p_base", "r_base",
                "i_base", "c_base", "d_base", "o_base",
            ],
        }
    }
}

/// Which node list of a program a [`ProgramError`] points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// [`Program::nodes`].
    Main,
    /// The body of loop `l`.
    Loop(usize),
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Main => write!(f, "the main body"),
            Body::Loop(l) => write!(f, "the body of loop {l}"),
        }
    }
}

/// Why a program cannot be compiled: it breaks an invariant of [`Program`] (a bug in whatever
/// built it), or a mode it does not support was asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum ProgramError {
    /// Node `node` reads node `operand`, which does not come before it.
    ForwardReference {
        /// Where.
        body: Body,
        /// The reading node.
        node: usize,
        /// The node read.
        operand: NodeId,
    },
    /// Node `node` is an op that may not appear in its body (a window read in the main body, a
    /// feature or an accumulator in a loop body, the time without a time column).
    Misplaced {
        /// Where.
        body: Body,
        /// The node.
        node: usize,
        /// The op.
        op: Op,
    },
    /// Node `node` reads `what` at `index`, outside `0..len` (for a window read, at the first or
    /// last window of its loop).
    OutOfRange {
        /// Where.
        body: Body,
        /// The node.
        node: usize,
        /// Coordinates, features, parameters or accumulators.
        what: &'static str,
        /// The index read.
        index: i64,
        /// How many exist.
        len: u64,
    },
    /// An output or an accumulator names a node past the end of its node list.
    MissingNode {
        /// Where the node should be.
        body: Body,
        /// The id named.
        node: NodeId,
    },
    /// A dimension or loop bound above [`MAX_INDEX`] (the kernels do window arithmetic in 32
    /// bits, signed where a window index is a coordinate minus an offset).
    TooLarge {
        /// The dimension or a loop bound.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// Series mode on a program that reads features.
    ReadsFeatures,
    /// A series order outside `1..=MAX_ORDER`.
    UnsupportedOrder {
        /// The order asked for.
        order: usize,
    },
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::ForwardReference {
                body,
                node,
                operand,
            } => write!(
                f,
                "node {node} of {body} reads node {operand}, which does not come before it"
            ),
            ProgramError::Misplaced { body, node, op } => {
                write!(f, "node {node} of {body} ({op:?}) may not appear there")
            }
            ProgramError::OutOfRange {
                body,
                node,
                what,
                index,
                len,
            } => write!(
                f,
                "node {node} of {body} reads {what} {index}, outside 0..{len}"
            ),
            ProgramError::MissingNode { body, node } => {
                write!(f, "an output or accumulator names node {node}, past {body}")
            }
            ProgramError::TooLarge { what, value } => {
                write!(
                    f,
                    "{what} {value} is above the kernels' limit of {MAX_INDEX}"
                )
            }
            ProgramError::ReadsFeatures => {
                write!(f, "a program that reads features runs in primal mode only")
            }
            ProgramError::UnsupportedOrder { order } => {
                write!(f, "series order {order} is outside 1..={MAX_ORDER}")
            }
        }
    }
}

impl std::error::Error for ProgramError {}

/// Checks the invariants of [`Program`] that the generated code relies on (every read in bounds,
/// nodes in topological order, ops where they may appear).
///
/// # Errors
/// The first violation found.
pub fn check(p: &Program) -> Result<(), ProgramError> {
    let too_large = |what: &'static str, value: u32| {
        if value > MAX_INDEX {
            Err(ProgramError::TooLarge {
                what,
                value: u64::from(value),
            })
        } else {
            Ok(())
        }
    };
    too_large("dimension", p.dim)?;
    for lp in &p.loops {
        too_large("loop bound", lp.lo)?;
        too_large("loop bound", lp.hi)?;
    }
    let dim = i64::from(p.dim);
    let n_params = i64::from(p.n_params);
    let n_acc = p.n_accumulators() as i64;
    let range = |body: Body, node: usize, what: &'static str, index: i64, len: i64| {
        if (0..len).contains(&index) {
            Ok(())
        } else {
            Err(ProgramError::OutOfRange {
                body,
                node,
                what,
                index,
                len: len as u64,
            })
        }
    };
    for (l, lp) in p.loops.iter().enumerate() {
        let body = Body::Loop(l);
        // Windows are read only when the range is not empty; then its ends bound every read.
        let ends = (lp.lo < lp.hi).then(|| (i64::from(lp.lo), i64::from(lp.hi) - 1));
        for (node, op) in lp.nodes.iter().enumerate() {
            check_operands(body, node, op)?;
            match *op {
                Op::Coord(j) => range(body, node, "coordinate", i64::from(j), dim)?,
                Op::Time if !p.has_time => return Err(misplaced(body, node, op)),
                Op::Param(i) => range(body, node, "parameter", i64::from(i), n_params)?,
                Op::WinCoord(k) => {
                    if let Some((a, b)) = ends {
                        range(body, node, "coordinate", a + i64::from(k), dim)?;
                        range(body, node, "coordinate", b + i64::from(k), dim)?;
                    }
                }
                Op::WinParam { base, k } => {
                    if let Some((a, b)) = ends {
                        let off = i64::from(base) + i64::from(k);
                        range(body, node, "parameter", a + off, n_params)?;
                        range(body, node, "parameter", b + off, n_params)?;
                    }
                }
                Op::Feature(_) | Op::Reduced(_) => return Err(misplaced(body, node, op)),
                _ => {}
            }
        }
        for a in &lp.accumulators {
            if a.value as usize >= lp.nodes.len() {
                return Err(ProgramError::MissingNode {
                    body,
                    node: a.value,
                });
            }
        }
    }
    let body = Body::Main;
    for (node, op) in p.nodes.iter().enumerate() {
        check_operands(body, node, op)?;
        match *op {
            Op::Coord(j) => range(body, node, "coordinate", i64::from(j), dim)?,
            Op::Time if !p.has_time => return Err(misplaced(body, node, op)),
            Op::Param(i) => range(body, node, "parameter", i64::from(i), n_params)?,
            Op::Feature(f) => range(body, node, "feature", i64::from(f), i64::from(p.n_features))?,
            Op::Reduced(a) => range(body, node, "accumulator", i64::from(a), n_acc)?,
            Op::WinCoord(_) | Op::WinParam { .. } => return Err(misplaced(body, node, op)),
            _ => {}
        }
    }
    for &o in &p.outputs {
        if o as usize >= p.nodes.len() {
            return Err(ProgramError::MissingNode { body, node: o });
        }
    }
    Ok(())
}

fn misplaced(body: Body, node: usize, op: &Op) -> ProgramError {
    ProgramError::Misplaced {
        body,
        node,
        op: *op,
    }
}

fn check_operands(body: Body, node: usize, op: &Op) -> Result<(), ProgramError> {
    let (a, b) = operands(op);
    for operand in a.into_iter().chain(b) {
        if operand as usize >= node {
            return Err(ProgramError::ForwardReference {
                body,
                node,
                operand,
            });
        }
    }
    Ok(())
}

/// The node operands of an op.
fn operands(op: &Op) -> (Option<NodeId>, Option<NodeId>) {
    match *op {
        Op::Neg(a) | Op::PowInt(a, _) | Op::Call(_, a) => (Some(a), None),
        Op::Add(a, b)
        | Op::Sub(a, b)
        | Op::Mul(a, b)
        | Op::Div(a, b)
        | Op::Min(a, b)
        | Op::Max(a, b)
        | Op::Pow(a, b) => (Some(a), Some(b)),
        _ => (None, None),
    }
}

/// `x` as a WGSL f32 expression: the f32 nearest to `x`, printed with the shortest decimal that
/// parses back to exactly that f32 (and an `f` suffix, so it is never an abstract float), or
/// `f32_bits(0x…u)` for an infinity or a NaN (also for finite values beyond the f32 range).
pub fn f32_literal(x: f64) -> String {
    let v = x as f32;
    if v.is_finite() {
        // Rust's `Debug` of a float is the shortest representation that round-trips.
        let s = format!("{v:?}");
        if v.is_sign_negative() {
            format!("({s}f)")
        } else {
            format!("{s}f")
        }
    } else {
        format!("f32_bits(0x{:08x}u)", v.to_bits())
    }
}

/// `base + k` for a u32 expression `base` and a constant offset that keeps it non-negative.
fn plus(base: &str, k: i64) -> String {
    match k {
        0 => base.to_string(),
        k if k > 0 => format!("{base} + {k}u"),
        k => format!("{base} - {}u", -k),
    }
}

/// What the generator knows about one loop.
struct LoopInfo {
    /// Number of its first accumulator over all loops.
    first_acc: usize,
    /// Distinct window offsets `k` of its `x[i + k]` reads, ascending.
    offsets: Vec<i32>,
    /// Fixed coordinates it reads (`DIM` for the time), ascending.
    fixed: Vec<u32>,
    /// Per body node: whether its value can move along a curve.
    moving: Vec<bool>,
}

impl LoopInfo {
    fn new(lp: &Loop, first_acc: usize, dim: u32) -> Self {
        let mut offsets = Vec::new();
        let mut fixed = Vec::new();
        let mut moving: Vec<bool> = Vec::with_capacity(lp.nodes.len());
        for op in &lp.nodes {
            let m = match *op {
                Op::WinCoord(k) => {
                    offsets.push(k);
                    true
                }
                Op::Coord(j) => {
                    fixed.push(j);
                    true
                }
                Op::Time => {
                    fixed.push(dim);
                    true
                }
                _ => {
                    let (a, b) = operands(op);
                    a.into_iter().chain(b).any(|x| moving[x as usize])
                }
            };
            moving.push(m);
        }
        offsets.sort_unstable();
        offsets.dedup();
        fixed.sort_unstable();
        fixed.dedup();
        Self {
            first_acc,
            offsets,
            fixed,
            moving,
        }
    }

    /// Whether accumulator `q` of the loop can move.
    fn acc_moving(&self, lp: &Loop, q: usize) -> bool {
        self.moving[lp.accumulators[q].value as usize]
    }
}

/// The analysis shared by every kernel of one program.
struct Analysis {
    loops: Vec<LoopInfo>,
    /// Per accumulator: its kind and whether it can move.
    accs: Vec<(ReduceKind, bool)>,
    /// Per main-body node: whether it can move.
    moving: Vec<bool>,
}

impl Analysis {
    fn new(p: &Program) -> Self {
        let mut loops = Vec::with_capacity(p.loops.len());
        let mut accs = Vec::new();
        for lp in &p.loops {
            let info = LoopInfo::new(lp, accs.len(), p.dim);
            for (q, a) in lp.accumulators.iter().enumerate() {
                accs.push((a.kind, info.acc_moving(lp, q)));
            }
            loops.push(info);
        }
        let mut moving: Vec<bool> = Vec::with_capacity(p.nodes.len());
        for op in &p.nodes {
            let m = match *op {
                Op::Coord(_) | Op::Time => true,
                Op::Reduced(a) => accs[a as usize].1,
                _ => {
                    let (a, b) = operands(op);
                    a.into_iter().chain(b).any(|x| moving[x as usize])
                }
            };
            moving.push(m);
        }
        Self {
            loops,
            accs,
            moving,
        }
    }
}

/// Where an expression is emitted: the names of the leaves that depend on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A loop body at window `i` (point row at `xb`).
    Window,
    /// The primal main body (point `n`, accumulators in `acc`).
    PrimalMain,
    /// The series kernel's main body (accumulators read back with `red_total`).
    SeriesMain,
}

/// The f32 expression of a node whose operands are f32 values named `v{id}`.
fn primal_expr(op: &Op, scope: Scope) -> String {
    let v = |id: NodeId| format!("v{id}");
    match *op {
        Op::Const(c) => f32_literal(c),
        Op::Coord(j) => format!("x[xb + {j}u]"),
        Op::Time => "x[xb + DIM]".to_string(),
        Op::Feature(f) => format!("feature({f}u, n)"),
        Op::Param(i) => format!("prm[p.p_base + {i}u]"),
        Op::WinCoord(k) => format!("x[{}]", plus("xb + i", i64::from(k))),
        Op::WinParam { base, k } => format!(
            "prm[{}]",
            plus("p.p_base + i", i64::from(base) + i64::from(k))
        ),
        Op::Reduced(a) => match scope {
            Scope::SeriesMain => format!("red_total({a}u)"),
            _ => format!("acc[{a}u]"),
        },
        Op::Neg(a) => format!("-{}", v(a)),
        Op::Add(a, b) => format!("{} + {}", v(a), v(b)),
        Op::Sub(a, b) => format!("{} - {}", v(a), v(b)),
        Op::Mul(a, b) => format!("{} * {}", v(a), v(b)),
        Op::Div(a, b) => format!("{} / {}", v(a), v(b)),
        Op::Min(a, b) => format!("select({0}, {1}, {1} < {0})", v(a), v(b)),
        Op::Max(a, b) => format!("select({0}, {1}, {1} > {0})", v(a), v(b)),
        Op::PowInt(a, n) => format!("pg_powi({}, {n})", v(a)),
        Op::Pow(a, b) => format!("pg_exp({} * pg_log({}))", v(b), v(a)),
        Op::Call(f, a) => format!("{}({})", primal_func(f), v(a)),
    }
}

fn primal_func(f: Func) -> &'static str {
    match f {
        Func::Exp => "pg_exp",
        Func::Log => "pg_log",
        Func::Sin => "m_sin",
        Func::Cos => "m_cos",
        Func::Tanh => "m_tanh",
        Func::Atan => "pg_atan",
        Func::Sqrt => "sqrt",
        Func::Abs => "abs",
    }
}

fn series_func(f: Func) -> &'static str {
    match f {
        Func::Exp => "s_exp",
        Func::Log => "s_log",
        Func::Sin => "s_sin",
        Func::Cos => "s_cos",
        Func::Tanh => "s_tanh",
        Func::Atan => "s_atan",
        Func::Sqrt => "s_sqrt",
        Func::Abs => "s_abs",
    }
}

/// The series expression of a moving node; `moving[id]` says whether operand `id` is a series
/// (`v{id}` of type `Series`) or a number.
fn series_expr(op: &Op, moving: &[bool]) -> String {
    let v = |id: NodeId| format!("v{id}");
    // An operand as a series, lifting a number.
    let s = |id: NodeId| {
        if moving[id as usize] {
            v(id)
        } else {
            format!("s_const(v{id})")
        }
    };
    let m = |id: NodeId| moving[id as usize];
    match *op {
        Op::Coord(j) => format!("s_coord({j}u)"),
        Op::Time => "s_coord(DIM)".to_string(),
        Op::WinCoord(k) => format!("s_coord({})", plus("i", i64::from(k))),
        Op::Reduced(a) => format!("r{a}"),
        Op::Neg(a) => format!("s_neg({})", v(a)),
        Op::Add(a, b) => match (m(a), m(b)) {
            (true, true) => format!("s_add({}, {})", v(a), v(b)),
            (true, false) => format!("s_add_c({}, {})", v(a), v(b)),
            _ => format!("s_add_c({}, {})", v(b), v(a)),
        },
        Op::Sub(a, b) => match (m(a), m(b)) {
            (true, true) => format!("s_sub({}, {})", v(a), v(b)),
            (true, false) => format!("s_sub_c({}, {})", v(a), v(b)),
            _ => format!("s_csub({}, {})", v(a), v(b)),
        },
        Op::Mul(a, b) => match (m(a), m(b)) {
            (true, true) => format!("s_mul({}, {})", v(a), v(b)),
            (true, false) => format!("s_scale({}, {})", v(a), v(b)),
            _ => format!("s_scale({}, {})", v(b), v(a)),
        },
        Op::Div(a, b) => match (m(a), m(b)) {
            (true, true) => format!("s_div({}, {})", v(a), v(b)),
            (true, false) => format!("s_div_c({}, {})", v(a), v(b)),
            _ => format!("s_cdiv({}, {})", v(a), v(b)),
        },
        Op::Min(a, b) => format!("s_min({}, {})", s(a), s(b)),
        Op::Max(a, b) => format!("s_max({}, {})", s(a), s(b)),
        Op::PowInt(a, n) => format!("s_powi({}, {n})", v(a)),
        Op::Pow(a, b) => format!("s_pow({}, {})", s(a), s(b)),
        Op::Call(f, a) => format!("{}({})", series_func(f), v(a)),
        // Leaves that never move (never reached: they are emitted as numbers).
        Op::Const(_) | Op::Feature(_) | Op::Param(_) | Op::WinParam { .. } => {
            unreachable!("a leaf that cannot move is emitted as a number")
        }
    }
}

/// Appends `let v{id} = …;` for every node of a body (primal: all f32).
fn emit_primal_nodes(out: &mut String, nodes: &[Op], scope: Scope, indent: &str) {
    for (id, op) in nodes.iter().enumerate() {
        let _ = writeln!(out, "{indent}let v{id} = {};", primal_expr(op, scope));
    }
}

/// Appends `let v{id} = …;` for every node of a body in series mode: `Series` where the node
/// moves, f32 where it cannot.
fn emit_series_nodes(out: &mut String, nodes: &[Op], moving: &[bool], scope: Scope, indent: &str) {
    for (id, op) in nodes.iter().enumerate() {
        let expr = if moving[id] {
            series_expr(op, moving)
        } else {
            primal_expr(op, scope)
        };
        let _ = writeln!(out, "{indent}let v{id} = {expr};");
    }
}

/// A blocked loop over windows `i = lo + first, lo + first + step, … < hi` that calls `call` (a
/// function of `i` returning the accumulated values as `lv`), adds value `q` of each sum into
/// `s{q}_3` through three blocking levels, and runs `per_window` (max tracking) for every window.
struct Blocked<'a> {
    lo: u32,
    hi: u32,
    first: &'a str,
    step: &'a str,
    call: String,
    /// Loop-local accumulator numbers of the sums.
    sums: Vec<usize>,
    /// The zero of an accumulator (`0.0` or `Series()`).
    zero: &'a str,
    /// Whether values are series (`s_add`) rather than numbers (`+=`).
    series: bool,
    /// Lines run for every window after the sums (max tracking), unindented.
    per_window: Vec<String>,
}

impl Blocked<'_> {
    fn emit(&self, out: &mut String, indent: &str) {
        let add = |out: &mut String, ind: &str, dst: String, src: String| {
            if self.series {
                let _ = writeln!(out, "{ind}{dst} = s_add({dst}, {src});");
            } else {
                let _ = writeln!(out, "{ind}{dst} += {src};");
            }
        };
        let decl = |out: &mut String, ind: &str, level: usize| {
            for q in &self.sums {
                let _ = writeln!(out, "{ind}var s{q}_{level} = {};", self.zero);
            }
        };
        let hi = self.hi;
        decl(out, indent, 3);
        let _ = writeln!(out, "{indent}var i = {}u + {};", self.lo, self.first);
        if self.sums.is_empty() {
            // Only maxima: no blocking needed.
            let _ = writeln!(out, "{indent}while i < {hi}u {{");
            let ind = format!("{indent}    ");
            let _ = writeln!(out, "{ind}let lv = {};", self.call);
            for line in &self.per_window {
                let _ = writeln!(out, "{ind}{line}");
            }
            let _ = writeln!(out, "{ind}i += {};", self.step);
            let _ = writeln!(out, "{indent}}}");
            return;
        }
        let i1 = format!("{indent}    ");
        let i2 = format!("{indent}        ");
        let i3 = format!("{indent}            ");
        let i4 = format!("{indent}                ");
        let _ = writeln!(out, "{indent}while i < {hi}u {{");
        decl(out, &i1, 2);
        let _ = writeln!(
            out,
            "{i1}for (var c2 = 0u; c2 < {BLOCK}u && i < {hi}u; c2++) {{"
        );
        decl(out, &i2, 1);
        let _ = writeln!(
            out,
            "{i2}for (var c1 = 0u; c1 < {BLOCK}u && i < {hi}u; c1++) {{"
        );
        decl(out, &i3, 0);
        let _ = writeln!(
            out,
            "{i3}for (var c0 = 0u; c0 < {BLOCK}u && i < {hi}u; c0++) {{"
        );
        let _ = writeln!(out, "{i4}let lv = {};", self.call);
        for &q in &self.sums {
            add(out, &i4, format!("s{q}_0"), format!("lv[{q}]"));
        }
        for line in &self.per_window {
            let _ = writeln!(out, "{i4}{line}");
        }
        let _ = writeln!(out, "{i4}i += {};", self.step);
        let _ = writeln!(out, "{i3}}}");
        for &q in &self.sums {
            add(out, &i3, format!("s{q}_1"), format!("s{q}_0"));
        }
        let _ = writeln!(out, "{i2}}}");
        for &q in &self.sums {
            add(out, &i2, format!("s{q}_2"), format!("s{q}_1"));
        }
        let _ = writeln!(out, "{i1}}}");
        for &q in &self.sums {
            add(out, &i1, format!("s{q}_3"), format!("s{q}_2"));
        }
        let _ = writeln!(out, "{indent}}}");
    }
}

/// The generated prelude: the program's constants and the specialisation.
fn prelude(p: &Program, order: usize, wg: u32) -> String {
    let n_acc = p.n_accumulators();
    format!(
        "// Generated prelude: the program's sizes, the series order and the workgroup size.\n\
         const K: u32 = {order}u;\nconst KP1: u32 = {}u;\nconst DIM: u32 = {}u;\n\
         const STRIDE: u32 = {}u;\nconst N_OUT: u32 = {}u;\nconst N_ACC: u32 = {n_acc}u;\n\
         const N_ACC1: u32 = {}u;\nconst WG: u32 = {wg}u;\n",
        order + 1,
        p.dim,
        p.point_stride(),
        p.n_outputs(),
        n_acc.max(1),
    )
}

/// Loop iterations per invocation that a kernel may spend on its window loops: half of what
/// llvmpipe (lavapipe) allows one invocation over all its loops together (65535, after which
/// every loop exits silently), leaving room for the rest of the kernel.
pub const ITERATION_BUDGET: u64 = 1 << 15;

/// A bound on the loop iterations (of any loop, nested ones included) that one window of a primal
/// loop body costs: the window loop itself and `pg_powi`'s squarings.
fn primal_window_iterations(lp: &Loop) -> u64 {
    1 + lp
        .nodes
        .iter()
        .map(|op| match *op {
            Op::PowInt(_, n) => 1 + u64::from(32 - n.unsigned_abs().leading_zeros()),
            _ => 0,
        })
        .sum::<u64>()
}

/// A bound on the loop iterations of one series op at order `k` (the helpers' coefficient loops).
fn series_op_iterations(op: &Op, moving: &[bool], k: u64) -> u64 {
    let n = k + 1;
    let per_coeff = n;
    let cauchy = n + n * (n + 1) / 2;
    let chain = k + k * (k + 1) / 2;
    let m = |id: NodeId| moving[id as usize];
    match *op {
        Op::Coord(_) | Op::Time | Op::WinCoord(_) => k,
        Op::Neg(_) | Op::Min(..) | Op::Max(..) | Op::Call(Func::Abs, _) => per_coeff,
        Op::Add(a, b) | Op::Sub(a, b) => {
            if m(a) && m(b) {
                per_coeff
            } else {
                n
            }
        }
        Op::Mul(a, b) | Op::Div(a, b) => {
            if m(a) && m(b) {
                cauchy
            } else {
                per_coeff
            }
        }
        Op::PowInt(_, e) => {
            let bits = u64::from(32 - e.unsigned_abs().leading_zeros());
            1 + 2 * bits * (cauchy + 1) + cauchy
        }
        Op::Pow(..) => 2 * chain + cauchy,
        Op::Call(Func::Tanh, _) => 2 * chain + k,
        Op::Call(Func::Atan, _) => chain + 2 * cauchy + per_coeff,
        Op::Call(..) => chain,
        Op::Const(_) | Op::Feature(_) | Op::Param(_) | Op::WinParam { .. } | Op::Reduced(_) => 0,
    }
}

/// A bound on the loop iterations that one invocation of the per-point passes (primal mode, series
/// mode's reductions) runs over all windows of `p` when it works on a point alone.
pub fn primal_iterations(p: &Program) -> u64 {
    p.loops
        .iter()
        .filter(|lp| !lp.accumulators.is_empty())
        .map(|lp| u64::from(lp.hi.saturating_sub(lp.lo)) * primal_window_iterations(lp))
        .sum()
}

/// What the series kernel costs at order `order` for a direction that moves every window: a bound
/// on the loop iterations one invocation runs when it works on a (point, direction) alone, and
/// whether a one-hot direction can need it too (a loop whose sums move reads a fixed coordinate or
/// the time).
pub fn series_every_window_iterations(p: &Program, order: usize) -> (u64, bool) {
    let an = Analysis::new(p);
    let k = order as u64;
    let mut total = 0;
    let mut fixed = false;
    for (l, lp) in p.loops.iter().enumerate() {
        let info = &an.loops[l];
        let sums = (0..lp.accumulators.len())
            .filter(|&q| info.acc_moving(lp, q) && lp.accumulators[q].kind == ReduceKind::Sum)
            .count() as u64;
        if sums == 0 {
            continue;
        }
        fixed |= !info.fixed.is_empty();
        let body: u64 = lp
            .nodes
            .iter()
            .enumerate()
            .filter(|(id, _)| info.moving[*id])
            .map(|(_, op)| series_op_iterations(op, &info.moving, k))
            .sum();
        // Doubled: drivers lower parts of the helpers (array copies, selects) to loops too.
        let per_window = 2 * (1 + body + sums * (k + 1));
        total += u64::from(lp.hi.saturating_sub(lp.lo)) * per_window;
    }
    (total, fixed)
}

/// The full WGSL source of `kernel` for program `p`: series order `order` (used by
/// [`ProgramKernel::Series`] only) and `wg` invocations per workgroup (a power of two for the
/// group kernels).
///
/// # Errors
/// [`ProgramError`] if `p` breaks an invariant of [`Program`], or series mode is asked of a
/// program that reads features or at an order outside `1..=MAX_ORDER`.
///
/// # Panics
/// If `wg` is zero, or not a power of two for a group kernel.
#[track_caller]
pub fn source(
    p: &Program,
    kernel: ProgramKernel,
    order: usize,
    wg: u32,
) -> Result<String, ProgramError> {
    assert!(wg > 0, "a workgroup of no invocations");
    assert!(
        !kernel.is_group() || wg.is_power_of_two(),
        "the group kernels reduce in a tree: {wg} invocations is not a power of two"
    );
    check(p)?;
    let order = if kernel.is_series() {
        if p.reads_features() {
            return Err(ProgramError::ReadsFeatures);
        }
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(ProgramError::UnsupportedOrder { order });
        }
        order
    } else {
        0
    };
    let an = Analysis::new(p);
    let mut src = prelude(p, order, wg);
    for part in kernel.parts() {
        src.push('\n');
        src.push_str(part);
    }
    src.push_str("\n// Generated body.\n");
    match kernel {
        ProgramKernel::Primal | ProgramKernel::PrimalGroup => {
            emit_accumulate(&mut src, p, &an);
            emit_primal_body(&mut src, p);
        }
        ProgramKernel::Reduce | ProgramKernel::ReduceGroup => emit_accumulate(&mut src, p, &an),
        ProgramKernel::Series | ProgramKernel::SeriesGroup => emit_series(&mut src, p, &an),
    }
    Ok(src)
}

/// The primal loop bodies, `pg_acc_is_max` and `pg_accumulate`.
fn emit_accumulate(out: &mut String, p: &Program, an: &Analysis) {
    for (l, lp) in p.loops.iter().enumerate() {
        let na = lp.accumulators.len();
        if na == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "\n// Loop {l}: the accumulated values at window i.\nfn pg_l{l}(xb: u32, i: u32) -> array<f32, {na}> {{"
        );
        emit_primal_nodes(out, &lp.nodes, Scope::Window, "    ");
        let vals: Vec<String> = lp
            .accumulators
            .iter()
            .map(|a| format!("v{}", a.value))
            .collect();
        let _ = writeln!(out, "    return array<f32, {na}>({});\n}}", vals.join(", "));
    }
    let maxes: Vec<String> = an
        .accs
        .iter()
        .enumerate()
        .filter(|(_, a)| a.0 == ReduceKind::Max)
        .map(|(a, _)| format!("a == {a}u"))
        .collect();
    let _ = writeln!(
        out,
        "\n// Whether accumulator a is a max (else a sum).\nfn pg_acc_is_max(a: u32) -> bool {{\n    return {};\n}}",
        if maxes.is_empty() {
            "false".to_string()
        } else {
            maxes.join(" || ")
        }
    );
    let _ = writeln!(
        out,
        "\n// Every accumulator over windows lo + first, lo + first + step, … of each loop.\n\
         fn pg_accumulate(xb: u32, first: u32, step: u32) {{"
    );
    for (l, lp) in p.loops.iter().enumerate() {
        if lp.accumulators.is_empty() {
            continue;
        }
        let a0 = an.loops[l].first_acc;
        let _ = writeln!(
            out,
            "    // Loop {l}: windows [{}, {}).\n    {{",
            lp.lo, lp.hi
        );
        let ind = "        ";
        let mut per_window = Vec::new();
        let mut sums = Vec::new();
        for (q, a) in lp.accumulators.iter().enumerate() {
            match a.kind {
                ReduceKind::Sum => sums.push(q),
                ReduceKind::Max => {
                    let _ = writeln!(
                        out,
                        "{ind}var m{q} = f32_bits(0xff800000u);\n{ind}var g{q} = NONE;"
                    );
                    // The first window attaining the max wins: windows come in increasing order.
                    per_window.extend([
                        format!("if g{q} == NONE || lv[{q}] > m{q} {{"),
                        format!("    m{q} = lv[{q}];"),
                        format!("    g{q} = i;"),
                        "}".to_string(),
                    ]);
                }
            }
        }
        Blocked {
            lo: lp.lo,
            hi: lp.hi,
            first: "first",
            step: "step",
            call: format!("pg_l{l}(xb, i)"),
            sums,
            zero: "0.0",
            series: false,
            per_window,
        }
        .emit(out, ind);
        for (q, a) in lp.accumulators.iter().enumerate() {
            let g = a0 + q;
            match a.kind {
                ReduceKind::Sum => {
                    let _ = writeln!(out, "{ind}acc[{g}u] = s{q}_3;");
                }
                ReduceKind::Max => {
                    let _ = writeln!(out, "{ind}acc[{g}u] = m{q};\n{ind}arg[{g}u] = g{q};");
                }
            }
        }
        let _ = writeln!(out, "    }}");
    }
    let _ = writeln!(out, "}}");
}

/// `pg_primal_body`: the main body at point `n` of the batch, and its outputs.
fn emit_primal_body(out: &mut String, p: &Program) {
    let _ = writeln!(
        out,
        "\n// The main body at point n (row at xb), after the reductions.\nfn pg_primal_body(xb: u32, n: u32) {{"
    );
    emit_primal_nodes(out, &p.nodes, Scope::PrimalMain, "    ");
    for (o, id) in p.outputs.iter().enumerate() {
        let _ = writeln!(out, "    write_out({o}u, n, v{id});");
    }
    let _ = writeln!(out, "}}");
}

/// The series loop bodies, their window tests, and `pg_series_point`.
fn emit_series(out: &mut String, p: &Program, an: &Analysis) {
    for (l, lp) in p.loops.iter().enumerate() {
        let info = &an.loops[l];
        let na = lp.accumulators.len();
        if na == 0 || !(0..na).any(|q| info.acc_moving(lp, q)) {
            continue;
        }
        let _ = writeln!(
            out,
            "\n// Loop {l}: the series of the accumulated values at window i.\n\
             fn pg_l{l}_s(i: u32) -> array<Series, {na}> {{"
        );
        emit_series_nodes(out, &lp.nodes, &info.moving, Scope::Window, "    ");
        let vals: Vec<String> = lp
            .accumulators
            .iter()
            .map(|a| {
                if info.moving[a.value as usize] {
                    format!("v{}", a.value)
                } else {
                    format!("s_const(v{})", a.value)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "    return array<Series, {na}>({});\n}}",
            vals.join(", ")
        );
        let reads: Vec<String> = info.offsets.iter().map(|k| format!("k == {k}")).collect();
        let fixed: Vec<String> = info
            .fixed
            .iter()
            .map(|&j| {
                if j == p.dim {
                    "moves(DIM)".to_string()
                } else {
                    format!("moves({j}u)")
                }
            })
            .collect();
        let or = |v: Vec<String>| {
            if v.is_empty() {
                "false".to_string()
            } else {
                v.join(" || ")
            }
        };
        let _ = writeln!(
            out,
            "\n// Whether window i of loop {l} reads x[i + k].\n\
             fn pg_l{l}_reads(k: i32) -> bool {{\n    return {};\n}}\n\
             \n// Whether a fixed coordinate that loop {l} reads moves (then every window does).\n\
             fn pg_l{l}_fixed_moves() -> bool {{\n    return {};\n}}\n\
             \n// Whether window w of loop {l} reads a coordinate this one-hot direction moves.\n\
             fn pg_l{l}_window_moves(w: u32) -> bool {{\n\
             \x20   for (var a = 0u; a < n_touched; a++) {{\n\
             \x20       if pg_l{l}_reads(i32(touched[a]) - i32(w)) {{\n\
             \x20           return true;\n\
             \x20       }}\n\
             \x20   }}\n\
             \x20   return false;\n}}\n\
             \n// Whether window w of loop {l} reads one of the first `count` moving coordinates\n\
             // (it was visited already).\n\
             fn pg_l{l}_seen(w: i32, count: u32) -> bool {{\n\
             \x20   for (var a = 0u; a < count; a++) {{\n\
             \x20       if pg_l{l}_reads(i32(touched[a]) - w) {{\n\
             \x20           return true;\n\
             \x20       }}\n\
             \x20   }}\n\
             \x20   return false;\n}}",
            or(reads),
            or(fixed)
        );
    }
    let _ = writeln!(
        out,
        "\n// Every output's series at this invocation's point and direction.\nfn pg_series_point() {{"
    );
    for (l, lp) in p.loops.iter().enumerate() {
        emit_series_loop(out, an, l, lp);
    }
    emit_series_nodes(out, &p.nodes, &an.moving, Scope::SeriesMain, "    ");
    for (o, &id) in p.outputs.iter().enumerate() {
        if an.moving[id as usize] {
            let _ = writeln!(out, "    write_series({o}u, v{id});");
        } else {
            let _ = writeln!(out, "    write_series({o}u, s_const(v{id}));");
        }
    }
    let _ = writeln!(out, "}}");
}

/// The series `r{a}` of every moving accumulator of loop `l`.
fn emit_series_loop(out: &mut String, an: &Analysis, l: usize, lp: &Loop) {
    let info = &an.loops[l];
    let moving: Vec<usize> = (0..lp.accumulators.len())
        .filter(|&q| info.acc_moving(lp, q))
        .collect();
    if moving.is_empty() {
        return;
    }
    let a0 = info.first_acc;
    for &q in &moving {
        let _ = writeln!(out, "    var r{} = Series();", a0 + q);
    }
    let _ = writeln!(
        out,
        "    // Loop {l}: windows [{}, {}), offsets {:?}.\n    {{",
        lp.lo, lp.hi, info.offsets
    );
    let ind = "        ";
    let sums: Vec<usize> = moving
        .iter()
        .copied()
        .filter(|&q| lp.accumulators[q].kind == ReduceKind::Sum)
        .collect();
    if !sums.is_empty() {
        // Every window moves for a dense direction, or one that moves a fixed coordinate the body
        // reads: the invocations of the (point, direction) share them (lanes = 1 with one
        // invocation) and group_sum_series adds their shares, in uniform control flow.
        let _ = writeln!(
            out,
            "{ind}var all = array<Series, {}>();",
            lp.accumulators.len()
        );
        let _ = writeln!(
            out,
            "{ind}let every = dir_dense || pg_l{l}_fixed_moves();\n{ind}if every {{"
        );
        let inner = format!("{ind}    ");
        let blocked = Blocked {
            lo: lp.lo,
            hi: lp.hi,
            first: "lane",
            step: "lanes",
            call: format!("pg_l{l}_s(i)"),
            sums: sums.clone(),
            zero: "Series()",
            series: true,
            per_window: Vec::new(),
        };
        blocked.emit(out, &inner);
        for &q in &sums {
            let _ = writeln!(out, "{inner}all[{q}] = s{q}_3;");
        }
        let _ = writeln!(out, "{ind}}}");
        for &q in &sums {
            let _ = writeln!(out, "{ind}all[{q}] = group_sum_series(all[{q}]);");
        }
        // A one-hot direction: the windows that read one of its coordinates, each once.
        if !info.offsets.is_empty() {
            let _ = writeln!(
                out,
                "{ind}if !every {{\n{inner}for (var a = 0u; a < n_touched; a++) {{\n{inner}    let j = i32(touched[a]);"
            );
            for &k in &info.offsets {
                let _ = writeln!(
                    out,
                    "{inner}    {{\n\
                     {inner}        let w = j - ({k});\n\
                     {inner}        if w >= {lo} && w < {hi} && !pg_l{l}_seen(w, a) {{\n\
                     {inner}            let lv = pg_l{l}_s(u32(w));",
                    lo = lp.lo,
                    hi = i64::from(lp.hi),
                );
                for &q in &sums {
                    let _ = writeln!(
                        out,
                        "{inner}            all[{q}] = s_add(all[{q}], lv[{q}]);"
                    );
                }
                let _ = writeln!(out, "{inner}        }}\n{inner}    }}");
            }
            let _ = writeln!(out, "{inner}}}\n{ind}}}");
        }
        // The moving windows' primals are already in the stored total.
        for &q in &sums {
            let a = a0 + q;
            let _ = writeln!(
                out,
                "{ind}r{a} = all[{q}];\n{ind}r{a}[0] = red_total({a}u);"
            );
        }
    }
    for &q in &moving {
        if lp.accumulators[q].kind != ReduceKind::Max {
            continue;
        }
        let a = a0 + q;
        let _ = writeln!(
            out,
            "{ind}{{\n\
             {ind}    let w = red_argmax({a}u);\n\
             {ind}    if w != NONE && (dir_dense || pg_l{l}_fixed_moves() || pg_l{l}_window_moves(w)) {{\n\
             {ind}        let lv = pg_l{l}_s(w);\n\
             {ind}        r{a} = lv[{q}];\n\
             {ind}    }}\n\
             {ind}    r{a}[0] = red_total({a}u);\n\
             {ind}}}"
        );
    }
    let _ = writeln!(out, "    }}");
}
