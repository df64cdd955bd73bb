//! The PINN training loop on the problem-as-data path, written once over the generic backend
//! primitives: sampling from the problem's domains, the jet forward pass along the step plan's
//! probes, the compiled ansatz and residual programs, the readout, the adjoint, Adam, evaluation
//! against the exact solution, and checkpoint state. No equation is known here or in any backend.

use crate::backend::{
    AdamStep, Gemm, GenericStep, PointSampling, ProbeKind, ReadoutShape, Sampling, SlotProbes,
};
use crate::batch::JetShape;
use crate::expr::diff::{diff, simplify, Var};
use crate::expr::{BinOp, Expr, ExprKind, Scope};
use crate::mlp::{Mlp, MlpShape};
use crate::problem::{Domain, Instance, ProblemSpec};
use crate::program::{lower, Program};
use crate::rng::{streams, Philox, PointSampler, TimeSampler};
use crate::step_plan::{StepPlan, StepPlanError};
use crate::train::{
    ConfigError, EstimatorKind, Evaluation, HostState, Progress, TrainConfig, TrainError,
};

/// Largest test set kept resident on the device, in values (larger sets are redrawn in chunks).
const RESIDENT_TEST_VALUES: usize = 1 << 26;

/// The first stream of constraint points (constraint `c` draws from stream `CONSTRAINT_POINTS + c`).
const CONSTRAINT_POINTS: u32 = 16;

fn num(v: f64) -> Expr {
    Expr::new(ExprKind::Const(v))
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::new(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}

/// The loss program of a residual `r(x, t, u, terms)`: outputs the cotangents of the features
/// (`2w/N · r · ∂r/∂f` for `u` and every term), then the per-point loss `w·r²`.
///
/// # Errors
/// A residual that cannot be differentiated or lowered.
pub fn loss_program(
    residual: &Expr,
    scope: &Scope,
    weight: f64,
    n_points: usize,
) -> Result<Program, crate::expr::ExprError> {
    let dim = scope.dim;
    let r = simplify(residual);
    let scale = 2.0 * weight / n_points as f64;
    let mut outs = Vec::new();
    let mut vars = vec![Var::Solution];
    vars.extend(scope.terms.iter().map(|t| Var::Term(t.clone())));
    for v in &vars {
        let dr = simplify(&diff(&r, v, dim)?);
        outs.push(bin(BinOp::Mul, num(scale), bin(BinOp::Mul, r.clone(), dr)));
    }
    outs.push(bin(BinOp::Mul, num(weight), bin(BinOp::Pow, r, num(2.0))));
    lower::lower(&outs, scope)
}

fn point_sampler(domain: Domain) -> PointSampler {
    match domain {
        Domain::Ball => PointSampler::Ball,
        Domain::Sphere => PointSampler::Sphere,
        Domain::Box { lo, hi } => PointSampler::Box {
            lo: lo as f32,
            hi: hi as f32,
        },
        Domain::Gaussian { std } => PointSampler::Gaussian { std: std as f32 },
        Domain::SdeMarginal => PointSampler::SdeMarginal,
    }
}

/// One loss term of the step: the residual on interior points, or a soft constraint.
struct Group<B: GenericStep> {
    sampling: PointSampling,
    shape: JetShape,
    n_terms: usize,
    loss: B::Compiled,
    points: B::Buf,
    ansatz: B::Buf,
    z: Vec<B::Buf>,
    h: Vec<B::Buf>,
    features: B::Buf,
    /// Feature cotangents, then the per-point loss terms.
    out: B::Buf,
}

/// A training run on one backend.
pub struct Trainer<'b, B: GenericStep> {
    backend: &'b B,
    cfg: TrainConfig,
    instance: Instance,
    plan: StepPlan,
    shape: MlpShape,
    ansatz_prog: B::Compiled,
    data_prog: B::Compiled,
    groups: Vec<Group<B>>,
    params: B::Buf,
    grad: B::Buf,
    adam_m: B::Buf,
    adam_v: B::Buf,
    problem_params: B::Buf,
    slot_index: B::Idx,
    slot_coeff: B::Buf,
    dense: B::Buf,
    weights: B::Buf,
    empty_idx: B::Idx,
    empty: B::Buf,
    bar_a: B::Buf,
    bar_b: B::Buf,
    host_idx: Vec<u32>,
    host_coeff: Vec<f32>,
    host_weights: Vec<f32>,
    test: TestSet<B>,
    progress: Progress,
}

struct TestSet<B: GenericStep> {
    sampling: PointSampling,
    chunk: usize,
    resident: bool,
    exact_ready: bool,
    points: B::Buf,
    exact: Vec<f64>,
    data_out: B::Buf,
    ab: B::Buf,
    z: Vec<B::Buf>,
    h: Vec<B::Buf>,
}

impl<B: GenericStep> std::fmt::Debug for Trainer<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("backend", &self.backend.describe())
            .field("cfg", &self.cfg)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Checks a configuration against a problem: the problem-independent fields, the dimension (the
/// problem instantiates there) and the estimator (its terms can be planned).
///
/// # Errors
/// The first [`ConfigError`].
pub fn check_config(
    cfg: &TrainConfig,
    spec: &ProblemSpec,
) -> Result<(Instance, StepPlan), ConfigError> {
    cfg.validate_generic()?;
    let instance = spec.instantiate(cfg.dim, cfg.seed)?;
    let plan = StepPlan::new(&instance, cfg.estimator, cfg.rand_dims)?;
    if plan.kind == ProbeKind::Dense && instance.scope.has_time {
        return Err(StepPlanError::Term {
            term: String::new(),
            reason: "dense probes are not available for time-dependent problems; use --estimator sparse or exact".into(),
        }
        .into());
    }
    Ok((instance, plan))
}

/// The initial parameters for an input width: PyTorch's uniform `±1/√fan_in`, from the
/// `INIT_WEIGHTS` stream of the seed.
pub fn initial_params_for(cfg: &TrainConfig, input_dim: usize) -> Vec<f32> {
    let shape = MlpShape::new(input_dim, cfg.width, cfg.depth, cfg.activation);
    let philox = Philox::new(cfg.seed);
    let mut raw = vec![0.0f32; shape.n_params()];
    philox.fill_uniform_f32(streams::INIT_WEIGHTS, 0, &mut raw);
    let mut it = raw.into_iter();
    let mlp = Mlp::init(shape, || f64::from(it.next().unwrap_or(0.5)));
    mlp.params.iter().map(|&p| p as f32).collect()
}

impl<'b, B: GenericStep> Trainer<'b, B> {
    /// A run of a shipped problem named by `cfg.equation`.
    ///
    /// # Errors
    /// As [`Trainer::with_problem`], and [`ConfigError`] for an unknown name.
    pub fn new(
        backend: &'b B,
        cfg: TrainConfig,
        resume: Option<HostState>,
    ) -> Result<Self, TrainError> {
        let spec = crate::problem::builtin(&cfg.equation)
            .ok_or_else(|| ConfigError::Invalid {
                field: "equation",
                reason: format!(
                    "unknown problem {:?}; known problems: {}",
                    cfg.equation,
                    crate::problem::BUILTIN.map(|(n, _)| n).join(", ")
                ),
            })?
            .map_err(|e| ConfigError::Invalid {
                field: "equation",
                reason: e.to_string(),
            })?;
        Self::with_problem(backend, cfg, &spec, resume)
    }

    /// Validates the configuration against the problem, plans the probes, compiles the programs and
    /// allocates every buffer; parameters start from [`initial_params_for`] or from `resume`.
    ///
    /// # Errors
    /// [`TrainError::Config`] for a bad configuration or a problem that cannot be planned or
    /// compiled at this dimension, [`TrainError::Backend`] when memory runs out or compilation fails.
    pub fn with_problem(
        backend: &'b B,
        cfg: TrainConfig,
        spec: &ProblemSpec,
        resume: Option<HostState>,
    ) -> Result<Self, TrainError> {
        let (instance, plan) = check_config(&cfg, spec)?;
        if instance.exact.is_none() {
            return Err(ConfigError::Invalid {
                field: "equation",
                reason: format!(
                    "problem `{}` has no [exact] solution; training evaluates its error against one",
                    spec.name
                ),
            }
            .into());
        }
        let stride = plan.stride;
        let d = cfg.dim;
        let shape = MlpShape::new(stride, cfg.width, cfg.depth, cfg.activation);
        let compile_err = |e: crate::expr::ExprError| ConfigError::Invalid {
            field: "equation",
            reason: e.to_string(),
        };
        let ansatz_prog =
            backend.compile_program(&instance.ansatz_program().map_err(compile_err)?)?;
        let data_prog = backend.compile_program(&instance.data_program().map_err(compile_err)?)?;
        let time = match instance.spec.time {
            Some(t) => TimeSampler::Uniform { end: t.end as f32 },
            None => TimeSampler::None,
        };
        let collapsed = cfg.collapsed && plan.collapsible;
        let alloc = |len: usize, what| backend.alloc(len.max(1), what);
        let n_layers = shape.n_layers();
        // Residual group, then one group per soft constraint.
        let mut specs: Vec<(PointSampling, JetShape, usize, Expr, Scope, f64)> = Vec::new();
        specs.push((
            PointSampling {
                sampler: point_sampler(instance.spec.pde.domain),
                time,
                first: 0,
                n: cfg.batch,
                d,
                stream: streams::RESIDUAL_POINTS,
            },
            JetShape {
                order: plan.order,
                n_dirs: plan.n_dirs,
                n_points: cfg.batch,
                width: cfg.width,
                collapsed,
            },
            plan.terms.len(),
            instance.residual.clone(),
            instance.scope.clone(),
            instance.spec.pde.weight,
        ));
        for (c, con) in instance.constraints.iter().enumerate() {
            let ctime = match (con.at_time, time) {
                (Some(t), _) => TimeSampler::Fixed(t as f32),
                (None, t) => t,
            };
            specs.push((
                PointSampling {
                    sampler: point_sampler(con.domain),
                    time: ctime,
                    first: 0,
                    n: cfg.batch,
                    d,
                    stream: CONSTRAINT_POINTS + c as u32,
                },
                JetShape {
                    order: 0,
                    n_dirs: 1,
                    n_points: cfg.batch,
                    width: cfg.width,
                    collapsed: false,
                },
                0,
                con.equation.clone(),
                con.scope.clone(),
                con.weight,
            ));
        }
        let mut groups = Vec::new();
        let mut max_rows = 0;
        for (sampling, hidden, n_terms, residual, scope, weight) in specs {
            let loss = backend.compile_program(
                &loss_program(&residual, &scope, weight, hidden.n_points).map_err(compile_err)?,
            )?;
            let rows = hidden.n_rows();
            max_rows = max_rows.max(rows);
            let mut z = Vec::new();
            let mut h = Vec::new();
            for l in 0..n_layers {
                let out = shape.dims[l + 1];
                z.push(alloc(rows * out, "layer pre-activations")?);
                if l + 1 < n_layers {
                    h.push(alloc(rows * out, "layer activations")?);
                }
            }
            let n = hidden.n_points;
            groups.push(Group {
                sampling,
                shape: hidden,
                n_terms,
                loss,
                points: alloc(n * stride, "points")?,
                ansatz: alloc(
                    JetShape {
                        width: 2,
                        collapsed: false,
                        ..hidden
                    }
                    .len(),
                    "ansatz series",
                )?,
                z,
                h,
                features: alloc((1 + n_terms) * n, "features")?,
                out: alloc((2 + n_terms) * n, "loss outputs")?,
            });
        }
        let max_width = shape.dims[1..].iter().copied().max().unwrap_or(1);
        let n_params = shape.n_params();
        let (host_idx, host_coeff, host_weights) = plan.buffers();
        let test_sampling = PointSampling {
            stream: streams::TEST_POINTS,
            n: cfg.test_points,
            ..groups[0].sampling
        };
        let chunk = (RESIDENT_TEST_VALUES / stride).clamp(1, cfg.test_points);
        let resident = chunk == cfg.test_points;
        let mut tz = Vec::new();
        let mut th = Vec::new();
        for l in 0..n_layers {
            let out = shape.dims[l + 1];
            tz.push(alloc(chunk * out, "evaluation pre-activations")?);
            if l + 1 < n_layers {
                th.push(alloc(chunk * out, "evaluation activations")?);
            }
        }
        let test = TestSet {
            sampling: test_sampling,
            chunk,
            resident,
            exact_ready: false,
            points: alloc(chunk * stride, "test points")?,
            exact: Vec::new(),
            data_out: alloc(2 * chunk, "test exact values")?,
            ab: alloc(2 * chunk, "test ansatz values")?,
            z: tz,
            h: th,
        };
        let mut trainer = Self {
            backend,
            params: alloc(n_params, "parameters")?,
            grad: alloc(n_params, "gradient")?,
            adam_m: alloc(n_params, "Adam first moment")?,
            adam_v: alloc(n_params, "Adam second moment")?,
            problem_params: alloc(instance.params.len(), "problem parameters")?,
            slot_index: backend.alloc_idx(host_idx.len().max(1), "probe indices")?,
            slot_coeff: alloc(host_coeff.len(), "probe coefficients")?,
            dense: alloc(
                if plan.kind == ProbeKind::Dense {
                    plan.n_dirs * stride
                } else {
                    1
                },
                "dense probes",
            )?,
            weights: alloc(host_weights.len(), "readout weights")?,
            empty_idx: backend.alloc_idx(1, "empty probes")?,
            empty: alloc(1, "empty")?,
            bar_a: alloc(max_rows * max_width, "cotangents")?,
            bar_b: alloc(max_rows * max_width, "cotangents")?,
            host_idx,
            host_coeff,
            host_weights,
            cfg,
            instance,
            plan,
            shape,
            ansatz_prog,
            data_prog,
            groups,
            test,
            progress: Progress {
                step: 0,
                best: None,
                last: None,
            },
        };
        let values: Vec<f32> = trainer.instance.params.iter().map(|&c| c as f32).collect();
        backend.upload(&mut trainer.problem_params, 0, &values);
        match resume {
            Some(state) => trainer.load_state(state)?,
            None => {
                let p = initial_params_for(&trainer.cfg, stride);
                backend.upload(&mut trainer.params, 0, &p);
            }
        }
        if trainer.cfg.estimator == EstimatorKind::Exact || trainer.plan.kind == ProbeKind::Dense {
            // Deterministic probes (or dense weights) are the same every step: upload them once.
            trainer.fill_probes(0);
        }
        Ok(trainer)
    }

    fn fill_probes(&mut self, step: u32) {
        self.plan.fill(
            self.cfg.seed,
            step,
            &self.instance.params,
            &mut self.host_idx,
            &mut self.host_coeff,
            &mut self.host_weights,
        );
        self.backend
            .upload_idx(&mut self.slot_index, &self.host_idx);
        self.backend
            .upload(&mut self.slot_coeff, 0, &self.host_coeff);
        self.backend
            .upload(&mut self.weights, 0, &self.host_weights);
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
        self.backend.upload(&mut self.params, 0, &state.params);
        self.backend.upload(&mut self.adam_m, 0, &state.adam_m);
        self.backend.upload(&mut self.adam_v, 0, &state.adam_v);
        self.progress = state.progress;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The problem instance being solved.
    pub fn problem(&self) -> &Instance {
        &self.instance
    }

    /// The probe plan.
    pub fn plan(&self) -> &StepPlan {
        &self.plan
    }

    /// The network architecture (its input width includes the time column).
    pub fn mlp_shape(&self) -> &MlpShape {
        &self.shape
    }

    /// The arithmetic and memory traffic of one step (see [`crate::cost`]).
    pub fn step_cost(&self) -> crate::cost::StepCost {
        let programs = loss_program(
            &self.instance.residual,
            &self.instance.scope,
            self.instance.spec.pde.weight,
            self.cfg.batch,
        )
        .map(|p| crate::cost::program_flops(&p))
        .unwrap_or(0.0);
        let ansatz = self
            .instance
            .ansatz_program()
            .map(|p| crate::cost::program_flops(&p))
            .unwrap_or(0.0);
        crate::cost::StepCost::of_plan(&self.cfg, &self.plan, programs + ansatz)
    }

    /// The exact solution at row-major host points (rows of the input width), in f64; `None` for
    /// a problem without one.
    pub fn exact_at(&self, points: &[f64]) -> Option<Vec<f64>> {
        self.instance.exact.as_ref()?;
        let program = self.instance.data_program().ok()?;
        let rows = points.len() / self.plan.stride.max(1);
        let out =
            crate::program::interp::run_primal(&program, rows, points, &[], &self.instance.params);
        Some(out[rows..2 * rows].to_vec())
    }

    /// The ansatz factors `A` and `B` at row-major host points (rows of the input width), in f64.
    pub fn ansatz_at(&self, points: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let rows = points.len() / self.plan.stride.max(1);
        match self.instance.ansatz_program() {
            Ok(program) => {
                let out = crate::program::interp::run_primal(
                    &program,
                    rows,
                    points,
                    &[],
                    &self.instance.params,
                );
                (out[..rows].to_vec(), out[rows..2 * rows].to_vec())
            }
            // A checked ansatz always lowers; the trainer could not have been built otherwise.
            Err(_) => (vec![0.0; rows], vec![1.0; rows]),
        }
    }

    /// The row length of the model's input: `d`, plus one for the time.
    pub fn input_width(&self) -> usize {
        self.plan.stride
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

    /// Samples every group's points and the step's probes, runs the jet forward pass, the ansatz,
    /// the readout, the loss program and the adjoint, and accumulates `∂loss/∂θ` into the gradient.
    pub fn accumulate_gradient(&mut self) {
        let step = self.progress.step as u32;
        if self.cfg.estimator != EstimatorKind::Exact && self.plan.kind == ProbeKind::OneHot {
            self.fill_probes(step);
        }
        let be = self.backend;
        if let Some(dist) = self.plan.dense {
            let count = self.plan.n_dirs * self.plan.stride;
            let what = match dist {
                crate::estimator::Distribution::Rademacher => Sampling::Rademacher { count },
                crate::estimator::Distribution::Gaussian => Sampling::Gaussian { count },
            };
            be.sample(what, self.cfg.seed, step, &mut self.dense);
        }
        let stride = self.plan.stride;
        let n_layers = self.shape.n_layers();
        let dims = self.shape.dims.clone();
        for gi in 0..self.groups.len() {
            let g = &mut self.groups[gi];
            let hidden = g.shape;
            let probes = if gi == 0 {
                SlotProbes::<B> {
                    kind: self.plan.kind,
                    slot_index: &self.slot_index,
                    slot_coeff: &self.slot_coeff,
                    dense: &self.dense,
                }
            } else {
                SlotProbes::<B> {
                    kind: ProbeKind::OneHot,
                    slot_index: &self.empty_idx,
                    slot_coeff: &self.empty,
                    dense: &self.empty,
                }
            };
            be.sample_points(g.sampling, self.cfg.seed, step, &mut g.points);
            let ashape = JetShape {
                width: 2,
                collapsed: false,
                ..hidden
            };
            be.run_program_series(
                &self.ansatz_prog,
                ashape,
                &g.points,
                &probes,
                &self.problem_params,
                &mut g.ansatz,
            );
            be.input_layer_forward_slots(
                hidden,
                stride,
                &g.points,
                &probes,
                &self.params,
                0,
                &mut g.z[0],
            );
            let rows = hidden.n_rows();
            for l in 1..n_layers {
                let shape_in = hidden.with_width(dims[l]);
                be.jet_activation_forward(
                    self.cfg.activation,
                    shape_in,
                    &g.z[l - 1],
                    &mut g.h[l - 1],
                );
                let (w_off, b_off) = self.shape.offsets(l);
                let gm = Gemm {
                    b_offset: w_off,
                    ..Gemm::nt(rows, dims[l + 1], dims[l])
                };
                be.gemm(gm, &g.h[l - 1], &self.params, &mut g.z[l]);
                be.add_bias(
                    hidden.with_width(dims[l + 1]),
                    &self.params,
                    b_off,
                    &mut g.z[l],
                );
            }
            let readout = ReadoutShape {
                shape: hidden.with_width(1),
                n_terms: g.n_terms,
            };
            let weights = if gi == 0 { &self.weights } else { &self.empty };
            be.readout_forward(
                readout,
                &g.z[n_layers - 1],
                &g.ansatz,
                weights,
                &mut g.features,
            );
            be.run_program(
                &g.loss,
                hidden.n_points,
                &g.points,
                &g.features,
                &self.problem_params,
                &mut g.out,
            );
            be.readout_backward(readout, &g.ansatz, weights, &g.out, &mut self.bar_a);
            for l in (1..n_layers).rev() {
                let (w_off, b_off) = self.shape.offsets(l);
                let (fan_in, fan_out) = (dims[l], dims[l + 1]);
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
                be.gemm(gw, &self.bar_a, &g.h[l - 1], &mut self.grad);
                be.bias_grad(
                    hidden.with_width(fan_out),
                    &self.bar_a,
                    &mut self.grad,
                    b_off,
                );
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
                be.gemm(gh, &self.bar_a, &self.params, &mut self.bar_b);
                be.jet_activation_backward(
                    self.cfg.activation,
                    hidden.with_width(fan_in),
                    &g.z[l - 1],
                    &self.bar_b,
                    &mut self.bar_a,
                );
            }
            be.input_layer_backward_slots(
                hidden,
                stride,
                &g.points,
                &probes,
                &self.bar_a,
                &mut self.grad,
                0,
            );
        }
    }

    /// Applies Adam with the scheduled learning rate and advances the step counter.
    pub fn apply_update(&mut self) {
        let t = self.progress.step + 1;
        let lr = self
            .cfg
            .schedule
            .lr(self.cfg.lr, self.progress.step, self.cfg.steps);
        self.backend.adam(
            AdamStep {
                lr: lr as f32,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                t: t as u32,
            },
            &mut self.params,
            &mut self.grad,
            &mut self.adam_m,
            &mut self.adam_v,
        );
        self.progress.step = t;
    }

    /// The loss of the latest step (the sum over groups of their mean weighted squared residuals),
    /// read back from the device.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if the read fails; [`TrainError::Diverged`] if it is not finite.
    pub async fn loss(&self) -> Result<f64, TrainError> {
        let mut loss = 0.0;
        for g in &self.groups {
            let n = g.shape.n_points;
            let terms = self
                .backend
                .download(&g.out, (1 + g.n_terms) * n, n)
                .await?;
            loss += terms.iter().map(|&t| f64::from(t)).sum::<f64>() / n as f64;
        }
        if !loss.is_finite() {
            return Err(TrainError::Diverged {
                step: self.progress.step,
                loss,
            });
        }
        Ok(loss)
    }

    /// Evaluates the relative L2 and L1 errors against the exact solution on the fixed test set
    /// (drawn from the residual domain on the `TEST_POINTS` stream, step 0), and updates the best.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn evaluate(&mut self) -> Result<Evaluation, TrainError> {
        let be = self.backend;
        let stride = self.plan.stride;
        let total = self.cfg.test_points;
        let chunk = self.test.chunk;
        let n_layers = self.shape.n_layers();
        let dims = self.shape.dims.clone();
        let (mut diff2, mut ref2, mut diff1, mut ref1) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut first = 0;
        while first < total {
            let n = chunk.min(total - first);
            let t = &mut self.test;
            // A resident set (one chunk) is drawn and solved once; a large one is redrawn chunk by
            // chunk at every evaluation, so no run ever holds N_test × d values.
            if !t.resident || !t.exact_ready {
                let s = PointSampling {
                    first,
                    n,
                    ..t.sampling
                };
                be.sample_points(s, self.cfg.seed, 0, &mut t.points);
                be.run_program(
                    &self.data_prog,
                    n,
                    &t.points,
                    &self.empty,
                    &self.problem_params,
                    &mut t.data_out,
                );
                let out = be.download(&t.data_out, n, n).await?;
                t.exact = out.iter().map(|&v| f64::from(v)).collect();
            }
            be.run_program(
                &self.ansatz_prog,
                n,
                &t.points,
                &self.empty,
                &self.problem_params,
                &mut t.ab,
            );
            let plain = JetShape {
                order: 0,
                n_dirs: 1,
                n_points: n,
                width: dims[1],
                collapsed: false,
            };
            be.gemm(
                Gemm::nt(n, dims[1], stride),
                &t.points,
                &self.params,
                &mut t.z[0],
            );
            let (_, b_off) = self.shape.offsets(0);
            be.add_bias(plain, &self.params, b_off, &mut t.z[0]);
            for l in 1..n_layers {
                be.jet_activation_forward(
                    self.cfg.activation,
                    plain.with_width(dims[l]),
                    &t.z[l - 1],
                    &mut t.h[l - 1],
                );
                let (w_off, b_off) = self.shape.offsets(l);
                let g = Gemm {
                    b_offset: w_off,
                    ..Gemm::nt(n, dims[l + 1], dims[l])
                };
                be.gemm(g, &t.h[l - 1], &self.params, &mut t.z[l]);
                be.add_bias(
                    plain.with_width(dims[l + 1]),
                    &self.params,
                    b_off,
                    &mut t.z[l],
                );
            }
            let m = be.download(&t.z[n_layers - 1], 0, n).await?;
            let ab = be.download(&t.ab, 0, 2 * n).await?;
            for i in 0..n {
                let u = f64::from(ab[i]) + f64::from(ab[n + i]) * f64::from(m[i]);
                let e = t.exact[i];
                diff2 += (u - e) * (u - e);
                ref2 += e * e;
                diff1 += (u - e).abs();
                ref1 += e.abs();
            }
            first += n;
        }
        self.test.exact_ready = true;
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
        Ok(self
            .backend
            .download(&self.grad, 0, self.shape.n_params())
            .await?)
    }

    /// Reads the parameters, Adam moments and progress back to the host (for checkpoints).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn host_state(&self) -> Result<HostState, TrainError> {
        let n = self.shape.n_params();
        Ok(HostState {
            params: self.backend.download(&self.params, 0, n).await?,
            adam_m: self.backend.download(&self.adam_m, 0, n).await?,
            adam_v: self.backend.download(&self.adam_v, 0, n).await?,
            progress: self.progress.clone(),
        })
    }

    /// The model's value `u_θ = A + B·network` at row-major host points (rows of the input width),
    /// evaluated on the host in f64 from the downloaded parameters.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn predict(&self, points: &[f64]) -> Result<Vec<f64>, TrainError> {
        let n = self.shape.n_params();
        let params = self.backend.download(&self.params, 0, n).await?;
        let mlp = Mlp {
            shape: self.shape.clone(),
            params: params.iter().map(|&p| f64::from(p)).collect(),
        };
        let m = mlp.eval(points);
        let program = self
            .instance
            .ansatz_program()
            .map_err(|e| ConfigError::Invalid {
                field: "equation",
                reason: e.to_string(),
            })?;
        let rows = m.len();
        let ab =
            crate::program::interp::run_primal(&program, rows, points, &[], &self.instance.params);
        Ok((0..rows).map(|i| ab[i] + ab[rows + i] * m[i]).collect())
    }
}
