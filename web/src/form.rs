//! The page's form: its fields as the page sends them (strings, as typed), the defaults it starts
//! from, and the checks that turn them into a run (a [`TrainConfig`] and the problem it solves) or a
//! message naming the bad field, located in the problem's text when the mistake is there.

use serde::{Deserialize, Serialize};
use stde_core::problem::{self, InstanceError, ProblemFileError, ProblemSpec};
use stde_core::step_plan::{StepPlan, StepPlanError};
use stde_core::train::{ConfigError, EstimatorKind, Schedule, TrainConfig};

use crate::problems;

/// The `equation` of a run that solves the problem written in the page's text box.
pub const CUSTOM: &str = "custom";

/// The name the page reads the text box under (errors carry it; the page shows line and column).
pub const PAGE_FILE: &str = "<typed in the page>";

/// The problem the text box starts with: a commented copy of a small shipped problem.
pub const EXAMPLE: &str = include_str!("example.toml");

/// Largest dimension the page accepts (a problem's own `max-dim` may be lower).
pub const MAX_DIM: u64 = 10_000;

/// Largest `V` of the dense estimator (sparse needs `V ≤ d`; exact ignores `V`).
pub const MAX_DENSE_DIRS: u64 = 1024;

/// Device memory the page lets one run's activations take (the browser's storage buffers and the
/// 4 GiB of a wasm32 heap are the real limits; this keeps well inside both).
pub const MAX_ACTIVATION_BYTES: u64 = 1 << 30;

/// The form's fields, as typed (strings), keyed by the `id` of their `<input>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct FormFields {
    /// A shipped problem's name, or [`CUSTOM`] for the text box's problem.
    pub equation: String,
    /// The text box: a problem in the problem language (read only when `equation` is [`CUSTOM`]).
    pub problem_text: String,
    /// Dimension `d`.
    pub dim: String,
    /// `sparse`, `dense` or `exact`.
    pub estimator: String,
    /// Sampled dimensions (or dense probes) per step `V`.
    pub rand_dims: String,
    /// Hidden width.
    pub width: String,
    /// Number of linear layers.
    pub depth: String,
    /// Optimisation steps.
    pub steps: String,
    /// Peak learning rate.
    pub lr: String,
    /// Seed.
    pub seed: String,
    /// Residual points per step.
    pub batch: String,
    /// Evaluate every this many steps.
    pub eval_every: String,
    /// Test points.
    pub test_points: String,
}

/// A place in the text box: 1-based line and column (in characters, as the problem reader counts
/// them), and the marked range as UTF-16 offsets (what `HTMLTextAreaElement.setSelectionRange`
/// takes). `start == end` marks a position between characters (the end of a line or of the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TextSpan {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// UTF-16 offset of the first marked character.
    pub start: usize,
    /// UTF-16 offset just past the marked range.
    pub end: usize,
}

/// A field the run cannot start from, with a message for the page to show next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The `id` of the offending `<input>` (`problem_text` for the text box).
    pub field: &'static str,
    /// Why, in one sentence (`LINE:COL: …` when it is located in the text box).
    pub message: String,
    /// Where in the text box, when the mistake is in the typed problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<TextSpan>,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
            at: None,
        }
    }
}

/// A run the form can start: its configuration and the problem it solves.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The configuration (`equation` is the problem's name; `problem_file` is [`PAGE_FILE`] for the
    /// text box's problem).
    pub config: TrainConfig,
    /// The problem.
    pub spec: ProblemSpec,
}

/// The page's defaults: they reach a relative L2 error below 5·10⁻² at `d = 10` in a few hundred
/// steps, which even a software WebGPU adapter (SwiftShader) runs within a minute or two.
///
/// Measured with `stde train --backend cpu` at these settings: rel L2 2.8·10⁻² (seed 0) after 300
/// steps, 3.4·10⁻² already after 100.
pub fn default_config() -> TrainConfig {
    TrainConfig {
        equation: "sine-gordon-two-body".into(),
        dim: 10,
        steps: 300,
        batch: 64,
        rand_dims: 4,
        estimator: EstimatorKind::Sparse,
        width: 32,
        depth: 3,
        lr: 5e-3,
        schedule: Schedule::Linear,
        seed: 0,
        eval_every: 25,
        test_points: 1000,
        ..TrainConfig::default()
    }
}

/// The form the page opens with: [`default_config`], and [`EXAMPLE`] in the text box.
pub fn default_fields() -> FormFields {
    FormFields::from_config(&default_config(), EXAMPLE)
}

/// Reads the text box: the problem, or its first mistake located in the text.
///
/// # Errors
/// A [`FieldError`] on `problem_text` with [`FieldError::at`] set.
pub fn read_text(text: &str) -> Result<ProblemSpec, FieldError> {
    problem::read(PAGE_FILE, text).map_err(|e| located("problem_text", text, &e))
}

/// An error of the text box's problem, with its place.
fn located(field: &'static str, text: &str, e: &ProblemFileError) -> FieldError {
    let at = span_at(text, e.line, e.col);
    FieldError {
        field,
        message: format!("{}:{}: {}", e.line, e.col, e.message),
        at: Some(at),
    }
}

/// The range to mark for an error at 1-based `line` and `col` (characters) of `text`: the name or
/// number that starts there, else the one character, else (past the end of a line or of the text)
/// the position alone. Lines and columns beyond the text are clamped to its end.
pub fn span_at(text: &str, line: usize, col: usize) -> TextSpan {
    let mut start = 0; // UTF-16 offset of the line's first character
    let mut rest = text;
    for _ in 1..line.max(1) {
        match rest.find('\n') {
            Some(i) => {
                start += rest[..=i].encode_utf16().count();
                rest = &rest[i + 1..];
            }
            None => {
                start += rest.encode_utf16().count();
                rest = "";
                break;
            }
        }
    }
    let this_line = rest.split('\n').next().unwrap_or("");
    let this_line = this_line.strip_suffix('\r').unwrap_or(this_line);
    let mut chars = this_line.chars();
    for c in chars.by_ref().take(col.saturating_sub(1)) {
        start += c.len_utf16();
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let mut end = start;
    match chars.next() {
        Some(c) if word(c) => {
            end += c.len_utf16();
            for c in chars.take_while(|&c| word(c)) {
                end += c.len_utf16();
            }
        }
        Some(c) => end += c.len_utf16(),
        None => {}
    }
    TextSpan {
        line,
        col,
        start,
        end,
    }
}

impl FormFields {
    /// The fields showing `cfg` (the equation as given, so a run of the text box's problem shows
    /// its name), with `problem_text` in the text box.
    pub fn from_config(cfg: &TrainConfig, problem_text: &str) -> Self {
        Self {
            equation: cfg.equation.clone(),
            problem_text: problem_text.to_string(),
            dim: cfg.dim.to_string(),
            estimator: cfg.estimator.name().to_string(),
            rand_dims: cfg.rand_dims.to_string(),
            width: cfg.width.to_string(),
            depth: cfg.depth.to_string(),
            steps: cfg.steps.to_string(),
            lr: cfg.lr.to_string(),
            seed: cfg.seed.to_string(),
            batch: cfg.batch.to_string(),
            eval_every: cfg.eval_every.to_string(),
            test_points: cfg.test_points.to_string(),
        }
    }

    /// The problem the fields name: one the page offers, or the text box's.
    ///
    /// # Errors
    /// An unknown or unoffered name (on `equation`), or the text box's first mistake.
    pub fn problem(&self) -> Result<ProblemSpec, FieldError> {
        if self.equation == CUSTOM {
            return read_text(&self.problem_text);
        }
        problems::offered_spec(&self.equation).ok_or_else(|| {
            FieldError::new(
                "equation",
                format!(
                    "unknown problem {:?}; choose one of {}, or write your own",
                    self.equation,
                    problems::catalog()
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }

    /// Checks every field (the problem first, then in the order of the form) and builds the run:
    /// collapsed, tanh, linear decay, as `stde train` defaults to. The problem is instantiated and
    /// planned at the chosen dimension, so a mistake that shows only there (an index past the end
    /// of a parameter at this `d`, a term the estimator cannot estimate) is reported too.
    ///
    /// # Errors
    /// The first [`FieldError`].
    pub fn to_config(&self) -> Result<Checked, FieldError> {
        let spec = self.problem()?;
        self.check_against(spec)
    }

    /// [`Self::to_config`] for a problem already read.
    pub(crate) fn check_against(&self, spec: ProblemSpec) -> Result<Checked, FieldError> {
        let custom = self.equation == CUSTOM;
        if let Some(reason) = problems::no_page_dims(&spec) {
            let field = if custom { "problem_text" } else { "equation" };
            return Err(FieldError::new(field, reason));
        }
        let (lo, hi) = problems::page_dims(&spec);
        let dim = integer("dim", &self.dim, lo as u64, hi as u64).map_err(|e| {
            with_hint(
                e,
                &format!("the page runs `{}` at d = {lo} … {hi}", spec.name),
            )
        })?;
        let estimator = match self.estimator.trim() {
            "sparse" => EstimatorKind::Sparse,
            "dense" => EstimatorKind::Dense,
            "exact" => EstimatorKind::Exact,
            other => {
                return Err(FieldError::new(
                    "estimator",
                    format!("unknown estimator {other:?}; choose sparse, dense or exact"),
                ))
            }
        };
        let rand_dims = match estimator {
            EstimatorKind::Sparse => {
                integer("rand_dims", &self.rand_dims, 1, dim).map_err(|e| {
                    with_hint(
                        e,
                        "sparse STDE samples V of the d dimensions without replacement",
                    )
                })?
            }
            EstimatorKind::Dense => integer("rand_dims", &self.rand_dims, 1, MAX_DENSE_DIRS)?,
            // Every coordinate: V is not used; any whole number will do.
            EstimatorKind::Exact => integer("rand_dims", &self.rand_dims, 1, u64::MAX)?.min(dim),
        };
        let width = integer("width", &self.width, 1, 1024)?;
        let depth = integer("depth", &self.depth, 2, 10)?;
        let steps = integer("steps", &self.steps, 1, 1_000_000)?;
        let lr = number("lr", &self.lr)?;
        if !(lr > 0.0 && lr <= 1.0) {
            return Err(FieldError::new(
                "lr",
                format!("must be above 0 and at most 1, got {lr}"),
            ));
        }
        let seed = integer("seed", &self.seed, 0, (1 << 53) - 1)?;
        let batch = integer("batch", &self.batch, 1, 4096)?;
        let eval_every = integer("eval_every", &self.eval_every, 1, steps)
            .map_err(|e| with_hint(e, "evaluations happen within the run's steps"))?;
        let test_points = integer("test_points", &self.test_points, 1, 100_000)?;
        let config = TrainConfig {
            equation: spec.name.clone(),
            problem_file: custom.then(|| PAGE_FILE.to_string()),
            dim: dim as usize,
            steps,
            batch: batch as usize,
            rand_dims: rand_dims as usize,
            estimator,
            width: width as usize,
            depth: depth as usize,
            lr,
            seed,
            eval_every,
            test_points: test_points as usize,
            ..default_config()
        };
        // The core's checks: the problem instantiates and its terms can be planned at this d.
        let text = custom.then_some(self.problem_text.as_str());
        let (instance, plan) =
            stde_core::trainer::check_config(&config, &spec).map_err(|e| config_error(&e, text))?;
        // As `Trainer::with_problem` refuses (checked here so that Start stays disabled).
        if instance.exact.is_none() && instance.reference.is_none() {
            return Err(FieldError::new(
                if custom { "problem_text" } else { "equation" },
                format!(
                    "problem `{}` has neither an [exact] solution nor a [reference] value, so \
                     its error cannot be measured: add one",
                    spec.name
                ),
            ));
        }
        let bytes = activation_bytes(&config, &plan, &instance.constraints);
        if bytes > MAX_ACTIVATION_BYTES {
            return Err(FieldError::new(
                "batch",
                format!(
                    "this run would need about {} MiB of activations (the page allows {} MiB): \
                     lower the batch, V, width or depth",
                    bytes >> 20,
                    MAX_ACTIVATION_BYTES >> 20
                ),
            ));
        }
        Ok(Checked { config, spec })
    }
}

/// The form field of a core [`ConfigError`], located in the text box when `text` is the problem's
/// text and the error has a place.
fn config_error(e: &ConfigError, text: Option<&str>) -> FieldError {
    let in_problem = |file_error: &ProblemFileError, field: &'static str| match text {
        Some(t) => located(field, t, file_error),
        // A shipped problem's place is in its file, which the message names.
        None => FieldError::new(field, file_error.to_string()),
    };
    let problem_field = if text.is_some() {
        "problem_text"
    } else {
        "equation"
    };
    match e {
        ConfigError::Instance(InstanceError::Dim { .. }) => FieldError::new("dim", e.to_string()),
        ConfigError::Instance(InstanceError::Expr(f)) => in_problem(f, problem_field),
        ConfigError::Instance(InstanceError::NoExact(_)) => {
            FieldError::new(problem_field, e.to_string())
        }
        // A term this estimator cannot estimate: the estimator is what to change, the term's
        // declaration is where (marked in the text box).
        ConfigError::Plan(StepPlanError::Located(f)) => in_problem(f, "estimator"),
        ConfigError::Plan(StepPlanError::RandDims { .. }) => {
            FieldError::new("rand_dims", e.to_string())
        }
        ConfigError::Plan(StepPlanError::Biased { .. } | StepPlanError::MixedKinds { .. }) => {
            FieldError::new("estimator", e.to_string())
        }
        ConfigError::Plan(_) => FieldError::new(problem_field, e.to_string()),
        ConfigError::Invalid { field, reason } => {
            let id = match *field {
                "eval-every" => "eval_every",
                "test-points" => "test_points",
                "rand-dims" => "rand_dims",
                "steps" => "steps",
                "batch" => "batch",
                "width" => "width",
                "depth" => "depth",
                "lr" => "lr",
                "dim" => "dim",
                _ => problem_field,
            };
            FieldError::new(id, reason.clone())
        }
    }
}

/// Bytes of the jet activations and their cotangents (the largest group of points: the residual's
/// or a soft constraint's), the points and the first layer of one step: an estimate that keeps a
/// run inside what a tab can allocate.
pub fn activation_bytes(
    cfg: &TrainConfig,
    plan: &StepPlan,
    constraints: &[problem::Constraint],
) -> u64 {
    let v = plan.n_dirs as u64;
    let k = plan.order as u64;
    let blocks = if cfg.collapsed && plan.collapsible {
        2 + k.saturating_sub(1) * v
    } else {
        1 + k * v
    };
    let mut rows = cfg.batch as u64 * blocks;
    let gradient_dirs = match cfg.estimator {
        EstimatorKind::Exact => cfg.dim,
        _ => cfg.rand_dims.min(cfg.dim),
    } as u64;
    let mut points = cfg.batch as u64;
    for c in constraints {
        let n = c.points.unwrap_or(cfg.batch) as u64;
        let dirs = if c.gradient.is_some() {
            gradient_dirs
        } else {
            0
        };
        rows = rows.max(n * (1 + dirs));
        points += n;
    }
    let stride = plan.stride as u64;
    let hidden = rows * cfg.width as u64 * (2 * cfg.depth as u64 + 2);
    let points = (points + cfg.test_points as u64) * stride;
    let first_layer = 4 * (cfg.width as u64) * stride;
    4 * (hidden + points + first_layer)
}

fn with_hint(mut e: FieldError, hint: &str) -> FieldError {
    e.message = format!("{} ({hint})", e.message);
    e
}

/// A whole number in `lo..=hi`.
fn integer(field: &'static str, text: &str, lo: u64, hi: u64) -> Result<u64, FieldError> {
    let t = text.trim();
    let range = if hi == u64::MAX {
        format!("of at least {lo}")
    } else {
        format!("from {lo} to {hi}")
    };
    if t.is_empty() {
        return Err(FieldError::new(
            field,
            format!("required: a whole number {range}"),
        ));
    }
    let v: u64 = t
        .parse()
        .map_err(|_| FieldError::new(field, format!("{t:?} is not a whole number {range}")))?;
    if v < lo || v > hi {
        return Err(FieldError::new(
            field,
            format!("must be a whole number {range}, got {v}"),
        ));
    }
    Ok(v)
}

/// A finite number (`1e-3` and `0.001` both work).
fn number(field: &'static str, text: &str) -> Result<f64, FieldError> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(FieldError::new(
            field,
            format!("{t:?} is not a number (e.g. 0.005 or 5e-3)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(text: &str) -> FormFields {
        FormFields {
            equation: CUSTOM.into(),
            problem_text: text.into(),
            ..default_fields()
        }
    }

    #[test]
    fn defaults_round_trip_through_the_form() {
        let cfg = default_config();
        let checked = default_fields().to_config().expect("defaults");
        assert_eq!(checked.config, cfg);
        assert_eq!(checked.spec.name, cfg.equation);
    }

    #[test]
    fn bad_fields_are_named() {
        let ok = default_fields();
        type Edit = fn(&mut FormFields);
        let cases: [(&str, Edit); 11] = [
            ("equation", |f| f.equation = "no-such-problem".into()),
            ("dim", |f| f.dim = "1".into()),
            ("dim", |f| f.dim = "10001".into()),
            ("dim", |f| f.dim = "ten".into()),
            ("estimator", |f| f.estimator = "magic".into()),
            ("rand_dims", |f| f.rand_dims = "11".into()),
            ("depth", |f| f.depth = "1".into()),
            ("lr", |f| f.lr = "-0.1".into()),
            ("lr", |f| f.lr = "NaN".into()),
            ("eval_every", |f| f.eval_every = "301".into()),
            ("problem_text", |f| {
                f.equation = CUSTOM.into();
                f.problem_text = "name = \"x\"\n[pde\n".into();
            }),
        ];
        for (field, edit) in cases {
            let mut f = ok.clone();
            edit(&mut f);
            let e = f.to_config().expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn oversized_runs_are_refused() {
        let mut f = default_fields();
        f.dim = "10000".into();
        f.rand_dims = "1000".into();
        f.batch = "4096".into();
        f.width = "512".into();
        let e = f.to_config().expect_err("too big");
        assert_eq!(e.field, "batch");
        assert!(e.message.contains("MiB"), "{e}");
    }

    #[test]
    fn largest_dimension_is_accepted() {
        let mut f = default_fields();
        f.dim = MAX_DIM.to_string();
        assert_eq!(f.to_config().map(|c| c.config.dim), Ok(MAX_DIM as usize));
    }

    #[test]
    fn a_problems_own_dimension_range_is_enforced() {
        let mut f = problems::info("third-order-mixed")
            .expect("offered")
            .defaults
            .clone();
        f.dim = "65".into();
        let e = f.to_config().expect_err("max-dim 64");
        assert_eq!(e.field, "dim");
        assert!(e.message.contains("64"), "{e}");
        f.dim = "64".into();
        f.estimator = "sparse".into();
        f.rand_dims = "4".into();
        assert_eq!(f.to_config().map(|c| c.config.dim), Ok(64));
    }

    #[test]
    fn the_example_trains_as_typed() {
        let checked = custom(EXAMPLE).to_config().expect("example");
        assert_eq!(checked.config.problem_file.as_deref(), Some(PAGE_FILE));
        assert_eq!(checked.config.equation, checked.spec.name);
        assert_ne!(checked.spec.name, CUSTOM);
    }

    #[test]
    fn a_syntax_error_is_located_in_the_text() {
        let text = "name = \"p\"\nmin-dim = 2\n[terms]\nlap = \"laplacian\"\n[pde\n";
        let e = custom(text).to_config().expect_err("unclosed table");
        let at = e.at.expect("located");
        assert_eq!((at.line, at.col), (5, 5), "{e}");
        assert!(e.message.starts_with("5:5: "), "{e}");
        // Past the end of `[pde`: a position, not a character.
        assert_eq!(&text[at.start..], "\n", "{at:?}");
        assert_eq!(at.end, at.start);
    }

    #[test]
    fn an_expression_error_marks_the_name() {
        let text = EXAMPLE.replace("sin(u)", "sinn(u)");
        assert_ne!(text, EXAMPLE, "the example has a sin(u) to break");
        let e = custom(&text).to_config().expect_err("unknown function");
        let at = e.at.expect("located");
        let utf16: Vec<u16> = text.encode_utf16().collect();
        let marked = String::from_utf16(&utf16[at.start..at.end]).expect("utf-16");
        assert_eq!(marked, "sinn", "{e}");
        assert!(e.message.contains("sinn"), "{e}");
        let line = text.lines().nth(at.line - 1).expect("line");
        assert_eq!(
            line.chars().skip(at.col - 1).take(4).collect::<String>(),
            "sinn"
        );
    }

    #[test]
    fn an_error_at_one_dimension_is_located_too() {
        // c has d entries: c[i+1] runs past the end at i = d-1, which only instantiation sees.
        let text = EXAMPLE.replace("c[i] *", "c[i+1] *");
        assert_ne!(text, EXAMPLE, "the example has a c[i] * to break");
        assert!(stde_core::problem::read("t", &text).is_ok(), "reads");
        let e = custom(&text).to_config().expect_err("past the end");
        assert_eq!(e.field, "problem_text");
        let at = e.at.expect("located");
        assert!(e.message.contains("past the end"), "{e}");
        let line = text.lines().nth(at.line - 1).expect("line");
        assert!(line.contains("c[i+1]"), "{line}");
    }

    #[test]
    fn a_problem_without_a_measure_of_error_is_refused() {
        let start = EXAMPLE
            .find("[exact]")
            .expect("the example has an [exact] table");
        let text = &EXAMPLE[..start];
        let e = custom(text).to_config().expect_err("no exact");
        assert_eq!(e.field, "problem_text");
        // With rhs = "manufactured", the instance itself is refused: no exact solution to derive
        // it from.
        assert!(e.message.contains("exact"), "{e}");
    }

    #[test]
    fn an_estimator_the_problem_cannot_use_is_named() {
        let mut f = problems::info("biharmonic")
            .expect("offered")
            .defaults
            .clone();
        f.estimator = "exact".into();
        let e = f.to_config().expect_err("biharmonic needs dense");
        assert_eq!(e.field, "estimator");
        assert!(e.message.contains("dense"), "{e}");
    }

    #[test]
    fn spans_count_utf16_and_clamp() {
        let text = "a = 1\n# Δu ≥ 𝑥 here\nb\n";
        // Line 2, column 10 is the `h` after a non-BMP character (two UTF-16 units).
        let s = span_at(text, 2, 10);
        assert_eq!(s.start, 16);
        let utf16: Vec<u16> = text.encode_utf16().collect();
        assert_eq!(
            String::from_utf16(&utf16[s.start..s.end]).expect("utf-16"),
            "here"
        );
        let past = span_at(text, 9, 9);
        assert_eq!((past.start, past.end), (utf16.len(), utf16.len()));
        let eol = span_at(text, 1, 6);
        assert_eq!((eol.start, eol.end), (5, 5), "the end of the line");
    }
}
