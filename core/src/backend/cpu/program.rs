//! Compiled [`Program`]s on the CPU backend: loop bodies become tapes of vectorised f32 instructions
//! over blocks of windows (primal mode), and Taylor series are evaluated in f64 only over the windows
//! a direction touches (series mode). This is `impl ProgramBackend for CpuBackend`.
//!
//! # Compilation
//!
//! [`CpuBackend::compile_program`] turns every [`Loop`] into a [`CpuLoop`]:
//!
//! * **Sign folding.** Negations are pushed into their users where IEEE arithmetic makes that exact
//!   (`x + (−y) = x − y`, `(−x)·y = −(x·y)`, `−x − y = −(x + y)`) and up to the accumulators, which
//!   then subtract; only negations reaching other ops are materialised.
//! * **Classes.** Every live body node is *invariant* (reads only constants, parameters, fixed
//!   coordinates and the time), *single-coordinate* (depends on one window read `x[i+k]` and
//!   invariants) or *varying*. Invariant nodes are evaluated once per point in f64 and enter the tape
//!   as broadcast scalars.
//! * **Hoisting.** Single-coordinate nodes are hash-consed into functions of one variable with their
//!   offset stripped, so `cos(x[i])` and `cos(x[i+1])` are one function `cos(X)` read at offsets 0
//!   and 1. A function read at two or more offsets is evaluated once per *coordinate* into an array
//!   (the hoist tape) and the body reads it at lane offset `k`: a window sum over
//!   `φ(x_i, x_{i+1})` then costs one `cos` per coordinate, not two.
//! * **Fusion.** A pass over lanes costs two loads and a store per vector whatever it computes, so
//!   passes are what the tape minimises. `sin(a)` and `cos(a)` of one argument are one `SinCos`
//!   pass. A single-use `+ − ×` node folds into its `+ − ×` user (one level deep: `q(p(a,b), c)` and
//!   `q(p(a,b), r(c,d))`, each combination a monomorphised loop). A sum accumulator's update is the
//!   output of the instruction that computes its value (`acc ± v`, or `acc ± m·v` when the value is
//!   `m·v`), so products and sums feeding a sum never touch a slot.
//! * **Registers.** Virtual registers are mapped to lane slots by a linear scan (a slot is reused
//!   once its value is dead); slots are whole 64-byte lines, so a body of ~30 nodes needs ~10 slots
//!   of `BLOCK + span` floats and everything stays in L1.
//!
//! [`CpuProgram::listing`] prints the result.
//!
//! # Primal mode
//!
//! Lanes are windows: for each point, windows `lo..hi` run in blocks of [`BLOCK`], and every
//! instruction is one `for h in 0..len` pass over contiguous slices (a slot, the point row
//! `x[i0 + k + h]`, the parameters, or a broadcast scalar), which LLVM vectorises at full width under
//! the run-time dispatch of [`multiversioned!`]. The dispatch costs one `match` per instruction per
//! block.
//!
//! Lanes are f32: a device buffer is f32, AVX-512 holds 16 of them,
//! and the fast branch-free `exp`/`ln`/`sin`/`cos`/`tanh`/`atan` of [`super::simd`] are accurate to
//! a few ulp (arguments outside their fast range are recomputed with `std` in f64, lane by lane). Sums
//! keep per-lane f32 partials over at most [`FOLD_BLOCKS`] blocks and fold them into f64, so a sum
//! over 10⁶ windows is as accurate as its terms. The main body is `O(nodes)` per point and runs in f64.
//! Points are split across rayon tasks like the other streaming kernels.
//!
//! Speed: a forcing with three window sums sharing `sin`/`cos` of `θ_i = x_i + cos x_{i+1} + …`, plus
//! `‖x‖²`, compiles to one hoisted `SinCos` and 11 body passes (`core/examples/program_speed.rs`
//! times it); what a tape costs beyond a fused loop is the slots' loads and stores.
//!
//! # Native code
//!
//! Where the system C compiler works, loops of sums (of at least [`AUTO_MIN_WINDOWS`] windows,
//! under the default [`NativePrograms::Auto`]) do not run on the tape: [`native`] translates the
//! tape to one fused C loop per block, bit-identical to it, and calls that instead. The tape stays
//! the fallback and the definition of the results; [`CpuProgram::listing`] says which loops run as
//! native code.
//!
//! # Series mode
//!
//! Per point: the primal loops run once as above (a max also finds its argmax window: windows whose
//! f32 value is within [`ARGMAX_MARGIN`] (relative) of the f32 maximum are re-evaluated in f64, so
//! the choice matches the f64 interpreter, first window on ties). Then, per direction, the series of
//! every live invariant node is built once, and only the windows whose coordinates the direction
//! moves are evaluated as f64 Taylor series with the rules of [`crate::series`]: for a one-hot
//! direction, the windows `j − k` for each moved coordinate `j` and each window offset `k`
//! (`O(window)`, never `O(d)`); for a dense direction, or one that moves a fixed coordinate or the
//! time a body reads, every window. A sum is its primal plus the moving coefficients of those windows;
//! a max is the series of its argmax window. The main body then runs as f64 series per direction, and
//! results land in the jet-batch layout. Dense directions are evaluated window by window in scalar
//! f64 (correct, `O(d)` per direction, not vectorised).

use rayon::prelude::*;

mod native;
pub use native::{NativePrograms, AUTO_MIN_WINDOWS};

use super::simd::{atan_f32, exp_f32, multiversioned, sin_cos_f32, sin_cos_fixup, tanh_d_f32};
use super::CpuBackend;
use crate::backend::{BackendError, ProbeKind, ProgramBackend, SlotProbes};
use crate::batch::JetShape;
use crate::program::{Accumulator, Func, Loop, NodeId, Op, Program, ReduceKind};
use crate::rng::ln_f32;
use crate::series::{self, Unary};

/// Windows per block of the primal loop: each instruction is one pass over this many lanes, long
/// enough that the per-instruction dispatch vanishes, short enough that ~10 slots stay in L1.
const BLOCK: usize = 256;

/// Blocks per fold of the f32 lane partial sums into f64 (each partial holds at most this many terms).
const FOLD_BLOCKS: usize = 16;

/// f32 values per 64-byte cache line (and AVX-512 register): slots start on multiples of this.
const ALIGN: usize = 16;

/// Up to this magnitude [`sin_cos_f32`] is accurate; larger arguments are recomputed with `std`.
const SINCOS_FAST_LIMIT: f32 = 8192.0;

/// Relative distance from the f32 maximum within which max windows are re-evaluated in f64 to find
/// the exact argmax (f32 lanes are accurate to ~1e-6 relative, so the true argmax is always among
/// them unless a body cancels catastrophically).
const ARGMAX_MARGIN: f64 = 1e-3;

/// A program compiled for [`CpuBackend`]: tapes per loop, the main body as a node list.
#[derive(Clone, Debug)]
pub struct CpuProgram {
    /// The program itself (node lists, shapes).
    program: Program,
    /// One compiled loop per [`Program::loops`] entry.
    loops: Vec<CpuLoop>,
    /// Live main-body nodes, in order.
    main_live: Vec<NodeId>,
    /// Accumulator number of each loop's first accumulator.
    acc_base: Vec<usize>,
    /// Largest slot buffer any loop needs (`n_slots · (BLOCK + span)` floats).
    slot_floats: usize,
    /// Most accumulators in one loop.
    max_accs: usize,
    /// Most nodes in one loop body.
    max_loop_nodes: usize,
    /// Most invariant nodes in one loop.
    max_scalars: usize,
    /// A rough per-point cost in values, for the parallel split.
    work_per_point: usize,
}

/// How a loop-body node depends on the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Not at all: constants, parameters, fixed coordinates, the time and ops on them.
    Inv,
    /// On the single window coordinate `x[i + k]` (and invariants).
    Single(i32),
    /// On several window coordinates or on window parameters.
    Var,
}

/// Unary lane operations.
#[derive(Clone, Copy, Debug, PartialEq)]
enum UnOp {
    Neg,
    PowInt(i32),
    Call(Func),
}

/// Binary lane operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    Pow,
}

/// The operation of a non-leaf node.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Un(UnOp),
    Bin(BinOp),
}

/// An argument of a hash-consed single-coordinate function.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Arg {
    /// An invariant node of the loop body.
    Inv(NodeId),
    /// Function `f` of the same coordinate (`F(0)` is the coordinate itself).
    F(u32),
}

/// A single-coordinate function: an operation on arguments of the same coordinate.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FuncKey {
    kind: Kind,
    a: Arg,
    b: Option<Arg>,
}

/// Where an instruction reads its lanes from. Before register allocation `Slot` holds a virtual
/// register; after, a slot of the block scratch.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Src {
    /// Slot `s` from lane `offset` on.
    Slot(u32, u32),
    /// The point row from coordinate `i0 + k` on (`i0` is the first window of the block).
    Row(i32),
    /// The parameters from `i0 + base + k` on.
    Par(i64),
    /// A loop-invariant scalar, broadcast.
    Scalar(u32),
}

/// The arithmetic ops that fuse into multi-operand instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
}

/// One tape instruction over `lanes` lanes. The fused forms exist because a pass over lanes costs
/// two loads and a store per vector whatever it computes: fusing a single-use product or sum into
/// its user saves a store and a load, which is most of an arithmetic instruction's cost.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Instr {
    Un {
        op: UnOp,
        dst: u32,
        a: Src,
    },
    Bin {
        op: BinOp,
        dst: u32,
        a: Src,
        b: Src,
    },
    SinCos {
        sin: u32,
        cos: u32,
        a: Src,
    },
    /// A fused tree of `+ − ×` on lane operands (scalars are read from broadcast slots), written
    /// to a slot or added into an accumulator.
    Arith {
        form: Form,
        /// Operands `a, b, c, d` (as many as the form reads).
        srcs: [Option<Src>; 4],
        out: Out,
    },
    /// Accumulator update with `a` (negated when `neg`; sums only).
    Acc {
        acc: u32,
        sum: bool,
        neg: bool,
        a: Src,
    },
}

/// The shape of an [`Instr::Arith`] tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `p(a, b)`
    Two(Arith),
    /// `q(p(a, b), c)`, or `q(c, p(a, b))` when `rev`.
    Three { p: Arith, q: Arith, rev: bool },
    /// `q(p(a, b), r(c, d))`
    Four { p: Arith, r: Arith, q: Arith },
}

/// Where an [`Instr::Arith`] puts its value `v`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Out {
    /// Into a slot.
    Store(u32),
    /// `acc ± v`, or `acc ± m·v` with `m`.
    Acc { acc: u32, neg: bool, m: Option<Src> },
}

impl Instr {
    fn srcs(&self) -> [Option<Src>; 5] {
        match *self {
            Instr::Un { a, .. } | Instr::SinCos { a, .. } | Instr::Acc { a, .. } => {
                [Some(a), None, None, None, None]
            }
            Instr::Bin { a, b, .. } => [Some(a), Some(b), None, None, None],
            Instr::Arith { srcs, out, .. } => {
                let m = match out {
                    Out::Acc { m, .. } => m,
                    Out::Store(_) => None,
                };
                [srcs[0], srcs[1], srcs[2], srcs[3], m]
            }
        }
    }

    fn srcs_mut(&mut self) -> [Option<&mut Src>; 5] {
        match self {
            Instr::Un { a, .. } | Instr::SinCos { a, .. } | Instr::Acc { a, .. } => {
                [Some(a), None, None, None, None]
            }
            Instr::Bin { a, b, .. } => [Some(a), Some(b), None, None, None],
            Instr::Arith { srcs, out, .. } => {
                let m = match out {
                    Out::Acc { m, .. } => m.as_mut(),
                    Out::Store(_) => None,
                };
                let [a, b, c, d] = srcs;
                [a.as_mut(), b.as_mut(), c.as_mut(), d.as_mut(), m]
            }
        }
    }

    fn dsts(&self) -> [Option<u32>; 2] {
        match *self {
            Instr::Un { dst, .. }
            | Instr::Bin { dst, .. }
            | Instr::Arith {
                out: Out::Store(dst),
                ..
            } => [Some(dst), None],
            Instr::SinCos { sin, cos, .. } => [Some(sin), Some(cos)],
            Instr::Acc { .. } | Instr::Arith { .. } => [None, None],
        }
    }

    fn dsts_mut(&mut self) -> [Option<&mut u32>; 2] {
        match self {
            Instr::Un { dst, .. }
            | Instr::Bin { dst, .. }
            | Instr::Arith {
                out: Out::Store(dst),
                ..
            } => [Some(dst), None],
            Instr::SinCos { sin, cos, .. } => [Some(sin), Some(cos)],
            Instr::Acc { .. } | Instr::Arith { .. } => [None, None],
        }
    }
}

/// The lane program of one loop, compiled from its sign-folded body (own node ids).
#[derive(Clone, Debug)]
struct Tape {
    /// The sign-folded body the tape was built from.
    nodes: Vec<Op>,
    /// Live invariant nodes of `nodes` in order; scalar `s` of the tape is node `invariants[s]`.
    invariants: Vec<NodeId>,
    /// Computes the hoisted single-coordinate arrays over coordinates `i0 + k_min + h`, where
    /// `k_min` is the smallest offset any array is read at (baked into the tape's row reads).
    hoist: Vec<Instr>,
    /// The body, lanes = windows `i0 + h`.
    body: Vec<Instr>,
    /// How many more lanes the hoist tape covers than the body (`max k − min k` of hoisted reads).
    span: usize,
    /// Slots after register allocation.
    n_slots: usize,
    /// `(slot, scalar)`: slots holding a scalar broadcast over all lanes (operands of fused
    /// instructions), filled once per point.
    bcast: Vec<(u32, u32)>,
}

impl Tape {
    /// Floats per slot: the hoist tape's `BLOCK + span` lanes, rounded up to whole 64-byte lines so
    /// that every slot starts aligned (a misaligned 64-byte store splits two cache lines).
    fn slot_len(&self) -> usize {
        (BLOCK + self.span).next_multiple_of(ALIGN)
    }
}

/// A compiled loop.
#[derive(Clone, Debug)]
struct CpuLoop {
    lo: usize,
    hi: usize,
    /// Whether the main body reads any of its accumulators.
    live: bool,
    /// The primal lane program.
    tape: Tape,
    /// Per accumulator: whether it is a sum (else a max).
    sums: Vec<bool>,
    /// Per accumulator: the body node it reads (ids of the original body, as below).
    values: Vec<NodeId>,
    /// Live invariant nodes of the original body, in order (series mode and f64 re-evaluation).
    invariants: Vec<NodeId>,
    /// Live non-invariant nodes of the original body in order (evaluated per window as series).
    varying: Vec<NodeId>,
    /// Distinct offsets `k` of live window reads `x[i + k]`.
    offsets: Vec<i32>,
    /// Row indices of live fixed reads (`Coord(j)`, and `dim` for the time).
    fixed: Vec<usize>,
    /// The primal loop compiled to native code, when it is (see [`native`]).
    native: native::NativeOrTape,
}

impl CpuLoop {
    /// Floats of lane scratch this loop needs.
    fn slot_floats(&self) -> usize {
        self.tape.n_slots * self.tape.slot_len()
    }
}

/// The operands of a node.
fn operands(op: &Op) -> [Option<NodeId>; 2] {
    match *op {
        Op::Neg(a) | Op::PowInt(a, _) | Op::Call(_, a) => [Some(a), None],
        Op::Add(a, b)
        | Op::Sub(a, b)
        | Op::Mul(a, b)
        | Op::Div(a, b)
        | Op::Min(a, b)
        | Op::Max(a, b)
        | Op::Pow(a, b) => [Some(a), Some(b)],
        _ => [None, None],
    }
}

/// The lane operation of a non-leaf node.
fn lane_kind(op: &Op) -> Option<Kind> {
    Some(match *op {
        Op::Neg(_) => Kind::Un(UnOp::Neg),
        Op::PowInt(_, n) => Kind::Un(UnOp::PowInt(n)),
        Op::Call(f, _) => Kind::Un(UnOp::Call(f)),
        Op::Add(..) => Kind::Bin(BinOp::Add),
        Op::Sub(..) => Kind::Bin(BinOp::Sub),
        Op::Mul(..) => Kind::Bin(BinOp::Mul),
        Op::Div(..) => Kind::Bin(BinOp::Div),
        Op::Min(..) => Kind::Bin(BinOp::Min),
        Op::Max(..) => Kind::Bin(BinOp::Max),
        Op::Pow(..) => Kind::Bin(BinOp::Pow),
        _ => return None,
    })
}

fn op_instr(kind: Kind, dst: u32, a: Src, b: Option<Src>) -> Instr {
    match (kind, b) {
        (Kind::Un(op), _) => Instr::Un { op, dst, a },
        (Kind::Bin(op), Some(b)) => Instr::Bin { op, dst, a, b },
        (Kind::Bin(_), None) => unreachable!("a binary op with one operand"),
    }
}

/// Panics unless every node, loop and output of `p` is well formed (operands before users, reads in
/// range, node kinds where they may appear).
#[track_caller]
fn validate(p: &Program) {
    let dim = p.dim as i64;
    let n_params = i64::from(p.n_params);
    let check_leaf = |op: &Op, place: &str| match *op {
        Op::Coord(j) => assert!(i64::from(j) < dim, "{place}: x[{j}] with d = {dim}"),
        Op::Time => assert!(p.has_time, "{place}: reads t but the program has no time"),
        Op::Param(i) => assert!(
            i64::from(i) < n_params,
            "{place}: params[{i}] of {n_params}"
        ),
        _ => {}
    };
    let check_operands = |nodes: &[Op], place: &str| {
        for (id, op) in nodes.iter().enumerate() {
            for a in operands(op).into_iter().flatten() {
                assert!((a as usize) < id, "{place}: node {id} reads node {a}");
            }
        }
    };
    for (l, lp) in p.loops.iter().enumerate() {
        let place = format!("loop {l}");
        assert!(lp.lo <= lp.hi, "{place}: range {}..{}", lp.lo, lp.hi);
        check_operands(&lp.nodes, &place);
        let (lo, hi) = (i64::from(lp.lo), i64::from(lp.hi));
        for op in &lp.nodes {
            check_leaf(op, &place);
            match *op {
                Op::Feature(_) | Op::Reduced(_) => panic!("{place}: {op:?} in a loop body"),
                Op::WinCoord(k) if lo < hi => assert!(
                    lo + i64::from(k) >= 0 && hi - 1 + i64::from(k) < dim,
                    "{place}: x[i{k:+}] leaves 0..{dim} for i in {lo}..{hi}"
                ),
                Op::WinParam { base, k } if lo < hi => {
                    let first = i64::from(base) + lo + i64::from(k);
                    let last = i64::from(base) + hi - 1 + i64::from(k);
                    assert!(
                        first >= 0 && last < n_params,
                        "{place}: params[{base} + i{k:+}] leaves 0..{n_params}"
                    );
                }
                _ => {}
            }
        }
        for a in &lp.accumulators {
            assert!(
                (a.value as usize) < lp.nodes.len(),
                "{place}: accumulator reads node {}",
                a.value
            );
        }
    }
    check_operands(&p.nodes, "main body");
    let n_acc = p.n_accumulators();
    for op in &p.nodes {
        check_leaf(op, "main body");
        match *op {
            Op::WinCoord(_) | Op::WinParam { .. } => panic!("main body: {op:?} outside a loop"),
            Op::Reduced(a) => assert!(
                (a as usize) < n_acc,
                "main body: accumulator {a} of {n_acc}"
            ),
            Op::Feature(f) => assert!(
                f < p.n_features,
                "main body: feature {f} of {}",
                p.n_features
            ),
            _ => {}
        }
    }
    for &o in &p.outputs {
        assert!((o as usize) < p.nodes.len(), "output reads node {o}");
    }
}

/// Maps virtual registers to slots by a linear scan; returns the slot count. Virtual registers
/// `0..pinned` get slots `0..pinned` for the whole tape. A destination never shares a slot with a
/// source of the same instruction (the executor borrows them separately).
fn allocate(instrs: &mut [Instr], pinned: u32) -> usize {
    let n_vregs = instrs
        .iter()
        .flat_map(|ins| ins.dsts().into_iter().flatten())
        .max()
        .map_or(0, |m| m as usize + 1)
        .max(pinned as usize);
    let mut last_use = vec![None; n_vregs];
    for (t, ins) in instrs.iter().enumerate() {
        for src in ins.srcs().into_iter().flatten() {
            if let Src::Slot(v, _) = src {
                if v >= pinned {
                    last_use[v as usize] = Some(t);
                }
            }
        }
    }
    let mut slot_of = vec![u32::MAX; n_vregs];
    for (v, slot) in slot_of.iter_mut().enumerate().take(pinned as usize) {
        *slot = v as u32;
    }
    let mut free: Vec<u32> = Vec::new();
    let mut n_slots = pinned;
    for (t, ins) in instrs.iter_mut().enumerate() {
        let mut dying: Vec<u32> = Vec::new();
        for src in ins.srcs_mut().into_iter().flatten() {
            if let Src::Slot(v, off) = *src {
                let slot = slot_of[v as usize];
                debug_assert_ne!(slot, u32::MAX, "virtual register {v} read before written");
                *src = Src::Slot(slot, off);
                if last_use[v as usize] == Some(t) && !dying.contains(&slot) {
                    dying.push(slot);
                }
            }
        }
        for dst in ins.dsts_mut().into_iter().flatten() {
            let v = *dst as usize;
            let slot = free.pop().unwrap_or_else(|| {
                n_slots += 1;
                n_slots - 1
            });
            slot_of[v] = slot;
            *dst = slot;
            if last_use[v].is_none() {
                dying.push(slot);
            }
        }
        free.extend(dying);
    }
    n_slots as usize
}

/// The body with negations folded into their users where that is exact (`x + (−y) = x − y`,
/// `(−x)·y = −(x·y)`, `−(x + y) = (−x) + (−y)` in IEEE arithmetic) and carried up to the
/// accumulators, which then subtract. Returns the new loop and, per accumulator, whether its value
/// is negated. Negations reaching other ops are materialised once.
fn fold_signs(lp: &Loop) -> (Loop, Vec<bool>) {
    let mut out: Vec<Op> = Vec::with_capacity(lp.nodes.len());
    let mut map: Vec<(NodeId, bool)> = Vec::with_capacity(lp.nodes.len());
    let mut negated: Vec<Option<NodeId>> = vec![None; lp.nodes.len()];
    let push = |out: &mut Vec<Op>, op: Op| {
        out.push(op);
        (out.len() - 1) as NodeId
    };
    for (id, op) in lp.nodes.iter().enumerate() {
        let m = |x: NodeId| map[x as usize];
        let entry = match *op {
            Op::Neg(a) => {
                let (x, n) = m(a);
                (x, !n)
            }
            Op::Add(a, b) => match (m(a), m(b)) {
                ((x, false), (y, false)) => (push(&mut out, Op::Add(x, y)), false),
                ((x, false), (y, true)) => (push(&mut out, Op::Sub(x, y)), false),
                ((x, true), (y, false)) => (push(&mut out, Op::Sub(y, x)), false),
                ((x, true), (y, true)) => (push(&mut out, Op::Add(x, y)), true),
            },
            Op::Sub(a, b) => match (m(a), m(b)) {
                ((x, false), (y, false)) => (push(&mut out, Op::Sub(x, y)), false),
                ((x, false), (y, true)) => (push(&mut out, Op::Add(x, y)), false),
                ((x, true), (y, false)) => (push(&mut out, Op::Add(x, y)), true),
                ((x, true), (y, true)) => (push(&mut out, Op::Sub(y, x)), false),
            },
            Op::Mul(a, b) => {
                let ((x, nx), (y, ny)) = (m(a), m(b));
                (push(&mut out, Op::Mul(x, y)), nx != ny)
            }
            Op::Div(a, b) => {
                let ((x, nx), (y, ny)) = (m(a), m(b));
                (push(&mut out, Op::Div(x, y)), nx != ny)
            }
            ref op if operands(op)[0].is_none() => (push(&mut out, *op), false),
            ref op => {
                // Any other op reads its operands' true values.
                let mut plain = |x: NodeId, out: &mut Vec<Op>| -> NodeId {
                    let (y, neg) = map[x as usize];
                    if !neg {
                        return y;
                    }
                    if let Some(z) = negated[x as usize] {
                        return z;
                    }
                    out.push(Op::Neg(y));
                    let z = (out.len() - 1) as NodeId;
                    negated[x as usize] = Some(z);
                    z
                };
                let new = match *op {
                    Op::Min(a, b) => Op::Min(plain(a, &mut out), plain(b, &mut out)),
                    Op::Max(a, b) => Op::Max(plain(a, &mut out), plain(b, &mut out)),
                    Op::Pow(a, b) => Op::Pow(plain(a, &mut out), plain(b, &mut out)),
                    Op::PowInt(a, n) => Op::PowInt(plain(a, &mut out), n),
                    Op::Call(f, a) => Op::Call(f, plain(a, &mut out)),
                    _ => unreachable!("every op with operands is listed"),
                };
                (push(&mut out, new), false)
            }
        };
        debug_assert_eq!(map.len(), id);
        map.push(entry);
    }
    let mut acc_neg = Vec::with_capacity(lp.accumulators.len());
    let mut accumulators = Vec::with_capacity(lp.accumulators.len());
    for a in &lp.accumulators {
        let (mut value, mut neg) = map[a.value as usize];
        if neg && a.kind == ReduceKind::Max {
            out.push(Op::Neg(value));
            value = (out.len() - 1) as NodeId;
            neg = false;
        }
        acc_neg.push(neg);
        accumulators.push(Accumulator {
            kind: a.kind,
            value,
        });
    }
    let folded = Loop {
        lo: lp.lo,
        hi: lp.hi,
        nodes: out,
        accumulators,
    };
    (folded, acc_neg)
}

/// Liveness (from the accumulators) and the window dependence of every node of a loop body.
fn live_and_class(lp: &Loop) -> (Vec<bool>, Vec<Class>) {
    let nodes = &lp.nodes;
    let n = nodes.len();
    let mut live = vec![false; n];
    for a in &lp.accumulators {
        live[a.value as usize] = true;
    }
    for id in (0..n).rev() {
        if live[id] {
            for o in operands(&nodes[id]).into_iter().flatten() {
                live[o as usize] = true;
            }
        }
    }
    let mut class = vec![Class::Inv; n];
    for id in 0..n {
        class[id] = match nodes[id] {
            Op::WinCoord(k) => Class::Single(k),
            Op::WinParam { .. } => Class::Var,
            ref op => operands(op).into_iter().flatten().fold(Class::Inv, |c, o| {
                match (c, class[o as usize]) {
                    (Class::Inv, x) | (x, Class::Inv) => x,
                    (Class::Single(a), Class::Single(b)) if a == b => Class::Single(a),
                    _ => Class::Var,
                }
            }),
        };
    }
    (live, class)
}

/// Compiles the lane program of a (sign-folded) loop; `acc_neg[a]` negates accumulator `a`'s value.
fn compile_tape(lp: &Loop, acc_neg: &[bool]) -> Tape {
    let nodes = &lp.nodes;
    let n = nodes.len();
    let (live, class) = live_and_class(lp);

    // Hash-cons the single-coordinate nodes into functions of one variable (function 0 is `X`).
    let mut funcs: Vec<Option<FuncKey>> = vec![None];
    let mut func_of = vec![0u32; n];
    for id in 0..n {
        if !live[id] || !matches!(class[id], Class::Single(_)) {
            continue;
        }
        let Some(kind) = lane_kind(&nodes[id]) else {
            continue; // the window read itself: function 0
        };
        let arg = |o: NodeId| {
            if class[o as usize] == Class::Inv {
                Arg::Inv(o)
            } else {
                Arg::F(func_of[o as usize])
            }
        };
        let [a, b] = operands(&nodes[id]);
        let key = FuncKey {
            kind,
            a: arg(a.expect("a non-leaf node has an operand")),
            b: b.map(arg),
        };
        func_of[id] = match funcs.iter().position(|f| *f == Some(key)) {
            Some(f) => f as u32,
            None => {
                funcs.push(Some(key));
                (funcs.len() - 1) as u32
            }
        };
    }
    // Offsets at which each function is read by the rest of the body.
    let mut ext: Vec<Vec<i32>> = vec![Vec::new(); funcs.len()];
    {
        let mut note = |o: usize| {
            if let Class::Single(k) = class[o] {
                let f = func_of[o] as usize;
                if f != 0 && !ext[f].contains(&k) {
                    ext[f].push(k);
                }
            }
        };
        for id in 0..n {
            if live[id] && class[id] == Class::Var {
                for o in operands(&nodes[id]).into_iter().flatten() {
                    note(o as usize);
                }
            }
        }
        for a in &lp.accumulators {
            note(a.value as usize);
        }
    }
    // Hoist the functions read at two or more offsets, with what they are computed from.
    let mut in_hoist: Vec<bool> = ext.iter().map(|e| e.len() >= 2).collect();
    for f in (1..funcs.len()).rev() {
        if let (true, Some(key)) = (in_hoist[f], funcs[f]) {
            for arg in [Some(key.a), key.b].into_iter().flatten() {
                if let Arg::F(g) = arg {
                    in_hoist[g as usize] = true;
                }
            }
        }
    }
    in_hoist[0] = false;
    let arrayed: Vec<bool> = (0..funcs.len())
        .map(|f| in_hoist[f] && !ext[f].is_empty())
        .collect();
    let hoisted_offsets = (0..funcs.len())
        .filter(|&f| arrayed[f])
        .flat_map(|f| ext[f].iter().copied());
    let (hoist_lo, hoist_hi) = hoisted_offsets
        .fold(None, |acc: Option<(i32, i32)>, k| match acc {
            None => Some((k, k)),
            Some((a, b)) => Some((a.min(k), b.max(k))),
        })
        .unwrap_or((0, 0));
    let span = (hoist_hi - hoist_lo) as usize;

    let invariants: Vec<NodeId> = (0..n)
        .filter(|&id| live[id] && class[id] == Class::Inv)
        .map(|id| id as NodeId)
        .collect();
    let mut scalar_of = vec![u32::MAX; n];
    for (s, &id) in invariants.iter().enumerate() {
        scalar_of[id as usize] = s as u32;
    }

    let mut next_vreg = 0u32;
    let mut fresh = || {
        next_vreg += 1;
        next_vreg - 1
    };
    // The hoist tape, in function order (operands first).
    let mut vreg_f = vec![u32::MAX; funcs.len()];
    let mut hoist = Vec::new();
    for f in 1..funcs.len() {
        let Some(key) = funcs[f] else { continue };
        if !in_hoist[f] || vreg_f[f] != u32::MAX {
            continue;
        }
        let fsrc = |arg: Arg, vreg_f: &[u32]| match arg {
            Arg::Inv(x) => Src::Scalar(scalar_of[x as usize]),
            Arg::F(0) => Src::Row(hoist_lo),
            Arg::F(g) => Src::Slot(vreg_f[g as usize], 0),
        };
        if let Kind::Un(UnOp::Call(sc @ (Func::Sin | Func::Cos))) = key.kind {
            let other = if sc == Func::Sin {
                Func::Cos
            } else {
                Func::Sin
            };
            let partner = FuncKey {
                kind: Kind::Un(UnOp::Call(other)),
                ..key
            };
            if let Some(g) =
                (f + 1..funcs.len()).find(|&g| in_hoist[g] && funcs[g] == Some(partner))
            {
                let (vf, vg) = (fresh(), fresh());
                vreg_f[f] = vf;
                vreg_f[g] = vg;
                let (sin, cos) = if sc == Func::Sin { (vf, vg) } else { (vg, vf) };
                hoist.push(Instr::SinCos {
                    sin,
                    cos,
                    a: fsrc(key.a, &vreg_f),
                });
                continue;
            }
        }
        let v = fresh();
        hoist.push(op_instr(
            key.kind,
            v,
            fsrc(key.a, &vreg_f),
            key.b.map(|b| fsrc(b, &vreg_f)),
        ));
        vreg_f[f] = v;
    }

    // The body: nodes that are neither leaves, invariants nor hoisted arrays.
    let src_of = |id: usize| -> Option<Src> {
        match nodes[id] {
            Op::WinCoord(k) => Some(Src::Row(k)),
            Op::WinParam { base, k } => Some(Src::Par(i64::from(base) + i64::from(k))),
            _ => match class[id] {
                Class::Inv => Some(Src::Scalar(scalar_of[id])),
                Class::Single(k) if arrayed[func_of[id] as usize] => Some(Src::Slot(
                    vreg_f[func_of[id] as usize],
                    (k - hoist_lo) as u32,
                )),
                _ => None,
            },
        }
    };
    let mut needed = vec![false; n];
    for a in &lp.accumulators {
        if src_of(a.value as usize).is_none() {
            needed[a.value as usize] = true;
        }
    }
    for id in (0..n).rev() {
        if needed[id] {
            for o in operands(&nodes[id]).into_iter().flatten() {
                if src_of(o as usize).is_none() {
                    needed[o as usize] = true;
                }
            }
        }
    }
    // Fusion. A sum accumulator whose value is a single-use `+ − ×` node takes that node's
    // instruction as its update (`acc ± v`); if the value is `m·e` with `e` such a node too, `e`'s
    // instruction updates `acc ± m·e`. Then a single-use `+ − ×` node folds into its `+ − ×` user,
    // one level deep.
    // A square is a product, so `Σ x_i²` fuses into one accumulating pass.
    let arith = |id: usize| match nodes[id] {
        Op::Add(x, y) => Some((Arith::Add, x, y)),
        Op::Sub(x, y) => Some((Arith::Sub, x, y)),
        Op::Mul(x, y) => Some((Arith::Mul, x, y)),
        Op::PowInt(x, 2) => Some((Arith::Mul, x, x)),
        _ => None,
    };
    let mut uses = vec![0usize; n];
    for id in (0..n).filter(|&id| needed[id]) {
        for o in operands(&nodes[id]).into_iter().flatten() {
            uses[o as usize] += 1;
        }
    }
    for a in &lp.accumulators {
        uses[a.value as usize] += 1;
    }
    let single_arith = |m: usize| needed[m] && uses[m] == 1 && arith(m).is_some();
    // acc_out[root] = (accumulator, scale): `root`'s instruction updates the accumulator.
    let mut acc_out: Vec<Option<(usize, Option<NodeId>)>> = vec![None; n];
    // Nodes whose value only exists inside an accumulator update, and the node whose instruction
    // carries that update (emitted in the value's place, when `m` exists too).
    let mut in_acc = vec![false; n];
    let mut carrier: Vec<Option<usize>> = vec![None; n];
    for (ai, a) in lp.accumulators.iter().enumerate() {
        let v = a.value as usize;
        if a.kind != ReduceKind::Sum || !single_arith(v) {
            continue;
        }
        let scaled = match arith(v) {
            Some((Arith::Mul, x, y)) if single_arith(y as usize) => Some((y as usize, x)),
            Some((Arith::Mul, x, y)) if single_arith(x as usize) => Some((x as usize, y)),
            _ => None,
        };
        match scaled {
            Some((e, m)) => {
                in_acc[v] = true;
                carrier[v] = Some(e);
                acc_out[e] = Some((ai, Some(m)));
            }
            None => acc_out[v] = Some((ai, None)),
        }
    }
    let absorbable = |m: usize| single_arith(m) && !in_acc[m] && acc_out[m].is_none();
    // Folding `m` into its user saves one instruction but forbids `m` from folding its own
    // operands (one level only), so a node that could fold two of its own stays a `Four`.
    let folds_two = |m: usize| {
        arith(m).is_some_and(|(_, x, y)| absorbable(x as usize) && absorbable(y as usize))
    };
    let mut absorbed = vec![false; n];
    for id in (0..n).rev() {
        if !needed[id] || absorbed[id] || in_acc[id] {
            continue;
        }
        if let Some((_, x, y)) = arith(id) {
            for m in [x as usize, y as usize] {
                if absorbable(m) && !folds_two(m) {
                    absorbed[m] = true;
                }
            }
        }
    }

    let mut vreg_n = vec![u32::MAX; n];
    let mut body = Vec::new();
    // Scalars read by `Arith` instructions live in pinned broadcast slots (virtual registers
    // renumbered to `0..n_bcast` below).
    let mut bcast_of: Vec<(u32, u32)> = Vec::new(); // (scalar, provisional vreg)
    let mut lanes_src = |src: Src, fresh: &mut dyn FnMut() -> u32| match src {
        Src::Scalar(s) => {
            let v = match bcast_of.iter().find(|b| b.0 == s) {
                Some(b) => b.1,
                None => {
                    let v = fresh();
                    bcast_of.push((s, v));
                    v
                }
            };
            Src::Slot(v, 0)
        }
        other => other,
    };
    let order = (0..n).filter_map(|id| {
        if in_acc[id] {
            carrier[id]
        } else if acc_out[id].is_some_and(|(_, m)| m.is_some()) {
            None
        } else {
            Some(id)
        }
    });
    for id in order {
        if !needed[id] || absorbed[id] || in_acc[id] {
            continue;
        }
        let src = |o: NodeId, vreg_n: &[u32]| {
            src_of(o as usize).unwrap_or(Src::Slot(vreg_n[o as usize], 0))
        };
        if vreg_n[id] == u32::MAX {
            let op = nodes[id];
            let kind = lane_kind(&op).expect("a computed body node is not a leaf");
            let [a, b] = operands(&op);
            let a = a.expect("a non-leaf node has an operand");
            let mut done = false;
            if let Op::Call(sc @ (Func::Sin | Func::Cos), arg) = op {
                let other = if sc == Func::Sin {
                    Func::Cos
                } else {
                    Func::Sin
                };
                if let Some(j) =
                    (id + 1..n).find(|&j| needed[j] && nodes[j] == Op::Call(other, arg))
                {
                    let (vi, vj) = (fresh(), fresh());
                    vreg_n[id] = vi;
                    vreg_n[j] = vj;
                    let (sin, cos) = if sc == Func::Sin { (vi, vj) } else { (vj, vi) };
                    body.push(Instr::SinCos {
                        sin,
                        cos,
                        a: src(arg, &vreg_n),
                    });
                    done = true;
                }
            }
            if let (false, Some((q, x, y))) = (done, arith(id)) {
                let (x, y) = (x as usize, y as usize);
                let inner = |m: usize| arith(m).filter(|_| absorbed[m]);
                let (form, ops) = match (inner(x), inner(y)) {
                    (Some((p, a, b)), Some((r, c, d))) => {
                        (Form::Four { p, r, q }, vec![a, b, c, d])
                    }
                    (Some((p, a, b)), None) => {
                        (Form::Three { p, q, rev: false }, vec![a, b, y as NodeId])
                    }
                    // `q(x, p(c, d))`: commutative ops swap, `−` evaluates reversed.
                    (None, Some((p, c, d))) => (
                        Form::Three {
                            p,
                            q,
                            rev: q == Arith::Sub,
                        },
                        vec![c, d, x as NodeId],
                    ),
                    (None, None) => (Form::Two(q), vec![x as NodeId, y as NodeId]),
                };
                let mut srcs = [None; 4];
                for (s, &o) in srcs.iter_mut().zip(&ops) {
                    *s = Some(lanes_src(src(o, &vreg_n), &mut fresh));
                }
                let out = match acc_out[id] {
                    Some((ai, m)) => Out::Acc {
                        acc: ai as u32,
                        neg: acc_neg[ai],
                        m: m.map(|m| lanes_src(src(m, &vreg_n), &mut fresh)),
                    },
                    None => {
                        let v = fresh();
                        vreg_n[id] = v;
                        Out::Store(v)
                    }
                };
                body.push(Instr::Arith { form, srcs, out });
                done = true;
            }
            if !done {
                let v = fresh();
                body.push(op_instr(
                    kind,
                    v,
                    src(a, &vreg_n),
                    b.map(|b| src(b, &vreg_n)),
                ));
                vreg_n[id] = v;
            }
        }
        for (ai, acc) in lp.accumulators.iter().enumerate() {
            let fused = acc_out[id].is_some_and(|(a, _)| a == ai);
            if acc.value as usize == id && !fused {
                body.push(Instr::Acc {
                    acc: ai as u32,
                    sum: acc.kind == ReduceKind::Sum,
                    neg: acc_neg[ai],
                    a: Src::Slot(vreg_n[id], 0),
                });
            }
        }
    }
    for (ai, acc) in lp.accumulators.iter().enumerate() {
        if let Some(src) = src_of(acc.value as usize) {
            body.push(Instr::Acc {
                acc: ai as u32,
                sum: acc.kind == ReduceKind::Sum,
                neg: acc_neg[ai],
                a: src,
            });
        }
    }

    // Renumber: broadcast registers first (pinned), then the others in order.
    let n_bcast = bcast_of.len() as u32;
    let mut renum = vec![u32::MAX; next_vreg as usize];
    for (i, &(_, v)) in bcast_of.iter().enumerate() {
        renum[v as usize] = i as u32;
    }
    for (next, r) in (n_bcast..).zip(renum.iter_mut().filter(|r| **r == u32::MAX)) {
        *r = next;
    }
    let n_hoist = hoist.len();
    let mut tape = hoist;
    tape.extend(body);
    for ins in &mut tape {
        for src in ins.srcs_mut().into_iter().flatten() {
            if let Src::Slot(v, off) = *src {
                *src = Src::Slot(renum[v as usize], off);
            }
        }
        for dst in ins.dsts_mut().into_iter().flatten() {
            *dst = renum[*dst as usize];
        }
    }
    let n_slots = allocate(&mut tape, n_bcast);
    let body = tape.split_off(n_hoist);
    Tape {
        nodes: nodes.clone(),
        invariants,
        hoist: tape,
        body,
        span,
        n_slots,
        bcast: bcast_of
            .iter()
            .enumerate()
            .map(|(i, &(s, _))| (i as u32, s))
            .collect(),
    }
}

/// Compiles one loop (see the module documentation): the tape from the sign-folded body, the series
/// bookkeeping from the original.
fn compile_loop(lp: &Loop, dim: usize) -> CpuLoop {
    let (folded, acc_neg) = fold_signs(lp);
    let tape = compile_tape(&folded, &acc_neg);
    let (live, class) = live_and_class(lp);
    let n = lp.nodes.len();
    let invariants: Vec<NodeId> = (0..n)
        .filter(|&id| live[id] && class[id] == Class::Inv)
        .map(|id| id as NodeId)
        .collect();
    let varying: Vec<NodeId> = (0..n)
        .filter(|&id| live[id] && class[id] != Class::Inv)
        .map(|id| id as NodeId)
        .collect();
    let mut offsets: Vec<i32> = Vec::new();
    let mut fixed: Vec<usize> = Vec::new();
    for id in (0..n).filter(|&id| live[id]) {
        match lp.nodes[id] {
            Op::WinCoord(k) if !offsets.contains(&k) => offsets.push(k),
            Op::Coord(j) if !fixed.contains(&(j as usize)) => fixed.push(j as usize),
            Op::Time if !fixed.contains(&dim) => fixed.push(dim),
            _ => {}
        }
    }
    CpuLoop {
        lo: lp.lo as usize,
        hi: lp.hi as usize,
        live: false,
        tape,
        sums: lp
            .accumulators
            .iter()
            .map(|a| a.kind == ReduceKind::Sum)
            .collect(),
        values: lp.accumulators.iter().map(|a| a.value).collect(),
        invariants,
        varying,
        offsets,
        fixed,
        native: Err("not compiled yet"),
    }
}

impl CpuProgram {
    /// Compiles `program`.
    ///
    /// # Panics
    /// If the program is malformed (see [`validate`]): a bug of whoever built it.
    /// # Errors
    /// Under [`NativePrograms::Always`], a C compiler that fails.
    #[track_caller]
    fn new(program: &Program, policy: NativePrograms) -> Result<Self, String> {
        validate(program);
        let dim = program.dim as usize;
        let mut loops: Vec<CpuLoop> = program
            .loops
            .iter()
            .map(|lp| compile_loop(lp, dim))
            .collect();
        let mut acc_base = Vec::with_capacity(loops.len());
        let mut base = 0;
        for lp in &program.loops {
            acc_base.push(base);
            base += lp.accumulators.len();
        }
        let mut live = vec![false; program.nodes.len()];
        for &o in &program.outputs {
            live[o as usize] = true;
        }
        for id in (0..program.nodes.len()).rev() {
            if live[id] {
                for o in operands(&program.nodes[id]).into_iter().flatten() {
                    live[o as usize] = true;
                }
            }
        }
        let main_live: Vec<NodeId> = (0..program.nodes.len())
            .filter(|&id| live[id])
            .map(|id| id as NodeId)
            .collect();
        for &id in &main_live {
            if let Op::Reduced(a) = program.nodes[id as usize] {
                let a = a as usize;
                let l = (0..loops.len())
                    .find(|&l| acc_base[l] <= a && a < acc_base[l] + loops[l].sums.len())
                    .expect("validated: every accumulator number belongs to a loop");
                loops[l].live = true;
            }
        }
        let natives = native::compile_loops(&loops, policy)?;
        for (lp, n) in loops.iter_mut().zip(natives) {
            lp.native = n;
        }
        let work_per_point = program.point_stride().max(1)
            + loops
                .iter()
                .filter(|lp| lp.live)
                .map(|lp| lp.hi - lp.lo)
                .sum::<usize>();
        Ok(Self {
            program: program.clone(),
            slot_floats: loops.iter().map(CpuLoop::slot_floats).max().unwrap_or(0),
            max_accs: loops.iter().map(|lp| lp.sums.len()).max().unwrap_or(0),
            max_loop_nodes: program
                .loops
                .iter()
                .map(|lp| lp.nodes.len())
                .max()
                .unwrap_or(0),
            max_scalars: loops
                .iter()
                .map(|lp| lp.invariants.len())
                .max()
                .unwrap_or(0),
            loops,
            main_live,
            acc_base,
            work_per_point,
        })
    }

    /// The program this was compiled from.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// A human-readable listing of every loop's tapes (instructions after register allocation),
    /// for inspection and tuning.
    pub fn listing(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for (l, lp) in self.loops.iter().enumerate() {
            let t = &lp.tape;
            let _ = writeln!(
                s,
                "loop {l}: windows {}..{}, {}{} slots of {} lanes, scalars {:?}, broadcast {:?}",
                lp.lo,
                lp.hi,
                match &lp.native {
                    Ok(_) => "native code; tape: ".to_string(),
                    Err(why) => format!("on the tape ({why}): "),
                },
                t.n_slots,
                t.slot_len(),
                t.invariants,
                t.bcast
            );
            for ins in &t.hoist {
                let _ = writeln!(s, "  hoist {ins:?}");
            }
            for ins in &t.body {
                let _ = writeln!(s, "  body  {ins:?}");
            }
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Lane execution (primal mode).
// ---------------------------------------------------------------------------------------------

/// The read-only slots around the destination(s) of an instruction: slots below `d1` in `head`,
/// between `d1` and `d2` in `mid`, above `d2` in `tail` (one destination: `d1 = d2`).
struct Ro<'a> {
    head: &'a [f32],
    mid: &'a [f32],
    tail: &'a [f32],
    d1: usize,
    d2: usize,
    sl: usize,
}

impl<'a> Ro<'a> {
    #[inline(always)]
    fn all(slots: &'a [f32], sl: usize) -> Self {
        Ro {
            head: slots,
            mid: &[],
            tail: &[],
            d1: usize::MAX,
            d2: usize::MAX,
            sl,
        }
    }

    #[inline(always)]
    fn slot(&self, s: usize) -> &'a [f32] {
        let sl = self.sl;
        let (part, r) = if s < self.d1 {
            (self.head, s)
        } else if s < self.d2 {
            (self.mid, s - self.d1 - 1)
        } else {
            (self.tail, s - self.d2 - 1)
        };
        &part[r * sl..(r + 1) * sl]
    }
}

/// Slot `d` mutable, the others readable.
#[inline(always)]
fn split1(slots: &mut [f32], sl: usize, d: usize) -> (&mut [f32], Ro<'_>) {
    let (head, rest) = slots.split_at_mut(d * sl);
    let (dst, tail) = rest.split_at_mut(sl);
    let ro = Ro {
        head,
        mid: &[],
        tail,
        d1: d,
        d2: d,
        sl,
    };
    (dst, ro)
}

/// Slots `a ≠ b` mutable, the others readable.
#[inline(always)]
fn split2(slots: &mut [f32], sl: usize, a: usize, b: usize) -> (&mut [f32], &mut [f32], Ro<'_>) {
    let (d1, d2) = (a.min(b), a.max(b));
    let (head, rest) = slots.split_at_mut(d1 * sl);
    let (first, rest) = rest.split_at_mut(sl);
    let (mid, rest) = rest.split_at_mut((d2 - d1 - 1) * sl);
    let (second, tail) = rest.split_at_mut(sl);
    let ro = Ro {
        head,
        mid,
        tail,
        d1,
        d2,
        sl,
    };
    if a < b {
        (first, second, ro)
    } else {
        (second, first, ro)
    }
}

/// An operand: lanes or one broadcast value.
#[derive(Clone, Copy)]
enum Val<'a> {
    L(&'a [f32]),
    S(f32),
}

/// What the tapes of one point read besides the slots.
struct Ctx<'a> {
    row: &'a [f32],
    params: &'a [f32],
    scalars: &'a [f32],
    sl: usize,
}

/// The windows of one max accumulator whose f32 value reaches `threshold` (series mode).
#[derive(Debug, Default)]
struct Collect {
    acc: u32,
    threshold: f32,
    windows: Vec<usize>,
}

#[inline(always)]
fn read<'a>(src: Src, ro: &Ro<'a>, cx: &Ctx<'a>, i0: usize, lanes: usize) -> Val<'a> {
    match src {
        Src::Slot(s, off) => {
            let off = off as usize;
            Val::L(&ro.slot(s as usize)[off..off + lanes])
        }
        Src::Row(k) => {
            let j = (i0 as isize + k as isize) as usize;
            Val::L(&cx.row[j..j + lanes])
        }
        Src::Par(b) => {
            let j = (i0 as i64 + b) as usize;
            Val::L(&cx.params[j..j + lanes])
        }
        Src::Scalar(s) => Val::S(cx.scalars[s as usize]),
    }
}

/// Recomputes with `exact` in f64 the lanes whose argument fails `fast` (checked branch-free first).
#[inline(always)]
fn fixup(a: &[f32], o: &mut [f32], fast: impl Fn(f32) -> bool, exact: impl Fn(f64) -> f64) {
    let slow = a.iter().fold(false, |acc, &v| acc | !fast(v));
    if slow {
        for (o, &v) in o.iter_mut().zip(a) {
            if !fast(v) {
                *o = exact(f64::from(v)) as f32;
            }
        }
    }
}

#[inline(always)]
fn exp_fast(v: f32) -> bool {
    (-87.0..=88.0).contains(&v)
}

#[inline(always)]
fn ln_fast(v: f32) -> bool {
    (f32::MIN_POSITIVE..=f32::MAX).contains(&v)
}

#[inline(always)]
fn sincos_fast(v: f32) -> bool {
    v.abs() <= SINCOS_FAST_LIMIT
}

/// `f` on lanes.
#[inline(always)]
fn call_lanes(f: Func, a: &[f32], o: &mut [f32]) {
    let n = o.len();
    let a = &a[..n];
    match f {
        Func::Exp => {
            for h in 0..n {
                o[h] = exp_f32(a[h]);
            }
            fixup(a, o, exp_fast, f64::exp);
        }
        Func::Log => {
            for h in 0..n {
                o[h] = ln_f32(a[h]);
            }
            fixup(a, o, ln_fast, f64::ln);
        }
        Func::Sin => {
            for h in 0..n {
                o[h] = sin_cos_f32(a[h]).0;
            }
            fixup(a, o, sincos_fast, f64::sin);
        }
        Func::Cos => {
            for h in 0..n {
                o[h] = sin_cos_f32(a[h]).1;
            }
            fixup(a, o, sincos_fast, f64::cos);
        }
        // The derivative half of `tanh_d_f32` is dead code here and optimised away.
        Func::Tanh => {
            for h in 0..n {
                o[h] = tanh_d_f32(a[h]).0;
            }
        }
        Func::Atan => {
            for h in 0..n {
                o[h] = atan_f32(a[h]);
            }
        }
        Func::Sqrt => {
            for h in 0..n {
                o[h] = a[h].sqrt();
            }
        }
        Func::Abs => {
            for h in 0..n {
                o[h] = a[h].abs();
            }
        }
    }
}

/// `a^n` on lanes by repeated products (as the interpreter's series), reciprocal for `n < 0`.
#[inline(always)]
fn powi_lanes(a: &[f32], n: i32, o: &mut [f32]) {
    let len = o.len();
    let a = &a[..len];
    match n.unsigned_abs() {
        0 => o.fill(1.0),
        1 => o.copy_from_slice(a),
        2 => {
            for h in 0..len {
                o[h] = a[h] * a[h];
            }
        }
        3 => {
            for h in 0..len {
                o[h] = a[h] * a[h] * a[h];
            }
        }
        m => {
            o.copy_from_slice(a);
            for _ in 1..m {
                for h in 0..len {
                    o[h] *= a[h];
                }
            }
        }
    }
    if n < 0 {
        for v in o.iter_mut() {
            *v = 1.0 / *v;
        }
    }
}

/// A unary op on one value, in f64 (a broadcast operand; the compiler folds these into invariants,
/// so it is only a fallback).
fn unary_f64(op: UnOp, x: f64) -> f64 {
    match op {
        UnOp::Neg => -x,
        UnOp::PowInt(n) => x.powi(n),
        UnOp::Call(f) => crate::expr::eval::apply_func(f, x),
    }
}

#[inline(always)]
fn exec_un(op: UnOp, a: Val<'_>, o: &mut [f32]) {
    let a = match a {
        Val::S(s) => {
            o.fill(unary_f64(op, f64::from(s)) as f32);
            return;
        }
        Val::L(a) => a,
    };
    match op {
        UnOp::Neg => {
            let a = &a[..o.len()];
            for h in 0..o.len() {
                o[h] = -a[h];
            }
        }
        UnOp::PowInt(n) => powi_lanes(a, n, o),
        UnOp::Call(f) => call_lanes(f, a, o),
    }
}

#[inline(always)]
fn zip2(a: Val<'_>, b: Val<'_>, o: &mut [f32], f: impl Fn(f32, f32) -> f32) {
    let n = o.len();
    match (a, b) {
        (Val::L(a), Val::L(b)) => {
            let (a, b) = (&a[..n], &b[..n]);
            for h in 0..n {
                o[h] = f(a[h], b[h]);
            }
        }
        (Val::L(a), Val::S(b)) => {
            let a = &a[..n];
            for h in 0..n {
                o[h] = f(a[h], b);
            }
        }
        (Val::S(a), Val::L(b)) => {
            let b = &b[..n];
            for h in 0..n {
                o[h] = f(a, b[h]);
            }
        }
        (Val::S(a), Val::S(b)) => o.fill(f(a, b)),
    }
}

#[inline(always)]
fn lane(v: Val<'_>, h: usize) -> f32 {
    match v {
        Val::L(x) => x[h],
        Val::S(s) => s,
    }
}

/// `a^b = exp(b·ln a)` on lanes; lanes outside the fast ranges are recomputed in f64.
#[inline(always)]
fn pow_lanes(a: Val<'_>, b: Val<'_>, o: &mut [f32]) {
    let n = o.len();
    match a {
        Val::L(x) => {
            let x = &x[..n];
            for h in 0..n {
                o[h] = ln_f32(x[h]);
            }
        }
        Val::S(s) => o.fill(f64::from(s).ln() as f32),
    }
    match b {
        Val::L(y) => {
            let y = &y[..n];
            for h in 0..n {
                o[h] *= y[h];
            }
        }
        Val::S(s) => {
            for v in o.iter_mut() {
                *v *= s;
            }
        }
    }
    let mut slow = o.iter().fold(false, |acc, &v| acc | !exp_fast(v));
    if let Val::L(x) = a {
        slow |= x[..n].iter().fold(false, |acc, &v| acc | !ln_fast(v));
    }
    for h in 0..n {
        o[h] = exp_f32(o[h]);
    }
    if slow {
        for h in 0..n {
            let (x, y) = (lane(a, h), lane(b, h));
            if !ln_fast(x) || !exp_fast(y * ln_f32(x)) {
                o[h] = (f64::from(y) * f64::from(x).ln()).exp() as f32;
            }
        }
    }
}

#[inline(always)]
fn exec_bin(op: BinOp, a: Val<'_>, b: Val<'_>, o: &mut [f32]) {
    match op {
        BinOp::Add => zip2(a, b, o, |x, y| x + y),
        BinOp::Sub => zip2(a, b, o, |x, y| x - y),
        BinOp::Mul => zip2(a, b, o, |x, y| x * y),
        BinOp::Div => zip2(a, b, o, |x, y| x / y),
        // Ties and NaNs as the interpreter: `min(a, b)` is `b` only when `b < a`.
        BinOp::Min => zip2(a, b, o, |x, y| if y < x { y } else { x }),
        BinOp::Max => zip2(a, b, o, |x, y| if y > x { y } else { x }),
        BinOp::Pow => pow_lanes(a, b, o),
    }
}

/// The lanes of an operand that the compiler made a lane read.
#[inline(always)]
fn lanes_of(v: Val<'_>) -> &[f32] {
    match v {
        Val::L(x) => x,
        Val::S(_) => unreachable!("fused instructions read broadcast slots, not scalars"),
    }
}

/// One arithmetic op, as a type so that the fused loops below are monomorphised per op.
trait Ar {
    fn f(x: f32, y: f32) -> f32;
}

struct AddA;
struct SubA;
struct MulA;

impl Ar for AddA {
    #[inline(always)]
    fn f(x: f32, y: f32) -> f32 {
        x + y
    }
}

impl Ar for SubA {
    #[inline(always)]
    fn f(x: f32, y: f32) -> f32 {
        x - y
    }
}

impl Ar for MulA {
    #[inline(always)]
    fn f(x: f32, y: f32) -> f32 {
        x * y
    }
}

/// Runs `$body` with the type alias `$t` bound to the [`Ar`] of `$op`.
macro_rules! with_ar {
    ($op:expr, $t:ident => $body:expr) => {
        match $op {
            Arith::Add => {
                type $t = AddA;
                $body
            }
            Arith::Sub => {
                type $t = SubA;
                $body
            }
            Arith::Mul => {
                type $t = MulA;
                $body
            }
        }
    };
}

/// The lane operands of an [`Instr::Arith`] (empty for the ones its form does not read).
#[inline(always)]
fn read_lanes<'a>(
    srcs: [Option<Src>; 4],
    ro: &Ro<'a>,
    cx: &Ctx<'a>,
    i0: usize,
    lanes: usize,
) -> [&'a [f32]; 4] {
    // Written out with an `#[inline(always)]` helper: neither `<[_; 4]>::map` nor a closure is
    // inlined here, and this runs once per instruction and block.
    [
        read_opt(srcs[0], ro, cx, i0, lanes),
        read_opt(srcs[1], ro, cx, i0, lanes),
        read_opt(srcs[2], ro, cx, i0, lanes),
        read_opt(srcs[3], ro, cx, i0, lanes),
    ]
}

#[inline(always)]
fn read_opt<'a>(src: Option<Src>, ro: &Ro<'a>, cx: &Ctx<'a>, i0: usize, lanes: usize) -> &'a [f32] {
    match src {
        Some(s) => lanes_of(read(s, ro, cx, i0, lanes)),
        None => &[],
    }
}

/// Where the lanes of an [`Instr::Arith`] go, as a type so that each loop is monomorphised.
trait Sink {
    fn put(&mut self, h: usize, v: f32);
}

/// `o[h] = v`.
struct StoreSink<'a>(&'a mut [f32]);

/// `acc[h] += sign·v`.
struct AccSink<'a> {
    acc: &'a mut [f32],
    sign: f32,
}

/// `acc[h] += sign·(m[h]·v)`.
struct ScaledAccSink<'a> {
    acc: &'a mut [f32],
    m: &'a [f32],
    sign: f32,
}

impl Sink for StoreSink<'_> {
    #[inline(always)]
    fn put(&mut self, h: usize, v: f32) {
        self.0[h] = v;
    }
}

impl Sink for AccSink<'_> {
    #[inline(always)]
    fn put(&mut self, h: usize, v: f32) {
        self.acc[h] += self.sign * v;
    }
}

impl Sink for ScaledAccSink<'_> {
    #[inline(always)]
    fn put(&mut self, h: usize, v: f32) {
        self.acc[h] += self.sign * (self.m[h] * v);
    }
}

#[inline(always)]
fn two_mono<P: Ar, S: Sink>(a: &[f32], b: &[f32], n: usize, s: &mut S) {
    let (a, b) = (&a[..n], &b[..n]);
    for h in 0..n {
        s.put(h, P::f(a[h], b[h]));
    }
}

#[inline(always)]
fn three_mono<P: Ar, Q: Ar, S: Sink>(
    rev: bool,
    a: &[f32],
    b: &[f32],
    c: &[f32],
    n: usize,
    s: &mut S,
) {
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    if rev {
        for h in 0..n {
            s.put(h, Q::f(c[h], P::f(a[h], b[h])));
        }
    } else {
        for h in 0..n {
            s.put(h, Q::f(P::f(a[h], b[h]), c[h]));
        }
    }
}

#[inline(always)]
fn four_mono<P: Ar, R: Ar, Q: Ar, S: Sink>(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    d: &[f32],
    n: usize,
    s: &mut S,
) {
    let (a, b, c, d) = (&a[..n], &b[..n], &c[..n], &d[..n]);
    for h in 0..n {
        s.put(h, Q::f(P::f(a[h], b[h]), R::f(c[h], d[h])));
    }
}

/// The lanes `0..n` of `form` on operands `o` into `s`.
#[inline(always)]
fn run_form<S: Sink>(form: Form, o: [&[f32]; 4], n: usize, s: &mut S) {
    let [a, b, c, d] = o;
    match form {
        Form::Two(p) => with_ar!(p, P => two_mono::<P, S>(a, b, n, s)),
        Form::Three { p, q, rev } => {
            with_ar!(p, P => with_ar!(q, Q => three_mono::<P, Q, S>(rev, a, b, c, n, s)))
        }
        Form::Four { p, r, q } => with_ar!(p, P => with_ar!(r, R => with_ar!(q, Q =>
            four_mono::<P, R, Q, S>(a, b, c, d, n, s)))),
    }
}

/// Runs `tape` over `lanes` lanes of the block starting at window `i0`.
#[inline(always)]
fn run_tape(
    tape: &[Instr],
    lanes: usize,
    i0: usize,
    cx: &Ctx<'_>,
    slots: &mut [f32],
    accs: &mut [f32],
    collect: &mut Option<Collect>,
) {
    let sl = cx.sl;
    for ins in tape {
        match *ins {
            Instr::Un { op, dst, a } => {
                let (o, ro) = split1(slots, sl, dst as usize);
                let a = read(a, &ro, cx, i0, lanes);
                exec_un(op, a, &mut o[..lanes]);
            }
            Instr::Bin { op, dst, a, b } => {
                let (o, ro) = split1(slots, sl, dst as usize);
                let (a, b) = (read(a, &ro, cx, i0, lanes), read(b, &ro, cx, i0, lanes));
                exec_bin(op, a, b, &mut o[..lanes]);
            }
            Instr::SinCos { sin, cos, a } => {
                let (s, c, ro) = split2(slots, sl, sin as usize, cos as usize);
                let Val::L(a) = read(a, &ro, cx, i0, lanes) else {
                    unreachable!("sin and cos of an invariant are invariant")
                };
                let (s, c) = (&mut s[..lanes], &mut c[..lanes]);
                for h in 0..lanes {
                    (s[h], c[h]) = sin_cos_f32(a[h]);
                }
                sin_cos_fixup(a, s, c);
            }
            Instr::Arith { form, srcs, out } => {
                match out {
                    Out::Store(dst) => {
                        let (o, ro) = split1(slots, sl, dst as usize);
                        let ops = read_lanes(srcs, &ro, cx, i0, lanes);
                        run_form(form, ops, lanes, &mut StoreSink(&mut o[..lanes]));
                    }
                    Out::Acc { acc, neg, m } => {
                        if collect.is_some() {
                            continue; // sums are never collected
                        }
                        let ro = Ro::all(slots, sl);
                        let ops = read_lanes(srcs, &ro, cx, i0, lanes);
                        let acc = &mut accs[acc as usize * BLOCK..][..lanes];
                        let sign = if neg { -1.0 } else { 1.0 };
                        match m {
                            None => run_form(form, ops, lanes, &mut AccSink { acc, sign }),
                            Some(m) => {
                                let m = &lanes_of(read(m, &ro, cx, i0, lanes))[..lanes];
                                run_form(form, ops, lanes, &mut ScaledAccSink { acc, m, sign });
                            }
                        }
                    }
                }
            }
            Instr::Acc { acc, sum, neg, a } => {
                let v = read(a, &Ro::all(slots, sl), cx, i0, lanes);
                if let Some(c) = collect {
                    if c.acc == acc {
                        for h in 0..lanes {
                            if lane(v, h) >= c.threshold {
                                c.windows.push(i0 + h);
                            }
                        }
                    }
                    continue;
                }
                let acc = &mut accs[acc as usize * BLOCK..][..lanes];
                match (sum, neg, v) {
                    (true, false, Val::L(v)) => {
                        let v = &v[..lanes];
                        for h in 0..lanes {
                            acc[h] += v[h];
                        }
                    }
                    (true, true, Val::L(v)) => {
                        let v = &v[..lanes];
                        for h in 0..lanes {
                            acc[h] -= v[h];
                        }
                    }
                    (true, neg, Val::S(s)) => {
                        let s = if neg { -s } else { s };
                        for a in acc.iter_mut() {
                            *a += s;
                        }
                    }
                    // Max accumulators are never negated (see `fold_signs`).
                    (false, _, Val::L(v)) => {
                        let v = &v[..lanes];
                        for h in 0..lanes {
                            acc[h] = if v[h] > acc[h] { v[h] } else { acc[h] };
                        }
                    }
                    (false, _, Val::S(s)) => {
                        for a in acc.iter_mut() {
                            *a = if s > *a { s } else { *a };
                        }
                    }
                }
            }
        }
    }
}

/// Folds the lane partials into `totals` and resets them.
#[inline(always)]
fn fold(sums: &[bool], accs: &mut [f32], totals: &mut [f64]) {
    for ((&sum, lanes), t) in sums.iter().zip(accs.chunks_exact_mut(BLOCK)).zip(totals) {
        if sum {
            // Eight f64 partials: one vector of adds instead of a 256-long dependency chain.
            let mut part = [0.0f64; 8];
            for chunk in lanes.chunks_exact(8) {
                for l in 0..8 {
                    part[l] += f64::from(chunk[l]);
                }
            }
            *t += part.iter().sum::<f64>();
            lanes.fill(0.0);
        } else {
            for &v in lanes.iter() {
                if f64::from(v) > *t {
                    *t = f64::from(v);
                }
            }
            lanes.fill(f32::NEG_INFINITY);
        }
    }
}

multiversioned! {
    /// The accumulators of one loop at one point into `totals` (f32 lanes, f64 folds), or, with
    /// `collect`, the windows of one max accumulator that reach its threshold.
    fn loop_primal(
        lp: &CpuLoop,
        row: &[f32],
        params: &[f32],
        scalars: &[f32],
        slots: &mut [f32],
        accs: &mut [f32],
        totals: &mut [f64],
        collect: &mut Option<Collect>,
    ) {
        let cx = Ctx {
            row,
            params,
            scalars,
            sl: lp.tape.slot_len(),
        };
        let n_acc = lp.sums.len();
        let (accs, totals) = (&mut accs[..n_acc * BLOCK], &mut totals[..n_acc]);
        for &(slot, s) in &lp.tape.bcast {
            let sl = cx.sl;
            slots[slot as usize * sl..(slot as usize + 1) * sl].fill(scalars[s as usize]);
        }
        for ((&sum, lanes), t) in lp.sums.iter().zip(accs.chunks_exact_mut(BLOCK)).zip(totals.iter_mut()) {
            let init = if sum { 0.0 } else { f32::NEG_INFINITY };
            lanes.fill(init);
            *t = f64::from(init);
        }
        let mut i0 = lp.lo;
        let mut blocks = 0;
        while i0 < lp.hi {
            let len = BLOCK.min(lp.hi - i0);
            run_tape(&lp.tape.hoist, len + lp.tape.span, i0, &cx, slots, accs, collect);
            run_tape(&lp.tape.body, len, i0, &cx, slots, accs, collect);
            i0 += len;
            blocks += 1;
            if blocks % FOLD_BLOCKS == 0 {
                fold(&lp.sums, accs, totals);
            }
        }
        fold(&lp.sums, accs, totals);
    }
}

/// One op of a node list in f64, with `leaf` for the leaves (the interpreter's primal semantics).
#[inline]
fn eval_f64(op: &Op, v: &[f64], leaf: impl Fn(&Op) -> f64) -> f64 {
    let x = |id: NodeId| v[id as usize];
    match *op {
        Op::Neg(a) => -x(a),
        Op::Add(a, b) => x(a) + x(b),
        Op::Sub(a, b) => x(a) - x(b),
        Op::Mul(a, b) => x(a) * x(b),
        Op::Div(a, b) => x(a) / x(b),
        Op::Min(a, b) => {
            if x(b) < x(a) {
                x(b)
            } else {
                x(a)
            }
        }
        Op::Max(a, b) => {
            if x(b) > x(a) {
                x(b)
            } else {
                x(a)
            }
        }
        Op::PowInt(a, n) => x(a).powi(n),
        Op::Pow(a, b) => (x(b) * x(a).ln()).exp(),
        Op::Call(f, a) => crate::expr::eval::apply_func(f, x(a)),
        _ => leaf(op),
    }
}

/// Per-task scratch of the primal evaluation.
#[derive(Debug)]
struct Work {
    slots: Vec<f32>,
    accs: Vec<f32>,
    scalars: Vec<f32>,
    totals: Vec<f64>,
    /// f64 values of one loop's nodes (invariants, and windows re-evaluated for an argmax).
    loop_vals: Vec<f64>,
    /// Every accumulator, numbered as [`Op::Reduced`].
    reduced: Vec<f64>,
    /// The argmax window of every max accumulator (series mode).
    argmax: Vec<Option<usize>>,
    main: Vec<f64>,
    collect: Option<Collect>,
    /// The window list of [`Collect`], kept between uses.
    spare: Vec<usize>,
}

impl Work {
    fn new(p: &CpuProgram) -> Self {
        Self {
            slots: vec![0.0; p.slot_floats + ALIGN],
            accs: vec![0.0; p.max_accs * BLOCK + ALIGN],
            scalars: vec![0.0; p.max_scalars],
            totals: vec![0.0; p.max_accs],
            loop_vals: vec![0.0; p.max_loop_nodes],
            reduced: vec![0.0; p.program.n_accumulators()],
            argmax: vec![None; p.program.n_accumulators()],
            main: vec![0.0; p.program.nodes.len()],
            collect: None,
            spare: Vec::new(),
        }
    }
}

/// `v` from its first 64-byte aligned element on (`v` holds [`ALIGN`] spare values for this).
fn aligned(v: &mut [f32]) -> &mut [f32] {
    let off = v.as_ptr().align_offset(64).min(v.len());
    &mut v[off..]
}

/// The f64 value of a leaf at point `row`.
fn point_leaf(op: &Op, row: &[f32], params: &[f32], dim: usize) -> f64 {
    match *op {
        Op::Const(c) => c,
        Op::Coord(j) => f64::from(row[j as usize]),
        Op::Time => f64::from(row[dim]),
        Op::Param(i) => f64::from(params[i as usize]),
        _ => unreachable!("{op:?} is not a point leaf"),
    }
}

/// The f64 value of accumulator `value` of `lp` at window `i` (invariants already in `vals`).
fn window_primal_f64(
    lp: &CpuLoop,
    nodes: &[Op],
    i: usize,
    row: &[f32],
    params: &[f32],
    value: NodeId,
    vals: &mut [f64],
) -> f64 {
    for &id in &lp.varying {
        let x = eval_f64(&nodes[id as usize], vals, |op| match *op {
            Op::WinCoord(k) => f64::from(row[(i as i64 + i64::from(k)) as usize]),
            Op::WinParam { base, k } => {
                f64::from(params[(i as i64 + i64::from(base) + i64::from(k)) as usize])
            }
            _ => unreachable!("{op:?} is not a window leaf"),
        });
        vals[id as usize] = x;
    }
    vals[value as usize]
}

/// Every live accumulator of `p` at one point into `w.reduced`; with `argmax`, also the argmax
/// window of every max (exact in f64, see the module documentation) into `w.argmax`.
fn reduce_point(
    simd: super::simd::Simd,
    p: &CpuProgram,
    row: &[f32],
    params: &[f32],
    w: &mut Work,
    argmax: bool,
) {
    let dim = p.program.dim as usize;
    for (l, (lp, src)) in p.loops.iter().zip(&p.program.loops).enumerate() {
        if !lp.live {
            continue;
        }
        let tape = &lp.tape;
        for (s, &id) in tape.invariants.iter().enumerate() {
            let x = eval_f64(&tape.nodes[id as usize], &w.loop_vals, |op| {
                point_leaf(op, row, params, dim)
            });
            w.loop_vals[id as usize] = x;
            w.scalars[s] = x as f32;
        }
        let native = lp
            .native
            .as_ref()
            .is_ok_and(|n| n.run(lp, row, params, &w.scalars, &mut w.totals));
        if !native {
            loop_primal(
                simd,
                lp,
                row,
                params,
                &w.scalars,
                aligned(&mut w.slots),
                aligned(&mut w.accs),
                &mut w.totals,
                &mut None,
            );
        }
        let base = p.acc_base[l];
        let n_acc = lp.sums.len();
        w.reduced[base..base + n_acc].copy_from_slice(&w.totals[..n_acc]);
        if !argmax {
            continue;
        }
        for a in 0..n_acc {
            w.argmax[base + a] = None;
            if lp.sums[a] || lp.lo >= lp.hi {
                continue;
            }
            let m = w.reduced[base + a];
            let threshold = if m.is_finite() {
                m - ARGMAX_MARGIN * m.abs() - f64::from(f32::MIN_POSITIVE)
            } else {
                m
            };
            w.collect = Some(Collect {
                acc: a as u32,
                threshold: threshold as f32,
                windows: std::mem::take(&mut w.spare),
            });
            loop_primal(
                simd,
                lp,
                row,
                params,
                &w.scalars,
                aligned(&mut w.slots),
                aligned(&mut w.accs),
                &mut w.totals,
                &mut w.collect,
            );
            let mut windows = w.collect.take().map(|c| c.windows).unwrap_or_default();
            if windows.is_empty() {
                // Every window is NaN: the interpreter keeps the first.
                windows.push(lp.lo);
            }
            // The f64 re-evaluation runs on the original body.
            for &id in &lp.invariants {
                let x = eval_f64(&src.nodes[id as usize], &w.loop_vals, |op| {
                    point_leaf(op, row, params, dim)
                });
                w.loop_vals[id as usize] = x;
            }
            let mut best: Option<(f64, usize)> = None;
            for &i in &windows {
                let x = window_primal_f64(
                    lp,
                    &src.nodes,
                    i,
                    row,
                    params,
                    lp.values[a],
                    &mut w.loop_vals,
                );
                if best.is_none() || best.is_some_and(|(b, _)| x > b) {
                    best = Some((x, i));
                }
            }
            if let Some((x, i)) = best {
                w.argmax[base + a] = Some(i);
                if !x.is_nan() {
                    w.reduced[base + a] = x;
                }
            }
            windows.clear();
            w.spare = windows;
        }
    }
}

/// The outputs of `p` at one point (primal mode) into `out` (`n_outputs` values).
fn primal_point(
    simd: super::simd::Simd,
    p: &CpuProgram,
    n: usize,
    n_points: usize,
    row: &[f32],
    features: &[f32],
    params: &[f32],
    w: &mut Work,
    out: &mut [f64],
) {
    reduce_point(simd, p, row, params, w, false);
    let dim = p.program.dim as usize;
    for &id in &p.main_live {
        let x = eval_f64(&p.program.nodes[id as usize], &w.main, |op| match *op {
            Op::Reduced(a) => w.reduced[a as usize],
            Op::Feature(f) => f64::from(features[f as usize * n_points + n]),
            _ => point_leaf(op, row, params, dim),
        });
        w.main[id as usize] = x;
    }
    for (o, &id) in out.iter_mut().zip(&p.program.outputs) {
        *o = w.main[id as usize];
    }
}

// ---------------------------------------------------------------------------------------------
// Series mode.
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
thread_local! {
    /// Windows evaluated as series on this thread (tests prove one-hot work is `O(window)`).
    pub(super) static SERIES_WINDOWS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The curve of one direction.
#[derive(Debug)]
enum Curve<'a> {
    /// `(row index, slot k ≥ 1, Taylor coefficient)` of each filled slot.
    OneHot(Vec<(usize, usize, f64)>),
    /// The slot-1 tangent row (`stride` values).
    Dense(&'a [f32]),
}

impl Curve<'_> {
    /// The series of row entry `j` (value `x0`) into `out` (`K + 1` values).
    #[inline]
    fn fill(&self, j: usize, x0: f64, out: &mut [f64]) {
        out[0] = x0;
        out[1..].fill(0.0);
        match self {
            Curve::OneHot(entries) => {
                for &(jj, k, c) in entries {
                    if jj == j {
                        out[k] += c;
                    }
                }
            }
            Curve::Dense(row) => {
                if out.len() > 1 {
                    out[1] = f64::from(row[j]);
                }
            }
        }
    }

    fn moves(&self, j: usize) -> bool {
        match self {
            Curve::OneHot(entries) => entries.iter().any(|e| e.0 == j),
            Curve::Dense(row) => row[j] != 0.0,
        }
    }
}

/// `out = exp(a)` (Taylor coefficients).
fn exp_series(a: &[f64], out: &mut [f64]) {
    out[0] = a[0].exp();
    for k in 1..a.len() {
        let acc: f64 = (1..=k).map(|j| j as f64 * a[j] * out[k - j]).sum();
        out[k] = acc / k as f64;
    }
}

/// `out = ln(a)`: `b_k = (a_k − (1/k) Σ_{j<k} j·b_j·a_{k−j}) / a_0`.
fn log_series(a: &[f64], out: &mut [f64]) {
    out[0] = a[0].ln();
    for k in 1..a.len() {
        let acc: f64 = (1..k).map(|j| j as f64 * out[j] * a[k - j]).sum();
        out[k] = (a[k] - acc / k as f64) / a[0];
    }
}

/// `f(a)` series into `out`; `tmp` holds at least `2·len` values.
fn call_series(f: Func, a: &[f64], out: &mut [f64], tmp: &mut [f64]) {
    let n = a.len();
    let (t1, rest) = tmp.split_at_mut(n);
    let t2 = &mut rest[..n];
    match f {
        Func::Exp => exp_series(a, out),
        Func::Log => log_series(a, out),
        Func::Sin => series::sin_cos(a, out, t1),
        Func::Cos => series::sin_cos(a, t1, out),
        Func::Tanh => series::unary_forward(Unary::Tanh, a, out, t1),
        Func::Sqrt => {
            out[0] = a[0].sqrt();
            for k in 1..n {
                let acc: f64 = (1..k).map(|j| out[j] * out[k - j]).sum();
                out[k] = (a[k] - acc) / (2.0 * out[0]);
            }
        }
        Func::Abs => {
            let s = if a[0] < 0.0 { -1.0 } else { 1.0 };
            for (o, &c) in out.iter_mut().zip(a) {
                *o = s * c;
            }
        }
        Func::Atan => {
            // atan' = 1/(1 + a²); b_k = (1/k) Σ_j j·a_j·q_{k−j}.
            series::mul(a, a, t1);
            t1[0] += 1.0;
            t2.fill(0.0);
            t2[0] = 1.0;
            let q = out; // reuse as scratch for 1/(1 + a²), then rebuild
            series::div(t2, t1, q);
            t1.copy_from_slice(q);
            q[0] = a[0].atan();
            for k in 1..n {
                let acc: f64 = (1..=k).map(|j| j as f64 * a[j] * t1[k - j]).sum();
                q[k] = acc / k as f64;
            }
        }
    }
}

/// The series of node `id` (not a leaf) from the series of earlier nodes in `vals` (`n1` values
/// each); `tmp` holds at least `3·n1` values.
fn series_node(op: &Op, vals: &mut [f64], id: usize, n1: usize, tmp: &mut [f64]) {
    let (before, rest) = vals.split_at_mut(id * n1);
    let out = &mut rest[..n1];
    let v = |x: NodeId| &before[x as usize * n1..(x as usize + 1) * n1];
    match *op {
        Op::Neg(a) => {
            for (o, &c) in out.iter_mut().zip(v(a)) {
                *o = -c;
            }
        }
        Op::Add(a, b) => series::add(v(a), v(b), out),
        Op::Sub(a, b) => series::sub(v(a), v(b), out),
        Op::Mul(a, b) => series::mul(v(a), v(b), out),
        Op::Div(a, b) => series::div(v(a), v(b), out),
        Op::Min(a, b) => out.copy_from_slice(if v(b)[0] < v(a)[0] { v(b) } else { v(a) }),
        Op::Max(a, b) => out.copy_from_slice(if v(b)[0] > v(a)[0] { v(b) } else { v(a) }),
        Op::PowInt(_, 0) => {
            out.fill(0.0);
            out[0] = 1.0;
        }
        Op::PowInt(a, n) => {
            let t = &mut tmp[..n1];
            out.copy_from_slice(v(a));
            for _ in 1..n.unsigned_abs() {
                series::mul(out, v(a), t);
                out.copy_from_slice(t);
            }
            if n < 0 {
                let (one, t) = tmp.split_at_mut(n1);
                one.fill(0.0);
                one[0] = 1.0;
                let t = &mut t[..n1];
                t.copy_from_slice(out);
                series::div(one, t, out);
            }
        }
        Op::Pow(a, b) => {
            let (ln, rest) = tmp.split_at_mut(n1);
            let e = &mut rest[..n1];
            log_series(v(a), ln);
            series::mul(v(b), ln, e);
            exp_series(e, out);
        }
        Op::Call(f, a) => call_series(f, v(a), out, tmp),
        _ => unreachable!("{op:?} is a leaf"),
    }
}

/// The series of one leaf read at point `row` (and window `i` inside a loop).
#[inline]
fn leaf_series(
    op: &Op,
    window: usize,
    row: &[f32],
    params: &[f32],
    dim: usize,
    curve: &Curve<'_>,
    out: &mut [f64],
) {
    match *op {
        Op::Coord(j) => curve.fill(j as usize, f64::from(row[j as usize]), out),
        Op::Time => curve.fill(dim, f64::from(row[dim]), out),
        Op::WinCoord(k) => {
            let j = (window as i64 + i64::from(k)) as usize;
            curve.fill(j, f64::from(row[j]), out);
        }
        _ => {
            out.fill(0.0);
            out[0] = match *op {
                Op::WinParam { base, k } => {
                    f64::from(params[(window as i64 + i64::from(base) + i64::from(k)) as usize])
                }
                _ => point_leaf(op, row, params, dim),
            };
        }
    }
}

fn is_leaf(op: &Op) -> bool {
    operands(op)[0].is_none()
}

/// Per-task scratch of the series evaluation.
#[derive(Debug)]
struct SeriesWork {
    loop_vals: Vec<f64>,
    main: Vec<f64>,
    red: Vec<f64>,
    tmp: Vec<f64>,
    windows: Vec<usize>,
}

/// The non-invariant nodes of `lp` at window `i` as series into `vals` (invariants already there).
fn window_series(
    lp: &CpuLoop,
    nodes: &[Op],
    i: usize,
    row: &[f32],
    params: &[f32],
    dim: usize,
    curve: &Curve<'_>,
    n1: usize,
    vals: &mut [f64],
    tmp: &mut [f64],
) {
    #[cfg(test)]
    SERIES_WINDOWS.with(|c| c.set(c.get() + 1));
    for &id in &lp.varying {
        let (id, op) = (id as usize, &nodes[id as usize]);
        if is_leaf(op) {
            leaf_series(
                op,
                i,
                row,
                params,
                dim,
                curve,
                &mut vals[id * n1..(id + 1) * n1],
            );
        } else {
            series_node(op, vals, id, n1, tmp);
        }
    }
}

/// Series mode at one point: `out` holds the point's `n_blocks × width` values (block-major).
fn series_point(
    simd: super::simd::Simd,
    p: &CpuProgram,
    shape: JetShape,
    row: &[f32],
    params: &[f32],
    curves: &[Curve<'_>],
    w: &mut Work,
    sw: &mut SeriesWork,
    out: &mut [f64],
) {
    reduce_point(simd, p, row, params, w, true);
    let prog = &p.program;
    let dim = prog.dim as usize;
    let n1 = shape.order + 1;
    let width = prog.n_outputs();
    for (s, curve) in curves.iter().enumerate() {
        for (a, r) in sw.red.chunks_exact_mut(n1).enumerate() {
            r.fill(0.0);
            r[0] = w.reduced[a];
        }
        for (l, (lp, src)) in p.loops.iter().zip(&prog.loops).enumerate() {
            if !lp.live {
                continue;
            }
            let vals = &mut sw.loop_vals;
            for &id in &lp.invariants {
                let (id, op) = (id as usize, &src.nodes[id as usize]);
                if is_leaf(op) {
                    leaf_series(
                        op,
                        0,
                        row,
                        params,
                        dim,
                        curve,
                        &mut vals[id * n1..(id + 1) * n1],
                    );
                } else {
                    series_node(op, vals, id, n1, &mut sw.tmp);
                }
            }
            let base = p.acc_base[l];
            if lp.sums.iter().any(|&s| s) && n1 > 1 {
                let every =
                    matches!(curve, Curve::Dense(_)) || lp.fixed.iter().any(|&j| curve.moves(j));
                sw.windows.clear();
                if every {
                    sw.windows.extend(lp.lo..lp.hi);
                } else if let Curve::OneHot(entries) = curve {
                    for &(j, _, _) in entries {
                        for &k in &lp.offsets {
                            let i = j as i64 - i64::from(k);
                            if i >= lp.lo as i64 && i < lp.hi as i64 {
                                sw.windows.push(i as usize);
                            }
                        }
                    }
                    sw.windows.sort_unstable();
                    sw.windows.dedup();
                }
                for wi in 0..sw.windows.len() {
                    let i = sw.windows[wi];
                    window_series(
                        lp,
                        &src.nodes,
                        i,
                        row,
                        params,
                        dim,
                        curve,
                        n1,
                        vals,
                        &mut sw.tmp,
                    );
                    for (a, (&sum, &value)) in lp.sums.iter().zip(&lp.values).enumerate() {
                        if sum {
                            let v = &vals[value as usize * n1..(value as usize + 1) * n1];
                            let r = &mut sw.red[(base + a) * n1..(base + a + 1) * n1];
                            for c in 1..n1 {
                                r[c] += v[c];
                            }
                        }
                    }
                }
            }
            for (a, (&sum, &value)) in lp.sums.iter().zip(&lp.values).enumerate() {
                if sum {
                    continue;
                }
                if let Some(i) = w.argmax[base + a] {
                    window_series(
                        lp,
                        &src.nodes,
                        i,
                        row,
                        params,
                        dim,
                        curve,
                        n1,
                        vals,
                        &mut sw.tmp,
                    );
                    let v = &vals[value as usize * n1..(value as usize + 1) * n1];
                    let r = &mut sw.red[(base + a) * n1..(base + a + 1) * n1];
                    r[1..].copy_from_slice(&v[1..]);
                }
            }
        }
        for &id in &p.main_live {
            let (id, op) = (id as usize, &prog.nodes[id as usize]);
            match *op {
                Op::Reduced(a) => {
                    let a = a as usize;
                    sw.main[id * n1..(id + 1) * n1].copy_from_slice(&sw.red[a * n1..(a + 1) * n1]);
                }
                Op::Feature(_) => unreachable!("checked before: series mode reads no features"),
                _ if is_leaf(op) => {
                    leaf_series(
                        op,
                        0,
                        row,
                        params,
                        dim,
                        curve,
                        &mut sw.main[id * n1..(id + 1) * n1],
                    );
                }
                _ => series_node(op, &mut sw.main, id, n1, &mut sw.tmp),
            }
        }
        for (o, &id) in prog.outputs.iter().enumerate() {
            let v = &sw.main[id as usize * n1..(id as usize + 1) * n1];
            if s == 0 {
                out[o] = v[0];
            }
            for c in 1..n1 {
                out[shape.block(c, s) * width + o] = v[c];
            }
        }
    }
}

impl ProgramBackend for CpuBackend {
    type Compiled = CpuProgram;

    /// Compiles `program` into tapes (see the module documentation). Never fails on the CPU.
    ///
    /// # Panics
    /// If the program is malformed (an operand after its user, a read out of range, a window read in
    /// the main body, a feature or accumulator read in a loop body).
    #[track_caller]
    fn compile_program(&self, program: &Program) -> Result<CpuProgram, BackendError> {
        CpuProgram::new(program, self.native_programs()).map_err(|reason| BackendError::NoDevice {
            backend: "cpu (native programs)",
            reason,
        })
    }

    /// # Panics
    /// If a buffer is shorter than the program and `n_points` need.
    #[track_caller]
    fn run_program(
        &self,
        prog: &CpuProgram,
        n_points: usize,
        points: &Self::Buf,
        features: &Self::Buf,
        params: &Self::Buf,
        out: &mut Self::Buf,
    ) {
        let p = &prog.program;
        let (stride, n_out) = (p.point_stride(), p.n_outputs());
        assert!(
            points.len() >= n_points * stride,
            "run_program: {} point values for {n_points} points of stride {stride}",
            points.len()
        );
        assert!(
            features.len() >= n_points * p.n_features as usize,
            "run_program: {} feature values for {n_points} points × {} features",
            features.len(),
            p.n_features
        );
        assert!(
            params.len() >= p.n_params as usize,
            "run_program: {} parameters of {}",
            params.len(),
            p.n_params
        );
        assert!(
            out.len() >= n_points * n_out,
            "run_program: output buffer of {} for {n_points} points × {n_out} outputs",
            out.len()
        );
        if n_points == 0 || n_out == 0 {
            return;
        }
        let simd = self.simd;
        // Point-major results, transposed into output columns at the end (tasks own point ranges).
        let mut results = vec![0.0f64; n_points * n_out];
        let run = |first: usize, chunk: &mut [f64]| {
            let mut w = Work::new(prog);
            for (i, o) in chunk.chunks_exact_mut(n_out).enumerate() {
                let n = first + i;
                let row = &points[n * stride..(n + 1) * stride];
                primal_point(simd, prog, n, n_points, row, features, params, &mut w, o);
            }
        };
        match self.stream_items(n_points, prog.work_per_point) {
            None => run(0, &mut results),
            Some(per) => results
                .par_chunks_mut(per * n_out)
                .enumerate()
                .for_each(|(c, chunk)| run(c * per, chunk)),
        }
        for (n, r) in results.chunks_exact(n_out).enumerate() {
            for (o, &v) in r.iter().enumerate() {
                out[o * n_points + n] = v as f32;
            }
        }
    }

    /// # Panics
    /// If the shape is collapsed or its width is not the number of outputs, if the program reads
    /// features, if a probe index is out of the point row, or if a buffer is too short.
    #[track_caller]
    fn run_program_series(
        &self,
        prog: &CpuProgram,
        shape: JetShape,
        points: &Self::Buf,
        probes: &SlotProbes<'_, Self>,
        params: &Self::Buf,
        out: &mut Self::Buf,
    ) {
        let p = &prog.program;
        assert!(
            !shape.collapsed,
            "run_program_series: series outputs are never collapsed"
        );
        assert_eq!(
            shape.width,
            p.n_outputs(),
            "run_program_series: the width must be the number of outputs"
        );
        assert!(
            !p.reads_features(),
            "run_program_series: a program in series mode reads no features"
        );
        let (order, n_dirs, np) = (shape.order, shape.n_dirs, shape.n_points);
        let stride = p.point_stride();
        assert!(
            points.len() >= np * stride,
            "run_program_series: {} point values for {np} points of stride {stride}",
            points.len()
        );
        assert!(
            params.len() >= p.n_params as usize,
            "run_program_series: {} parameters of {}",
            params.len(),
            p.n_params
        );
        assert!(
            out.len() >= shape.len(),
            "run_program_series: output buffer of {} for a batch of {}",
            out.len(),
            shape.len()
        );
        let curves: Vec<Curve<'_>> = (0..n_dirs)
            .map(|s| match probes.kind {
                ProbeKind::OneHot => {
                    assert!(
                        probes.slot_index.len() >= n_dirs * order
                            && probes.slot_coeff.len() >= n_dirs * order,
                        "run_program_series: one-hot probes need {} slots",
                        n_dirs * order
                    );
                    Curve::OneHot(
                        (1..=order)
                            .filter_map(|k| {
                                let j = probes.slot_index[s * order + k - 1];
                                (j != SlotProbes::<'_, Self>::EMPTY).then(|| {
                                    assert!(
                                        (j as usize) < stride,
                                        "run_program_series: probe index {j} out of 0..{stride}"
                                    );
                                    (
                                        j as usize,
                                        k,
                                        f64::from(probes.slot_coeff[s * order + k - 1]),
                                    )
                                })
                            })
                            .collect(),
                    )
                }
                ProbeKind::Dense => {
                    assert!(
                        probes.dense.len() >= n_dirs * stride,
                        "run_program_series: dense probes need {n_dirs} × {stride} values"
                    );
                    Curve::Dense(&probes.dense[s * stride..(s + 1) * stride])
                }
            })
            .collect();
        if np == 0 || shape.width == 0 {
            return;
        }
        let simd = self.simd;
        let n1 = order + 1;
        let per_point = shape.n_blocks() * shape.width;
        let mut results = vec![0.0f64; np * per_point];
        let run = |first: usize, chunk: &mut [f64]| {
            let mut w = Work::new(prog);
            let mut sw = SeriesWork {
                loop_vals: vec![0.0; prog.max_loop_nodes * n1],
                main: vec![0.0; p.nodes.len() * n1],
                red: vec![0.0; p.n_accumulators() * n1],
                tmp: vec![0.0; 3 * n1],
                windows: Vec::new(),
            };
            for (i, o) in chunk.chunks_exact_mut(per_point).enumerate() {
                let n = first + i;
                let row = &points[n * stride..(n + 1) * stride];
                series_point(simd, prog, shape, row, params, &curves, &mut w, &mut sw, o);
            }
        };
        let dense_work = match probes.kind {
            ProbeKind::Dense => n_dirs * prog.work_per_point,
            ProbeKind::OneHot => 0,
        };
        match self.stream_items(np, prog.work_per_point + dense_work + per_point) {
            None => run(0, &mut results),
            Some(per) => results
                .par_chunks_mut(per * per_point)
                .enumerate()
                .for_each(|(c, chunk)| run(c * per, chunk)),
        }
        let nb = shape.n_blocks();
        for (n, r) in results.chunks_exact(per_point).enumerate() {
            for b in 0..nb {
                let dst = &mut out[(b * np + n) * shape.width..(b * np + n + 1) * shape.width];
                for (d, &v) in dst
                    .iter_mut()
                    .zip(&r[b * shape.width..(b + 1) * shape.width])
                {
                    *d = v as f32;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::Tolerance;
    use crate::program::conformance::pair_windows;
    use crate::program::interp::HostProbes;

    /// A one-hot direction re-evaluates only the windows it touches: at `d = 10⁵` with 16
    /// directions of two slots each, a few windows per direction, never `O(d)`; and the result
    /// still matches the interpreter.
    #[test]
    fn one_hot_series_evaluate_only_touched_windows() {
        let b = CpuBackend::with_threads(1);
        let dim = 100_000u32;
        let p = pair_windows(dim);
        let compiled = b.compile_program(&p).expect("compiles");
        let (n, order, n_dirs) = (2, 2, 16);
        let points: Vec<f32> = (0..n * dim as usize)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.005)
            .collect();
        let params: Vec<f32> = (0..p.n_params)
            .map(|i| (i % 17) as f32 / 17.0 - 0.5)
            .collect();
        let slot_index: Vec<u32> = (0..n_dirs * order)
            .map(|e| ((e * 48_271 + 13) % dim as usize) as u32)
            .collect();
        let slot_coeff: Vec<f32> = (0..n_dirs * order).map(|e| 1.0 - e as f32 * 0.05).collect();
        let dense = vec![0.0f32];
        let probes = SlotProbes::<CpuBackend> {
            kind: ProbeKind::OneHot,
            slot_index: &slot_index,
            slot_coeff: &slot_coeff,
            dense: &dense,
        };
        let shape = JetShape {
            order,
            n_dirs,
            n_points: n,
            width: p.n_outputs(),
            collapsed: false,
        };
        let mut out = vec![0.0f32; shape.len()];
        SERIES_WINDOWS.with(|c| c.set(0));
        b.run_program_series(&compiled, shape, &points, &probes, &params, &mut out);
        let windows = SERIES_WINDOWS.with(std::cell::Cell::get);
        // Per point and direction: two coordinates × two offsets in the first loop, two × one in
        // the second.
        let bound = n * n_dirs * (2 * 2 + 2);
        assert!(
            windows > 0 && windows <= bound,
            "{windows} windows evaluated, at most {bound} expected"
        );

        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let host = HostProbes {
            kind: ProbeKind::OneHot,
            slot_index: slot_index.clone(),
            slot_coeff: widen(&slot_coeff),
            dense: vec![0.0],
        };
        let expected =
            crate::program::interp::run_series(&p, shape, &widen(&points), &host, &widen(&params));
        let expected: Vec<f32> = expected.iter().map(|&x| x as f32).collect();
        crate::conformance::compare("d = 10⁵ one-hot series", &out, &expected, Tolerance::F32)
            .unwrap_or_else(|m| panic!("{m}"));
    }

    #[test]
    fn atan_f32_is_accurate_everywhere() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = (i as f32) * 1e-4 * (1.0 + (i as f32).abs() * 1e-4);
            let got = f64::from(super::atan_f32(x));
            let exp = f64::from(x).atan();
            worst = worst.max((got - exp).abs() / exp.abs().max(1e-30));
        }
        assert!(worst < 4e-7, "atan_f32 relative error {worst:e}");
        assert_eq!(super::atan_f32(f32::INFINITY), std::f32::consts::FRAC_PI_2);
        assert_eq!(
            super::atan_f32(f32::NEG_INFINITY),
            -std::f32::consts::FRAC_PI_2
        );
        assert!(super::atan_f32(f32::NAN).is_nan());
        assert_eq!(super::atan_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    /// Folding negations into adds, subtractions, products and accumulators leaves no `Neg` on the
    /// paths it can absorb and keeps the values (checked through the whole backend in the tests of
    /// `core/tests/program_cpu.rs`).
    #[test]
    fn sign_folding_absorbs_negations() {
        let body = vec![
            Op::WinCoord(0),
            Op::WinCoord(1),
            Op::Neg(0),
            Op::Neg(1),
            Op::Add(2, 3), // −(x0 + x1)
            Op::Mul(4, 1), // −((x0 + x1)·x1)
            Op::Sub(5, 2), // −(…) + x0
            Op::Neg(5),    // (x0 + x1)·x1
            Op::Call(Func::Sin, 2),
        ];
        let lp = Loop {
            lo: 0,
            hi: 3,
            nodes: body,
            accumulators: vec![
                Accumulator {
                    kind: ReduceKind::Sum,
                    value: 5,
                },
                Accumulator {
                    kind: ReduceKind::Sum,
                    value: 6,
                },
                Accumulator {
                    kind: ReduceKind::Sum,
                    value: 7,
                },
                Accumulator {
                    kind: ReduceKind::Max,
                    value: 5,
                },
                Accumulator {
                    kind: ReduceKind::Sum,
                    value: 8,
                },
            ],
        };
        let (folded, neg) = fold_signs(&lp);
        assert_eq!(neg, vec![true, false, false, false, false]);
        // Only the max of a negated value and sin(−x0) materialise a negation.
        let negs = folded
            .nodes
            .iter()
            .filter(|op| matches!(op, Op::Neg(_)))
            .count();
        assert_eq!(negs, 2, "{:?}", folded.nodes);
        let x = [0.3f64, -1.7, 2.5, 0.9];
        for i in 0..3 {
            let eval = |l: &Loop| -> Vec<f64> {
                let mut v = Vec::new();
                for op in &l.nodes {
                    let r = eval_f64(op, &v, |op| match *op {
                        Op::WinCoord(k) => x[i + k as usize],
                        _ => unreachable!(),
                    });
                    v.push(r);
                }
                l.accumulators.iter().map(|a| v[a.value as usize]).collect()
            };
            let (orig, new) = (eval(&lp), eval(&folded));
            for a in 0..orig.len() {
                let got = if neg[a] { -new[a] } else { new[a] };
                assert_eq!(got, orig[a], "accumulator {a} at window {i}");
            }
        }
    }
}
