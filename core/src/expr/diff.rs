//! Symbolic derivatives of problem expressions ([`diff`], [`diff_window`]) and the simplifier
//! ([`simplify`]) that keeps derived expressions small.
//!
//! # Rules that are not the textbook ones
//!
//! * A sum over windows is differentiated without unrolling: `∂/∂x_j Σ_{i∈[lo,hi)} body(i)` is
//!   `Σ_i ∂body/∂x_j` over the body's fixed reads of `x_j` (a reduction, present only when the body
//!   reads `x_j` by a fixed index) plus, for every window offset `k` the body reads, the window
//!   derivative `∂body/∂x[i+k]` at the one window `i = j − k` (when it lies in the range), with its
//!   window reads turned into fixed indices. Its size is `O(window)`, independent of `d`.
//! * `min`, `max` and `abs` follow the rule that holds almost everywhere, written with
//!   `sign(z) = z/abs(z)` (the language has no select): `abs(a)' = a/abs(a)·a'`,
//!   `min(a,b)' = ((a'+b') − sign(a−b)·(a'−b'))/2`, `max(a,b)' = ((a'+b') + sign(a−b)·(a'−b'))/2`.
//!   These equal the derivative of the selected operand wherever the operands differ; at a tie
//!   (`a = b`, or `a = 0` for `abs`) they are NaN. `sign(z)` itself has derivative 0.
//! * A `max` reduction is differentiable only with respect to a variable its body does not depend
//!   on (derivative 0); otherwise [`ExprErrorKind::NotDerivable`], because the derivative of the
//!   maximising window cannot be written without a select.
//! * `u` and the terms are independent variables here (partial derivatives): `∂u/∂x_j = 0`.
//!
//! # Simplification
//!
//! [`simplify`] folds constants (with the evaluators' own f64 operations, so a folded constant is
//! the value they would compute) and removes neutral elements: `x+0`, `x−0`, `0−x → −x`, `x·1`,
//! `x·0 → 0`, `0/x → 0`, `x/1`, `−−x`, `x^1`, `x^0 → 1`, negations moved out of products and
//! quotients and into constants, a sum over an empty range or of a zero body. Every rule is exact
//! for finite operands; `x·0 → 0` and `0/x → 0` differ only where `x` is infinite or NaN (or `x = 0`
//! for the quotient).

use super::eval::{apply_binary, apply_func, integer_exponent, visit, window_offsets};
use super::Span;
use super::{BinOp, DimExpr, Expr, ExprError, ExprErrorKind, ExprKind, Func, Index, ReduceKind};

/// A variable to differentiate with respect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// The solution value `u`.
    Solution,
    /// A named term (e.g. `lap`).
    Term(String),
    /// The time `t`.
    Time,
    /// The coordinate `x_j` (0-based), wherever it is read: by a fixed index or through a window.
    Coord(usize),
}

/// What a derivative is taken with respect to, inside the recursion.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    Solution,
    Term(&'a str),
    Time,
    /// `x_j`: outside a reduction every read; inside a body only the fixed reads (the windows
    /// are handled by the enclosing reduction).
    Fixed {
        j: usize,
        dim: usize,
    },
    /// The window slot `x[i+k]` of a reduction body.
    Window(i64),
}

/// `∂expr/∂var`, simplified. `dim` resolves reduction ranges and indices such as `x[d-1]`; the
/// result is valid at that dimension (its size does not depend on it).
///
/// # Errors
/// [`ExprErrorKind::NotDerivable`] for a `max` reduction whose body depends on `var`;
/// [`ExprErrorKind::WindowOutsideReduction`] or [`ExprErrorKind::NestedReduction`] for an
/// expression the checker would reject.
pub fn diff(expr: &Expr, var: &Var, dim: usize) -> Result<Expr, ExprError> {
    let target = match var {
        Var::Solution => Target::Solution,
        Var::Term(name) => Target::Term(name),
        Var::Time => Target::Time,
        Var::Coord(j) => Target::Fixed { j: *j, dim },
    };
    Ok(simplify(&derive(expr, target, false)?))
}

/// `∂body/∂x[i+k]` for a reduction body: only the window reads `x[i+k]` are the variable (fixed
/// reads such as `x[0]` are not), simplified.
///
/// # Errors
/// [`ExprErrorKind::NestedReduction`] if `body` holds a reduction.
pub fn diff_window(body: &Expr, k: i64) -> Result<Expr, ExprError> {
    Ok(simplify(&derive(body, Target::Window(k), true)?))
}

/// `∂body/∂x_j` through the fixed reads of a reduction body only (its window reads are other
/// variables), simplified.
pub(crate) fn diff_body_fixed(body: &Expr, j: usize, dim: usize) -> Result<Expr, ExprError> {
    Ok(simplify(&derive(body, Target::Fixed { j, dim }, true)?))
}

/// The derivative, built with the folding constructors below (so an independent subexpression
/// gives exactly `Const(0)`), not yet simplified.
pub(crate) fn derive(e: &Expr, t: Target, in_body: bool) -> Result<Expr, ExprError> {
    let one_if = |hit: bool| if hit { konst(1.0) } else { zero() };
    Ok(match &e.kind {
        ExprKind::Const(_) | ExprKind::Dim | ExprKind::Param { .. } => zero(),
        ExprKind::Coord(Index::Fixed(d)) => {
            one_if(matches!(t, Target::Fixed { j, dim } if d.at(dim) == j as i64))
        }
        ExprKind::Coord(Index::Window(k)) => {
            if !in_body {
                return Err(ExprError::new(
                    e.span,
                    ExprErrorKind::WindowOutsideReduction(format!("x[i{k:+}]")),
                ));
            }
            one_if(matches!(t, Target::Window(w) if w == *k))
        }
        ExprKind::Time => one_if(matches!(t, Target::Time)),
        ExprKind::Solution => one_if(matches!(t, Target::Solution)),
        ExprKind::Term(name) => one_if(matches!(t, Target::Term(n) if n == name)),
        ExprKind::Call(f, a) => {
            let da = derive(a, t, in_body)?;
            if is_zero(&da) {
                return Ok(zero());
            }
            match f {
                Func::Log => div(da, (**a).clone()),
                Func::Sqrt => div(da, mul(konst(2.0), e.clone())),
                _ => mul(func_deriv(*f, a), da),
            }
        }
        ExprKind::Neg(a) => neg(derive(a, t, in_body)?),
        ExprKind::Binary(op, a, b) => {
            if is_sign(e) {
                return Ok(zero());
            }
            let da = derive(a, t, in_body)?;
            if *op == BinOp::Pow {
                if let Some(n) = integer_exponent(b) {
                    if n == 0 || is_zero(&da) {
                        return Ok(zero());
                    }
                    let p = pow((**a).clone(), konst(f64::from(n) - 1.0));
                    return Ok(mul(mul(konst(f64::from(n)), p), da));
                }
            }
            let db = derive(b, t, in_body)?;
            binary_deriv(*op, e, a, b, da, db)
        }
        ExprKind::Reduce {
            kind,
            var,
            lo,
            hi,
            body,
        } => {
            if in_body {
                return Err(ExprError::new(e.span, ExprErrorKind::NestedReduction));
            }
            let rebuild = |db: Expr| {
                Expr::new(ExprKind::Reduce {
                    kind: *kind,
                    var: var.clone(),
                    lo: *lo,
                    hi: *hi,
                    body: Box::new(db),
                })
            };
            // The fixed-read part (for a coordinate) or the whole derivative (for t, u, a term)
            // is the same in every window: a reduction of the body's derivative.
            let db = simplify(&derive(body, t, true)?);
            let mut parts = Vec::new();
            if !is_zero(&db) {
                parts.push(rebuild(db));
            }
            if let Target::Fixed { j, dim } = t {
                let range = lo.at(dim)..hi.at(dim);
                for k in window_offsets(body) {
                    let i = j as i64 - k;
                    if range.contains(&i) {
                        let dk = simplify(&derive(body, Target::Window(k), true)?);
                        if !is_zero(&dk) {
                            parts.push(fix_window(&dk, i));
                        }
                    }
                }
            }
            if parts.is_empty() {
                return Ok(zero());
            }
            if *kind == ReduceKind::Max {
                return Err(ExprError::new(
                    e.span,
                    ExprErrorKind::NotDerivable(
                        "a max reduction whose body depends on the variable (its derivative is \
                         the maximising window's, which needs a select)"
                            .to_owned(),
                    ),
                ));
            }
            parts.into_iter().fold(zero(), add)
        }
    })
}

/// `f'(a)` for the functions whose derivative is a factor (not `log`, `sqrt`).
fn func_deriv(f: Func, a: &Expr) -> Expr {
    let a = a.clone();
    match f {
        Func::Exp => call(Func::Exp, a),
        Func::Sin => call(Func::Cos, a),
        Func::Cos => neg(call(Func::Sin, a)),
        Func::Tanh => sub(konst(1.0), pow(call(Func::Tanh, a), konst(2.0))),
        Func::Atan => div(konst(1.0), add(konst(1.0), pow(a, konst(2.0)))),
        Func::Abs => sign(a),
        Func::Log => div(konst(1.0), a),
        Func::Sqrt => div(konst(0.5), call(Func::Sqrt, a)),
    }
}

/// `z / abs(z)`: ±1 away from 0, the a.e. derivative of `abs`.
pub(crate) fn sign(z: Expr) -> Expr {
    div(z.clone(), call(Func::Abs, z))
}

/// Whether `e` is `z / abs(z)` (whose derivative is 0 almost everywhere).
pub(crate) fn is_sign(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Binary(BinOp::Div, z, den) => {
            matches!(&den.kind, ExprKind::Call(Func::Abs, z2) if z2 == z)
        }
        _ => false,
    }
}

/// The derivative of `a op b` (not an integer power) from `da`, `db`.
fn binary_deriv(op: BinOp, e: &Expr, a: &Expr, b: &Expr, da: Expr, db: Expr) -> Expr {
    let (za, zb) = (is_zero(&da), is_zero(&db));
    if za && zb {
        return zero();
    }
    let (a, b) = (a.clone(), b.clone());
    match op {
        BinOp::Add => add(da, db),
        BinOp::Sub => sub(da, db),
        BinOp::Mul => add(mul(da, b), mul(a, db)),
        BinOp::Div => sub(div(da, b.clone()), div(mul(a, db), pow(b, konst(2.0)))),
        BinOp::Pow => {
            // a^b = exp(b·ln a): (a^b)' = a^b·(b'·ln a + b·a'/a); with b independent of the
            // variable, b·a^(b−1)·a' (the same domain, a > 0).
            if zb {
                let p = pow(a, sub(b.clone(), konst(1.0)));
                mul(mul(b, p), da)
            } else {
                let log_part = mul(db, call(Func::Log, a.clone()));
                let base_part = div(mul(b, da), a);
                mul(e.clone(), add(log_part, base_part))
            }
        }
        BinOp::Min | BinOp::Max => {
            let s = sign(sub(a, b));
            let mean = add(da.clone(), db.clone());
            let jump = mul(s, sub(da, db));
            let twice = if op == BinOp::Min {
                sub(mean, jump)
            } else {
                add(mean, jump)
            };
            div(twice, konst(2.0))
        }
    }
}

/// Replaces every window read `[i+m]` (coordinates and parameters) by the fixed index `[i0+m]`:
/// a reduction body evaluated at window `i0`, as an expression outside any reduction.
pub(crate) fn fix_window(e: &Expr, i0: i64) -> Expr {
    map_indices(e, &|idx| match idx {
        Index::Window(m) => Index::Fixed(DimExpr::constant(i0 + m)),
        other => other,
    })
}

/// Shifts every window read `[i+m]` to `[i+m+delta]`: the body of window `i + delta`.
pub(crate) fn shift_window(e: &Expr, delta: i64) -> Expr {
    if delta == 0 {
        return e.clone();
    }
    map_indices(e, &|idx| match idx {
        Index::Window(m) => Index::Window(m + delta),
        other => other,
    })
}

/// Rebuilds `e` with every coordinate and parameter index mapped by `f`.
fn map_indices(e: &Expr, f: &impl Fn(Index) -> Index) -> Expr {
    let kind = match &e.kind {
        ExprKind::Coord(idx) => ExprKind::Coord(f(*idx)),
        ExprKind::Param { name, index } => ExprKind::Param {
            name: name.clone(),
            index: index.map(f),
        },
        ExprKind::Call(g, a) => ExprKind::Call(*g, Box::new(map_indices(a, f))),
        ExprKind::Neg(a) => ExprKind::Neg(Box::new(map_indices(a, f))),
        ExprKind::Binary(op, a, b) => ExprKind::Binary(
            *op,
            Box::new(map_indices(a, f)),
            Box::new(map_indices(b, f)),
        ),
        ExprKind::Reduce {
            kind,
            var,
            lo,
            hi,
            body,
        } => ExprKind::Reduce {
            kind: *kind,
            var: var.clone(),
            lo: *lo,
            hi: *hi,
            body: Box::new(map_indices(body, f)),
        },
        other => other.clone(),
    };
    Expr::at(kind, e.span)
}

/// Replaces every read of term `name` by `with`.
pub(crate) fn substitute_term(e: &Expr, name: &str, with: &Expr) -> Expr {
    let rec = |a: &Expr| Box::new(substitute_term(a, name, with));
    let kind = match &e.kind {
        ExprKind::Term(n) if n == name => return with.clone(),
        ExprKind::Call(g, a) => ExprKind::Call(*g, rec(a)),
        ExprKind::Neg(a) => ExprKind::Neg(rec(a)),
        ExprKind::Binary(op, a, b) => ExprKind::Binary(*op, rec(a), rec(b)),
        ExprKind::Reduce {
            kind,
            var,
            lo,
            hi,
            body,
        } => ExprKind::Reduce {
            kind: *kind,
            var: var.clone(),
            lo: *lo,
            hi: *hi,
            body: rec(body),
        },
        other => other.clone(),
    };
    Expr::at(kind, e.span)
}

/// Whether `e` holds a reduction.
pub(crate) fn has_reduction(e: &Expr) -> bool {
    let mut found = false;
    visit(e, &mut |n| {
        found |= matches!(n.kind, ExprKind::Reduce { .. })
    });
    found
}

/// The number of nodes of `e` (reduction bodies included).
pub fn node_count(e: &Expr) -> usize {
    let mut n = 0;
    visit(e, &mut |_| n += 1);
    n
}

/// Returns `e` with constants folded and neutral elements removed (see the module documentation);
/// the value is unchanged wherever every operand is finite.
pub fn simplify(e: &Expr) -> Expr {
    match &e.kind {
        ExprKind::Call(f, a) => call(*f, simplify(a)),
        ExprKind::Neg(a) => neg(simplify(a)),
        ExprKind::Binary(op, a, b) => binary(*op, simplify(a), simplify(b)),
        ExprKind::Reduce {
            kind,
            var,
            lo,
            hi,
            body,
        } => {
            let body = simplify(body);
            // Empty whatever the dimension: both bounds move with d alike.
            let empty = lo.with_dim == hi.with_dim && hi.offset <= lo.offset;
            if *kind == ReduceKind::Sum && (empty || is_zero(&body)) {
                return zero();
            }
            Expr::at(
                ExprKind::Reduce {
                    kind: *kind,
                    var: var.clone(),
                    lo: *lo,
                    hi: *hi,
                    body: Box::new(body),
                },
                e.span,
            )
        }
        _ => e.clone(),
    }
}

// Folding constructors. Each applies the simplification rules at its own node only, so a tree
// built bottom-up from them is simplified.

/// The constant `c`.
pub(crate) fn konst(c: f64) -> Expr {
    Expr::new(ExprKind::Const(c))
}

/// The constant 0.
pub(crate) fn zero() -> Expr {
    konst(0.0)
}

/// The constant value of `e`, if it is one.
fn as_const(e: &Expr) -> Option<f64> {
    match e.kind {
        ExprKind::Const(c) => Some(c),
        _ => None,
    }
}

/// Whether `e` is the constant 0.
pub(crate) fn is_zero(e: &Expr) -> bool {
    as_const(e) == Some(0.0)
}

/// Folds a constant result only when finite (a NaN or infinite literal helps nobody reading it).
fn folded(v: f64) -> Option<Expr> {
    v.is_finite().then(|| konst(v))
}

fn node(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::new(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}

/// Splits `−x` into `x`.
fn unneg(e: Expr) -> Result<Expr, Expr> {
    match e.kind {
        ExprKind::Neg(inner) => Ok(*inner),
        kind => Err(Expr::at(kind, e.span)),
    }
}

/// `f(a)`.
pub(crate) fn call(f: Func, a: Expr) -> Expr {
    if let Some(c) = as_const(&a) {
        if let Some(v) = folded(apply_func(f, c)) {
            return v;
        }
    }
    Expr::new(ExprKind::Call(f, Box::new(a)))
}

/// `−a`.
pub(crate) fn neg(a: Expr) -> Expr {
    if let Some(c) = as_const(&a) {
        return konst(-c);
    }
    match a.kind {
        ExprKind::Neg(inner) => *inner,
        // −(x − y) = y − x exactly.
        ExprKind::Binary(BinOp::Sub, x, y) => node(BinOp::Sub, *y, *x),
        kind => Expr::new(ExprKind::Neg(Box::new(Expr::at(kind, a.span)))),
    }
}

/// `a + b`.
pub(crate) fn add(a: Expr, b: Expr) -> Expr {
    let (ca, cb) = (as_const(&a), as_const(&b));
    if let (Some(x), Some(y)) = (ca, cb) {
        return konst(x + y);
    }
    if ca == Some(0.0) {
        return b;
    }
    if cb == Some(0.0) {
        return a;
    }
    match unneg(b) {
        Ok(b) => sub(a, b),
        Err(b) => match unneg(a) {
            Ok(a) => sub(b, a),
            Err(a) => node(BinOp::Add, a, b),
        },
    }
}

/// `a − b`.
pub(crate) fn sub(a: Expr, b: Expr) -> Expr {
    let (ca, cb) = (as_const(&a), as_const(&b));
    if let (Some(x), Some(y)) = (ca, cb) {
        return konst(x - y);
    }
    if ca == Some(0.0) {
        return neg(b);
    }
    if cb == Some(0.0) {
        return a;
    }
    match unneg(b) {
        Ok(b) => add(a, b),
        Err(b) => node(BinOp::Sub, a, b),
    }
}

/// `a · b`.
pub(crate) fn mul(a: Expr, b: Expr) -> Expr {
    let (ca, cb) = (as_const(&a), as_const(&b));
    if let (Some(x), Some(y)) = (ca, cb) {
        return konst(x * y);
    }
    if ca == Some(0.0) || cb == Some(0.0) {
        return zero();
    }
    if ca == Some(1.0) {
        return b;
    }
    if cb == Some(1.0) {
        return a;
    }
    if ca == Some(-1.0) {
        return neg(b);
    }
    if cb == Some(-1.0) {
        return neg(a);
    }
    // (−x)·y = −(x·y) exactly.
    match (unneg(a), unneg(b)) {
        (Ok(a), Ok(b)) => mul(a, b),
        (Ok(a), Err(b)) | (Err(a), Ok(b)) => neg(mul(a, b)),
        (Err(a), Err(b)) => node(BinOp::Mul, a, b),
    }
}

/// `a / b`.
pub(crate) fn div(a: Expr, b: Expr) -> Expr {
    let (ca, cb) = (as_const(&a), as_const(&b));
    if let (Some(x), Some(y)) = (ca, cb) {
        if let Some(v) = folded(x / y) {
            return v;
        }
    }
    if ca == Some(0.0) {
        return zero();
    }
    if cb == Some(1.0) {
        return a;
    }
    if cb == Some(-1.0) {
        return neg(a);
    }
    match (unneg(a), unneg(b)) {
        (Ok(a), Ok(b)) => div(a, b),
        (Ok(a), Err(b)) | (Err(a), Ok(b)) => neg(div(a, b)),
        (Err(a), Err(b)) => node(BinOp::Div, a, b),
    }
}

/// `a ^ b`.
pub(crate) fn pow(a: Expr, b: Expr) -> Expr {
    let int = integer_exponent(&b);
    match int {
        Some(0) => return konst(1.0),
        Some(1) => return a,
        _ => {}
    }
    if let (Some(x), Some(y)) = (as_const(&a), as_const(&b)) {
        if let Some(v) = folded(apply_binary(BinOp::Pow, x, y, int)) {
            return v;
        }
    }
    node(BinOp::Pow, a, b)
}

/// `a op b` through the folding constructors.
pub(crate) fn binary(op: BinOp, a: Expr, b: Expr) -> Expr {
    match op {
        BinOp::Add => add(a, b),
        BinOp::Sub => sub(a, b),
        BinOp::Mul => mul(a, b),
        BinOp::Div => div(a, b),
        BinOp::Pow => pow(a, b),
        BinOp::Min | BinOp::Max => match (as_const(&a), as_const(&b)) {
            (Some(x), Some(y)) => konst(apply_binary(op, x, y, None)),
            _ => node(op, a, b),
        },
    }
}

/// `Σ_{i∈[lo,hi)} body`, or 0 when the body is 0 or the range is empty at every dimension.
pub(crate) fn reduce_sum(lo: DimExpr, hi: DimExpr, body: Expr) -> Expr {
    if is_zero(&body) || (lo.with_dim == hi.with_dim && hi.offset <= lo.offset) {
        return zero();
    }
    Expr::at(
        ExprKind::Reduce {
            kind: ReduceKind::Sum,
            var: "i".to_owned(),
            lo,
            hi,
            body: Box::new(body),
        },
        Span::NONE,
    )
}
