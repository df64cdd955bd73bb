//! The points and probe directions of a training run's first step, as the trainer draws them
//! (ball points, sparse index sets or dense Rademacher tangents), for tests that recompute the
//! trainer's loss and gradient independently in f64.

use stde_core::estimator::{ProbeDirection, ProbeSet, Readout, Tangent};
use stde_core::rng::{self, streams, Philox};
use stde_core::train::{EstimatorKind, TrainConfig};

/// The first step's probes and points of `cfg` (a problem without time), as the trainer draws them.
pub fn first_step(cfg: &TrainConfig) -> (Vec<f64>, ProbeSet) {
    let (n, d, v) = (cfg.batch, cfg.dim, cfg.rand_dims);
    let mut pts32 = vec![0.0f32; n * d];
    rng::sample_ball_points(cfg.seed, streams::RESIDUAL_POINTS, 0, n, d, &mut pts32);
    let points: Vec<f64> = pts32.iter().map(|&p| f64::from(p)).collect();
    let (dirs, weight): (Vec<ProbeDirection>, f64) = match cfg.estimator {
        EstimatorKind::Sparse => {
            let mut idx = vec![0u32; v];
            rng::sample_index_set(cfg.seed, 0, d, v, &mut idx);
            let dirs = idx
                .iter()
                .map(|&i| ProbeDirection {
                    slots: vec![(
                        1,
                        Tangent::Basis {
                            index: i as usize,
                            scale: 1.0,
                        },
                    )],
                })
                .collect();
            (dirs, d as f64 / v as f64)
        }
        EstimatorKind::Dense => {
            let mut t = vec![0.0f32; v * d];
            Philox::new(cfg.seed).fill_rademacher_f32(streams::DENSE_TANGENTS, 0, &mut t);
            let dirs = t
                .chunks(d)
                .map(|row| ProbeDirection {
                    slots: vec![(
                        1,
                        Tangent::Dense(row.iter().map(|&x| f64::from(x)).collect()),
                    )],
                })
                .collect();
            (dirs, 1.0 / v as f64)
        }
        EstimatorKind::Exact => unreachable!("the exact estimator draws no directions"),
    };
    let n_dirs = dirs.len();
    let probes = ProbeSet {
        order: 2,
        dim: d,
        dirs,
        readouts: (0..n_dirs)
            .map(|dir| Readout {
                dir,
                order: 2,
                weight,
            })
            .collect(),
    };
    (points, probes)
}
