//! The probe plan of a training step, built by core from a problem's terms and the chosen
//! estimator: the jet order, the probe directions (tangents in any slot, one-hot or dense) and the
//! readout weights from jet coefficients to term estimates. Backends run the plan without knowing
//! which operators it estimates.
//!
//! Directions come in groups:
//! * **coordinates**: `e_j` in slot 1, for the Laplacian, diagonal `k`-th derivatives and `b·∇u`
//!   (one shared index set per step: sparse draws `V` of `d` without replacement and scales by
//!   `d/V`; exact takes all `d`);
//! * **dense**: `V` Rademacher (second order) or Gaussian (biharmonic) vectors in slot 1, drawn on
//!   the device, scaled by `1/V` (`1/(3V)` for `E[y₄] = 3Δ²u`);
//! * **fixed**: deterministic jets for `time-derivative` and `partial` terms, planned by
//!   [`crate::planner`] (a partial may differentiate in the time column `d`). Under
//!   [`JetSharing::Shared`] jets are shared between terms, and a term whose derivative is a clean
//!   coefficient of a jet already in the plan, at an order the plan computes anyway, reads it there
//!   instead of adding jets; [`JetSharing::PerDerivative`] is the naive plan of one pushforward
//!   per derivative. [`StepPlan::fixed_checks`] expands what every such term's readout weights
//!   combine to, which `stde plan` prints as the contamination analysis;
//! * **windows**: the planner's jets for one window of a mixed-window term, shifted to `V` sampled
//!   windows (or all of them), scaled by `n_windows/V`.

use std::fmt::Write as _;

use crate::backend::ProbeKind;
use crate::estimator::Distribution;
use crate::planner::{self, JetSpec, MultiIndex, Plan, PlannerParams};
use crate::problem::{Instance, ProblemFileError, TermOperator};
use crate::rng;
use crate::series::factorial;
use crate::train::EstimatorKind;

/// Why a problem's terms cannot be estimated as asked.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StepPlanError {
    /// The estimator has no unbiased estimate of this term.
    #[error(
        "the {estimator} estimator cannot estimate term `{term}` ({operator}) without bias: {hint}"
    )]
    Biased {
        /// Estimator name.
        estimator: &'static str,
        /// Term name.
        term: String,
        /// Its operator.
        operator: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// `V` out of range.
    #[error("--rand-dims {rand_dims}: {reason}")]
    RandDims {
        /// Requested `V`.
        rand_dims: usize,
        /// Why it does not fit.
        reason: String,
    },
    /// A mixed partial the planner cannot isolate.
    #[error("term `{term}`: {source}")]
    Plan {
        /// Term name.
        term: String,
        /// The planner's reason.
        source: planner::PlanError,
    },
    /// A term that reads a parameter or coordinate that does not exist.
    #[error("term `{term}`: {reason}")]
    Term {
        /// Term name.
        term: String,
        /// What is wrong.
        reason: String,
    },
    /// One of the errors above about a term, at the place the term is declared in its problem
    /// file (the message names the file, line and column).
    #[error(transparent)]
    Located(ProblemFileError),
    /// Dense probes combined with terms that need one-hot ones.
    #[error("the dense estimator cannot be combined with term `{term}` ({operator}), which needs one-hot probes; use --estimator sparse or exact")]
    MixedKinds {
        /// Term name.
        term: String,
        /// Its operator.
        operator: String,
    },
}

/// How the fixed jets of `partial` and `time-derivative` terms are chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JetSharing {
    /// The planner's jets, shared between terms; a term whose derivative is a clean coefficient of
    /// a jet already planned, at an order no higher than the plan's, reads it from that jet (terms
    /// are placed most demanding first, so the jets of high-order mixed partials serve the low-order
    /// terms).
    #[default]
    Shared,
    /// One pushforward per derivative: every term gets its own planner jets and none is shared.
    /// The baseline that [`JetSharing::Shared`] is measured against.
    PerDerivative,
}

/// What the readout weights of one term read from fixed jets combine to:
/// `Σ_reads w·y_k(J) = Σ coefficient·∂^β u`, expanded with the partition formula.
#[derive(Clone, Debug, PartialEq)]
pub struct FixedCheck {
    /// Term name.
    pub term: String,
    /// The derivative the term estimates.
    pub target: MultiIndex,
    /// Every derivative in the weighted sum of the coefficients read, with its total coefficient
    /// (contaminants that cancel have coefficient 0 up to rounding).
    pub combination: Vec<planner::Term>,
}

impl FixedCheck {
    /// Whether the combination is the target alone: its coefficient is 1 and every other one
    /// vanishes, both to `1e-9` relative to the largest single contribution (the weights are exact
    /// rationals rounded once).
    pub fn is_clean(&self) -> bool {
        let scale = self
            .combination
            .iter()
            .map(|t| t.coefficient.abs())
            .fold(1.0, f64::max);
        self.combination.iter().all(|t| {
            let want = if t.derivative == self.target {
                1.0
            } else {
                0.0
            };
            (t.coefficient - want).abs() <= 1e-9 * scale
        }) && self.combination.iter().any(|t| t.derivative == self.target)
    }
}

/// One group of a step's directions that is drawn at random ([`StepPlan::random_directions`]):
/// `units` draws of `dirs_per_unit` consecutive directions each, starting at direction `first`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomDirections {
    /// The first direction of the group.
    pub first: usize,
    /// Draws per step (`V`).
    pub units: usize,
    /// Directions per draw: 1 for a coordinate or a dense tangent, the planner's jets of one
    /// window for a mixed-window term.
    pub dirs_per_unit: usize,
    /// The population drawn from without replacement (`d` coordinates, or the windows), or `None`
    /// for independent dense tangents.
    pub population: Option<usize>,
    /// The terms that read these directions.
    pub terms: Vec<usize>,
}

/// The sub-stream of the index-set generator that draws the `j` of a residual gradient's jets.
pub const PAIR_J_SUBSTREAM: u32 = 0x4a00;
/// The sub-stream that draws the second, independent set of `i` (the first is sub-stream 0).
pub const PAIR_I_SUBSTREAM: u32 = 0x4a01;

/// The directions and features of the residual-gradient (gPINN) loss
/// `w·(r² + C·mean_j (∂_j r)²)` ([`crate::problem::ResidualGradient`]).
///
/// Every direction is the 7-jet `(0, e_i, e_j, 0, 0, 0, 0)` (derivative coefficients; slot 2 holds
/// `e_i/2!`, slot 3 `e_j/3!`), whose coefficients are `y₂ = u_i`, `y₃ = u_j`, `y₄ = 3·u_ii` and
/// `y₇ = 105·u_iij` (`7 = 2+2+3` is the only partition of 7 into 2s and 3s). So one jet gives a
/// Laplacian sample, a first derivative and a sample of `∂_j Δu = Σ_i u_iij`.
/// * **sparse**: `Q` coordinates `j_q` (the problem's `gradient-coordinates`, default 1) drawn
///   without replacement, and two independent index sets `I_a`, `I_b` of `R = V/(2Q)` coordinates
///   `i` each (sub-streams 0 and [`PAIR_I_SUBSTREAM`]); one jet per `(i, j_q)` on each side.
///   `D^a_q = Σ_k ∂Ψ/∂T_k·(d/R)·Σ_{i∈I_a} u_{i i j_q} + …` and `D^b_q` are unbiased estimates of
///   `∂_{j_q} r`, independent given `j_q`, so `(d/Q)·Σ_q D^a_q·D^b_q` is unbiased for `‖∇ₓr‖²`
///   (the square of one estimate would add its variance, a bias that grows with `d`). Its spread
///   falls like `1/R`, so one `j` with many `i` beats many `j` with one `i` each when the inner
///   sum dominates. The Laplacian reads `y₄` of all `V` jets, scaled by `d/V`.
/// * **exact**: every pair (direction `i·d + j`), `Q = R = d`, `D_j = ∂_j r` exactly.
///
/// The loss takes `(1/Q)·Σ_q D^a_q·D^b_q`, unbiased for `mean_j (∂_j r)² = ‖∇ₓr‖²/d`.
///
/// Direction of side `b`, inner sample `r` and coordinate `q`: `b·Q·R + r·Q + q`, so the first `Q`
/// directions are `(i_0, j_q)`. Readout features after `u`: the problem's terms, then `u_{j_q}`
/// (`Q`), then the a-side estimates of `∂_{j_q} T_k` (`Q × n_terms`), then the b-side (sparse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GradientPairs {
    /// The problem's terms.
    pub n_terms: usize,
    /// Coordinates `j` per step, `Q`.
    pub slots: usize,
    /// Coordinates `i` per side, `R`.
    pub per_side: usize,
    /// Whether two independent sides estimate each `∂_j r` (sparse) or one exact one (exact).
    pub paired: bool,
}

impl GradientPairs {
    /// Readout term index of `u_{j_q}`.
    pub fn first_derivative(&self, q: usize) -> usize {
        self.n_terms + q
    }

    /// Readout term index of the a-side (`b = false`) or b-side estimate of `∂_{j_q} T_k`.
    pub fn term_derivative(&self, b: bool, q: usize, k: usize) -> usize {
        self.n_terms + self.slots + (usize::from(b) * self.slots + q) * self.n_terms + k
    }

    /// Readout terms in all.
    pub fn n_readout_terms(&self) -> usize {
        self.n_terms + self.slots + (1 + usize::from(self.paired)) * self.slots * self.n_terms
    }

    /// Directions per step.
    pub fn n_dirs(&self) -> usize {
        (1 + usize::from(self.paired)) * self.slots * self.per_side
    }
}

/// How a coordinate direction's weight is set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Weight {
    /// A constant times the group's scale.
    Scaled(f64),
    /// `params[base + j]` times the group's scale, `j` the direction's coordinate.
    Param(usize),
    /// `½·params[base + j]²` times the group's scale (a diagonal σ's `½σ_j²`).
    HalfSquare(usize),
}

/// `(term, jet, order k, weight)`: term `term` adds `weight·y_k` of a jet.
type Read = (usize, usize, usize, f64);

#[derive(Clone, Debug, PartialEq)]
enum Group {
    Coordinates {
        first: usize,
        count: usize,
        sampled: bool,
        /// `(term, order k, weight)`.
        reads: Vec<(usize, usize, Weight)>,
    },
    Dense {
        first: usize,
        count: usize,
        reads: Vec<(usize, usize, f64)>,
    },
    Fixed {
        first: usize,
        jets: Vec<JetSpec>,
        reads: Vec<Read>,
        /// `(term, derivative)` of every term read from these jets.
        targets: Vec<(usize, MultiIndex)>,
    },
    /// The 7-jets `(0, e_i, e_j, 0, 0, 0, 0)` of the residual gradient ([`GradientPairs`]).
    /// Every term of the problem is a Laplacian (reading `y₄ = 3·u_ii` and `y₇ = 105·u_iij`).
    Pairs { layout: GradientPairs },
    Windows {
        first: usize,
        /// Jets of window 0 (variables are window offsets).
        jets: Vec<JetSpec>,
        reads: Vec<Read>,
        n_windows: usize,
        count: usize,
        sampled: bool,
    },
}

/// The probe plan of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPlan {
    /// Space dimension.
    pub dim: usize,
    /// Row length of the points (`dim`, plus one with time).
    pub stride: usize,
    /// Jet order `K`.
    pub order: usize,
    /// Directions per step.
    pub n_dirs: usize,
    /// One-hot or dense tangents.
    pub kind: ProbeKind,
    /// The distribution of dense tangents (drawn on the device).
    pub dense: Option<Distribution>,
    /// Term names, in order.
    pub terms: Vec<String>,
    /// Whether every term reads the top coefficient with one weight across directions, so that the
    /// collapsed top coefficient applies.
    pub collapsible: bool,
    groups: Vec<Group>,
    estimator: EstimatorKind,
    descriptions: Vec<String>,
    sharing: JetSharing,
}

fn biased(est: EstimatorKind, term: &str, op: &TermOperator, hint: &'static str) -> StepPlanError {
    StepPlanError::Biased {
        estimator: est.name(),
        term: term.to_owned(),
        operator: op.describe(),
        hint,
    }
}

impl StepPlan {
    /// The plan for `instance`'s terms under `estimator` with `rand_dims` sampled directions.
    ///
    /// # Errors
    /// [`StepPlanError`] when a term has no unbiased estimate under this estimator, `V` does not
    /// fit, or the planner cannot isolate a mixed partial; an error about one term is
    /// [`StepPlanError::Located`] at the term's declaration when the problem came from a file.
    pub fn new(
        instance: &Instance,
        estimator: EstimatorKind,
        rand_dims: usize,
    ) -> Result<Self, StepPlanError> {
        Self::build(instance, estimator, rand_dims).map_err(|e| {
            let term = match &e {
                StepPlanError::Biased { term, .. }
                | StepPlanError::Plan { term, .. }
                | StepPlanError::Term { term, .. }
                | StepPlanError::MixedKinds { term, .. } => term,
                StepPlanError::RandDims { .. } | StepPlanError::Located(_) => return e,
            };
            let place = instance
                .spec
                .terms
                .iter()
                .find(|t| &t.name == term)
                .and_then(|t| t.place.as_ref());
            match place {
                Some(place) => StepPlanError::Located(place.error(e.to_string())),
                None => e,
            }
        })
    }

    fn build(
        instance: &Instance,
        estimator: EstimatorKind,
        rand_dims: usize,
    ) -> Result<Self, StepPlanError> {
        if instance.residual_gradient.is_some() {
            return Self::build_pairs(instance, estimator, rand_dims);
        }
        let d = instance.dim;
        let stride = d + usize::from(instance.scope.has_time);
        let mut coord_reads = Vec::new();
        let mut dense_reads = Vec::new();
        let mut dense_dist = None;
        let mut fixed_targets: Vec<(usize, MultiIndex)> = Vec::new();
        let mut windows: Option<(Vec<JetSpec>, Vec<Read>, usize)> = None;
        let mut one_hot_term: Option<(String, String)> = None;
        let layout = crate::program::lower::Layout::of(&instance.scope).map_err(|e| {
            StepPlanError::Term {
                term: String::new(),
                reason: e.to_string(),
            }
        })?;
        let planner_params = PlannerParams::default();
        let mut order = 1;
        for (t, spec) in instance.spec.terms.iter().enumerate() {
            let name = &spec.name;
            let op = &spec.operator;
            let mut note_one_hot = || {
                one_hot_term.get_or_insert((name.clone(), op.describe()));
            };
            match op {
                TermOperator::Laplacian => match estimator {
                    EstimatorKind::Dense => {
                        dense_reads.push((t, 2, 1.0));
                        dense_dist.get_or_insert(Distribution::Rademacher);
                        order = order.max(2);
                    }
                    _ => {
                        coord_reads.push((t, 2, Weight::Scaled(1.0)));
                        note_one_hot();
                        order = order.max(2);
                    }
                },
                TermOperator::Diagonal { order: k } => match estimator {
                    EstimatorKind::Dense => {
                        return Err(biased(
                            estimator,
                            name,
                            op,
                            "use --estimator sparse or exact",
                        ))
                    }
                    _ => {
                        coord_reads.push((t, *k, Weight::Scaled(1.0)));
                        note_one_hot();
                        order = order.max(*k);
                    }
                },
                TermOperator::Directional { along } | TermOperator::SigmaTrace { along } => {
                    if estimator == EstimatorKind::Dense {
                        return Err(biased(
                            estimator,
                            name,
                            op,
                            "use --estimator sparse or exact",
                        ));
                    }
                    let (base, len) = layout
                        .params
                        .iter()
                        .find(|(n, _, _)| n == along)
                        .map(|&(_, b, l)| (b as usize, l as usize))
                        .ok_or_else(|| StepPlanError::Term {
                            term: name.clone(),
                            reason: format!("parameter `{along}` is not defined"),
                        })?;
                    if len < d {
                        return Err(StepPlanError::Term {
                            term: name.clone(),
                            reason: format!(
                                "`{along}` has {len} values; {} needs d = {d}",
                                op.describe()
                            ),
                        });
                    }
                    if matches!(op, TermOperator::SigmaTrace { .. }) {
                        // y2(e_j) = ∂²u/∂x_j², weighted by ½σ_j².
                        coord_reads.push((t, 2, Weight::HalfSquare(base)));
                        order = order.max(2);
                    } else {
                        coord_reads.push((t, 1, Weight::Param(base)));
                    }
                    note_one_hot();
                }
                TermOperator::Biharmonic => {
                    if estimator != EstimatorKind::Dense {
                        return Err(biased(
                            estimator,
                            name,
                            op,
                            "the biharmonic is estimated with dense Gaussian 4-jets: use --estimator dense",
                        ));
                    }
                    dense_reads.push((t, 4, 1.0 / 3.0));
                    dense_dist = Some(Distribution::Gaussian);
                    order = order.max(4);
                }
                TermOperator::TimeDerivative => {
                    if !instance.scope.has_time {
                        return Err(StepPlanError::Term {
                            term: name.clone(),
                            reason: "∂u/∂t needs a problem with a time variable".into(),
                        });
                    }
                    fixed_targets.push((t, MultiIndex::new(&[(d, 1)])));
                    note_one_hot();
                }
                TermOperator::Partial { index } => {
                    // The time is the column `d` of a point row.
                    if let Some(&(j, _)) = index.iter().find(|&&(j, _)| j >= stride) {
                        return Err(StepPlanError::Term {
                            term: name.clone(),
                            reason: if stride > d {
                                format!("coordinate {j} is outside 0..{d} and is not the time {d}")
                            } else {
                                format!("coordinate {j} is outside 0..{d}")
                            },
                        });
                    }
                    fixed_targets.push((t, MultiIndex::new(index)));
                    note_one_hot();
                }
                TermOperator::MixedWindow { orders } => {
                    if windows.is_some() {
                        return Err(StepPlanError::Term {
                            term: name.clone(),
                            reason: "only one mixed-window term per problem is supported".into(),
                        });
                    }
                    let w = orders.len();
                    if w > d {
                        return Err(StepPlanError::Term {
                            term: name.clone(),
                            reason: format!("a window of {w} coordinates does not fit in d = {d}"),
                        });
                    }
                    let entries: Vec<(usize, u32)> = orders
                        .iter()
                        .enumerate()
                        .filter(|(_, &q)| q > 0)
                        .map(|(k, &q)| (k, q))
                        .collect();
                    let plan = planner::plan(&MultiIndex::new(&entries), &planner_params).map_err(
                        |source| StepPlanError::Plan {
                            term: name.clone(),
                            source,
                        },
                    )?;
                    let reads: Vec<_> = plan
                        .readouts
                        .iter()
                        .map(|r| (t, r.jet, r.order, r.weight))
                        .collect();
                    order = order.max(plan.jets.iter().map(|j| j.order).max().unwrap_or(1));
                    windows = Some((plan.jets, reads, d + 1 - w));
                    note_one_hot();
                }
            }
        }
        let names: Vec<&str> = instance
            .spec
            .terms
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let (fixed_jets, fixed_reads) = plan_fixed(
            &fixed_targets,
            instance.spec.defaults.jets,
            &planner_params,
            order,
            &names,
        )?;
        if !dense_reads.is_empty() {
            if let Some((term, operator)) = one_hot_term {
                return Err(StepPlanError::MixedKinds { term, operator });
            }
        }
        let check_v = |population: usize, what: &str| -> Result<usize, StepPlanError> {
            match estimator {
                EstimatorKind::Exact => Ok(population),
                EstimatorKind::Sparse if rand_dims == 0 || rand_dims > population => {
                    Err(StepPlanError::RandDims {
                        rand_dims,
                        reason: format!(
                            "the sparse estimator samples V of the {population} {what} without \
                             replacement, so V must be between 1 and {population}"
                        ),
                    })
                }
                _ if rand_dims == 0 => Err(StepPlanError::RandDims {
                    rand_dims,
                    reason: "needs at least 1 probe".into(),
                }),
                _ => Ok(rand_dims),
            }
        };
        let mut groups = Vec::new();
        let mut first = 0;
        if !coord_reads.is_empty() {
            let count = check_v(d, "dimensions")?;
            groups.push(Group::Coordinates {
                first,
                count,
                sampled: estimator == EstimatorKind::Sparse,
                reads: coord_reads,
            });
            first += count;
        }
        if !dense_reads.is_empty() {
            let count = check_v(d, "dimensions")?;
            groups.push(Group::Dense {
                first,
                count,
                reads: dense_reads,
            });
            first += count;
        }
        if !fixed_jets.is_empty() {
            order = order.max(fixed_jets.iter().map(|j| j.order).max().unwrap_or(1));
            let count = fixed_jets.len();
            groups.push(Group::Fixed {
                first,
                jets: fixed_jets,
                reads: fixed_reads,
                targets: fixed_targets,
            });
            first += count;
        }
        if let Some((jets, reads, n_windows)) = windows {
            let count = check_v(n_windows, "windows")?;
            let per = jets.len();
            groups.push(Group::Windows {
                first,
                jets,
                reads,
                n_windows,
                count,
                sampled: estimator == EstimatorKind::Sparse,
            });
            first += count * per;
        }
        let kind = if dense_dist.is_some() {
            ProbeKind::Dense
        } else {
            ProbeKind::OneHot
        };
        let mut plan = StepPlan {
            dim: d,
            stride,
            order,
            n_dirs: first.max(1),
            kind,
            dense: dense_dist,
            terms: instance.spec.terms.iter().map(|t| t.name.clone()).collect(),
            collapsible: false,
            groups,
            estimator,
            sharing: instance.spec.defaults.jets,
            descriptions: instance
                .spec
                .terms
                .iter()
                .map(|t| t.operator.describe_at(d))
                .collect(),
        };
        let (mut idx, mut coeff, mut weights) = plan.buffers();
        plan.fill(0, 0, &instance.params, &mut idx, &mut coeff, &mut weights);
        // A top weight read from a parameter array depends on the coordinate drawn: equal at step 0
        // proves nothing unless the array is constant.
        let params = &instance.params;
        let varying_top_weight = plan.groups.iter().any(|g| match g {
            Group::Coordinates { reads, .. } => reads.iter().any(|&(_, k, w)| match w {
                Weight::Param(base) | Weight::HalfSquare(base) if k == plan.order => {
                    params[base..base + d].iter().any(|&v| v != params[base])
                }
                _ => false,
            }),
            _ => false,
        });
        plan.collapsible = !varying_top_weight
            && (0..plan.terms.len()).all(|t| {
                let k = plan.order;
                let w0 = weights[(t * plan.n_dirs) * k + k - 1];
                (0..plan.n_dirs).all(|s| weights[(t * plan.n_dirs + s) * k + k - 1] == w0)
            });
        Ok(plan)
    }

    /// The plan of a problem with a residual gradient ([`GradientPairs`]).
    fn build_pairs(
        instance: &Instance,
        estimator: EstimatorKind,
        rand_dims: usize,
    ) -> Result<Self, StepPlanError> {
        let d = instance.dim;
        for spec in &instance.spec.terms {
            if spec.operator != TermOperator::Laplacian {
                return Err(StepPlanError::Term {
                    term: spec.name.clone(),
                    reason: format!(
                        "the residual gradient (gradient-weight in [pde]) differentiates the terms with 7-jets (0, e_i, e_j), which estimate laplacian terms only, not {}",
                        spec.operator.describe()
                    ),
                });
            }
        }
        let q = instance.spec.pde.gradient_coordinates;
        let (slots, per_side, paired) = match estimator {
            EstimatorKind::Exact => (d, d, false),
            EstimatorKind::Sparse if q > d => {
                return Err(StepPlanError::RandDims {
                    rand_dims,
                    reason: format!(
                        "the residual gradient samples gradient-coordinates = {q} coordinates j, \
                         more than d = {d}"
                    ),
                })
            }
            EstimatorKind::Sparse
                if rand_dims > 0 && rand_dims.is_multiple_of(2 * q) && rand_dims / (2 * q) <= d =>
            {
                (q, rand_dims / (2 * q), true)
            }
            EstimatorKind::Sparse => {
                return Err(StepPlanError::RandDims {
                    rand_dims,
                    reason: format!(
                        "the residual gradient (gradient-weight in [pde]) spends its V jets on \
                         gradient-coordinates = {q} coordinates j, each with two independent sets \
                         of V/(2·{q}) coordinates i, so V must be a multiple of {} and at most {}",
                        2 * q,
                        2 * q * d
                    ),
                })
            }
            EstimatorKind::Dense => {
                let t = instance.spec.terms.first();
                return Err(StepPlanError::Biased {
                    estimator: estimator.name(),
                    term: t.map_or_else(String::new, |t| t.name.clone()),
                    operator: t.map_or_else(String::new, |t| t.operator.describe()),
                    hint: "the residual gradient reads third derivatives from one-hot 7-jets: use \
                           --estimator sparse or exact",
                });
            }
        };
        let layout = GradientPairs {
            n_terms: instance.spec.terms.len(),
            slots,
            per_side,
            paired,
        };
        let mut terms: Vec<String> = instance.spec.terms.iter().map(|t| t.name.clone()).collect();
        let mut descriptions: Vec<String> = instance
            .spec
            .terms
            .iter()
            .map(|t| t.operator.describe_at(d))
            .collect();
        for q in 0..slots {
            terms.push(format!("#u_j{q}"));
            descriptions.push(format!("∂u/∂x_j of pair {q}"));
        }
        for b in 0..1 + usize::from(paired) {
            for q in 0..slots {
                for t in &instance.spec.terms {
                    terms.push(format!("#d{}{q}.{}", ["a", "b"][b], t.name));
                    descriptions.push(format!(
                        "∂/∂x_j of {} from jet {} of pair {q}",
                        t.name,
                        ["a", "b"][b]
                    ));
                }
            }
        }
        debug_assert_eq!(terms.len(), layout.n_readout_terms());
        Ok(StepPlan {
            dim: d,
            stride: d + usize::from(instance.scope.has_time),
            order: 7,
            n_dirs: layout.n_dirs(),
            kind: ProbeKind::OneHot,
            dense: None,
            terms,
            collapsible: false,
            groups: vec![Group::Pairs { layout }],
            estimator,
            descriptions,
            sharing: instance.spec.defaults.jets,
        })
    }

    /// The residual gradient's directions and features, when the problem has one.
    pub fn gradient_pairs(&self) -> Option<GradientPairs> {
        self.groups.iter().find_map(|g| match g {
            Group::Pairs { layout } => Some(*layout),
            _ => None,
        })
    }

    /// Zeroed per-step buffers: slot indices and coefficients (`V·K`, one-hot) and weights
    /// (`n_terms × V × K`).
    pub fn buffers(&self) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
        let vk = self.n_dirs * self.order;
        (
            vec![u32::MAX; vk],
            vec![0.0; vk],
            vec![0.0; self.terms.len() * vk],
        )
    }

    /// Fills one step's probes and readout weights. `params` are the instance's parameter values.
    pub fn fill(
        &self,
        seed: u64,
        step: u32,
        params: &[f64],
        slot_index: &mut [u32],
        slot_coeff: &mut [f32],
        weights: &mut [f32],
    ) {
        let k_max = self.order;
        let v = self.n_dirs;
        slot_index.fill(u32::MAX);
        slot_coeff.fill(0.0);
        weights.fill(0.0);
        let mut set = |s: usize, k: usize, j: usize, c: f64| {
            slot_index[s * k_max + k - 1] = j as u32;
            slot_coeff[s * k_max + k - 1] = c as f32;
        };
        let mut weigh = |t: usize, s: usize, k: usize, w: f64| {
            weights[(t * v + s) * k_max + k - 1] += w as f32;
        };
        for g in &self.groups {
            match g {
                Group::Coordinates {
                    first,
                    count,
                    sampled,
                    reads,
                } => {
                    let coords: Vec<u32> = if *sampled {
                        let mut idx = vec![0u32; *count];
                        rng::sample_index_set(seed, step, self.dim, *count, &mut idx);
                        idx
                    } else {
                        (0..*count as u32).collect()
                    };
                    let scale = self.dim as f64 / *count as f64;
                    for (s, &j) in coords.iter().enumerate() {
                        set(first + s, 1, j as usize, 1.0);
                        for &(t, k, w) in reads {
                            let w = match w {
                                Weight::Scaled(c) => c,
                                Weight::Param(base) => params[base + j as usize],
                                Weight::HalfSquare(base) => 0.5 * params[base + j as usize].powi(2),
                            };
                            weigh(t, first + s, k, scale * w);
                        }
                    }
                }
                Group::Dense {
                    first,
                    count,
                    reads,
                } => {
                    for s in 0..*count {
                        for &(t, k, w) in reads {
                            weigh(t, first + s, k, w / *count as f64);
                        }
                    }
                }
                Group::Fixed {
                    first, jets, reads, ..
                } => {
                    for (n, jet) in jets.iter().enumerate() {
                        for &(slot, var) in &jet.slots {
                            if slot <= k_max {
                                set(first + n, slot, var, 1.0 / factorial(slot));
                            }
                        }
                    }
                    for &(t, jet, k, w) in reads {
                        weigh(t, first + jet, k, w);
                    }
                }
                Group::Pairs { layout } => {
                    let d = self.dim;
                    let (q_n, r_n) = (layout.slots, layout.per_side);
                    let draw = |sub: u32, count: usize| -> Vec<u32> {
                        let mut idx = vec![0u32; count];
                        rng::sample_index_set_sub(seed, step, sub, d, count, &mut idx);
                        idx
                    };
                    let (sides, js): (Vec<Vec<u32>>, Vec<u32>) = if layout.paired {
                        (
                            vec![draw(0, r_n), draw(PAIR_I_SUBSTREAM, r_n)],
                            draw(PAIR_J_SUBSTREAM, q_n),
                        )
                    } else {
                        let all: Vec<u32> = (0..d as u32).collect();
                        (vec![all.clone()], all)
                    };
                    let n_dirs = layout.n_dirs() as f64;
                    // (d/R)·Σ_{i in the side} u_iij estimates Σ_i u_iij (exactly when R = d).
                    let inner = d as f64 / r_n as f64;
                    for (b, side) in sides.iter().enumerate() {
                        for (r, &i) in side.iter().enumerate() {
                            for (q, &j) in js.iter().enumerate() {
                                let s = (b * r_n + r) * q_n + q;
                                set(s, 2, i as usize, 0.5);
                                set(s, 3, j as usize, 1.0 / 6.0);
                                for t in 0..layout.n_terms {
                                    weigh(t, s, 4, d as f64 / (3.0 * n_dirs));
                                    weigh(
                                        layout.term_derivative(b == 1, q, t),
                                        s,
                                        7,
                                        inner / 105.0,
                                    );
                                }
                                if b == 0 && r == 0 {
                                    weigh(layout.first_derivative(q), s, 3, 1.0);
                                }
                            }
                        }
                    }
                }
                Group::Windows {
                    first,
                    jets,
                    reads,
                    n_windows,
                    count,
                    sampled,
                } => {
                    let starts: Vec<u32> = if *sampled {
                        let mut idx = vec![0u32; *count];
                        rng::sample_index_set_sub(seed, step, 1, *n_windows, *count, &mut idx);
                        idx
                    } else {
                        (0..*count as u32).collect()
                    };
                    let scale = *n_windows as f64 / *count as f64;
                    let per = jets.len();
                    for (m, &i) in starts.iter().enumerate() {
                        for (n, jet) in jets.iter().enumerate() {
                            for &(slot, var) in &jet.slots {
                                if slot <= k_max {
                                    set(
                                        first + m * per + n,
                                        slot,
                                        i as usize + var,
                                        1.0 / factorial(slot),
                                    );
                                }
                            }
                        }
                        for &(t, jet, k, w) in reads {
                            weigh(t, first + m * per + jet, k, scale * w);
                        }
                    }
                }
            }
        }
    }

    /// What the readout weights of every `partial` and `time-derivative` term combine to, expanded
    /// with the partition formula (in term order): the contamination analysis of the fixed jets.
    pub fn fixed_checks(&self) -> Vec<FixedCheck> {
        let mut out = Vec::new();
        for g in &self.groups {
            let Group::Fixed {
                jets,
                reads,
                targets,
                ..
            } = g
            else {
                continue;
            };
            for (t, target) in targets {
                let mut sum: std::collections::BTreeMap<MultiIndex, f64> = Default::default();
                for &(_, j, k, w) in reads.iter().filter(|r| r.0 == *t) {
                    for term in planner::expand(&JetSpec::new(k, &jets[j].slots), k) {
                        *sum.entry(term.derivative).or_insert(0.0) += w * term.coefficient;
                    }
                }
                out.push(FixedCheck {
                    term: self.terms[*t].clone(),
                    target: target.clone(),
                    combination: sum
                        .into_iter()
                        .map(|(derivative, coefficient)| planner::Term {
                            derivative,
                            coefficient,
                        })
                        .collect(),
                });
            }
        }
        out
    }

    /// The groups of directions drawn at random every step (coordinates or windows of a sparse
    /// plan, dense tangents), in direction order; fixed jets and the exact estimator's directions
    /// are deterministic and not listed. [`crate::variance`] estimates the variance of the term
    /// estimates from how the directions of each group spread.
    pub fn random_directions(&self) -> Vec<RandomDirections> {
        let terms_of = |reads: &mut dyn Iterator<Item = usize>| {
            let mut terms: Vec<usize> = reads.collect();
            terms.sort_unstable();
            terms.dedup();
            terms
        };
        self.groups
            .iter()
            .filter_map(|g| match g {
                Group::Coordinates {
                    first,
                    count,
                    sampled: true,
                    reads,
                } => Some(RandomDirections {
                    first: *first,
                    units: *count,
                    dirs_per_unit: 1,
                    population: Some(self.dim),
                    terms: terms_of(&mut reads.iter().map(|r| r.0)),
                }),
                Group::Dense {
                    first,
                    count,
                    reads,
                } => Some(RandomDirections {
                    first: *first,
                    units: *count,
                    dirs_per_unit: 1,
                    population: None,
                    terms: terms_of(&mut reads.iter().map(|r| r.0)),
                }),
                Group::Windows {
                    first,
                    jets,
                    reads,
                    n_windows,
                    count,
                    sampled: true,
                } => Some(RandomDirections {
                    first: *first,
                    units: *count,
                    dirs_per_unit: jets.len(),
                    population: Some(*n_windows),
                    terms: terms_of(&mut reads.iter().map(|r| r.0)),
                }),
                _ => None,
            })
            .collect()
    }

    /// How the fixed jets were chosen.
    pub fn sharing(&self) -> JetSharing {
        self.sharing
    }

    /// Whether the estimate is unbiased (`true` for sparse and dense, exact for exact).
    pub fn unbiasedness(&self) -> &'static str {
        match self.estimator {
            EstimatorKind::Exact => "exact: every direction, no randomness",
            EstimatorKind::Sparse => {
                "unbiased: index sets without replacement, scaled by population/V (E[estimate] = term)"
            }
            EstimatorKind::Dense => {
                "unbiased: E[v vᵀ] = I (Rademacher), E[y₄] = 3Δ²u (Gaussian), scaled by 1/V"
            }
        }
    }

    /// A readable description for `stde plan`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "jets per point: {} directions of order {} ({} tangents{}), {} collapsed top",
            self.n_dirs,
            self.order,
            match self.kind {
                ProbeKind::OneHot => "one-hot".to_string(),
                ProbeKind::Dense =>
                    format!("dense {:?}", self.dense.unwrap_or(Distribution::Rademacher)),
            },
            if self.stride > self.dim {
                ", time column included"
            } else {
                ""
            },
            if self.collapsible {
                "with a"
            } else {
                "without a"
            }
        );
        for g in &self.groups {
            match g {
                Group::Coordinates {
                    count,
                    sampled,
                    reads,
                    ..
                } => {
                    let _ = writeln!(
                        s,
                        "  {count} coordinate directions e_j in slot 1{}",
                        if *sampled {
                            ", index set drawn each step"
                        } else {
                            ""
                        }
                    );
                    let scale = if *sampled {
                        format!("(d/V = {})", self.dim as f64 / *count as f64)
                    } else {
                        "1".into()
                    };
                    for (t, k, w) in reads {
                        let w = match w {
                            Weight::Scaled(c) => format!("{c}"),
                            Weight::Param(_) => "b_j".into(),
                            Weight::HalfSquare(_) => "½σ_j²".into(),
                        };
                        let _ = writeln!(
                            s,
                            "    {} ({}) += Σ_j {w}·{scale}·y{k}(e_j)",
                            self.terms[*t], self.descriptions[*t]
                        );
                    }
                }
                Group::Dense { count, reads, .. } => {
                    let _ = writeln!(s, "  {count} dense directions in slot 1, drawn each step");
                    for (t, k, w) in reads {
                        let _ = writeln!(
                            s,
                            "    {} ({}) += {w}/V·y{k}",
                            self.terms[*t], self.descriptions[*t]
                        );
                    }
                }
                Group::Fixed {
                    jets,
                    reads,
                    targets,
                    ..
                } => {
                    let names = VarNames {
                        dim: self.dim,
                        time: self.stride > self.dim,
                    };
                    let _ = writeln!(
                        s,
                        "  {} fixed jet{} ({})",
                        jets.len(),
                        if jets.len() == 1 { "" } else { "s" },
                        match self.sharing {
                            JetSharing::Shared =>
                                "planned: shared between terms, clean coefficients reused",
                            JetSharing::PerDerivative => "naive: one pushforward per derivative",
                        }
                    );
                    for (n, jet) in jets.iter().enumerate() {
                        let _ = writeln!(s, "  fixed J{n}: {}", names.jet(jet));
                    }
                    let checks = self.fixed_checks();
                    for ((t, _), check) in targets.iter().zip(&checks) {
                        let mine: Vec<&Read> = reads.iter().filter(|r| r.0 == *t).collect();
                        let sum: Vec<String> = mine
                            .iter()
                            .map(|(_, j, k, w)| format!("{w:+}·J{j}[y{k}]"))
                            .collect();
                        let _ = writeln!(
                            s,
                            "    {} ({}) = {}",
                            self.terms[*t],
                            self.descriptions[*t],
                            sum.join(" ")
                        );
                        for (_, j, k, _) in &mine {
                            let terms = planner::expand(&JetSpec::new(*k, &jets[*j].slots), *k);
                            let _ = writeln!(s, "      J{j}[y{k}] = {}", names.terms(&terms));
                        }
                        let _ = writeln!(
                            s,
                            "      combined: {} ({})",
                            names.terms(&check.combination),
                            if check.is_clean() {
                                if mine.len() == 1 {
                                    "clean"
                                } else {
                                    "clean: contaminants cancel"
                                }
                            } else {
                                "CONTAMINATED"
                            }
                        );
                    }
                    let dirty: Vec<&str> = checks
                        .iter()
                        .filter(|c| !c.is_clean())
                        .map(|c| c.term.as_str())
                        .collect();
                    if dirty.is_empty() {
                        let _ = writeln!(
                            s,
                            "  contamination: none (every term's weighted coefficients combine to \
                             exactly its derivative)"
                        );
                    } else {
                        let _ = writeln!(s, "  contamination: in {}", dirty.join(", "));
                    }
                }
                Group::Pairs { layout } => {
                    let _ = writeln!(
                        s,
                        "  residual gradient: {} 7-jets (0, e_i, e_j, 0, 0, 0, 0) (slot 2 = e_i/2!, \
                         slot 3 = e_j/3!): y2 = u_i, y3 = u_j, y4 = 3·u_ii, y7 = 105·u_iij (7 = 2+2+3 \
                         only, clean)",
                        self.n_dirs
                    );
                    if layout.paired {
                        let _ = writeln!(
                            s,
                            "    Q = {} coordinates j drawn each step, each with two independent \
                             sets of R = {} coordinates i: mean_j (∂_j r)² ≈ (1/Q)·Σ_q \
                             D^a_q·D^b_q, unbiased",
                            layout.slots, layout.per_side
                        );
                    } else {
                        let _ = writeln!(s, "    every pair (i, j): mean_j (∂_j r)², exact");
                    }
                    for t in 0..layout.n_terms {
                        let _ = writeln!(
                            s,
                            "    {} ({}) += Σ_jets d/(3·{})·y4;  ∂_j {} = Σ_i u_iij {}",
                            self.terms[t],
                            self.descriptions[t],
                            self.n_dirs,
                            self.terms[t],
                            if layout.paired {
                                "≈ (d/R)·Σ_side y7/105"
                            } else {
                                "= Σ_i y7/105 (the d jets of j)"
                            }
                        );
                    }
                    let _ = writeln!(
                        s,
                        "    ∂_j r = Σ_k ∂r/∂T_k·∂_j T_k + ∂r/∂u·y3 + Σ_m ∂r/∂h_m·∂_j h_m (h_m: the \
                         residual's parts in x alone, such as the forcing, along the same jets)"
                    );
                }
                Group::Windows {
                    jets,
                    reads,
                    n_windows,
                    count,
                    sampled,
                    ..
                } => {
                    let _ = writeln!(
                        s,
                        "  {count} of {n_windows} windows{} × {} jets (variables are window offsets):",
                        if *sampled { " drawn each step" } else { "" },
                        jets.len()
                    );
                    for (n, jet) in jets.iter().enumerate() {
                        let analysis = planner::analyze(jet, jet.order);
                        let _ = writeln!(s, "  window J{n}: {jet}");
                        let _ = write!(s, "{}", indent(&analysis.to_string(), "      "));
                    }
                    for (t, jet, k, w) in reads {
                        let scale = if *sampled {
                            format!("(windows/V = {})", *n_windows as f64 / *count as f64)
                        } else {
                            "1".into()
                        };
                        let _ = writeln!(
                            s,
                            "    {} ({}) += Σ_windows {w:+}·{scale}·J{jet}[y{k}]",
                            self.terms[*t], self.descriptions[*t]
                        );
                    }
                }
            }
        }
        let _ = writeln!(s, "estimator: {}", self.unbiasedness());
        s
    }
}

/// Names the variables of jets and derivatives as in the problem: `x0 … x_{d−1}`, and `t` for the
/// time column `d`.
struct VarNames {
    dim: usize,
    time: bool,
}

impl VarNames {
    fn var(&self, v: usize) -> String {
        if self.time && v == self.dim {
            "t".into()
        } else {
            format!("x{v}")
        }
    }

    /// `11-jet [v2=e_x0, v5=e_t]`.
    fn jet(&self, jet: &JetSpec) -> String {
        let slots: Vec<String> = jet
            .slots
            .iter()
            .map(|&(j, v)| format!("v{j}=e_{}", self.var(v)))
            .collect();
        format!("{}-jet [{}]", jet.order, slots.join(", "))
    }

    /// `∂^4/∂x0^3∂t`, as [`MultiIndex`]'s `Display` with the time named.
    fn index(&self, m: &MultiIndex) -> String {
        let mut s = match m.total_order() {
            0 => return "∂^0".into(),
            1 => "∂/".to_string(),
            n => format!("∂^{n}/"),
        };
        for &(v, q) in m.entries() {
            let _ = write!(s, "∂{}", self.var(v));
            if q > 1 {
                let _ = write!(s, "^{q}");
            }
        }
        s
    }

    /// `5760·∂^4/∂x0^3∂t + …`, or `0`.
    fn terms(&self, terms: &[planner::Term]) -> String {
        if terms.is_empty() {
            return "0".into();
        }
        terms
            .iter()
            .map(|t| format!("{}·{}", t.coefficient, self.index(&t.derivative)))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// The fixed jets and readouts of `targets` (`(term, derivative)`), each planned by the planner and
/// shared (or not) as `sharing` says. `order` is the jet order the other groups already need: under
/// sharing, a coefficient up to the larger of it and the planned orders costs nothing more.
fn plan_fixed(
    targets: &[(usize, MultiIndex)],
    sharing: JetSharing,
    params: &PlannerParams,
    order: usize,
    names: &[&str],
) -> Result<(Vec<JetSpec>, Vec<Read>), StepPlanError> {
    let own: Vec<Plan> = targets
        .iter()
        .map(|(t, target)| {
            planner::plan(target, params).map_err(|source| StepPlanError::Plan {
                term: names[*t].to_owned(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    let top = |p: &Plan| p.readouts.iter().map(|r| r.order).max().unwrap_or(0);
    let mut jets: Vec<JetSpec> = Vec::new();
    let mut reads = Vec::new();
    match sharing {
        JetSharing::PerDerivative => {
            for ((t, _), plan) in targets.iter().zip(&own) {
                let base = jets.len();
                jets.extend(plan.jets.iter().cloned());
                reads.extend(
                    plan.readouts
                        .iter()
                        .map(|r| (*t, base + r.jet, r.order, r.weight)),
                );
            }
        }
        JetSharing::Shared => {
            let cap = own
                .iter()
                .map(top)
                .max()
                .unwrap_or(0)
                .max(order)
                .min(planner::MAX_EXPAND_ORDER);
            // Most demanding first (a stable sort keeps the declaration order among equals).
            let mut by_order: Vec<usize> = (0..targets.len()).collect();
            by_order.sort_by_key(|&i| std::cmp::Reverse(top(&own[i])));
            for i in by_order {
                let (t, target) = &targets[i];
                if let Some((j, k, w)) = clean_readout(&jets, target, cap) {
                    jets[j].order = jets[j].order.max(k);
                    reads.push((*t, j, k, w));
                    continue;
                }
                for r in &own[i].readouts {
                    let j = push_jet(&mut jets, own[i].jets[r.jet].clone());
                    reads.push((*t, j, r.order, r.weight));
                }
            }
        }
    }
    Ok((jets, reads))
}

/// The lowest coefficient `y_k`, `k ≤ cap`, of any of `jets` that is a multiple of `target` alone,
/// as `(jet, k, 1/multiple)`.
fn clean_readout(jets: &[JetSpec], target: &MultiIndex, cap: usize) -> Option<(usize, usize, f64)> {
    (1..=cap).find_map(|k| {
        jets.iter().enumerate().find_map(|(j, jet)| {
            let a = planner::analyze(&JetSpec::new(k, &jet.slots), k);
            a.is_clean_for(target)
                .then(|| (j, k, 1.0 / a.terms[0].coefficient))
        })
    })
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

fn push_jet(jets: &mut Vec<JetSpec>, jet: JetSpec) -> usize {
    match jets.iter().position(|j| j.slots == jet.slots) {
        Some(i) => {
            jets[i].order = jets[i].order.max(jet.order);
            i
        }
        None => {
            jets.push(jet);
            jets.len() - 1
        }
    }
}
