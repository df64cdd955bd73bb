//! The inseparable PDE suite on the unit ball: exact solutions, their closed-form Laplacians, the
//! equations' nonlinearities and the forcing terms, all in f64 and O(d) per point.
//!
//! Every problem has the form `Δu + f(u) = g` on the unit ball with `u = 0` on the sphere, where
//! `f` is the equation's nonlinearity ([`Equation`]) and `g = Δu* + f(u*)` is manufactured from an
//! exact solution `u*` ([`ExactSolution`]) whose coefficients `c_i ~ N(0, 1)` come from the run's seed
//! ([`crate::rng::solution_coeffs`]).
//!
//! Both exact solutions are `u* = φ·S` with `φ = 1 − ‖x‖²` (so `∇φ = −2x`, `Δφ = −2d`), hence
//!
//! ```text
//! Δu* = φ·ΔS + 2∇φ·∇S + S·Δφ = φ·ΔS − 4·(x·∇S) − 2d·S.
//! ```
//!
//! The derivations of `ΔS` and `x·∇S` are on [`ExactSolution::TwoBody`] and
//! [`ExactSolution::ThreeBody`]. Indices are 0-based in code: term `i` couples `x_i, x_{i+1}` (and
//! `x_{i+2}` for three-body).

use std::fmt;
use std::str::FromStr;

use crate::rng::solution_coeffs;

/// The exact solution `u*` of a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExactSolution {
    /// `u* = (1 − ‖x‖²) Σ_{i=1}^{d−1} c_i sin θ_i`, `θ_i = x_i + cos x_{i+1} + x_{i+1} cos x_i`.
    ///
    /// With `a = x_i`, `b = x_{i+1}`, `θ_i` depends on `a` and `b` only:
    ///
    /// ```text
    /// θ_a = 1 − b sin a        θ_aa = −b cos a
    /// θ_b = cos a − sin b      θ_bb = −cos b
    /// Δ sin θ = cos θ·(θ_aa + θ_bb) − sin θ·(θ_a² + θ_b²)
    /// x·∇ sin θ = cos θ·(a θ_a + b θ_b)
    /// ```
    ///
    /// so `ΔS = Σ c_i [cos θ_i (θ_aa + θ_bb) − sin θ_i (θ_a² + θ_b²)]` and
    /// `x·∇S = Σ c_i cos θ_i (a θ_a + b θ_b)`. Needs `d ≥ 2`.
    TwoBody,
    /// `u* = (1 − ‖x‖²) Σ_{i=1}^{d−2} c_i exp(p_i)`, `p_i = x_i x_{i+1} x_{i+2}`.
    ///
    /// With `a = x_i`, `b = x_{i+1}`, `e = x_{i+2}`: `∇p = (be, ae, ab)` on those three coordinates and
    /// `Δp = 0` (`p` is linear in each variable), so
    ///
    /// ```text
    /// Δ e^p = e^p (|∇p|² + Δp) = e^p (a²b² + b²e² + a²e²)
    /// x·∇ e^p = e^p (a·be + b·ae + e·ab) = 3p·e^p          (p is homogeneous of degree 3)
    /// ```
    ///
    /// and therefore
    ///
    /// ```text
    /// Δu* = Σ c_i e^{p_i} [ (1 − ‖x‖²)(x_i²x_{i+1}² + x_{i+1}²x_{i+2}² + x_i²x_{i+2}²) − 12 p_i − 2d ].
    /// ```
    ///
    /// (The paper's official code gets this Laplacian wrong.) Needs `d ≥ 3`.
    ThreeBody,
}

impl ExactSolution {
    /// Both exact solutions.
    pub const ALL: [ExactSolution; 2] = [ExactSolution::TwoBody, ExactSolution::ThreeBody];

    /// `"two-body"` or `"three-body"`.
    pub fn name(self) -> &'static str {
        match self {
            ExactSolution::TwoBody => "two-body",
            ExactSolution::ThreeBody => "three-body",
        }
    }

    /// The smallest dimension with at least one term: 2 for two-body, 3 for three-body.
    pub fn min_dim(self) -> usize {
        match self {
            ExactSolution::TwoBody => 2,
            ExactSolution::ThreeBody => 3,
        }
    }

    /// The number of coefficients `c_i` at dimension `dim` (`d − 1` or `d − 2`; 0 below the minimum).
    pub fn n_terms(self, dim: usize) -> usize {
        (dim + 1).saturating_sub(self.min_dim())
    }
}

/// The equation `Δu + f(u) = g`, named by its nonlinearity `f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Equation {
    /// `Δu = g` (`f = 0`).
    Poisson,
    /// `Δu + u − u³ = g`.
    AllenCahn,
    /// `Δu + sin u = g`.
    SineGordon,
}

impl Equation {
    /// All three equations.
    pub const ALL: [Equation; 3] = [Equation::Poisson, Equation::AllenCahn, Equation::SineGordon];

    /// `"poisson"`, `"allen-cahn"` or `"sine-gordon"`.
    pub fn name(self) -> &'static str {
        match self {
            Equation::Poisson => "poisson",
            Equation::AllenCahn => "allen-cahn",
            Equation::SineGordon => "sine-gordon",
        }
    }

    /// The nonlinearity `f(u)`: `0`, `u − u³` or `sin u`.
    pub fn nonlinearity(self, u: f64) -> f64 {
        match self {
            Equation::Poisson => 0.0,
            Equation::AllenCahn => u - u * u * u,
            Equation::SineGordon => u.sin(),
        }
    }

    /// `f'(u)`: `0`, `1 − 3u²` or `cos u`.
    pub fn nonlinearity_deriv(self, u: f64) -> f64 {
        match self {
            Equation::Poisson => 0.0,
            Equation::AllenCahn => 1.0 - 3.0 * u * u,
            Equation::SineGordon => u.cos(),
        }
    }
}

/// A problem kind without its dimension and seed: one of the six names of [`Problem::list`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProblemKind {
    /// The equation.
    pub equation: Equation,
    /// The exact solution.
    pub solution: ExactSolution,
}

impl ProblemKind {
    /// The six kinds, in the order of [`Problem::list`].
    pub const ALL: [ProblemKind; 6] = [
        ProblemKind::new(Equation::Poisson, ExactSolution::TwoBody),
        ProblemKind::new(Equation::AllenCahn, ExactSolution::TwoBody),
        ProblemKind::new(Equation::SineGordon, ExactSolution::TwoBody),
        ProblemKind::new(Equation::Poisson, ExactSolution::ThreeBody),
        ProblemKind::new(Equation::AllenCahn, ExactSolution::ThreeBody),
        ProblemKind::new(Equation::SineGordon, ExactSolution::ThreeBody),
    ];

    /// The kind of `equation` with `solution`.
    pub const fn new(equation: Equation, solution: ExactSolution) -> Self {
        Self { equation, solution }
    }

    /// `"<equation>-<solution>"`, e.g. `"sine-gordon-two-body"`.
    pub fn name(self) -> &'static str {
        match (self.equation, self.solution) {
            (Equation::Poisson, ExactSolution::TwoBody) => "poisson-two-body",
            (Equation::AllenCahn, ExactSolution::TwoBody) => "allen-cahn-two-body",
            (Equation::SineGordon, ExactSolution::TwoBody) => "sine-gordon-two-body",
            (Equation::Poisson, ExactSolution::ThreeBody) => "poisson-three-body",
            (Equation::AllenCahn, ExactSolution::ThreeBody) => "allen-cahn-three-body",
            (Equation::SineGordon, ExactSolution::ThreeBody) => "sine-gordon-three-body",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProblemKind {
    type Err = ProblemError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProblemKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ProblemError::UnknownName {
                name: s.to_owned(),
                known: Problem::list().join(", "),
            })
    }
}

/// Why a problem could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemError {
    /// The dimension leaves the exact solution without a single term.
    #[error("the {} exact solution needs dimension >= {min}, got {dim}", solution.name())]
    DimTooSmall {
        /// The exact solution asked for.
        solution: ExactSolution,
        /// The dimension asked for.
        dim: usize,
        /// The smallest dimension it accepts.
        min: usize,
    },
    /// A name that is not one of [`Problem::list`].
    #[error("unknown problem {name:?}; known problems: {known}")]
    UnknownName {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
}

/// One inseparable PDE on the unit ball of `R^dim`: equation, exact solution and its coefficients.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The equation `Δu + f(u) = g`.
    pub equation: Equation,
    /// The exact solution `u*`.
    pub solution: ExactSolution,
    /// The dimension `d`.
    pub dim: usize,
    /// `c_i`, one per term: `d − 1` for two-body, `d − 2` for three-body.
    pub coeffs: Vec<f64>,
}

impl Problem {
    /// The problem with coefficients drawn from `seed` ([`solution_coeffs`]).
    ///
    /// # Errors
    /// [`ProblemError::DimTooSmall`] if `dim` is below 2 (two-body) or 3 (three-body).
    pub fn new(
        equation: Equation,
        solution: ExactSolution,
        dim: usize,
        seed: u64,
    ) -> Result<Self, ProblemError> {
        let min = solution.min_dim();
        if dim < min {
            return Err(ProblemError::DimTooSmall { solution, dim, min });
        }
        Ok(Self {
            equation,
            solution,
            dim,
            coeffs: solution_coeffs(seed, solution.n_terms(dim)),
        })
    }

    /// [`Problem::new`] from a [`ProblemKind`].
    ///
    /// # Errors
    /// As [`Problem::new`].
    pub fn from_kind(kind: ProblemKind, dim: usize, seed: u64) -> Result<Self, ProblemError> {
        Self::new(kind.equation, kind.solution, dim, seed)
    }

    /// The names of the six problems, `"<equation>-<solution>"`.
    pub fn list() -> [&'static str; 6] {
        ProblemKind::ALL.map(ProblemKind::name)
    }

    /// The kind of this problem.
    pub fn kind(&self) -> ProblemKind {
        ProblemKind::new(self.equation, self.solution)
    }

    /// The name, e.g. `"sine-gordon-two-body"`.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    #[track_caller]
    fn check_point(&self, x: &[f64]) {
        assert_eq!(
            x.len(),
            self.dim,
            "point has {} coordinates, the problem has dim {}",
            x.len(),
            self.dim
        );
    }

    /// `u*(x)`.
    ///
    /// # Panics
    /// If `x.len() != dim`.
    #[track_caller]
    pub fn exact(&self, x: &[f64]) -> f64 {
        self.check_point(x);
        phi(x) * self.sum_terms(x)
    }

    /// `S(x) = u*(x)/φ(x)`, the sum of the terms.
    fn sum_terms(&self, x: &[f64]) -> f64 {
        match self.solution {
            ExactSolution::TwoBody => self
                .coeffs
                .iter()
                .zip(x.windows(2))
                .map(|(c, w)| c * two_body_theta(w[0], w[1]).sin())
                .sum(),
            ExactSolution::ThreeBody => self
                .coeffs
                .iter()
                .zip(x.windows(3))
                .map(|(c, w)| c * (w[0] * w[1] * w[2]).exp())
                .sum(),
        }
    }

    /// `∇u*(x)` into `out`: `∇u* = φ∇S − 2S·x`.
    ///
    /// # Panics
    /// If `x.len() != dim` or `out.len() != dim`.
    #[track_caller]
    pub fn gradient(&self, x: &[f64], out: &mut [f64]) {
        self.check_point(x);
        assert_eq!(out.len(), self.dim, "gradient: out has the wrong length");
        // ∇S first, then scale and add the φ-term in one pass.
        out.fill(0.0);
        let mut s = 0.0;
        match self.solution {
            ExactSolution::TwoBody => {
                for (i, (c, w)) in self.coeffs.iter().zip(x.windows(2)).enumerate() {
                    let (a, b) = (w[0], w[1]);
                    let theta = two_body_theta(a, b);
                    s += c * theta.sin();
                    let cc = c * theta.cos();
                    out[i] += cc * (1.0 - b * a.sin());
                    out[i + 1] += cc * (a.cos() - b.sin());
                }
            }
            ExactSolution::ThreeBody => {
                for (i, (c, w)) in self.coeffs.iter().zip(x.windows(3)).enumerate() {
                    let (a, b, e) = (w[0], w[1], w[2]);
                    let ce = c * (a * b * e).exp();
                    s += ce;
                    out[i] += ce * b * e;
                    out[i + 1] += ce * a * e;
                    out[i + 2] += ce * a * b;
                }
            }
        }
        let p = phi(x);
        for (g, &xi) in out.iter_mut().zip(x) {
            *g = p * *g - 2.0 * s * xi;
        }
    }

    /// `Δu*(x)` in closed form, O(d); the derivations are on [`ExactSolution`].
    ///
    /// # Panics
    /// If `x.len() != dim`.
    #[track_caller]
    pub fn laplacian(&self, x: &[f64]) -> f64 {
        self.check_point(x);
        let p = phi(x);
        let d = self.dim as f64;
        match self.solution {
            ExactSolution::TwoBody => {
                // Accumulate S, ΔS and x·∇S term by term, then combine as φΔS − 4x·∇S − 2dS.
                let (mut s, mut lap_s, mut x_grad_s) = (0.0, 0.0, 0.0);
                for (c, w) in self.coeffs.iter().zip(x.windows(2)) {
                    let (a, b) = (w[0], w[1]);
                    let (sin_a, cos_a) = a.sin_cos();
                    let (sin_b, cos_b) = b.sin_cos();
                    let (sin_t, cos_t) = (a + cos_b + b * cos_a).sin_cos();
                    let ta = 1.0 - b * sin_a;
                    let tb = cos_a - sin_b;
                    let taa = -b * cos_a;
                    let tbb = -cos_b;
                    s += c * sin_t;
                    lap_s += c * (cos_t * (taa + tbb) - sin_t * (ta * ta + tb * tb));
                    x_grad_s += c * cos_t * (a * ta + b * tb);
                }
                p * lap_s - 4.0 * x_grad_s - 2.0 * d * s
            }
            ExactSolution::ThreeBody => self
                .coeffs
                .iter()
                .zip(x.windows(3))
                .map(|(c, w)| {
                    let (a2, b2, e2) = (w[0] * w[0], w[1] * w[1], w[2] * w[2]);
                    let prod = w[0] * w[1] * w[2];
                    c * prod.exp() * (p * (a2 * b2 + b2 * e2 + a2 * e2) - 12.0 * prod - 2.0 * d)
                })
                .sum(),
        }
    }

    /// The equation's `f(u)` ([`Equation::nonlinearity`]).
    pub fn nonlinearity(&self, u: f64) -> f64 {
        self.equation.nonlinearity(u)
    }

    /// The equation's `f'(u)` ([`Equation::nonlinearity_deriv`]).
    pub fn nonlinearity_deriv(&self, u: f64) -> f64 {
        self.equation.nonlinearity_deriv(u)
    }

    /// The forcing `g(x) = Δu*(x) + f(u*(x))`.
    ///
    /// # Panics
    /// If `x.len() != dim`.
    #[track_caller]
    pub fn forcing(&self, x: &[f64]) -> f64 {
        self.laplacian(x) + self.nonlinearity(self.exact(x))
    }

    /// `u*` at each of the `n` points of the row-major `n × dim` array `points` (f32 or f64).
    ///
    /// # Panics
    /// If `points.len() != n·dim`.
    #[track_caller]
    pub fn exact_batch<T: Copy + Into<f64>>(&self, points: &[T], n: usize) -> Vec<f64> {
        self.map_rows(points, n, |p, x| p.exact(x))
    }

    /// `g` at each of the `n` points of the row-major `n × dim` array `points` (f32 or f64).
    ///
    /// # Panics
    /// If `points.len() != n·dim`.
    #[track_caller]
    pub fn forcing_batch<T: Copy + Into<f64>>(&self, points: &[T], n: usize) -> Vec<f64> {
        self.map_rows(points, n, |p, x| p.forcing(x))
    }

    /// Applies `f` to each row, converted to f64 in one reused buffer.
    #[track_caller]
    fn map_rows<T: Copy + Into<f64>>(
        &self,
        points: &[T],
        n: usize,
        f: impl Fn(&Self, &[f64]) -> f64,
    ) -> Vec<f64> {
        assert_eq!(
            points.len(),
            n * self.dim,
            "points has {} values, expected n·dim = {n}·{}",
            points.len(),
            self.dim
        );
        let mut row = vec![0.0; self.dim];
        (0..n)
            .map(|i| {
                for (r, &v) in row
                    .iter_mut()
                    .zip(&points[i * self.dim..(i + 1) * self.dim])
                {
                    *r = v.into();
                }
                f(self, &row)
            })
            .collect()
    }
}

/// `φ(x) = 1 − ‖x‖²`, zero on the unit sphere.
fn phi(x: &[f64]) -> f64 {
    1.0 - x.iter().map(|v| v * v).sum::<f64>()
}

/// `θ = a + cos b + b cos a`, the argument of a two-body term.
fn two_body_theta(a: f64, b: f64) -> f64 {
    a + b.cos() + b * a.cos()
}
