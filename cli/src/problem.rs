//! The problem of a run: a shipped problem by name or a problem file, read with one located error,
//! and the settings a problem suggests when the user gives none.

use std::path::{Path, PathBuf};

use stde_core::problem::{self, ProblemSpec};
use stde_core::train::TrainConfig;

use crate::args::ConfigFlags;
use crate::error::CliError;
use crate::text;

/// The name of the copy of a problem file kept in a run directory, so that a resumed run solves the
/// same problem even if the original file changes or moves.
pub const RUN_COPY: &str = "problem.toml";

/// Reads the problem of `cfg`: the file `cfg.problem_file` (or its copy in `run_dir` when resuming),
/// else the shipped problem `cfg.equation`.
///
/// # Errors
/// [`CliError::Problem`] for an unreadable or invalid file (with its line and column).
pub fn load(
    cfg: &TrainConfig,
    run_dir: Option<&Path>,
) -> Result<(ProblemSpec, Option<String>), CliError> {
    let Some(file) = &cfg.problem_file else {
        let spec = problem::builtin(&cfg.equation)
            .ok_or_else(|| CliError::Problem {
                message: format!(
                    "unknown problem {}: {}",
                    text::quote(&cfg.equation),
                    unknown_problem_hint(&cfg.equation)
                ),
            })?
            .map_err(|e| CliError::Problem {
                message: e.to_string(),
            })?;
        return Ok((spec, None));
    };
    let copy = run_dir.map(|d| d.join(RUN_COPY)).filter(|p| p.is_file());
    let path = copy.unwrap_or_else(|| PathBuf::from(file));
    let text = std::fs::read_to_string(&path).map_err(|e| CliError::Problem {
        message: format!("problem file {}: {e}", text::path(&path)),
    })?;
    let spec = problem::read(&text::path(&path), &text).map_err(|e| CliError::Problem {
        message: e.to_string(),
    })?;
    Ok((spec, Some(text)))
}

/// Applies the problem's suggested estimator and `V` where neither a flag nor the `--config` file
/// set them, and names the run after a file problem.
pub fn apply_defaults(cfg: &mut TrainConfig, spec: &ProblemSpec, flags: &ConfigFlags) {
    let in_file = |key: &str| {
        flags.config.as_ref().is_some_and(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .is_some_and(|t| t.contains_key(key))
        })
    };
    if flags.estimator.is_none() && !in_file("estimator") {
        if let Some(e) = spec.defaults.estimator {
            cfg.estimator = e;
        }
    }
    if flags.rand_dims.is_none() && !in_file("rand-dims") {
        if let Some(v) = spec.defaults.rand_dims {
            cfg.rand_dims = v;
        }
    }
    if cfg.problem_file.is_some() {
        cfg.equation.clone_from(&spec.name);
    }
}

/// What to say of a name that is no shipped problem: the closest name when it is a near miss (a
/// typo or the wrong case), and where the full list is (it is too long for one error line).
pub fn unknown_problem_hint(name: &str) -> String {
    let lower = name.to_lowercase();
    let closest = problem::BUILTIN
        .iter()
        .map(|(n, _)| (edit_distance(&lower, n), *n))
        .min();
    let n = problem::BUILTIN.len();
    match closest {
        Some((distance, best)) if distance <= 3 && !name.is_empty() => {
            format!("not a shipped problem; did you mean {best}? (`stde list` shows all {n})")
        }
        _ => format!(
            "not a shipped problem (`stde list` shows all {n}, such as sine-gordon-two-body), or \
             give a problem file with --problem FILE.toml"
        ),
    }
}

/// Levenshtein distance in characters, stopping early for long inputs (a name is short).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
