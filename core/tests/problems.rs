//! Problems as data: every shipped problem file reads and instantiates, its derived (manufactured)
//! forcing and its exact solution equal the closed forms of `pde.rs` through both the expression
//! evaluator and the lowered program, and malformed problem files get one located error each.

use stde_core::expr::eval::{eval, Env};
use stde_core::pde::{Problem, ProblemKind};
use stde_core::problem::{self, builtin, ProblemFileError};
use stde_core::program::interp::run_primal;
use stde_core::rng;

fn ball_points(seed: u64, n: usize, d: usize) -> Vec<f64> {
    let mut pts = vec![0.0f32; n * d];
    rng::sample_ball_points(seed, rng::streams::TEST_POINTS, 0, n, d, &mut pts);
    pts.iter().map(|&v| f64::from(v)).collect()
}

#[test]
fn shipped_problems_read_and_name_themselves() {
    for (name, _) in problem::BUILTIN {
        let spec = builtin(name).expect("listed").expect("reads");
        assert_eq!(spec.name, name);
        assert!(!spec.description.is_empty());
    }
    assert!(builtin("no-such-problem").is_none());
}

/// The manufactured forcing `g = lhs(u*)` that core derives symbolically equals the hand-derived
/// closed forms of `pde.rs`, and so does the exact solution, at points of the unit ball.
#[test]
fn derived_forcing_matches_closed_forms() {
    for kind in ProblemKind::ALL {
        let spec = builtin(kind.name()).expect("listed").expect("reads");
        for dim in [3usize, 5, 10, 100, 1000] {
            let seed = 7;
            let inst = spec.instantiate(dim, seed).expect("instantiates");
            let closed = Problem::from_kind(kind, dim, seed).expect("closed form");
            assert_eq!(
                inst.params,
                closed.coeffs,
                "{} d={dim}: coefficients",
                kind.name()
            );
            let n = 6;
            let pts = ball_points(11, n, dim);
            let program = inst.data_program().expect("lowers");
            let lowered = run_primal(&program, n, &pts, &[], &inst.params);
            let params = [inst.params.clone()];
            for p in 0..n {
                let x = &pts[p * dim..(p + 1) * dim];
                let g = closed.forcing(x);
                let u = closed.exact(x);
                let env = Env {
                    scope: &inst.scope,
                    x,
                    t: 0.0,
                    u: 0.0,
                    terms: &[],
                    params: &params,
                };
                let g_expr = eval(&inst.forcing, &env);
                let u_expr = eval(inst.exact.as_ref().expect("exact"), &env);
                let tol = |v: f64| 1e-10 * (1.0 + v.abs()) * (dim as f64).sqrt();
                assert!(
                    (g_expr - g).abs() <= tol(g),
                    "{} d={dim} point {p}: derived forcing {g_expr}, closed form {g}",
                    kind.name()
                );
                assert!(
                    (u_expr - u).abs() <= tol(u),
                    "{} d={dim}: exact",
                    kind.name()
                );
                assert!(
                    (lowered[p] - g).abs() <= tol(g),
                    "{} d={dim} point {p}: lowered forcing {}, closed form {g}",
                    kind.name(),
                    lowered[p]
                );
                assert!((lowered[n + p] - u).abs() <= tol(u));
            }
        }
    }
}

/// The derived forcing stays O(d): its lowered program has as many nodes at d = 10⁴ as at d = 10.
#[test]
fn derived_forcing_program_size_does_not_grow_with_dimension() {
    for kind in ProblemKind::ALL {
        let spec = builtin(kind.name()).expect("listed").expect("reads");
        let size = |dim: usize| {
            let p = spec
                .instantiate(dim, 0)
                .expect("instantiates")
                .data_program()
                .expect("lowers");
            p.nodes.len() + p.loops.iter().map(|l| l.nodes.len()).sum::<usize>()
        };
        assert_eq!(size(10), size(10_000), "{}", kind.name());
    }
}

fn file_error(text: &str) -> ProblemFileError {
    match problem::read("bad.toml", text) {
        Err(e) => e,
        Ok(spec) => match spec.instantiate(4, 0) {
            Err(problem::InstanceError::Expr(e)) => e,
            Err(other) => panic!("expected a located error for\n{text}\ngot {other}"),
            Ok(_) => panic!("expected an error for\n{text}"),
        },
    }
}

const GOOD: &str = r#"name = "ok"
min-dim = 2
[params]
c = { len = "d-1", draw = "normal" }
[terms]
lap = "laplacian"
[pde]
domain = "ball"
lhs = "lap + sin(u)"
rhs = "manufactured"
[ansatz]
b = "1 - norm2(x)"
[exact]
solution = "(1 - norm2(x)) * sum(i in 0..d-1, c[i] * sin(x[i] + x[i+1]))"
"#;

#[test]
fn a_good_file_instantiates() {
    let spec = problem::read("good.toml", GOOD).expect("reads");
    spec.instantiate(4, 0).expect("instantiates");
}

/// Malformed problem files: each error names the file, the line and the column of the mistake,
/// and is one line.
#[test]
fn malformed_problem_files_are_located() {
    let cases: Vec<(String, usize, usize, &str)> = vec![
        (
            GOOD.replace("lap + sin(u)", "lap + sinn(u)"),
            9,
            14,
            "unknown function",
        ),
        (
            GOOD.replace("lap + sin(u)", "lap + sin(u"),
            9,
            17,
            "parenthes",
        ),
        (
            GOOD.replace("lap + sin(u)", "lap + sin(u))"),
            9,
            20,
            "parenthes",
        ),
        (GOOD.replace("lap + sin(u)", "lapl + sin(u)"), 9, 8, "lapl"),
        (GOOD.replace("lap + sin(u)", "lap + sin(v)"), 9, 18, "`v`"),
        (
            GOOD.replace("x[i] + x[i+1]))", "x[i] + x[i+2]))"),
            14,
            65,
            "window",
        ),
        (GOOD.replace("lap + sin(u)", "lap + bih"), 9, 14, "bih"),
        (GOOD.replace("lap + sin(u)", "lap + t"), 9, 14, "time"),
        (
            GOOD.replace("lap + sin(u)", "lap + sin(u, u)"),
            9,
            14,
            "argument",
        ),
        (GOOD.replace("lap + sin(u)", "lap + x"), 9, 14, "x"),
        (GOOD.replace("lap + sin(u)", "lap + c"), 9, 14, "c"),
        (
            GOOD.replace("\"laplacian\"", "\"laplace\""),
            6,
            7,
            "unknown operator",
        ),
        (
            GOOD.replace("\"ball\"", "\"disc\""),
            8,
            10,
            "unknown domain",
        ),
        (GOOD.replace("len = \"d-1\"", "len = \"q\""), 4, 5, "length"),
        (
            GOOD.replace("draw = \"normal\"", "draw = \"cauchy\""),
            4,
            5,
            "draw",
        ),
        (GOOD.replace("[pde]", "[pdf]"), 7, 2, "pdf"),
        (
            GOOD.replace("min-dim = 2", "min-dim = \"two\""),
            2,
            11,
            "expected usize",
        ),
        (
            GOOD.replace("name = \"ok\"", "name = \"o k\""),
            1,
            8,
            "name",
        ),
        (
            GOOD.replace("1 - norm2(x)\"\n[exact]", "1 - norm(x)\"\n[exact]"),
            12,
            10,
            "unknown function",
        ),
        (GOOD.replace("lap + sin(u)", "lap + + "), 9, 14, "expected"),
        (GOOD.replace("lap + sin(u)", ""), 9, 8, "expected"),
        (GOOD.replace("lap + sin(u)", "lap + 1e"), 9, 14, "number"),
        (
            GOOD.replace("lap + sin(u)", "lap + sum(i in 0..d, x[i+1])"),
            9,
            29,
            "window",
        ),
        (
            GOOD.replace("lap + sin(u)", "lap + x[i]"),
            9,
            16,
            "outside a reduction",
        ),
        (
            GOOD.replace("b = \"1 - norm2(x)\"", "b = \"1 - u\""),
            12,
            10,
            "`u`",
        ),
    ];
    for (text, line, col, needle) in &cases {
        let e = file_error(text);
        if std::env::var_os("SHOW_POSITIONS").is_some() {
            eprintln!("{e}   [expected {line}:{col}]");
            continue;
        }
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.starts_with("bad.toml:"), "{msg}");
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "expected {needle:?} in {msg}"
        );
        assert_eq!((e.line, e.col), (*line, *col), "position of: {msg}");
    }
}

mod new_problems {
    use stde_core::expr::eval::{eval, eval_series_sparse, Env, SparseSeriesEnv};
    use stde_core::planner::{plan, MultiIndex, PlannerParams};
    use stde_core::problem::{builtin, Instance, TermOperator};
    use stde_core::series::factorial;

    /// `∂^α u*` at `(x, t)` from univariate jets of the exact solution (the oracle), combined by the
    /// planner: independent of the symbolic operators that derive the forcing.
    fn partial(
        inst: &Instance,
        params: &[Vec<f64>],
        x: &[f64],
        t: f64,
        alpha: &[(usize, u32)],
    ) -> f64 {
        let target = MultiIndex::new(alpha);
        let p = plan(&target, &PlannerParams::default()).expect("plannable");
        let outputs: Vec<Vec<f64>> = p
            .jets
            .iter()
            .map(|jet| {
                let slots: Vec<(usize, usize, f64)> = jet
                    .slots
                    .iter()
                    .filter(|(k, _)| *k <= jet.order)
                    .map(|&(k, var)| (var, k, 1.0 / factorial(k)))
                    .collect();
                let mut tser = vec![0.0; jet.order + 1];
                tser[0] = t;
                let env = SparseSeriesEnv {
                    scope: &inst.scope,
                    order: jet.order,
                    x0: x,
                    slots: &slots,
                    t: &tser,
                    u: &[],
                    terms: &[],
                    params,
                };
                let c = eval_series_sparse(inst.exact.as_ref().expect("exact"), &env);
                c.iter()
                    .enumerate()
                    .map(|(k, v)| v * factorial(k))
                    .collect()
            })
            .collect();
        p.combine(&outputs)[0]
    }

    fn time_derivative(inst: &Instance, params: &[Vec<f64>], x: &[f64], t: f64) -> f64 {
        let env = SparseSeriesEnv {
            scope: &inst.scope,
            order: 1,
            x0: x,
            slots: &[],
            t: &[t, 1.0],
            u: &[],
            terms: &[],
            params,
        };
        eval_series_sparse(inst.exact.as_ref().expect("exact"), &env)[1]
    }

    /// Every new problem's derived forcing equals its left-hand side applied to the exact solution
    /// with the operators computed from jets.
    #[test]
    fn new_problems_derive_their_forcing() {
        for (name, dim) in [
            ("biharmonic", 4usize),
            ("advection-diffusion", 5),
            ("third-order-mixed", 4),
            ("heat", 3),
        ] {
            let spec = builtin(name).expect("listed").expect("reads");
            let inst = spec.instantiate(dim, 3).expect("instantiates");
            let params = spec.draw_params(dim, 3);
            for p in 0..4 {
                let x: Vec<f64> = (0..dim)
                    .map(|j| 0.3 * ((p * 7 + j * 3) as f64 * 0.7).sin())
                    .collect();
                let t = 0.2 + 0.15 * p as f64;
                let env0 = Env {
                    scope: &inst.scope,
                    x: &x,
                    t,
                    u: 0.0,
                    terms: &[],
                    params: &params,
                };
                let u = eval(inst.exact.as_ref().expect("exact"), &env0);
                let terms: Vec<f64> = spec
                    .terms
                    .iter()
                    .map(|term| match &term.operator {
                        TermOperator::Laplacian => (0..dim)
                            .map(|j| partial(&inst, &params, &x, t, &[(j, 2)]))
                            .sum(),
                        TermOperator::Biharmonic => {
                            let mut s = 0.0;
                            for i in 0..dim {
                                for j in 0..dim {
                                    s += if i == j {
                                        partial(&inst, &params, &x, t, &[(i, 4)])
                                    } else {
                                        partial(&inst, &params, &x, t, &[(i, 2), (j, 2)])
                                    };
                                }
                            }
                            s
                        }
                        TermOperator::TimeDerivative => time_derivative(&inst, &params, &x, t),
                        TermOperator::Directional { along } => {
                            let k = spec
                                .params
                                .iter()
                                .position(|q| &q.name == along)
                                .expect("param");
                            (0..dim)
                                .map(|j| params[k][j] * partial(&inst, &params, &x, t, &[(j, 1)]))
                                .sum()
                        }
                        TermOperator::MixedWindow { orders } => (0..=dim - orders.len())
                            .map(|i| {
                                let alpha: Vec<(usize, u32)> = orders
                                    .iter()
                                    .enumerate()
                                    .map(|(k, &q)| (i + k, q))
                                    .collect();
                                partial(&inst, &params, &x, t, &alpha)
                            })
                            .sum(),
                        other => panic!("no oracle for {other:?}"),
                    })
                    .collect();
                let env = Env {
                    scope: &inst.scope,
                    x: &x,
                    t,
                    u,
                    terms: &terms,
                    params: &params,
                };
                // The residual is lhs − g, with the lhs checked (names resolved).
                let g = eval(&inst.forcing, &env0);
                let lhs = eval(&inst.residual, &env) + g;
                assert!(
                    (lhs - g).abs() <= 1e-8 * (1.0 + g.abs()),
                    "{name} d={dim} point {p}: lhs(u*) from jets {lhs}, derived forcing {g}"
                );
                // The residual vanishes on the exact solution.
                let r = eval(&inst.residual, &env);
                assert!(
                    r.abs() <= 1e-8 * (1.0 + g.abs()),
                    "{name}: residual {r} at u*"
                );
            }
        }
    }
}
