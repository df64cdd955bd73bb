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
}

/// The report of `spec` under `cfg` (dimension, seed, estimator, `V`, sizes).
///
/// # Errors
/// [`ReportError`] when the problem does not instantiate, plan or lower at this configuration.
pub fn plan_report(spec: &ProblemSpec, cfg: &TrainConfig) -> Result<String, ReportError> {
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
        let _ = writeln!(s, "  {:<8} = {}", t.name, t.operator.describe());
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
        let _ = writeln!(
            s,
            "soft constraint on {:?}{}: weight {}",
            c.domain,
            c.at_time.map_or(String::new(), |t| format!(" at t = {t}")),
            c.weight
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
    let cost = StepCost::of_plan(cfg, &plan, program_flops(&loss) + program_flops(&data));
    let _ = writeln!(
        s,
        "work per step: {:.3e} FLOPs, {:.3e} bytes ({} parameters)",
        cost.flops, cost.bytes, cost.params
    );
    Ok(s)
}
