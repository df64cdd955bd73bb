//! The text syntax of the problem language: malformed inputs and their exact errors, the paper's
//! expressions, precedence, print/parse round trips and fuzzing of the parser and checker.

use proptest::prelude::*;
use proptest::strategy::Union;
use stde_core::expr::build::*;
use stde_core::expr::{
    check, parse, BinOp, DimExpr, Expr, ExprError, ExprErrorKind, ExprKind, Func, Index,
    ParamShape, ReduceKind, Scope,
};

/// A residual: the solution and the term `lap` are readable, no time; `c` has `d-1` elements,
/// `w` has `d`, `k` has 3, `g` is a scalar.
fn residual() -> Scope {
    Scope {
        dim: 10,
        has_time: false,
        has_solution: true,
        terms: vec!["lap".to_string()],
        params: vec![
            ("c".to_string(), ParamShape::Array(DimExpr::dim_plus(-1))),
            ("g".to_string(), ParamShape::Scalar),
            ("w".to_string(), ParamShape::Array(DimExpr::dim_plus(0))),
            ("k".to_string(), ParamShape::Array(DimExpr::constant(3))),
        ],
    }
}

/// A forcing term of the same problem: no solution, no time.
fn forcing() -> Scope {
    Scope {
        has_solution: false,
        ..residual()
    }
}

/// A time-dependent residual with the term `u_t`.
fn heat() -> Scope {
    Scope {
        has_time: true,
        terms: vec!["lap".to_string(), "u_t".to_string()],
        ..residual()
    }
}

fn parse_and_check(src: &str, scope: &Scope) -> Result<Expr, ExprError> {
    check(&parse(src)?, scope)
}

fn ok(src: &str, scope: &Scope) -> Expr {
    parse_and_check(src, scope).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

#[derive(Clone, Copy, Debug)]
enum S {
    Residual,
    Forcing,
    Heat,
}

struct Case {
    src: String,
    scope: S,
    kind: fn(&ExprErrorKind) -> bool,
    line: u32,
    col: u32,
}

macro_rules! case {
    ($src:expr, $scope:ident, $pat:pat $(if $guard:expr)?, $line:expr, $col:expr) => {
        Case {
            src: String::from($src),
            scope: S::$scope,
            kind: |k| matches!(k, $pat $(if $guard)?),
            line: $line,
            col: $col,
        }
    };
}

#[test]
fn malformed_expressions_report_one_error_at_the_mistake() {
    use ExprErrorKind as K;
    let deep_parens = format!("{}u{}", "(".repeat(250), ")".repeat(250));
    let deep_signs = format!("{}u", "-".repeat(300));
    let deep_powers = format!("2{}", "^2".repeat(300));
    let long_sum = format!("u{}", " + u".repeat(1100));
    let cases = [
        // Empty input and lexical errors.
        case!("", Residual, K::Expected { found, .. } if found == "end of input", 1, 1),
        case!(
            "   \n  # only a comment\n",
            Residual,
            K::Expected { .. },
            3,
            1
        ),
        case!("1e", Residual, K::BadNumber(s) if s == "1e", 1, 1),
        case!("1.2.3", Residual, K::BadNumber(s) if s == "1.2.3", 1, 1),
        case!("x[0] + 2e+", Residual, K::BadNumber(_), 1, 8),
        case!("1e999", Residual, K::BadNumber(_), 1, 1),
        case!("3ex", Residual, K::BadNumber(s) if s == "3ex", 1, 1),
        case!("x[0] $ 2", Residual, K::UnexpectedChar('$'), 1, 6),
        case!("u + é", Residual, K::UnexpectedChar('é'), 1, 5),
        case!("x[0] . 2", Residual, K::UnexpectedChar('.'), 1, 6),
        case!("x[0] ** 2", Residual, K::Expected { found, .. } if found == "`*`", 1, 7),
        case!("2^", Residual, K::Expected { .. }, 1, 3),
        case!("in + 1", Residual, K::Expected { .. }, 1, 1),
        // Parentheses.
        case!("(x[0] + 1", Residual, K::Unbalanced(_), 1, 1),
        case!("x[0] + 1)", Residual, K::Unbalanced(_), 1, 9),
        case!("sin(x[0]", Residual, K::Unbalanced(_), 1, 4),
        case!("((u)", Residual, K::Unbalanced(_), 1, 1),
        case!("(u))", Residual, K::Unbalanced(_), 1, 4),
        case!("u + )", Residual, K::Unbalanced(_), 1, 5),
        case!(")", Residual, K::Unbalanced(_), 1, 1),
        case!("sin(u +\n  cos(x[1])", Residual, K::Unbalanced(_), 1, 4),
        case!("u\n  + sin(u) )", Residual, K::Unbalanced(_), 2, 12),
        case!("(u,  1)", Residual, K::Expected { expected, .. } if expected.contains("`)`"), 1, 3),
        case!("sin(u + )", Residual, K::Expected { found, .. } if found == "`)`", 1, 9),
        // Unknown functions and arity.
        case!("foo(x[0])", Residual, K::UnknownFunction { name, known } if name == "foo" && known.contains("atan"), 1, 1),
        case!(
            "u + \n  sinh(x[0])",
            Residual,
            K::UnknownFunction { .. },
            2,
            3
        ),
        case!("u +\tfoo(x[0])", Residual, K::UnknownFunction { .. }, 1, 5),
        case!("lap(u)", Residual, K::UnknownFunction { .. }, 1, 1),
        case!("t(1 + x[0])", Heat, K::UnknownFunction { .. }, 1, 1),
        case!("sin(x[0], 1)", Residual, K::Arity { got: 2, .. }, 1, 1),
        case!("min(u)", Residual, K::Arity { got: 1, .. }, 1, 1),
        case!("max(u, 1, 2)", Residual, K::Arity { got: 3, .. }, 1, 1),
        case!("exp()", Residual, K::Arity { got: 0, .. }, 1, 1),
        case!(
            "1 + sum(i in 0..d, x[i], 1)",
            Residual,
            K::Arity { got: 3, .. },
            1,
            5
        ),
        case!("sin x[0]", Residual, K::Expected { .. }, 1, 5),
        case!("norm2(y)", Residual, K::Expected { .. }, 1, 7),
        case!("norm2", Residual, K::Expected { .. }, 1, 6),
        // Trailing tokens.
        case!("x[0] x[1]", Residual, K::Expected { .. }, 1, 6),
        case!("2 3", Residual, K::Expected { .. }, 1, 3),
        case!("2x", Residual, K::Expected { found, .. } if found == "`x`", 1, 2),
        // Types.
        case!("x + 1", Residual, K::Type(_), 1, 1),
        case!("t[0]", Heat, K::Type(_), 1, 1),
        case!("u[1]", Residual, K::Type(_), 1, 1),
        case!("d[1]", Residual, K::Type(_), 1, 1),
        case!("c + 1", Residual, K::Type(_), 1, 1),
        case!("g[0]", Residual, K::Type(_), 1, 1),
        case!("lap[0]", Residual, K::Type(_), 1, 1),
        case!("sum(i in 0..d, i)", Residual, K::Type(_), 1, 16),
        // Names.
        case!("lapp + u", Residual, K::UnknownName { hint, .. } if hint.contains("`lap`"), 1, 1),
        case!("u + q", Residual, K::UnknownName { hint, .. } if hint.is_empty(), 1, 5),
        case!("q[0]", Residual, K::UnknownName { .. }, 1, 1),
        case!("x[0] +\r\n bar", Residual, K::UnknownName { .. }, 2, 2),
        case!("sum(i in 0..d, x[j])", Residual, K::UnknownName { name, .. } if name == "j", 1, 18),
        // Terms used but not defined.
        case!("biharm + u", Residual, K::UndefinedTerm { defined, .. } if defined == "lap", 1, 1),
        case!("u_t - lap", Residual, K::UndefinedTerm { name, .. } if name == "u_t", 1, 1),
        case!(
            "sin(x[0]) + laplacian",
            Forcing,
            K::UndefinedTerm { .. },
            1,
            13
        ),
        // Time and the solution.
        case!("sin(t)", Residual, K::NoTime, 1, 5),
        case!("x[0] *\n   exp(-t)", Forcing, K::NoTime, 2, 9),
        case!("u^2", Forcing, K::NoSolution(_), 1, 1),
        case!("1 + lap", Forcing, K::NoSolution(_), 1, 5),
        // Windows and indices.
        case!("x[i]", Residual, K::WindowOutsideReduction(w) if w == "i", 1, 3),
        case!("c[j+1] * 2", Residual, K::WindowOutsideReduction(w) if w == "j+1", 1, 3),
        case!(
            "sum(i in 0..d-1, x[i+2])",
            Residual,
            K::WindowOutOfRange(m) if m.contains("x[i+2] reads x[d] at i = d-2") && m.contains("(d = 10)"),
            1,
            18
        ),
        case!("sum(i in 0..d, x[i-1])", Residual, K::WindowOutOfRange(m) if m.contains("x[-1] at i = 0"), 1, 16),
        case!("sum(i in 0..d, c[i])", Residual, K::WindowOutOfRange(m) if m.contains("c[d-1]"), 1, 16),
        case!(
            "max(j in 1..d, k[j-1])",
            Residual,
            K::WindowOutOfRange(_),
            1,
            16
        ),
        case!(
            "x[0]\n  + sum(i in 0..d,\n        x[i+1])",
            Residual,
            K::WindowOutOfRange(_),
            3,
            9
        ),
        case!("x[d]", Residual, K::IndexOutOfRange(_), 1, 1),
        case!("x[10]", Residual, K::IndexOutOfRange(_), 1, 1),
        case!("x[-1]", Residual, K::IndexOutOfRange(_), 1, 1),
        case!("k[3]", Residual, K::IndexOutOfRange(_), 1, 1),
        case!("x[99999999999]", Residual, K::IndexOutOfRange(_), 1, 1),
        case!("x[99999999999999999999]", Residual, K::BadNumber(_), 1, 3),
        case!("x[1.5]", Residual, K::Expected { .. }, 1, 3),
        case!("x[0", Residual, K::Expected { .. }, 1, 4),
        case!("x[]", Residual, K::Expected { .. }, 1, 3),
        // Reductions.
        case!(
            "sum(i in 0..d, sum(j in 0..d, x[j]))",
            Residual,
            K::NestedReduction,
            1,
            16
        ),
        case!(
            "sum(i in 0..d, x[i]*norm2(x))",
            Residual,
            K::NestedReduction,
            1,
            21
        ),
        case!("max(i in 5..3, x[i])", Residual, K::EmptyRange(_), 1, 1),
        case!(
            "1 + max(i in 0..d-10, x[i])",
            Residual,
            K::EmptyRange(_),
            1,
            5
        ),
        case!("sum(x[0])", Residual, K::Expected { .. }, 1, 5),
        case!("sum(i of 0..d, x[i])", Residual, K::Expected { .. }, 1, 7),
        case!(
            "sum(i in 0...d, x[i])",
            Residual,
            K::UnexpectedChar('.'),
            1,
            13
        ),
        case!(
            "sum(i in 0..1.5, x[i])",
            Residual,
            K::Expected { .. },
            1,
            13
        ),
        case!("sum(i in 0..d x[i])", Residual, K::Expected { .. }, 1, 15),
        case!("sum(d in 0..d, x[d])", Residual, K::Expected { .. }, 1, 5),
        // Deep nesting.
        case!(deep_parens, Residual, K::TooDeep { limit: 200 }, 1, 201),
        case!(deep_signs, Residual, K::TooDeep { limit: 200 }, 1, 201),
        case!(deep_powers, Residual, K::TooDeep { limit: 200 }, 1, 401),
        case!(long_sum, Residual, K::TooDeep { limit: 1000 }, 1, 3999),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let scope = match case.scope {
            S::Residual => residual(),
            S::Forcing => forcing(),
            S::Heat => heat(),
        };
        match parse_and_check(&case.src, &scope) {
            Ok(e) => failures.push(format!("{:?}: accepted as {e}", case.src)),
            Err(err) => {
                let text = err.to_string();
                let right = (case.kind)(&err.kind)
                    && (err.span.line, err.span.col) == (case.line, case.col)
                    && !text.contains('\n')
                    && text.starts_with(&format!("line {}, column {}: ", case.line, case.col));
                if !right {
                    failures.push(format!(
                        "{:?} ({:?}): got {:?} at {}:{}: {text}",
                        case.src, case.scope, err.kind, err.span.line, err.span.col
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn paper_expressions_parse_and_check() {
    let r = residual();
    let two_body = ok(
        "(1 - norm2(x)) * sum(i in 0..d-1, c[i]*sin(x[i] + cos(x[i+1]) + x[i+1]*cos(x[i])))",
        &forcing(),
    );
    let ExprKind::Binary(BinOp::Mul, _, reduction) = &two_body.kind else {
        panic!("not a product: {two_body}");
    };
    assert!(matches!(
        reduction.kind,
        ExprKind::Reduce {
            kind: ReduceKind::Sum,
            lo: DimExpr {
                with_dim: false,
                offset: 0
            },
            hi: DimExpr {
                with_dim: true,
                offset: -1
            },
            ..
        }
    ));
    ok("sum(i in 0..d-2, c[i]*exp(x[i]*x[i+1]*x[i+2]))", &r);
    ok("atan(max(i in 0..d, x[i]))", &r);
    ok("# Sine-Gordon\nlap + sin(u)  # the nonlinearity\n  - g", &r);
    ok("u_t - lap - w[0]*exp(-t)", &heat());
    ok("sum(j in 1..d, w[j-1]*x[j]) + x[d-1] + pi*d", &r);
    ok("sum(i in 0..d-20, x[i+50])", &r); // empty range: no window is read
}

#[test]
fn check_resolves_bare_names_to_terms_and_scalar_parameters() {
    let e = ok("lap + sin(u) - g", &residual());
    let expected = term("lap") + sin(u()) - param("g");
    assert!(e.same_as(&expected), "{e:?}");
    let ExprKind::Binary(_, _, g) = &e.kind else {
        panic!("not a difference");
    };
    assert_eq!((g.span.col, g.span.start, g.span.end), (16, 15, 16));
    // Unresolved, the parser's tree differs only in the bare name.
    let parsed = parse("lap + sin(u) - g").unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.same_as(&(term("lap") + sin(u()) - term("g"))));
}

#[test]
fn builder_output_passes_the_checker() {
    let e = (1.0 - norm2())
        * sum(
            DimExpr::constant(0),
            DimExpr::dim_plus(-1),
            param_win("c", 0) * exp(x_win(0) * x_win(1)),
        )
        + max_over(DimExpr::constant(0), DimExpr::dim_plus(0), abs(x_win(0)))
        - 2.0 * param("g") / dim()
        + pow(x_at(DimExpr::dim_plus(-1)), 3.0)
        + min(tanh(u()), atan(sqrt(log(2.0 + x(0) * x(0)))));
    let checked = check(&e, &residual()).unwrap_or_else(|err| panic!("{err}"));
    assert!(checked.same_as(&e));
    let reparsed = ok(&e.to_string(), &residual());
    assert!(reparsed.same_as(&e), "{e}");
    let err = check(&(x_win(1) + 1.0), &residual()).err();
    assert!(matches!(
        err.map(|e| e.kind),
        Some(ExprErrorKind::WindowOutsideReduction(_))
    ));
    let err = check(&call(Func::Sin, t()), &residual()).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(ExprErrorKind::NoTime.to_string())
    );
}

#[test]
fn precedence_follows_the_grammar() {
    let cases: [(&str, Expr); 9] = [
        ("-x[0]^2", -pow(x(0), 2.0)),
        ("2^3^2", pow(2.0, pow(3.0, 2.0))),
        ("a-b-c", term("a") - term("b") - term("c")),
        ("a/b*c", term("a") / term("b") * term("c")),
        ("a+b*c^2", term("a") + term("b") * pow(term("c"), 2.0)),
        ("2^-1", pow(2.0, -konst(1.0))),
        ("-a*b", -term("a") * term("b")),
        ("a - -b", term("a") - -term("b")),
        (
            "(a+b)*(c-a)",
            (term("a") + term("b")) * (term("c") - term("a")),
        ),
    ];
    for (src, expected) in cases {
        let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(e.same_as(&expected), "{src}: {e:?}");
    }
}

#[test]
fn nesting_below_the_limits_parses() {
    let parens = format!("{}u{}", "(".repeat(199), ")".repeat(199));
    assert!(parse(&parens).is_ok());
    let long_sum = format!("u{}", " + u".repeat(999));
    assert!(parse(&long_sum).is_ok());
    let e = parse(&long_sum).unwrap_or_else(|e| panic!("{e}"));
    assert!(check(&e, &residual()).is_ok());
    assert_eq!(e.to_string(), long_sum);
    let powers = format!("2{}", "^-2".repeat(99));
    let e = parse(&powers).unwrap_or_else(|e| panic!("{e}"));
    assert!(check(&e, &residual()).is_ok());
    assert_eq!(e.to_string(), powers);
}

#[test]
fn spans_are_exact_on_multi_line_input() {
    let src = "  sin(x[0])\n\t+ c[\n 2 ]";
    let e = parse(src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (e.span.line, e.span.col, e.span.start, e.span.end),
        (1, 3, 2, 22)
    );
    let ExprKind::Binary(BinOp::Add, a, b) = &e.kind else {
        panic!("not a sum");
    };
    assert_eq!(
        (a.span.line, a.span.col, a.span.start, a.span.end),
        (1, 3, 2, 11)
    );
    assert_eq!(
        (b.span.line, b.span.col, b.span.start, b.span.end),
        (2, 4, 15, 22)
    );
    assert_eq!(src.get(15..22), Some("c[\n 2 ]"));
}

// ---------------------------------------------------------------------------------------------
// Property tests

/// Offsets of indices, bounds and windows: small, or with `wild` also any `i64`.
fn offset(small: i64, wild: bool) -> BoxedStrategy<i64> {
    if wild {
        prop_oneof![4 => -small..small, 1 => any::<i64>()].boxed()
    } else {
        (-small..small).boxed()
    }
}

fn dim_expr(wild: bool) -> impl Strategy<Value = DimExpr> {
    (any::<bool>(), offset(12, wild)).prop_map(|(with_dim, offset)| DimExpr { with_dim, offset })
}

fn constant() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..100).prop_map(f64::from),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(f64::abs),
        Just(std::f64::consts::PI),
        Just(0.5),
    ]
}

fn leaf(windows: bool, wild: bool) -> BoxedStrategy<Expr> {
    let mut options = vec![
        constant().prop_map(konst).boxed(),
        Just(dim()).boxed(),
        Just(t()).boxed(),
        Just(u()).boxed(),
        prop::sample::select(vec!["lap", "g", "c2", "u_t", "in_x"])
            .prop_map(term)
            .boxed(),
        dim_expr(wild).prop_map(x_at).boxed(),
        dim_expr(wild)
            .prop_map(|j| param_at("c", Index::Fixed(j)))
            .boxed(),
    ];
    if windows {
        options.push(offset(4, wild).prop_map(x_win).boxed());
        options.push(offset(4, wild).prop_map(|k| param_win("w", k)).boxed());
    }
    Union::new(options).boxed()
}

fn binop() -> impl Strategy<Value = BinOp> {
    prop::sample::select(vec![
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Pow,
        BinOp::Min,
        BinOp::Max,
    ])
}

/// Trees of functions and operators, and reductions whose bodies read windows; `wild` allows
/// any `i64` as an offset (such trees need not print to parseable text).
fn tree(wild: bool) -> BoxedStrategy<Expr> {
    leaf(false, wild)
        .prop_recursive(6, 48, 2, move |inner| {
            let mut options = vec![
                (prop::sample::select(Func::ALL.to_vec()), inner.clone())
                    .prop_map(|(f, a)| call(f, a))
                    .boxed(),
                inner.clone().prop_map(|a| -a).boxed(),
                (binop(), inner.clone(), inner)
                    .prop_map(|(op, a, b)| binary(op, a, b))
                    .boxed(),
            ];
            options.push(
                (
                    any::<bool>(),
                    prop::sample::select(vec!["i", "j", "k2", "idx"]),
                    dim_expr(wild),
                    dim_expr(wild),
                    body(wild),
                )
                    .prop_map(|(is_sum, var, lo, hi, body)| {
                        Expr::new(ExprKind::Reduce {
                            kind: if is_sum {
                                ReduceKind::Sum
                            } else {
                                ReduceKind::Max
                            },
                            var: var.to_string(),
                            lo,
                            hi,
                            body: Box::new(body),
                        })
                    })
                    .boxed(),
            );
            Union::new(options)
        })
        .boxed()
}

/// Reduction bodies: windows allowed, no reductions.
fn body(wild: bool) -> BoxedStrategy<Expr> {
    leaf(true, wild)
        .prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (prop::sample::select(Func::ALL.to_vec()), inner.clone())
                    .prop_map(|(f, a)| call(f, a)),
                inner.clone().prop_map(|a| -a),
                (binop(), inner.clone(), inner).prop_map(|(op, a, b)| binary(op, a, b)),
            ]
        })
        .boxed()
}

/// Tokens of the language, so that random sequences reach deep into the grammar.
const TOKENS: [&str; 34] = [
    "x", "[", "]", "i", "in", "sum", "max", "min", "norm2", "(", ")", "0", "1", "..", "d", "-",
    "+", "*", "/", "^", ",", "u", "t", "sin", "exp", "c", "w", "g", "lap", "2.5", "1e-3", "pi",
    "#\n", "\n",
];

/// Every name the random trees use, at dimension `dim`.
fn every_name(dim: usize) -> Scope {
    Scope {
        dim,
        has_time: true,
        has_solution: true,
        terms: vec!["lap".to_string(), "u_t".to_string()],
        params: vec![
            ("g".to_string(), ParamShape::Scalar),
            ("c2".to_string(), ParamShape::Scalar),
            ("in_x".to_string(), ParamShape::Scalar),
            ("c".to_string(), ParamShape::Array(DimExpr::dim_plus(-1))),
            ("w".to_string(), ParamShape::Array(DimExpr::dim_plus(0))),
        ],
    }
}

fn fuzz_scope() -> Scope {
    Scope {
        dim: 3,
        has_time: true,
        ..residual()
    }
}

/// Parsing and checking never panic, and whatever parses prints to text that parses back to it.
fn parse_check_print(src: &str) -> Result<(), TestCaseError> {
    if let Ok(e) = parse(src) {
        let _ = check(&e, &fuzz_scope());
        let printed = e.to_string();
        match parse(&printed) {
            Ok(again) => prop_assert!(again.same_as(&e), "{src:?} printed as {printed:?}"),
            Err(err) => prop_assert!(false, "{src:?} printed as {printed:?}: {err}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(e in tree(false)) {
        let printed = e.to_string();
        match parse(&printed) {
            Ok(again) => prop_assert!(again.same_as(&e), "{printed:?}\n{e:?}\n{again:?}"),
            Err(err) => prop_assert!(false, "{printed:?}: {err}"),
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        parse_check_print(&s)?;
    }

    #[test]
    fn strings_of_the_token_alphabet_never_panic(s in "[a-z0-9()+*/^.,\\[\\] \n#_-]{0,40}") {
        parse_check_print(&s)?;
    }

    #[test]
    fn token_sequences_never_panic(tokens in prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..12)) {
        parse_check_print(&tokens.join(" "))?;
    }

    #[test]
    fn mutated_printed_trees_never_panic(
        e in tree(false),
        at in any::<prop::sample::Index>(),
        cut in 0usize..4,
        insert in prop::sample::select(TOKENS.to_vec()),
    ) {
        let mut chars: Vec<char> = e.to_string().chars().collect();
        let at = at.index(chars.len() + 1);
        let end = (at + cut).min(chars.len());
        chars.splice(at..end, insert.chars());
        parse_check_print(&chars.into_iter().collect::<String>())?;
    }

    #[test]
    fn checking_any_tree_never_panics(e in tree(true)) {
        for scope in [residual(), heat(), every_name(0), every_name(3), every_name(20)] {
            if let Ok(checked) = check(&e, &scope) {
                // Resolving a name changes `Term` into `Param` only, which prints the same.
                prop_assert_eq!(checked.to_string(), e.to_string());
            }
        }
    }
}
