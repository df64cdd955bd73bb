//! The floating-point operations and memory traffic of one training step, counted from the
//! configuration: the floor every speed figure is compared with.
//!
//! Counts follow the data flow of `train.rs` with the paper's network (`depth` linear layers of
//! `width` units, tanh). A multiply-add is two operations. Transcendentals are charged a nominal
//! cost (`TRANSCENDENTAL_FLOPS`), so the totals are a floor of the arithmetic a step must do, not
//! of the instructions a backend happens to run.

use crate::train::{EstimatorKind, TrainConfig};

/// Nominal operations charged for one `sin`, `cos`, `exp` or `ln`.
pub const TRANSCENDENTAL_FLOPS: f64 = 20.0;

/// Work of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCost {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes that must cross the memory bus at least once (parameters, their gradient and Adam
    /// state, the residual points), assuming the per-layer activations stay in cache.
    pub bytes: f64,
    /// Parameters.
    pub params: f64,
    /// Stacked jet rows per hidden layer.
    pub rows: f64,
}

impl StepCost {
    /// Counts the step of `cfg`.
    pub fn of(cfg: &TrainConfig) -> Self {
        let n = cfg.batch as f64;
        let d = cfg.dim as f64;
        let h = cfg.width as f64;
        let v = cfg.n_dirs() as f64;
        let hidden_layers = cfg.depth.saturating_sub(2) as f64;
        let blocks = if cfg.collapsed {
            2.0 + v
        } else {
            1.0 + 2.0 * v
        };
        let rows = n * blocks;
        let params = h * (d + 1.0) + hidden_layers * h * (h + 1.0) + h + 1.0;
        // Input layer: the primal product forward and its weight gradient; one-hot tangents are a
        // gather and a scatter of V columns, dense ones a V × d × h product each way.
        let mut flops = 2.0 * 2.0 * n * d * h;
        if cfg.estimator == EstimatorKind::Dense {
            flops += 2.0 * 2.0 * v * d * h;
        }
        // Hidden and output layers on every stacked row: forward, input cotangent, weight gradient.
        flops += 3.0 * 2.0 * rows * (hidden_layers * h * h + h);
        // Jet activations (order 2): about 10 operations forward and 20 backward per value.
        flops += 30.0 * rows * h * (cfg.depth as f64 - 1.0);
        // Sampling: a Box–Muller pair per two coordinates, plus the norm and scaling.
        flops += n * d * (TRANSCENDENTAL_FLOPS * 1.5 + 4.0);
        if cfg.estimator == EstimatorKind::Dense {
            flops += v * d;
        }
        // Forcing: sin and cos per coordinate of the two-body sum, a few products.
        flops += n * d * (2.0 * TRANSCENDENTAL_FLOPS + 15.0);
        // Adam: about 12 operations per parameter.
        flops += 12.0 * params;
        // Bytes: W1 read forward; its gradient read and written; Adam reads parameters, gradient and
        // both moments and writes all four; the points are written once and read three times.
        let w1 = h * d * 4.0;
        let mut bytes = w1 + 2.0 * w1 + 8.0 * params * 4.0 + 4.0 * n * d * 4.0;
        if cfg.estimator == EstimatorKind::Dense {
            bytes += 3.0 * v * d * 4.0;
        }
        Self {
            flops,
            bytes,
            params,
            rows,
        }
    }

    /// Counts the step of `cfg` under a probe plan on the problem-as-data path: `program_flops` is
    /// the work of the compiled programs per residual point (see [`program_flops`]).
    pub fn of_plan(
        cfg: &TrainConfig,
        plan: &crate::step_plan::StepPlan,
        program_flops: f64,
    ) -> Self {
        let n = cfg.batch as f64;
        let d = plan.stride as f64;
        let h = cfg.width as f64;
        let v = plan.n_dirs as f64;
        let k = plan.order as f64;
        let hidden_layers = cfg.depth.saturating_sub(2) as f64;
        let collapsed = cfg.collapsed && plan.collapsible;
        let blocks = if collapsed {
            1.0 + (k - 1.0) * v + 1.0
        } else {
            1.0 + k * v
        };
        let rows = n * blocks;
        let dense = plan.kind == crate::backend::ProbeKind::Dense;
        let (params, mut flops, w1) = match crate::shared::net_shape(cfg, plan.stride).1 {
            None => {
                let params = h * (d + 1.0) + hidden_layers * h * (h + 1.0) + h + 1.0;
                let mut flops = 2.0 * 2.0 * n * d * h;
                if dense {
                    flops += 2.0 * 2.0 * v * d * h;
                }
                (params, flops, h * d * 4.0)
            }
            Some(net) => {
                // The block map (one multiply-add per coordinate forward and one in its weight
                // adjoint), `tanh` on the block features, then a first layer on stacked rows of
                // `d/B + n_pass` inputs: forward, weight gradient and the features' cotangent.
                let f = (net.n_blocks + net.n_pass) as f64;
                let nb = net.n_blocks as f64;
                let params = h * (f + 1.0)
                    + hidden_layers * h * (h + 1.0)
                    + h
                    + 1.0
                    + net.block as f64
                    + 1.0;
                let mut flops = 2.0 * 2.0 * n * d + 3.0 * 2.0 * rows * f * h;
                flops += 15.0 * (k + 1.0) * rows * nb;
                if dense {
                    flops += 2.0 * 2.0 * v * d;
                }
                (params, flops, h * f * 4.0)
            }
        };
        flops += 3.0 * 2.0 * rows * (hidden_layers * h * h + h);
        // Jet activations: a Cauchy-product recurrence of about K + 1 terms per coefficient,
        // forward and adjoint.
        flops += 15.0 * (k + 1.0) * rows * h * (cfg.depth as f64 - 1.0);
        flops += n * d * (TRANSCENDENTAL_FLOPS * 1.5 + 4.0);
        flops += n * program_flops;
        flops += 12.0 * params;
        let mut bytes = w1 + 2.0 * w1 + 8.0 * params * 4.0 + 4.0 * n * d * 4.0;
        if dense {
            bytes += 3.0 * v * d * 4.0;
        }
        Self {
            flops,
            bytes,
            params,
            rows,
        }
    }

    /// The shortest possible step in seconds on a machine with the given peak arithmetic rate
    /// (operations per second) and memory bandwidth (bytes per second).
    pub fn floor_seconds(&self, flops_per_second: f64, bytes_per_second: f64) -> f64 {
        (self.flops / flops_per_second).max(self.bytes / bytes_per_second)
    }
}

/// The arithmetic of one primal evaluation of a program at one point: every loop body once per
/// window, the main body once, transcendentals at [`TRANSCENDENTAL_FLOPS`].
pub fn program_flops(p: &crate::program::Program) -> f64 {
    use crate::program::Op;
    let cost = |ops: &[Op]| -> f64 {
        ops.iter()
            .map(|op| match op {
                Op::Call(..) | Op::Pow(..) => TRANSCENDENTAL_FLOPS,
                Op::PowInt(_, n) => f64::from(n.unsigned_abs().max(1)),
                Op::Add(..) | Op::Sub(..) | Op::Mul(..) | Op::Div(..) | Op::Neg(_) => 1.0,
                Op::Min(..) | Op::Max(..) => 1.0,
                _ => 0.0,
            })
            .sum()
    };
    let loops: f64 = p
        .loops
        .iter()
        .map(|l| {
            f64::from(l.hi.saturating_sub(l.lo)) * (cost(&l.nodes) + l.accumulators.len() as f64)
        })
        .sum();
    loops + cost(&p.nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_layer_dominates_at_high_dimension() {
        let cfg = TrainConfig {
            dim: 1_000_000,
            ..TrainConfig::default()
        };
        let cost = StepCost::of(&cfg);
        let input_layer = 4.0 * 100.0 * 1e6 * 128.0;
        assert!(
            cost.flops > input_layer && cost.flops < 1.5 * input_layer,
            "{cost:?}"
        );
        assert_eq!(
            cost.params,
            128.0 * 1_000_001.0 + 2.0 * 128.0 * 129.0 + 129.0
        );
        // Collapsed Laplacian: 2 + V blocks of N rows.
        assert_eq!(cost.rows, 100.0 * 18.0);
        let floor = cost.floor_seconds(1e11, 1e10);
        assert!((floor - (cost.flops / 1e11).max(cost.bytes / 1e10)).abs() < 1e-15);
    }

    #[test]
    fn collapsing_removes_v_minus_one_blocks() {
        let collapsed = StepCost::of(&TrainConfig::default());
        let full = StepCost::of(&TrainConfig {
            collapsed: false,
            ..TrainConfig::default()
        });
        assert_eq!(full.rows - collapsed.rows, 100.0 * 15.0);
        assert!(full.flops > collapsed.flops);
    }
}
