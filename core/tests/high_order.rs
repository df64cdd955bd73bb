//! The high-order problems of the paper's Table 11 (`kdv-2d`, `kp-2d`, `gkdv-1d`): their exact
//! solutions satisfy their PDEs (derivatives from univariate jets of the solution, combined by the
//! planner: an oracle independent of the symbolic operators and of the step plan), `partial` terms
//! in the time column agree with the symbolic operators, the g-KdV residual is the gPINN loss, the
//! step plans are contamination-free (and cheaper than one pushforward per derivative), and a short
//! run lowers the loss.

use stde_core::backend::cpu::CpuBackend;
use stde_core::expr::eval::{eval, eval_series_sparse, Env, SparseSeriesEnv};
use stde_core::expr::{parse, Expr};
use stde_core::planner::{self, plan, JetSpec, MultiIndex, PlannerParams};
use stde_core::problem::{builtin, Instance, ProblemSpec, Rhs, Source, TermOperator};
use stde_core::series::factorial;
use stde_core::step_plan::{JetSharing, StepPlan};
use stde_core::train::TrainConfig;
use stde_core::trainer::Trainer;

const PROBLEMS: [(&str, usize); 3] = [("kdv-2d", 2), ("kp-2d", 2), ("gkdv-1d", 1)];

fn spec(name: &str) -> ProblemSpec {
    builtin(name).expect("listed").expect("reads")
}

/// `∂^α f` at `(x, t)` for an expression `f` of `x` and `t`, from univariate jets of `f` combined by
/// the planner; variable `dim` of `α` is the time.
fn jet_partial(
    f: &Expr,
    inst: &Instance,
    params: &[Vec<f64>],
    x: &[f64],
    t: f64,
    alpha: &[(usize, u32)],
) -> f64 {
    let dim = inst.dim;
    let scope = inst.data_scope();
    let p = plan(&MultiIndex::new(alpha), &PlannerParams::default()).expect("plannable");
    let outputs: Vec<Vec<f64>> = p
        .jets
        .iter()
        .map(|jet| {
            let mut tser = vec![0.0; jet.order + 1];
            tser[0] = t;
            let mut slots = Vec::new();
            for &(k, var) in jet.slots.iter().filter(|(k, _)| *k <= jet.order) {
                if var == dim {
                    tser[k] += 1.0 / factorial(k);
                } else {
                    slots.push((var, k, 1.0 / factorial(k)));
                }
            }
            let env = SparseSeriesEnv {
                scope: &scope,
                order: jet.order,
                x0: x,
                slots: &slots,
                t: &tser,
                u: &[],
                terms: &[],
                params,
            };
            eval_series_sparse(f, &env)
                .iter()
                .enumerate()
                .map(|(k, c)| c * factorial(k))
                .collect()
        })
        .collect();
    p.combine(&outputs)[0]
}

/// The multi-index of a `partial` or `time-derivative` term at dimension `dim`.
fn index_of(op: &TermOperator, dim: usize) -> Vec<(usize, u32)> {
    match op {
        TermOperator::Partial { index } => index.clone(),
        TermOperator::TimeDerivative => vec![(dim, 1)],
        other => panic!("not a fixed-jet term: {other:?}"),
    }
}

/// Sample points of the space-time cylinder (unit ball × [0, T]).
fn points(dim: usize, end: f64) -> Vec<(Vec<f64>, f64)> {
    (0..6)
        .map(|p| {
            let x: Vec<f64> = (0..dim)
                .map(|j| 0.6 * ((p * 5 + j * 3 + 1) as f64 * 0.9).sin())
                .collect();
            (x, end * (0.1 + 0.15 * p as f64))
        })
        .collect()
}

fn env<'a>(
    inst: &'a Instance,
    params: &'a [Vec<f64>],
    x: &'a [f64],
    t: f64,
    u: f64,
    terms: &'a [f64],
) -> Env<'a> {
    Env {
        scope: &inst.scope,
        x,
        t,
        u,
        terms,
        params,
    }
}

/// Every exact solution satisfies its PDE: the residual, with every term computed from jets of the
/// solution, vanishes; and the terms do not (the check has something to check).
#[test]
fn exact_solutions_satisfy_their_pdes_by_the_jet_oracle() {
    for (name, dim) in PROBLEMS {
        let spec = spec(name);
        let inst = spec.instantiate(dim, 0).expect("instantiates");
        let params = spec.draw_params(dim, 0);
        let exact = inst.exact.as_ref().expect("exact");
        let end = spec.time.expect("time").end;
        for (x, t) in points(dim, end) {
            let data = inst.data_scope();
            let u = eval(
                exact,
                &Env {
                    scope: &data,
                    ..env(&inst, &params, &x, t, 0.0, &[])
                },
            );
            let terms: Vec<f64> = spec
                .terms
                .iter()
                .map(|term| {
                    jet_partial(exact, &inst, &params, &x, t, &index_of(&term.operator, dim))
                })
                .collect();
            let scale = terms.iter().fold(u.abs(), |m, v| m.max(v.abs()));
            assert!(
                scale > 0.1,
                "{name}: the terms at ({x:?}, {t}) are all small: {terms:?}"
            );
            let r = eval(&inst.residual, &env(&inst, &params, &x, t, u, &terms));
            // The g-KdV residual is the norm sqrt(R² + c_g(R_x² + R_t²) + ε), whose value at a
            // solution is sqrt(ε + rounding²); the others are polynomials in the terms.
            assert!(
                r.abs() <= 1e-8 * scale,
                "{name} at ({x:?}, {t}): residual {r} of the exact solution (terms {terms:?})"
            );
        }
    }
}

/// `partial` terms that differentiate in the time column apply symbolically (the derivation of
/// manufactured right-hand sides) as the jets of the same expression say.
#[test]
fn time_partials_apply_like_jets() {
    for (name, dim) in PROBLEMS {
        let spec = spec(name);
        let inst = spec.instantiate(dim, 0).expect("instantiates");
        let params = spec.draw_params(dim, 0);
        let exact = inst.exact.as_ref().expect("exact");
        let end = spec.time.expect("time").end;
        for term in &spec.terms {
            let symbolic = term.operator.apply(exact, dim).expect("applies");
            for (x, t) in points(dim, end) {
                let s = eval(&symbolic, &env(&inst, &params, &x, t, 0.0, &[]));
                let j = jet_partial(exact, &inst, &params, &x, t, &index_of(&term.operator, dim));
                assert!(
                    (s - j).abs() <= 1e-9 * (1.0 + j.abs()),
                    "{name} term {}: symbolic {s}, jets {j}",
                    term.name
                );
            }
        }
    }
}

/// The g-KdV residual squared is the gPINN loss: `r² − ε = R² + c_g((∂_x R)² + (∂_t R)²)` for a
/// function that is not a solution, with `∂_x R` and `∂_t R` the symbolic derivatives of
/// `R(w) = w_t + w w_x + α w_xxx` (not the hand-written ones of the file).
#[test]
fn gkdv_residual_is_the_gradient_enhanced_loss() {
    let spec = spec("gkdv-1d");
    let inst = spec.instantiate(1, 0).expect("instantiates");
    let params = spec.draw_params(1, 0);
    let w = "0.7 * sin(1.3 * x[0] + 0.4 * t) + 0.2 * cos(x[0] * t) + 0.1 * x[0]^3";
    // R(w) as the manufactured right-hand side of the plain KdV with `w` as its "solution".
    let mut kdv = spec.clone();
    kdv.pde.lhs = Source::built(parse("ut + u * ux + alpha * uxxx").expect("parses"));
    kdv.pde.rhs = Rhs::Manufactured;
    kdv.exact = Some(Source::built(parse(w).expect("parses")));
    kdv.constraints.clear();
    let plain = kdv.instantiate(1, 0).expect("instantiates");
    let r_of_w = &plain.forcing;
    let rx = TermOperator::Partial {
        index: vec![(0, 1)],
    }
    .apply(r_of_w, 1)
    .expect("∂x");
    let rt = TermOperator::Partial {
        index: vec![(1, 1)],
    }
    .apply(r_of_w, 1)
    .expect("∂t");
    let w = plain.exact.as_ref().expect("w");
    let cg = params[spec.params.iter().position(|p| p.name == "cg").expect("cg")][0];
    let eps = params[spec
        .params
        .iter()
        .position(|p| p.name == "eps")
        .expect("eps")][0];
    assert!(cg > 0.0);
    let scope = plain.data_scope();
    for (x, t) in points(1, 1.0) {
        let data = Env {
            scope: &scope,
            x: &x,
            t,
            u: 0.0,
            terms: &[],
            params: &params,
        };
        let (r0, r1, r2) = (eval(r_of_w, &data), eval(&rx, &data), eval(&rt, &data));
        assert!(
            r1.abs() > 0.1 && r2.abs() > 0.01,
            "a non-solution: {r1}, {r2}"
        );
        let u = eval(w, &data);
        let terms: Vec<f64> = spec
            .terms
            .iter()
            .map(|term| jet_partial(w, &inst, &params, &x, t, &index_of(&term.operator, 1)))
            .collect();
        let r = eval(&inst.residual, &env(&inst, &params, &x, t, u, &terms));
        let want = r0 * r0 + cg * (r1 * r1 + r2 * r2);
        assert!(
            (r * r - eps - want).abs() <= 1e-10 * (1.0 + want),
            "at ({x:?}, {t}): r² − ε = {}, R² + c_g(R_x² + R_t²) = {want}",
            r * r - eps
        );
    }
}

fn plan_of(name: &str, dim: usize, sharing: JetSharing) -> StepPlan {
    let mut spec = spec(name);
    spec.defaults.jets = sharing;
    let inst = spec.instantiate(dim, 0).expect("instantiates");
    let est = spec.defaults.estimator.expect("a suggested estimator");
    StepPlan::new(&inst, est, 16).expect("plans")
}

/// Every term's readout weights combine, by the partition formula, to exactly its derivative, in
/// the planned and the naive plan; `stde plan` says so; the planned plan needs fewer pushforwards.
#[test]
fn plans_are_contamination_free_and_share_jets() {
    for (name, dim) in PROBLEMS {
        let spec = spec(name);
        let planned = plan_of(name, dim, JetSharing::Shared);
        let naive = plan_of(name, dim, JetSharing::PerDerivative);
        for p in [&planned, &naive] {
            let checks = p.fixed_checks();
            assert_eq!(
                checks.len(),
                spec.terms.len(),
                "{name}: every term is checked"
            );
            for c in &checks {
                assert!(
                    c.is_clean(),
                    "{name}: term {} reads {:?}",
                    c.term,
                    c.combination
                );
            }
        }
        assert_eq!(naive.sharing(), JetSharing::PerDerivative);
        assert!(
            planned.n_dirs < naive.n_dirs && naive.n_dirs >= spec.terms.len(),
            "{name}: {} planned jets, {} naive",
            planned.n_dirs,
            naive.n_dirs
        );
        let cfg = TrainConfig {
            equation: name.into(),
            dim,
            estimator: spec.defaults.estimator.expect("suggested"),
            ..TrainConfig::default()
        };
        let report = stde_core::report::plan_report(&spec, &cfg).expect("reports");
        assert!(
            report.contains("contamination: none") && !report.contains("CONTAMINATED"),
            "{name}:\n{report}"
        );
    }
}

/// The reads of the planned 2D KdV plan, and the paper's single 13-jet, which is contaminated
/// (STDE.md §3): its y11 holds u_xyy beside u_ty.
#[test]
fn kdv_2d_plan_is_clean_where_the_papers_jet_is_not() {
    let (x, y, t) = (0, 1, 2);
    let paper = JetSpec::new(13, &[(3, x), (4, y), (7, t)]);
    let a = planner::analyze(&paper, 11);
    let uty = MultiIndex::new(&[(y, 1), (t, 1)]);
    assert!(!a.is_clean_for(&uty));
    assert_eq!(a.coefficient_of(&uty), 330.0);
    assert_eq!(
        a.coefficient_of(&MultiIndex::new(&[(x, 1), (y, 2)])),
        5775.0
    );
    let planned = plan_of("kdv-2d", 2, JetSharing::Shared);
    assert_eq!(planned.n_dirs, 2, "u_xxxy's 11-jet serves every x/y term");
    assert_eq!(planned.order, 11);
    assert!(planned.fixed_checks().iter().all(|c| c.is_clean()));
}

/// A `partial` term may differentiate in the time column only in a problem with time, at a fixed
/// dimension; the errors name the term.
#[test]
fn time_partials_need_time_and_a_fixed_dimension() {
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/problems/kp-2d.toml"))
        .expect("reads");
    let ranged = base.replace("max-dim = 2", "max-dim = 3");
    let spec = stde_core::problem::read("ranged.toml", &ranged).expect("reads");
    let e = spec
        .instantiate(2, 0)
        .expect_err("t at d = 2 is x2 at d = 3");
    assert!(e.to_string().contains("min-dim = max-dim"), "{e}");
    assert!(e.to_string().contains("utx"), "{e}");
    assert!(
        spec.instantiate(3, 0).is_ok(),
        "coordinate 2 is x2 at d = 3"
    );
    let beyond = base.replace("index = [[0, 1], [2, 1]]", "index = [[0, 1], [3, 1]]");
    let spec = stde_core::problem::read("beyond.toml", &beyond).expect("reads");
    let e = spec.instantiate(2, 0).expect_err("coordinate 3 at d = 2");
    assert!(e.to_string().contains("outside 0..2"), "{e}");
}

/// A short run of each problem on the CPU backend lowers its loss.
#[test]
fn short_runs_lower_the_loss() {
    let be = CpuBackend::new();
    for (name, dim) in PROBLEMS {
        let spec = spec(name);
        let cfg = TrainConfig {
            equation: name.into(),
            dim,
            steps: 400,
            batch: 64,
            width: 32,
            estimator: spec.defaults.estimator.expect("suggested"),
            test_points: 500,
            eval_every: 400,
            ..TrainConfig::default()
        };
        let mut tr = Trainer::with_problem(&be, cfg, &spec, None).expect("config");
        tr.step();
        let first = pollster::block_on(tr.loss()).expect("loss");
        while !tr.finished() {
            tr.step();
        }
        let last = pollster::block_on(tr.loss()).expect("loss");
        let eval = pollster::block_on(tr.evaluate()).expect("evaluates");
        assert!(
            last.is_finite() && last < 0.5 * first,
            "{name}: loss {first} → {last}"
        );
        assert!(
            eval.rel_l2.is_finite() && eval.rel_l2 < 1.0,
            "{name}: {eval:?}"
        );
    }
}
