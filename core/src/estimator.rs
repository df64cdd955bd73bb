//! Differential operators as data and the STDE estimators that turn them into probe sets: which jets
//! to push and how to read the operator off their output coefficients.
//!
//! An [`Operator`] is a contraction of the derivative tensor (`L u = Σ_α C_α ∂^α u`). An [`Estimator`]
//! chooses the probe tangents (all directions, a sparse index set, or dense random vectors) and the
//! weights that make the estimate exact or unbiased. The result, a [`ProbeSet`], is plain data that every
//! backend executes the same way; a new operator never needs new backend code.
//!
//! Conventions: tangents `v_j` are given in the *derivative* convention (the curve is
//! `x(t) = x + Σ_j v_j t^j / j!`) and readout weights multiply derivative coefficients `y_k`.

use crate::batch::{JetBatch, JetBatchRef, JetShape};
use crate::planner::{self, MultiIndex, PlannerParams};
use crate::series::factorial;

/// One input tangent `v_j` of a probe direction.
#[derive(Clone, Debug, PartialEq)]
pub enum Tangent {
    /// `scale·e_index`: a one-hot tangent (the sparse first layer gathers one weight column).
    Basis {
        /// Coordinate.
        index: usize,
        /// Multiplier of the unit vector.
        scale: f64,
    },
    /// A dense vector of length `d`.
    Dense(Vec<f64>),
}

/// One probe direction: the non-zero input slots `(j, v_j)` of its jet.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeDirection {
    /// `(slot order j ≥ 1, tangent v_j)`; slots not listed are zero.
    pub slots: Vec<(usize, Tangent)>,
}

/// A weight on one output derivative coefficient: the estimate adds `weight · y_order(direction)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Readout {
    /// Index into [`ProbeSet::dirs`].
    pub dir: usize,
    /// Output order `k` read (derivative convention `y_k`).
    pub order: usize,
    /// Multiplier.
    pub weight: f64,
}

/// What one step pushes through the model: jets of one order, one per direction, shared by all points,
/// and a linear readout of their output coefficients.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSet {
    /// Jet order `K`.
    pub order: usize,
    /// Input dimension `d`.
    pub dim: usize,
    /// The probe directions.
    pub dirs: Vec<ProbeDirection>,
    /// The readout; the estimate is `Σ weight·y_order(dir)`.
    pub readouts: Vec<Readout>,
}

/// The weight the collapsed top coefficient is read with, if the readout allows collapsing: every
/// direction is read at the top order with one common weight (lower orders may be read freely).
fn common_top_weight(set: &ProbeSet) -> Option<f64> {
    let mut per_dir = vec![0.0; set.dirs.len()];
    for r in &set.readouts {
        if r.order == set.order {
            per_dir[r.dir] += r.weight;
        }
    }
    let w = per_dir[0];
    per_dir.iter().all(|&x| x == w).then_some(w)
}

impl ProbeSet {
    /// Number of directions `V`.
    pub fn n_dirs(&self) -> usize {
        self.dirs.len()
    }

    /// Whether the estimate only needs the sum over directions of the top coefficient (all top
    /// readouts share one weight), so that collapsed Taylor mode applies.
    pub fn can_collapse(&self) -> bool {
        common_top_weight(self).is_some()
    }

    /// Whether every tangent is one-hot and sits in slot 1 (what the sparse first layer handles).
    pub fn is_first_order_one_hot(&self) -> bool {
        self.dirs.iter().all(|d| {
            d.slots.len() == 1 && d.slots[0].0 == 1 && matches!(d.slots[0].1, Tangent::Basis { .. })
        })
    }

    /// The shape of the model's input batch for `n_points` points.
    pub fn input_shape(&self, n_points: usize, collapsed: bool) -> JetShape {
        JetShape {
            order: self.order,
            n_dirs: self.n_dirs(),
            n_points,
            width: self.dim,
            collapsed,
        }
    }

    /// The dense input batch (width `d`) for row-major points `n_points × d`: primal `x`, and for each
    /// direction and slot the Taylor coefficient `v_j / j!`.
    ///
    /// # Panics
    /// If `collapsed` is asked for a readout that cannot collapse, or the points are not `n × d`.
    #[track_caller]
    pub fn input_batch(&self, points: &[f64], collapsed: bool) -> JetBatch {
        assert!(
            !collapsed || self.can_collapse(),
            "this readout does not allow a collapsed top coefficient"
        );
        let d = self.dim;
        assert_eq!(points.len() % d, 0, "points are not rows of length {d}");
        let n_points = points.len() / d;
        let shape = self.input_shape(n_points, collapsed);
        let mut batch = JetBatch::zeros(shape);
        let mut view = batch.as_mut();
        for n in 0..n_points {
            for i in 0..d {
                view.set(0, 0, n, i, points[n * d + i]);
            }
            for (s, dir) in self.dirs.iter().enumerate() {
                for (j, tangent) in &dir.slots {
                    let inv_fact = 1.0 / factorial(*j);
                    match tangent {
                        Tangent::Basis { index, scale } => {
                            view.add(*j, s, n, *index, scale * inv_fact)
                        }
                        Tangent::Dense(v) => {
                            for i in 0..d {
                                view.add(*j, s, n, i, v[i] * inv_fact);
                            }
                        }
                    }
                }
            }
        }
        batch
    }

    /// Reads the per-point estimate off the model's output batch (width 1).
    ///
    /// # Panics
    /// If the output is not of width 1 or its order differs from the probe set's.
    #[track_caller]
    pub fn estimate(&self, output: JetBatchRef<'_>) -> Vec<f64> {
        let shape = output.shape();
        assert_eq!(shape.width, 1, "the readout takes a scalar output");
        assert_eq!(
            shape.order, self.order,
            "output order differs from the probe set's"
        );
        let mut est = vec![0.0; shape.n_points];
        if shape.collapsed {
            let top_w = common_top_weight(self).expect("collapsed batch for a non-collapsible set");
            for (n, e) in est.iter_mut().enumerate() {
                *e += top_w * factorial(self.order) * output.get(self.order, 0, n, 0);
            }
        }
        for r in &self.readouts {
            if shape.collapsed && r.order == self.order {
                continue;
            }
            let scale = r.weight * factorial(r.order);
            for (n, e) in est.iter_mut().enumerate() {
                *e += scale * output.get(r.order, r.dir, n, 0);
            }
        }
        est
    }

    /// The cotangent of the output batch for per-point cotangents of the estimate (adjoint of
    /// [`ProbeSet::estimate`]).
    pub fn estimate_adjoint(&self, shape: JetShape, est_bar: &[f64]) -> JetBatch {
        let mut out = JetBatch::zeros(shape);
        let mut view = out.as_mut();
        if shape.collapsed {
            let top_w = common_top_weight(self).expect("collapsed batch for a non-collapsible set");
            for (n, g) in est_bar.iter().enumerate() {
                view.add(self.order, 0, n, 0, top_w * factorial(self.order) * g);
            }
        }
        for r in &self.readouts {
            if shape.collapsed && r.order == self.order {
                continue;
            }
            let scale = r.weight * factorial(r.order);
            for (n, g) in est_bar.iter().enumerate() {
                view.add(r.order, r.dir, n, 0, scale * g);
            }
        }
        out
    }
}

/// A linear differential operator in the input `x`, as data.
#[derive(Clone, Debug, PartialEq)]
pub enum Operator {
    /// `Δu = Σ_j ∂²u/∂x_j²`.
    Laplacian,
    /// `Σ_j ∂^k u/∂x_j^k` for `k = order ≥ 1`.
    DiagonalDerivative {
        /// The derivative order `k`.
        order: usize,
    },
    /// `½·tr(σσᵀ∇²u)` for a `d × m` matrix `σ` (row-major).
    SigmaTrace {
        /// `σ`, row-major `d × m`.
        sigma: Vec<f64>,
        /// Columns `m`.
        cols: usize,
    },
    /// `Δ²u = Σ_{i,j} ∂⁴u/∂x_i²∂x_j²`.
    Biharmonic,
    /// `Σ_t C_t ∂^{α_t} u`: any linear combination of mixed partials, planned by [`crate::planner`].
    Partials(Vec<(f64, MultiIndex)>),
}

/// How probe tangents are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Entries `±1` with equal probability (least variance for second order).
    Rademacher,
    /// Standard normal entries (needed for the biharmonic identity `E[y4] = 3·Δ²u`).
    Gaussian,
}

/// How an operator is turned into probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    /// Every term, no randomness.
    Exact,
    /// Sparse STDE: `rand_dims` coordinates (or terms) without replacement, scaled by `d / V`.
    Sparse {
        /// `V`.
        rand_dims: usize,
    },
    /// Dense STDE (Hutchinson): `rand_dims` random vectors with `E[vvᵀ] = I`, scaled by `1 / V`.
    Dense {
        /// `V`.
        rand_dims: usize,
        /// Distribution of the entries.
        distribution: Distribution,
    },
}

/// The randomness an estimator consumes; the training loop implements it with the counter-based
/// generator so that every backend draws the same probes.
pub trait ProbeRng {
    /// `count` distinct indices from `0..population`.
    fn index_set(&mut self, population: usize, count: usize) -> Vec<usize>;
    /// `count` Rademacher signs.
    fn rademacher(&mut self, count: usize) -> Vec<f64>;
    /// `count` standard normals.
    fn gaussian(&mut self, count: usize) -> Vec<f64>;
}

/// Why an operator and an estimator cannot make a probe set.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EstimatorError {
    /// `V` is zero or larger than the number of terms it samples from.
    #[error(
        "cannot sample {rand_dims} of {population} terms: V must be between 1 and {population}"
    )]
    BadRandDims {
        /// Requested `V`.
        rand_dims: usize,
        /// Terms available.
        population: usize,
    },
    /// The combination has no unbiased estimator here.
    #[error("the {estimator} estimator does not apply to the {operator}: {reason}")]
    Unsupported {
        /// Estimator name.
        estimator: &'static str,
        /// Operator name.
        operator: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A mixed partial could not be planned.
    #[error(transparent)]
    Plan(#[from] planner::PlanError),
    /// The operator is malformed for this dimension.
    #[error("operator does not fit dimension {dim}: {reason}")]
    Shape {
        /// Input dimension.
        dim: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Operator {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Laplacian => "Laplacian",
            Operator::DiagonalDerivative { .. } => "diagonal derivative",
            Operator::SigmaTrace { .. } => "σ-weighted trace",
            Operator::Biharmonic => "biharmonic",
            Operator::Partials(_) => "mixed-partial combination",
        }
    }

    /// The mixed-partial terms of the operator in dimension `d`, for exact evaluation through the
    /// planner (used for the biharmonic).
    fn biharmonic_terms(dim: usize) -> Vec<(f64, MultiIndex)> {
        let mut terms = Vec::new();
        for i in 0..dim {
            for j in 0..dim {
                terms.push((1.0, MultiIndex::new(&[(i, 2), (j, 2)])));
            }
        }
        terms
    }
}

fn check_rand_dims(rand_dims: usize, population: usize) -> Result<(), EstimatorError> {
    if rand_dims == 0 || rand_dims > population {
        return Err(EstimatorError::BadRandDims {
            rand_dims,
            population,
        });
    }
    Ok(())
}

fn one_hot(index: usize, scale: f64) -> ProbeDirection {
    ProbeDirection {
        slots: vec![(1, Tangent::Basis { index, scale })],
    }
}

fn dense(v: Vec<f64>) -> ProbeDirection {
    ProbeDirection {
        slots: vec![(1, Tangent::Dense(v))],
    }
}

/// Readouts of order `order` with one weight on every direction.
fn uniform_readouts(n_dirs: usize, order: usize, weight: f64) -> Vec<Readout> {
    (0..n_dirs)
        .map(|dir| Readout { dir, order, weight })
        .collect()
}

/// `σ·v` for `σ` row-major `d × m`.
fn sigma_times(sigma: &[f64], cols: usize, v: &[f64]) -> Vec<f64> {
    sigma
        .chunks_exact(cols)
        .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
        .collect()
}

impl Estimator {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Estimator::Exact => "exact",
            Estimator::Sparse { .. } => "sparse",
            Estimator::Dense { .. } => "dense",
        }
    }

    /// Draws the probe set of one step for `op` in dimension `dim`.
    pub fn probes(
        &self,
        op: &Operator,
        dim: usize,
        rng: &mut impl ProbeRng,
    ) -> Result<ProbeSet, EstimatorError> {
        match op {
            Operator::Laplacian => self.diagonal_probes(dim, 2, rng),
            Operator::DiagonalDerivative { order } => {
                if *order == 0 || *order > crate::jet::MAX_ORDER {
                    return Err(EstimatorError::Shape {
                        dim,
                        reason: format!(
                            "derivative order {order} outside 1..={}",
                            crate::jet::MAX_ORDER
                        ),
                    });
                }
                self.diagonal_probes(dim, *order, rng)
            }
            Operator::SigmaTrace { sigma, cols } => self.sigma_probes(dim, sigma, *cols, rng),
            Operator::Biharmonic => match *self {
                Estimator::Exact => {
                    partial_probes(dim, &Operator::biharmonic_terms(dim), None, rng)
                }
                Estimator::Dense {
                    rand_dims,
                    distribution: Distribution::Gaussian,
                } => {
                    if rand_dims == 0 {
                        return Err(EstimatorError::BadRandDims {
                            rand_dims,
                            population: usize::MAX,
                        });
                    }
                    let dirs = (0..rand_dims).map(|_| dense(rng.gaussian(dim))).collect();
                    // E[y4(v)] = 3·Δ²u for v ~ N(0, I).
                    Ok(ProbeSet {
                        order: 4,
                        dim,
                        dirs,
                        readouts: uniform_readouts(rand_dims, 4, 1.0 / (3.0 * rand_dims as f64)),
                    })
                }
                Estimator::Dense { .. } => Err(EstimatorError::Unsupported {
                    estimator: "dense Rademacher",
                    operator: "biharmonic",
                    reason:
                        "E[(vᵀ∇)⁴u] equals 3·Δ²u only for Gaussian v; use the Gaussian distribution",
                }),
                Estimator::Sparse { .. } => Err(EstimatorError::Unsupported {
                    estimator: "sparse",
                    operator: "biharmonic",
                    reason: "one-hot 4-jets give only ∂⁴u/∂x_j⁴; use dense Gaussian or exact",
                }),
            },
            Operator::Partials(terms) => match *self {
                Estimator::Exact => partial_probes(dim, terms, None, rng),
                Estimator::Sparse { rand_dims } => partial_probes(dim, terms, Some(rand_dims), rng),
                Estimator::Dense { .. } => Err(EstimatorError::Unsupported {
                    estimator: "dense",
                    operator: "mixed-partial combination",
                    reason:
                        "dense tangents mix every partial of the same order; use sparse or exact",
                }),
            },
        }
    }

    fn diagonal_probes(
        &self,
        dim: usize,
        order: usize,
        rng: &mut impl ProbeRng,
    ) -> Result<ProbeSet, EstimatorError> {
        let (dirs, weight) = match *self {
            Estimator::Exact => ((0..dim).map(|i| one_hot(i, 1.0)).collect(), 1.0),
            Estimator::Sparse { rand_dims } => {
                check_rand_dims(rand_dims, dim)?;
                let idx = rng.index_set(dim, rand_dims);
                let dirs = idx.into_iter().map(|i| one_hot(i, 1.0)).collect();
                (dirs, dim as f64 / rand_dims as f64)
            }
            Estimator::Dense {
                rand_dims,
                distribution,
            } => {
                if order != 2 {
                    return Err(EstimatorError::Unsupported {
                        estimator: "dense",
                        operator: "diagonal derivative",
                        reason: "only for order 2 does E[(vᵀ∇)^k u] reduce to the diagonal sum",
                    });
                }
                if rand_dims == 0 {
                    return Err(EstimatorError::BadRandDims {
                        rand_dims,
                        population: usize::MAX,
                    });
                }
                let dirs = (0..rand_dims)
                    .map(|_| {
                        dense(match distribution {
                            Distribution::Rademacher => rng.rademacher(dim),
                            Distribution::Gaussian => rng.gaussian(dim),
                        })
                    })
                    .collect();
                (dirs, 1.0 / rand_dims as f64)
            }
        };
        let n = Vec::len(&dirs);
        Ok(ProbeSet {
            order,
            dim,
            dirs,
            readouts: uniform_readouts(n, order, weight),
        })
    }

    fn sigma_probes(
        &self,
        dim: usize,
        sigma: &[f64],
        cols: usize,
        rng: &mut impl ProbeRng,
    ) -> Result<ProbeSet, EstimatorError> {
        if cols == 0 || sigma.len() != dim * cols {
            return Err(EstimatorError::Shape {
                dim,
                reason: format!("σ has {} entries, expected {dim}×{cols}", sigma.len()),
            });
        }
        let column = |c: usize| -> Vec<f64> { (0..dim).map(|r| sigma[r * cols + c]).collect() };
        let (dirs, weight): (Vec<_>, f64) = match *self {
            Estimator::Exact => ((0..cols).map(|c| dense(column(c))).collect(), 0.5),
            Estimator::Sparse { rand_dims } => {
                check_rand_dims(rand_dims, cols)?;
                let idx = rng.index_set(cols, rand_dims);
                (
                    idx.into_iter().map(|c| dense(column(c))).collect(),
                    0.5 * cols as f64 / rand_dims as f64,
                )
            }
            Estimator::Dense {
                rand_dims,
                distribution,
            } => {
                if rand_dims == 0 {
                    return Err(EstimatorError::BadRandDims {
                        rand_dims,
                        population: usize::MAX,
                    });
                }
                let dirs = (0..rand_dims)
                    .map(|_| {
                        let v = match distribution {
                            Distribution::Rademacher => rng.rademacher(cols),
                            Distribution::Gaussian => rng.gaussian(cols),
                        };
                        dense(sigma_times(sigma, cols, &v))
                    })
                    .collect();
                (dirs, 0.5 / rand_dims as f64)
            }
        };
        let n = dirs.len();
        Ok(ProbeSet {
            order: 2,
            dim,
            dirs,
            readouts: uniform_readouts(n, 2, weight),
        })
    }
}

/// Probes for `Σ_t C_t ∂^{α_t} u`: each term is planned, and with `sample = Some(V)` only `V` terms
/// drawn without replacement are kept, scaled by `terms / V`.
fn partial_probes(
    dim: usize,
    terms: &[(f64, MultiIndex)],
    sample: Option<usize>,
    rng: &mut impl ProbeRng,
) -> Result<ProbeSet, EstimatorError> {
    if terms.is_empty() {
        return Err(EstimatorError::Shape {
            dim,
            reason: "no terms in the mixed-partial combination".into(),
        });
    }
    for (_, alpha) in terms {
        if let Some(var) = alpha.vars().find(|v| *v >= dim) {
            return Err(EstimatorError::Shape {
                dim,
                reason: format!("{alpha} differentiates coordinate {var}"),
            });
        }
    }
    let (chosen, scale): (Vec<usize>, f64) = match sample {
        None => ((0..terms.len()).collect(), 1.0),
        Some(v) => {
            check_rand_dims(v, terms.len())?;
            (rng.index_set(terms.len(), v), terms.len() as f64 / v as f64)
        }
    };
    let params = PlannerParams::default();
    let mut dirs: Vec<ProbeDirection> = Vec::new();
    let mut keys: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut pending: Vec<(usize, usize, f64)> = Vec::new();
    let mut order = 1;
    for t in chosen {
        let (c, alpha) = &terms[t];
        let plan = planner::plan(alpha, &params)?;
        for r in &plan.readouts {
            let spec = &plan.jets[r.jet];
            // Directions with identical slots are pushed once.
            let key: Vec<(usize, usize)> = spec.slots.clone();
            let dir = match keys.iter().position(|k| *k == key) {
                Some(p) => p,
                None => {
                    keys.push(key);
                    dirs.push(ProbeDirection {
                        slots: spec
                            .slots
                            .iter()
                            .map(|&(j, var)| {
                                (
                                    j,
                                    Tangent::Basis {
                                        index: var,
                                        scale: 1.0,
                                    },
                                )
                            })
                            .collect(),
                    });
                    dirs.len() - 1
                }
            };
            order = order.max(r.order).max(spec.order);
            pending.push((dir, r.order, c * r.weight * scale));
        }
    }
    // A slot above every read order cannot influence any coefficient that is read.
    for dir in &mut dirs {
        dir.slots.retain(|(j, _)| *j <= order);
    }
    let readouts = pending
        .into_iter()
        .map(|(dir, order, weight)| Readout { dir, order, weight })
        .collect();
    Ok(ProbeSet {
        order,
        dim,
        dirs,
        readouts,
    })
}
