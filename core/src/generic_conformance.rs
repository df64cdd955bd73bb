//! The conformance suite of the generic step primitives ([`GenericStep`]): the input layer with
//! probes in any slot (one-hot and dense, collapsed or not, order 0 to 4, with a time column), the
//! shared block map of a weight-shared first block and its adjoint (likewise), the
//! ansatz-and-readout and its adjoint, and every point sampler, each checked against the f64
//! reference backend on random inputs at sizes that cross workgroup and SIMD boundaries.

use crate::backend::reference::ReferenceBackend;
use crate::backend::{
    Backend, GenericStep, PointSampling, ProbeKind, ReadoutShape, SharedBlocks, SlotProbes,
};
use crate::batch::JetShape;
use crate::conformance::{compare, dl, up, up_idx, CheckResult, Tolerance};
use crate::rng::{Philox, PointSampler, TimeSampler};

fn uniform(seed: u32, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut out = vec![0.0; len];
    Philox::new(77).fill_uniform_f32(1002, seed, &mut out);
    out.iter_mut().for_each(|v| *v = lo + (hi - lo) * *v);
    out
}

/// One-hot probes with a random subset of filled slots (slot 1 always), or dense rows.
fn probes(
    seed: u32,
    kind: ProbeKind,
    v: usize,
    k: usize,
    stride: usize,
) -> (Vec<u32>, Vec<f32>, Vec<f32>) {
    let u = uniform(seed, v * k * 2, 0.0, 1.0);
    let mut idx = vec![u32::MAX; v * k];
    let mut coeff = vec![0.0; v * k];
    for s in 0..v {
        for slot in 1..=k {
            let i = s * k + slot - 1;
            if slot == 1 || u[2 * i] < 0.5 {
                idx[i] = ((u[2 * i + 1] * stride as f32) as usize).min(stride - 1) as u32;
                coeff[i] = 0.25 + u[2 * i];
            }
        }
    }
    let dense = if kind == ProbeKind::Dense {
        uniform(seed + 1, v * stride, -1.0, 1.0)
    } else {
        vec![0.0]
    };
    (idx, coeff, dense)
}

/// The input layer with slot probes, forward and weight adjoint.
///
/// # Errors
/// The first value out of tolerance.
pub fn check_input_layer_slots<B: GenericStep>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    for (case, (np, stride, width, v, k, collapsed, kind)) in [
        (3, 5, 4, 2, 2, true, ProbeKind::OneHot),
        (7, 33, 20, 3, 3, false, ProbeKind::OneHot),
        (4, 17, 9, 5, 1, true, ProbeKind::Dense),
        (5, 6, 8, 2, 4, false, ProbeKind::OneHot),
        (2, 300, 65, 4, 2, false, ProbeKind::Dense),
        (6, 9, 7, 1, 0, false, ProbeKind::OneHot),
        (9, 257, 16, 16, 2, true, ProbeKind::OneHot),
    ]
    .into_iter()
    .enumerate()
    {
        let case = format!("input layer slots #{case} (N={np} D={stride} H={width} V={v} K={k} {kind:?} collapsed={collapsed})");
        let shape = JetShape {
            order: k,
            n_dirs: v,
            n_points: np,
            width,
            collapsed,
        };
        let pts = uniform(case.len() as u32, np * stride, -1.0, 1.0);
        let params = uniform(7, width * stride + width + 3, -0.5, 0.5);
        let (idx, coeff, dense) = probes(11, kind, v, k.max(1), stride);
        let zbar = uniform(13, shape.len(), -1.0, 1.0);
        let grad0 = uniform(17, params.len(), -0.1, 0.1);
        let run = |be_out: &mut dyn FnMut() -> (Vec<f32>, Vec<f32>)| be_out();
        let mut on_b = || {
            let (pb, qb, zb, ib, cb, db) = (
                up(b, &pts),
                up(b, &params),
                up(b, &zbar),
                up_idx(b, &idx),
                up(b, &coeff),
                up(b, &dense),
            );
            let sp = SlotProbes::<B> {
                kind,
                slot_index: &ib,
                slot_coeff: &cb,
                dense: &db,
            };
            let mut z = b.alloc(shape.len().max(1), "z").expect("alloc");
            b.input_layer_forward_slots(shape, stride, &pb, &sp, &qb, 0, &mut z);
            let mut g = up(b, &grad0);
            b.input_layer_backward_slots(shape, stride, &pb, &sp, &zb, &mut g, 0);
            (dl(b, &z, shape.len()), dl(b, &g, params.len()))
        };
        let got = run(&mut on_b);
        let mut on_r = || {
            let (pb, qb, zb, ib, cb, db) = (
                up(&r, &pts),
                up(&r, &params),
                up(&r, &zbar),
                up_idx(&r, &idx),
                up(&r, &coeff),
                up(&r, &dense),
            );
            let sp = SlotProbes::<ReferenceBackend> {
                kind,
                slot_index: &ib,
                slot_coeff: &cb,
                dense: &db,
            };
            let mut z = r.alloc(shape.len().max(1), "z").expect("alloc");
            r.input_layer_forward_slots(shape, stride, &pb, &sp, &qb, 0, &mut z);
            let mut g = up(&r, &grad0);
            r.input_layer_backward_slots(shape, stride, &pb, &sp, &zb, &mut g, 0);
            (dl(&r, &z, shape.len()), dl(&r, &g, params.len()))
        };
        let want = run(&mut on_r);
        compare(&format!("{case} forward"), &got.0, &want.0, tol)?;
        compare(&format!("{case} weight adjoint"), &got.1, &want.1, tol)?;
    }
    Ok(())
}

/// The shared block map and its adjoint: one-hot probes (slots on mapped coordinates, on a column
/// past the blocks such as the time, and empty) and dense probes, orders 0 to 4, collapsed or not,
/// rows with and without a column past the blocks, blocks of 1 to 40 coordinates.
///
/// # Errors
/// The first value out of tolerance.
pub fn check_shared_block<B: GenericStep>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    for (case, (np, block, n_blocks, n_pass, v, k, collapsed, kind)) in [
        (3, 4, 5, 0, 2, 2, true, ProbeKind::OneHot),
        (7, 3, 11, 1, 3, 3, false, ProbeKind::OneHot),
        (4, 5, 6, 0, 5, 1, true, ProbeKind::Dense),
        (5, 2, 9, 1, 2, 4, false, ProbeKind::OneHot),
        (2, 40, 8, 0, 4, 2, false, ProbeKind::Dense),
        (6, 7, 3, 1, 1, 0, false, ProbeKind::OneHot),
        (9, 17, 16, 0, 16, 2, true, ProbeKind::OneHot),
        (4, 1, 33, 1, 3, 4, true, ProbeKind::OneHot),
        (3, 6, 5, 1, 4, 1, false, ProbeKind::Dense),
    ]
    .into_iter()
    .enumerate()
    {
        let stride = block * n_blocks + n_pass;
        let case = format!(
            "shared block #{case} (N={np} B={block} blocks={n_blocks} extra={n_pass} V={v} K={k} \
             {kind:?} collapsed={collapsed})"
        );
        let shape = JetShape {
            order: k,
            n_dirs: v,
            n_points: np,
            width: n_blocks,
            collapsed,
        };
        let offset = 3;
        let map = SharedBlocks {
            block,
            n_blocks,
            stride,
            offset,
        };
        let pts = uniform(41 + case.len() as u32, np * stride, -1.0, 1.0);
        let params = uniform(43, offset + block + 1 + 2, -0.8, 0.8);
        let (mut idx, mut coeff, dense) = probes(47, kind, v, k.max(1), stride);
        if kind == ProbeKind::OneHot && n_pass > 0 {
            // A probe of the column past the blocks (the time's `e_t`).
            idx[0] = (stride - 1) as u32;
            coeff[0] = 0.7;
        }
        let ybar = uniform(53, map.features(shape).len(), -1.0, 1.0);
        let grad0 = uniform(59, params.len(), -0.1, 0.1);
        let out_len = map.features(shape).len();
        let run = |be_out: &mut dyn FnMut() -> (Vec<f32>, Vec<f32>)| be_out();
        let mut on_b = || {
            let (pb, qb, yb, ib, cb, db) = (
                up(b, &pts),
                up(b, &params),
                up(b, &ybar),
                up_idx(b, &idx),
                up(b, &coeff),
                up(b, &dense),
            );
            let sp = SlotProbes::<B> {
                kind,
                slot_index: &ib,
                slot_coeff: &cb,
                dense: &db,
            };
            let mut out = b.alloc(out_len.max(1), "out").expect("alloc");
            b.shared_block_forward(map, shape, &pb, &sp, &qb, &mut out);
            let mut g = up(b, &grad0);
            b.shared_block_backward(map, shape, &pb, &sp, &yb, &mut g);
            (dl(b, &out, out_len), dl(b, &g, params.len()))
        };
        let got = run(&mut on_b);
        let mut on_r = || {
            let (pb, qb, yb, ib, cb, db) = (
                up(&r, &pts),
                up(&r, &params),
                up(&r, &ybar),
                up_idx(&r, &idx),
                up(&r, &coeff),
                up(&r, &dense),
            );
            let sp = SlotProbes::<ReferenceBackend> {
                kind,
                slot_index: &ib,
                slot_coeff: &cb,
                dense: &db,
            };
            let mut out = r.alloc(out_len.max(1), "out").expect("alloc");
            r.shared_block_forward(map, shape, &pb, &sp, &qb, &mut out);
            let mut g = up(&r, &grad0);
            r.shared_block_backward(map, shape, &pb, &sp, &yb, &mut g);
            (dl(&r, &out, out_len), dl(&r, &g, params.len()))
        };
        let want = run(&mut on_r);
        compare(&format!("{case} block features"), &got.0, &want.0, tol)?;
        compare(&format!("{case} weight adjoint"), &got.1, &want.1, tol)?;
    }
    Ok(())
}

/// The features and the model cotangent of one backend.
type Outputs = (Vec<f32>, Vec<f32>);

/// The ansatz-and-readout and its adjoint.
///
/// # Errors
/// The first value out of tolerance.
pub fn check_readout<B: GenericStep>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    for (case, (np, v, k, n_terms, collapsed)) in [
        (3, 2, 2, 1, true),
        (5, 3, 2, 2, false),
        (4, 4, 4, 1, false),
        (65, 16, 2, 1, true),
        (7, 5, 7, 3, false),
        (6, 1, 0, 0, false),
        (2, 2, 1, 2, false),
    ]
    .into_iter()
    .enumerate()
    {
        let case =
            format!("readout #{case} (N={np} V={v} K={k} terms={n_terms} collapsed={collapsed})");
        let shape = JetShape {
            order: k,
            n_dirs: v,
            n_points: np,
            width: 1,
            collapsed,
        };
        let ashape = crate::backend::ansatz_shape(shape);
        let ro = ReadoutShape { shape, n_terms };
        let m = uniform(21 + case.len() as u32, shape.len(), -1.0, 1.0);
        let ab = uniform(23, ashape.len(), -1.0, 1.0);
        let mut w = uniform(29, ro.n_weights().max(1), -2.0, 2.0);
        if collapsed {
            // The top weights are shared across directions, as the trainer guarantees.
            for t in 0..n_terms {
                let first = w[(t * v) * k + k - 1];
                for s in 0..v {
                    w[(t * v + s) * k + k - 1] = first;
                }
            }
        }
        let fbar = uniform(31, ro.n_features() * np, -1.0, 1.0);
        let go = |m_bar_len: usize| -> (Outputs, Outputs) {
            let on_b = {
                let (mb, abb, wb, fb) = (up(b, &m), up(b, &ab), up(b, &w), up(b, &fbar));
                let mut feat = b.alloc(ro.n_features() * np, "features").expect("alloc");
                b.readout_forward(ro, &mb, &abb, &wb, &mut feat);
                let mut mbar = b.alloc(m_bar_len, "m bar").expect("alloc");
                b.readout_backward(ro, &abb, &wb, &fb, &mut mbar);
                (dl(b, &feat, ro.n_features() * np), dl(b, &mbar, m_bar_len))
            };
            let on_r = {
                let (mb, abb, wb, fb) = (up(&r, &m), up(&r, &ab), up(&r, &w), up(&r, &fbar));
                let mut feat = r.alloc(ro.n_features() * np, "features").expect("alloc");
                r.readout_forward(ro, &mb, &abb, &wb, &mut feat);
                let mut mbar = r.alloc(m_bar_len, "m bar").expect("alloc");
                r.readout_backward(ro, &abb, &wb, &fb, &mut mbar);
                (
                    dl(&r, &feat, ro.n_features() * np),
                    dl(&r, &mbar, m_bar_len),
                )
            };
            (on_b, on_r)
        };
        let (got, want) = go(shape.len());
        compare(&format!("{case} features"), &got.0, &want.0, tol)?;
        compare(&format!("{case} model cotangent"), &got.1, &want.1, tol)?;
    }
    Ok(())
}

/// Every point sampler, with and without a time column, drawn in chunks.
///
/// # Errors
/// The first coordinate out of tolerance (normals agree to rounding across devices).
pub fn check_sample_points<B: GenericStep>(b: &B, tol: Tolerance) -> CheckResult {
    let r = ReferenceBackend;
    let samplers = [
        (PointSampler::Ball, TimeSampler::None),
        (PointSampler::Ball, TimeSampler::Uniform { end: 0.7 }),
        (PointSampler::Sphere, TimeSampler::Fixed(0.25)),
        (PointSampler::Box { lo: -2.0, hi: 3.0 }, TimeSampler::None),
        (
            PointSampler::Gaussian { std: 1.5 },
            TimeSampler::Uniform { end: 2.0 },
        ),
        (PointSampler::SdeMarginal, TimeSampler::Uniform { end: 0.3 }),
    ];
    for (sampler, time) in samplers {
        for (first, n, d) in [(0, 5, 3), (3, 7, 17), (0, 2, 260)] {
            let s = PointSampling {
                sampler,
                time,
                first,
                n,
                d,
                stream: 9,
            };
            let len = n * s.stride();
            let mut ob = b.alloc(len, "points").expect("alloc");
            b.sample_points(s, 5, 3, &mut ob);
            let mut or = r.alloc(len, "points").expect("alloc");
            r.sample_points(s, 5, 3, &mut or);
            compare(
                &format!("sample points {s:?}"),
                &dl(b, &ob, len),
                &dl(&r, &or, len),
                tol,
            )?;
        }
    }
    Ok(())
}

/// Box coordinates and time columns are uniforms (and products a kernel must not fuse), so every
/// backend draws them bit for bit as [`crate::rng::sample_points_from`] does.
///
/// # Errors
/// The first value that differs.
pub fn check_box_points_exact<B: GenericStep>(b: &B) -> CheckResult {
    for time in [
        TimeSampler::None,
        TimeSampler::Uniform { end: 0.7 },
        TimeSampler::Fixed(0.3),
    ] {
        let s = PointSampling {
            sampler: PointSampler::Box { lo: -2.0, hi: 3.1 },
            time,
            first: 4,
            n: 9,
            d: 13,
            stream: 9,
        };
        let len = s.n * s.stride();
        let mut buf = b.alloc(len, "points").expect("alloc");
        b.sample_points(s, 11, 5, &mut buf);
        let mut want = vec![0.0f32; len];
        crate::rng::sample_points_from(
            11, s.sampler, s.time, s.stream, 5, s.first, s.n, s.d, &mut want,
        );
        compare(
            &format!("{s:?}"),
            &dl(b, &buf, len),
            &want,
            Tolerance::EXACT,
        )?;
    }
    Ok(())
}

/// Every generic check in turn.
///
/// # Errors
/// The first mismatch.
pub fn check_generic<B: GenericStep>(b: &B, tol: Tolerance) -> CheckResult {
    check_input_layer_slots(b, tol)?;
    check_shared_block(b, tol)?;
    check_readout(b, tol)?;
    check_sample_points(b, tol)?;
    check_box_points_exact(b)
}
