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
use crate::problem::{Domain, GradientMatch, Instance, ProblemSpec};
use crate::program::{lower, Program};
use crate::rng::{self, streams, Philox, PointSampler, TimeSampler};
use crate::shared::{self, SharedBuffers, SharedLayer, SharedNet};
use crate::step_plan::StepPlan;
use crate::train::{
    ConfigError, EstimatorKind, Evaluation, HostState, Progress, TrainConfig, TrainError,
};
use crate::variance::{self, DirectionVariance, Draw, ResidualJets, VarianceSupport};

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

/// Directions of a gradient-matching constraint: every coordinate under the exact estimator, else
/// `V` of them (at most `d`).
fn gradient_dirs(cfg: &TrainConfig) -> usize {
    match cfg.estimator {
        EstimatorKind::Exact => cfg.dim,
        _ => cfg.rand_dims.min(cfg.dim),
    }
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

/// The first layer on a jet batch into `z`: the weight-shared block and the MLP's first layer
/// when the network has one (with its buffers), else the input layer with probes in any slot
/// (`stride` is the row length of `points`).
#[allow(clippy::too_many_arguments)]
fn input_forward<B: GenericStep>(
    be: &B,
    shared: Option<(&SharedLayer<B>, &mut SharedBuffers<B>)>,
    mlp: &MlpShape,
    hidden: JetShape,
    stride: usize,
    points: &B::Buf,
    probes: &SlotProbes<'_, B>,
    params: &B::Buf,
    problem_params: &B::Buf,
    z: &mut B::Buf,
) {
    match shared {
        Some((layer, bufs)) => layer.forward(
            be,
            mlp,
            hidden,
            points,
            probes,
            params,
            problem_params,
            bufs,
            z,
        ),
        None => be.input_layer_forward_slots(hidden, stride, points, probes, params, 0, z),
    }
}

/// One loss term of the step: the residual on interior points, or a soft constraint.
struct Group<B: GenericStep> {
    sampling: PointSampling,
    shape: JetShape,
    n_terms: usize,
    loss: B::Compiled,
    /// A gradient-matching constraint's own ansatz and probes (else the problem's ansatz, and the
    /// residual's probes for group 0 or none for the other constraints).
    gradient: Option<GradientProbes<B>>,
    points: B::Buf,
    ansatz: B::Buf,
    z: Vec<B::Buf>,
    h: Vec<B::Buf>,
    /// The shared first block's buffers, for a weight-shared network.
    shared: Option<SharedBuffers<B>>,
    /// The series of the residual's explicit parts, for a residual gradient.
    explicit: Option<ExplicitSeries<B>>,
    features: B::Buf,
    /// Feature cotangents, then the per-point loss terms.
    out: B::Buf,
}

/// The probes of a gradient-matching constraint: `V` coordinate directions of order 1 (all `d` under
/// the exact estimator, else `V` drawn without replacement every step), read one per feature, so
/// feature `1 + s` is `∂e/∂x_{j_s}`.
struct GradientProbes<B: GenericStep> {
    /// The ansatz `[α·A + β, α·B]`, whose readout is the series of `e`.
    ansatz: B::Compiled,
    /// Whether the coordinates are drawn every step (else `0..d`).
    sampled: bool,
    /// Which substream of the index-set generator draws them.
    substream: u32,
    host_idx: Vec<u32>,
    idx: B::Idx,
    coeff: B::Buf,
    weights: B::Buf,
}

/// The explicit parts `h_m(x, t)` of a residual with a gradient loss, along the pairs' jets: their
/// program in series mode, then `∂_{j_q} h_m = 3!·c₃` of the first `Q` directions (whose slot 3
/// holds `e_{j_q}/3!`) copied into the features by one GEMM per `m` against a `3!·I` selector.
struct ExplicitSeries<B: GenericStep> {
    program: B::Compiled,
    /// `M`.
    n_explicit: usize,
    /// `Q`.
    slots: usize,
    /// Feature column of `∂_{j_0} h_0`.
    first_feature: usize,
    series: B::Buf,
    selector: B::Buf,
}

/// The loss program of a gradient-matching constraint with `n_dirs` sampled directions: features
/// `e` and `∂e/∂x_{j_s}`; per-point loss `w·(e² + c·Σ_s (∂e/∂x_{j_s})²)` with `c = C_g·d/V` (the
/// unbiased estimate of `C_g·‖∇ₓe‖²`), and the features' cotangents.
///
/// # Errors
/// A program that cannot be lowered (a defect).
fn gradient_loss_program(
    scope: &Scope,
    weight: f64,
    scale: f64,
    n_dirs: usize,
    n_points: usize,
) -> Result<Program, crate::expr::ExprError> {
    let names: Vec<String> = (0..n_dirs).map(|s| format!("grad{s}")).collect();
    let scope = Scope {
        terms: names.clone(),
        ..scope.clone()
    };
    let e = Expr::new(ExprKind::Solution);
    let cot = 2.0 * weight / n_points as f64;
    let mut outs = vec![bin(BinOp::Mul, num(cot), e.clone())];
    let mut squares = bin(BinOp::Pow, e, num(2.0));
    let mut grads = None;
    for name in names {
        let g = Expr::new(ExprKind::Term(name));
        outs.push(bin(BinOp::Mul, num(cot * scale), g.clone()));
        let sq = bin(BinOp::Pow, g, num(2.0));
        grads = Some(match grads {
            None => sq,
            Some(acc) => bin(BinOp::Add, acc, sq),
        });
    }
    if let Some(gs) = grads {
        squares = bin(BinOp::Add, squares, bin(BinOp::Mul, num(scale), gs));
    }
    outs.push(bin(BinOp::Mul, num(weight), squares));
    lower::lower(&outs, &scope)
}

/// A training run on one backend.
pub struct Trainer<'b, B: GenericStep> {
    backend: &'b B,
    cfg: TrainConfig,
    instance: Instance,
    plan: StepPlan,
    shape: MlpShape,
    /// The weight-shared first block in front of the MLP `shape`, if any.
    shared: Option<SharedLayer<B>>,
    ansatz_prog: B::Compiled,
    data_prog: B::Compiled,
    /// The ansatz program `[A, B]` for host evaluation ([`Trainer::ansatz_at`], [`Trainer::predict`]).
    ansatz_host: Program,
    /// The data program `[g, u*]` for host evaluation ([`Trainer::exact_at`]).
    data_host: Program,
    /// Floating-point operations of the residual's loss and the ansatz program per step.
    program_flops: f64,
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
    /// Whether the latest accumulated step has not been applied yet: its points, probes and
    /// activations are still those of the current parameters ([`Trainer::direction_variance`]).
    step_pending: bool,
    /// Buffers of the uncollapsed forward pass that measures the variance of a collapsed plan,
    /// allocated at the first measurement.
    variance_pass: Option<[B::Buf; 2]>,
    /// The shared first block's buffers of that pass.
    variance_shared: Option<SharedBuffers<B>>,
}

struct TestSet<B: GenericStep> {
    sampling: PointSampling,
    /// Test points: `cfg.test_points`, or 1 for a problem judged at its reference point.
    total: usize,
    chunk: usize,
    resident: bool,
    exact_ready: bool,
    points: B::Buf,
    exact: Vec<f64>,
    data_out: B::Buf,
    ab: B::Buf,
    z: Vec<B::Buf>,
    h: Vec<B::Buf>,
    shared: Option<SharedBuffers<B>>,
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
    Ok((instance, plan))
}

/// Whether the direction variance of a run can be measured ([`Trainer::variance_support`], without
/// building the trainer): from the plan's random groups and the sampled coordinates of
/// gradient-matching constraints.
pub fn variance_support(
    cfg: &TrainConfig,
    instance: &Instance,
    plan: &StepPlan,
) -> VarianceSupport {
    if plan.gradient_pairs().is_some() && cfg.estimator != EstimatorKind::Exact {
        return VarianceSupport::Unavailable {
            reason: "the residual gradient's paired 7-jets are not measured".into(),
        };
    }
    let v = gradient_dirs(cfg);
    let constraints: Vec<Draw> = instance
        .constraints
        .iter()
        .filter(|c| c.gradient.is_some() && v < cfg.dim)
        .map(|_| Draw {
            units: v,
            population: Some(cfg.dim),
        })
        .collect();
    variance::support(&plan.random_directions(), &constraints)
}

/// The initial parameters for an input width: PyTorch's uniform `±1/√fan_in`, from the
/// `INIT_WEIGHTS` stream of the seed (for a weight-shared network, [`shared::initial_params`]).
pub fn initial_params_for(cfg: &TrainConfig, input_dim: usize) -> Vec<f32> {
    if cfg.share_blocks.is_some() {
        return shared::initial_params(cfg, input_dim);
    }
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
        if instance.exact.is_none() && instance.reference.is_none() {
            return Err(ConfigError::Invalid {
                field: "equation",
                reason: format!(
                    "problem `{}` has neither an [exact] solution nor a [reference] value; training \
                     evaluates its error against one",
                    spec.name
                ),
            }
            .into());
        }
        let stride = plan.stride;
        let d = cfg.dim;
        let (shape, shared_net) = shared::net_shape(&cfg, stride);
        let shared_layer = match shared_net {
            Some(net) => Some(SharedLayer::new(backend, net, &instance)?),
            None => None,
        };
        let compile_err = |e: crate::expr::ExprError| ConfigError::Invalid {
            field: "equation",
            reason: e.to_string(),
        };
        let ansatz_host = instance.ansatz_program().map_err(compile_err)?;
        let data_host = instance.data_program().map_err(compile_err)?;
        let ansatz_prog = backend.compile_program(&ansatz_host)?;
        let data_prog = backend.compile_program(&data_host)?;
        let mut program_flops = crate::cost::program_flops(&ansatz_host);
        let time = match instance.spec.time {
            Some(t) => TimeSampler::Uniform { end: t.end as f32 },
            None => TimeSampler::None,
        };
        let collapsed = cfg.collapsed && plan.collapsible;
        let alloc = |len: usize, what| backend.alloc(len.max(1), what);
        let n_layers = shape.n_layers();
        // Residual group, then one group per soft constraint.
        type GroupSpec = (PointSampling, JetShape, usize, Expr, Scope, f64);
        let mut specs: Vec<(GroupSpec, Option<GradientMatch>)> = Vec::new();
        specs.push((
            (
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
            ),
            None,
        ));
        for (c, con) in instance.constraints.iter().enumerate() {
            let ctime = match (con.at_time, time) {
                (Some(t), _) => TimeSampler::Fixed(t as f32),
                (None, t) => t,
            };
            // Gradient matching reads `V` coordinate directions of order 1 (all `d` when exact).
            let (order, n_dirs) = match &con.gradient {
                Some(_) => (1, gradient_dirs(&cfg)),
                None => (0, 1),
            };
            specs.push((
                (
                    PointSampling {
                        sampler: point_sampler(con.domain),
                        time: ctime,
                        first: 0,
                        n: con.points.unwrap_or(cfg.batch),
                        d,
                        stream: CONSTRAINT_POINTS + c as u32,
                    },
                    JetShape {
                        order,
                        n_dirs,
                        n_points: con.points.unwrap_or(cfg.batch),
                        width: cfg.width,
                        collapsed: false,
                    },
                    if con.gradient.is_some() { n_dirs } else { 0 },
                    con.equation.clone(),
                    con.scope.clone(),
                    con.weight,
                ),
                con.gradient.clone(),
            ));
        }
        let mut groups = Vec::new();
        let mut max_rows = 0;
        for (g, ((sampling, hidden, n_terms, residual, scope, weight), gradient)) in
            specs.into_iter().enumerate()
        {
            let pairs = plan.gradient_pairs().filter(|_| g == 0);
            let residual_gradient = instance.residual_gradient.as_ref().filter(|_| g == 0);
            let loss_host = match &gradient {
                None => match (residual_gradient, pairs) {
                    (Some(rg), Some(pairs)) => crate::residual_gradient::loss_program(
                        rg,
                        pairs,
                        &scope,
                        &plan.terms,
                        weight,
                        hidden.n_points,
                    ),
                    _ => loss_program(&residual, &scope, weight, hidden.n_points),
                },
                Some(m) => {
                    let sampled_scale = d as f64 / hidden.n_dirs as f64;
                    gradient_loss_program(
                        &scope,
                        weight,
                        m.weight * sampled_scale,
                        hidden.n_dirs,
                        hidden.n_points,
                    )
                }
            }
            .map_err(compile_err)?;
            if g == 0 {
                program_flops += crate::cost::program_flops(&loss_host);
            }
            let loss = backend.compile_program(&loss_host)?;
            let gradient = match &gradient {
                None => None,
                Some(m) => {
                    let v = hidden.n_dirs;
                    let ansatz = instance.constraint_ansatz_program(m).map_err(compile_err)?;
                    // Feature `1 + s` reads the first coefficient of direction `s` alone.
                    let mut weights = vec![0.0f32; v * v];
                    for s in 0..v {
                        weights[s * v + s] = 1.0;
                    }
                    let mut w = alloc(v * v, "gradient readout weights")?;
                    backend.upload(&mut w, 0, &weights);
                    let mut coeff = alloc(v, "gradient probe coefficients")?;
                    backend.upload(&mut coeff, 0, &vec![1.0f32; v]);
                    let host_idx: Vec<u32> = (0..v as u32).collect();
                    let mut idx = backend.alloc_idx(v, "gradient probe indices")?;
                    backend.upload_idx(&mut idx, &host_idx);
                    Some(GradientProbes {
                        ansatz: backend.compile_program(&ansatz)?,
                        sampled: v < d,
                        substream: 1 + g as u32,
                        host_idx,
                        idx,
                        coeff,
                        weights: w,
                    })
                }
            };
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
            let shared = match &shared_layer {
                Some(layer) => Some(layer.buffers(backend, hidden)?),
                None => None,
            };
            let n = hidden.n_points;
            let mut n_features = 1 + n_terms;
            let explicit = match (residual_gradient, pairs) {
                (Some(rg), Some(pairs)) => {
                    n_features = crate::residual_gradient::n_features(rg, pairs);
                    let data_scope = instance.data_scope();
                    match crate::residual_gradient::explicit_program(rg, &data_scope)
                        .map_err(compile_err)?
                    {
                        None => None,
                        Some(p) => {
                            program_flops += crate::cost::program_flops(&p);
                            let m = rg.explicit.len();
                            let mut selector = vec![0.0f32; m * m];
                            for i in 0..m {
                                selector[i * m + i] = 6.0;
                            }
                            let mut sel = alloc(m * m, "explicit-part selector")?;
                            backend.upload(&mut sel, 0, &selector);
                            let series_shape = JetShape {
                                width: m,
                                collapsed: false,
                                ..hidden
                            };
                            Some(ExplicitSeries {
                                program: backend.compile_program(&p)?,
                                n_explicit: m,
                                slots: pairs.slots,
                                first_feature: 1 + n_terms,
                                series: alloc(series_shape.len(), "explicit-part series")?,
                                selector: sel,
                            })
                        }
                    }
                }
                _ => None,
            };
            groups.push(Group {
                sampling,
                shape: hidden,
                n_terms,
                loss,
                gradient,
                points: alloc(n * stride, "points")?,
                ansatz: alloc(crate::backend::ansatz_shape(hidden).len(), "ansatz series")?,
                z,
                h,
                shared,
                explicit,
                features: alloc(n_features * n, "features")?,
                out: alloc((2 + n_terms) * n, "loss outputs")?,
            });
        }
        // The cotangent buffers also carry the shared block's features.
        let max_width = shape.dims[1..]
            .iter()
            .copied()
            .chain(shared_net.map(|n| n.n_blocks))
            .max()
            .unwrap_or(1);
        let n_params = shared::n_params(&cfg, stride);
        let (host_idx, host_coeff, host_weights) = plan.buffers();
        let test_sampling = PointSampling {
            stream: streams::TEST_POINTS,
            n: cfg.test_points,
            ..groups[0].sampling
        };
        // A problem judged at its reference point evaluates that one point.
        let total = if instance.reference.is_some() {
            1
        } else {
            cfg.test_points
        };
        let chunk = (RESIDENT_TEST_VALUES / stride).clamp(1, total);
        let resident = chunk == total;
        let mut tz = Vec::new();
        let mut th = Vec::new();
        for l in 0..n_layers {
            let out = shape.dims[l + 1];
            tz.push(alloc(chunk * out, "evaluation pre-activations")?);
            if l + 1 < n_layers {
                th.push(alloc(chunk * out, "evaluation activations")?);
            }
        }
        let test_shared = match &shared_layer {
            Some(layer) => {
                let plain = JetShape {
                    order: 0,
                    n_dirs: 1,
                    n_points: chunk,
                    width: cfg.width,
                    collapsed: false,
                };
                Some(layer.buffers(backend, plain)?)
            }
            None => None,
        };
        let test = TestSet {
            sampling: test_sampling,
            total,
            chunk,
            resident,
            exact_ready: false,
            points: alloc(chunk * stride, "test points")?,
            exact: Vec::new(),
            data_out: alloc(2 * chunk, "test exact values")?,
            ab: alloc(2 * chunk, "test ansatz values")?,
            z: tz,
            h: th,
            shared: test_shared,
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
            shared: shared_layer,
            ansatz_prog,
            data_prog,
            ansatz_host,
            data_host,
            program_flops,
            groups,
            test,
            progress: Progress {
                step: 0,
                best: None,
                last: None,
            },
            step_pending: false,
            variance_pass: None,
            variance_shared: None,
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
        let n = self.n_params();
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
        self.step_pending = false;
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

    /// The network architecture (its input width includes the time column; behind a shared first
    /// block, the block features' width).
    pub fn mlp_shape(&self) -> &MlpShape {
        &self.shape
    }

    /// The weight-shared first block in front of the MLP, if any.
    pub fn shared_net(&self) -> Option<&SharedNet> {
        self.shared.as_ref().map(|l| &l.net)
    }

    /// Parameters of the whole network (the MLP's, then the shared block's).
    pub fn n_params(&self) -> usize {
        self.shape.n_params() + self.shared.as_ref().map_or(0, |l| l.net.n_params())
    }

    /// The arithmetic and memory traffic of one step (see [`crate::cost`]).
    pub fn step_cost(&self) -> crate::cost::StepCost {
        crate::cost::StepCost::of_plan(&self.cfg, &self.plan, self.program_flops)
    }

    /// The exact solution at row-major host points (rows of the input width), in f64; `None` for
    /// a problem without one.
    pub fn exact_at(&self, points: &[f64]) -> Option<Vec<f64>> {
        self.instance.exact.as_ref()?;
        let rows = points.len() / self.plan.stride.max(1);
        let out = self.run_host(&self.data_host, rows, points);
        Some(out[rows..2 * rows].to_vec())
    }

    /// The ansatz factors `A` and `B` at row-major host points (rows of the input width), in f64.
    pub fn ansatz_at(&self, points: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let rows = points.len() / self.plan.stride.max(1);
        let out = self.run_host(&self.ansatz_host, rows, points);
        (out[..rows].to_vec(), out[rows..2 * rows].to_vec())
    }

    /// A problem program in f64 on the host at `rows` row-major points.
    fn run_host(&self, program: &Program, rows: usize, points: &[f64]) -> Vec<f64> {
        crate::program::interp::run_primal(program, rows, points, &[], &self.instance.params)
    }

    /// The reference point of a problem judged at one point.
    pub fn reference(&self) -> Option<&crate::problem::PointReference> {
        self.instance.reference.as_ref()
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
        self.accumulate_gradient_with_directions(self.progress.step as u32);
    }

    /// [`Trainer::accumulate_gradient`] at this step's points with the random directions drawn as
    /// at step `draw` (index sets, windows and dense tangents): redrawing them at fixed points and
    /// parameters shows the spread that [`Trainer::direction_variance`] estimates from one draw.
    pub fn accumulate_gradient_with_directions(&mut self, draw: u32) {
        // The points follow the step counter; every random direction follows `draw`.
        let point_step = self.progress.step as u32;
        let step = draw;
        self.step_pending = true;
        if self.cfg.estimator != EstimatorKind::Exact && self.plan.kind == ProbeKind::OneHot {
            self.fill_probes(step);
        }
        let be = self.backend;
        if let Some(dist) = self.plan.dense {
            let count = self.plan.n_dirs * self.plan.stride;
            if self.plan.stride > self.plan.dim {
                // A dense tangent moves space only: its time column must be 0, so the draw (the
                // same numbers as the device's) is made on the host, where the column is cleared.
                let mut host = vec![0.0f32; count];
                let philox = Philox::new(self.cfg.seed);
                match dist {
                    crate::estimator::Distribution::Rademacher => {
                        philox.fill_rademacher_f32(streams::DENSE_TANGENTS, step, &mut host);
                    }
                    crate::estimator::Distribution::Gaussian => {
                        philox.fill_normal_f32(streams::DENSE_TANGENTS, step, &mut host);
                    }
                }
                for row in host.chunks_exact_mut(self.plan.stride) {
                    row[self.plan.dim] = 0.0;
                }
                be.upload(&mut self.dense, 0, &host);
            } else {
                let what = match dist {
                    crate::estimator::Distribution::Rademacher => Sampling::Rademacher { count },
                    crate::estimator::Distribution::Gaussian => Sampling::Gaussian { count },
                };
                be.sample(what, self.cfg.seed, step, &mut self.dense);
            }
        }
        let stride = self.plan.stride;
        let n_layers = self.shape.n_layers();
        let dims = self.shape.dims.clone();
        for gi in 0..self.groups.len() {
            let g = &mut self.groups[gi];
            let hidden = g.shape;
            if let Some(gp) = g.gradient.as_mut().filter(|gp| gp.sampled) {
                rng::sample_index_set_sub(
                    self.cfg.seed,
                    step,
                    gp.substream,
                    self.cfg.dim,
                    hidden.n_dirs,
                    &mut gp.host_idx,
                );
                be.upload_idx(&mut gp.idx, &gp.host_idx);
            }
            let probes = match (&g.gradient, gi) {
                (Some(gp), _) => SlotProbes::<B> {
                    kind: ProbeKind::OneHot,
                    slot_index: &gp.idx,
                    slot_coeff: &gp.coeff,
                    dense: &self.empty,
                },
                (None, 0) => SlotProbes::<B> {
                    kind: self.plan.kind,
                    slot_index: &self.slot_index,
                    slot_coeff: &self.slot_coeff,
                    dense: &self.dense,
                },
                (None, _) => SlotProbes::<B> {
                    kind: ProbeKind::OneHot,
                    slot_index: &self.empty_idx,
                    slot_coeff: &self.empty,
                    dense: &self.empty,
                },
            };
            be.sample_points(g.sampling, self.cfg.seed, point_step, &mut g.points);
            let ashape = crate::backend::ansatz_shape(hidden);
            be.run_program_series(
                g.gradient
                    .as_ref()
                    .map_or(&self.ansatz_prog, |gp| &gp.ansatz),
                ashape,
                &g.points,
                &probes,
                &self.problem_params,
                &mut g.ansatz,
            );
            input_forward(
                be,
                self.shared.as_ref().zip(g.shared.as_mut()),
                &self.shape,
                hidden,
                stride,
                &g.points,
                &probes,
                &self.params,
                &self.problem_params,
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
            let weights = match (&g.gradient, gi) {
                (Some(gp), _) => &gp.weights,
                (None, 0) => &self.weights,
                (None, _) => &self.empty,
            };
            be.readout_forward(
                readout,
                &g.z[n_layers - 1],
                &g.ansatz,
                weights,
                &mut g.features,
            );
            if let Some(ex) = g.explicit.as_mut() {
                let series_shape = JetShape {
                    width: ex.n_explicit,
                    collapsed: false,
                    ..hidden
                };
                be.run_program_series(
                    &ex.program,
                    series_shape,
                    &g.points,
                    &probes,
                    &self.problem_params,
                    &mut ex.series,
                );
                let n = hidden.n_points;
                let block = n * ex.n_explicit;
                for m in 0..ex.n_explicit {
                    let copy = Gemm {
                        m: ex.slots * n,
                        n: 1,
                        k: ex.n_explicit,
                        trans_a: false,
                        trans_b: true,
                        alpha: 1.0,
                        beta: 0.0,
                        // Coefficient 3 of direction 0 is block 1 + 2·V.
                        a_offset: (1 + 2 * hidden.n_dirs) * block,
                        b_offset: m * ex.n_explicit,
                        c_offset: (ex.first_feature + m * ex.slots) * n,
                    };
                    be.gemm(copy, &ex.series, &ex.selector, &mut g.features);
                }
            }
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
            match (&self.shared, &g.shared) {
                (Some(layer), Some(bufs)) => layer.backward(
                    be,
                    &self.shape,
                    hidden,
                    &g.points,
                    &probes,
                    &self.params,
                    bufs,
                    &mut self.bar_a,
                    &mut self.bar_b,
                    &mut self.grad,
                ),
                _ => be.input_layer_backward_slots(
                    hidden,
                    stride,
                    &g.points,
                    &probes,
                    &self.bar_a,
                    &mut self.grad,
                    0,
                ),
            }
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
        self.step_pending = false;
    }

    /// Whether this run's direction variance can be measured ([`crate::variance`]).
    pub fn variance_support(&self) -> VarianceSupport {
        variance_support(&self.cfg, &self.instance, &self.plan)
    }

    /// The sampled coordinates of gradient-matching constraints, as `(group, draw)`.
    fn constraint_draws_by_group(&self) -> Vec<(usize, Draw)> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.gradient.as_ref().is_some_and(|gp| gp.sampled))
            .map(|(i, g)| {
                (
                    i,
                    Draw {
                        units: g.shape.n_dirs,
                        population: Some(self.cfg.dim),
                    },
                )
            })
            .collect()
    }

    /// The term estimates of the latest step, `n_terms` columns of the residual's points (what
    /// the loss program read).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if the read fails.
    pub async fn term_estimates(&self) -> Result<Vec<f32>, TrainError> {
        let g = &self.groups[0];
        let n = g.shape.n_points;
        if g.n_terms == 0 {
            return Ok(Vec::new());
        }
        Ok(self.backend.download(&g.features, n, g.n_terms * n).await?)
    }

    /// Measures the within-step variance of the latest accumulated step's term estimates and of
    /// its loss, from the spread of its random directions ([`crate::variance`] defines both).
    /// `None` when [`Trainer::variance_support`] says it is not measured.
    ///
    /// The per-direction readout runs on the host in f64 from the model's final-layer jets. A
    /// collapsed plan has no per-direction top coefficient, so the step's forward pass is run
    /// again uncollapsed (once per measurement, into buffers of its own); nothing the training
    /// reads is changed, so a run is the same with or without measurements.
    ///
    /// # Panics
    /// When no step has been accumulated since the last update (call it between
    /// [`Trainer::accumulate_gradient`] and [`Trainer::apply_update`]).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if memory runs out or a read fails.
    pub async fn direction_variance(&mut self) -> Result<Option<DirectionVariance>, TrainError> {
        assert!(
            self.step_pending,
            "direction_variance measures an accumulated step before its update"
        );
        if !self.variance_support().is_measured() {
            return Ok(None);
        }
        let be = self.backend;
        let hidden = self.groups[0].shape;
        let n_layers = self.shape.n_layers();
        let model = hidden.with_width(1);
        let uncollapsed = JetShape {
            collapsed: false,
            ..model
        };
        let m = if hidden.collapsed {
            self.uncollapsed_forward()?;
            let [z, _] = self
                .variance_pass
                .as_ref()
                .expect("allocated by uncollapsed_forward");
            be.download(z, 0, uncollapsed.len()).await?
        } else {
            be.download(&self.groups[0].z[n_layers - 1], 0, model.len())
                .await?
        };
        let g = &self.groups[0];
        let np = hidden.n_points;
        let ansatz = be
            .download(&g.ansatz, 0, crate::backend::ansatz_shape(hidden).len())
            .await?;
        let loss_out = be.download(&g.out, 0, (2 + g.n_terms) * np).await?;
        let jets = ResidualJets {
            shape: uncollapsed,
            m: &m,
            ansatz: &ansatz,
            weights: &self.host_weights,
            n_terms: g.n_terms,
            loss_out: &loss_out,
        };
        let (estimates, variances, mut loss_variance) =
            variance::residual_variance(&jets, &self.plan.random_directions());
        for (gi, draw) in self.constraint_draws_by_group() {
            let g = &self.groups[gi];
            let n = g.shape.n_points;
            let con = &self.instance.constraints[gi - 1];
            let Some(gradient) = &con.gradient else {
                continue;
            };
            let features = be.download(&g.features, 0, (1 + g.n_terms) * n).await?;
            loss_variance += variance::gradient_matching_variance(
                &features,
                n,
                draw,
                con.weight,
                gradient.weight,
                self.cfg.dim,
            );
        }
        Ok(Some(variance::summarise(
            self.progress.step,
            np,
            estimates,
            variances,
            loss_variance,
        )))
    }

    /// The residual's forward pass of the latest step, uncollapsed, into the variance buffers:
    /// the same points, probes and parameters, every direction's top coefficient kept.
    fn uncollapsed_forward(&mut self) -> Result<(), TrainError> {
        let be = self.backend;
        let hidden = JetShape {
            collapsed: false,
            ..self.groups[0].shape
        };
        let dims = &self.shape.dims;
        let rows = hidden.n_rows();
        if self.variance_pass.is_none() {
            let max_width = dims[1..].iter().copied().max().unwrap_or(1);
            let len = (rows * max_width).max(1);
            self.variance_pass = Some([
                be.alloc(len, "variance pre-activations")?,
                be.alloc(len, "variance activations")?,
            ]);
        }
        if let (Some(layer), None) = (&self.shared, &self.variance_shared) {
            self.variance_shared = Some(layer.buffers(be, hidden)?);
        }
        let Some([z, h]) = self.variance_pass.as_mut() else {
            unreachable!("allocated above");
        };
        let g = &self.groups[0];
        let probes = SlotProbes::<B> {
            kind: self.plan.kind,
            slot_index: &self.slot_index,
            slot_coeff: &self.slot_coeff,
            dense: &self.dense,
        };
        input_forward(
            be,
            self.shared.as_ref().zip(self.variance_shared.as_mut()),
            &self.shape,
            hidden,
            self.plan.stride,
            &g.points,
            &probes,
            &self.params,
            &self.problem_params,
            z,
        );
        for l in 1..self.shape.n_layers() {
            be.jet_activation_forward(self.cfg.activation, hidden.with_width(dims[l]), z, h);
            let (w_off, b_off) = self.shape.offsets(l);
            let gm = Gemm {
                b_offset: w_off,
                ..Gemm::nt(rows, dims[l + 1], dims[l])
            };
            be.gemm(gm, h, &self.params, z);
            be.add_bias(hidden.with_width(dims[l + 1]), &self.params, b_off, z);
        }
        Ok(())
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
    /// A problem with a `[reference]` is judged at its one point instead: the errors are those of
    /// the model's value there ([`Evaluation::point_value`]); where the problem gives no value at
    /// this dimension they are NaN and the evaluation is not recorded in the progress.
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn evaluate(&mut self) -> Result<Evaluation, TrainError> {
        let be = self.backend;
        let stride = self.plan.stride;
        let total = self.test.total;
        let chunk = self.test.chunk;
        let n_layers = self.shape.n_layers();
        let dims = self.shape.dims.clone();
        let (mut diff2, mut ref2, mut diff1, mut ref1) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        // The model's value at the last test point: the reference point's, when judged there.
        let mut last_value = f64::NAN;
        let mut first = 0;
        while first < total {
            let n = chunk.min(total - first);
            let t = &mut self.test;
            // A resident set (one chunk) is drawn and solved once; a large one is redrawn chunk by
            // chunk at every evaluation, so no run ever holds N_test × d values.
            if let Some(reference) = &self.instance.reference {
                if !t.exact_ready {
                    let row: Vec<f32> = reference.point.iter().map(|&v| v as f32).collect();
                    be.upload(&mut t.points, 0, &row);
                    t.exact = vec![reference.value.unwrap_or(f64::NAN)];
                }
            } else if !t.resident || !t.exact_ready {
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
            match (&self.shared, t.shared.as_mut()) {
                (Some(layer), Some(bufs)) => {
                    let probes = SlotProbes::<B> {
                        kind: ProbeKind::OneHot,
                        slot_index: &self.empty_idx,
                        slot_coeff: &self.empty,
                        dense: &self.empty,
                    };
                    layer.forward(
                        be,
                        &self.shape,
                        plain,
                        &t.points,
                        &probes,
                        &self.params,
                        &self.problem_params,
                        bufs,
                        &mut t.z[0],
                    );
                }
                _ => {
                    be.gemm(
                        Gemm::nt(n, dims[1], stride),
                        &t.points,
                        &self.params,
                        &mut t.z[0],
                    );
                    let (_, b_off) = self.shape.offsets(0);
                    be.add_bias(plain, &self.params, b_off, &mut t.z[0]);
                }
            }
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
                last_value = u;
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
            point_value: self.instance.reference.as_ref().map(|_| last_value),
        };
        if !eval.rel_l2.is_finite() && eval.point_value.is_some() {
            // Judged at a point whose value is unknown at this dimension: nothing to record.
            return Ok(eval);
        }
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
            .download(&self.grad, 0, self.n_params())
            .await?)
    }

    /// Reads the parameters, Adam moments and progress back to the host (for checkpoints).
    ///
    /// # Errors
    /// [`TrainError::Backend`] if a read fails.
    pub async fn host_state(&self) -> Result<HostState, TrainError> {
        let n = self.n_params();
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
        let params = self
            .backend
            .download(&self.params, 0, self.n_params())
            .await?;
        let params: Vec<f64> = params.iter().map(|&p| f64::from(p)).collect();
        let m = match &self.shared {
            Some(layer) => layer.net.eval(&self.shape, &params, points),
            None => Mlp {
                shape: self.shape.clone(),
                params,
            }
            .eval(points),
        };
        let rows = m.len();
        let ab = self.run_host(&self.ansatz_host, rows, points);
        Ok((0..rows).map(|i| ab[i] + ab[rows + i] * m[i]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::reference::ReferenceBackend;

    /// A gradient-matching constraint's loss is `w·mean(e² + C_g·(d/V)·Σ_{j∈J} (∂_j e)²)`: checked
    /// against `predict` and central differences in `x` at the group's own points, with every
    /// coordinate (exact) and with `V < d` sampled ones.
    #[test]
    fn gradient_matching_loss_matches_finite_differences_of_the_model() {
        let text = "name = \"terminal\"\n[time]\nend = 0.5\n[terms]\nut = \"time-derivative\"\n\
                    lap = \"laplacian\"\n[pde]\ndomain = \"sde-marginal\"\nlhs = \"ut + lap\"\n\
                    rhs = \"0\"\nweight = 0.0\n[[constraint]]\ndomain = { gaussian = 0.8 }\n\
                    at-time = 0.5\nequation = \"2 * u - 5 / (10 + 2 * norm2(x))\"\nweight = 3.0\n\
                    gradient-weight = 0.25\n[reference]\nx = 0.0\nt = 0.0\nvalue = 1.0\n";
        let spec = crate::problem::read("terminal.toml", text).unwrap();
        let be = ReferenceBackend;
        for (estimator, dim, rand_dims) in
            [(EstimatorKind::Exact, 3, 3), (EstimatorKind::Sparse, 5, 2)]
        {
            let cfg = TrainConfig {
                equation: "terminal".into(),
                dim,
                rand_dims,
                estimator,
                batch: 4,
                width: 6,
                depth: 3,
                ..TrainConfig::default()
            };
            let mut t = Trainer::with_problem(&be, cfg, &spec, None).unwrap();
            t.accumulate_gradient();
            let loss = pollster::block_on(t.loss()).unwrap();
            let g = &t.groups[1];
            let points: Vec<f64> = g.points.clone();
            let idx = g.gradient.as_ref().unwrap().host_idx.clone();
            assert_eq!(idx.len(), rand_dims);
            let stride = dim + 1;
            let e_at = |rows: &[f64]| -> Vec<f64> {
                let u = pollster::block_on(t.predict(rows)).unwrap();
                rows.chunks_exact(stride)
                    .zip(u)
                    .map(|(x, u)| {
                        let n2: f64 = x[..dim].iter().map(|v| v * v).sum();
                        2.0 * u - 5.0 / (10.0 + 2.0 * n2)
                    })
                    .collect()
            };
            let e0 = e_at(&points);
            let h = 1e-5;
            let mut expected = 0.0;
            for (n, row) in points.chunks_exact(stride).enumerate() {
                assert!(
                    (row[dim] - 0.5).abs() < 1e-12,
                    "terminal points are at t = T"
                );
                let mut sq = 0.0;
                for &j in &idx {
                    let mut plus = row.to_vec();
                    let mut minus = row.to_vec();
                    plus[j as usize] += h;
                    minus[j as usize] -= h;
                    let de = (e_at(&plus)[0] - e_at(&minus)[0]) / (2.0 * h);
                    sq += de * de;
                }
                let scale = dim as f64 / rand_dims as f64;
                expected += 3.0 * (e0[n] * e0[n] + 0.25 * scale * sq);
            }
            expected /= points.len() as f64 / stride as f64;
            assert!(
                (loss - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                "{estimator:?}: loss {loss} vs {expected}"
            );
        }
    }

    /// Dense tangents of a problem with a time variable move space only: their time column is 0
    /// every step, and the rest are the generator's Rademacher signs.
    #[test]
    fn dense_tangents_leave_the_time_column_alone() {
        let text = "name = \"timed\"\n[time]\nend = 1.0\n[terms]\nlap = \"laplacian\"\n[pde]\n\
                    domain = \"ball\"\nlhs = \"lap - u\"\nrhs = \"manufactured\"\n[exact]\n\
                    solution = \"exp(-t) * norm2(x)\"\n";
        let spec = crate::problem::read("timed.toml", text).unwrap();
        let cfg = TrainConfig {
            equation: "timed".into(),
            dim: 4,
            rand_dims: 3,
            estimator: EstimatorKind::Dense,
            batch: 2,
            width: 4,
            depth: 2,
            ..TrainConfig::default()
        };
        let mut t = Trainer::with_problem(&ReferenceBackend, cfg, &spec, None).unwrap();
        for _ in 0..2 {
            t.accumulate_gradient();
            assert_eq!(t.dense.len(), 3 * 5);
            for row in t.dense.chunks_exact(5) {
                assert_eq!(row[4], 0.0, "time column");
                assert!(row[..4].iter().all(|v| v.abs() == 1.0), "{row:?}");
            }
            t.apply_update();
        }
    }
}
