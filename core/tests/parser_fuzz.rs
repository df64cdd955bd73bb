//! Fuzzing of the problem-file reader and of everything a read file goes through before training
//! (instantiation at a dimension, the probe plan under every estimator, lowering to programs, the
//! `stde plan` report): arbitrary strings, and the shipped problem files under random insertions,
//! deletions, swaps and line edits, never panic, and every error is one non-empty line that, when
//! located, points inside the file. Expressions alone are fuzzed the same way, their messages
//! checked too (`expr_syntax.rs` fuzzes the parser's round trips). Bounded: a few seconds in release.

use proptest::prelude::*;
use stde_core::expr::{check, parse, DimExpr, ParamShape, Scope};
use stde_core::problem::{self, ProblemFileError};
use stde_core::report::plan_report;
use stde_core::train::{EstimatorKind, TrainConfig};
use stde_core::trainer::check_config;

/// The problem files the mutations start from: every shipped problem and the test-only ones.
fn bases() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = problem::BUILTIN
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    for (name, text) in [
        (
            "poisson-soft-boundary",
            include_str!("../../tests/problems/poisson-soft-boundary.toml"),
        ),
        (
            "reaction-box",
            include_str!("../../tests/problems/reaction-box.toml"),
        ),
    ] {
        v.push((name.to_owned(), text.to_owned()));
    }
    v
}

/// One message: non-empty, one line.
fn well_formed(what: &str, msg: &str) -> Result<(), TestCaseError> {
    prop_assert!(!msg.trim().is_empty(), "{what}: an empty message");
    prop_assert!(
        !msg.contains('\n'),
        "{what}: a message of several lines: {msg:?}"
    );
    Ok(())
}

/// A located error names the file and a place inside the text.
fn located(text: &str, e: &ProblemFileError) -> Result<(), TestCaseError> {
    let msg = e.to_string();
    well_formed("located error", &msg)?;
    prop_assert_eq!(e.file.as_str(), "fuzz.toml");
    let prefix = format!("fuzz.toml:{}:{}: ", e.line, e.col);
    prop_assert!(msg.starts_with(&prefix), "{msg}");
    prop_assert!(!e.message.trim().is_empty(), "{msg}");
    let lines: Vec<&str> = text.split('\n').collect();
    prop_assert!(
        e.line >= 1 && e.line <= lines.len(),
        "{msg}: line {} of {}",
        e.line,
        lines.len()
    );
    let width = lines[e.line - 1].chars().count();
    prop_assert!(
        e.col >= 1 && e.col <= width + 1,
        "{msg}: column {} of a line of {width}",
        e.col
    );
    Ok(())
}

/// Reads `text` and takes whatever reads through instantiation, planning under every estimator,
/// lowering and the `stde plan` report at a few small dimensions.
fn read_and_use(text: &str) -> Result<(), TestCaseError> {
    let spec = match problem::read("fuzz.toml", text) {
        Ok(spec) => spec,
        Err(e) => return located(text, &e),
    };
    let lo = spec.min_dim;
    let hi = spec.max_dim.unwrap_or(usize::MAX);
    for dim in [lo, lo + 1, lo + 3] {
        // A file may ask for any smallest dimension; the ones worth running here are small.
        if dim > hi || dim > 40 {
            continue;
        }
        match spec.instantiate(dim, 1) {
            Err(problem::InstanceError::Expr(e)) => located(text, &e)?,
            Err(e) => well_formed("instance", &e.to_string())?,
            Ok(inst) => {
                if let Err(e) = inst.data_program() {
                    well_formed("data program", &e.to_string())?;
                }
                if let Err(e) = inst.ansatz_program() {
                    well_formed("ansatz program", &e.to_string())?;
                }
            }
        }
        for estimator in [
            EstimatorKind::Sparse,
            EstimatorKind::Dense,
            EstimatorKind::Exact,
        ] {
            let cfg = TrainConfig {
                dim,
                estimator,
                rand_dims: spec.defaults.rand_dims.unwrap_or(2).min(dim),
                batch: 4,
                width: 4,
                ..TrainConfig::default()
            };
            match plan_report(&spec, &cfg) {
                Ok(report) => prop_assert!(!report.is_empty()),
                Err(e) => well_formed("plan report", &e.to_string())?,
            }
            if let Err(e) = check_config(&cfg, &spec) {
                well_formed("configuration", &e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Characters and snippets the mutations insert: TOML punctuation, the language's tokens, and
/// values that reach the reader's checks (limits, non-finite numbers, other sections).
const SNIPPETS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    "#",
    ".",
    "-",
    "+",
    "0",
    "9",
    "d",
    "x",
    "u",
    "t",
    "(",
    ")",
    "\\",
    "é",
    " ",
    "\t",
    "\u{0}",
    "'''",
    "\"\"\"",
    "inf",
    "nan",
    "-1",
    "0",
    "1e400",
    "99999999999",
    "d-1",
    "d+3",
    "x[i+1]",
    "x[d]",
    "sum(i in 0..d, ",
    "max(",
    "norm2(x)",
    "exact",
    "lap",
    "ut",
    "bih",
    "c[i]",
    "sin(",
    "\"sde-marginal\"",
    "\"biharmonic\"",
    "\"time-derivative\"",
    "{ box = [1.0, -1.0] }",
    "{ gaussian = 0.0 }",
    "{ operator = \"mixed-window\", orders = [1, 1, 1] }",
    "{ operator = \"partial\", index = [[7, 2]] }",
    "{ operator = \"directional\", along = \"c\" }",
    "\n[time]\nend = 1.0\n",
    "\n[defaults]\nestimator = \"dense\"\n",
    "\nat-time = 0.5\n",
    "\nmax-dim = 2\n",
    "\nmin-dim = 0\n",
    "\n[[constraint]]\ndomain = \"sphere\"\nequation = \"u - exact\"\n",
    "\nq = { len = \"d+16777216\", value = 1.0 }\n",
    "rhs = \"manufactured\"",
];

/// One edit of a file's characters.
#[derive(Clone, Debug)]
enum Mutation {
    Insert(prop::sample::Index, &'static str),
    Delete(prop::sample::Index, usize),
    Swap(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
    DeleteLine(prop::sample::Index),
    SwapLines(prop::sample::Index, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        4 => (index(), prop::sample::select(SNIPPETS)).prop_map(|(i, s)| Mutation::Insert(i, s)),
        3 => (index(), 1usize..6).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => index().prop_map(Mutation::Swap),
        1 => index().prop_map(Mutation::DuplicateLine),
        1 => index().prop_map(Mutation::DeleteLine),
        1 => (index(), index()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match m {
        Mutation::Insert(i, s) => {
            let at = i.index(chars.len() + 1);
            chars.splice(at..at, s.chars());
        }
        Mutation::Delete(i, n) if !chars.is_empty() => {
            let at = i.index(chars.len());
            let end = (at + n).min(chars.len());
            chars.drain(at..end);
        }
        Mutation::Swap(i) if chars.len() > 1 => {
            let at = i.index(chars.len() - 1);
            chars.swap(at, at + 1);
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let at = i.index(lines.len());
            lines.insert(at, lines[at]);
            return lines.concat();
        }
        Mutation::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i.index(lines.len()));
            return lines.concat();
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => {
            let (a, b) = (a.index(lines.len()), b.index(lines.len()));
            lines.swap(a, b);
            return lines.concat();
        }
        _ => {}
    }
    chars.into_iter().collect()
}

/// A residual scope with terms, parameters and time, for expressions alone.
fn scope() -> Scope {
    Scope {
        dim: 4,
        has_time: true,
        has_solution: true,
        terms: vec!["lap".into(), "ut".into()],
        params: vec![
            ("c".into(), ParamShape::Array(DimExpr::dim_plus(-1))),
            ("g".into(), ParamShape::Scalar),
        ],
    }
}

fn expression(src: &str) -> Result<(), TestCaseError> {
    let err = match parse(src) {
        Err(e) => e,
        Ok(e) => match check(&e, &scope()) {
            Err(e) => e,
            Ok(_) => return Ok(()),
        },
    };
    well_formed("expression", &err.to_string())?;
    prop_assert!(err.span.is_known(), "{src:?}: {err} has no place");
    let lines = src.split('\n').count() as u32;
    prop_assert!(
        err.span.line >= 1 && err.span.line <= lines && err.span.col >= 1,
        "{src:?}: {err} at {}:{}",
        err.span.line,
        err.span.col
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_as_a_problem_file_never_panics(text in any::<String>()) {
        read_and_use(&text)?;
    }

    #[test]
    fn text_of_the_toml_alphabet_never_panics(
        text in "[a-z0-9 =\\[\\]{}\"',.#\n()+*/^_-]{0,120}",
    ) {
        read_and_use(&text)?;
    }

    #[test]
    fn arbitrary_expressions_get_one_line_errors(src in any::<String>()) {
        expression(&src)?;
    }

    #[test]
    fn expressions_of_the_token_alphabet_get_one_line_errors(
        src in "[a-z0-9()+*/^.,\\[\\] \n#_-]{0,60}",
    ) {
        expression(&src)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_problem_files_never_panic(
        base in any::<prop::sample::Index>(),
        edits in prop::collection::vec(mutation(), 1..5),
    ) {
        let bases = bases();
        let (_, text) = &bases[base.index(bases.len())];
        let mut text = text.clone();
        for m in &edits {
            text = apply(&text, m);
        }
        read_and_use(&text)?;
    }
}

/// Every shipped file with any one line removed, and with any one character removed, reads to a
/// problem or to one located error, without panicking. Exhaustive, not random.
#[test]
fn every_single_deletion_of_a_shipped_file_is_handled() {
    let mut count = 0;
    for (name, text) in bases() {
        // The starting points are valid problems, so that mutations reach past the reader.
        let spec = problem::read("fuzz.toml", &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let dim = spec.min_dim.max(3).min(spec.max_dim.unwrap_or(usize::MAX));
        if let Err(e) = spec.instantiate(dim, 0) {
            panic!("{name}: {e}");
        }
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut variants: Vec<String> = (0..lines.len())
            .map(|i| {
                let mut l = lines.clone();
                l.remove(i);
                l.concat()
            })
            .collect();
        variants.extend(text.char_indices().map(|(i, c)| {
            let mut t = text.clone();
            t.replace_range(i..i + c.len_utf8(), "");
            t
        }));
        for v in &variants {
            count += 1;
            match problem::read("fuzz.toml", v) {
                Ok(spec) => {
                    let dim = spec.min_dim.max(3).min(spec.max_dim.unwrap_or(usize::MAX));
                    if dim <= 40 {
                        if let Err(e) = spec.instantiate(dim, 0) {
                            let msg = e.to_string();
                            assert!(!msg.is_empty() && !msg.contains('\n'), "{name}: {msg:?}");
                        }
                    }
                }
                Err(e) => {
                    if let Err(failure) = located(v, &e) {
                        panic!("{name}: {failure}\n{v}");
                    }
                }
            }
        }
    }
    assert!(count > 1000, "{count} variants");
}
