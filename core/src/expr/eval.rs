//! Evaluation of problem expressions: in f64 at a point ([`eval`]), and as truncated Taylor series
//! along a curve ([`eval_series`], the oracle every backend is tested against), also for sparse
//! one-hot directions at `O(window)` cost per reduction ([`eval_series_sparse`]).
//!
//! # Semantics shared by every evaluator
//!
//! * `a ^ n` with an integer constant exponent ([`integer_exponent`]) is a power by repeated
//!   products (squaring, [`powi`]); a negative `n` is the reciprocal of the positive power. Any
//!   other power is `exp(b·ln a)` and needs `a > 0`.
//! * `min`, `max` and `abs` select by the primal value (the rule that holds almost everywhere):
//!   `min(a, b)` is `b` when `b < a` and `a` otherwise (ties take the first operand), and a `max`
//!   reduction is the body of its first maximising window (over an empty range it is `−∞`).
//! * A sum over an empty range is 0.
//!
//! The f64 evaluator performs exactly the operations that produce the constant coefficient of
//! the series rules, so `eval(e) == eval_series(e)[0]` bit for bit (up to the sign of a zero).
//! That is what lets the sparse evaluator take its reductions' primals from [`eval`] and still
//! make the same `min`/`max` choices as the general one.
//!
//! Names are looked up in the [`Scope`]; an unknown name, a missing input or an index out of range
//! is a caller bug (the checker rejects such expressions first) and panics with a message.

use std::collections::BTreeSet;

use super::{BinOp, Expr, ExprKind, Func, Index, ReduceKind, Scope};
use crate::series::{self, Unary};

/// Everything an expression may read at one point, for [`eval`].
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// The scope the expression was checked against (names and the dimension).
    pub scope: &'a Scope,
    /// The coordinates, `scope.dim` of them.
    pub x: &'a [f64],
    /// The time (ignored when the expression does not read `t`).
    pub t: f64,
    /// The solution value (ignored when the expression does not read `u`).
    pub u: f64,
    /// The terms' values, indexed like `scope.terms`.
    pub terms: &'a [f64],
    /// The parameters' values, indexed like `scope.params`; a scalar is a one-element vector.
    pub params: &'a [Vec<f64>],
}

/// Everything an expression may read along a curve, for [`eval_series`]: each input is given by its
/// Taylor coefficients `c_0..=c_K` (`K = order`), e.g. `x_j(τ) = Σ_k x[j][k]·τ^k`.
#[derive(Clone, Copy, Debug)]
pub struct SeriesEnv<'a> {
    /// The scope the expression was checked against.
    pub scope: &'a Scope,
    /// The truncation order `K`; every series has `K + 1` coefficients.
    pub order: usize,
    /// One series per coordinate (`scope.dim` of them).
    pub x: &'a [Vec<f64>],
    /// The series of `t` (may be empty when the expression does not read `t`).
    pub t: &'a [f64],
    /// The series of `u` (may be empty when the expression does not read `u`).
    pub u: &'a [f64],
    /// The terms' series, indexed like `scope.terms` (may be empty when none is read).
    pub terms: &'a [Vec<f64>],
    /// The parameters' values (constants along the curve), indexed like `scope.params`.
    pub params: &'a [Vec<f64>],
}

/// A curve that moves only a few coordinates away from a base point, for [`eval_series_sparse`]:
/// `x_j(τ) = x0[j] + Σ_{(j, k, c) ∈ slots} c·τ^k`.
#[derive(Clone, Copy, Debug)]
pub struct SparseSeriesEnv<'a> {
    /// The scope the expression was checked against.
    pub scope: &'a Scope,
    /// The truncation order `K`.
    pub order: usize,
    /// The base point, `scope.dim` coordinates.
    pub x0: &'a [f64],
    /// `(coordinate j, slot k ∈ 1..=K, Taylor coefficient)`: the curve's non-zero higher
    /// coefficients. A coordinate may appear in several slots; entries for the same slot add up.
    pub slots: &'a [(usize, usize, f64)],
    /// The series of `t` (may be empty when the expression does not read `t`).
    pub t: &'a [f64],
    /// The series of `u` (may be empty when the expression does not read `u`).
    pub u: &'a [f64],
    /// The terms' series, indexed like `scope.terms`.
    pub terms: &'a [Vec<f64>],
    /// The parameters' values, indexed like `scope.params`.
    pub params: &'a [Vec<f64>],
}

/// The integer `n` when `exponent` is a constant integer (`3`, `-2`, or `-(2)`), which makes
/// `a ^ exponent` a power by repeated products rather than `exp(n·ln a)` (any number of
/// negations of an integer constant count). Every evaluator here uses this one test; whatever
/// compiles expressions must use it too, or `x^100` at `x < 0` means `powi` in one place and NaN
/// in the other.
pub fn integer_exponent(exponent: &Expr) -> Option<i32> {
    match &exponent.kind {
        ExprKind::Const(c) => {
            let fits = c.fract() == 0.0 && c.abs() <= f64::from(i32::MAX);
            fits.then_some(*c as i32)
        }
        ExprKind::Neg(inner) => integer_exponent(inner).map(|n| -n),
        _ => None,
    }
}

/// `a^n` by binary powering, the same products (in the same order) as the series rule
/// [`Unary::Powi`], so that its value equals that rule's constant coefficient exactly.
pub fn powi(a: f64, n: i32) -> f64 {
    let mut result = 1.0;
    let mut base = a;
    let mut e = n.unsigned_abs();
    while e > 0 {
        if e & 1 == 1 {
            result *= base;
        }
        e >>= 1;
        if e > 0 {
            base *= base;
        }
    }
    if n < 0 {
        1.0 / result
    } else {
        result
    }
}

/// A function of one argument in f64.
pub fn apply_func(f: Func, a: f64) -> f64 {
    match f {
        Func::Exp => a.exp(),
        Func::Log => a.ln(),
        Func::Sin => a.sin(),
        Func::Cos => a.cos(),
        Func::Tanh => a.tanh(),
        Func::Atan => a.atan(),
        Func::Sqrt => a.sqrt(),
        Func::Abs => a.abs(),
    }
}

/// A binary operator in f64, with `Pow` taking the integer rule when `int_exponent` is given.
pub fn apply_binary(op: BinOp, a: f64, b: f64, int_exponent: Option<i32>) -> f64 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Pow => match int_exponent {
            Some(n) => powi(a, n),
            None => (b * a.ln()).exp(),
        },
        BinOp::Min => {
            if takes_second(BinOp::Min, a, b) {
                b
            } else {
                a
            }
        }
        BinOp::Max => {
            if takes_second(BinOp::Max, a, b) {
                b
            } else {
                a
            }
        }
    }
}

/// Whether `min`/`max` of primals `a`, `b` selects `b`: only when `b` wins strictly (ties, and a
/// NaN `b`, take `a`).
fn takes_second(op: BinOp, a: f64, b: f64) -> bool {
    match op {
        BinOp::Min => b < a,
        _ => b > a,
    }
}

/// The position of term `name` in the scope.
#[track_caller]
fn term_position(scope: &Scope, name: &str) -> usize {
    match scope.terms.iter().position(|t| t == name) {
        Some(p) => p,
        None => panic!(
            "term `{name}` is not in the scope (terms: {:?}); check the expression first",
            scope.terms
        ),
    }
}

/// The position of parameter `name` in the scope.
#[track_caller]
fn param_position(scope: &Scope, name: &str) -> usize {
    match scope.params.iter().position(|(p, _)| p == name) {
        Some(p) => p,
        None => panic!(
            "parameter `{name}` is not in the scope (parameters: {:?}); check the expression first",
            scope.params.iter().map(|(p, _)| p).collect::<Vec<_>>()
        ),
    }
}

/// The element an index names, given the enclosing reduction's variable (if any).
#[track_caller]
fn resolve_index(index: &Index, window: Option<i64>, dim: usize) -> i64 {
    match (index, window) {
        (Index::Fixed(d), _) => d.at(dim),
        (Index::Window(k), Some(i)) => i + k,
        (Index::Window(k), None) => {
            panic!("window read [i{k:+}] outside a reduction; check the expression first")
        }
    }
}

/// `index` resolved and checked against a length.
#[track_caller]
fn checked(index: i64, len: usize, what: &str) -> usize {
    match usize::try_from(index) {
        Ok(i) if i < len => i,
        _ => panic!("{what}[{index}] is out of range 0..{len}; check the expression first"),
    }
}

/// The value of parameter `name` (element `index`, if an array).
#[track_caller]
fn param_value(
    scope: &Scope,
    params: &[Vec<f64>],
    name: &str,
    index: Option<&Index>,
    window: Option<i64>,
) -> f64 {
    let pos = param_position(scope, name);
    let values = match params.get(pos) {
        Some(v) => v,
        None => panic!(
            "{} parameter values given for {} parameters",
            params.len(),
            scope.params.len()
        ),
    };
    match index {
        None => {
            assert!(
                values.len() == 1,
                "parameter `{name}` is read as a scalar but has {} values",
                values.len()
            );
            values[0]
        }
        Some(idx) => values[checked(resolve_index(idx, window, scope.dim), values.len(), name)],
    }
}

/// The range `[lo, hi)` of a reduction at the scope's dimension (empty when `hi ≤ lo`).
fn reduce_range(lo: &super::DimExpr, hi: &super::DimExpr, dim: usize) -> std::ops::Range<i64> {
    let (lo, hi) = (lo.at(dim), hi.at(dim));
    lo..hi.max(lo)
}

/// Evaluates `expr` at one point.
///
/// # Panics
/// If `expr` names something not in `env.scope`, reads outside an array, nests reductions, or an
/// input has the wrong length (`x.len() != scope.dim`, fewer term or parameter values than names).
#[track_caller]
pub fn eval(expr: &Expr, env: &Env) -> f64 {
    assert_eq!(
        env.x.len(),
        env.scope.dim,
        "the point has {} coordinates, the scope has dim {}",
        env.x.len(),
        env.scope.dim
    );
    eval_at(expr, env, None)
}

#[track_caller]
fn eval_at(e: &Expr, env: &Env, window: Option<i64>) -> f64 {
    let dim = env.scope.dim;
    match &e.kind {
        ExprKind::Const(c) => *c,
        ExprKind::Dim => dim as f64,
        ExprKind::Coord(idx) => env.x[checked(resolve_index(idx, window, dim), dim, "x")],
        ExprKind::Time => env.t,
        ExprKind::Solution => env.u,
        ExprKind::Term(name) => {
            let p = term_position(env.scope, name);
            match env.terms.get(p) {
                Some(v) => *v,
                None => panic!("no value given for term `{name}`"),
            }
        }
        ExprKind::Param { name, index } => {
            param_value(env.scope, env.params, name, index.as_ref(), window)
        }
        ExprKind::Call(f, a) => apply_func(*f, eval_at(a, env, window)),
        ExprKind::Neg(a) => -eval_at(a, env, window),
        ExprKind::Binary(op, a, b) => {
            let int = if *op == BinOp::Pow {
                integer_exponent(b)
            } else {
                None
            };
            let va = eval_at(a, env, window);
            let vb = if int.is_some() {
                0.0
            } else {
                eval_at(b, env, window)
            };
            apply_binary(*op, va, vb, int)
        }
        ExprKind::Reduce {
            kind, lo, hi, body, ..
        } => {
            assert!(window.is_none(), "reductions do not nest");
            let range = reduce_range(lo, hi, dim);
            match kind {
                ReduceKind::Sum => {
                    let mut acc = 0.0;
                    for i in range {
                        acc += eval_at(body, env, Some(i));
                    }
                    acc
                }
                ReduceKind::Max => {
                    let mut best = f64::NEG_INFINITY;
                    for i in range {
                        let v = eval_at(body, env, Some(i));
                        if v > best {
                            best = v;
                        }
                    }
                    best
                }
            }
        }
    }
}

/// Where the coordinate series of a series evaluation come from.
#[derive(Clone, Copy)]
enum Coords<'a> {
    /// One full series per coordinate.
    Dense(&'a [Vec<f64>]),
    /// A base point and a few non-zero higher coefficients.
    Sparse {
        x0: &'a [f64],
        slots: &'a [(usize, usize, f64)],
    },
}

/// The state of one series evaluation.
struct SeriesEval<'a> {
    scope: &'a Scope,
    /// `K + 1`.
    len: usize,
    coords: Coords<'a>,
    t: &'a [f64],
    u: &'a [f64],
    terms: &'a [Vec<f64>],
    params: &'a [Vec<f64>],
    /// The primal inputs, for the reductions' primal passes (sparse mode only).
    primal_terms: Vec<f64>,
}

/// Panics unless `s` is a series of length `len`.
#[track_caller]
fn series_input<'s>(s: &'s [f64], len: usize, what: &str) -> &'s [f64] {
    assert!(
        s.len() == len,
        "the series of {what} has {} coefficients, expected order + 1 = {len}",
        s.len()
    );
    s
}

impl SeriesEval<'_> {
    #[track_caller]
    fn coord(&self, j: usize) -> Vec<f64> {
        match self.coords {
            Coords::Dense(x) => series_input(&x[j], self.len, &format!("x[{j}]")).to_vec(),
            Coords::Sparse { x0, slots } => {
                let mut s = series::constant(x0[j], self.len);
                for &(c, k, v) in slots {
                    if c == j {
                        s[k] += v;
                    }
                }
                s
            }
        }
    }

    #[track_caller]
    fn eval(&self, e: &Expr, window: Option<i64>) -> Vec<f64> {
        let n = self.len;
        let dim = self.scope.dim;
        match &e.kind {
            ExprKind::Const(c) => series::constant(*c, n),
            ExprKind::Dim => series::constant(dim as f64, n),
            ExprKind::Coord(idx) => self.coord(checked(resolve_index(idx, window, dim), dim, "x")),
            ExprKind::Time => series_input(self.t, n, "t").to_vec(),
            ExprKind::Solution => series_input(self.u, n, "u").to_vec(),
            ExprKind::Term(name) => {
                let p = term_position(self.scope, name);
                match self.terms.get(p) {
                    Some(s) => series_input(s, n, name).to_vec(),
                    None => panic!("no series given for term `{name}`"),
                }
            }
            ExprKind::Param { name, index } => series::constant(
                param_value(self.scope, self.params, name, index.as_ref(), window),
                n,
            ),
            ExprKind::Call(f, a) => func_series(*f, &self.eval(a, window)),
            ExprKind::Neg(a) => series::unary(Unary::Neg, &self.eval(a, window)),
            ExprKind::Binary(op, a, b) => {
                let sa = self.eval(a, window);
                if *op == BinOp::Pow {
                    if let Some(p) = integer_exponent(b) {
                        return series::unary(Unary::Powi(p), &sa);
                    }
                }
                binary_series(*op, &sa, &self.eval(b, window))
            }
            ExprKind::Reduce {
                kind, lo, hi, body, ..
            } => {
                assert!(window.is_none(), "reductions do not nest");
                let range = reduce_range(lo, hi, dim);
                match self.coords {
                    Coords::Sparse { x0, slots } if !self.moves_everywhere(body) => {
                        self.sparse_reduce(*kind, range, body, x0, slots)
                    }
                    _ => self.dense_reduce(*kind, range, body),
                }
            }
        }
    }

    /// Every window's series, summed or the argmax's.
    fn dense_reduce(&self, kind: ReduceKind, range: std::ops::Range<i64>, body: &Expr) -> Vec<f64> {
        let n = self.len;
        match kind {
            ReduceKind::Sum => {
                let mut acc = vec![0.0; n];
                for i in range {
                    let s = self.eval(body, Some(i));
                    for k in 0..n {
                        acc[k] += s[k];
                    }
                }
                acc
            }
            ReduceKind::Max => {
                let mut best = series::constant(f64::NEG_INFINITY, n);
                for i in range {
                    let s = self.eval(body, Some(i));
                    if s[0] > best[0] {
                        best = s;
                    }
                }
                best
            }
        }
    }

    /// The primal of every window once (f64), then the series of only the windows that read a
    /// moving coordinate: their higher coefficients are the only non-zero ones.
    fn sparse_reduce(
        &self,
        kind: ReduceKind,
        range: std::ops::Range<i64>,
        body: &Expr,
        x0: &[f64],
        slots: &[(usize, usize, f64)],
    ) -> Vec<f64> {
        let n = self.len;
        let env = Env {
            scope: self.scope,
            x: x0,
            t: self.t.first().copied().unwrap_or(0.0),
            u: self.u.first().copied().unwrap_or(0.0),
            terms: &self.primal_terms,
            params: self.params,
        };
        match kind {
            ReduceKind::Sum => {
                let mut primal = 0.0;
                for i in range.clone() {
                    primal += eval_at(body, &env, Some(i));
                }
                let mut out = series::constant(primal, n);
                let offsets = window_offsets(body);
                let touched: BTreeSet<i64> = slots
                    .iter()
                    .flat_map(|&(j, _, _)| offsets.iter().map(move |k| j as i64 - k))
                    .filter(|i| range.contains(i))
                    .collect();
                for i in touched {
                    let s = self.eval(body, Some(i));
                    for k in 1..n {
                        out[k] += s[k];
                    }
                }
                out
            }
            ReduceKind::Max => {
                let mut best = None;
                let mut best_value = f64::NEG_INFINITY;
                for i in range {
                    let v = eval_at(body, &env, Some(i));
                    if v > best_value {
                        best_value = v;
                        best = Some(i);
                    }
                }
                match best {
                    Some(i) => self.eval(body, Some(i)),
                    None => series::constant(f64::NEG_INFINITY, n),
                }
            }
        }
    }

    /// Whether `body` reads an input that moves in every window (the time, the solution, a term
    /// or a moving fixed coordinate), so that no window can be skipped.
    fn moves_everywhere(&self, body: &Expr) -> bool {
        let moving = |s: &[f64]| s.iter().skip(1).any(|&c| c != 0.0);
        let mut found = false;
        visit(body, &mut |e| match &e.kind {
            ExprKind::Time => found |= moving(self.t),
            ExprKind::Solution => found |= moving(self.u),
            ExprKind::Term(name) => {
                let p = term_position(self.scope, name);
                found |= self.terms.get(p).is_some_and(|s| moving(s));
            }
            ExprKind::Coord(Index::Fixed(d)) => {
                if let Coords::Sparse { slots, .. } = self.coords {
                    let j = d.at(self.scope.dim);
                    found |= slots.iter().any(|&(c, _, _)| c as i64 == j);
                }
            }
            _ => {}
        });
        found
    }
}

/// Calls `f` on every node of `e`, parents first.
pub(crate) fn visit(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Call(_, a) | ExprKind::Neg(a) => visit(a, f),
        ExprKind::Binary(_, a, b) => {
            visit(a, f);
            visit(b, f);
        }
        ExprKind::Reduce { body, .. } => visit(body, f),
        _ => {}
    }
}

/// The offsets `k` of the coordinate reads `x[i+k]` in a reduction body.
pub(crate) fn window_offsets(body: &Expr) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    visit(body, &mut |e| {
        if let ExprKind::Coord(Index::Window(k)) = e.kind {
            out.insert(k);
        }
    });
    out
}

/// The series of `f(a)`.
fn func_series(f: Func, a: &[f64]) -> Vec<f64> {
    match f {
        Func::Exp => series::unary(Unary::Exp, a),
        Func::Log => series::unary(Unary::Log, a),
        Func::Sin => series::unary(Unary::Sin, a),
        Func::Cos => series::unary(Unary::Cos, a),
        Func::Tanh => series::unary(Unary::Tanh, a),
        Func::Sqrt => series::unary(Unary::Sqrt, a),
        Func::Atan => atan_series(a),
        Func::Abs => {
            let mut out = if a[0] < 0.0 {
                series::unary(Unary::Neg, a)
            } else {
                a.to_vec()
            };
            out[0] = a[0].abs();
            out
        }
    }
}

/// `atan(a(τ))`: integrates `b' = a'/(1 + a²)` coefficient by coefficient,
/// `k·b_k = Σ_{j=1..k} j·a_j·d_{k−j}` with `d` the series of `1/(1 + a²)`.
fn atan_series(a: &[f64]) -> Vec<f64> {
    let n = a.len();
    let mut one_plus_sq = series::unary(Unary::Square, a);
    one_plus_sq[0] += 1.0;
    let mut d = vec![0.0; n];
    series::div(&series::constant(1.0, n), &one_plus_sq, &mut d);
    let mut out = vec![0.0; n];
    out[0] = a[0].atan();
    for k in 1..n {
        let mut acc = 0.0;
        for j in 1..=k {
            acc += j as f64 * a[j] * d[k - j];
        }
        out[k] = acc / k as f64;
    }
    out
}

/// The series of `a op b` (a `Pow` here is the general `exp(b·ln a)`).
fn binary_series(op: BinOp, a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    match op {
        BinOp::Add => series::add(a, b, &mut out),
        BinOp::Sub => series::sub(a, b, &mut out),
        BinOp::Mul => series::mul(a, b, &mut out),
        BinOp::Div => series::div(a, b, &mut out),
        BinOp::Pow => {
            let log_a = series::unary(Unary::Log, a);
            series::mul(b, &log_a, &mut out);
            return series::unary(Unary::Exp, &out);
        }
        BinOp::Min | BinOp::Max => {
            return if takes_second(op, a[0], b[0]) {
                b.to_vec()
            } else {
                a.to_vec()
            };
        }
    }
    out
}

/// The Taylor coefficients `c_0..=c_K` of `expr` along the curve of `env`.
///
/// # Panics
/// As [`eval`], and if an input series read has a length other than `order + 1` or
/// `x.len() != scope.dim`.
#[track_caller]
pub fn eval_series(expr: &Expr, env: &SeriesEnv) -> Vec<f64> {
    assert_eq!(
        env.x.len(),
        env.scope.dim,
        "{} coordinate series for dim {}",
        env.x.len(),
        env.scope.dim
    );
    let ev = SeriesEval {
        scope: env.scope,
        len: env.order + 1,
        coords: Coords::Dense(env.x),
        t: env.t,
        u: env.u,
        terms: env.terms,
        params: env.params,
        primal_terms: Vec::new(),
    };
    ev.eval(expr, None)
}

/// [`eval_series`] for a curve that moves only the coordinates named in `env.slots`: each
/// reduction's primal is computed once in f64 (`O(range)`), and only the windows that read a moving
/// coordinate are evaluated as series (`O(window)` per slot). A reduction whose body reads a moving
/// time, solution, term or fixed coordinate moves in every window and is evaluated in full.
/// Agrees with [`eval_series`] on the equivalent dense curve up to rounding.
///
/// # Panics
/// As [`eval_series`], and if a slot names a coordinate `≥ dim` or a slot outside `1..=order`.
#[track_caller]
pub fn eval_series_sparse(expr: &Expr, env: &SparseSeriesEnv) -> Vec<f64> {
    let dim = env.scope.dim;
    assert_eq!(
        env.x0.len(),
        dim,
        "the base point has {} coordinates, the scope has dim {dim}",
        env.x0.len()
    );
    for &(j, k, _) in env.slots {
        assert!(j < dim, "slot coordinate {j} is out of range 0..{dim}");
        assert!(
            (1..=env.order).contains(&k),
            "slot {k} is out of range 1..={}",
            env.order
        );
    }
    let ev = SeriesEval {
        scope: env.scope,
        len: env.order + 1,
        coords: Coords::Sparse {
            x0: env.x0,
            slots: env.slots,
        },
        t: env.t,
        u: env.u,
        terms: env.terms,
        params: env.params,
        primal_terms: env
            .terms
            .iter()
            .map(|s| s.first().copied().unwrap_or(0.0))
            .collect(),
    };
    ev.eval(expr, None)
}
