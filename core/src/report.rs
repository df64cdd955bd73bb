//! What `stde plan` prints: a problem at one dimension, its terms and residual, the probe plan with
//! its contamination analysis and unbiasedness, and the floating-point work and memory traffic of a
//! step.

use std::fmt::Write as _;

use crate::cost::{program_flops, StepCost};
use crate::problem::{ProblemSpec, Rhs};
use crate::step_plan::StepPlan;
use crate::train::TrainConfig;
use crate::trainer::loss_program;

/// Why a plan cannot be reported.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// The problem does not instantiate at this dimension.
    #[error(transparent)]
    Instance(#[from] crate::problem::InstanceError),
    /// The terms cannot be estimated as asked.
    #[error(transparent)]
    Plan(#[from] crate::step_plan::StepPlanError),
    /// An expression does not lower.
    #[error(transparent)]
    Expr(#[from] crate::expr::ExprError),
    /// A configuration value out of range.
    #[error(transparent)]
    Config(#[from] crate::train::ConfigError),
}

/// The report of `spec` under `cfg` (dimension, seed, estimator, `V`, sizes).
///
/// # Errors
/// [`ReportError`] when the configuration is out of range or the problem does not instantiate,
/// plan or lower at this configuration.
pub fn plan_report(spec: &ProblemSpec, cfg: &TrainConfig) -> Result<String, ReportError> {
    cfg.validate_generic()?;
    let inst = spec.instantiate(cfg.dim, cfg.seed)?;
    let plan = StepPlan::new(&inst, cfg.estimator, cfg.rand_dims)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "problem: {} (d = {}, seed {})",
        spec.name, cfg.dim, cfg.seed
    );
    if !spec.description.is_empty() {
        let _ = writeln!(s, "  {}", spec.description);
    }
    if let Some(t) = spec.time {
        let _ = writeln!(s, "  time: t in [0, {}]", t.end);
    }
    let _ = writeln!(s, "terms:");
    for t in &spec.terms {
        let _ = writeln!(s, "  {:<8} = {}", t.name, t.operator.describe_at(cfg.dim));
    }
    let _ = writeln!(
        s,
        "pde: {} = {}",
        spec.pde.lhs.text,
        match &spec.pde.rhs {
            Rhs::Manufactured =>
                "lhs applied to the exact solution (derived symbolically)".to_string(),
            Rhs::Expr(e) => e.text.clone(),
        }
    );
    let data = inst.data_program()?;
    let loss = loss_program(&inst.residual, &inst.scope, spec.pde.weight, cfg.batch)?;
    let size = |p: &crate::program::Program| {
        p.nodes.len() + p.loops.iter().map(|l| l.nodes.len()).sum::<usize>()
    };
    let _ = writeln!(
        s,
        "compiled: residual and cotangents {} nodes in {} loops, forcing and exact solution {} nodes",
        size(&loss),
        loss.loops.len(),
        size(&data)
    );
    for c in &inst.constraints {
        let points = c.points.unwrap_or(cfg.batch);
        let _ = writeln!(
            s,
            "soft constraint on {:?}{}: {points} points per step, weight {}",
            c.domain,
            c.at_time.map_or(String::new(), |t| format!(" at t = {t}")),
            c.weight
        );
        if let Some(g) = &c.gradient {
            let dirs = if cfg.estimator == crate::train::EstimatorKind::Exact {
                cfg.dim
            } else {
                cfg.rand_dims.min(cfg.dim)
            };
            let _ = writeln!(
                s,
                "  gradient matching, weight {}: ‖∇ₓe‖² from {dirs} one-hot 1-jets per point{} \
                 (unbiased)",
                g.weight,
                if dirs < cfg.dim {
                    format!(
                        ", coordinates drawn without replacement each step, scaled by d/V = {:.4}",
                        cfg.dim as f64 / dirs as f64
                    )
                } else {
                    ", every coordinate".into()
                }
            );
        }
    }
    if let Some(r) = &inst.reference {
        let _ = writeln!(
            s,
            "judged at one point ({}): {}",
            if r.point.len() > cfg.dim {
                format!("x = {}·1, t = {}", r.point[0], r.point[cfg.dim])
            } else {
                format!("x = {}·1", r.point.first().copied().unwrap_or(0.0))
            },
            match r.value {
                Some(v) => format!("reference value {v}"),
                None => "no reference value at this dimension".into(),
            }
        );
    }
    let _ = writeln!(
        s,
        "plan ({} estimator, V = {}):",
        cfg.estimator.name(),
        cfg.rand_dims
    );
    let _ = write!(s, "{}", plan.describe());
    let collapsed = cfg.collapsed && plan.collapsible;
    let shape = crate::batch::JetShape {
        order: plan.order,
        n_dirs: plan.n_dirs,
        n_points: cfg.batch,
        width: cfg.width,
        collapsed,
    };
    let _ = writeln!(
        s,
        "jet rows per hidden layer: {} ({} points × {} blocks{})",
        shape.n_rows(),
        cfg.batch,
        shape.n_blocks(),
        if collapsed {
            ", top coefficient collapsed"
        } else {
            ""
        }
    );
    if let (_, Some(net)) = crate::shared::net_shape(cfg, plan.stride) {
        let _ = writeln!(
            s,
            "weight sharing: {} blocks of B = {} coordinates, one shared {} → 1 map and tanh \
             ({} parameters), then the MLP on {} features{}",
            net.n_blocks,
            net.block,
            net.block,
            net.block + 1,
            net.n_blocks + net.n_pass,
            if net.n_pass > 0 {
                " (the time unshared)"
            } else {
                ""
            }
        );
    }
    let cost = StepCost::of_plan(cfg, &plan, program_flops(&loss) + program_flops(&data));
    let _ = writeln!(
        s,
        "work per step: {:.3e} FLOPs, {:.3e} bytes ({} parameters)",
        cost.flops, cost.bytes, cost.params
    );
    Ok(s)
}
