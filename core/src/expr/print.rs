//! Printing expressions in the text syntax, with the fewest parentheses that keep the tree.
//!
//! For every tree the parser can produce, `parse(&e.to_string())` gives back `e` up to spans
//! ([`Expr::same_as`]). Trees built in Rust print to text of the same value, with these
//! differences in shape:
//!
//! * A negative constant prints as `-2.5`, which parses to `Neg(Const(2.5))`.
//! * Infinities and NaN print as `(1/0)`, `(-1/0)` and `(0/0)`, which evaluate to them.
//! * A scalar [`ExprKind::Param`] prints as its bare name, which parses to [`ExprKind::Term`]
//!   until [`check`](super::check::check) resolves it.
//! * A reduction variable that is not a valid name prints as `i`. Term and parameter names print
//!   as they are, so a name that is not an identifier does not parse back.
//!
//! Numbers print in the shortest form that reads back to the same `f64` (`2`, `0.1`, `1e-7`),
//! and `pi` prints as `pi`.

use std::fmt;

use super::ast::{BinOp, DimExpr, Expr, ExprKind, Index, ReduceKind};
use super::parse::is_name;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(f, self, 0, None)
    }
}

/// How tightly a node binds: 1 sums, 2 products, 3 negations, 4 powers, 5 atoms.
fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub, ..) => 1,
        ExprKind::Binary(BinOp::Mul | BinOp::Div, ..) => 2,
        ExprKind::Neg(_) => 3,
        ExprKind::Const(c) if c.is_finite() && c.is_sign_negative() => 3,
        ExprKind::Binary(BinOp::Pow, ..) => 4,
        _ => 5,
    }
}

/// Writes `e` so that it parses as an operand needing at least precedence `min`; `var` is the
/// variable of the enclosing reduction.
// This recurses once per tree level, so it keeps its own frame small and leaves the leaves and
// reductions to helpers.
fn write_expr(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8, var: Option<&str>) -> fmt::Result {
    if precedence(e) < min {
        f.write_str("(")?;
        write_expr(f, e, 0, var)?;
        return f.write_str(")");
    }
    match &e.kind {
        ExprKind::Call(func, a) => {
            f.write_str(func.name())?;
            f.write_str("(")?;
            write_expr(f, a, 0, var)?;
            f.write_str(")")
        }
        ExprKind::Neg(a) => {
            f.write_str("-")?;
            write_expr(f, a, 3, var)
        }
        ExprKind::Binary(op, a, b) => {
            let (left, sep, right) = match op {
                BinOp::Add => (1, " + ", 2),
                BinOp::Sub => (1, " - ", 2),
                BinOp::Mul => (2, "*", 3),
                BinOp::Div => (2, "/", 3),
                BinOp::Pow => (5, "^", 3),
                BinOp::Min => {
                    f.write_str("min(")?;
                    (0, ", ", 0)
                }
                BinOp::Max => {
                    f.write_str("max(")?;
                    (0, ", ", 0)
                }
            };
            write_expr(f, a, left, var)?;
            f.write_str(sep)?;
            write_expr(f, b, right, var)?;
            if matches!(op, BinOp::Min | BinOp::Max) {
                f.write_str(")")?;
            }
            Ok(())
        }
        ExprKind::Reduce { .. } => write_reduce(f, e),
        _ => write_leaf(f, e, var),
    }
}

fn write_leaf(f: &mut fmt::Formatter<'_>, e: &Expr, var: Option<&str>) -> fmt::Result {
    match &e.kind {
        ExprKind::Const(c) => write_const(f, *c),
        ExprKind::Dim => f.write_str("d"),
        ExprKind::Time => f.write_str("t"),
        ExprKind::Solution => f.write_str("u"),
        ExprKind::Coord(index) => {
            f.write_str("x[")?;
            write_index(f, index, var)?;
            f.write_str("]")
        }
        ExprKind::Term(name)
        | ExprKind::Param {
            name, index: None, ..
        } => f.write_str(name),
        ExprKind::Param {
            name,
            index: Some(index),
        } => {
            write!(f, "{name}[")?;
            write_index(f, index, var)?;
            f.write_str("]")
        }
        ExprKind::Call(..) | ExprKind::Neg(_) | ExprKind::Binary(..) | ExprKind::Reduce { .. } => {
            write_expr(f, e, 0, var)
        }
    }
}

fn write_reduce(f: &mut fmt::Formatter<'_>, e: &Expr) -> fmt::Result {
    if is_norm2(e) {
        return f.write_str("norm2(x)");
    }
    let ExprKind::Reduce {
        kind,
        var,
        lo,
        hi,
        body,
    } = &e.kind
    else {
        return write_leaf(f, e, None);
    };
    let var = if is_name(var) { var.as_str() } else { "i" };
    let name = match kind {
        ReduceKind::Sum => "sum",
        ReduceKind::Max => "max",
    };
    write!(f, "{name}({var} in ")?;
    write_dim(f, lo)?;
    f.write_str("..")?;
    write_dim(f, hi)?;
    f.write_str(", ")?;
    write_expr(f, body, 0, Some(var))?;
    f.write_str(")")
}

/// Whether `e` is the tree `norm2(x)` parses to.
fn is_norm2(e: &Expr) -> bool {
    let ExprKind::Reduce {
        kind: ReduceKind::Sum,
        var,
        lo,
        hi,
        body,
    } = &e.kind
    else {
        return false;
    };
    let ExprKind::Binary(BinOp::Pow, base, exponent) = &body.kind else {
        return false;
    };
    var == "i"
        && *lo == DimExpr::constant(0)
        && *hi == DimExpr::dim_plus(0)
        && base.kind == ExprKind::Coord(Index::Window(0))
        && matches!(exponent.kind, ExprKind::Const(c) if c.to_bits() == 2.0f64.to_bits())
}

fn write_const(f: &mut fmt::Formatter<'_>, c: f64) -> fmt::Result {
    if c.is_nan() {
        return f.write_str("(0/0)");
    }
    if c.is_infinite() {
        return f.write_str(if c > 0.0 { "(1/0)" } else { "(-1/0)" });
    }
    if c.is_sign_negative() {
        f.write_str("-")?;
    }
    let m = c.abs();
    if m == std::f64::consts::PI {
        return f.write_str("pi");
    }
    // Both forms read back to the same f64; take the shorter (`2` rather than `2.0`, `1e-7`
    // rather than `0.0000001`).
    let plain = format!("{m}");
    let debug = format!("{m:?}");
    f.write_str(if plain.len() <= debug.len() {
        &plain
    } else {
        &debug
    })
}

/// Writes `d`, `d+k`, `d-k` or `k`, without overflow at `i64::MIN`.
pub(crate) fn write_dim(f: &mut fmt::Formatter<'_>, b: &DimExpr) -> fmt::Result {
    match (b.with_dim, b.offset) {
        (false, o) => write!(f, "{o}"),
        (true, 0) => f.write_str("d"),
        (true, o) if o > 0 => write!(f, "d+{o}"),
        (true, o) => write!(f, "d-{}", o.unsigned_abs()),
    }
}

/// A [`DimExpr`] as text.
pub(crate) fn dim_text(b: &DimExpr) -> String {
    struct D<'a>(&'a DimExpr);
    impl fmt::Display for D<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_dim(f, self.0)
        }
    }
    D(b).to_string()
}

/// `i`, `i+k` or `i-k` for the reduction variable `var`.
pub(crate) fn window_text(var: &str, k: i64) -> String {
    match k {
        0 => var.to_string(),
        k if k > 0 => format!("{var}+{k}"),
        k => format!("{var}-{}", k.unsigned_abs()),
    }
}

fn write_index(f: &mut fmt::Formatter<'_>, index: &Index, var: Option<&str>) -> fmt::Result {
    match index {
        Index::Fixed(b) => write_dim(f, b),
        Index::Window(k) => f.write_str(&window_text(var.unwrap_or("i"), *k)),
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::build::{konst, param, sum, x, x_win};
    use crate::expr::{parse, DimExpr};

    #[test]
    fn printer_uses_minimal_parentheses() {
        for src in [
            "a - b - c",
            "a - (b - c)",
            "a/(b*c)",
            "-x[0]^2",
            "(-x[0])^2",
            "2^3^2",
            "(2^3)^2",
            "2^-1",
            "a*-b",
            "a - -b",
            "min(a, b)*max(i in 0..d-1, x[i+1])",
            "norm2(x)",
            "sum(j in 1..d, c[j-1]*x[j])",
            "x[d-1] + x[-2] + pi + 1e-7 + 0.1 + 2",
        ] {
            let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.to_string(), src);
        }
    }

    #[test]
    fn special_constants_print_as_values() {
        assert_eq!(konst(-2.5).to_string(), "-2.5");
        assert_eq!((konst(-2.5) * x(0)).to_string(), "-2.5*x[0]");
        assert_eq!(
            crate::expr::build::pow(konst(-2.0), 2.0).to_string(),
            "(-2)^2"
        );
        assert_eq!(konst(f64::INFINITY).to_string(), "(1/0)");
        assert_eq!(konst(f64::NEG_INFINITY).to_string(), "(-1/0)");
        assert_eq!(konst(f64::NAN).to_string(), "(0/0)");
        assert_eq!(konst(1e300).to_string(), "1e300");
        assert_eq!(param("g").to_string(), "g");
    }

    #[test]
    fn invalid_reduction_variable_prints_as_i() {
        let mut e = sum(DimExpr::constant(0), DimExpr::dim_plus(0), x_win(1));
        if let crate::expr::ExprKind::Reduce { var, .. } = &mut e.kind {
            *var = "sin".to_string();
        }
        assert_eq!(e.to_string(), "sum(i in 0..d, x[i+1])");
    }
}
