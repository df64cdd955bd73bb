//! Building expressions in Rust: leaves, functions, reductions, the arithmetic operators, and a
//! span-insensitive comparison.
//!
//! ```
//! use stde_core::expr::build::*;
//! use stde_core::expr::DimExpr;
//!
//! // (1 - norm2(x)) * sum(i in 0..d-1, c[i]*sin(x[i] + x[i+1]))
//! let e = (1.0 - norm2())
//!     * sum(DimExpr::constant(0), DimExpr::dim_plus(-1), param_win("c", 0) * sin(x_win(0) + x_win(1)));
//! assert_eq!(e.to_string(), "(1 - norm2(x))*sum(i in 0..d-1, c[i]*sin(x[i] + x[i+1]))");
//! ```
//!
//! Built nodes carry [`Span::NONE`](super::Span::NONE). Nothing here checks names or ranges: pass
//! the result through [`check`](super::check::check).

use std::ops;

use super::ast::{BinOp, DimExpr, Expr, ExprKind, Func, Index, ReduceKind};

/// A constant.
pub fn konst(v: f64) -> Expr {
    Expr::new(ExprKind::Const(v))
}

/// The constant π (what `pi` parses to).
pub fn pi() -> Expr {
    konst(std::f64::consts::PI)
}

/// The dimension `d`, as a number.
pub fn dim() -> Expr {
    Expr::new(ExprKind::Dim)
}

/// The coordinate `x[j]`.
pub fn x(j: i64) -> Expr {
    x_at(DimExpr::constant(j))
}

/// The coordinate `x[j]` for an index that may depend on `d`, e.g. `x[d-1]`.
pub fn x_at(j: DimExpr) -> Expr {
    Expr::new(ExprKind::Coord(Index::Fixed(j)))
}

/// The coordinate `x[i+k]` relative to the enclosing reduction's variable.
pub fn x_win(k: i64) -> Expr {
    Expr::new(ExprKind::Coord(Index::Window(k)))
}

/// The time `t`.
pub fn t() -> Expr {
    Expr::new(ExprKind::Time)
}

/// The solution value `u`.
pub fn u() -> Expr {
    Expr::new(ExprKind::Solution)
}

/// The differential term `name` (e.g. `lap`).
pub fn term(name: &str) -> Expr {
    Expr::new(ExprKind::Term(name.to_string()))
}

/// The scalar parameter `name`.
pub fn param(name: &str) -> Expr {
    Expr::new(ExprKind::Param {
        name: name.to_string(),
        index: None,
    })
}

/// The element `name[index]` of an array parameter.
pub fn param_at(name: &str, index: Index) -> Expr {
    Expr::new(ExprKind::Param {
        name: name.to_string(),
        index: Some(index),
    })
}

/// The element `name[i+k]` of an array parameter, relative to the enclosing reduction's variable.
pub fn param_win(name: &str, k: i64) -> Expr {
    param_at(name, Index::Window(k))
}

/// `f(a)`.
pub fn call(f: Func, a: impl Into<Expr>) -> Expr {
    Expr::new(ExprKind::Call(f, Box::new(a.into())))
}

/// `exp(a)`.
pub fn exp(a: impl Into<Expr>) -> Expr {
    call(Func::Exp, a)
}

/// `log(a)`, the natural logarithm.
pub fn log(a: impl Into<Expr>) -> Expr {
    call(Func::Log, a)
}

/// `sin(a)`.
pub fn sin(a: impl Into<Expr>) -> Expr {
    call(Func::Sin, a)
}

/// `cos(a)`.
pub fn cos(a: impl Into<Expr>) -> Expr {
    call(Func::Cos, a)
}

/// `tanh(a)`.
pub fn tanh(a: impl Into<Expr>) -> Expr {
    call(Func::Tanh, a)
}

/// `atan(a)`.
pub fn atan(a: impl Into<Expr>) -> Expr {
    call(Func::Atan, a)
}

/// `sqrt(a)`.
pub fn sqrt(a: impl Into<Expr>) -> Expr {
    call(Func::Sqrt, a)
}

/// `abs(a)`.
pub fn abs(a: impl Into<Expr>) -> Expr {
    call(Func::Abs, a)
}

/// `a op b`.
pub fn binary(op: BinOp, a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    Expr::new(ExprKind::Binary(op, Box::new(a.into()), Box::new(b.into())))
}

/// `min(a, b)`.
pub fn min(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    binary(BinOp::Min, a, b)
}

/// `max(a, b)`.
pub fn max(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    binary(BinOp::Max, a, b)
}

/// `a^b`.
pub fn pow(a: impl Into<Expr>, b: impl Into<Expr>) -> Expr {
    binary(BinOp::Pow, a, b)
}

fn reduce(kind: ReduceKind, lo: DimExpr, hi: DimExpr, body: Expr) -> Expr {
    Expr::new(ExprKind::Reduce {
        kind,
        var: "i".to_string(),
        lo,
        hi,
        body: Box::new(body),
    })
}

/// `sum(i in lo..hi, body)`.
pub fn sum(lo: DimExpr, hi: DimExpr, body: impl Into<Expr>) -> Expr {
    reduce(ReduceKind::Sum, lo, hi, body.into())
}

/// `max(i in lo..hi, body)`.
pub fn max_over(lo: DimExpr, hi: DimExpr, body: impl Into<Expr>) -> Expr {
    reduce(ReduceKind::Max, lo, hi, body.into())
}

/// `norm2(x)`, i.e. `sum(i in 0..d, x[i]^2)` (the same tree the parser builds).
pub fn norm2() -> Expr {
    sum(
        DimExpr::constant(0),
        DimExpr::dim_plus(0),
        pow(x_win(0), 2.0),
    )
}

impl From<f64> for Expr {
    /// A constant.
    fn from(v: f64) -> Self {
        konst(v)
    }
}

impl From<&Expr> for Expr {
    /// A copy.
    fn from(e: &Expr) -> Self {
        e.clone()
    }
}

impl Expr {
    /// Whether the two trees are equal ignoring spans; constants compare by bit pattern, so
    /// `NaN` equals itself and `0.0` differs from `-0.0`.
    pub fn same_as(&self, other: &Expr) -> bool {
        use ExprKind as K;
        match (&self.kind, &other.kind) {
            (K::Const(a), K::Const(b)) => a.to_bits() == b.to_bits(),
            (K::Call(f, a), K::Call(g, b)) => f == g && a.same_as(b),
            (K::Neg(a), K::Neg(b)) => a.same_as(b),
            (K::Binary(o, a1, a2), K::Binary(p, b1, b2)) => {
                o == p && a1.same_as(b1) && a2.same_as(b2)
            }
            (
                K::Reduce {
                    kind: k1,
                    var: v1,
                    lo: l1,
                    hi: h1,
                    body: b1,
                },
                K::Reduce {
                    kind: k2,
                    var: v2,
                    lo: l2,
                    hi: h2,
                    body: b2,
                },
            ) => k1 == k2 && v1 == v2 && l1 == l2 && h1 == h2 && b1.same_as(b2),
            // The remaining kinds hold no subexpressions, so `==` ignores spans for them.
            (a, b) => a == b,
        }
    }
}

macro_rules! arithmetic {
    ($trait:ident, $method:ident, $op:expr) => {
        impl ops::$trait<Expr> for Expr {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<&Expr> for Expr {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<Expr> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<&Expr> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<f64> for Expr {
            type Output = Expr;
            fn $method(self, rhs: f64) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<f64> for &Expr {
            type Output = Expr;
            fn $method(self, rhs: f64) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<Expr> for f64 {
            type Output = Expr;
            fn $method(self, rhs: Expr) -> Expr {
                binary($op, self, rhs)
            }
        }
        impl ops::$trait<&Expr> for f64 {
            type Output = Expr;
            fn $method(self, rhs: &Expr) -> Expr {
                binary($op, self, rhs)
            }
        }
    };
}

arithmetic!(Add, add, BinOp::Add);
arithmetic!(Sub, sub, BinOp::Sub);
arithmetic!(Mul, mul, BinOp::Mul);
arithmetic!(Div, div, BinOp::Div);

impl ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::new(ExprKind::Neg(Box::new(self)))
    }
}

impl ops::Neg for &Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        -self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;

    #[test]
    fn operators_build_the_tree_the_parser_builds() {
        let c = param_win("c", 0);
        let built = (1.0 - norm2())
            * sum(
                DimExpr::constant(0),
                DimExpr::dim_plus(-1),
                &c * sin(x_win(0) + cos(x_win(1)) + x_win(1) * cos(x_win(0))),
            );
        let parsed = parse(
            "(1 - norm2(x)) * sum(i in 0..d-1, c[i]*sin(x[i] + cos(x[i+1]) + x[i+1]*cos(x[i])))",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(built.same_as(&parsed), "{built} vs {parsed}");
        assert!(!built.same_as(&(-&parsed)));
        assert!((x(0) / 2.0 - &c).same_as(&binary(
            BinOp::Sub,
            binary(BinOp::Div, x(0), 2.0),
            param_win("c", 0)
        )));
    }

    #[test]
    fn same_as_ignores_spans_but_not_constants_bits() {
        let a = parse("x[0] +  1").unwrap_or_else(|e| panic!("{e}"));
        let b = parse("x[0]+1").unwrap_or_else(|e| panic!("{e}"));
        assert!(a.same_as(&b) && a != b);
        assert!(!konst(0.0).same_as(&konst(-0.0)));
        assert!(konst(f64::NAN).same_as(&konst(f64::NAN)));
    }
}
