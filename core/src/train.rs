//! The configuration, progress and errors of a training run; the loop itself is
//! [`crate::trainer::Trainer`], re-exported here.

use serde::{Deserialize, Serialize};

use crate::backend::BackendError;
use crate::mlp::{Activation, MlpShape};

/// Which STDE estimator of the Laplacian drives training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EstimatorKind {
    /// `V` coordinates without replacement, scaled by `d/V` (one-hot probes, sparse first layer).
    Sparse,
    /// `V` Rademacher vectors, scaled by `1/V`.
    Dense,
    /// All `d` coordinates.
    Exact,
}

impl EstimatorKind {
    /// The name used in configs and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            EstimatorKind::Sparse => "sparse",
            EstimatorKind::Dense => "dense",
            EstimatorKind::Exact => "exact",
        }
    }
}

/// Learning-rate schedule over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// `lr·(1 − t/T)`: linear decay to zero (the paper's).
    Linear,
    /// `lr`.
    Constant,
    /// `lr·½(1 + cos(πt/T))`.
    Cosine,
}

impl Schedule {
    /// The learning rate of step `t` (from 0) of `total`.
    pub fn lr(self, base: f64, t: u64, total: u64) -> f64 {
        let frac = t as f64 / total.max(1) as f64;
        match self {
            Schedule::Linear => base * (1.0 - frac),
            Schedule::Constant => base,
            Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()),
        }
    }
}

fn default_activation() -> Activation {
    Activation::Tanh
}

/// Everything that defines a run. Two runs with equal configs (and backends of equal precision)
/// produce the same numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainConfig {
    /// Problem name, e.g. `sine-gordon-two-body`.
    pub equation: String,
    /// Dimension `d`.
    pub dim: usize,
    /// Optimisation steps.
    pub steps: u64,
    /// Residual points per step `N`.
    pub batch: usize,
    /// Sampled dimensions (or dense probes) per step `V`.
    pub rand_dims: usize,
    /// Estimator of the Laplacian.
    pub estimator: EstimatorKind,
    /// Hidden width.
    pub width: usize,
    /// Number of linear layers.
    pub depth: usize,
    /// Hidden activation.
    #[serde(default = "default_activation")]
    pub activation: Activation,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed of every random draw.
    pub seed: u64,
    /// Evaluate the test error every this many steps (and at the end).
    pub eval_every: u64,
    /// Number of fixed test points.
    pub test_points: usize,
    /// Whether to propagate the collapsed top coefficient.
    pub collapsed: bool,
    /// The problem file the run solves, when it is not a shipped problem (`equation` then holds
    /// the file's problem name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_file: Option<String>,
    /// Weight sharing: the first block maps every `B` consecutive coordinates to one feature with
    /// one shared `B → 1` linear map and `tanh` ([`crate::shared`]); `None`: a plain first layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_blocks: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            equation: "sine-gordon-two-body".into(),
            dim: 1000,
            steps: 10_000,
            batch: 100,
            rand_dims: 16,
            estimator: EstimatorKind::Sparse,
            width: 128,
            depth: 4,
            activation: Activation::Tanh,
            lr: 1e-3,
            schedule: Schedule::Linear,
            seed: 0,
            eval_every: 1000,
            test_points: 20_000,
            collapsed: true,
            problem_file: None,
            share_blocks: None,
        }
    }
}

/// A configuration a run cannot start from.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The problem does not instantiate at this dimension (a dimension out of its range, or an
    /// expression that does not check there).
    #[error(transparent)]
    Instance(#[from] crate::problem::InstanceError),
    /// The problem's terms cannot be estimated as configured.
    #[error(transparent)]
    Plan(#[from] crate::step_plan::StepPlanError),
    /// A value out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl TrainConfig {
    /// Checks the fields that do not depend on the problem (the problem, the dimension and `V` are
    /// checked when the problem is instantiated and planned).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate_generic(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: String| Err(ConfigError::Invalid { field, reason });
        if self.steps == 0 {
            return invalid("steps", "must be at least 1".into());
        }
        if self.steps > u64::from(u32::MAX - 1) {
            return invalid("steps", format!("at most {}", u32::MAX - 1));
        }
        if self.batch == 0 {
            return invalid("batch", "must be at least 1 residual point".into());
        }
        if self.width == 0 {
            return invalid("width", "must be at least 1".into());
        }
        if self.depth < 2 {
            return invalid("depth", "needs at least 2 linear layers".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return invalid("lr", format!("must be a positive number, got {}", self.lr));
        }
        if self.eval_every == 0 {
            return invalid("eval-every", "must be at least 1".into());
        }
        if self.test_points == 0 {
            return invalid("test-points", "must be at least 1".into());
        }
        if self.dim == 0 {
            return invalid("dim", "must be at least 1".into());
        }
        if let Some(b) = self.share_blocks {
            let d = self.dim;
            if b == 0 {
                return invalid(
                    "share-blocks",
                    "must be at least 1 coordinate per block".into(),
                );
            }
            if b > d {
                return invalid(
                    "share-blocks",
                    format!("a block of {b} coordinates is larger than d = {d}"),
                );
            }
            if !d.is_multiple_of(b) {
                return invalid(
                    "share-blocks",
                    format!(
                        "{b} does not divide d = {d}: the d space coordinates are cut into d/B \
                         blocks of B (a time column is not part of any block)"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Number of probe directions per step.
    pub fn n_dirs(&self) -> usize {
        match self.estimator {
            EstimatorKind::Exact => self.dim,
            _ => self.rand_dims,
        }
    }

    /// The network architecture.
    pub fn mlp_shape(&self) -> MlpShape {
        MlpShape::new(self.dim, self.width, self.depth, self.activation)
    }
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The device failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step}: loss is {loss} (try a smaller --lr)")]
    Diverged {
        /// The step whose loss was not finite.
        step: u64,
        /// The loss read.
        loss: f64,
    },
}

/// The relative errors of one evaluation on the test set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Steps completed.
    pub step: u64,
    /// `‖u_θ − u*‖₂ / ‖u*‖₂`.
    pub rel_l2: f64,
    /// `‖u_θ − u*‖₁ / ‖u*‖₁`.
    pub rel_l1: f64,
    /// `‖u*‖₂ / √n`, the root mean square of the exact solution on the test set: the scale the
    /// relative errors divide by, which varies widely between the instances (the `c_i`) of one
    /// problem, so `rel_l2 · exact_rms` is the absolute RMS error.
    #[serde(default)]
    pub exact_rms: f64,
    /// For a problem judged at one point: the model's value there (the errors above are then those
    /// of this one value, and NaN where the problem gives no reference value at this dimension).
    #[serde(default)]
    pub point_value: Option<f64>,
}

/// The trainer's resumable state besides the device buffers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps completed.
    pub step: u64,
    /// Best evaluation so far (by relative L2).
    pub best: Option<Evaluation>,
    /// Latest evaluation.
    pub last: Option<Evaluation>,
}

/// The parameters and Adam moments, as host vectors (for checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct HostState {
    /// Parameters.
    pub params: Vec<f32>,
    /// Adam first moments.
    pub adam_m: Vec<f32>,
    /// Adam second moments.
    pub adam_v: Vec<f32>,
    /// Progress counters.
    pub progress: Progress,
}

pub use crate::trainer::{initial_params_for, Trainer};
