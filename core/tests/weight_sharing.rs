//! Weight sharing (`share-blocks`): the host block map against the block map written as a dense
//! linear layer, the trainer's gradient of a shared network against an independent f64 jet
//! computation and central differences of its loss, the time column's path, the agreement of the
//! device evaluation with the host model, resumption and a falling loss.

#[path = "common/first_step.rs"]
mod first_step;

use first_step::first_step;
use stde_core::backend::host_step::{self, HostSlots};
use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{CpuBackend, ProbeKind, SharedBlocks};
use stde_core::batch::{JetBatch, JetShape};
use stde_core::mlp::ball_factor;
use stde_core::pde::Problem;
use stde_core::reference;
use stde_core::rng::{self, streams, Philox, PointSampler, TimeSampler};
use stde_core::series::Unary;
use stde_core::shared::{self, SharedNet};
use stde_core::train::{
    initial_params_for, ConfigError, EstimatorKind, HostState, TrainConfig, TrainError, Trainer,
};

fn uniform(stream: u32, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut out = vec![0.0f32; len];
    Philox::new(91).fill_uniform_f32(stream, 0, &mut out);
    out.iter().map(|&u| lo + (hi - lo) * f64::from(u)).collect()
}

/// The block map as one dense linear layer on the input jets: row `b` holds `w` at columns
/// `bB..bB+B`, bias `c`; the columns past the blocks (a time column) have zero weight.
fn dense_map(map: SharedBlocks, w: &[f64], c: f64) -> (Vec<f64>, Vec<f64>) {
    let mut m = vec![0.0; map.n_blocks * map.stride];
    for b in 0..map.n_blocks {
        m[b * map.stride + b * map.block..b * map.stride + (b + 1) * map.block].copy_from_slice(w);
    }
    (m, vec![c; map.n_blocks])
}

/// The input jets of slot probes on `points`: the primal, then coefficient `k` of direction `s`
/// equal to `v_k^s` at every point (the top slots summed when collapsed).
fn input_jets(
    shape: JetShape,
    stride: usize,
    points: &[f64],
    probes: &HostSlots<'_, f64>,
) -> JetBatch {
    let mut x = JetBatch::zeros(shape.with_width(stride));
    for n in 0..shape.n_points {
        for i in 0..stride {
            x.set(0, 0, n, i, points[n * stride + i]);
        }
        for s in 0..shape.n_dirs {
            for k in 1..=shape.order {
                let mut v = vec![0.0; stride];
                match probes.kind {
                    ProbeKind::OneHot => {
                        let j = probes.slot_index[s * shape.order + k - 1];
                        if j != u32::MAX {
                            v[j as usize] = probes.slot_coeff[s * shape.order + k - 1];
                        }
                    }
                    ProbeKind::Dense if k == 1 => {
                        v.copy_from_slice(&probes.dense[s * stride..(s + 1) * stride]);
                    }
                    ProbeKind::Dense => {}
                }
                for (i, vi) in v.iter().enumerate() {
                    let b = shape.block(k, s);
                    let old = x.as_slice()[(b * shape.n_points + n) * stride + i];
                    x.as_mut_slice()[(b * shape.n_points + n) * stride + i] = old + vi;
                }
            }
        }
    }
    x
}

#[test]
fn host_block_map_equals_the_dense_linear_map() {
    for (block, n_blocks, n_pass) in [(3, 4, 0), (2, 5, 1), (1, 6, 1), (7, 2, 0)] {
        for kind in [ProbeKind::OneHot, ProbeKind::Dense] {
            for order in 0..=4 {
                for collapsed in [false, true] {
                    if collapsed && order == 0 {
                        continue;
                    }
                    let (np, v) = (3, 3);
                    let stride = block * n_blocks + n_pass;
                    let map = SharedBlocks {
                        block,
                        n_blocks,
                        stride,
                        offset: 2,
                    };
                    let shape = JetShape {
                        order,
                        n_dirs: v,
                        n_points: np,
                        width: n_blocks,
                        collapsed,
                    };
                    let points = uniform(1, np * stride, -1.0, 1.0);
                    let params = uniform(2, 2 + block + 1, -1.0, 1.0);
                    let slots = v * order.max(1);
                    let raw = uniform(3, slots, 0.0, 1.0);
                    // Every coordinate, the column past the blocks and empty slots appear.
                    let idx: Vec<u32> = (0..slots)
                        .map(|i| {
                            if i % 4 == 3 {
                                u32::MAX
                            } else {
                                ((raw[i] * stride as f64) as u32).min(stride as u32 - 1)
                            }
                        })
                        .collect();
                    let mut idx = idx;
                    if n_pass > 0 {
                        // The column past the blocks (a time): no block feature moves.
                        idx[0] = (stride - 1) as u32;
                    }
                    let coeff = uniform(4, slots, 0.5, 1.5);
                    let dense = uniform(5, v * stride, -1.0, 1.0);
                    let probes = HostSlots {
                        kind,
                        slot_index: &idx,
                        slot_coeff: &coeff,
                        dense: &dense,
                    };
                    let mut out = vec![f64::NAN; map.features(shape).len()];
                    host_step::shared_block_forward(
                        map, shape, &points, &probes, &params, &mut out,
                    );
                    let (m, bias) = dense_map(map, &params[2..2 + block], params[2 + block]);
                    let x = input_jets(shape, stride, &points, &probes);
                    let y = reference::linear_forward(x.as_ref(), &m, &bias);
                    let case = format!(
                        "B={block} blocks={n_blocks} extra={n_pass} {kind:?} K={order} \
                         collapsed={collapsed}"
                    );
                    for (i, (got, want)) in out.iter().zip(y.as_slice()).enumerate() {
                        assert!(
                            (got - want).abs() <= 1e-12,
                            "{case}: value {i}: {got} vs {want}"
                        );
                    }
                    // The adjoint against the dense layer's: ∂w_i sums ∂M over the blocks.
                    let ybar = uniform(6, map.features(shape).len(), -1.0, 1.0);
                    let full_bar = JetBatch::from_vec(map.features(shape), ybar.clone());
                    let mut gm = vec![0.0; m.len()];
                    let mut gb = vec![0.0; bias.len()];
                    reference::linear_adjoint(x.as_ref(), &m, full_bar.as_ref(), &mut gm, &mut gb);
                    let mut want = vec![0.0; block + 1];
                    for b in 0..n_blocks {
                        for i in 0..block {
                            want[i] += gm[b * stride + b * block + i];
                        }
                        want[block] += gb[b];
                    }
                    let mut grad = vec![0.25; params.len()];
                    host_step::shared_block_backward(
                        map, shape, &points, &probes, &ybar, &mut grad,
                    );
                    for (i, w) in want.iter().enumerate() {
                        let got = grad[2 + i] - 0.25;
                        assert!(
                            (got - w).abs() <= 1e-12 * (1.0 + w.abs()),
                            "{case}: ∂w[{i}] {got} vs {w}"
                        );
                    }
                    assert_eq!(&grad[..2], &[0.25, 0.25], "{case}: outside the block");
                }
            }
        }
    }
}

fn config(estimator: EstimatorKind, collapsed: bool, block: usize) -> TrainConfig {
    TrainConfig {
        equation: "sine-gordon-two-body".into(),
        dim: 6,
        steps: 10,
        batch: 4,
        rand_dims: 3,
        estimator,
        width: 8,
        depth: 3,
        seed: 7,
        test_points: 10,
        collapsed,
        share_blocks: Some(block),
        ..TrainConfig::default()
    }
}

/// The loss of the first step and its gradient in the shared layout, with the block map written
/// as a dense linear layer on the input jets and every other piece from the f64 reference
/// operations (no code of the backends or of `host_step`).
fn independent_loss_and_gradient(cfg: &TrainConfig, params: &[f64]) -> (f64, Vec<f64>) {
    let (mlp, net) = shared::net_shape(cfg, cfg.dim);
    let net: SharedNet = net.unwrap();
    let (points, probes) = first_step(cfg);
    let n = cfg.batch;
    let map = net.map();
    let (m, bias) = dense_map(
        map,
        &params[net.offset..net.offset + net.block],
        params[net.bias_offset()],
    );
    let x = probes.input_batch(&points, cfg.collapsed);
    let y = reference::linear_forward(x.as_ref(), &m, &bias);
    let h = reference::unary_forward(Unary::Tanh, y.as_ref());
    let features = net.feature_mlp(&mlp, params);
    let tape = features.jet_forward(h.clone());
    let factor = ball_factor(x.as_ref());
    let out = reference::mul_forward(factor.as_ref(), tape.output.as_ref());
    let est = probes.estimate(out.as_ref());
    let mut problem = Problem::from_kind(cfg.equation.parse().unwrap(), cfg.dim, cfg.seed).unwrap();
    for c in &mut problem.coeffs {
        *c = f64::from(*c as f32);
    }
    let mut loss = 0.0;
    let mut est_bar = vec![0.0; n];
    let mut u0_bar = vec![0.0; n];
    for p in 0..n {
        let xp = &points[p * cfg.dim..(p + 1) * cfg.dim];
        let u0 = out.get(0, 0, p, 0);
        let r = est[p] + problem.nonlinearity(u0) - problem.forcing(xp);
        loss += r * r / n as f64;
        est_bar[p] = 2.0 * r / n as f64;
        u0_bar[p] = 2.0 * r / n as f64 * problem.nonlinearity_deriv(u0);
    }
    let mut out_bar = probes.estimate_adjoint(out.shape(), &est_bar);
    for (p, g) in u0_bar.iter().enumerate() {
        out_bar.as_mut().add(0, 0, p, 0, *g);
    }
    let (_, mlp_bar) =
        reference::mul_adjoint(factor.as_ref(), tape.output.as_ref(), out_bar.as_ref());
    let mut grad = vec![0.0; params.len()];
    // Without a time column the feature network's parameters are the MLP's, in the same order.
    let h_bar = features.jet_backward(&tape, mlp_bar, &mut grad[..net.offset]);
    let y_bar = reference::unary_adjoint(Unary::Tanh, y.as_ref(), h_bar.as_ref());
    let mut gm = vec![0.0; m.len()];
    let mut gb = vec![0.0; bias.len()];
    reference::linear_adjoint(x.as_ref(), &m, y_bar.as_ref(), &mut gm, &mut gb);
    for b in 0..net.n_blocks {
        for i in 0..net.block {
            grad[net.offset + i] += gm[b * cfg.dim + b * net.block + i];
        }
        grad[net.bias_offset()] += gb[b];
    }
    (loss, grad)
}

#[test]
fn shared_trainer_gradient_matches_independent_jets_and_finite_differences() {
    for (estimator, collapsed, block) in [
        (EstimatorKind::Sparse, true, 2),
        (EstimatorKind::Sparse, false, 3),
        (EstimatorKind::Dense, true, 2),
        (EstimatorKind::Sparse, true, 6),
    ] {
        let cfg = config(estimator, collapsed, block);
        let params: Vec<f64> = initial_params_for(&cfg, cfg.dim)
            .iter()
            .map(|&p| f64::from(p))
            .collect();
        let (loss, expected) = independent_loss_and_gradient(&cfg, &params);
        let mut trainer = Trainer::new(&ReferenceBackend, cfg.clone(), None).unwrap();
        trainer.accumulate_gradient();
        let got = pollster::block_on(trainer.gradient()).unwrap();
        let got_loss = pollster::block_on(trainer.loss()).unwrap();
        let case = format!("{estimator:?} collapsed={collapsed} B={block}");
        assert_eq!(got.len(), expected.len(), "{case}");
        assert!(
            (got_loss - loss).abs() <= 1e-6 * loss.abs(),
            "{case}: loss {got_loss} vs {loss}"
        );
        let norm: f64 = expected.iter().map(|g| g * g).sum::<f64>().sqrt();
        assert!(norm > 0.0, "{case}: zero gradient");
        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (f64::from(g) - e).abs() <= 1e-6 * norm + 1e-6 * e.abs(),
                "{case}: parameter {i}: got {g}, expected {e}"
            );
        }
        // Central differences of the independent loss: every shared parameter, and some of the
        // MLP's (the first layer's, a hidden one's, the output bias).
        let net = trainer.shared_net().copied().unwrap();
        let mut check: Vec<usize> = (net.offset..=net.bias_offset()).collect();
        check.extend([0, 5, net.n_blocks * cfg.width + 1, net.offset - 1]);
        let step = 1e-5;
        for i in check {
            let mut plus = params.clone();
            let mut minus = params.clone();
            plus[i] += step;
            minus[i] -= step;
            let fd = (independent_loss_and_gradient(&cfg, &plus).0
                - independent_loss_and_gradient(&cfg, &minus).0)
                / (2.0 * step);
            assert!(
                (fd - expected[i]).abs() <= 1e-6 * norm + 1e-5 * fd.abs(),
                "{case}: parameter {i}: finite difference {fd}, gradient {}",
                expected[i]
            );
        }
    }
}

fn heat_config(block: usize) -> TrainConfig {
    TrainConfig {
        equation: "heat".into(),
        dim: 4,
        steps: 10,
        batch: 5,
        rand_dims: 4,
        estimator: EstimatorKind::Exact,
        width: 6,
        depth: 3,
        seed: 3,
        test_points: 16,
        share_blocks: Some(block),
        ..TrainConfig::default()
    }
}

fn trainer_at<'b>(
    be: &'b ReferenceBackend,
    cfg: &TrainConfig,
    params: Vec<f32>,
) -> Trainer<'b, ReferenceBackend> {
    let n = params.len();
    let state = HostState {
        params,
        adam_m: vec![0.0; n],
        adam_v: vec![0.0; n],
        progress: stde_core::train::Progress {
            step: 0,
            best: None,
            last: None,
        },
    };
    Trainer::new(be, cfg.clone(), Some(state)).unwrap()
}

/// With a time column the time reaches the MLP unshared (weights `W1t`): the gradient of the time
/// weights, of `w` and of `c` matches central differences of the trainer's own loss (read back in
/// f32, hence the steps of `2^-8` and the looser bound).
#[test]
fn shared_gradient_with_a_time_column_matches_finite_differences() {
    let be = ReferenceBackend;
    let cfg = heat_config(2);
    let mut t = Trainer::new(&be, cfg.clone(), None).unwrap();
    let net = t.shared_net().copied().unwrap();
    assert_eq!((net.n_blocks, net.n_pass), (2, 1));
    t.accumulate_gradient();
    let grad = pollster::block_on(t.gradient()).unwrap();
    let params = pollster::block_on(t.host_state()).unwrap().params;
    let gmax = grad.iter().fold(0.0f32, |a, g| a.max(g.abs()));
    let mut check: Vec<usize> = (net.offset..=net.bias_offset()).collect();
    check.extend(net.pass_weight_offset()..net.pass_weight_offset() + net.width);
    let step = 1.0 / 256.0;
    for i in check {
        let loss_at = |p: f32| {
            let mut ps = params.clone();
            ps[i] = p;
            let mut tr = trainer_at(&be, &cfg, ps);
            tr.accumulate_gradient();
            pollster::block_on(tr.loss()).unwrap()
        };
        let (hi, lo) = (params[i] + step, params[i] - step);
        let fd = (loss_at(hi) - loss_at(lo)) / f64::from(hi - lo);
        let g = f64::from(grad[i]);
        assert!(
            (fd - g).abs() <= 2e-3 * f64::from(gmax) + 1e-2 * g.abs(),
            "parameter {i}: finite difference {fd}, gradient {g}"
        );
    }
    // The time weights are used: their gradient is not zero.
    let tw = &grad[net.pass_weight_offset()..net.pass_weight_offset() + net.width];
    assert!(tw.iter().any(|g| g.abs() > 0.0), "{tw:?}");
}

/// The device evaluation (block map, `tanh`, the time column's product) gives the relative error
/// that the host model gives on the same test points, with and without a time column.
#[test]
fn device_evaluation_matches_the_host_model() {
    let cpu = CpuBackend::new();
    for (cfg, time) in [
        (config(EstimatorKind::Sparse, true, 3), TimeSampler::None),
        (heat_config(2), TimeSampler::Uniform { end: 1.0 }),
    ] {
        let mut t = Trainer::new(&cpu, cfg.clone(), None).unwrap();
        for _ in 0..3 {
            t.step();
        }
        let eval = pollster::block_on(t.evaluate()).unwrap();
        let stride = t.input_width();
        let mut pts = vec![0.0f32; cfg.test_points * stride];
        rng::sample_points_from(
            cfg.seed,
            PointSampler::Ball,
            time,
            streams::TEST_POINTS,
            0,
            0,
            cfg.test_points,
            cfg.dim,
            &mut pts,
        );
        let pts: Vec<f64> = pts.iter().map(|&p| f64::from(p)).collect();
        let u = pollster::block_on(t.predict(&pts)).unwrap();
        let exact = t.exact_at(&pts).unwrap();
        let diff: f64 = u.iter().zip(&exact).map(|(a, b)| (a - b) * (a - b)).sum();
        let norm: f64 = exact.iter().map(|b| b * b).sum();
        let host = (diff / norm).sqrt();
        assert!(
            (host - eval.rel_l2).abs() <= 1e-4 * host,
            "{}: host {host} vs device {}",
            cfg.equation,
            eval.rel_l2
        );
    }
}

/// The initial parameters follow the documented layout and bounds: the MLP's first layer
/// `U(±1/√(d/B + n_pass))`, `w` and `c` `U(±1/√B)`.
#[test]
fn initial_shared_parameters_have_the_documented_bounds() {
    let cfg = TrainConfig {
        dim: 400,
        width: 16,
        share_blocks: Some(25),
        ..heat_config(25)
    };
    let stride = cfg.dim + 1;
    let p = initial_params_for(&cfg, stride);
    let (mlp, net) = shared::net_shape(&cfg, stride);
    let net = net.unwrap();
    assert_eq!(p.len(), mlp.n_params() + net.n_params());
    assert_eq!(net.n_params(), 25 + 1 + 16);
    let first = 1.0 / ((net.n_blocks + 1) as f32).sqrt();
    let (_, b1) = mlp.offsets(0);
    let layer0 = p[..b1 + 16].iter().chain(&p[net.pass_weight_offset()..]);
    for v in layer0 {
        assert!(v.abs() <= first, "{v} beyond {first}");
    }
    let block = &p[net.offset..=net.bias_offset()];
    let bound = 1.0 / 5.0;
    assert!(block.iter().all(|v| v.abs() <= bound), "{block:?}");
    // Not all at the edge of a narrower range: the block's draws spread over theirs.
    assert!(block.iter().any(|v| v.abs() > bound / 2.0), "{block:?}");
}

/// A shared run resumed from its state continues exactly as the uninterrupted run, and a state of
/// another size is refused.
#[test]
fn shared_run_resumes_bit_for_bit() {
    let cpu = CpuBackend::new();
    let cfg = config(EstimatorKind::Sparse, true, 2);
    let mut whole = Trainer::new(&cpu, cfg.clone(), None).unwrap();
    for _ in 0..6 {
        whole.step();
    }
    let mut first = Trainer::new(&cpu, cfg.clone(), None).unwrap();
    for _ in 0..3 {
        first.step();
    }
    let state = pollster::block_on(first.host_state()).unwrap();
    let mut second = Trainer::new(&cpu, cfg.clone(), Some(state.clone())).unwrap();
    for _ in 0..3 {
        second.step();
    }
    let a = pollster::block_on(whole.host_state()).unwrap();
    let b = pollster::block_on(second.host_state()).unwrap();
    assert_eq!(a, b);
    let other = TrainConfig {
        share_blocks: Some(3),
        ..cfg
    };
    match Trainer::new(&cpu, other, Some(state)) {
        Err(TrainError::Config(ConfigError::Invalid { field, .. })) => assert_eq!(field, "resume"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// Training a shared network lowers the loss (sine-gordon-two-body at 100 D, blocks of 10).
#[test]
fn shared_training_lowers_the_loss() {
    let cpu = CpuBackend::new();
    let cfg = TrainConfig {
        equation: "sine-gordon-two-body".into(),
        dim: 100,
        steps: 300,
        batch: 50,
        width: 32,
        depth: 3,
        lr: 3e-3,
        seed: 1,
        test_points: 500,
        share_blocks: Some(10),
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(&cpu, cfg.clone(), None).unwrap();
    let mut losses = Vec::new();
    let before = pollster::block_on(t.evaluate()).unwrap();
    for _ in 0..cfg.steps {
        t.accumulate_gradient();
        losses.push(pollster::block_on(t.loss()).unwrap());
        t.apply_update();
    }
    let after = pollster::block_on(t.evaluate()).unwrap();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (start, end) = (mean(&losses[..20]), mean(&losses[losses.len() - 20..]));
    assert!(end < start / 10.0, "loss {start} → {end}");
    assert!(
        after.rel_l2 < before.rel_l2 / 2.0,
        "rel L2 {} → {}",
        before.rel_l2,
        after.rel_l2
    );
}

#[test]
fn bad_share_blocks_are_refused_naming_the_field() {
    for (dim, block, phrase) in [
        (6, 0, "at least 1"),
        (6, 4, "does not divide d = 6"),
        (6, 7, "larger than d = 6"),
    ] {
        let cfg = TrainConfig {
            dim,
            share_blocks: Some(block),
            ..config(EstimatorKind::Sparse, true, 2)
        };
        let err = cfg.validate_generic().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid share-blocks: ") && msg.contains(phrase),
            "{msg}"
        );
        assert!(Trainer::new(&ReferenceBackend, cfg, None).is_err());
    }
    // With a time column, B divides d, not the row length d + 1.
    let cfg = TrainConfig {
        dim: 5,
        ..heat_config(3)
    };
    let msg = cfg.validate_generic().unwrap_err().to_string();
    assert!(msg.contains("does not divide d = 5"), "{msg}");
    assert!(Trainer::new(&ReferenceBackend, heat_config(4), None).is_ok());
}
