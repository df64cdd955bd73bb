//! Programs: problem expressions lowered to a flat, backend-neutral form that every backend compiles
//! (vectorised loops on the CPU, generated WGSL, generated CUDA C), with one f64 interpreter in core
//! as the reference.
//!
//! A [`Program`] evaluates several outputs per point from the point's coordinates, its time, a few
//! per-point input features (the solution value and the operator terms, for a residual) and a flat
//! buffer of parameters. Reductions over coordinate windows (`Σ_i c_i φ(x_i, x_{i+1})`, `‖x‖²`,
//! `max_i x_i`) are [`Loop`]s whose bodies are evaluated once per window; reductions over the same
//! range share one loop and its common subexpressions.
//!
//! # Evaluation modes
//!
//! * **Primal**: for every point `n`, every output `o` is written to `out[o·n_points + n]` (outputs
//!   are contiguous columns). Features are read the same way: feature `f` of point `n` is
//!   `features[f·n_points + n]`.
//! * **Series** (for ansatz factors and exact solutions along the probe directions): the point moves
//!   along `x(τ) = x_n + Σ_{k=1..K} τ^k·v_k^s` for every probe direction `s` (see
//!   [`crate::backend::Probes`]), and each output's Taylor coefficients `0..=K` are written in the
//!   jet-batch layout of [`crate::batch`] with width `n_outputs` (block 0 the primal, block
//!   `1 + (k−1)·V + s` coefficient `k` of direction `s`; never collapsed). Programs evaluated in
//!   series mode read no features. A sum's series is its primal plus, for each window that a one-hot
//!   direction touches, the window's series minus its primal: `O(window)` work per direction, never
//!   `O(d)`. A max takes the series of the window that attains it.
//!
//! # Node semantics
//!
//! Nodes are in topological order: an operand's id is smaller than its user's. Main-body ids index
//! [`Program::nodes`]; loop-body ids index that loop's [`Loop::nodes`].

pub mod conformance;
pub mod interp;
pub mod lower;

pub use crate::expr::{Func, ReduceKind};

/// An index into a node list.
pub type NodeId = u32;

/// One operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// A number.
    Const(f64),
    /// Coordinate `x[j]` of the point (`j < dim`).
    Coord(u32),
    /// The time `t` (column `dim` of the point row; only when [`Program::has_time`]).
    Time,
    /// Input feature `f` of the point (primal mode only; main body only).
    Feature(u32),
    /// `params[i]`.
    Param(u32),
    /// Inside a loop body: coordinate `x[i + k]` of window `i`.
    WinCoord(i32),
    /// Inside a loop body: `params[base + i + k]` for window `i`.
    WinParam {
        /// Offset of the parameter array in the flat parameter buffer.
        base: u32,
        /// Offset relative to the window index.
        k: i32,
    },
    /// Main body only: the value of accumulator `a` (numbered over all loops in order).
    Reduced(u32),
    /// `-a`
    Neg(NodeId),
    /// `a + b`
    Add(NodeId, NodeId),
    /// `a - b`
    Sub(NodeId, NodeId),
    /// `a · b`
    Mul(NodeId, NodeId),
    /// `a / b`
    Div(NodeId, NodeId),
    /// `min(a, b)` (series: the series of the smaller primal; ties take `a`)
    Min(NodeId, NodeId),
    /// `max(a, b)` (series: the series of the larger primal; ties take `a`)
    Max(NodeId, NodeId),
    /// `a^n` for an integer `n` (repeated products; negative `n` is the reciprocal of the positive power)
    PowInt(NodeId, i32),
    /// `a^b = exp(b·ln a)` for non-constant or non-integer `b` (needs `a > 0`)
    Pow(NodeId, NodeId),
    /// `f(a)`.
    Call(Func, NodeId),
}

/// What a loop accumulates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accumulator {
    /// Sum or max.
    pub kind: ReduceKind,
    /// The body node accumulated.
    pub value: NodeId,
}

/// A reduction over windows `i ∈ [lo, hi)` of the coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    /// First window.
    pub lo: u32,
    /// One past the last window (`lo ≤ hi`; a sum over an empty range is 0).
    pub hi: u32,
    /// The body, evaluated once per window. It reads only constants, parameters, fixed coordinates,
    /// the time and window reads ([`Op::WinCoord`], [`Op::WinParam`]).
    pub nodes: Vec<Op>,
    /// The values accumulated, in the order of their [`Op::Reduced`] numbers.
    pub accumulators: Vec<Accumulator>,
}

impl Loop {
    /// The smallest and largest window offsets `k` read by `x[i + k]` (`(0, 0)` if none).
    pub fn window_extent(&self) -> (i32, i32) {
        let ks = self.nodes.iter().filter_map(|op| match op {
            Op::WinCoord(k) => Some(*k),
            _ => None,
        });
        ks.fold(None, |acc: Option<(i32, i32)>, k| match acc {
            None => Some((k, k)),
            Some((a, b)) => Some((a.min(k), b.max(k))),
        })
        .unwrap_or((0, 0))
    }
}

/// A lowered set of expressions.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The space dimension `d`.
    pub dim: u32,
    /// Whether the point rows carry a time column (row length `dim + 1`).
    pub has_time: bool,
    /// Features read per point (primal mode).
    pub n_features: u32,
    /// Length of the flat parameter buffer the program reads.
    pub n_params: u32,
    /// Reductions, evaluated before the main body.
    pub loops: Vec<Loop>,
    /// The main body.
    pub nodes: Vec<Op>,
    /// The outputs, in order.
    pub outputs: Vec<NodeId>,
}

impl Program {
    /// The length of one point row: `dim`, plus one for the time.
    pub fn point_stride(&self) -> usize {
        self.dim as usize + usize::from(self.has_time)
    }

    /// Number of outputs.
    pub fn n_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Total number of accumulators over all loops.
    pub fn n_accumulators(&self) -> usize {
        self.loops.iter().map(|l| l.accumulators.len()).sum()
    }

    /// Whether the program reads per-point features (then it runs in primal mode only).
    pub fn reads_features(&self) -> bool {
        self.nodes.iter().any(|op| matches!(op, Op::Feature(_)))
    }
}
