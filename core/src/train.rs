//! The PINN training loop, written once over the [`Backend`] primitives: sampling, the jet forward
//! pass, the residual, the adjoint, Adam, evaluation on a fixed test set, and checkpoint state.

use serde::{Deserialize, Serialize};

use crate::backend::{
    AdamStep, Backend, BackendError, Gemm, Nonlinearity, ProbeKind, Probes, ResidualParams,
    Sampling, SolutionKind,
};
use crate::batch::JetShape;
use crate::mlp::{Activation, Mlp, MlpShape};
use crate::pde::{Equation, Problem, ProblemError, ProblemKind};
use crate::rng::{self, streams, Philox};

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
        }
    }
}

/// A configuration a run cannot start from.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Unknown problem name, or a dimension too small for its solution.
    #[error(transparent)]
    Problem(#[from] ProblemError),
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
    /// Checks every field and resolves the problem.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad field.
    pub fn validate(&self) -> Result<Problem, ConfigError> {
        let kind: ProblemKind = self.equation.parse()?;
        let problem = Problem::from_kind(kind, self.dim, self.seed)?;
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
        match self.estimator {
            EstimatorKind::Sparse if self.rand_dims == 0 || self.rand_dims > self.dim => {
                return invalid(
                    "rand-dims",
                    format!(
                        "the sparse estimator samples V of d = {} dimensions without replacement, \
                         so V must be between 1 and {}; got {}",
                        self.dim, self.dim, self.rand_dims
                    ),
                );
            }
            EstimatorKind::Dense if self.rand_dims == 0 => {
                return invalid("rand-dims", "needs at least 1 probe".into());
            }
            _ => {}
        }
        Ok(problem)
    }

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

/// Largest test set kept resident on the device, in values (larger sets are regenerated in chunks).
const RESIDENT_TEST_VALUES: usize = 1 << 26;

/// Test points evaluated per chunk when the set is not resident.
fn test_chunk(cfg: &TrainConfig) -> usize {
    (RESIDENT_TEST_VALUES / cfg.dim).clamp(1, cfg.test_points)
}

/// Device buffers of one run, allocated once.
struct Buffers<B: Backend> {
    params: B::Buf,
    grad: B::Buf,
    adam_m: B::Buf,
    adam_v: B::Buf,
    coeffs: B::Buf,
    points: B::Buf,
    indices: B::Idx,
    dense: B::Buf,
    forcing: B::Buf,
    exact_scratch: B::Buf,
    /// `z[l]`: pre-activation of layer `l` (the last is the network output `m`).
    z: Vec<B::Buf>,
    /// `h[l]`: input of layer `l + 1` (`tanh(z[l])`).
    h: Vec<B::Buf>,
    bar_a: B::Buf,
    bar_b: B::Buf,
    loss_terms: B::Buf,
    test_points: B::Buf,
    test_exact: B::Buf,
    test_pred: B::Buf,
    eval_z: Vec<B::Buf>,
    eval_h: Vec<B::Buf>,
}

/// A training run on one backend.
pub struct Trainer<'b, B: Backend> {
    backend: &'b B,
    cfg: TrainConfig,
    problem: Problem,
    shape: MlpShape,
    bufs: Buffers<B>,
    progress: Progress,
    test_resident: bool,
    test_exact_ready: bool,
}

impl<B: Backend> std::fmt::Debug for Trainer<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("backend", &self.backend.describe())
            .field("cfg", &self.cfg)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

fn nonlinearity(e: Equation) -> Nonlinearity {
    match e {
        Equation::Poisson => Nonlinearity::Zero,
        Equation::AllenCahn => Nonlinearity::AllenCahn,
        Equation::SineGordon => Nonlinearity::SineGordon,
    }
}

/// The initial parameters of a configuration: PyTorch's uniform `±1/√fan_in`, from the
/// `INIT_WEIGHTS` stream of the seed.
pub fn initial_params(cfg: &TrainConfig) -> Vec<f32> {
    let shape = cfg.mlp_shape();
    let philox = Philox::new(cfg.seed);
    let mut raw = vec![0.0f32; shape.n_params()];
    philox.fill_uniform_f32(streams::INIT_WEIGHTS, 0, &mut raw);
    let mut it = raw.into_iter();
    let mlp = Mlp::init(shape, || f64::from(it.next().unwrap_or(0.5)));
    mlp.params.iter().map(|&p| p as f32).collect()
}

impl<'b, B: Backend> Trainer<'b, B> {
    /// Validates the configuration and allocates every buffer; parameters start from
    /// [`initial_params`] or from `resume`.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a bad configuration, [`TrainError::Backend`] when memory runs out.
    pub fn new(
        backend: &'b B,
        cfg: TrainConfig,
        resume: Option<HostState>,
    ) -> Result<Self, TrainError> {
        let problem = cfg.validate()?;
        let shape = cfg.mlp_shape();
        let n_params = shape.n_params();
        let hidden = JetShape {
            order: 2,
            n_dirs: cfg.n_dirs(),
            n_points: cfg.batch,
            width: cfg.width,
            collapsed: cfg.collapsed,
        };
        let rows = hidden.n_rows();
        let n_layers = shape.n_layers();
        let chunk = test_chunk(&cfg);
        let test_resident = cfg.test_points * cfg.dim <= RESIDENT_TEST_VALUES;
        let alloc = |len, what| backend.alloc(len, what);
        let mut z = Vec::new();
        let mut h = Vec::new();
        let mut eval_z = Vec::new();
        let mut eval_h = Vec::new();
        for l in 0..n_layers {
            let out = shape.dims[l + 1];
            z.push(alloc(rows * out, "layer pre-activations")?);
            eval_z.push(alloc(chunk * out, "evaluation pre-activations")?);
            if l + 1 < n_layers {
                h.push(alloc(rows * out, "layer activations")?);
                eval_h.push(alloc(chunk * out, "evaluation activations")?);
            }
        }
        let max_width = shape.dims[1..].iter().copied().max().unwrap_or(1);
        let bufs = Buffers {
            params: alloc(n_params, "parameters")?,
            grad: alloc(n_params, "gradient")?,
            adam_m: alloc(n_params, "Adam first moment")?,
            adam_v: alloc(n_params, "Adam second moment")?,
            coeffs: alloc(problem.coeffs.len(), "solution coefficients")?,
            points: alloc(cfg.batch * cfg.dim, "residual points")?,
            indices: backend.alloc_idx(cfg.n_dirs(), "probe indices")?,
            dense: alloc(
                if cfg.estimator == EstimatorKind::Dense {
                    cfg.rand_dims * cfg.dim
                } else {
                    1
                },
                "dense probes",
            )?,
            forcing: alloc(cfg.batch, "forcing")?,
            exact_scratch: alloc(cfg.batch.max(chunk), "exact values")?,
            z,
            h,
            bar_a: alloc(rows * max_width, "cotangents")?,
            bar_b: alloc(rows * max_width, "cotangents")?,
            loss_terms: alloc(cfg.batch, "loss terms")?,
            test_points: alloc(
                if test_resident {
                    cfg.test_points * cfg.dim
                } else {
                    chunk * cfg.dim
                },
                "test points",
            )?,
            test_exact: alloc(cfg.test_points, "test exact values")?,
            test_pred: alloc(cfg.batch.max(chunk), "test predictions")?,
            eval_z,
            eval_h,
        };
        let mut trainer = Self {
            backend,
            cfg,
            problem,
            shape,
            bufs,
            progress: Progress {
                step: 0,
                best: None,
                last: None,
            },
            test_resident,
            test_exact_ready: false,
        };
        let coeffs: Vec<f32> = trainer.problem.coeffs.iter().map(|&c| c as f32).collect();
        backend.upload(&mut trainer.bufs.coeffs, 0, &coeffs);
        match resume {
            Some(state) => trainer.load_state(state)?,
            None => {
                let p = initial_params(&trainer.cfg);
                backend.upload(&mut trainer.bufs.params, 0, &p);
            }
        }
        if trainer.cfg.estimator == EstimatorKind::Exact {
            let all: Vec<u32> = (0..trainer.cfg.dim as u32).collect();
            backend.upload_idx(&mut trainer.bufs.indices, &all);
        }
        Ok(trainer)
    }

    fn load_state(&mut self, state: HostState) -> Result<(), TrainError> {
        let n = self.shape.n_params();
        for (name, v) in [
            ("params", &state.params),
            ("adam_m", &state.adam_m),
            ("adam_v", &state.adam_v),
        ] {
            if v.len() != n {
                return Err(ConfigError::Invalid {
                    field: "resume",
                    reason: format!("checkpoint {name} has {} values, the model {n}", v.len()),
                }
                .into());
            }
        }
        self.backend.upload(&mut self.bufs.params, 0, &state.params);
        self.backend.upload(&mut self.bufs.adam_m, 0, &state.adam_m);
        self.backend.upload(&mut self.bufs.adam_v, 0, &state.adam_v);
        self.progress = state.progress;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The problem being solved.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// Progress counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Whether all configured steps are done.
    pub fn finished(&self) -> bool {
        self.progress.step >= self.cfg.steps
    }

    /// The learning rate of the next step.
    pub fn current_lr(&self) -> f64 {
        self.cfg
            .schedule
            .lr(self.cfg.lr, self.progress.step, self.cfg.steps)
    }

    /// Enqueues one optimisation step; nothing is read back.
    pub fn step(&mut self) {
        self.accumulate_gradient();
        self.apply_update();
    }

    /// Samples the step's points and probes, runs the jet forward pass, the residual and the adjoint,
    /// and accumulates `∂loss/∂θ` into the gradient buffer (zeroed by every update).
    pub fn accumulate_gradient(&mut self) {
        let be = self.backend;
        let cfg = &self.cfg;
        let b = &mut self.bufs;
        let step = self.progress.step as u32;
        let (n, d) = (cfg.batch, cfg.dim);
        be.sample(
            Sampling::BallPoints {
                first: 0,
                n,
                d,
                stream: streams::RESIDUAL_POINTS,
            },
            cfg.seed,
            step,
            &mut b.points,
        );
        let kind = match cfg.estimator {
            EstimatorKind::Sparse => {
                let mut idx = vec![0u32; cfg.rand_dims];
                rng::sample_index_set(cfg.seed, step, d, cfg.rand_dims, &mut idx);
                be.upload_idx(&mut b.indices, &idx);
                ProbeKind::OneHot
            }
            EstimatorKind::Exact => ProbeKind::OneHot,
            EstimatorKind::Dense => {
                be.sample(
                    Sampling::Rademacher {
                        count: cfg.rand_dims * d,
                    },
                    cfg.seed,
                    step,
                    &mut b.dense,
                );
                ProbeKind::Dense
            }
        };
        let top_weight = match cfg.estimator {
            EstimatorKind::Sparse => d as f32 / cfg.rand_dims as f32,
            EstimatorKind::Dense => 1.0 / cfg.rand_dims as f32,
            EstimatorKind::Exact => 1.0,
        };
        be.forcing(
            SolutionKind::from(self.problem.solution),
            nonlinearity(self.problem.equation),
            n,
            d,
            &b.coeffs,
            &b.points,
            &mut b.forcing,
            &mut b.exact_scratch,
        );
        let probes = Probes::<B> {
            kind,
            indices: &b.indices,
            dense: &b.dense,
        };
        let hidden = JetShape {
            order: 2,
            n_dirs: cfg.n_dirs(),
            n_points: n,
            width: cfg.width,
            collapsed: cfg.collapsed,
        };
        let rows = hidden.n_rows();
        let n_layers = self.shape.n_layers();
        let dims = &self.shape.dims;
        // Forward.
        be.input_layer_forward(hidden, d, &b.points, &probes, &b.params, 0, &mut b.z[0]);
        for l in 1..n_layers {
            let shape_in = hidden.with_width(dims[l]);
            be.jet_activation_forward(cfg.activation, shape_in, &b.z[l - 1], &mut b.h[l - 1]);
            let (w_off, b_off) = self.shape.offsets(l);
            let g = Gemm {
                b_offset: w_off,
                ..Gemm::nt(rows, dims[l + 1], dims[l])
            };
            be.gemm(g, &b.h[l - 1], &b.params, &mut b.z[l]);
            be.add_bias(
                hidden.with_width(dims[l + 1]),
                &b.params,
                b_off,
                &mut b.z[l],
            );
        }
        let out_shape = hidden.with_width(1);
        be.pinn_residual(
            ResidualParams {
                shape: out_shape,
                dim: d,
                top_weight,
                nonlinearity: nonlinearity(self.problem.equation),
                hard_ball_boundary: true,
            },
            &b.z[n_layers - 1],
            &b.points,
            &probes,
            &b.forcing,
            &mut b.loss_terms,
            &mut b.bar_a,
        );
        // Backward: bar_a holds the cotangent of z[l].
        for l in (1..n_layers).rev() {
            let (w_off, b_off) = self.shape.offsets(l);
            let (fan_in, fan_out) = (dims[l], dims[l + 1]);
            // dW_l += z̄_lᵀ · h_{l−1}
            let gw = Gemm {
                m: fan_out,
                n: fan_in,
                k: rows,
                trans_a: true,
                trans_b: false,
                alpha: 1.0,
                beta: 1.0,
                a_offset: 0,
                b_offset: 0,
                c_offset: w_off,
            };
            be.gemm(gw, &b.bar_a, &b.h[l - 1], &mut b.grad);
            be.bias_grad(hidden.with_width(fan_out), &b.bar_a, &mut b.grad, b_off);
            // h̄_{l−1} = z̄_l · W_l
            let gh = Gemm {
                m: rows,
                n: fan_in,
                k: fan_out,
                trans_a: false,
                trans_b: false,
                alpha: 1.0,
                beta: 0.0,
                a_offset: 0,
                b_offset: w_off,
                c_offset: 0,
            };
            be.gemm(gh, &b.bar_a, &b.params, &mut b.bar_b);
            be.jet_activation_backward(
                cfg.activation,
                hidden.with_width(fan_in),
                &b.z[l - 1],
                &b.bar_b,
                &mut b.bar_a,
            );
        }
        be.input_layer_backward(hidden, d, &b.points, &probes, &b.bar_a, &mut b.grad, 0);
    }

    /// Applies Adam with the scheduled learning rate and advances the step counter.
    pub fn apply_update(&mut self) {
        let be = self.backend;
        let cfg = &self.cfg;
        let b = &mut self.bufs;
        let t = self.progress.step + 1;
        let lr = cfg.schedule.lr(cfg.lr, self.progress.step, cfg.steps);
        be.adam(
            AdamStep {
                lr: lr as f32,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t: t as u32,
            },
            &mut b.params,
            &mut b.grad,
            &mut b.adam_m,
            &mut b.adam_v,
        );
        self.progress.step = t;
    }

    /// The loss of the latest step (mean squared residual), read back from the device.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if the read fails; [`TrainError::Diverged`] if it is not finite.
    pub async fn loss(&self) -> Result<f64, TrainError> {
        let terms = self
            .backend
            .download(&self.bufs.loss_terms, 0, self.cfg.batch)
            .await?;
        let loss = terms.iter().map(|&t| f64::from(t)).sum::<f64>() / self.cfg.batch as f64;
        if !loss.is_finite() {
            return Err(TrainError::Diverged {
                step: self.progress.step,
                loss,
            });
        }
        Ok(loss)
    }

    /// Evaluates the relative L2 and L1 errors on the fixed test set (drawn from the `TEST_POINTS`
    /// stream, step 0) and updates the best one.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn evaluate(&mut self) -> Result<Evaluation, TrainError> {
        let be = self.backend;
        let d = self.cfg.dim;
        let total = self.cfg.test_points;
        let chunk = test_chunk(&self.cfg);
        let n_layers = self.shape.n_layers();
        let dims = self.shape.dims.clone();
        let (mut diff2, mut ref2, mut diff1, mut ref1) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut first = 0;
        while first < total {
            let n = chunk.min(total - first);
            let b = &mut self.bufs;
            // A resident set is drawn and solved once; a large one is redrawn chunk by chunk.
            if !self.test_resident || !self.test_exact_ready {
                be.sample(
                    Sampling::BallPoints {
                        first,
                        n,
                        d,
                        stream: streams::TEST_POINTS,
                    },
                    self.cfg.seed,
                    0,
                    &mut b.test_points,
                );
                be.forcing(
                    SolutionKind::from(self.problem.solution),
                    nonlinearity(self.problem.equation),
                    n,
                    d,
                    &b.coeffs,
                    &b.test_points,
                    &mut b.exact_scratch,
                    &mut b.test_pred,
                );
                let exact = be.download(&b.test_pred, 0, n).await?;
                be.upload(&mut b.test_exact, first, &exact);
            }
            let plain = JetShape {
                order: 0,
                n_dirs: 1,
                n_points: n,
                width: dims[1],
                collapsed: false,
            };
            be.gemm(
                Gemm::nt(n, dims[1], d),
                &b.test_points,
                &b.params,
                &mut b.eval_z[0],
            );
            let (_, b_off) = self.shape.offsets(0);
            be.add_bias(plain, &b.params, b_off, &mut b.eval_z[0]);
            for l in 1..n_layers {
                let shape_in = plain.with_width(dims[l]);
                be.jet_activation_forward(
                    self.cfg.activation,
                    shape_in,
                    &b.eval_z[l - 1],
                    &mut b.eval_h[l - 1],
                );
                let (w_off, b_off) = self.shape.offsets(l);
                let g = Gemm {
                    b_offset: w_off,
                    ..Gemm::nt(n, dims[l + 1], dims[l])
                };
                be.gemm(g, &b.eval_h[l - 1], &b.params, &mut b.eval_z[l]);
                be.add_bias(
                    plain.with_width(dims[l + 1]),
                    &b.params,
                    b_off,
                    &mut b.eval_z[l],
                );
            }
            let m = be.download(&b.eval_z[n_layers - 1], 0, n).await?;
            let exact = be.download(&b.test_exact, first, n).await?;
            for (i, (&mi, &ei)) in m.iter().zip(&exact).enumerate() {
                // ‖x‖ equals the sampled radius up to f32 rounding, so the boundary factor needs
                // no read-back of the points.
                let r = f64::from(rng::ball_radius(
                    self.cfg.seed,
                    streams::TEST_POINTS,
                    0,
                    first + i,
                ));
                let u = (1.0 - r * r) * f64::from(mi);
                let e = f64::from(ei);
                diff2 += (u - e) * (u - e);
                ref2 += e * e;
                diff1 += (u - e).abs();
                ref1 += e.abs();
            }
            first += n;
        }
        self.test_exact_ready = true;
        let eval = Evaluation {
            step: self.progress.step,
            rel_l2: (diff2 / ref2).sqrt(),
            rel_l1: diff1 / ref1,
            exact_rms: (ref2 / total as f64).sqrt(),
        };
        self.progress.last = Some(eval);
        let better = match self.progress.best {
            Some(best) => eval.rel_l2 < best.rel_l2,
            None => eval.rel_l2.is_finite(),
        };
        if better {
            self.progress.best = Some(eval);
        }
        Ok(eval)
    }

    /// The accumulated gradient, read back (for tests and diagnostics).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if the read fails.
    pub async fn gradient(&self) -> Result<Vec<f32>, TrainError> {
        let n = self.shape.n_params();
        Ok(self.backend.download(&self.bufs.grad, 0, n).await?)
    }

    /// Reads the parameters, Adam moments and progress back to the host (for checkpoints).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn host_state(&self) -> Result<HostState, TrainError> {
        let n = self.shape.n_params();
        Ok(HostState {
            params: self.backend.download(&self.bufs.params, 0, n).await?,
            adam_m: self.backend.download(&self.bufs.adam_m, 0, n).await?,
            adam_v: self.backend.download(&self.bufs.adam_v, 0, n).await?,
            progress: self.progress.clone(),
        })
    }

    /// The model's value `u_θ(x)` at row-major host points (for plots), evaluated on the host in f64
    /// from the downloaded parameters.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn predict(&self, points: &[f64]) -> Result<Vec<f64>, TrainError> {
        let n = self.shape.n_params();
        let params = self.backend.download(&self.bufs.params, 0, n).await?;
        let model = crate::mlp::Model {
            mlp: Mlp {
                shape: self.shape.clone(),
                params: params.iter().map(|&p| f64::from(p)).collect(),
            },
            hard_ball_boundary: true,
        };
        Ok(model.eval(points))
    }
}
