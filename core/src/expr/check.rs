//! Checking an expression against a [`Scope`]: bare names resolved to terms or parameters, the
//! type rules, time and solution availability, and every index and window inside its array at the
//! scope's dimension.

use super::ast::{DimExpr, Expr, ExprKind, Index, ReduceKind, Span};
use super::parse::MAX_HEIGHT;
use super::print::{dim_text, window_text};
use super::{ExprError, ExprErrorKind, ParamShape, Scope};

/// The largest magnitude of the constant part of an index or bound (the `k` in `x[k]`, `d-k`) or
/// of a window offset (the `k` in `x[i+k]`).
pub const MAX_INDEX: i64 = i32::MAX as i64;

/// Names that read like a differential operator; used undefined, they are reported as
/// [`ExprErrorKind::UndefinedTerm`] rather than as unknown names.
const OPERATOR_NAMES: [&str; 16] = [
    "lap",
    "laplacian",
    "laplace",
    "delta",
    "biharm",
    "biharmonic",
    "bilap",
    "ut",
    "utt",
    "dudt",
    "grad",
    "div",
    "hess",
    "hessian",
    "trace",
    "gradnorm",
];

/// Checks `expr` against `scope` and returns it with every bare name resolved: a name in
/// `scope.terms` becomes [`ExprKind::Term`], a scalar parameter becomes [`ExprKind::Param`]
/// without an index. Spans are kept.
///
/// The rules:
/// * every name is a term or a parameter of the scope; an unknown name is an
///   [`ExprErrorKind::UnknownName`] suggesting the nearest known name within two edits, or, when
///   no name is that near and it reads like an operator (`lap`, `biharm`, `u_t`, …), an
///   [`ExprErrorKind::UndefinedTerm`];
/// * `t` needs `scope.has_time`; `u` and terms need `scope.has_solution`;
/// * array parameters are indexed, scalar parameters and terms are not;
/// * window indices (`x[i+k]`, `c[i+k]`) appear only in a reduction body, and reductions do not
///   nest;
/// * at `d = scope.dim`, a fixed index lies inside its array, and for a non-empty range
///   `lo..hi` every window reads inside its array at both `i = lo` and `i = hi-1`;
/// * a `max` reduction has a non-empty range (an empty `sum` is 0);
/// * the constant parts of indices and bounds, and window offsets, stay within ±[`MAX_INDEX`],
///   and the tree is at most [`MAX_HEIGHT`] tall.
///
/// # Errors
/// The first rule broken, at the span of the offending node.
pub fn check(expr: &Expr, scope: &Scope) -> Result<Expr, ExprError> {
    let checker = Checker { scope };
    checker.validate(expr, None, 1).map_err(|e| *e)?;
    let mut resolved = expr.clone();
    checker.rename(&mut resolved);
    Ok(resolved)
}

struct Checker<'a> {
    scope: &'a Scope,
}

/// The reduction whose body is being checked.
struct Range<'a> {
    var: &'a str,
    lo: DimExpr,
    hi: DimExpr,
    lo_v: i128,
    hi_v: i128,
}

/// An array an index reads: `x` or an array parameter.
struct Array<'a> {
    name: &'a str,
    len: DimExpr,
    len_v: i128,
}

fn value(b: &DimExpr, dim: usize) -> i128 {
    if b.with_dim {
        dim as i128 + i128::from(b.offset)
    } else {
        i128::from(b.offset)
    }
}

fn shift(b: DimExpr, k: i64) -> DimExpr {
    DimExpr {
        with_dim: b.with_dim,
        offset: b.offset.saturating_add(k),
    }
}

fn looks_like_operator(name: &str) -> bool {
    OPERATOR_NAMES.contains(&name)
        || name.starts_with("u_")
        || name.starts_with("lap")
        || name.starts_with("biharm")
}

/// Optimal-string-alignment distance (insertions, deletions, substitutions, adjacent swaps).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        rows[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

impl Checker<'_> {
    fn err(span: Span, kind: ExprErrorKind) -> ExprError {
        ExprError::new(span, kind)
    }

    fn param(&self, name: &str) -> Option<&ParamShape> {
        self.scope
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    fn has_term(&self, name: &str) -> bool {
        self.scope.terms.iter().any(|t| t == name)
    }

    /// `"; did you mean `…`?"` for the nearest known name within two edits (and fewer edits than
    /// either name has characters, so `u_t` does not suggest `u`), or empty.
    fn hint(&self, name: &str, arrays_only: bool) -> String {
        let mut candidates: Vec<&str> = Vec::new();
        if !arrays_only {
            candidates.extend(self.scope.terms.iter().map(String::as_str));
            candidates.extend(["d", "pi"]);
            if self.scope.has_time {
                candidates.push("t");
            }
            if self.scope.has_solution {
                candidates.push("u");
            }
        }
        candidates.extend(
            self.scope
                .params
                .iter()
                .filter(|(_, s)| !arrays_only || matches!(s, ParamShape::Array(_)))
                .map(|(n, _)| n.as_str()),
        );
        let name_len = name.chars().count();
        let best = candidates
            .into_iter()
            .filter(|c| c.chars().count().abs_diff(name_len) <= 2)
            .map(|c| (edit_distance(name, c), c))
            .filter(|&(dist, c)| dist <= 2 && dist < name_len.min(c.chars().count()))
            .min_by_key(|&(dist, _)| dist);
        match best {
            Some((_, c)) => format!("; did you mean `{c}`?"),
            None => String::new(),
        }
    }

    fn magnitude(b: &DimExpr, span: Span) -> Result<(), ExprError> {
        Self::offset_magnitude(b.offset, span, || dim_text(b))
    }

    fn offset_magnitude(k: i64, span: Span, text: impl Fn() -> String) -> Result<(), ExprError> {
        if k.unsigned_abs() > MAX_INDEX.unsigned_abs() {
            return Err(Self::err(
                span,
                ExprErrorKind::IndexOutOfRange(format!(
                    "`{}` is too large (indices and bounds stay within ±{MAX_INDEX})",
                    text()
                )),
            ));
        }
        Ok(())
    }

    // `validate` and `rename` recurse once per tree level. They keep their frames small (a boxed
    // error, no formatting) and leave every check to helpers, so that a tree at the height limit
    // fits a 2 MiB thread stack in unoptimised builds too.
    fn validate(
        &self,
        e: &Expr,
        range: Option<&Range<'_>>,
        depth: usize,
    ) -> Result<(), Box<ExprError>> {
        if depth > MAX_HEIGHT {
            return Err(Box::new(Self::err(
                e.span,
                ExprErrorKind::TooDeep { limit: MAX_HEIGHT },
            )));
        }
        match &e.kind {
            ExprKind::Call(_, a) | ExprKind::Neg(a) => self.validate(a, range, depth + 1),
            ExprKind::Binary(_, a, b) => {
                self.validate(a, range, depth + 1)?;
                self.validate(b, range, depth + 1)
            }
            ExprKind::Reduce { .. } => self.reduce(e, range, depth),
            _ => self.leaf(e, range).map_err(Box::new),
        }
    }

    /// Turns the bare names of a validated tree into terms or scalar parameters.
    fn rename(&self, e: &mut Expr) {
        match &mut e.kind {
            ExprKind::Call(_, a) | ExprKind::Neg(a) => self.rename(a),
            ExprKind::Binary(_, a, b) => {
                self.rename(a);
                self.rename(b);
            }
            ExprKind::Reduce { body, .. } => self.rename(body),
            ExprKind::Term(_) | ExprKind::Param { index: None, .. } => self.rename_leaf(e),
            _ => {}
        }
    }

    fn rename_leaf(&self, e: &mut Expr) {
        if let ExprKind::Term(name)
        | ExprKind::Param {
            name, index: None, ..
        } = &e.kind
        {
            if let Ok(kind) = self.resolve(name, e.span) {
                e.kind = kind;
            }
        }
    }

    /// A node without subexpressions.
    fn leaf(&self, e: &Expr, range: Option<&Range<'_>>) -> Result<(), ExprError> {
        let span = e.span;
        match &e.kind {
            ExprKind::Time if !self.scope.has_time => Err(Self::err(span, ExprErrorKind::NoTime)),
            ExprKind::Solution if !self.scope.has_solution => Err(Self::err(
                span,
                ExprErrorKind::NoSolution(
                    "this expression may not depend on the solution".to_string(),
                ),
            )),
            ExprKind::Coord(index) => {
                let x = Array {
                    name: "x",
                    len: DimExpr::dim_plus(0),
                    len_v: self.scope.dim as i128,
                };
                self.index(&x, index, range, span)
            }
            ExprKind::Term(name)
            | ExprKind::Param {
                name, index: None, ..
            } => self.resolve(name, span).map(|_| ()),
            ExprKind::Param {
                name,
                index: Some(index),
            } => self.indexed_param(name, index, range, span),
            _ => Ok(()),
        }
    }

    fn reduce(
        &self,
        e: &Expr,
        range: Option<&Range<'_>>,
        depth: usize,
    ) -> Result<(), Box<ExprError>> {
        let span = e.span;
        let ExprKind::Reduce {
            kind,
            var,
            lo,
            hi,
            body,
        } = &e.kind
        else {
            return Ok(());
        };
        if range.is_some() {
            return Err(Box::new(Self::err(span, ExprErrorKind::NestedReduction)));
        }
        Self::magnitude(lo, span)?;
        Self::magnitude(hi, span)?;
        let dim = self.scope.dim;
        let r = Range {
            var,
            lo: *lo,
            hi: *hi,
            lo_v: value(lo, dim),
            hi_v: value(hi, dim),
        };
        if *kind == ReduceKind::Max && r.lo_v >= r.hi_v {
            return Err(Box::new(Self::err(
                span,
                ExprErrorKind::EmptyRange(format!(
                    "{var} in {}..{} is empty at d = {dim}",
                    dim_text(lo),
                    dim_text(hi)
                )),
            )));
        }
        self.validate(body, Some(&r), depth + 1)
    }

    /// A bare name (or a scalar parameter built in Rust).
    fn resolve(&self, name: &str, span: Span) -> Result<ExprKind, ExprError> {
        if self.has_term(name) {
            if !self.scope.has_solution {
                return Err(Self::err(
                    span,
                    ExprErrorKind::NoSolution(format!(
                        "the term `{name}` is a derivative of the solution, and this expression may not depend on the solution"
                    )),
                ));
            }
            return Ok(ExprKind::Term(name.to_string()));
        }
        match self.param(name) {
            Some(ParamShape::Scalar) => Ok(ExprKind::Param {
                name: name.to_string(),
                index: None,
            }),
            Some(ParamShape::Array(len)) => Err(Self::err(
                span,
                ExprErrorKind::Type(format!(
                    "parameter `{name}` is an array of {} numbers; index it, as in {name}[0], or {name}[i] inside a reduction",
                    dim_text(len)
                )),
            )),
            None => {
                let hint = self.hint(name, false);
                if !hint.is_empty() || !looks_like_operator(name) {
                    return Err(Self::err(
                        span,
                        ExprErrorKind::UnknownName {
                            name: name.to_string(),
                            hint,
                        },
                    ));
                }
                Err(Self::err(
                span,
                ExprErrorKind::UndefinedTerm {
                    name: name.to_string(),
                    defined: if self.scope.terms.is_empty() {
                        "none".to_string()
                    } else {
                        self.scope.terms.join(", ")
                    },
                },
                ))
            }
        }
    }

    fn indexed_param(
        &self,
        name: &str,
        index: &Index,
        range: Option<&Range<'_>>,
        span: Span,
    ) -> Result<(), ExprError> {
        match self.param(name) {
            Some(ParamShape::Array(len)) => {
                let array = Array {
                    name,
                    len: *len,
                    len_v: value(len, self.scope.dim),
                };
                self.index(&array, index, range, span)
            }
            Some(ParamShape::Scalar) => Err(Self::err(
                span,
                ExprErrorKind::Type(format!(
                    "parameter `{name}` is a scalar and cannot be indexed"
                )),
            )),
            None if self.has_term(name) => Err(Self::err(
                span,
                ExprErrorKind::Type(format!(
                    "term `{name}` is one value at the point and cannot be indexed"
                )),
            )),
            None => Err(Self::err(
                span,
                ExprErrorKind::UnknownName {
                    name: name.to_string(),
                    hint: self.hint(name, true),
                },
            )),
        }
    }

    fn index(
        &self,
        array: &Array<'_>,
        index: &Index,
        range: Option<&Range<'_>>,
        span: Span,
    ) -> Result<(), ExprError> {
        let dim = self.scope.dim;
        let n = array.name;
        let extent = if array.len_v <= 0 {
            format!("but {n} has no elements")
        } else {
            let last = shift(array.len, -1);
            format!("outside {n}[0]..{n}[{}]", dim_text(&last))
        };
        match index {
            Index::Fixed(j) => {
                Self::magnitude(j, span)?;
                let v = value(j, dim);
                if v < 0 || v >= array.len_v {
                    return Err(Self::err(
                        span,
                        ExprErrorKind::IndexOutOfRange(format!(
                            "{n}[{}] is {extent} (d = {dim})",
                            dim_text(j)
                        )),
                    ));
                }
                Ok(())
            }
            Index::Window(k) => {
                let Some(r) = range else {
                    return Err(Self::err(
                        span,
                        ExprErrorKind::WindowOutsideReduction(window_text("i", *k)),
                    ));
                };
                Self::offset_magnitude(*k, span, || window_text(r.var, *k))?;
                if r.lo_v >= r.hi_v {
                    return Ok(());
                }
                let k128 = i128::from(*k);
                let (at, read) = if r.lo_v + k128 < 0 {
                    (r.lo, shift(r.lo, *k))
                } else if r.hi_v - 1 + k128 >= array.len_v {
                    (shift(r.hi, -1), shift(r.hi, k.saturating_sub(1)))
                } else {
                    return Ok(());
                };
                Err(Self::err(
                    span,
                    ExprErrorKind::WindowOutOfRange(format!(
                        "{n}[{}] reads {n}[{}] at {} = {}, {extent} (d = {dim})",
                        window_text(r.var, *k),
                        dim_text(&read),
                        r.var,
                        dim_text(&at)
                    )),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_swaps_as_one_edit() {
        assert_eq!(edit_distance("lap", "lpa"), 1);
        assert_eq!(edit_distance("lap", "lap"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn operator_like_names_are_recognised() {
        assert!(looks_like_operator("lap") && looks_like_operator("u_xx"));
        assert!(!looks_like_operator("g") && !looks_like_operator("c"));
    }
}
