//! The syntax tree of the problem language: expressions over coordinates, time, the solution, named
//! differential terms and seeded parameters, with windowed reductions over coordinates.
//!
//! Every node carries the [`Span`] of the text it was parsed from (or [`Span::NONE`] when built in
//! Rust), so that checks after parsing can still name a line and column.

use std::fmt;

/// A position range in the source text: 1-based line and column of the first character, and the
/// byte range. [`Span::NONE`] marks nodes built from Rust.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// 1-based line (0 for [`Span::NONE`]).
    pub line: u32,
    /// 1-based column in characters (0 for [`Span::NONE`]).
    pub col: u32,
    /// Byte offset of the first character.
    pub start: u32,
    /// Byte offset one past the last character.
    pub end: u32,
}

impl Span {
    /// No position (a node built in Rust).
    pub const NONE: Span = Span {
        line: 0,
        col: 0,
        start: 0,
        end: 0,
    };

    /// Whether this span points into source text.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

/// An integer that may depend on the dimension `d`: `scale·d + offset` with `scale ∈ {0, 1}`.
/// Used for reduction bounds (`0 .. d-1`) and fixed coordinate indices (`x[d-1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DimExpr {
    /// Whether `d` is added.
    pub with_dim: bool,
    /// The constant part.
    pub offset: i64,
}

impl DimExpr {
    /// A constant.
    pub const fn constant(offset: i64) -> Self {
        Self {
            with_dim: false,
            offset,
        }
    }

    /// `d + offset`.
    pub const fn dim_plus(offset: i64) -> Self {
        Self {
            with_dim: true,
            offset,
        }
    }

    /// Its value at dimension `dim`.
    pub fn at(&self, dim: usize) -> i64 {
        if self.with_dim {
            dim as i64 + self.offset
        } else {
            self.offset
        }
    }
}

impl fmt::Display for DimExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.with_dim, self.offset) {
            (false, o) => write!(f, "{o}"),
            (true, 0) => f.write_str("d"),
            (true, o) if o > 0 => write!(f, "d+{o}"),
            (true, o) => write!(f, "d-{}", -o),
        }
    }
}

/// Which element of a coordinate or parameter array a node reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Index {
    /// A fixed element, e.g. `x[0]` or `x[d-1]`.
    Fixed(DimExpr),
    /// Relative to the innermost reduction variable: `x[i+offset]` (only inside a reduction body).
    Window(i64),
}

/// Functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// `exp`
    Exp,
    /// `log` (natural)
    Log,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tanh`
    Tanh,
    /// `atan`
    Atan,
    /// `sqrt`
    Sqrt,
    /// `abs`
    Abs,
}

impl Func {
    /// Every function, in the order of [`Func::name`].
    pub const ALL: [Func; 8] = [
        Func::Exp,
        Func::Log,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
        Func::Atan,
        Func::Sqrt,
        Func::Abs,
    ];

    /// The name in the text syntax.
    pub fn name(self) -> &'static str {
        match self {
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

    /// The function with this name.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Operators of two arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b` (an integer constant exponent is a power by repeated products; otherwise
    /// `exp(b·log a)`, which needs `a > 0`)
    Pow,
    /// `min(a, b)`
    Min,
    /// `max(a, b)`
    Max,
}

/// The kind of a reduction over a coordinate window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// `sum(i in lo..hi, body)`
    Sum,
    /// `max(i in lo..hi, body)`
    Max,
}

/// One node of an expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A number (`pi` parses to one).
    Const(f64),
    /// The dimension `d`, as a number.
    Dim,
    /// A coordinate `x[index]`.
    Coord(Index),
    /// The time `t`.
    Time,
    /// The solution value `u` at the point.
    Solution,
    /// A named differential term of the problem (e.g. `lap`), by name.
    Term(String),
    /// A named parameter: a scalar (`index: None`) or an element of a parameter array.
    Param {
        /// Parameter name.
        name: String,
        /// Which element, for arrays.
        index: Option<Index>,
    },
    /// `f(a)`.
    Call(Func, Box<Expr>),
    /// `-a`.
    Neg(Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A reduction over `i ∈ [lo, hi)` of `body`, where `body` reads `x[i+k]` and `p[i+k]`.
    /// Reductions do not nest.
    Reduce {
        /// Sum or max.
        kind: ReduceKind,
        /// The index variable's name (for printing).
        var: String,
        /// First index.
        lo: DimExpr,
        /// One past the last index.
        hi: DimExpr,
        /// The body.
        body: Box<Expr>,
    },
}

/// An expression: a node and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

impl Expr {
    /// A node without a source position.
    pub fn new(kind: ExprKind) -> Self {
        Self {
            kind,
            span: Span::NONE,
        }
    }

    /// A node with a source position.
    pub fn at(kind: ExprKind, span: Span) -> Self {
        Self { kind, span }
    }
}
