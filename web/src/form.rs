//! The page's form: its fields as the page sends them (strings, as typed), the defaults it starts
//! from, and the checks that turn them into a [`TrainConfig`] or a message naming the bad field.

use serde::{Deserialize, Serialize};
use stde_core::train::{EstimatorKind, Schedule, TrainConfig};

/// The equations the page offers: the paper's two-body problems.
pub const EQUATIONS: [&str; 3] = [
    "sine-gordon-two-body",
    "allen-cahn-two-body",
    "poisson-two-body",
];

/// Largest dimension the page accepts.
pub const MAX_DIM: u64 = 10_000;

/// Device memory the page lets one run's activations take (the browser's storage buffers and the
/// 4 GiB of a wasm32 heap are the real limits; this keeps well inside both).
pub const MAX_ACTIVATION_BYTES: u64 = 1 << 30;

/// The form's fields, as typed (strings), keyed by the `id` of their `<input>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct FormFields {
    /// Problem name.
    pub equation: String,
    /// Dimension `d`.
    pub dim: String,
    /// Sampled dimensions per step `V`.
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

/// A field the run cannot start from, with a message for the page to show next to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The `id` of the offending `<input>`.
    pub field: &'static str,
    /// Why, in one sentence.
    pub message: String,
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

impl FormFields {
    /// The fields showing `cfg`.
    pub fn from_config(cfg: &TrainConfig) -> Self {
        Self {
            equation: cfg.equation.clone(),
            dim: cfg.dim.to_string(),
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

    /// Checks every field (in the order of the form) and builds the run's configuration: sparse
    /// STDE, collapsed, tanh, linear decay, as `stde train` defaults to.
    ///
    /// # Errors
    /// The first [`FieldError`].
    pub fn to_config(&self) -> Result<TrainConfig, FieldError> {
        if !EQUATIONS.contains(&self.equation.as_str()) {
            return Err(FieldError {
                field: "equation",
                message: format!(
                    "unknown equation {:?}; choose one of {}",
                    self.equation,
                    EQUATIONS.join(", ")
                ),
            });
        }
        let dim = integer("dim", &self.dim, 2, MAX_DIM)?;
        let rand_dims = integer("rand_dims", &self.rand_dims, 1, dim)
            .map_err(|e| with_hint(e, "V dimensions are sampled out of d without replacement"))?;
        let width = integer("width", &self.width, 1, 1024)?;
        let depth = integer("depth", &self.depth, 2, 10)?;
        let steps = integer("steps", &self.steps, 1, 1_000_000)?;
        let lr = number("lr", &self.lr)?;
        if !(lr > 0.0 && lr <= 1.0) {
            return Err(FieldError {
                field: "lr",
                message: format!("must be above 0 and at most 1, got {lr}"),
            });
        }
        let seed = integer("seed", &self.seed, 0, (1 << 53) - 1)?;
        let batch = integer("batch", &self.batch, 1, 4096)?;
        let eval_every = integer("eval_every", &self.eval_every, 1, steps)
            .map_err(|e| with_hint(e, "evaluations happen within the run's steps"))?;
        let test_points = integer("test_points", &self.test_points, 1, 100_000)?;
        let cfg = TrainConfig {
            equation: self.equation.clone(),
            dim: dim as usize,
            steps,
            batch: batch as usize,
            rand_dims: rand_dims as usize,
            width: width as usize,
            depth: depth as usize,
            lr,
            seed,
            eval_every,
            test_points: test_points as usize,
            ..default_config()
        };
        let bytes = activation_bytes(&cfg);
        if bytes > MAX_ACTIVATION_BYTES {
            return Err(FieldError {
                field: "batch",
                message: format!(
                    "this run would need about {} MiB of activations (the page allows {} MiB): \
                     lower the batch, V, width or depth",
                    bytes >> 20,
                    MAX_ACTIVATION_BYTES >> 20
                ),
            });
        }
        // The core's own checks stay authoritative; the ranges above make them unreachable.
        let spec = stde_core::problem::builtin(&cfg.equation)
            .and_then(Result::ok)
            .ok_or_else(|| FieldError {
                field: "equation",
                message: format!("unknown problem {:?}", cfg.equation),
            })?;
        stde_core::trainer::check_config(&cfg, &spec).map_err(|e| FieldError {
            field: "equation",
            message: e.to_string(),
        })?;
        Ok(cfg)
    }
}

/// Bytes of the jet activations, their cotangents, the points and the first layer of one step.
pub fn activation_bytes(cfg: &TrainConfig) -> u64 {
    let rows = (cfg.batch as u64) * (2 + cfg.n_dirs() as u64);
    let hidden = rows * cfg.width as u64 * (2 * cfg.depth as u64 + 2);
    let points = (cfg.batch as u64 + cfg.test_points as u64) * cfg.dim as u64;
    let first_layer = 4 * (cfg.width as u64) * cfg.dim as u64;
    4 * (hidden + points + first_layer)
}

fn with_hint(mut e: FieldError, hint: &str) -> FieldError {
    e.message = format!("{} ({hint})", e.message);
    e
}

/// A whole number in `lo..=hi`.
fn integer(field: &'static str, text: &str, lo: u64, hi: u64) -> Result<u64, FieldError> {
    let t = text.trim();
    let err = |message: String| FieldError { field, message };
    if t.is_empty() {
        return Err(err(format!("required: a whole number from {lo} to {hi}")));
    }
    let v: u64 = t
        .parse()
        .map_err(|_| err(format!("{t:?} is not a whole number from {lo} to {hi}")))?;
    if v < lo || v > hi {
        return Err(err(format!("must be from {lo} to {hi}, got {v}")));
    }
    Ok(v)
}

/// A finite number (`1e-3` and `0.001` both work).
fn number(field: &'static str, text: &str) -> Result<f64, FieldError> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(FieldError {
            field,
            message: format!("{t:?} is not a number (e.g. 0.005 or 5e-3)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_the_form() {
        let cfg = default_config();
        assert_eq!(FormFields::from_config(&cfg).to_config(), Ok(cfg));
    }

    #[test]
    fn bad_fields_are_named() {
        let ok = FormFields::from_config(&default_config());
        type Edit = fn(&mut FormFields);
        let cases: [(&str, Edit); 9] = [
            ("equation", |f| f.equation = "heat".into()),
            ("dim", |f| f.dim = "1".into()),
            ("dim", |f| f.dim = "10001".into()),
            ("dim", |f| f.dim = "ten".into()),
            ("rand_dims", |f| f.rand_dims = "11".into()),
            ("depth", |f| f.depth = "1".into()),
            ("lr", |f| f.lr = "-0.1".into()),
            ("lr", |f| f.lr = "NaN".into()),
            ("eval_every", |f| f.eval_every = "301".into()),
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
        let mut f = FormFields::from_config(&default_config());
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
        let mut f = FormFields::from_config(&default_config());
        f.dim = MAX_DIM.to_string();
        assert_eq!(f.to_config().map(|c| c.dim), Ok(MAX_DIM as usize));
    }
}
