//! Semantics of the problem language: f64 and jet evaluation against `Jet` arithmetic, finite
//! differences and the PDE suite's closed forms; the sparse jet evaluator against the general one;
//! symbolic derivatives, the simplifier and the differential operators against the jet oracle on
//! random expressions; and the derived Laplacians of the paper's exact solutions against
//! `pde::Problem`, at sizes that do not grow with `d`.

mod common;

use common::TestRng;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};
use stde_core::expr::diff::{diff, diff_window, node_count, simplify, Var};
use stde_core::expr::eval::{
    eval, eval_series, eval_series_sparse, Env, SeriesEnv, SparseSeriesEnv,
};
use stde_core::expr::ops::{
    biharmonic, diagonal, directional, grad_dot, laplacian, partial, time_derivative,
};
use stde_core::expr::{
    BinOp, DimExpr, Expr, ExprErrorKind, ExprKind, Func, Index, ParamShape, ReduceKind, Scope,
};
use stde_core::jet::Jet;
use stde_core::pde::{Equation, ExactSolution, Problem};
use stde_core::planner::{plan, MultiIndex, PlannerParams};
use stde_core::series::{factorial, taylor_to_derivative};

// ---------------------------------------------------------------------------------------------
// Constructors (the builder module is not used, so these tests pin the tree semantics directly).

fn node(kind: ExprKind) -> Expr {
    Expr::new(kind)
}
fn num(v: f64) -> Expr {
    node(ExprKind::Const(v))
}
fn x(j: i64) -> Expr {
    node(ExprKind::Coord(Index::Fixed(DimExpr::constant(j))))
}
/// `x[d + off]`.
fn x_end(off: i64) -> Expr {
    node(ExprKind::Coord(Index::Fixed(DimExpr::dim_plus(off))))
}
/// `x[i + k]`.
fn xw(k: i64) -> Expr {
    node(ExprKind::Coord(Index::Window(k)))
}
fn t() -> Expr {
    node(ExprKind::Time)
}
fn u() -> Expr {
    node(ExprKind::Solution)
}
fn term(name: &str) -> Expr {
    node(ExprKind::Term(name.to_owned()))
}
fn par(name: &str) -> Expr {
    node(ExprKind::Param {
        name: name.to_owned(),
        index: None,
    })
}
/// `name[i + k]`.
fn par_w(name: &str, k: i64) -> Expr {
    node(ExprKind::Param {
        name: name.to_owned(),
        index: Some(Index::Window(k)),
    })
}
fn call(f: Func, a: Expr) -> Expr {
    node(ExprKind::Call(f, Box::new(a)))
}
fn neg(a: Expr) -> Expr {
    node(ExprKind::Neg(Box::new(a)))
}
fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    node(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}
fn add(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Add, a, b)
}
fn sub(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Sub, a, b)
}
fn mul(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Mul, a, b)
}
fn div(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Div, a, b)
}
fn pow(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Pow, a, b)
}
fn reduce(kind: ReduceKind, lo: DimExpr, hi: DimExpr, body: Expr) -> Expr {
    node(ExprKind::Reduce {
        kind,
        var: "i".to_owned(),
        lo,
        hi,
        body: Box::new(body),
    })
}
fn sum(lo: DimExpr, hi: DimExpr, body: Expr) -> Expr {
    reduce(ReduceKind::Sum, lo, hi, body)
}
const ZERO: DimExpr = DimExpr::constant(0);
const D: DimExpr = DimExpr::dim_plus(0);

/// `1 − ‖x‖²`.
fn phi() -> Expr {
    sub(num(1.0), sum(ZERO, D, pow(xw(0), num(2.0))))
}

/// The paper's exact solutions, written in the language: `(1 − ‖x‖²)·Σ c_i sin(θ_i)` and
/// `(1 − ‖x‖²)·Σ c_i exp(x_i x_{i+1} x_{i+2})`.
fn exact_solution(sol: ExactSolution) -> Expr {
    let s = match sol {
        ExactSolution::TwoBody => {
            let theta = add(
                add(xw(0), call(Func::Cos, xw(1))),
                mul(xw(1), call(Func::Cos, xw(0))),
            );
            sum(
                ZERO,
                DimExpr::dim_plus(-1),
                mul(par_w("c", 0), call(Func::Sin, theta)),
            )
        }
        ExactSolution::ThreeBody => sum(
            ZERO,
            DimExpr::dim_plus(-2),
            mul(
                par_w("c", 0),
                call(Func::Exp, mul(mul(xw(0), xw(1)), xw(2))),
            ),
        ),
    };
    mul(phi(), s)
}

fn pde_scope(sol: ExactSolution, dim: usize) -> Scope {
    Scope {
        dim,
        has_time: false,
        has_solution: false,
        terms: Vec::new(),
        params: vec![(
            "c".to_owned(),
            ParamShape::Array(DimExpr::dim_plus(1 - sol.min_dim() as i64)),
        )],
    }
}

/// The scope of the random expressions: time, `u`, one term and three parameters.
fn test_scope(dim: usize) -> Scope {
    Scope {
        dim,
        has_time: true,
        has_solution: true,
        terms: vec!["lap".to_owned()],
        params: vec![
            ("s".to_owned(), ParamShape::Scalar),
            ("c".to_owned(), ParamShape::Array(D)),
            ("b".to_owned(), ParamShape::Array(D)),
        ],
    }
}

/// A point of [`test_scope`] with everything that may be read.
#[derive(Clone, Debug)]
struct Point {
    x: Vec<f64>,
    t: f64,
    u: f64,
    lap: f64,
    params: Vec<Vec<f64>>,
}

impl Point {
    fn random(dim: usize, rng: &mut TestRng) -> Self {
        Self {
            x: rng.uniform_vec(dim, -1.0, 1.0),
            t: rng.uniform_in(-1.0, 1.0),
            u: rng.uniform_in(-1.0, 1.0),
            lap: rng.uniform_in(-1.0, 1.0),
            params: vec![
                vec![rng.uniform_in(0.5, 1.5)],
                rng.uniform_vec(dim, -1.0, 1.0),
                rng.uniform_vec(dim, -1.0, 1.0),
            ],
        }
    }

    fn eval(&self, scope: &Scope, e: &Expr) -> f64 {
        eval(
            e,
            &Env {
                scope,
                x: &self.x,
                t: self.t,
                u: self.u,
                terms: &[self.lap],
                params: &self.params,
            },
        )
    }

    /// Series along `x(τ) = x + Σ slots`, with `t`, `u`, `lap` moving by the given first
    /// coefficients.
    fn series(
        &self,
        scope: &Scope,
        e: &Expr,
        order: usize,
        slots: &[(usize, usize, f64)],
        moving: [f64; 3],
    ) -> Vec<f64> {
        let line = |v0: f64, v1: f64| {
            let mut s = vec![0.0; order + 1];
            s[0] = v0;
            if order >= 1 {
                s[1] = v1;
            }
            s
        };
        let (ts, us, ls) = (
            line(self.t, moving[0]),
            line(self.u, moving[1]),
            line(self.lap, moving[2]),
        );
        eval_series_sparse(
            e,
            &SparseSeriesEnv {
                scope,
                order,
                x0: &self.x,
                slots,
                t: &ts,
                u: &us,
                terms: std::slice::from_ref(&ls),
                params: &self.params,
            },
        )
    }
}

/// The scale of the rounding errors of evaluating `e`: `e` with every sum and difference replaced
/// by the sum of the magnitudes (products and quotients of magnitudes, any other node by its
/// absolute value). Derived expressions may cancel terms far larger than their value (the third
/// derivative of `x/x` near `x = 0`), and so may the jets they are checked against.
fn magnitude(e: &Expr) -> Expr {
    let m = |a: &Expr| magnitude(a);
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub, a, b) => add(m(a), m(b)),
        ExprKind::Binary(BinOp::Mul, a, b) => mul(m(a), m(b)),
        ExprKind::Binary(BinOp::Div, a, b) => div(m(a), call(Func::Abs, (**b).clone())),
        ExprKind::Neg(a) => m(a),
        ExprKind::Reduce {
            kind: ReduceKind::Sum,
            lo,
            hi,
            body,
            ..
        } => sum(*lo, *hi, m(body)),
        _ => call(Func::Abs, e.clone()),
    }
}

/// `|got − want| ≤ tol·(1 + |want|)`.
fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * (1.0 + want.abs())
}

// ---------------------------------------------------------------------------------------------
// f64 evaluation.

#[test]
fn eval_of_exact_solutions_matches_closed_forms() {
    let mut rng = TestRng::new(11, 0, 0.0);
    for sol in ExactSolution::ALL {
        for dim in [2usize, 3, 5, 10, 100] {
            if dim < sol.min_dim() {
                continue;
            }
            let p = Problem::new(Equation::Poisson, sol, dim, 3).expect("dim is large enough");
            let scope = pde_scope(sol, dim);
            let e = exact_solution(sol);
            for x in rng.ball_points(5, dim, 1.0).chunks(dim) {
                let env = Env {
                    scope: &scope,
                    x,
                    t: 0.0,
                    u: 0.0,
                    terms: &[],
                    params: std::slice::from_ref(&p.coeffs),
                };
                let (got, want) = (eval(&e, &env), p.exact(x));
                assert!(close(got, want, 1e-13), "{sol:?} d={dim}: {got} vs {want}");
            }
        }
    }
}

#[test]
fn eval_reads_every_kind_of_node() {
    let dim = 4;
    let scope = test_scope(dim);
    let pt = Point {
        x: vec![0.5, -0.25, 2.0, -1.5],
        t: 0.75,
        u: -0.5,
        lap: 3.0,
        params: vec![vec![1.25], vec![1.0, 2.0, 3.0, 4.0], vec![0.0; 4]],
    };
    let ev = |e: &Expr| pt.eval(&scope, e);
    assert_eq!(ev(&node(ExprKind::Dim)), 4.0);
    assert_eq!(ev(&x_end(-1)), -1.5);
    assert_eq!(ev(&add(t(), mul(u(), term("lap")))), 0.75 - 1.5);
    assert_eq!(ev(&mul(par("s"), x(0))), 0.625);
    // Σ_{i∈[1,d)} c[i-1]·x[i] = 1·(−0.25) + 2·2 + 3·(−1.5)
    let s = sum(DimExpr::constant(1), D, mul(par_w("c", -1), xw(0)));
    assert_eq!(ev(&s), -0.25 + 4.0 - 4.5);
    // max over windows, and the empty reductions.
    assert_eq!(ev(&reduce(ReduceKind::Max, ZERO, D, xw(0))), 2.0);
    assert_eq!(ev(&sum(D, D, xw(0))), 0.0);
    assert_eq!(
        ev(&reduce(
            ReduceKind::Max,
            DimExpr::constant(2),
            DimExpr::constant(1),
            xw(0)
        )),
        f64::NEG_INFINITY
    );
    // Integer powers (also negative and written as −n) are products; others exp(b·ln a).
    assert_eq!(ev(&pow(x(2), num(3.0))), 8.0);
    assert_eq!(ev(&pow(x(2), num(-2.0))), 0.25);
    assert_eq!(ev(&pow(x(2), neg(num(2.0)))), 0.25);
    assert_eq!(ev(&pow(x(1), num(2.0))), 0.0625);
    assert!(ev(&pow(x(1), num(0.5))).is_nan());
    assert_eq!(ev(&pow(x(2), num(0.5))), (0.5 * 2f64.ln()).exp());
    assert_eq!(ev(&bin(BinOp::Min, x(0), x(1))), -0.25);
    assert_eq!(ev(&bin(BinOp::Max, x(0), x(1))), 0.5);
    assert_eq!(ev(&call(Func::Abs, x(3))), 1.5);
    assert_eq!(ev(&call(Func::Atan, x(2))), 2f64.atan());
}

#[test]
#[should_panic(expected = "parameter `nope` is not in the scope")]
fn eval_panics_on_a_name_outside_the_scope() {
    let scope = test_scope(2);
    let pt = Point {
        x: vec![0.0; 2],
        t: 0.0,
        u: 0.0,
        lap: 0.0,
        params: vec![vec![1.0], vec![0.0; 2], vec![0.0; 2]],
    };
    pt.eval(&scope, &par("nope"));
}

// ---------------------------------------------------------------------------------------------
// Jet evaluation against Jet arithmetic and finite differences.

/// A hand-written function as an expression and as `Jet` arithmetic over `(x, t, params)`.
struct Case {
    name: &'static str,
    expr: Expr,
    jet: fn(&[Jet], &Jet, &[Vec<f64>]) -> Jet,
}

/// Selects by the primal like the language's `min`/`max`/`abs` (ties take the first).
fn jet_select(first: &Jet, second: &Jet, take_second: bool) -> Jet {
    if take_second {
        second.clone()
    } else {
        first.clone()
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "exp·, sin/(2+cos)",
            expr: add(
                call(Func::Exp, mul(x(0), x(1))),
                div(call(Func::Sin, x(2)), add(num(2.0), call(Func::Cos, x(3)))),
            ),
            jet: |x, _, _| (&x[0] * &x[1]).exp() + x[2].sin() / (x[3].cos() + 2.0),
        },
        Case {
            name: "log·sqrt − tanh(x t)",
            expr: sub(
                mul(
                    call(Func::Log, add(num(1.0), pow(x(0), num(2.0)))),
                    call(Func::Sqrt, add(num(2.0), x(1))),
                ),
                call(Func::Tanh, mul(x(2), t())),
            ),
            jet: |x, t, _| (x[0].powi(2) + 1.0).log() * (&x[1] + 2.0).sqrt() - (&x[2] * t).tanh(),
        },
        Case {
            name: "integer and general powers",
            expr: add(
                sub(pow(add(x(0), num(2.0)), num(-3.0)), pow(x(1), num(4.0))),
                pow(add(num(1.5), pow(x(2), num(2.0))), x(3)),
            ),
            jet: |x, _, _| {
                (&x[0] + 2.0).powi(-3) - x[1].powi(4) + (&x[3] * &(x[2].powi(2) + 1.5).log()).exp()
            },
        },
        Case {
            name: "two-body exact solution",
            expr: exact_solution(ExactSolution::TwoBody),
            jet: |x, _, p| {
                let mut norm = Jet::constant(0.0, x[0].order());
                for xi in x {
                    norm = norm + xi.square();
                }
                let mut s = Jet::constant(0.0, x[0].order());
                for i in 0..x.len() - 1 {
                    let theta = &x[i] + &x[i + 1].cos() + &x[i + 1] * &x[i].cos();
                    s = s + theta.sin() * p[0][i];
                }
                (-norm + 1.0) * s
            },
        },
        Case {
            name: "max reduction, min, abs, d and scalar parameter",
            expr: add(
                add(
                    reduce(
                        ReduceKind::Max,
                        ZERO,
                        DimExpr::dim_plus(-1),
                        mul(xw(0), xw(1)),
                    ),
                    mul(
                        call(Func::Abs, sub(x(0), x(1))),
                        bin(BinOp::Min, x(2), x(3)),
                    ),
                ),
                mul(mul(par("s"), node(ExprKind::Dim)), x(0)),
            ),
            jet: |x, _, p| {
                let mut best = Jet::constant(f64::NEG_INFINITY, x[0].order());
                for i in 0..x.len() - 1 {
                    let v = &x[i] * &x[i + 1];
                    if v.value() > best.value() {
                        best = v;
                    }
                }
                let gap = &x[0] - &x[1];
                let abs = jet_select(&gap, &-&gap, gap.value() < 0.0);
                let min = jet_select(&x[2], &x[3], x[3].value() < x[2].value());
                best + abs * min + &x[0] * (p[0][0] * x.len() as f64)
            },
        },
    ]
}

fn jet_params(scope: &Scope, rng: &mut TestRng) -> Vec<Vec<f64>> {
    scope
        .params
        .iter()
        .map(|(name, _)| match name.as_str() {
            "s" => vec![rng.uniform_in(0.5, 1.5)],
            _ => rng.uniform_vec(scope.dim, -1.0, 1.0),
        })
        .collect()
}

#[test]
fn series_matches_jet_arithmetic_at_orders_1_to_6() {
    let dim = 4;
    let mut scope = test_scope(dim);
    // The two-body case reads c[i] as its coefficient array, which is parameter 0 of its Jet form.
    scope.params = vec![
        ("c".to_owned(), ParamShape::Array(D)),
        ("s".to_owned(), ParamShape::Scalar),
    ];
    let mut rng = TestRng::new(12, 0, 0.0);
    for case in cases() {
        for order in 1..=6 {
            for _ in 0..4 {
                let xs: Vec<Vec<f64>> = (0..dim)
                    .map(|_| {
                        let mut s = rng.uniform_vec(order + 1, -0.5, 0.5);
                        s[0] = rng.uniform_in(-0.9, 0.9);
                        s
                    })
                    .collect();
                let ts = rng.uniform_vec(order + 1, -0.5, 0.5);
                let params = vec![
                    rng.uniform_vec(dim, -1.0, 1.0),
                    vec![rng.uniform_in(0.5, 1.5)],
                ];
                let got = eval_series(
                    &case.expr,
                    &SeriesEnv {
                        scope: &scope,
                        order,
                        x: &xs,
                        t: &ts,
                        u: &[],
                        terms: &[],
                        params: &params,
                    },
                );
                let jx: Vec<Jet> = xs.iter().map(|s| Jet::from_taylor(s.clone())).collect();
                let jparams = vec![params[0].clone(), params[1].clone()];
                // The Jet forms read the scalar as p[0][0] in the last case; swap accordingly.
                let jp = if case.name.starts_with("max") {
                    vec![params[1].clone()]
                } else {
                    jparams
                };
                let want = (case.jet)(&jx, &Jet::from_taylor(ts.clone()), &jp);
                for (k, (g, w)) in got.iter().zip(want.taylor()).enumerate() {
                    assert!(
                        close(*g, *w, 1e-12),
                        "{}: order {order}, c_{k}: {g} vs {w}",
                        case.name
                    );
                }
            }
        }
    }
}

/// The coefficients of the polynomial curve `X(h + s)` in `s`: `X'_m = Σ_{k≥m} C(k,m) X_k h^{k−m}`.
fn reexpand(coeffs: &[f64], h: f64) -> Vec<f64> {
    let n = coeffs.len();
    (0..n)
        .map(|m| {
            (m..n)
                .map(|k| {
                    let binom = factorial(k) / (factorial(m) * factorial(k - m));
                    binom * coeffs[k] * h.powi((k - m) as i32)
                })
                .sum()
        })
        .collect()
}

#[test]
fn series_matches_finite_differences_at_orders_1_to_6() {
    // g(τ) = e(X(τ)); c_k(h) are the Taylor coefficients of g at τ = h, and
    // d/dh c_{k−1}(h) = k·c_k(h). Checking every order against a central difference of the order
    // below, down to the f64 value, covers every coefficient with a first-order difference.
    let dim = 4;
    let scope = test_scope(dim);
    let mut rng = TestRng::new(13, 0, 0.0);
    let extra = vec![
        ("atan", call(Func::Atan, mul(x(0), add(x(1), t())))),
        (
            "sum with fixed and window reads",
            sum(
                DimExpr::constant(1),
                D,
                mul(
                    call(Func::Atan, sub(xw(0), xw(-1))),
                    add(x(0), par_w("c", 0)),
                ),
            ),
        ),
        (
            "general power with a moving exponent",
            pow(add(num(2.0), call(Func::Sin, x(3))), mul(x(2), t())),
        ),
    ];
    let exprs: Vec<(&str, Expr)> = cases()
        .into_iter()
        .filter(|c| !c.name.starts_with("two-body"))
        .map(|c| (c.name, c.expr))
        .chain(extra)
        .collect();
    let h = 1e-5;
    for (name, e) in &exprs {
        for order in 1..=6 {
            let params = jet_params(&scope, &mut rng);
            let xs: Vec<Vec<f64>> = (0..dim)
                .map(|_| {
                    let mut s = rng.uniform_vec(order + 1, -0.5, 0.5);
                    s[0] = rng.uniform_in(-0.9, 0.9);
                    s
                })
                .collect();
            let ts = rng.uniform_vec(order + 1, -0.5, 0.5);
            let at = |shift: f64| {
                let xh: Vec<Vec<f64>> = xs.iter().map(|s| reexpand(s, shift)).collect();
                eval_series(
                    e,
                    &SeriesEnv {
                        scope: &scope,
                        order,
                        x: &xh,
                        t: &reexpand(&ts, shift),
                        u: &[],
                        terms: &[],
                        params: &params,
                    },
                )
            };
            let (c0, plus, minus) = (at(0.0), at(h), at(-h));
            // The constant coefficient is the f64 value.
            let point: Vec<f64> = xs.iter().map(|s| s[0]).collect();
            let value = eval(
                e,
                &Env {
                    scope: &scope,
                    x: &point,
                    t: ts[0],
                    u: 0.0,
                    terms: &[0.0],
                    params: &params,
                },
            );
            assert_eq!(c0[0], value, "{name}: c_0 is the f64 value");
            for k in 1..=order {
                let fd = (plus[k - 1] - minus[k - 1]) / (2.0 * h);
                let want = k as f64 * c0[k];
                assert!(
                    close(fd, want, 1e-6),
                    "{name}: order {order}, k·c_{k} = {want}, central difference {fd}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random expressions.

fn constant() -> BoxedStrategy<Expr> {
    prop_oneof![
        (-8i32..=8).prop_map(|n| num(f64::from(n) / 4.0)),
        (-2.0..2.0f64).prop_map(num),
    ]
    .boxed()
}

fn any_func() -> impl Strategy<Value = Func> {
    prop::sample::select(Func::ALL.to_vec())
}

/// Grows trees of functions, negations and binary operators over `leaf`. `log`, `sqrt` and the
/// general power mostly get a positive argument (`1.1 + a²`) so that most cases stay in domain.
fn grow(leaf: BoxedStrategy<Expr>, depth: u32, size: u32) -> BoxedStrategy<Expr> {
    leaf.prop_recursive(depth, size, 2, |inner| {
        let positive = |a: Expr| add(num(1.1), pow(a, num(2.0)));
        prop_oneof![
            4 => (any_func(), inner.clone(), prop::bool::weighted(0.8)).prop_map(
                move |(f, a, safe)| match f {
                    Func::Log | Func::Sqrt if safe => call(f, positive(a)),
                    _ => call(f, a),
                }
            ),
            1 => inner.clone().prop_map(neg),
            5 => (
                prop::sample::select(vec![BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| bin(op, a, b)),
            1 => (
                prop::sample::select(vec![BinOp::Min, BinOp::Max]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, a, b)| bin(op, a, b)),
            2 => (inner.clone(), -2i32..=3).prop_map(|(a, n)| pow(a, num(f64::from(n)))),
            1 => (inner.clone(), inner.clone(), prop::bool::weighted(0.8)).prop_map(
                move |(a, b, safe)| if safe {
                    pow(positive(a), b)
                } else {
                    pow(a, b)
                }
            ),
        ]
    })
    .boxed()
}

/// A reduction body: window reads `x[i-1..=i+1]`, fixed reads, `t`, parameters.
fn body(with_fixed: bool) -> BoxedStrategy<Expr> {
    let mut leaves = vec![
        (2, constant()),
        (6, (-1i64..=1).prop_map(xw).boxed()),
        (1, (-1i64..=1).prop_map(|k| par_w("c", k)).boxed()),
        (1, Just(t()).boxed()),
        (1, Just(par("s")).boxed()),
    ];
    if with_fixed {
        leaves.push((2, (0i64..3).prop_map(x).boxed()));
    }
    grow(prop::strategy::Union::new_weighted(leaves).boxed(), 3, 10)
        .prop_filter("the body reads a window", |b| !window_reads(b).is_empty())
        .boxed()
}

/// A sum (or sometimes a max) over the widest range the body's windows allow.
fn reduction(with_fixed: bool) -> BoxedStrategy<Expr> {
    (body(with_fixed), prop::bool::weighted(0.15))
        .prop_map(|(b, is_max)| {
            let mut offsets = Vec::new();
            collect_offsets(&b, &mut offsets);
            let lo = offsets.iter().copied().min().unwrap_or(0).min(0);
            let hi = offsets.iter().copied().max().unwrap_or(0).max(0);
            let kind = if is_max {
                ReduceKind::Max
            } else {
                ReduceKind::Sum
            };
            reduce(kind, DimExpr::constant(-lo), DimExpr::dim_plus(-hi), b)
        })
        .boxed()
}

/// The window offsets of the coordinate reads `x[i+k]` in a body.
fn window_reads(e: &Expr) -> Vec<i64> {
    match &e.kind {
        ExprKind::Coord(Index::Window(k)) => vec![*k],
        ExprKind::Call(_, a) | ExprKind::Neg(a) => window_reads(a),
        ExprKind::Binary(_, a, b) => {
            let mut v = window_reads(a);
            v.extend(window_reads(b));
            v
        }
        _ => Vec::new(),
    }
}

/// Whether `e` reads a coordinate (directly or in a reduction).
fn reads_x(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Coord(_) => true,
        ExprKind::Call(_, a) | ExprKind::Neg(a) => reads_x(a),
        ExprKind::Binary(_, a, b) => reads_x(a) || reads_x(b),
        ExprKind::Reduce { body, .. } => reads_x(body),
        _ => false,
    }
}

fn collect_offsets(e: &Expr, out: &mut Vec<i64>) {
    match &e.kind {
        ExprKind::Coord(Index::Window(k)) => out.push(*k),
        ExprKind::Param {
            index: Some(Index::Window(k)),
            ..
        } => out.push(*k),
        ExprKind::Call(_, a) | ExprKind::Neg(a) => collect_offsets(a, out),
        ExprKind::Binary(_, a, b) => {
            collect_offsets(a, out);
            collect_offsets(b, out);
        }
        ExprKind::Reduce { body, .. } => collect_offsets(body, out),
        _ => {}
    }
}

/// A top-level expression over `x[0..3]`, `x[d-1]`, `t`, `d`, parameters and reductions; with
/// `implicit`, also `u` and the term `lap`.
fn expression(implicit: bool) -> BoxedStrategy<Expr> {
    let mut leaves = vec![
        (2, constant()),
        (4, (0i64..3).prop_map(x).boxed()),
        (1, Just(x_end(-1)).boxed()),
        (1, Just(t()).boxed()),
        (1, Just(par("s")).boxed()),
        (1, Just(node(ExprKind::Dim)).boxed()),
        (3, reduction(true)),
        (3, reduction(false)),
    ];
    if implicit {
        leaves.push((1, Just(u()).boxed()));
        leaves.push((1, Just(term("lap")).boxed()));
    }
    grow(prop::strategy::Union::new_weighted(leaves).boxed(), 3, 12)
        .prop_filter("the expression reads x", reads_x)
        .boxed()
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_global_rejects: 100_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        rng_seed: RngSeed::Fixed(0x5eed),
        ..Config::default()
    }
}

/// Whether `e` holds a max reduction (whose derivatives are not derivable).
fn has_max_reduction(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Reduce { kind, .. } => *kind == ReduceKind::Max,
        ExprKind::Call(_, a) | ExprKind::Neg(a) => has_max_reduction(a),
        ExprKind::Binary(_, a, b) => has_max_reduction(a) || has_max_reduction(b),
        _ => false,
    }
}

/// Unwraps an operator result; `None` (skip the case) for the documented not-derivable max
/// reductions, a failure for anything else.
fn derived(r: Result<Expr, stde_core::expr::ExprError>, e: &Expr) -> Option<Expr> {
    match r {
        Ok(d) => Some(d),
        Err(err) => {
            assert!(
                matches!(err.kind, ExprErrorKind::NotDerivable(_)) && has_max_reduction(e),
                "unexpected error {err} for {e:?}"
            );
            None
        }
    }
}

proptest! {
    #![proptest_config(config(192))]

    /// The sparse evaluator (primal once, series of touched windows only) agrees with the general
    /// one on the same curve, also when `t`, `u` or a term moves.
    #[test]
    fn sparse_series_matches_general(
        e in expression(true),
        dim in 3usize..=6,
        seed in 0u64..1_000_000,
        order in 1usize..=4,
        n_slots in 1usize..=3,
        move_time in prop::bool::weighted(0.2),
    ) {
        let scope = test_scope(dim);
        let mut rng = TestRng::new(seed, 1, 0.0);
        let pt = Point::random(dim, &mut rng);
        let slots: Vec<(usize, usize, f64)> = (0..n_slots)
            .map(|_| (rng.below(dim), 1 + rng.below(order), rng.uniform_in(-1.0, 1.0)))
            .collect();
        let moving = if move_time { [0.5, -0.3, 0.7] } else { [0.0; 3] };
        let sparse = pt.series(&scope, &e, order, &slots, moving);
        let mut xs: Vec<Vec<f64>> = pt.x.iter().map(|&v| {
            let mut s = vec![0.0; order + 1];
            s[0] = v;
            s
        }).collect();
        for &(j, k, c) in &slots {
            xs[j][k] += c;
        }
        let line = |v0: f64, v1: f64| {
            let mut s = vec![0.0; order + 1];
            s[0] = v0;
            s[1] = v1;
            s
        };
        let general = eval_series(&e, &SeriesEnv {
            scope: &scope,
            order,
            x: &xs,
            t: &line(pt.t, moving[0]),
            u: &line(pt.u, moving[1]),
            terms: &[line(pt.lap, moving[2])],
            params: &pt.params,
        });
        prop_assume!(general.iter().all(|v| v.is_finite() && v.abs() < 1e8));
        // The primal is the same operations in both: equal, not just close.
        prop_assert!(sparse[0] == general[0], "c_0: {} vs {}", sparse[0], general[0]);
        for k in 1..=order {
            prop_assert!(close(sparse[k], general[k], 1e-10),
                "c_{}: sparse {} vs general {} for {:?}", k, sparse[k], general[k], e);
        }
    }

    /// `simplify` never changes a finite value.
    #[test]
    fn simplify_never_changes_values(e in expression(true), dim in 3usize..=5, seed in 0u64..1_000_000) {
        let scope = test_scope(dim);
        let pt = Point::random(dim, &mut TestRng::new(seed, 2, 0.0));
        let before = pt.eval(&scope, &e);
        prop_assume!(before.is_finite());
        let s = simplify(&e);
        let after = pt.eval(&scope, &s);
        prop_assert!(close(after, before, 1e-14), "{} vs {} for {:?} → {:?}", after, before, e, s);
        prop_assert!(node_count(&s) <= node_count(&e));
    }

    /// `∂e/∂v` for a coordinate, `t`, `u` and a term equals the first Taylor coefficient along
    /// that variable (u and terms are independent variables for `diff`).
    #[test]
    fn diff_matches_jet_oracle(
        e in expression(true),
        dim in 3usize..=5,
        seed in 0u64..1_000_000,
        which in 0usize..4,
    ) {
        let scope = test_scope(dim);
        let mut rng = TestRng::new(seed, 3, 0.0);
        let pt = Point::random(dim, &mut rng);
        let j = rng.below(dim);
        let (var, leaf, slots, moving) = match which {
            0 => (Var::Coord(j), x(j as i64), vec![(j, 1, 1.0)], [0.0; 3]),
            1 => (Var::Time, t(), vec![], [1.0, 0.0, 0.0]),
            2 => (Var::Solution, u(), vec![], [0.0, 1.0, 0.0]),
            _ => (Var::Term("lap".to_owned()), term("lap"), vec![], [0.0, 0.0, 1.0]),
        };
        // Random trees rarely read t, u or the term; this one does, also inside a product.
        let e = add(e.clone(), mul(call(Func::Sin, leaf), e));
        let oracle = pt.series(&scope, &e, 1, &slots, moving);
        prop_assume!(oracle.iter().all(|v| v.is_finite() && v.abs() < 1e8));
        let Some(d) = derived(diff(&e, &var, dim), &e) else { return Ok(()) };
        let got = pt.eval(&scope, &d);
        prop_assume!(got.is_finite());
        let scale = pt.eval(&scope, &magnitude(&d));
        prop_assert!(close(got, oracle[1], 1e-9 * (1.0 + scale)),
            "∂/∂{:?}: {} vs jet {} for {:?} → {:?}", var, got, oracle[1], e, d);
    }

    /// `diff_window(body, k)` at window `i0` is the derivative of the body with respect to
    /// `x[i0+k]` (bodies without fixed reads, so that only the window reads move).
    #[test]
    fn diff_window_matches_jet_oracle(
        b in body(false),
        dim in 4usize..=6,
        seed in 0u64..1_000_000,
        k in -1i64..=1,
    ) {
        let scope = test_scope(dim);
        let mut rng = TestRng::new(seed, 4, 0.0);
        let pt = Point::random(dim, &mut rng);
        let i0 = 1 + rng.below(dim - 2) as i64;
        let one = |body: Expr| sum(DimExpr::constant(i0), DimExpr::constant(i0 + 1), body);
        let oracle = pt.series(&scope, &one(b.clone()), 1, &[((i0 + k) as usize, 1, 1.0)], [0.0; 3]);
        prop_assume!(oracle.iter().all(|v| v.is_finite() && v.abs() < 1e8));
        let d = diff_window(&b, k).expect("bodies hold no reduction");
        let got = pt.eval(&scope, &one(d));
        prop_assume!(got.is_finite());
        prop_assert!(close(got, oracle[1], 1e-9), "{} vs {} for {:?}", got, oracle[1], b);
    }

    /// Every operator against the jet oracle: Laplacian and third diagonal from `k!·c_k` along
    /// each `e_j`, `∇a·∇b` and `Σ b_j ∂_j e` from first coefficients, `∂_t` along `t`, and a random
    /// mixed partial through the planner's pushforwards.
    #[test]
    fn operators_match_jet_oracle(
        e in expression(false),
        other in expression(false),
        dim in 3usize..=5,
        seed in 0u64..1_000_000,
        alpha in prop::collection::vec((0usize..3, 1u32..=2), 1..=2),
    ) {
        let scope = test_scope(dim);
        let pt = Point::random(dim, &mut TestRng::new(seed, 5, 0.0));
        let along = |f: &Expr, j: usize, order: usize| pt.series(&scope, f, order, &[(j, 1, 1.0)], [0.0; 3]);
        let finite = |v: f64| v.is_finite() && v.abs() < 1e8;
        let check = |what: &str, d: &Expr, want: f64| -> Result<(), TestCaseError> {
            if !finite(want) {
                return Ok(());
            }
            let got = pt.eval(&scope, d);
            if !got.is_finite() {
                return Ok(());
            }
            let scale = pt.eval(&scope, &magnitude(d));
            prop_assert!(close(got, want, 1e-8 * (1.0 + scale)),
                "{}: {} vs jet {} for {:?}", what, got, want, e);
            Ok(())
        };

        if let Some(lap) = derived(laplacian(&e, dim), &e) {
            let want: f64 = (0..dim).map(|j| 2.0 * along(&e, j, 2)[2]).sum();
            check("laplacian", &lap, want)?;
        }
        if let Some(d3) = derived(diagonal(&e, 3, dim), &e) {
            let want: f64 = (0..dim).map(|j| 6.0 * along(&e, j, 3)[3]).sum();
            check("diagonal 3", &d3, want)?;
        }
        let g = if has_max_reduction(&other) { None } else { derived(grad_dot(&e, &other, dim), &e) };
        if let Some(g) = g {
            let want: f64 = (0..dim).map(|j| along(&e, j, 1)[1] * along(&other, j, 1)[1]).sum();
            check("grad_dot", &g, want)?;
        }
        if let Some(dir) = derived(directional(&e, "b", dim), &e) {
            let want: f64 = (0..dim).map(|j| pt.params[2][j] * along(&e, j, 1)[1]).sum();
            check("directional", &dir, want)?;
        }
        // Random trees rarely read t; this one does, also through the other tree.
        let et = mul(e.clone(), call(Func::Sin, add(t(), other.clone())));
        let dt = if has_max_reduction(&other) { None } else { derived(time_derivative(&et), &e) };
        if let Some(dt) = dt {
            let want = pt.series(&scope, &et, 1, &[], [1.0, 0.0, 0.0])[1];
            check("time derivative", &dt, want)?;
        }
        let target = MultiIndex::new(&alpha);
        if let Some(p) = derived(partial(&e, &alpha, dim), &e) {
            let want = planned(&pt, &scope, &e, &target);
            check(&format!("partial {target}"), &p, want)?;
        }
    }

    /// The biharmonic against `Σ_j ∂_j⁴ + 2 Σ_{j<l} ∂_j²∂_l²` from the planner's pushforwards.
    #[test]
    fn biharmonic_matches_jet_oracle(
        e in expression(false),
        dim in 3usize..=4,
        seed in 0u64..1_000_000,
    ) {
        let scope = test_scope(dim);
        let pt = Point::random(dim, &mut TestRng::new(seed, 6, 0.0));
        let Some(b) = derived(biharmonic(&e, dim), &e) else { return Ok(()) };
        let mut want = 0.0;
        for j in 0..dim {
            want += planned(&pt, &scope, &e, &MultiIndex::new(&[(j, 4)]));
            for l in j + 1..dim {
                want += 2.0 * planned(&pt, &scope, &e, &MultiIndex::new(&[(j, 2), (l, 2)]));
            }
        }
        prop_assume!(want.is_finite() && want.abs() < 1e8);
        let got = pt.eval(&scope, &b);
        prop_assume!(got.is_finite());
        let scale = pt.eval(&scope, &magnitude(&b));
        prop_assert!(close(got, want, 1e-7 * (1.0 + scale)), "{} vs {} for {:?}", got, want, e);
    }
}

/// `∂^α e` at the point from the planner's one-hot pushforwards through the sparse evaluator.
fn planned(pt: &Point, scope: &Scope, e: &Expr, target: &MultiIndex) -> f64 {
    let plan = plan(target, &PlannerParams::default()).expect("small targets have plans");
    let outputs: Vec<Vec<f64>> = plan
        .jets
        .iter()
        .map(|jet| {
            let slots: Vec<(usize, usize, f64)> = jet
                .slots
                .iter()
                .filter(|&&(slot, _)| slot <= jet.order)
                .map(|&(slot, _)| {
                    let (var, c) = jet.input_taylor_coefficient(slot).expect("active slot");
                    (var, slot, c)
                })
                .collect();
            taylor_to_derivative(&pt.series(scope, e, jet.order, &slots, [0.0; 3]))
        })
        .collect();
    plan.combine(&outputs)[0]
}

// ---------------------------------------------------------------------------------------------
// Symbolic derivatives: specific rules.

#[test]
fn simplify_removes_neutral_elements_and_folds_constants() {
    let cases = vec![
        (add(x(0), num(0.0)), x(0)),
        (add(num(0.0), x(0)), x(0)),
        (sub(x(0), num(0.0)), x(0)),
        (sub(num(0.0), x(0)), neg(x(0))),
        (mul(x(0), num(1.0)), x(0)),
        (mul(num(0.0), call(Func::Exp, x(1))), num(0.0)),
        (div(num(0.0), x(1)), num(0.0)),
        (div(x(1), num(1.0)), x(1)),
        (neg(neg(x(0))), x(0)),
        (neg(num(2.0)), num(-2.0)),
        (pow(x(0), num(1.0)), x(0)),
        (pow(x(0), num(0.0)), num(1.0)),
        (
            mul(add(num(2.0), num(3.0)), call(Func::Cos, num(0.0))),
            num(5.0),
        ),
        (mul(neg(x(0)), neg(x(1))), mul(x(0), x(1))),
        (add(x(0), neg(x(1))), sub(x(0), x(1))),
        (sum(ZERO, D, mul(num(0.0), xw(0))), num(0.0)),
        (sum(D, DimExpr::dim_plus(-1), xw(0)), num(0.0)),
    ];
    for (before, after) in cases {
        assert_eq!(simplify(&before), after, "simplify({before:?})");
    }
}

#[test]
fn min_max_abs_derivatives_follow_the_selected_operand() {
    let scope = test_scope(2);
    let mut pt = Point {
        x: vec![0.3, -0.4],
        t: 0.0,
        u: 0.0,
        lap: 0.0,
        params: vec![vec![1.0], vec![0.0; 2], vec![0.0; 2]],
    };
    let a = mul(x(0), x(0));
    let b = mul(num(3.0), x(0));
    for (op, pick_a_below) in [(BinOp::Min, true), (BinOp::Max, false)] {
        let e = bin(op, a.clone(), b.clone());
        let d = diff(&e, &Var::Coord(0), 2).expect("min/max are derivable a.e.");
        for x0 in [-0.5, 0.5, 2.0, 4.0] {
            pt.x[0] = x0;
            // x² < 3x on (0, 3).
            let a_below = x0 > 0.0 && x0 < 3.0;
            let want = if a_below == pick_a_below {
                2.0 * x0
            } else {
                3.0
            };
            assert!(close(pt.eval(&scope, &d), want, 1e-15), "{op:?} at {x0}");
        }
    }
    let d = diff(&call(Func::Abs, x(1)), &Var::Coord(1), 2).expect("abs is derivable a.e.");
    assert_eq!(pt.eval(&scope, &d), -1.0);
    // The derivative of sign(z) = z/|z| is 0: abs'' vanishes symbolically.
    let d2 = diff(&d, &Var::Coord(1), 2).expect("sign is derivable a.e.");
    assert_eq!(d2, num(0.0));
}

#[test]
fn max_reductions_over_coordinates_are_not_derivable() {
    let m = reduce(ReduceKind::Max, ZERO, D, mul(xw(0), t()));
    let err = diff(&m, &Var::Coord(1), 4).expect_err("max over x is not derivable");
    assert!(matches!(err.kind, ExprErrorKind::NotDerivable(_)), "{err}");
    assert!(laplacian(&m, 4).is_err());
    assert!(diff(&m, &Var::Time, 4).is_err());
    // A body that does not depend on the variable has derivative 0.
    assert_eq!(
        diff(&m, &Var::Solution, 4).expect("independent of u"),
        num(0.0)
    );
    let params_only = reduce(ReduceKind::Max, ZERO, D, par_w("c", 0));
    assert_eq!(
        laplacian(&params_only, 4).expect("independent of x"),
        num(0.0)
    );
}

#[test]
fn operators_reject_the_solution_and_terms() {
    for e in [mul(u(), x(0)), add(term("lap"), x(0))] {
        for r in [
            laplacian(&e, 3),
            partial(&e, &[(0, 1)], 3),
            time_derivative(&e),
        ] {
            let err = r.expect_err("u and terms depend on x implicitly");
            assert!(matches!(err.kind, ExprErrorKind::NotDerivable(_)), "{err}");
        }
    }
    let err = partial(&x(0), &[(3, 1)], 3).expect_err("x[3] is outside dimension 3");
    assert!(matches!(err.kind, ExprErrorKind::NotDerivable(_)), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The paper's exact solutions: derived operators against the closed forms, at every dimension.

const DIMS: [usize; 6] = [2, 3, 5, 10, 100, 1000];

#[test]
fn laplacian_of_exact_solutions_matches_closed_forms_with_size_independent_of_d() {
    let mut rng = TestRng::new(14, 0, 0.0);
    for sol in ExactSolution::ALL {
        let u_star = exact_solution(sol);
        let mut sizes = Vec::new();
        for dim in DIMS {
            if dim < sol.min_dim() {
                continue;
            }
            let p = Problem::new(Equation::SineGordon, sol, dim, 7).expect("dim is large enough");
            let scope = pde_scope(sol, dim);
            let lap = laplacian(&u_star, dim).expect("u* is derivable");
            sizes.push((dim, node_count(&lap)));
            // The manufactured forcing g = Δu* + sin(u*), derived here and never by hand.
            let forcing = add(lap.clone(), call(Func::Sin, u_star.clone()));
            for x in rng.ball_points(8, dim, 1.0).chunks(dim) {
                let env = Env {
                    scope: &scope,
                    x,
                    t: 0.0,
                    u: 0.0,
                    terms: &[],
                    params: std::slice::from_ref(&p.coeffs),
                };
                let (got, want) = (eval(&lap, &env), p.laplacian(x));
                assert!(
                    (got - want).abs() <= 1e-10 * want.abs().max(1.0),
                    "{sol:?} d={dim}: Δu* = {got}, closed form {want}"
                );
                let (g, g_want) = (eval(&forcing, &env), p.forcing(x));
                assert!(
                    (g - g_want).abs() <= 1e-10 * g_want.abs().max(1.0),
                    "{sol:?} d={dim}: g = {g}, closed form {g_want}"
                );
            }
        }
        let first = sizes[0].1;
        assert!(
            sizes.iter().all(|&(_, n)| n == first),
            "{sol:?}: the size of Δu* must not depend on d: {sizes:?}"
        );
    }
}

#[test]
fn gradient_of_exact_solutions_matches_closed_forms_with_size_independent_of_d() {
    let mut rng = TestRng::new(15, 0, 0.0);
    for sol in ExactSolution::ALL {
        let u_star = exact_solution(sol);
        let mut sizes = Vec::new();
        for dim in DIMS {
            if dim < sol.min_dim() {
                continue;
            }
            let p = Problem::new(Equation::Poisson, sol, dim, 8).expect("dim is large enough");
            let scope = pde_scope(sol, dim);
            let x = rng.ball_points(1, dim, 1.0);
            let mut grad = vec![0.0; dim];
            p.gradient(&x, &mut grad);
            let env = Env {
                scope: &scope,
                x: &x,
                t: 0.0,
                u: 0.0,
                terms: &[],
                params: std::slice::from_ref(&p.coeffs),
            };
            for j in [0, dim / 2, dim - 1] {
                let dj = partial(&u_star, &[(j, 1)], dim).expect("u* is derivable");
                if j == dim / 2 {
                    sizes.push((dim, node_count(&dj)));
                }
                let got = eval(&dj, &env);
                assert!(
                    (got - grad[j]).abs() <= 1e-11 * grad[j].abs().max(1.0),
                    "{sol:?} d={dim} j={j}: {got} vs {}",
                    grad[j]
                );
            }
        }
        // Interior coordinates touch the same number of windows at every d ≥ 5.
        let interior: Vec<_> = sizes.iter().filter(|&&(d, _)| d >= 5).collect();
        assert!(
            interior.iter().all(|&&(_, n)| n == interior[0].1),
            "{sol:?}: ∂u*/∂x_j must not grow with d: {sizes:?}"
        );
    }
}

#[test]
fn grad_dot_of_norm_and_exact_solution_is_one_windowed_sum_per_window_offset() {
    // ∇‖x‖²·∇S = Σ_j 2x_j ∂_j S: with S = Σ c_i sin θ_i, the sum over j of the two window offsets.
    let sol = ExactSolution::TwoBody;
    let norm = sum(ZERO, D, pow(xw(0), num(2.0)));
    let s = match &exact_solution(sol).kind {
        ExprKind::Binary(_, _, s) => (**s).clone(),
        _ => unreachable!("u* is φ·S"),
    };
    let mut rng = TestRng::new(16, 0, 0.0);
    let mut sizes = Vec::new();
    for dim in [10usize, 1000] {
        let p = Problem::new(Equation::Poisson, sol, dim, 9).expect("dim is large enough");
        let scope = pde_scope(sol, dim);
        let g = grad_dot(&norm, &s, dim).expect("derivable");
        sizes.push(node_count(&g));
        let x = rng.ball_points(1, dim, 1.0);
        // x·∇S from the closed-form gradient of u* = φS: ∇u* = φ∇S − 2S·x.
        let mut grad = vec![0.0; dim];
        p.gradient(&x, &mut grad);
        let phi_x = 1.0 - x.iter().map(|v| v * v).sum::<f64>();
        let s_x = p.exact(&x) / phi_x;
        let want: f64 = (0..dim)
            .map(|j| 2.0 * x[j] * (grad[j] + 2.0 * s_x * x[j]) / phi_x)
            .sum();
        let env = Env {
            scope: &scope,
            x: &x,
            t: 0.0,
            u: 0.0,
            terms: &[],
            params: std::slice::from_ref(&p.coeffs),
        };
        let got = eval(&g, &env);
        assert!(close(got, want, 1e-10), "d={dim}: {got} vs {want}");
    }
    assert_eq!(sizes[0], sizes[1], "the size must not depend on d");
}
