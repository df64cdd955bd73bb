//! The within-step variance of the stochastic term estimates and of the loss: how much one step's
//! numbers move because of its random directions, estimated from how the `V` directions of that
//! step spread (no extra draws), so a user can see what `V` buys.
//!
//! # Definitions
//!
//! The estimate of term `k` at point `p` is `T̂_pk = Σ_u τ_pku`, a sum over the *units* of the step:
//! one unit is one sampled coordinate, one dense tangent, or the planner's jets of one sampled
//! window, and `τ_pku` is that unit's share of the readout, scaling (`d/V`, `1/V`, `windows/V`)
//! included. Fixed jets and the exact estimator's directions add a constant. Groups of units drawn
//! independently of each other (the coordinates, the windows, a constraint's coordinates) add
//! their variances.
//!
//! * **Independent draws** (dense Rademacher or Gaussian tangents): `Var[T̂] = V·Var[τ]`, and with
//!   `s²` the unbiased sample variance of the `τ_u` over the `V` units, `V·s²` is unbiased.
//! * **Without replacement** (`V` of a population of `P` coordinates or windows, a simple random
//!   sample, so `τ_u = (P/V)·y_{j_u}` for the population values `y_1 … y_P`):
//!   `T̂ = P·ȳ_J` and `Var[T̂] = P²·(S²/V)·(1 − V/P)` with `S² = Σ_j (y_j − Ȳ)²/(P − 1)`
//!   (Cochran, *Sampling Techniques*, Thm 2.2). The sample variance `s_y²` of the drawn `y` is
//!   unbiased for `S²` when `V ≥ 2`: `E Σ_u (y_u − ȳ)² = V(σ² + Ȳ²) − V(Var ȳ + Ȳ²)
//!   = Vσ² − S²(1 − V/P) = S²(V − 1)` with `σ² = (P − 1)S²/P`. Since `s² = (P/V)²·s_y²`,
//!   **`V·s²·(1 − V/P)` is unbiased for `Var[T̂]`**, and zero when `V = P` (every item is drawn, the
//!   estimate is exact). The factor often quoted, `1 − (V − 1)/(P − 1) = (P − V)/(P − 1)`, is the
//!   same variance written with the population variance `σ²` (denominator `P`) instead of `S²`;
//!   applied to the sample variance it would overstate the variance by `P/(P − 1)`.
//!
//! With one unit (`V = 1`) the spread is unknown: no estimate ([`VarianceSupport::Unavailable`]).
//!
//! # The loss
//!
//! The loss of a residual is a nonlinear function `L(T̂)` of the estimates at all points. To first
//! order (the delta method), `L − E[L] ≈ Σ_pk c_pk·(T̂_pk − E T̂_pk)` with `c_pk = ∂L/∂T̂_pk`, which
//! are exactly the cotangents the step's loss program computes for the adjoint. The linearised
//! loss is a sum over units of `ℓ_u = Σ_pk c_pk·τ_pku`, so its variance is estimated from the
//! spread of the `ℓ_u` as above. All points share the step's directions, so the estimates of
//! different points are correlated; summing over points inside `ℓ_u` accounts for that exactly.
//! Two approximations remain: the cotangents are taken at this step's estimates rather than at
//! their mean, and the curvature of `L` is left out (for a residual affine in the terms, the
//! variance of `Σ_p w·ε_p²` and its covariance with the linear part, where `ε_p` is the direction
//! noise of the residual at `p`). Both are small when the direction noise of the residual is small
//! against the residual itself; they are not when it is not, and then the loss variance is a
//! first-order figure. A soft constraint with gradient matching on sampled coordinates has a loss
//! linear in its units (`w·C_g·(d/V)·Σ_s (∂_{j_s} e)²`), so its part is exact.

use crate::batch::JetShape;
use crate::series::factorial;
use crate::step_plan::RandomDirections;

/// Whether a run's direction variance can be measured, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VarianceSupport {
    /// The step draws random directions in groups of at least two: the variance is measured.
    Measured,
    /// Nothing in the step is random (the exact estimator, only fixed jets, or `V` equal to the
    /// population drawn from): the variance is zero by construction, not measured.
    Deterministic {
        /// Why.
        reason: String,
    },
    /// Directions are random but a group draws only one, whose spread is unknown.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl VarianceSupport {
    /// Whether the variance is measured.
    pub fn is_measured(&self) -> bool {
        matches!(self, VarianceSupport::Measured)
    }

    /// Why it is not measured (`None` when it is).
    pub fn reason(&self) -> Option<&str> {
        match self {
            VarianceSupport::Measured => None,
            VarianceSupport::Deterministic { reason } | VarianceSupport::Unavailable { reason } => {
                Some(reason)
            }
        }
    }
}

/// One group of units drawn in a step: `units` of them, from a finite population without
/// replacement or independently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    /// Units drawn (`V`).
    pub units: usize,
    /// The population drawn from without replacement; `None` for independent draws.
    pub population: Option<usize>,
}

impl Draw {
    /// The draw of a plan's random group.
    pub fn of(group: &RandomDirections) -> Self {
        Self {
            units: group.units,
            population: group.population,
        }
    }

    /// The finite-population correction `1 − V/P` (1 for independent draws).
    pub fn correction(&self) -> f64 {
        match self.population {
            Some(p) if p > 0 => (1.0 - self.units as f64 / p as f64).max(0.0),
            Some(_) => 0.0,
            None => 1.0,
        }
    }

    /// Whether the sum over the units varies from step to step.
    pub fn is_random(&self) -> bool {
        self.units > 0 && self.correction() > 0.0
    }
}

/// The unbiased within-step estimate of `Var[Σ_u x_u]` from the values `x_u` of one draw's units:
/// `V·s²·(1 − V/P)` without replacement, `V·s²` for independent draws (see the module
/// documentation). Zero when the sum is not random; NaN when it is random and `V < 2`.
pub fn sum_variance(values: &[f64], draw: Draw) -> f64 {
    let correction = draw.correction();
    if correction == 0.0 {
        return 0.0;
    }
    let v = values.len();
    if v < 2 {
        return f64::NAN;
    }
    let mean = values.iter().sum::<f64>() / v as f64;
    let s2 = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v - 1) as f64;
    v as f64 * s2 * correction
}

/// Whether the variance of a step with these random groups (the residual's, and those of
/// gradient-matching constraints) can be measured.
pub fn support(residual: &[RandomDirections], constraints: &[Draw]) -> VarianceSupport {
    let draws: Vec<Draw> = residual
        .iter()
        .map(Draw::of)
        .chain(constraints.iter().copied())
        .filter(Draw::is_random)
        .collect();
    if draws.is_empty() {
        return VarianceSupport::Deterministic {
            reason: if residual.is_empty() && constraints.is_empty() {
                "no direction is drawn at random (exact estimator or fixed jets only)".into()
            } else {
                "every direction of the population is drawn every step (V equals it)".into()
            },
        };
    }
    match draws.iter().find(|d| d.units < 2) {
        Some(_) => VarianceSupport::Unavailable {
            reason: "V = 1: the spread of one direction per step is unknown (needs V ≥ 2)".into(),
        },
        None => VarianceSupport::Measured,
    }
}

/// What one measurement found, for the residual's terms and the whole loss.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectionVariance {
    /// The step measured (counted from 0, as the step's draws are).
    pub step: u64,
    /// Residual points.
    pub n_points: usize,
    /// `T̂_pk` summed over the directions on the host in f64, `n_terms` columns of `N`
    /// (equal to the step's term estimates up to rounding).
    pub estimates: Vec<f64>,
    /// The within-step estimate of `Var[T̂_pk]`, `n_terms` columns of `N`; NaN for a term that no
    /// random direction reaches (its estimate is deterministic).
    pub variances: Vec<f64>,
    /// Per term: the mean over points of `Var[T̂_pk]`; `None` for a deterministic term.
    pub term_variance: Vec<Option<f64>>,
    /// Per term: the mean over points of `T̂_pk²`, the scale the variance is compared with.
    pub term_mean_square: Vec<f64>,
    /// The estimated variance of the loss over the step's directions (delta method for the
    /// residual, exact for gradient-matching constraints; see the module documentation).
    pub loss_variance: f64,
}

impl DirectionVariance {
    /// `term_variance[k] / term_mean_square[k]`: the squared relative standard deviation of term
    /// `k`'s estimate (`None` for a deterministic term or a zero estimate).
    pub fn relative_term_variance(&self, k: usize) -> Option<f64> {
        let v = self.term_variance[k]?;
        let ms = self.term_mean_square[k];
        (ms > 0.0).then(|| v / ms)
    }
}

/// The residual group of one step as read back for the measurement.
#[derive(Clone, Copy, Debug)]
pub struct ResidualJets<'a> {
    /// The model output's shape (width 1, not collapsed).
    pub shape: JetShape,
    /// The model output's jets in that shape.
    pub m: &'a [f32],
    /// The ansatz series `[A, B]` ([`crate::backend::ansatz_shape`] of `shape`).
    pub ansatz: &'a [f32],
    /// The step's readout weights, `n_terms × V × K`, on derivative coefficients.
    pub weights: &'a [f32],
    /// Terms.
    pub n_terms: usize,
    /// The loss program's outputs: column `1 + k` is `∂L/∂T̂_k` per point.
    pub loss_out: &'a [f32],
}

/// `t[k][s][p]`: direction `s`'s share of term `k` at point `p` (the readout of
/// [`crate::backend::GenericStep::readout_forward`] split by direction), in f64.
pub fn direction_shares(r: &ResidualJets<'_>) -> Vec<f64> {
    let shape = r.shape;
    assert!(
        !shape.collapsed && shape.width == 1,
        "per-direction shares need an uncollapsed batch of width 1"
    );
    let (np, v, k_max) = (shape.n_points, shape.n_dirs, shape.order);
    let a_shape = crate::backend::ansatz_shape(shape);
    let mut shares = vec![0.0; r.n_terms * v * np];
    let mut u = vec![0.0; k_max + 1];
    for s in 0..v {
        for n in 0..np {
            let ab =
                |k: usize, f: usize| f64::from(r.ansatz[a_shape.index(a_shape.block(k, s), n, f)]);
            let mm = |k: usize| f64::from(r.m[shape.block(k, s) * np + n]);
            // Taylor coefficients of u = A + B·m along direction s.
            for (k, uk) in u.iter_mut().enumerate() {
                *uk = ab(k, 0) + (0..=k).map(|i| ab(i, 1) * mm(k - i)).sum::<f64>();
            }
            for k in 0..r.n_terms {
                let t: f64 = (1..=k_max)
                    .map(|o| {
                        f64::from(r.weights[(k * v + s) * k_max + o - 1]) * factorial(o) * u[o]
                    })
                    .sum();
                shares[(k * v + s) * np + n] = t;
            }
        }
    }
    shares
}

/// Measures the residual's term variances and its loss variance (delta method) from the
/// per-direction shares of one step. Returns the estimates, the per-point variances and the
/// residual's loss variance.
pub fn residual_variance(
    r: &ResidualJets<'_>,
    random: &[RandomDirections],
) -> (Vec<f64>, Vec<f64>, f64) {
    let np = r.shape.n_points;
    let v = r.shape.n_dirs;
    let shares = direction_shares(r);
    let share = |k: usize, s: usize, n: usize| shares[(k * v + s) * np + n];
    let mut estimates = vec![0.0; r.n_terms * np];
    for k in 0..r.n_terms {
        for n in 0..np {
            estimates[k * np + n] = (0..v).map(|s| share(k, s, n)).sum();
        }
    }
    let mut variances = vec![f64::NAN; r.n_terms * np];
    let mut loss_variance = 0.0;
    let mut units = Vec::new();
    for g in random {
        let draw = Draw::of(g);
        // τ of unit u: the sum of its directions' shares.
        let unit = |k: usize, u: usize, n: usize| -> f64 {
            let s0 = g.first + u * g.dirs_per_unit;
            (s0..s0 + g.dirs_per_unit).map(|s| share(k, s, n)).sum()
        };
        for &k in &g.terms {
            for n in 0..np {
                units.clear();
                units.extend((0..g.units).map(|u| unit(k, u, n)));
                let var = &mut variances[k * np + n];
                let add = sum_variance(&units, draw);
                *var = if var.is_nan() { add } else { *var + add };
            }
        }
        units.clear();
        units.extend((0..g.units).map(|u| {
            g.terms
                .iter()
                .map(|&k| {
                    (0..np)
                        .map(|n| f64::from(r.loss_out[(1 + k) * np + n]) * unit(k, u, n))
                        .sum::<f64>()
                })
                .sum::<f64>()
        }));
        loss_variance += sum_variance(&units, draw);
    }
    (estimates, variances, loss_variance)
}

/// The loss variance of a gradient-matching constraint on `V` sampled coordinates: its loss is
/// `(1/N)·Σ_n w·(e_n² + C_g·(d/V)·Σ_s (∂_{j_s} e)_n²)`, linear in the units `s`, so
/// `ℓ_s = (w·C_g·d/V)/N · Σ_n (∂_{j_s} e)_n²` and the estimate is exact. `features` are the
/// constraint's readout (column 0 `e`, column `1 + s` the derivative along coordinate `j_s`).
pub fn gradient_matching_variance(
    features: &[f32],
    n_points: usize,
    draw: Draw,
    weight: f64,
    gradient_weight: f64,
    dim: usize,
) -> f64 {
    let v = draw.units;
    let scale = weight * gradient_weight * dim as f64 / v as f64 / n_points as f64;
    let units: Vec<f64> = (0..v)
        .map(|s| {
            let col = &features[(1 + s) * n_points..(2 + s) * n_points];
            scale * col.iter().map(|&g| f64::from(g).powi(2)).sum::<f64>()
        })
        .collect();
    sum_variance(&units, draw)
}

/// Summarises per-point estimates and variances (`n_terms` columns of `n_points`) per term.
pub fn summarise(
    step: u64,
    n_points: usize,
    estimates: Vec<f64>,
    variances: Vec<f64>,
    loss_variance: f64,
) -> DirectionVariance {
    let n_terms = estimates.len() / n_points.max(1);
    let mean = |col: &[f64]| col.iter().sum::<f64>() / n_points as f64;
    let column = |values: &[f64], k: usize| values[k * n_points..(k + 1) * n_points].to_vec();
    let term_variance = (0..n_terms)
        .map(|k| {
            let col = column(&variances, k);
            (!col.iter().any(|v| v.is_nan())).then(|| mean(&col))
        })
        .collect();
    let term_mean_square = (0..n_terms)
        .map(|k| {
            mean(
                &column(&estimates, k)
                    .iter()
                    .map(|t| t * t)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    DirectionVariance {
        step,
        n_points,
        estimates,
        variances,
        term_variance,
        term_mean_square,
        loss_variance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enumerates every index set of a small population and checks that the mean of
    /// [`sum_variance`] over all of them equals the exact variance of the scaled sum: the
    /// correction `1 − V/P` makes the estimate unbiased, and `1 − (V−1)/(P−1)` would not.
    #[test]
    fn sum_variance_is_unbiased_over_every_sample_without_replacement() {
        let y = [0.3, -1.2, 2.5, 0.0, 4.1, -0.7];
        let p = y.len();
        for v in 2..=p {
            let draw = Draw {
                units: v,
                population: Some(p),
            };
            let scale = p as f64 / v as f64;
            let mut sums = Vec::new();
            let mut estimates = Vec::new();
            // Every subset of size v (the order of the draw does not change either statistic).
            for mask in 0u32..(1 << p) {
                if mask.count_ones() as usize != v {
                    continue;
                }
                let x: Vec<f64> = (0..p)
                    .filter(|j| mask >> j & 1 == 1)
                    .map(|j| scale * y[j])
                    .collect();
                sums.push(x.iter().sum::<f64>());
                estimates.push(sum_variance(&x, draw));
            }
            let n = sums.len() as f64;
            let mean = sums.iter().sum::<f64>() / n;
            let exact = sums.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
            let average = estimates.iter().sum::<f64>() / n;
            assert!(
                (average - exact).abs() <= 1e-12 * exact.max(1.0),
                "V = {v}: mean estimate {average} vs exact variance {exact}"
            );
            if v < p {
                let quoted = average / draw.correction() * (p - v) as f64 / (p - 1) as f64;
                assert!(
                    (quoted - exact).abs() > 1e-3 * exact,
                    "V = {v}: the (P−V)/(P−1) factor is biased by P/(P−1)"
                );
            }
        }
    }

    #[test]
    fn support_says_why_nothing_is_measured() {
        let group = |units, population| RandomDirections {
            first: 0,
            units,
            dirs_per_unit: 1,
            population,
            terms: vec![0],
        };
        assert!(support(&[group(4, Some(10))], &[]).is_measured());
        assert!(support(&[group(4, None)], &[]).is_measured());
        assert!(matches!(
            support(&[], &[]),
            VarianceSupport::Deterministic { .. }
        ));
        assert!(matches!(
            support(&[group(10, Some(10))], &[]),
            VarianceSupport::Deterministic { .. }
        ));
        assert!(matches!(
            support(&[group(1, Some(10))], &[]),
            VarianceSupport::Unavailable { .. }
        ));
        assert!(sum_variance(
            &[1.0],
            Draw {
                units: 1,
                population: None
            }
        )
        .is_nan());
        assert_eq!(
            sum_variance(
                &[1.0, 2.0],
                Draw {
                    units: 2,
                    population: Some(2)
                }
            ),
            0.0
        );
    }
}
