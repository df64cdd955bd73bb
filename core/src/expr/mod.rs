//! The problem language: one expression language for residuals, forcing, exact solutions, ansatz
//! factors and boundary data, parsed from text or built in Rust, checked against a [`Scope`],
//! evaluated in f64 and along jets (the oracle), differentiated symbolically, and lowered to the
//! programs every backend compiles.
//!
//! The grammar is documented in [`parse`](mod@parse).

pub mod ast;
pub mod build;
pub mod check;
pub mod diff;
pub mod eval;
pub mod ops;
pub mod parse;
pub mod print;

pub use ast::{BinOp, DimExpr, Expr, ExprKind, Func, Index, ReduceKind, Span};
pub use check::check;
pub use parse::parse;

/// The shape of a named parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamShape {
    /// One number.
    Scalar,
    /// An array whose length may depend on the dimension (e.g. `d-1`).
    Array(DimExpr),
}

/// What an expression may refer to: the dimension, whether time exists, the named differential
/// terms and the named parameters. Checking an expression against a scope resolves every name.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Scope {
    /// The space dimension `d`.
    pub dim: usize,
    /// Whether `t` exists.
    pub has_time: bool,
    /// Whether `u` may be read (the residual and soft-constraint expressions; not the forcing or
    /// an exact solution).
    pub has_solution: bool,
    /// Term names, in order (a term's index is its position).
    pub terms: Vec<String>,
    /// Parameter names and shapes, in order.
    pub params: Vec<(String, ParamShape)>,
}

/// Why an expression was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}{kind}", position_prefix(span))]
pub struct ExprError {
    /// Where (line and column are 1-based; [`Span::NONE`] for built expressions).
    pub span: Span,
    /// What.
    pub kind: ExprErrorKind,
}

fn position_prefix(span: &Span) -> String {
    if span.is_known() {
        format!("line {}, column {}: ", span.line, span.col)
    } else {
        String::new()
    }
}

/// The kinds of [`ExprError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExprErrorKind {
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A token where another was expected.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar wanted.
        expected: String,
        /// What was there.
        found: String,
    },
    /// A `(` without its `)`, or a `)` without its `(`.
    #[error("unbalanced parentheses: {0}")]
    Unbalanced(String),
    /// A malformed number.
    #[error("invalid number {0:?}")]
    BadNumber(String),
    /// An unknown function name.
    #[error("unknown function `{name}` (known: {known})")]
    UnknownFunction {
        /// The name written.
        name: String,
        /// The functions that exist.
        known: String,
    },
    /// A name that is no variable, term or parameter in scope.
    #[error("unknown name `{name}`{hint}")]
    UnknownName {
        /// The name written.
        name: String,
        /// A suggestion, starting with "; " (or empty).
        hint: String,
    },
    /// A term used but not defined.
    #[error("term `{name}` is used but not defined (defined: {defined})")]
    UndefinedTerm {
        /// The name written.
        name: String,
        /// The terms that exist.
        defined: String,
    },
    /// A function or reduction with the wrong number of arguments.
    #[error("`{name}` takes {expected} argument(s), got {got}")]
    Arity {
        /// Function name.
        name: String,
        /// Expected count.
        expected: String,
        /// Given count.
        got: usize,
    },
    /// A value used where another kind is needed (an array without an index, an index on a
    /// scalar, `x` without an index, …).
    #[error("type error: {0}")]
    Type(String),
    /// A window that reads outside `0..d` (or a parameter array's length) for some index of its range.
    #[error("window runs past the end: {0}")]
    WindowOutOfRange(String),
    /// A reduction inside a reduction.
    #[error("reductions do not nest")]
    NestedReduction,
    /// `x[i+k]` outside any reduction.
    #[error("the window index `{0}` is used outside a reduction")]
    WindowOutsideReduction(String),
    /// `t` in a problem without time.
    #[error("`t` is used but the problem has no time variable")]
    NoTime,
    /// `u` where the solution is not available (forcing, exact solution, ansatz).
    #[error("`u` cannot be used here: {0}")]
    NoSolution(String),
    /// A fixed index outside its array (`x[d]`, `c[5]` for a parameter of 5 elements), or an index
    /// or bound too large to evaluate.
    #[error("index out of range: {0}")]
    IndexOutOfRange(String),
    /// A `max` reduction whose range is empty at the scope's dimension.
    #[error("`max` over an empty range: {0}")]
    EmptyRange(String),
    /// Input nested deeper than the parser or checker accepts.
    #[error("expression nested too deeply (more than {limit} levels)")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A symbolic operation the language cannot carry out on this expression.
    #[error("cannot derive symbolically: {0}")]
    NotDerivable(String),
}

impl ExprError {
    /// An error at a span.
    pub fn new(span: Span, kind: ExprErrorKind) -> Self {
        Self { span, kind }
    }
}
