//! The residual-gradient (gPINN) loss as programs: the loss program that combines the paired 7-jet
//! features of [`GradientPairs`] into `w·(r² + C·‖∇ₓr‖²)` with its feature cotangents, and the
//! program of the residual's explicit parts `h_m(x, t)` whose series gives `∂_j h_m`.
//!
//! No backend differentiates anything: `∂r/∂T_k`, `∂r/∂u` and `∂r/∂h_m` are symbolic derivatives
//! of the split residual `Ψ` ([`ResidualGradient`]), lowered with the rest.

use crate::expr::diff::{diff, simplify, Var};
use crate::expr::{BinOp, Expr, ExprError, ExprKind, Scope};
use crate::problem::{substitute, ResidualGradient};
use crate::program::{lower, Program};
use crate::step_plan::GradientPairs;

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::new(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}

fn num(v: f64) -> Expr {
    Expr::new(ExprKind::Const(v))
}

fn term(name: &str) -> Expr {
    Expr::new(ExprKind::Term(name.to_owned()))
}

fn sum(items: impl IntoIterator<Item = Expr>) -> Expr {
    items
        .into_iter()
        .reduce(|a, b| bin(BinOp::Add, a, b))
        .unwrap_or_else(|| num(0.0))
}

/// The feature name of `∂_{j_q} h_m`, read after the readout's features.
pub fn explicit_feature_name(m: usize, q: usize) -> String {
    format!("#dh{m}.{q}")
}

/// Feature columns of the residual group: `u`, the readout terms, then `∂_{j_q} h_m` at column
/// `1 + n_readout + m·Q + q`.
pub fn n_features(rg: &ResidualGradient, pairs: GradientPairs) -> usize {
    1 + pairs.n_readout_terms() + rg.explicit.len() * pairs.slots
}

/// The program of the explicit parts `[h_1, …, h_M]` (reads `x`, `t` and the parameters), run in
/// series mode along the pairs' jets; `None` when the residual has none.
///
/// # Errors
/// An expression that does not lower (a defect after checking).
pub fn explicit_program(
    rg: &ResidualGradient,
    data_scope: &Scope,
) -> Result<Option<Program>, ExprError> {
    if rg.explicit.is_empty() {
        return Ok(None);
    }
    lower::lower(&rg.explicit, data_scope).map(Some)
}

/// The loss program of the residual group with a residual gradient: reads `u`, the readout terms
/// named `readout` (the plan's terms) and the `∂_{j_q} h_m` features; outputs the cotangents of `u`
/// and of every readout term (`(1/N)·∂L/∂f`), then the per-point loss
/// `L = w·(r² + (C/Q)·Σ_q D^a_q·D^b_q)` with `D_q = Σ_k ∂Ψ/∂T_k·∂_{j_q}T_k + ∂Ψ/∂u·u_{j_q} +
/// Σ_m ∂Ψ/∂h_m·∂_{j_q}h_m` (`D^b = D^a` and `Q = d` under the exact estimator): unbiased for
/// `w·(r² + C·mean_j (∂_j r)²)`.
///
/// # Errors
/// A residual that cannot be differentiated or lowered.
pub fn loss_program(
    rg: &ResidualGradient,
    pairs: GradientPairs,
    scope: &Scope,
    readout: &[String],
    weight: f64,
    n_points: usize,
) -> Result<Program, ExprError> {
    let dim = scope.dim;
    let base = &scope.terms;
    let explicit: Vec<(String, Expr)> = rg
        .explicit
        .iter()
        .enumerate()
        .map(|(m, h)| (ResidualGradient::explicit_name(m), h.clone()))
        .collect();
    let solution = Expr::new(ExprKind::Solution);
    // Symbolic parts of Ψ, then with the h_m written back in x.
    let back = |e: &Expr| simplify(&substitute(e, &solution, &explicit));
    let partial =
        |v: &Var| -> Result<Expr, ExprError> { Ok(back(&simplify(&diff(&rg.psi, v, dim)?))) };
    let r = back(&rg.psi);
    let p_u = partial(&Var::Solution)?;
    let p_terms = base
        .iter()
        .map(|t| partial(&Var::Term(t.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let p_explicit = explicit
        .iter()
        .map(|(name, _)| partial(&Var::Term(name.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let d_of = |b: bool, q: usize| {
        let mut parts = vec![bin(
            BinOp::Mul,
            p_u.clone(),
            term(&readout[pairs.first_derivative(q)]),
        )];
        for (k, p) in p_terms.iter().enumerate() {
            parts.push(bin(
                BinOp::Mul,
                p.clone(),
                term(&readout[pairs.term_derivative(b, q, k)]),
            ));
        }
        for (m, p) in p_explicit.iter().enumerate() {
            parts.push(bin(
                BinOp::Mul,
                p.clone(),
                term(&explicit_feature_name(m, q)),
            ));
        }
        sum(parts)
    };
    let products = sum((0..pairs.slots).map(|q| {
        let a = d_of(false, q);
        let b = if pairs.paired {
            d_of(true, q)
        } else {
            a.clone()
        };
        bin(BinOp::Mul, a, b)
    }));
    // (d/Q)·Σ_q estimates ‖∇ₓr‖²; the loss takes its mean over the d coordinates.
    let scale = 1.0 / pairs.slots as f64;
    let loss = bin(
        BinOp::Mul,
        num(weight),
        bin(
            BinOp::Add,
            bin(BinOp::Pow, r, num(2.0)),
            bin(BinOp::Mul, num(rg.weight * scale), products),
        ),
    );
    let inv_n = num(1.0 / n_points as f64);
    let mut outs = Vec::new();
    let mut vars = vec![Var::Solution];
    vars.extend(readout.iter().map(|t| Var::Term(t.clone())));
    for v in &vars {
        let g = simplify(&diff(&loss, v, dim)?);
        outs.push(bin(BinOp::Mul, inv_n.clone(), g));
    }
    outs.push(loss);
    let mut terms = readout.to_vec();
    for m in 0..rg.explicit.len() {
        for q in 0..pairs.slots {
            terms.push(explicit_feature_name(m, q));
        }
    }
    let scope = Scope {
        terms,
        ..scope.clone()
    };
    lower::lower(&outs, &scope)
}
