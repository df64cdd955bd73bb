//! Problems as data: the domain, the differential terms, the residual, the constraints, the exact
//! solution and the seeded parameters of a PDE, written once in the expression language of
//! [`crate::expr`] (in a TOML file or in Rust) and instantiated at a dimension and a seed.
//!
//! A backend never sees a problem: an instance lowers its expressions to [`Program`]s, which every
//! backend compiles, and its terms to operators of [`crate::estimator`], which the planner turns into
//! probe jets.
//!
//! A manufactured right-hand side (`rhs = "manufactured"`) is derived by core: the left-hand side is
//! applied symbolically to the exact solution (`u → u*`, each term → its operator applied to `u*`
//! with [`crate::expr::ops`]), so that no forcing is ever written by hand.

pub mod file;

use crate::expr::{self, Expr, ExprError, ExprKind, ParamShape, Scope};
use crate::program::{lower, Program};
use crate::rng::Philox;

pub use file::{read, ProblemFileError};

/// Where points are drawn from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Domain {
    /// The paper's unit-ball sampler: radius uniform in `[0, 1]` times a normalised Gaussian
    /// direction (not uniform in volume).
    Ball,
    /// The unit sphere: a normalised Gaussian direction.
    Sphere,
    /// Every coordinate uniform in `[lo, hi]`.
    Box {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
    },
    /// Every coordinate normal with standard deviation `std`.
    Gaussian {
        /// Standard deviation.
        std: f64,
    },
    /// `t ~ U[0, T]` and `x ~ N(0, 2t·I)`: the marginal of `dX = √2 dW` from `X₀ = 0` (needs time).
    SdeMarginal,
}

/// The time interval `[0, end]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeSpec {
    /// `T`.
    pub end: f64,
}

/// How a parameter's values are set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    /// Every element equal to this value.
    Value(f64),
    /// `scale·N(0, 1)` from the run's seed.
    Normal {
        /// Multiplier.
        scale: f64,
    },
    /// `scale·U[−1, 1]` from the run's seed.
    Uniform {
        /// Multiplier.
        scale: f64,
    },
}

/// A named parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Its name in expressions.
    pub name: String,
    /// Scalar or array.
    pub shape: ParamShape,
    /// Its values.
    pub init: ParamInit,
}

/// A linear differential operator applied to `u`, whose value a term names.
#[derive(Clone, Debug, PartialEq)]
pub enum TermOperator {
    /// `Δu`.
    Laplacian,
    /// `Δ²u`.
    Biharmonic,
    /// `∂u/∂t`.
    TimeDerivative,
    /// `Σ_j ∂^k u/∂x_j^k`.
    Diagonal {
        /// `k`.
        order: usize,
    },
    /// One mixed partial `∂^{|α|}u/∂x^α`, given as `(coordinate, order)` pairs. Coordinates are
    /// the columns of a point row: `0..d` are `x_0 … x_{d−1}` and, in a problem with time, `d` is
    /// `t` (so `u_ty` at `d = 2` is `[[1, 1], [2, 1]]`). A problem that differentiates in `t` this
    /// way has one dimension (`min-dim = max-dim`), so that the index means one variable.
    Partial {
        /// `α`.
        index: Vec<(usize, u32)>,
    },
    /// `Σ_i ∂^{q_0}_{x_i} ∂^{q_1}_{x_{i+1}} … u` over every window of `len(orders)` coordinates.
    MixedWindow {
        /// `q_0, q_1, …`.
        orders: Vec<u32>,
    },
    /// `b·∇u = Σ_j b_j ∂u/∂x_j` for a parameter array `b` of length `d`.
    Directional {
        /// The parameter `b`.
        along: String,
    },
    /// The σ-weighted trace `½ tr(σσᵀ∇²u) = ½ Σ_j s_j² ∂²u/∂x_j²` of a diagonal `σ = diag(s)`, for a
    /// parameter array `s` of length `d` (the generator of `dX = σ dW`).
    SigmaTrace {
        /// The parameter `s`.
        along: String,
    },
}

impl TermOperator {
    /// A short name for messages and `stde plan`.
    pub fn describe(&self) -> String {
        match self {
            TermOperator::Laplacian => "Δu".into(),
            TermOperator::Biharmonic => "Δ²u".into(),
            TermOperator::TimeDerivative => "∂u/∂t".into(),
            TermOperator::Diagonal { order } => format!("Σ_j ∂^{order}u/∂x_j^{order}"),
            TermOperator::Partial { index } => {
                let total: u32 = index.iter().map(|&(_, q)| q).sum();
                let parts: String = index
                    .iter()
                    .map(|&(j, q)| format!("∂x{j}{}", power(q)))
                    .collect();
                format!("∂{}u/{parts}", power(total))
            }
            TermOperator::MixedWindow { orders } => {
                let total: u32 = orders.iter().sum();
                let parts: String = orders
                    .iter()
                    .enumerate()
                    .filter(|(_, &q)| q > 0)
                    .map(|(k, &q)| {
                        let var = if k == 0 {
                            "x_i".to_string()
                        } else {
                            format!("x_(i+{k})")
                        };
                        format!("∂{var}{}", power(q))
                    })
                    .collect();
                format!("Σ_i ∂{}u/{parts}", power(total))
            }
            TermOperator::Directional { along } => format!("{along}·∇u"),
            TermOperator::SigmaTrace { along } => format!("½ tr(σσᵀ∇²u), σ = diag({along})"),
        }
    }

    /// [`TermOperator::describe`] at dimension `dim`, where a partial's coordinate `dim` is the time
    /// and is written `t`.
    pub fn describe_at(&self, dim: usize) -> String {
        match self {
            TermOperator::Partial { index } => {
                let total: u32 = index.iter().map(|&(_, q)| q).sum();
                let parts: String = index
                    .iter()
                    .map(|&(j, q)| {
                        let var = if j == dim {
                            "t".to_string()
                        } else {
                            format!("x{j}")
                        };
                        format!("∂{var}{}", power(q))
                    })
                    .collect();
                format!("∂{}u/{parts}", power(total))
            }
            other => other.describe(),
        }
    }

    /// This operator applied to an expression, symbolically. A partial's coordinate `dim` is the
    /// time (see [`TermOperator::Partial`]).
    ///
    /// # Errors
    /// [`ExprError`] when the expression's structure has no symbolic form for this operator.
    pub fn apply(&self, e: &Expr, dim: usize) -> Result<Expr, ExprError> {
        match self {
            TermOperator::Laplacian => expr::ops::laplacian(e, dim),
            TermOperator::Biharmonic => expr::ops::biharmonic(e, dim),
            TermOperator::TimeDerivative => expr::ops::time_derivative(e),
            TermOperator::Diagonal { order } => expr::ops::diagonal(e, *order, dim),
            TermOperator::Partial { index } => {
                let space: Vec<(usize, u32)> =
                    index.iter().copied().filter(|&(j, _)| j != dim).collect();
                let mut out = expr::ops::partial(e, &space, dim)?;
                for _ in index
                    .iter()
                    .filter(|&&(j, _)| j == dim)
                    .flat_map(|&(_, q)| 0..q)
                {
                    out = expr::ops::time_derivative(&out)?;
                }
                Ok(out)
            }
            TermOperator::MixedWindow { orders } => {
                let w = orders.len();
                let mut total = Expr::new(ExprKind::Const(0.0));
                for i in 0..(dim + 1).saturating_sub(w) {
                    let index: Vec<(usize, u32)> = orders
                        .iter()
                        .enumerate()
                        .filter(|(_, &q)| q > 0)
                        .map(|(k, &q)| (i + k, q))
                        .collect();
                    let p = expr::ops::partial(e, &index, dim)?;
                    total = Expr::new(ExprKind::Binary(
                        expr::BinOp::Add,
                        Box::new(total),
                        Box::new(p),
                    ));
                }
                Ok(expr::diff::simplify(&total))
            }
            TermOperator::Directional { along } => expr::ops::directional(e, along, dim),
            TermOperator::SigmaTrace { along } => expr::ops::sigma_trace(e, along, dim),
        }
    }
}

/// `^q` in superscript digits (empty for 1).
fn power(q: u32) -> String {
    const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    if q == 1 {
        return String::new();
    }
    q.to_string()
        .chars()
        .map(|c| SUP[c.to_digit(10).unwrap_or(0) as usize])
        .collect()
}

/// A named term.
#[derive(Clone, Debug, PartialEq)]
pub struct TermSpec {
    /// Its name in expressions.
    pub name: String,
    /// The operator.
    pub operator: TermOperator,
    /// Where the term is declared, for errors about it that arise later (planning it under an
    /// estimator); `None` for a term built in Rust.
    pub place: Option<Place>,
}

/// A place in a problem file: the file (or the name of a built-in problem), 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Place {
    /// An error at this place.
    pub fn error(&self, message: impl Into<String>) -> ProblemFileError {
        ProblemFileError {
            file: self.file.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }
}

/// An expression with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The text.
    pub text: String,
    /// The file it came from (or the name of a built-in problem).
    pub file: String,
    /// Byte offset of the text in the file.
    pub start: usize,
    /// Line and column of the text's first character in the file.
    pub file_text_line_col: (usize, usize),
    /// The parsed (unchecked) expression.
    pub parsed: Expr,
}

impl Source {
    /// An expression built in Rust.
    pub fn built(parsed: Expr) -> Self {
        Self {
            text: parsed.to_string(),
            file: "<built>".into(),
            start: 0,
            file_text_line_col: (1, 1),
            parsed,
        }
    }

    /// `file:line:col: message` for an error inside this expression.
    pub fn locate(&self, e: &ExprError) -> ProblemFileError {
        let (line0, col0) = self.file_text_line_col;
        let (line, col) = if e.span.is_known() {
            let l = e.span.line as usize;
            if l == 1 {
                (line0, col0 + e.span.col as usize - 1)
            } else {
                (line0 + l - 1, e.span.col as usize)
            }
        } else {
            (line0, col0)
        };
        ProblemFileError {
            file: self.file.clone(),
            line,
            col,
            message: e.kind.to_string(),
        }
    }
}

/// The right-hand side of the PDE.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    /// The left-hand side applied to the exact solution (derived by core).
    Manufactured,
    /// A given forcing `g(x, t)`.
    Expr(Source),
}

/// The PDE `lhs(x, t, u, terms) = rhs(x, t)` on residual points from `domain`.
#[derive(Clone, Debug, PartialEq)]
pub struct PdeSpec {
    /// Where residual points come from.
    pub domain: Domain,
    /// The left-hand side.
    pub lhs: Source,
    /// The right-hand side.
    pub rhs: Rhs,
    /// Weight of the residual loss.
    pub weight: f64,
    /// `C` of the residual-gradient (gPINN) loss `weight·mean(r² + C·mean_j (∂r/∂x_j)²)` (0: none):
    /// the mean over the `d` coordinates, so that `C` weighs one component of `∇ₓr` whatever `d`.
    pub gradient_weight: f64,
    /// Coordinates `j` of `∂r/∂x_j` sampled per step by the sparse estimator, `Q` (default 1; see
    /// [`crate::step_plan::GradientPairs`]).
    pub gradient_coordinates: usize,
}

/// A soft constraint: `weight · (mean(e²) + gradient_weight · mean(‖∇ₓe‖²))` over points of
/// `domain` (at a fixed time, if given), where `e` is `equation`. The equation reads `x`, `t`, `u`,
/// the parameters, and `exact` for the exact solution; with gradient matching it must be affine in
/// `u` (`e = α(x, t)·u + β(x, t)`, as `u − g` is).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintSpec {
    /// Where its points come from.
    pub domain: Domain,
    /// A fixed time for its points (initial or terminal data).
    pub at_time: Option<f64>,
    /// The expression that should vanish.
    pub equation: Source,
    /// Loss weight.
    pub weight: f64,
    /// Weight `C_g` of the gradient-matching part (0: none).
    pub gradient_weight: f64,
    /// Points per step (else the run's batch).
    pub points: Option<usize>,
}

/// The value of the solution at one point, for problems judged there (the parabolic problems'
/// `u(0, 0)`): the point has every coordinate `x` and time `t`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceSpec {
    /// Every coordinate of the point.
    pub x: f64,
    /// The time of the point (0 without a time variable).
    pub t: f64,
    /// The value at every dimension, if it does not depend on it.
    pub value: Option<f64>,
    /// Values by dimension, sorted by dimension.
    pub by_dim: Vec<(usize, f64)>,
}

impl ReferenceSpec {
    /// The value at dimension `dim`, if known.
    pub fn value_at(&self, dim: usize) -> Option<f64> {
        self.value.or_else(|| {
            self.by_dim
                .iter()
                .find(|&&(d, _)| d == dim)
                .map(|&(_, v)| v)
        })
    }
}

/// A reference point resolved at one dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct PointReference {
    /// The point, one row of the input width (`d`, plus the time).
    pub point: Vec<f64>,
    /// The solution's value there, if known at this dimension (else training reports the model's
    /// value there without an error).
    pub value: Option<f64>,
}

/// Settings a problem suggests when the user gives none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Defaults {
    /// The estimator.
    pub estimator: Option<crate::train::EstimatorKind>,
    /// `V`.
    pub rand_dims: Option<usize>,
    /// How fixed jets are shared between terms (a problem built in Rust may ask for the naive plan
    /// of one pushforward per derivative, to measure what sharing saves).
    pub jets: crate::step_plan::JetSharing,
}

/// A problem, independent of dimension and seed.
#[derive(Clone, Debug, PartialEq)]
pub struct ProblemSpec {
    /// Suggested settings.
    pub defaults: Defaults,
    /// Name (`stde train --equation NAME`).
    pub name: String,
    /// One line for `stde list`.
    pub description: String,
    /// Smallest dimension.
    pub min_dim: usize,
    /// Largest dimension, if any.
    pub max_dim: Option<usize>,
    /// The time interval, for time-dependent problems.
    pub time: Option<TimeSpec>,
    /// Parameters, drawn from the seed.
    pub params: Vec<ParamSpec>,
    /// Differential terms.
    pub terms: Vec<TermSpec>,
    /// The PDE.
    pub pde: PdeSpec,
    /// The hard ansatz `u = A + B·network` (`A` defaults to 0, `B` to 1).
    pub ansatz: Option<(Option<Source>, Option<Source>)>,
    /// The exact solution, for evaluation and manufactured right-hand sides.
    pub exact: Option<Source>,
    /// Soft constraints.
    pub constraints: Vec<ConstraintSpec>,
    /// The solution's value at one point, for problems judged there.
    pub reference: Option<ReferenceSpec>,
}

/// Why a problem cannot be instantiated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InstanceError {
    /// The dimension is outside the problem's range.
    #[error("problem `{name}` needs dimension {range}, got {dim}")]
    Dim {
        /// Problem name.
        name: String,
        /// The range allowed.
        range: String,
        /// The dimension asked for.
        dim: usize,
    },
    /// An expression is invalid at this dimension, located in its file.
    #[error(transparent)]
    Expr(#[from] ProblemFileError),
    /// A manufactured right-hand side without an exact solution.
    #[error("problem `{0}` has rhs = \"manufactured\" but no [exact] solution")]
    NoExact(String),
}

/// A problem at one dimension and seed: checked expressions, parameter values, and the programs
/// the backends run.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The problem.
    pub spec: ProblemSpec,
    /// `d`.
    pub dim: usize,
    /// Names in scope for the residual.
    pub scope: Scope,
    /// All parameter values, back to back in scope order.
    pub params: Vec<f64>,
    /// The residual `lhs − rhs` (reads `u` and the terms).
    pub residual: Expr,
    /// The right-hand side `g(x, t)` (derived when manufactured).
    pub forcing: Expr,
    /// Ansatz factors `A` and `B`.
    pub ansatz: (Expr, Expr),
    /// The exact solution.
    pub exact: Option<Expr>,
    /// The soft constraints, checked, with `exact` replaced by the exact solution.
    pub constraints: Vec<Constraint>,
    /// The reference value at this dimension, for problems judged at one point.
    pub reference: Option<PointReference>,
    /// The residual-gradient (gPINN) loss, when `[pde]` gives a `gradient-weight`.
    pub residual_gradient: Option<ResidualGradient>,
}

/// The residual split for its gradient `∂r/∂x_j`: `r = Ψ(u, terms, h_1(x, t), …, h_M(x, t))`, where
/// the `h_m` are the maximal subexpressions of the residual that read the coordinates but neither
/// `u` nor a term (the forcing, a variable coefficient). Then
/// `∂_j r = Σ_k ∂Ψ/∂T_k·∂_j T_k + ∂Ψ/∂u·u_j + Σ_m ∂Ψ/∂h_m·∂_j h_m`: the model's derivatives come
/// from its jets, the `∂_j h_m` from the program of the `h_m` in series mode along the same probes.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualGradient {
    /// `C`.
    pub weight: f64,
    /// `Ψ`: the residual with `h_m` read as the term named [`ResidualGradient::explicit_name`]`(m)`.
    pub psi: Expr,
    /// The `h_m` (read `x`, `t` and the parameters).
    pub explicit: Vec<Expr>,
}

impl ResidualGradient {
    /// The name under which `Ψ` reads `h_m` (not a name the language can write).
    pub fn explicit_name(m: usize) -> String {
        format!("#h{m}")
    }
}

/// Whether `e` reads a coordinate (directly or through a reduction).
fn mentions_coord(e: &Expr) -> bool {
    reads_node(e, &|k| matches!(k, ExprKind::Coord(_)))
}

/// Whether `e` reads `u` or any term.
fn mentions_model(e: &Expr, terms: &[String]) -> bool {
    mentions_solution(e) || terms.iter().any(|t| mentions_term(e, t))
}

/// Replaces the maximal subexpressions of `e` that read coordinates but not the model by terms
/// `#h{m}`, pushing them onto `explicit`; `Err(span)` at a reduction that reads both.
fn split_explicit(
    e: &Expr,
    terms: &[String],
    explicit: &mut Vec<Expr>,
) -> Result<Expr, expr::Span> {
    if !mentions_coord(e) {
        return Ok(e.clone());
    }
    if !mentions_model(e, terms) {
        let name = ResidualGradient::explicit_name(explicit.len());
        explicit.push(e.clone());
        return Ok(Expr::at(ExprKind::Term(name), e.span));
    }
    let mut sub = |a: &Expr| split_explicit(a, terms, explicit).map(Box::new);
    let kind = match &e.kind {
        ExprKind::Call(f, a) => ExprKind::Call(*f, sub(a)?),
        ExprKind::Neg(a) => ExprKind::Neg(sub(a)?),
        ExprKind::Binary(op, a, b) => {
            let a = sub(a)?;
            ExprKind::Binary(*op, a, sub(b)?)
        }
        _ => return Err(e.span),
    };
    Ok(Expr::at(kind, e.span))
}

/// A soft constraint of an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// Where its points come from.
    pub domain: Domain,
    /// A fixed time for its points.
    pub at_time: Option<f64>,
    /// The expression that should vanish (reads `x`, `t`, `u` and the parameters).
    pub equation: Expr,
    /// Names in scope (no terms).
    pub scope: Scope,
    /// Loss weight.
    pub weight: f64,
    /// Gradient matching: `C_g` and the equation as `α(x, t)·u + β(x, t)`.
    pub gradient: Option<GradientMatch>,
    /// Points per step (else the run's batch).
    pub points: Option<usize>,
}

/// The gradient-matching part of a soft constraint: `C_g · mean(‖∇ₓe‖²)` with `e = α·u + β`, so that
/// `e` along a probe direction is the series of the ansatz `(α·A + β) + (α·B)·network`.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientMatch {
    /// `C_g`.
    pub weight: f64,
    /// `α = ∂e/∂u` (free of `u`).
    pub alpha: Expr,
    /// `β = e` at `u = 0`.
    pub beta: Expr,
}

/// Whether any node of `e` (inside reductions too) satisfies `leaf`.
fn reads_node(e: &Expr, leaf: &dyn Fn(&ExprKind) -> bool) -> bool {
    leaf(&e.kind)
        || match &e.kind {
            ExprKind::Call(_, a) | ExprKind::Neg(a) => reads_node(a, leaf),
            ExprKind::Binary(_, a, b) => reads_node(a, leaf) || reads_node(b, leaf),
            ExprKind::Reduce { body, .. } => reads_node(body, leaf),
            _ => false,
        }
}

/// Whether `e` reads the solution `u`.
fn mentions_solution(e: &Expr) -> bool {
    reads_node(e, &|k| matches!(k, ExprKind::Solution))
}

/// Whether `e` reads the term `name`.
fn mentions_term(e: &Expr, name: &str) -> bool {
    reads_node(e, &|k| matches!(k, ExprKind::Term(n) if n == name))
}

/// Replaces `u` by `solution` and each term by its value on the solution.
pub(crate) fn substitute(e: &Expr, solution: &Expr, term_values: &[(String, Expr)]) -> Expr {
    let sub = |a: &Expr| Box::new(substitute(a, solution, term_values));
    let kind = match &e.kind {
        ExprKind::Solution => return solution.clone(),
        ExprKind::Term(name) => {
            if let Some((_, v)) = term_values.iter().find(|(n, _)| n == name) {
                return v.clone();
            }
            e.kind.clone()
        }
        ExprKind::Call(f, a) => ExprKind::Call(*f, sub(a)),
        ExprKind::Neg(a) => ExprKind::Neg(sub(a)),
        ExprKind::Binary(op, a, b) => ExprKind::Binary(*op, sub(a), sub(b)),
        other => other.clone(),
    };
    Expr::at(kind, e.span)
}

impl ProblemSpec {
    /// The parameter values at `dim` from `seed`: array `k` (in declaration order) draws from
    /// stream 5 at step `k`, so the first array equals [`crate::rng::solution_coeffs`].
    pub fn draw_params(&self, dim: usize, seed: u64) -> Vec<Vec<f64>> {
        let philox = Philox::new(seed);
        self.params
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let len = match p.shape {
                    ParamShape::Scalar => 1,
                    ParamShape::Array(e) => e.at(dim).max(0) as usize,
                };
                (0..len)
                    .map(|i| match p.init {
                        ParamInit::Value(v) => v,
                        ParamInit::Normal { scale } => {
                            scale
                                * philox.normal_f64(
                                    crate::rng::streams::SOLUTION_COEFFS,
                                    k as u32,
                                    (i / 2) as u32,
                                )[i % 2]
                        }
                        ParamInit::Uniform { scale } => {
                            let w = philox.block(
                                crate::rng::streams::SOLUTION_COEFFS,
                                k as u32,
                                (i / 4) as u32,
                            )[i % 4];
                            scale * (2.0 * f64::from(crate::rng::uniform_f32(w)) - 1.0)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The problem at dimension `dim` with parameters from `seed`.
    ///
    /// # Errors
    /// [`InstanceError`] for a dimension out of range, an expression that does not check at this
    /// dimension (located in its file), or a right-hand side that cannot be derived.
    pub fn instantiate(&self, dim: usize, seed: u64) -> Result<Instance, InstanceError> {
        if dim < self.min_dim || self.max_dim.is_some_and(|m| dim > m) {
            let range = match self.max_dim {
                Some(m) => format!("{}..={m}", self.min_dim),
                None => format!(">= {}", self.min_dim),
            };
            return Err(InstanceError::Dim {
                name: self.name.clone(),
                range,
                dim,
            });
        }
        // Terms that read coordinates beyond `d` at this dimension, at their declaration.
        for t in &self.terms {
            let beyond = match &t.operator {
                TermOperator::Partial { index } => {
                    let time = self.time.is_some();
                    let fixed = self.max_dim == Some(self.min_dim);
                    index.iter().find_map(|&(j, _)| match j.cmp(&dim) {
                        std::cmp::Ordering::Less => None,
                        std::cmp::Ordering::Equal if time && fixed => None,
                        std::cmp::Ordering::Equal if time => Some(format!(
                            "coordinate {j} is the time t at d = {dim} but a space coordinate at \
                             larger d; a problem that differentiates in t through `index` needs \
                             min-dim = max-dim"
                        )),
                        _ => Some(format!(
                            "coordinate {j} is outside 0..{dim} (d = {dim}){}",
                            if time {
                                format!(", or {dim} for the time t")
                            } else {
                                String::new()
                            }
                        )),
                    })
                }
                TermOperator::MixedWindow { orders } if orders.len() > dim => Some(format!(
                    "a window of {} coordinates does not fit in d = {dim}",
                    orders.len()
                )),
                _ => None,
            };
            if let (Some(m), Some(place)) = (beyond, &t.place) {
                return Err(place.error(format!("term `{}`: {m}", t.name)).into());
            }
        }
        let scope = Scope {
            dim,
            has_time: self.time.is_some(),
            has_solution: true,
            terms: self.terms.iter().map(|t| t.name.clone()).collect(),
            params: self
                .params
                .iter()
                .map(|p| (p.name.clone(), p.shape.clone()))
                .collect(),
        };
        // The terms stay in scope, so that one read here is refused as a derivative of the
        // solution rather than as an unknown name.
        let data_scope = Scope {
            has_solution: false,
            ..scope.clone()
        };
        let check = |src: &Source, scope: &Scope| {
            expr::check::check(&src.parsed, scope).map_err(|e| src.locate(&e))
        };
        let lhs = check(&self.pde.lhs, &scope)?;
        let exact = self
            .exact
            .as_ref()
            .map(|s| check(s, &data_scope))
            .transpose()?;
        let forcing = match &self.pde.rhs {
            Rhs::Expr(src) => check(src, &data_scope)?,
            Rhs::Manufactured => {
                let u_star = exact
                    .as_ref()
                    .ok_or_else(|| InstanceError::NoExact(self.name.clone()))?;
                let src = self.exact.as_ref().map_or(&self.pde.lhs, |s| s);
                let mut values = Vec::new();
                for t in &self.terms {
                    let v = t.operator.apply(u_star, dim).map_err(|e| src.locate(&e))?;
                    values.push((t.name.clone(), v));
                }
                expr::diff::simplify(&substitute(&lhs, u_star, &values))
            }
        };
        let residual = Expr::new(ExprKind::Binary(
            expr::BinOp::Sub,
            Box::new(lhs),
            Box::new(forcing.clone()),
        ));
        let (a, b) = match &self.ansatz {
            None => (None, None),
            Some((a, b)) => (a.as_ref(), b.as_ref()),
        };
        let a = match a {
            Some(s) => check(s, &data_scope)?,
            None => Expr::new(ExprKind::Const(0.0)),
        };
        let b = match b {
            Some(s) => check(s, &data_scope)?,
            None => Expr::new(ExprKind::Const(1.0)),
        };
        let mut constraints = Vec::new();
        for c in &self.constraints {
            // `exact` names the exact solution inside a constraint.
            let with_exact = Scope {
                terms: vec!["exact".into()],
                ..scope.clone()
            };
            let checked =
                expr::check::check(&c.equation.parsed, &with_exact).map_err(|mut e| {
                    if let expr::ExprErrorKind::UndefinedTerm { name, .. } = &e.kind {
                        if self.terms.iter().any(|t| t.name == *name) {
                            e.kind = expr::ExprErrorKind::Type(format!(
                            "the term `{name}` cannot be used in a constraint, which reads x, t, \
                             u, the parameters and `exact`"
                        ));
                        }
                    }
                    InstanceError::from(c.equation.locate(&e))
                })?;
            let exact_value = match &exact {
                Some(e) => e.clone(),
                None if mentions_term(&checked, "exact") => {
                    return Err(InstanceError::NoExact(self.name.clone()))
                }
                None => Expr::new(ExprKind::Const(0.0)),
            };
            let equation = substitute(
                &checked,
                &Expr::new(ExprKind::Solution),
                &[("exact".into(), exact_value)],
            );
            let gradient = if c.gradient_weight > 0.0 {
                let alpha = expr::diff::simplify(
                    &expr::diff::diff(&equation, &expr::diff::Var::Solution, dim)
                        .map_err(|e| c.equation.locate(&e))?,
                );
                if mentions_solution(&alpha) {
                    return Err(c
                        .equation
                        .locate(&ExprError::new(
                            c.equation.parsed.span,
                            expr::ExprErrorKind::NotDerivable(
                                "gradient matching needs an equation affine in `u` (such as \
                                 `u - g`)"
                                    .into(),
                            ),
                        ))
                        .into());
                }
                let beta = expr::diff::simplify(&substitute(
                    &equation,
                    &Expr::new(ExprKind::Const(0.0)),
                    &[],
                ));
                Some(GradientMatch {
                    weight: c.gradient_weight,
                    alpha,
                    beta,
                })
            } else {
                None
            };
            constraints.push(Constraint {
                domain: c.domain,
                at_time: c.at_time,
                equation,
                scope: Scope {
                    terms: Vec::new(),
                    ..scope.clone()
                },
                weight: c.weight,
                gradient,
                points: c.points,
            });
        }
        let reference = match &self.reference {
            None => None,
            Some(rf) => {
                let value = rf.value_at(dim);
                let mut point = vec![rf.x; dim];
                if self.time.is_some() {
                    point.push(rf.t);
                }
                Some(PointReference { point, value })
            }
        };
        let residual_gradient = if self.pde.gradient_weight > 0.0 {
            let mut explicit = Vec::new();
            let psi = split_explicit(&residual, &scope.terms, &mut explicit).map_err(|span| {
                self.pde.lhs.locate(&ExprError::new(
                    span,
                    expr::ExprErrorKind::NotDerivable(
                        "the residual gradient (gradient-weight in [pde]) cannot differentiate a \
                         reduction over coordinates that reads `u` or a term"
                            .into(),
                    ),
                ))
            })?;
            Some(ResidualGradient {
                weight: self.pde.gradient_weight,
                psi,
                explicit,
            })
        } else {
            None
        };
        let params = self.draw_params(dim, seed).concat();
        Ok(Instance {
            spec: self.clone(),
            dim,
            scope,
            params,
            residual,
            forcing,
            ansatz: (a, b),
            exact,
            constraints,
            reference,
            residual_gradient,
        })
    }
}

impl Instance {
    /// The program of the forcing `g` and the exact solution `u*` (0 without one), for evaluation
    /// and tests.
    ///
    /// # Errors
    /// An expression that does not lower (a caller bug after checking, reported as an error).
    pub fn data_program(&self) -> Result<Program, ExprError> {
        let zero = Expr::new(ExprKind::Const(0.0));
        let exact = self.exact.as_ref().unwrap_or(&zero);
        lower::lower(&[self.forcing.clone(), exact.clone()], &self.data_scope())
    }

    /// The scope of expressions that read neither the solution nor the terms.
    pub fn data_scope(&self) -> Scope {
        Scope {
            has_solution: false,
            terms: Vec::new(),
            ..self.scope.clone()
        }
    }

    /// The ansatz program: outputs `A` and `B`, evaluated along the probe directions.
    ///
    /// # Errors
    /// As [`Instance::data_program`].
    pub fn ansatz_program(&self) -> Result<Program, ExprError> {
        lower::lower(
            &[self.ansatz.0.clone(), self.ansatz.1.clone()],
            &self.data_scope(),
        )
    }

    /// The program of a gradient-matching constraint's `e = α·u + β` as an ansatz: outputs
    /// `α·A + β` and `α·B`, so that the readout of the model gives the series of `e` itself.
    ///
    /// # Errors
    /// As [`Instance::data_program`].
    pub fn constraint_ansatz_program(&self, m: &GradientMatch) -> Result<Program, ExprError> {
        let (a, b) = &self.ansatz;
        let mul = |x: &Expr, y: &Expr| {
            Expr::new(ExprKind::Binary(
                expr::BinOp::Mul,
                Box::new(x.clone()),
                Box::new(y.clone()),
            ))
        };
        let shifted = Expr::new(ExprKind::Binary(
            expr::BinOp::Add,
            Box::new(mul(&m.alpha, a)),
            Box::new(m.beta.clone()),
        ));
        lower::lower(
            &[
                expr::diff::simplify(&shifted),
                expr::diff::simplify(&mul(&m.alpha, b)),
            ],
            &self.data_scope(),
        )
    }
}

/// The problems shipped with stde, as `(name, file text)`.
pub const BUILTIN: [(&str, &str); 18] = [
    (
        "poisson-two-body",
        include_str!("../../problems/poisson-two-body.toml"),
    ),
    (
        "allen-cahn-two-body",
        include_str!("../../problems/allen-cahn-two-body.toml"),
    ),
    (
        "sine-gordon-two-body",
        include_str!("../../problems/sine-gordon-two-body.toml"),
    ),
    (
        "poisson-three-body",
        include_str!("../../problems/poisson-three-body.toml"),
    ),
    (
        "allen-cahn-three-body",
        include_str!("../../problems/allen-cahn-three-body.toml"),
    ),
    (
        "sine-gordon-three-body",
        include_str!("../../problems/sine-gordon-three-body.toml"),
    ),
    ("biharmonic", include_str!("../../problems/biharmonic.toml")),
    (
        "advection-diffusion",
        include_str!("../../problems/advection-diffusion.toml"),
    ),
    (
        "third-order-mixed",
        include_str!("../../problems/third-order-mixed.toml"),
    ),
    ("heat", include_str!("../../problems/heat.toml")),
    (
        "heat-parabolic",
        include_str!("../../problems/heat-parabolic.toml"),
    ),
    (
        "allen-cahn-parabolic",
        include_str!("../../problems/allen-cahn-parabolic.toml"),
    ),
    (
        "sine-gordon-parabolic",
        include_str!("../../problems/sine-gordon-parabolic.toml"),
    ),
    ("kdv-2d", include_str!("../../problems/kdv-2d.toml")),
    ("kp-2d", include_str!("../../problems/kp-2d.toml")),
    ("gkdv-1d", include_str!("../../problems/gkdv-1d.toml")),
    (
        "allen-cahn-two-body-gpinn",
        include_str!("../../problems/allen-cahn-two-body-gpinn.toml"),
    ),
    (
        "sine-gordon-two-body-gpinn",
        include_str!("../../problems/sine-gordon-two-body-gpinn.toml"),
    ),
];

/// A shipped problem by name.
///
/// # Errors
/// `None` if no shipped problem has this name; a [`ProblemFileError`] would be a defect of the
/// shipped file (every one is read in the tests).
pub fn builtin(name: &str) -> Option<Result<ProblemSpec, ProblemFileError>> {
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| read(&format!("<built-in {n}>"), text))
}
