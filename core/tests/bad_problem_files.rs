//! Malformed problem files: each of at least 60 gets exactly one error, of the right kind, that
//! names the file and the line and column of the mistake, and nothing panics. The expected place
//! of each error is marked in the fixture text itself with `‸`, so that positions are computed from
//! the text rather than written by hand.

use stde_core::problem::{self, InstanceError, ProblemFileError};
use stde_core::step_plan::{StepPlan, StepPlanError};
use stde_core::train::EstimatorKind;

/// Marks, in a fixture, the character the error must point at (removed before reading).
const MARK: char = '‸';

/// A steady problem that reads, instantiates and plans (at d = 4 with the sparse estimator).
const STEADY: &str = r#"# A steady problem.
name = "steady"
description = "a valid problem the cases break"
min-dim = 2
max-dim = 64

[params]
c = { len = "d-1", draw = "normal" }
w = { len = "d", draw = "uniform", scale = 0.5 }
g = { value = 0.5 }

[terms]
lap = "laplacian"

[pde]
domain = "ball"
lhs = "lap + sin(u) - g"
rhs = "manufactured"
weight = 1.0

[ansatz]
b = "1 - norm2(x)"

[exact]
solution = "(1 - norm2(x)) * sum(i in 0..d-1, c[i] * sin(x[i] + x[i+1]))"

[[constraint]]
domain = "sphere"
equation = "u - exact"
weight = 1.0
"#;

/// A time-dependent problem with a given forcing, a multi-line expression and literal strings.
const TIMED: &str = r#"name = "timed"
min-dim = 1

[defaults]
estimator = "exact"
rand-dims = 2

[time]
end = 1.0

[params]
c = { len = "d", draw = "normal" }

[terms]
ut = "time-derivative"
lap = "laplacian"

[pde]
domain = { box = [-1.0, 1.0] }
lhs = '''
ut - lap
  + 0.5 * u'''
rhs = "exp(-t) * sum(i in 0..d, c[i] * x[i])"

[ansatz]
a = 'exp(-t) * norm2(x)'

[[constraint]]
domain = { gaussian = 0.5 }
at-time = 0.0
equation = """
u -
  norm2(x)"""
weight = 2.0
"#;

/// A fixture with one part replaced; `from` must occur exactly once in `base`.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert_eq!(base.matches(from).count(), 1, "{from:?} is not unique");
    base.replacen(from, to, 1)
}

/// A malformed file, where its error must point, what the error must say, and how it is used.
struct Case {
    /// The text with one [`MARK`].
    text: String,
    /// A fragment of the message (case-insensitive).
    needle: &'static str,
    /// The dimension it is instantiated and planned at.
    dim: usize,
    /// The estimator chosen by the caller (else the file's default, else sparse).
    estimator: Option<EstimatorKind>,
}

fn case(text: String, needle: &'static str) -> Case {
    Case {
        text,
        needle,
        dim: 4,
        estimator: None,
    }
}

impl Case {
    fn at_dim(mut self, dim: usize) -> Self {
        self.dim = dim;
        self
    }

    fn with(mut self, estimator: EstimatorKind) -> Self {
        self.estimator = Some(estimator);
        self
    }
}

/// What happened to a file: read, instantiated at `dim` and planned.
#[derive(Debug)]
enum Outcome {
    Located(ProblemFileError),
    Unlocated(String),
    Accepted,
}

fn outcome(text: &str, dim: usize, estimator: Option<EstimatorKind>) -> Outcome {
    let spec = match problem::read("bad.toml", text) {
        Ok(spec) => spec,
        Err(e) => return Outcome::Located(e),
    };
    let inst = match spec.instantiate(dim, 0) {
        Ok(inst) => inst,
        Err(InstanceError::Expr(e)) => return Outcome::Located(e),
        Err(other) => return Outcome::Unlocated(other.to_string()),
    };
    let estimator = estimator
        .or(spec.defaults.estimator)
        .unwrap_or(EstimatorKind::Sparse);
    let rand_dims = spec.defaults.rand_dims.unwrap_or(2);
    match StepPlan::new(&inst, estimator, rand_dims) {
        Ok(_) => Outcome::Accepted,
        Err(StepPlanError::Located(e)) => Outcome::Located(e),
        Err(other) => Outcome::Unlocated(other.to_string()),
    }
}

/// 1-based line and column (in characters) of the byte offset `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn cases() -> Vec<Case> {
    let s = STEADY;
    let t = TIMED;
    let m = MARK;
    let deep = format!(
        "{}{m}({}u{}",
        "(".repeat(200),
        "(".repeat(49),
        ")".repeat(250)
    );
    let c_len = |len: &str| {
        edit(
            s,
            "c = { len = \"d-1\"",
            &format!("c = ‸{{ len = \"{len}\""),
        )
    };
    vec![
        // TOML syntax.
        case(edit(s, "lhs = \"lap + sin(u) - g\"", "lhs = \"lap + sin(u) - g‸"), "string"),
        case(edit(s, "domain = \"ball\"", "domain ‸\"ball\""), "expected"),
        case(edit(s, "[pde]", "[pde‸"), "table"),
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight = 1.0\n‸weight = 2.0\n\n[ansatz]"), "duplicate"),
        case(edit(s, "[ansatz]\n", "[ansatz]\nb = \"1\"\n[‸ansatz]\n"), "duplicate"),
        // TOML 1.1 inline tables may span lines: the parser notices at the next table.
        case(edit(&edit(s, "g = { value = 0.5 }", "g = { value = 0.5 "), "[terms]", "‸[terms]"), "inline table"),
        case(edit(s, "lhs = \"lap + sin(u) - g\"", "lhs = ‸lap + sin(u) - g"), "string"),
        case(edit(s, "name = \"steady\"", "name = \"ste‸\u{0}ady\""), "string"),
        case(edit(s, "a valid problem", "a \\‸q valid problem"), "escape"),
        case(edit(t, "box = [-1.0, 1.0] }", "box = [-1.0, 1.0 ‸}"), "array"),
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight =‸\n\n[ansatz]"), "expected"),
        // Missing keys.
        case(format!("{m}{}", edit(s, "name = \"steady\"\n", "")), "missing field `name`"),
        case(format!("{m}{}", edit(s, "[pde]\ndomain = \"ball\"\nlhs = \"lap + sin(u) - g\"\nrhs = \"manufactured\"\nweight = 1.0\n", "")), "missing field `pde`"),
        case(edit(&edit(s, "lhs = \"lap + sin(u) - g\"\n", ""), "[pde]", "‸[pde]"), "missing field `lhs`"),
        case(edit(&edit(s, "domain = \"ball\"\n", ""), "[pde]", "‸[pde]"), "missing field `domain`"),
        case(edit(&edit(s, "equation = \"u - exact\"\n", ""), "[[constraint]]", "‸[[constraint]]"), "missing field `equation`"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ order = 2 }"), "operator"),
        // Unknown keys.
        case(edit(s, "description =", "‸descripton ="), "descripton"),
        case(edit(s, "[ansatz]", "[‸ansats]"), "ansats"),
        case(edit(s, "rhs = \"manufactured\"", "‸rsh = \"manufactured\""), "rsh"),
        case(edit(s, "len = \"d\"", "‸lne = \"d\""), "lne"),
        case(edit(t, "estimator = \"exact\"", "‸estimater = \"exact\""), "estimater"),
        case(edit(t, "weight = 2.0", "‸wieght = 2.0"), "wieght"),
        case(edit(s, "lap = \"laplacian\"", "lap = { operator = \"diagonal\", ‸ordr = 3 }"), "unknown field `ordr`"),
        case(edit(t, "end = 1.0", "‸ends = 1.0"), "ends"),
        case(edit(s, "b = \"1 - norm2(x)\"", "‸c = \"1 - norm2(x)\""), "`c`"),
        // Values of the wrong type.
        case(edit(s, "min-dim = 2", "min-dim = ‸\"2\""), "expected usize"),
        case(edit(s, "name = \"steady\"", "name = ‸3"), "string"),
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight = ‸\"heavy\"\n\n[ansatz]"), "expected f64"),
        case(edit(s, "g = { value = 0.5 }", "g = ‸0.5"), "expected a parameter table"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸2"), "operator"),
        case(edit(s, "domain = \"ball\"", "domain = ‸3"), "domain"),
        case(edit(t, "box = [-1.0, 1.0]", "box = ‸[-1.0]"), "tuple of size 2"),
        case(edit(s, "lap = \"laplacian\"", "lap = { operator = \"mixed-window\", orders = [2, ‸-1] }"), "-1"),
        case(edit(t, "end = 1.0", "end = ‸\"soon\""), "expected f64"),
        case(edit(s, "min-dim = 2", "min-dim = ‸-2"), "-2"),
        case(edit(s, "max-dim = 64", "max-dim = ‸6.5"), "expected usize"),
        case(edit(t, "rand-dims = 2", "rand-dims = ‸\"two\""), "expected usize"),
        case(edit(t, "at-time = 0.0", "at-time = ‸\"start\""), "expected f64"),
        case(edit(s, "lhs = \"lap + sin(u) - g\"", "lhs = ‸[\"lap\"]"), "string"),
        // Expressions: unknown functions and names, parentheses, windows, terms, types, arity.
        case(edit(s, "lap + sin(u) - g", "lap + ‸sinn(u) - g"), "unknown function"),
        case(edit(s, "b = \"1 - norm2(x)\"", "b = \"1 - ‸norm(x)\""), "unknown function"),
        case(edit(s, "c[i] * sin(x[i]", "c[i] * ‸sine(x[i]"), "unknown function"),
        case(edit(s, "equation = \"u - exact\"", "equation = \"u - ‸exakt\""), "did you mean `exact`"),
        case(edit(t, "c[i] * x[i]", "c[i] * ‸y[i]"), "`y`"),
        case(edit(s, "lap + sin(u) - g", "lap + sin‸(u - g"), "parenthes"),
        case(edit(s, "x[i+1]))\"", "x[i+1]))‸)\""), "parenthes"),
        case(edit(t, "  + 0.5 * u'''", "  + 0.5 * u‸)'''"), "parenthes"),
        case(edit(s, "x[i] + x[i+1]))", "x[i] + ‸x[i+2]))"), "window"),
        case(edit(s, "lap + sin(u) - g", "lap + sum(i in 0..d, ‸x[i+1]) - g"), "window"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - g * sum(i in 0..d, ‸c[i])"), "window"),
        case(edit(s, "b = \"1 - norm2(x)\"", "b = \"1 - ‸x[d]\""), "x[d]"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - g + ‸bih"), "bih"),
        case(edit(s, "lap + sin(u) - g", "lap + ‸lapl"), "lapl"),
        case(edit(t, "rhs = \"exp(-t)", "rhs = \"‸lap + exp(-t)"), "solution"),
        case(edit(s, "solution = \"(1 - norm2(x))", "solution = \"‸u * (1 - norm2(x))"), "solution"),
        case(edit(s, "b = \"1 - norm2(x)\"", "b = \"1 - ‸u\""), "solution"),
        case(edit(s, "equation = \"u - exact\"", "equation = \"u - exact + ‸lap\""), "term `lap` cannot be used in a constraint"),
        case(edit(s, "lap + sin(u) - g", "lap + ‸sin(u, u) - g"), "argument"),
        case(edit(s, "lap + sin(u) - g", "lap + ‸min(u) - g"), "argument"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - g * ‸x"), "x"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - ‸c"), "index it"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - ‸g[0]"), "`g`"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - g * ‸t"), "time"),
        case(edit(s, "sin(x[i] + x[i+1])", "sin(x[i] + x[i+1]) * exp(-‸t)"), "time"),
        case(edit(t, "a = 'exp(-t) * norm2(x)'", "a = 'exp(-t) * ‸normsq(x)'"), "unknown function"),
        case(edit(t, "  norm2(x)\"\"\"", "  ‸norm3(x)\"\"\""), "unknown function"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - ‸1e * g"), "number"),
        case(edit(s, "sin(x[i] + x[i+1]))", "sin(x[i] + x[i+1]) * ‸norm2(x))"), "nest"),
        case(edit(s, "lhs = \"lap + sin(u) - g\"", "lhs = \"‸\""), "expected"),
        case(edit(s, "lap + sin(u) - g", "lap + x[‸i] - g"), "outside a reduction"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) ‸$ g"), "$"),
        case(edit(s, "lap + sin(u) - g", "lap + sin(u) - g * ‸max(i in 5..3, x[i])"), "empty"),
        case(edit(s, "lap + sin(u) - g", &format!("lap + {deep}")), "deep"),
        // Terms.
        case(edit(s, "lap = \"laplacian\"", "lap = ‸\"laplace\""), "unknown operator"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"diagonal\" }"), "needs `order`"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"diagonal\", order = 0 }"), "at least 1"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸\"partial\""), "needs `index`"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"partial\", index = [[0, 0]] }"), "at least 1"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"mixed-window\", orders = [] }"), "positive order"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"mixed-window\", orders = [0, 0] }"), "positive order"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"directional\" }"), "needs `along`"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"directional\", along = \"v\" }"), "`v`"),
        case(edit(s, "lap = \"laplacian\"", "lap = ‸{ operator = \"directional\", along = \"g\" }"), "`g`"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nut = ‸\"time-derivative\""), "time"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nmix = ‸{ operator = \"mixed-window\", orders = [1, 1, 1, 1, 1] }"), "window of 5"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nmix = ‸{ operator = \"partial\", index = [[0, 1], [3, 1]] }"), "coordinate 3").at_dim(3),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nm1 = { operator = \"mixed-window\", orders = [2, 1] }\nm2 = ‸{ operator = \"mixed-window\", orders = [1, 2] }"), "one mixed-window"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\n‸\"1st\" = \"laplacian\""), "1st"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\n‸sin = \"laplacian\""), "sin"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\n‸g = \"laplacian\""), "`g`"),
        case(edit(s, "lap = \"laplacian\"", "lap = { operator = ‸3 }"), "expected a string"),
        // Estimators that cannot estimate a term without bias, chosen by the file or the caller.
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nbih = ‸\"biharmonic\""), "without bias"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nbih2 = ‸\"biharmonic\""), "without bias").with(EstimatorKind::Exact),
        case(edit(&edit(s, "lap = \"laplacian\"", "lap = ‸\"biharmonic\""), "[params]", "[defaults]\nestimator = \"sparse\"\n\n[params]"), "without bias"),
        case(edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nd3 = ‸{ operator = \"diagonal\", order = 3 }"), "without bias").with(EstimatorKind::Dense),
        case(edit(&edit(s, "lap = \"laplacian\"", "lap = \"laplacian\"\nadv = ‸{ operator = \"directional\", along = \"w\" }"), "[params]", "[defaults]\nestimator = \"dense\"\n\n[params]"), "without bias"),
        case(edit(t, "ut = \"time-derivative\"", "ut = ‸\"time-derivative\""), "one-hot").with(EstimatorKind::Dense),
        case(edit(t, "estimator = \"exact\"", "estimator = ‸\"fancy\""), "unknown estimator"),
        // Domains.
        case(edit(s, "domain = \"sphere\"", "domain = ‸\"spehre\""), "unknown domain"),
        case(edit(t, "domain = { box = [-1.0, 1.0] }", "domain = ‸{ box = [1.0, -1.0] }"), "lo < hi"),
        case(edit(t, "domain = { box = [-1.0, 1.0] }", "domain = ‸{ box = [-1.0, inf] }"), "finite"),
        case(edit(t, "domain = { gaussian = 0.5 }", "domain = ‸{ gaussian = 0.0 }"), "positive"),
        case(edit(t, "domain = { gaussian = 0.5 }", "domain = ‸{ gaussian = -0.5 }"), "positive"),
        case(edit(t, "domain = { gaussian = 0.5 }", "domain = ‸{ gaussian = 0.5, box = [0.0, 1.0] }"), "exactly one"),
        case(edit(t, "domain = { gaussian = 0.5 }", "domain = ‸{}"), "exactly one"),
        case(edit(s, "domain = \"ball\"", "domain = ‸\"sde-marginal\""), "time"),
        case(edit(t, "domain = { gaussian = 0.5 }", "domain = ‸\"sde-marginal\""), "at-time"),
        // Parameters.
        case(c_len("q"), "length"),
        case(c_len("0"), "length"),
        case(c_len("-3"), "length"),
        case(c_len("99999999999"), "length"),
        case(c_len("d*2"), "length"),
        case(edit(s, "c = { len = \"d-1\", draw = \"normal\" }", "c = ‸{ len = \"d-1\", draw = \"cauchy\" }"), "unknown draw"),
        case(edit(s, "g = { value = 0.5 }", "g = ‸{ value = 0.5, draw = \"normal\" }"), "exactly one"),
        case(edit(s, "g = { value = 0.5 }", "g = ‸{ scale = 0.5 }"), "exactly one"),
        case(edit(s, "g = { value = 0.5 }", "g = ‸{ value = nan }"), "finite"),
        case(edit(s, "w = { len = \"d\", draw = \"uniform\", scale = 0.5 }", "w = ‸{ len = \"d\", draw = \"uniform\", scale = inf }"), "finite"),
        case(edit(s, "g = { value = 0.5 }", "g = { value = 0.5 }\n‸2g = { value = 1.0 }"), "2g"),
        case(edit(s, "g = { value = 0.5 }", "g = { value = 0.5 }\n‸pi = { value = 3.0 }"), "pi"),
        // Dimensions, time, weights and defaults.
        case(edit(s, "min-dim = 2", "min-dim = ‸0"), "min-dim"),
        case(edit(s, "max-dim = 64", "max-dim = ‸1"), "max-dim"),
        case(edit(t, "end = 1.0", "end = ‸0.0"), "positive"),
        case(edit(t, "end = 1.0", "end = ‸-1.0"), "positive"),
        case(edit(t, "end = 1.0", "end = ‸inf"), "positive"),
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight = ‸-1.0\n\n[ansatz]"), "weight"),
        case(edit(t, "weight = 2.0", "weight = ‸nan"), "weight"),
        case(edit(s, "domain = \"sphere\"", "domain = \"sphere\"\nat-time = ‸0.0"), "time"),
        case(edit(t, "at-time = 0.0", "at-time = ‸2.0"), "at-time"),
        case(edit(&edit(s, "[exact]\nsolution = \"(1 - norm2(x)) * sum(i in 0..d-1, c[i] * sin(x[i] + x[i+1]))\"\n", ""), "rhs = \"manufactured\"", "rhs = ‸\"manufactured\""), "[exact]"),
        case(edit(t, "u -\n  norm2(x)", "u -\n  norm2(x) - ‸exact"), "[exact]"),
        case(edit(t, "rand-dims = 2", "rand-dims = ‸0"), "rand-dims"),
        case(edit(s, "name = \"steady\"", "name = ‸\"stea dy\""), "name"),
        case(edit(s, "name = \"steady\"", "name = ‸\"\""), "name"),
        case(edit(t, "weight = 2.0", "weight = 2.0\ngradient-weight = ‸-0.5"), "gradient-weight"),
        // The residual gradient (gPINN): a bad weight, a term it cannot differentiate, a reduction
        // that reads both x and u.
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight = 1.0\ngradient-weight = ‸-0.1\n\n[ansatz]"), "gradient-weight"),
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight = 1.0\ngradient-weight = 0.1\ngradient-coordinates = ‸0\n\n[ansatz]"), "at least 1"),
        case(edit(s, "weight = 1.0\n\n[ansatz]", "weight = 1.0\ngradient-coordinates = ‸2\n\n[ansatz]"), "gradient-weight"),
        case(edit(&edit(t, "ut = \"time-derivative\"", "ut = ‸\"time-derivative\""), "0.5 * u'''", "0.5 * u'''\ngradient-weight = 0.1"), "laplacian terms only"),
        case(edit(s, "lhs = \"lap + sin(u) - g\"\nrhs = \"manufactured\"", "lhs = \"lap + ‸sum(i in 0..d, x[i] * u) - g\"\nrhs = \"manufactured\"\ngradient-weight = 0.1"), "reduction"),
    ]
}

#[test]
fn the_fixtures_are_valid_problems() {
    for (name, text) in [("steady", STEADY), ("timed", TIMED)] {
        for dim in [2, 4] {
            assert!(
                matches!(outcome(text, dim, None), Outcome::Accepted),
                "{name} at d = {dim}: {:?}",
                outcome(text, dim, None)
            );
        }
    }
}

#[test]
fn malformed_problem_files_get_one_located_error_each() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let show = std::env::var_os("SHOW_POSITIONS").is_some();
    let mut failures = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, c) in cases.iter().enumerate() {
        assert_eq!(c.text.matches(MARK).count(), 1, "case {n}: one mark");
        assert!(seen.insert(c.text.clone()), "case {n} repeats another");
        let at = c.text.find(MARK).expect("marked");
        let (line, col) = line_col(&c.text, at);
        let text = c.text.replacen(MARK, "", 1);
        let got = std::panic::catch_unwind(|| outcome(&text, c.dim, c.estimator));
        let report = match got {
            Err(_) => format!("case {n}: panicked"),
            Ok(Outcome::Accepted) => format!("case {n}: accepted"),
            Ok(Outcome::Unlocated(m)) => format!("case {n}: not located: {m}"),
            Ok(Outcome::Located(e)) => {
                let msg = e.to_string();
                if show {
                    eprintln!("case {n}: {msg}   [expected {line}:{col}, {:?}]", c.needle);
                }
                let right = msg.starts_with(&format!("bad.toml:{line}:{col}: "))
                    && (e.file.as_str(), e.line, e.col) == ("bad.toml", line, col)
                    && !msg.contains('\n')
                    && e.message.trim().len() > 3
                    && msg.to_lowercase().contains(&c.needle.to_lowercase());
                if right {
                    continue;
                }
                format!(
                    "case {n}: expected {line}:{col} and {:?}, got {msg}",
                    c.needle
                )
            }
        };
        failures.push(report);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
