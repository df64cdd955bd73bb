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
//! * **fixed**: deterministic jets, the time direction `e_t` and the planner's jets for fixed mixed
//!   partials ([`crate::planner`]);
//! * **windows**: the planner's jets for one window of a mixed-window term, shifted to `V` sampled
//!   windows (or all of them), scaled by `n_windows/V`.

use std::fmt::Write as _;

use crate::backend::ProbeKind;
use crate::estimator::Distribution;
use crate::planner::{self, JetSpec, MultiIndex, PlannerParams};
use crate::problem::{Instance, TermOperator};
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
    /// Dense probes combined with terms that need one-hot ones.
    #[error("the dense estimator cannot be combined with term `{term}` ({operator}), which needs one-hot probes; use --estimator sparse or exact")]
    MixedKinds {
        /// Term name.
        term: String,
        /// Its operator.
        operator: String,
    },
}

/// How a coordinate direction's weight is set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Weight {
    /// A constant times the group's scale.
    Scaled(f64),
    /// `params[base + j]` times the group's scale, `j` the direction's coordinate.
    Param(usize),
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
    },
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
    /// fit, or the planner cannot isolate a mixed partial.
    pub fn new(
        instance: &Instance,
        estimator: EstimatorKind,
        rand_dims: usize,
    ) -> Result<Self, StepPlanError> {
        let d = instance.dim;
        let stride = d + usize::from(instance.scope.has_time);
        let mut coord_reads = Vec::new();
        let mut dense_reads = Vec::new();
        let mut dense_dist = None;
        let mut fixed_jets: Vec<JetSpec> = Vec::new();
        let mut fixed_reads = Vec::new();
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
                TermOperator::Directional { along } => {
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
                            reason: format!("`{along}` has {len} values; b·∇u needs d = {d}"),
                        });
                    }
                    coord_reads.push((t, 1, Weight::Param(base)));
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
                    let jet = JetSpec::new(1, &[(1, d)]);
                    let j = push_jet(&mut fixed_jets, jet);
                    fixed_reads.push((t, j, 1, 1.0));
                    note_one_hot();
                }
                TermOperator::Partial { index } => {
                    if let Some(&(j, _)) = index.iter().find(|&&(j, _)| j >= d) {
                        return Err(StepPlanError::Term {
                            term: name.clone(),
                            reason: format!("coordinate {j} is outside 0..{d}"),
                        });
                    }
                    let target = MultiIndex::new(index);
                    let plan = planner::plan(&target, &planner_params).map_err(|source| {
                        StepPlanError::Plan {
                            term: name.clone(),
                            source,
                        }
                    })?;
                    for r in &plan.readouts {
                        let j = push_jet(&mut fixed_jets, plan.jets[r.jet].clone());
                        fixed_reads.push((t, j, r.order, r.weight));
                        order = order.max(r.order);
                    }
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
            descriptions: instance
                .spec
                .terms
                .iter()
                .map(|t| t.operator.describe())
                .collect(),
        };
        let (mut idx, mut coeff, mut weights) = plan.buffers();
        plan.fill(0, 0, &instance.params, &mut idx, &mut coeff, &mut weights);
        plan.collapsible = (0..plan.terms.len()).all(|t| {
            let k = plan.order;
            let w0 = weights[(t * plan.n_dirs) * k + k - 1];
            (0..plan.n_dirs).all(|s| weights[(t * plan.n_dirs + s) * k + k - 1] == w0)
        });
        Ok(plan)
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
                Group::Fixed { first, jets, reads } => {
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
                Group::Fixed { jets, reads, .. } => {
                    for (n, jet) in jets.iter().enumerate() {
                        let analysis = planner::analyze(jet, jet.order);
                        let _ = writeln!(s, "  fixed J{n}: {jet}");
                        let _ = write!(s, "{}", indent(&analysis.to_string(), "      "));
                    }
                    for (t, jet, k, w) in reads {
                        let _ = writeln!(
                            s,
                            "    {} ({}) += {w:+}·J{jet}[y{k}]",
                            self.terms[*t], self.descriptions[*t]
                        );
                    }
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
