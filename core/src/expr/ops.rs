//! Symbolic differential operators on problem expressions (Laplacian, `∇a·∇b`, mixed partials,
//! diagonal derivatives, biharmonic, time and directional derivatives), so that a manufactured
//! forcing `g = L[u*]` is derived by core and never written by hand.
//!
//! # How reductions stay un-unrolled
//!
//! The spatial operators work on *coordinate vectors*: the vector `(∂_j^m e)_{j<d}` of the `m`-th
//! pure partials of `e` along every coordinate, held as a few fixed components `(j, value)` plus a
//! few *windowed* pieces `scale · body(j)` for `j ∈ [lo, hi)`, where `body` is a reduction body
//! evaluated at window `j` and `scale` an expression outside any reduction. For a sum over windows
//! `Σ_i body(i)`, the pure partials are such pieces, one per window offset `k` the body reads
//! (`∂^m body/∂x[i+k]^m` shifted to window `j = i + k`), plus fixed components for coordinates the
//! body reads by a fixed index. Products and chains combine vectors componentwise (Leibniz and Faà di
//! Bruno): the product of two windowed pieces is one windowed piece over the intersection of their
//! ranges, so `∇(Σ body)·∇(Σ body')` is a handful of windowed sums even when the windows overlap,
//! without unrolling. An operator's value is then the sum of a vector's components: a windowed
//! piece becomes one reduction, and pieces whose ranges have the same length share it. So
//!
//! * `Δe = Σ_j ∂_j²e`, `Σ_j ∂_j^k e`, `∇a·∇b` and `Σ_j b_j ∂_j e` are `O(d)` to evaluate and their
//!   size does not depend on `d` (e.g. `Δ(φ·S) = φΔS + SΔφ + 2∇φ·∇S` for the paper's solutions);
//! * mixed partials with fixed coordinates touch only the windows containing those coordinates
//!   (finite expressions, via [`diff`]);
//! * the biharmonic is the Laplacian of the Laplacian.
//!
//! The results are valid at the `dim` they were derived for: ranges are intersected there (a
//! bound such as `max(0, d-5)` is resolved to the one that is larger at `dim`).
//!
//! # What is not derivable
//!
//! * `u` and the terms depend on `x` and `t` only implicitly: an expression reading them is
//!   rejected by every operator here ([`ExprErrorKind::NotDerivable`]).
//! * A `max` reduction whose body depends on the coordinates (see [`super::diff`]).
//! * `min`, `max` and `abs` are differentiated with the a.e. rule of [`super::diff`] (NaN at ties).

use super::diff::{
    add, call, derive, diff, diff_body_fixed, diff_window, fix_window, has_reduction, is_sign,
    is_zero, konst, mul, reduce_sum, shift_window, simplify, sub, substitute_term, zero, Target,
    Var,
};
use super::eval::{integer_exponent, visit, window_offsets};
use super::{BinOp, DimExpr, Expr, ExprError, ExprErrorKind, ExprKind, Func, Index, ReduceKind};
use crate::series::factorial;

/// The stand-in argument of a unary function whose derivatives are taken symbolically; no parsed
/// name can contain a NUL.
const ARG: &str = "\u{0}arg";

/// `Δe = Σ_j ∂²e/∂x_j²`, simplified.
///
/// # Errors
/// [`ExprErrorKind::NotDerivable`] if `e` reads `u` or a term, or has a `max` reduction over
/// coordinates; the checker's errors for a malformed expression.
pub fn laplacian(e: &Expr, dim: usize) -> Result<Expr, ExprError> {
    diagonal(e, 2, dim)
}

/// `Σ_j ∂^k e/∂x_j^k` (`d·e` for `k = 0`), simplified.
///
/// # Errors
/// As [`laplacian`].
pub fn diagonal(e: &Expr, k: usize, dim: usize) -> Result<Expr, ExprError> {
    reject_implicit(e)?;
    if k == 0 {
        return Ok(simplify(&mul(Expr::new(ExprKind::Dim), e.clone())));
    }
    let r = reps(e, k, dim)?;
    Ok(simplify(&total(&r[k], dim)))
}

/// `∇a·∇b = Σ_j ∂_j a·∂_j b`, simplified.
///
/// # Errors
/// As [`laplacian`], for either operand.
pub fn grad_dot(a: &Expr, b: &Expr, dim: usize) -> Result<Expr, ExprError> {
    reject_implicit(a)?;
    reject_implicit(b)?;
    let ra = reps(a, 1, dim)?;
    let rb = reps(b, 1, dim)?;
    Ok(simplify(&total(&hadamard(&ra[1], &rb[1], dim), dim)))
}

/// `Δ²e`, the Laplacian of the Laplacian, simplified.
///
/// # Errors
/// As [`laplacian`].
pub fn biharmonic(e: &Expr, dim: usize) -> Result<Expr, ExprError> {
    laplacian(&laplacian(e, dim)?, dim)
}

/// The mixed partial `∂^{q_1+…} e / ∂x_{j_1}^{q_1}…` for `orders = [(j_1, q_1), …]`, simplified.
/// Reductions contribute only the windows that contain the coordinates named.
///
/// # Errors
/// [`ExprErrorKind::NotDerivable`] for a coordinate `≥ dim`, and as [`laplacian`].
pub fn partial(e: &Expr, orders: &[(usize, u32)], dim: usize) -> Result<Expr, ExprError> {
    reject_implicit(e)?;
    let mut out = e.clone();
    for &(j, q) in orders {
        if j >= dim {
            return Err(not_derivable(format!(
                "∂/∂x[{j}] in dimension {dim} (coordinates are 0..{dim})"
            )));
        }
        for _ in 0..q {
            out = diff(&out, &Var::Coord(j), dim)?;
        }
    }
    Ok(out)
}

/// `∂e/∂t`, simplified.
///
/// # Errors
/// As [`laplacian`] (a `max` reduction whose body reads `t`).
pub fn time_derivative(e: &Expr) -> Result<Expr, ExprError> {
    reject_implicit(e)?;
    // No index is resolved for t, so the dimension is irrelevant.
    diff(e, &Var::Time, 0)
}

/// `½ tr(σσᵀ∇²e) = ½ Σ_j s_j² ∂²e/∂x_j²` for a diagonal `σ = diag(s)`, `s` a parameter array of
/// length `d` named `s_param`, simplified.
///
/// # Errors
/// As [`laplacian`].
pub fn sigma_trace(e: &Expr, s_param: &str, dim: usize) -> Result<Expr, ExprError> {
    reject_implicit(e)?;
    let r = reps(e, 2, dim)?;
    let s_i = Expr::new(ExprKind::Param {
        name: s_param.to_owned(),
        index: Some(Index::Window(0)),
    });
    let weight = CoordVec {
        fixed: Vec::new(),
        windows: vec![Window {
            lo: DimExpr::constant(0),
            hi: DimExpr::dim_plus(0),
            scale: konst(0.5),
            body: mul(s_i.clone(), s_i),
        }],
    };
    Ok(simplify(&total(&hadamard(&r[2], &weight, dim), dim)))
}

/// `Σ_j b_j ∂e/∂x_j` with `b` a parameter array of length `d` named `b_param`, simplified.
///
/// # Errors
/// As [`laplacian`].
pub fn directional(e: &Expr, b_param: &str, dim: usize) -> Result<Expr, ExprError> {
    reject_implicit(e)?;
    let r = reps(e, 1, dim)?;
    let b = CoordVec {
        fixed: Vec::new(),
        windows: vec![Window {
            lo: DimExpr::constant(0),
            hi: DimExpr::dim_plus(0),
            scale: konst(1.0),
            body: Expr::new(ExprKind::Param {
                name: b_param.to_owned(),
                index: Some(Index::Window(0)),
            }),
        }],
    };
    Ok(simplify(&total(&hadamard(&r[1], &b, dim), dim)))
}

fn not_derivable(why: String) -> ExprError {
    ExprError::new(super::Span::NONE, ExprErrorKind::NotDerivable(why))
}

/// Rejects expressions that read `u` or a term: their dependence on `x` and `t` is implicit.
fn reject_implicit(e: &Expr) -> Result<(), ExprError> {
    let mut bad = None;
    visit(e, &mut |n| {
        if bad.is_none() {
            match &n.kind {
                ExprKind::Solution => bad = Some((n.span, "`u`".to_owned())),
                ExprKind::Term(name) => bad = Some((n.span, format!("term `{name}`"))),
                _ => {}
            }
        }
    });
    match bad {
        None => Ok(()),
        Some((span, what)) => Err(ExprError::new(
            span,
            ExprErrorKind::NotDerivable(format!(
                "{what} depends on x and t only implicitly; differential operators apply to \
                 expressions of x, t and parameters"
            )),
        )),
    }
}

/// A windowed piece of a coordinate vector: component `j ∈ [lo, hi)` is `scale · body(j)`, with
/// `body` read as a reduction body at window `j` and `scale` free of window reads.
#[derive(Clone, Debug, PartialEq)]
struct Window {
    lo: DimExpr,
    hi: DimExpr,
    scale: Expr,
    body: Expr,
}

/// A vector over the coordinates: the sum of its fixed components and windowed pieces.
#[derive(Clone, Debug, Default, PartialEq)]
struct CoordVec {
    fixed: Vec<(usize, Expr)>,
    windows: Vec<Window>,
}

impl CoordVec {
    fn is_empty(&self) -> bool {
        self.fixed.is_empty() && self.windows.is_empty()
    }

    /// `s · self` (`s` free of window reads).
    fn scaled(&self, s: &Expr) -> CoordVec {
        if is_zero(s) {
            return CoordVec::default();
        }
        CoordVec {
            fixed: self
                .fixed
                .iter()
                .map(|(j, v)| (*j, mul(s.clone(), v.clone())))
                .collect(),
            windows: self
                .windows
                .iter()
                .map(|w| Window {
                    scale: mul(s.clone(), w.scale.clone()),
                    ..w.clone()
                })
                .collect(),
        }
    }

    fn negated(&self) -> CoordVec {
        self.scaled(&konst(-1.0))
    }

    /// `self + other`, merging pieces that share a coordinate, or a range and a scale or body.
    fn plus(mut self, other: CoordVec) -> CoordVec {
        for (j, v) in other.fixed {
            match self.fixed.iter_mut().find(|(i, _)| *i == j) {
                Some((_, acc)) => *acc = add(acc.clone(), v),
                None => self.fixed.push((j, v)),
            }
        }
        for w in other.windows {
            let same_range = |x: &Window| x.lo == w.lo && x.hi == w.hi;
            if let Some(x) = self
                .windows
                .iter_mut()
                .find(|x| same_range(x) && x.scale == w.scale)
            {
                x.body = add(x.body.clone(), w.body);
            } else if let Some(x) = self
                .windows
                .iter_mut()
                .find(|x| same_range(x) && x.body == w.body)
            {
                x.scale = add(x.scale.clone(), w.scale);
            } else {
                self.windows.push(w);
            }
        }
        self.fixed.retain(|(_, v)| !is_zero(v));
        self.windows
            .retain(|w| !is_zero(&w.scale) && !is_zero(&w.body));
        self
    }
}

/// The larger of two bounds at `dim` (the symbolic form is kept when both move with `d` alike).
fn bound_max(a: DimExpr, b: DimExpr, dim: usize) -> DimExpr {
    let a_wins = if a.with_dim == b.with_dim {
        a.offset >= b.offset
    } else {
        a.at(dim) >= b.at(dim)
    };
    if a_wins {
        a
    } else {
        b
    }
}

/// The smaller of two bounds at `dim`.
fn bound_min(a: DimExpr, b: DimExpr, dim: usize) -> DimExpr {
    if bound_max(a, b, dim) == a {
        b
    } else {
        a
    }
}

fn contains(lo: DimExpr, hi: DimExpr, j: i64, dim: usize) -> bool {
    (lo.at(dim)..hi.at(dim)).contains(&j)
}

/// The componentwise product of two coordinate vectors.
fn hadamard(a: &CoordVec, b: &CoordVec, dim: usize) -> CoordVec {
    let mut out = CoordVec::default();
    for (j, va) in &a.fixed {
        for (i, vb) in &b.fixed {
            if i == j {
                out.fixed.push((*j, mul(va.clone(), vb.clone())));
            }
        }
        for w in &b.windows {
            if let Some(v) = window_at(w, *j, dim) {
                out.fixed.push((*j, mul(va.clone(), v)));
            }
        }
    }
    for (j, vb) in &b.fixed {
        for w in &a.windows {
            if let Some(v) = window_at(w, *j, dim) {
                out.fixed.push((*j, mul(v, vb.clone())));
            }
        }
    }
    for wa in &a.windows {
        for wb in &b.windows {
            let lo = bound_max(wa.lo, wb.lo, dim);
            let hi = bound_min(wa.hi, wb.hi, dim);
            if hi.at(dim) > lo.at(dim) {
                out.windows.push(Window {
                    lo,
                    hi,
                    scale: mul(wa.scale.clone(), wb.scale.clone()),
                    body: mul(wa.body.clone(), wb.body.clone()),
                });
            }
        }
    }
    CoordVec::default().plus(out)
}

/// Component `j` of a windowed piece, if `j` is in its range.
fn window_at(w: &Window, j: usize, dim: usize) -> Option<Expr> {
    contains(w.lo, w.hi, j as i64, dim).then(|| mul(w.scale.clone(), fix_window(&w.body, j as i64)))
}

/// `Σ_j v_j` as an expression: fixed components added, windowed pieces turned into reductions.
/// Pieces whose ranges have the same length are shifted onto one range and share a reduction:
/// those with a reduction-free scale inside its body, the others grouped by equal scale outside.
fn total(v: &CoordVec, dim: usize) -> Expr {
    let mut out = zero();
    for (_, val) in &v.fixed {
        out = add(out, val.clone());
    }
    struct Group {
        lo: DimExpr,
        hi: DimExpr,
        inner: Expr,
        outer: Vec<(Expr, Expr)>,
    }
    let mut groups: Vec<Group> = Vec::new();
    for w in &v.windows {
        if w.hi.at(dim) <= w.lo.at(dim) {
            continue;
        }
        let aligned = |g: &Group| {
            g.lo.with_dim == w.lo.with_dim
                && g.hi.with_dim == w.hi.with_dim
                && g.hi.offset - g.lo.offset == w.hi.offset - w.lo.offset
        };
        let g = match groups.iter().position(aligned) {
            Some(p) => &mut groups[p],
            None => {
                groups.push(Group {
                    lo: w.lo,
                    hi: w.hi,
                    inner: zero(),
                    outer: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        // Σ_{j∈[lo,hi)} body(j) = Σ_{i∈[g.lo, g.hi)} body(i + delta).
        let body = shift_window(&w.body, w.lo.offset - g.lo.offset);
        if has_reduction(&w.scale) {
            match g.outer.iter_mut().find(|(s, _)| *s == w.scale) {
                Some((_, acc)) => *acc = add(acc.clone(), body),
                None => g.outer.push((w.scale.clone(), body)),
            }
        } else {
            g.inner = add(g.inner.clone(), mul(w.scale.clone(), body));
        }
    }
    for g in groups {
        out = add(out, reduce_sum(g.lo, g.hi, g.inner));
        for (scale, body) in g.outer {
            out = add(out, mul(scale, reduce_sum(g.lo, g.hi, body)));
        }
    }
    out
}

/// `k + 1` empty vectors.
fn no_reps(k: usize) -> Vec<CoordVec> {
    vec![CoordVec::default(); k + 1]
}

/// `r[m]` is the vector `(∂_j^m e)_j` for `m = 1..=k` (`r[0]` is unused and empty).
fn reps(e: &Expr, k: usize, dim: usize) -> Result<Vec<CoordVec>, ExprError> {
    Ok(match &e.kind {
        ExprKind::Const(_) | ExprKind::Dim | ExprKind::Param { .. } | ExprKind::Time => no_reps(k),
        ExprKind::Solution | ExprKind::Term(_) => {
            // reject_implicit runs first; kept for callers inside this module.
            return Err(not_derivable("u or a term inside an operator".to_owned()));
        }
        ExprKind::Coord(Index::Fixed(d)) => {
            let j = coord_index(d.at(dim), dim, e)?;
            let mut r = no_reps(k);
            if k >= 1 {
                r[1].fixed.push((j, konst(1.0)));
            }
            r
        }
        ExprKind::Coord(Index::Window(w)) => {
            return Err(ExprError::new(
                e.span,
                ExprErrorKind::WindowOutsideReduction(format!("x[i{w:+}]")),
            ))
        }
        ExprKind::Neg(a) => reps(a, k, dim)?.iter().map(CoordVec::negated).collect(),
        ExprKind::Call(f, a) => {
            let arg = Expr::new(ExprKind::Term(ARG.to_owned()));
            chain(&Expr::new(ExprKind::Call(*f, Box::new(arg))), a, k, dim)?
        }
        ExprKind::Binary(op, a, b) => match op {
            BinOp::Add | BinOp::Sub => {
                let ra = reps(a, k, dim)?;
                let rb = reps(b, k, dim)?;
                ra.into_iter()
                    .zip(rb)
                    .map(|(x, y)| {
                        let y = if *op == BinOp::Sub { y.negated() } else { y };
                        x.plus(y)
                    })
                    .collect()
            }
            BinOp::Mul => product(a, &reps(a, k, dim)?, b, &reps(b, k, dim)?, k, dim),
            BinOp::Div => {
                if is_sign(e) {
                    return Ok(no_reps(k));
                }
                // a / b = a · (1/b).
                let arg = Expr::new(ExprKind::Term(ARG.to_owned()));
                let recip = Expr::new(ExprKind::Binary(
                    BinOp::Div,
                    Box::new(konst(1.0)),
                    Box::new(arg),
                ));
                let rb = chain(&recip, b, k, dim)?;
                let inv_b = super::diff::div(konst(1.0), (**b).clone());
                product(a, &reps(a, k, dim)?, &inv_b, &rb, k, dim)
            }
            BinOp::Pow => {
                let rb = reps(b, k, dim)?;
                if integer_exponent(b).is_some() || rb.iter().all(CoordVec::is_empty) {
                    let arg = Expr::new(ExprKind::Term(ARG.to_owned()));
                    let h = Expr::new(ExprKind::Binary(BinOp::Pow, Box::new(arg), b.clone()));
                    chain(&h, a, k, dim)?
                } else {
                    // a^b = exp(b·ln a) when the exponent moves too.
                    let log_a = call(Func::Log, (**a).clone());
                    let inner = Expr::new(ExprKind::Binary(BinOp::Mul, b.clone(), Box::new(log_a)));
                    reps(
                        &Expr::new(ExprKind::Call(Func::Exp, Box::new(inner))),
                        k,
                        dim,
                    )?
                }
            }
            BinOp::Min | BinOp::Max => {
                // min(a, b) = (a + b − |a − b|)/2, max(a, b) = (a + b + |a − b|)/2 (derivatives
                // only; the values come from the original nodes).
                let gap = call(Func::Abs, sub((**a).clone(), (**b).clone()));
                let both = add((**a).clone(), (**b).clone());
                let twice = if *op == BinOp::Min {
                    sub(both, gap)
                } else {
                    add(both, gap)
                };
                let half = Expr::new(ExprKind::Binary(
                    BinOp::Mul,
                    Box::new(konst(0.5)),
                    Box::new(twice),
                ));
                reps(&half, k, dim)?
            }
        },
        ExprKind::Reduce {
            kind, lo, hi, body, ..
        } => sum_reps(*kind, *lo, *hi, body, k, dim, e)?,
    })
}

/// A fixed coordinate index, checked against the dimension.
fn coord_index(j: i64, dim: usize, at: &Expr) -> Result<usize, ExprError> {
    usize::try_from(j).ok().filter(|&j| j < dim).ok_or_else(|| {
        ExprError::new(
            at.span,
            ExprErrorKind::WindowOutOfRange(format!("x[{j}] in dimension {dim}")),
        )
    })
}

/// Leibniz: `∂_j^m (a·b) = Σ_l C(m,l) ∂_j^l a · ∂_j^{m−l} b`.
fn product(
    a: &Expr,
    ra: &[CoordVec],
    b: &Expr,
    rb: &[CoordVec],
    k: usize,
    dim: usize,
) -> Vec<CoordVec> {
    let mut out = no_reps(k);
    for m in 1..=k {
        let mut acc = rb[m].scaled(a).plus(ra[m].scaled(b));
        for l in 1..m {
            let c = binomial(m, l);
            acc = acc.plus(hadamard(&ra[l], &rb[m - l], dim).scaled(&konst(c)));
        }
        out[m] = acc;
    }
    out
}

fn binomial(m: usize, l: usize) -> f64 {
    factorial(m) / (factorial(l) * factorial(m - l))
}

/// Faà di Bruno: `∂_j^m h(a) = Σ_n h^{(n)}(a) · B_{m,n}(∂_j a, ∂_j² a, …)`, with `h` written in the
/// placeholder [`ARG`] and its derivatives `h^{(n)}` derived symbolically.
fn chain(h: &Expr, a: &Expr, k: usize, dim: usize) -> Result<Vec<CoordVec>, ExprError> {
    let ra = reps(a, k, dim)?;
    let mut out = no_reps(k);
    if ra.iter().all(CoordVec::is_empty) {
        return Ok(out);
    }
    let mut derivs = Vec::with_capacity(k);
    let mut hn = h.clone();
    for _ in 0..k {
        hn = simplify(&derive(&hn, Target::Term(ARG), false)?);
        derivs.push(simplify(&substitute_term(&hn, ARG, a)));
    }
    for m in 1..=k {
        let mut acc = CoordVec::default();
        for n in 1..=m {
            let hder = &derivs[n - 1];
            if is_zero(hder) {
                continue;
            }
            for parts in partitions(m, n) {
                let mut prod = ra[parts[0]].clone();
                for &s in &parts[1..] {
                    if prod.is_empty() {
                        break;
                    }
                    prod = hadamard(&prod, &ra[s], dim);
                }
                if prod.is_empty() {
                    continue;
                }
                let coef = partition_count(m, &parts);
                acc = acc.plus(prod.scaled(&mul(konst(coef), hder.clone())));
            }
        }
        out[m] = acc;
    }
    Ok(out)
}

/// The partitions of `m` into exactly `n` parts, each non-increasing.
fn partitions(m: usize, n: usize) -> Vec<Vec<usize>> {
    fn rec(rest: usize, n: usize, max: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if n == 0 {
            if rest == 0 {
                out.push(cur.clone());
            }
            return;
        }
        for s in (1..=max.min(rest)).rev() {
            // The remaining n − 1 parts need at least n − 1 more.
            if rest - s < n - 1 {
                continue;
            }
            cur.push(s);
            rec(rest - s, n - 1, s, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(m, n, m, &mut Vec::new(), &mut out);
    out
}

/// The number of set partitions of `m` labelled items into blocks of the given sizes:
/// `m! / Π_s ((s!)^{p_s} p_s!)`.
fn partition_count(m: usize, parts: &[usize]) -> f64 {
    let mut den = 1.0;
    let mut i = 0;
    while i < parts.len() {
        let s = parts[i];
        let p = parts[i..].iter().take_while(|&&x| x == s).count();
        den *= factorial(s).powi(p as i32) * factorial(p);
        i += p;
    }
    factorial(m) / den
}

/// The coordinate vectors of a reduction. For a sum, with `w_k = x[i+k]` the window reads and
/// `z_f = x_f` the fixed reads of the body, component `j` of `∂^m` is
/// `Σ_i (Σ_k [i+k=j] ∂_{w_k} + [f=j] ∂_{z_f})^m body(i)`; at most one `k` matches per window, so it
/// is the windowed piece `∂^m_{w_k} body(j−k)` per offset, plus for a fixed-read coordinate `f` the
/// reduction `Σ_i ∂^m_{z_f} body(i)` and the mixed terms of the windows containing `f`.
fn sum_reps(
    kind: ReduceKind,
    lo: DimExpr,
    hi: DimExpr,
    body: &Expr,
    k: usize,
    dim: usize,
    at: &Expr,
) -> Result<Vec<CoordVec>, ExprError> {
    let offsets = window_offsets(body);
    let mut fixed = Vec::new();
    let mut bad = None;
    visit(body, &mut |n| {
        if let ExprKind::Coord(Index::Fixed(d)) = n.kind {
            match coord_index(d.at(dim), dim, n) {
                Ok(j) if !fixed.contains(&j) => fixed.push(j),
                Ok(_) => {}
                Err(e) => bad = Some(e),
            }
        }
    });
    if let Some(e) = bad {
        return Err(e);
    }
    let mut out = no_reps(k);
    // ∂^m_{w_kk} body for every offset, m = 0..=k.
    let mut window_derivs: Vec<(i64, Vec<Expr>)> = Vec::new();
    for &kk in &offsets {
        let mut ds = vec![body.clone()];
        for m in 1..=k {
            let next = diff_window(&ds[m - 1], kk)?;
            ds.push(next);
        }
        window_derivs.push((kk, ds));
    }
    let shift = |b: DimExpr, kk: i64| DimExpr {
        with_dim: b.with_dim,
        offset: b.offset + kk,
    };
    for (kk, ds) in &window_derivs {
        for m in 1..=k {
            if !is_zero(&ds[m]) {
                out[m].windows.push(Window {
                    lo: shift(lo, *kk),
                    hi: shift(hi, *kk),
                    scale: konst(1.0),
                    body: shift_window(&ds[m], -kk),
                });
            }
        }
    }
    for &f in &fixed {
        let mut dz = vec![body.clone()];
        for m in 1..=k {
            let next = diff_body_fixed(&dz[m - 1], f, dim)?;
            dz.push(next);
        }
        for m in 1..=k {
            let mut value = reduce_sum(lo, hi, dz[m].clone());
            for &kk in &offsets {
                let i = f as i64 - kk;
                if !contains(lo, hi, i, dim) {
                    continue;
                }
                for m1 in 1..m {
                    let mut d = dz[m - m1].clone();
                    for _ in 0..m1 {
                        d = diff_window(&d, kk)?;
                    }
                    let term = mul(konst(binomial(m, m1)), fix_window(&d, i));
                    value = add(value, term);
                }
            }
            if !is_zero(&value) {
                out[m].fixed.push((f, value));
            }
        }
    }
    if kind == ReduceKind::Max && out.iter().any(|v| !v.is_empty()) {
        return Err(ExprError::new(
            at.span,
            ExprErrorKind::NotDerivable(
                "a max reduction whose body depends on the coordinates (its derivatives are the \
                 maximising window's, which needs a select)"
                    .to_owned(),
            ),
        ));
    }
    // Normalise each vector (merges pieces that share a range).
    Ok(out
        .into_iter()
        .map(|v| CoordVec::default().plus(v))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_counts_match_bell_numbers() {
        // Σ over partitions of the set-partition counts is the Bell number.
        let bell = [1.0, 1.0, 2.0, 5.0, 15.0, 52.0, 203.0];
        for m in 1..=6 {
            let total: f64 = (1..=m)
                .flat_map(|n| partitions(m, n))
                .map(|p| partition_count(m, &p))
                .sum();
            assert_eq!(total, bell[m], "m = {m}");
        }
    }
}
