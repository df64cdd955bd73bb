//! The binding-window splits, forced at small sizes: with `max_binding_bytes = 64 KiB` (and, in a
//! second configuration, wgpu buffers of 96 KiB so that `Buf`s span several of them and windows
//! straddle their boundaries) every split primitive still equals the f64 reference at d = 3000.
//! One binding then holds 5 rows of 3000 values; the sizes are kept small because every window is
//! a dispatch, and lavapipe needs milliseconds per dispatch. Every case runs once per kernel
//! family (`Tiled`, `Simple`), whatever the adapter.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{
    AdamStep, Backend, Gemm, GenericStep, PointSampling, ProbeKind, Sampling, SlotProbes,
};
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, Tolerance};
use stde_core::mlp::Activation;
use stde_core::rng::{self, Philox, PointSampler, TimeSampler};
use stde_wgpu::{KernelVariant, WgpuBackend, WgpuParams};

const DIM: usize = 3000;

fn params(chunked: bool, kernel_variant: KernelVariant) -> WgpuParams {
    WgpuParams {
        max_binding_bytes: Some(64 << 10),
        max_buffer_bytes: chunked.then_some(96 << 10),
        kernel_variant,
        ..WgpuParams::default()
    }
}

/// Uniform test data in [lo, hi).
struct Data(u32);

impl Data {
    fn uniform(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        self.0 += 1;
        let mut out = vec![0.0; len];
        Philox::new(77).fill_uniform_f32(9, self.0, &mut out);
        out.iter_mut().for_each(|v| *v = lo + (hi - lo) * *v);
        out
    }
}

/// The same buffers on both backends.
struct Pair<'a> {
    b: &'a WgpuBackend,
    r: ReferenceBackend,
}

impl Pair<'_> {
    fn up(&self, data: &[f32]) -> (stde_wgpu::WgpuBuf, Vec<f64>) {
        let mut x = self.b.alloc(data.len().max(1), "test").unwrap();
        self.b.upload(&mut x, 0, data);
        let mut y = self.r.alloc(data.len().max(1), "test").unwrap();
        self.r.upload(&mut y, 0, data);
        (x, y)
    }

    fn up_idx(&self, data: &[u32]) -> (stde_wgpu::WgpuIdx, Vec<u32>) {
        let mut x = self.b.alloc_idx(data.len(), "test").unwrap();
        self.b.upload_idx(&mut x, data);
        (x, data.to_vec())
    }

    #[track_caller]
    fn same(&self, case: &str, x: &stde_wgpu::WgpuBuf, y: &Vec<f64>) {
        let got = pollster::block_on(self.b.download(x, 0, x.len())).unwrap();
        let exp = pollster::block_on(self.r.download(y, 0, y.len())).unwrap();
        if let Err(m) = compare(case, &got, &exp, Tolerance::F32) {
            panic!("{m}");
        }
    }
}

fn gemm_cases(b: &WgpuBackend) {
    let p = Pair {
        b,
        r: ReferenceBackend,
    };
    let mut data = Data(0);
    // The first layer (X·W1ᵀ), its adjoint (z̄ᵀ·X into a parameter buffer) and the other layouts,
    // all with a long inner or outer dimension and unaligned offsets.
    let cases = [
        (20, 40, DIM, false, true, 0.0f32),
        (40, DIM, 20, true, false, 1.0),
        (23, 41, DIM, false, false, 0.5),
        (DIM, 19, 29, true, true, 1.0),
        // A single row longer than a binding: the inner dimension itself is cut.
        (3, 4, 20_000, false, true, 0.0),
    ];
    for (m, n, k, ta, tb, beta) in cases {
        let g = Gemm {
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            alpha: 0.75,
            beta,
            a_offset: 3,
            b_offset: 13,
            c_offset: 5,
        };
        let (a, ar) = p.up(&data.uniform(3 + m * k, -1.0, 1.0));
        let (bb, br) = p.up(&data.uniform(13 + k * n, -1.0, 1.0));
        let (mut c, mut cr) = p.up(&data.uniform(5 + m * n + 7, -1.0, 1.0));
        b.gemm(g, &a, &bb, &mut c);
        p.r.gemm(g, &ar, &br, &mut cr);
        p.same(&format!("gemm {m}x{n}x{k} ta={ta} tb={tb}"), &c, &cr);
    }
}

/// The generic input layer and its weight adjoint at d = 3000, `W1` (40 × 3000) spanning several
/// windows: one-hot probes in slot 1 (the paper's, from the index-set sampler), dense probes, and
/// one-hot probes in every slot that share coordinates, including the time column (40 × 3001).
fn input_layer_cases(b: &WgpuBackend) {
    let p = Pair {
        b,
        r: ReferenceBackend,
    };
    let mut data = Data(100);
    let (n, width, n_dirs) = (20, 40, 5);
    let shapes = [(2, true), (2, false), (1, true)];
    let cases = shapes
        .iter()
        .map(|&(order, collapsed)| (ProbeKind::OneHot, order, collapsed, false))
        .chain(
            shapes
                .iter()
                .map(|&(order, collapsed)| (ProbeKind::Dense, order, collapsed, false)),
        )
        .chain([(ProbeKind::OneHot, 3, true, true)]);
    for (kind, order, collapsed, every_slot) in cases {
        let shape = JetShape {
            order,
            n_dirs,
            n_points: n,
            width,
            collapsed,
        };
        // Every slot may hold the time column, so those cases have one.
        let stride = DIM + usize::from(every_slot);
        let mut first = vec![0u32; n_dirs];
        rng::sample_index_set(3, order as u32, DIM, n_dirs, &mut first);
        let mut idx = vec![SlotProbes::<WgpuBackend>::EMPTY; n_dirs * order];
        let mut coeff = vec![0.0f32; n_dirs * order];
        for s in 0..n_dirs {
            idx[s * order] = first[s];
            coeff[s * order] = 1.0;
            if every_slot {
                // Higher slots on the time column (shared by every direction) or on another
                // direction's coordinate.
                for k in 2..=order {
                    idx[s * order + k - 1] = if k == 2 { DIM as u32 } else { first[0] };
                    coeff[s * order + k - 1] = 0.5 + s as f32;
                }
            }
        }
        let (ib, ir) = p.up_idx(&idx);
        let (cb, cr) = p.up(&coeff);
        let (db, dr) = p.up(&data.uniform(n_dirs * stride, -1.0, 1.0));
        let (xb, xr) = p.up(&data.uniform(n * stride, -1.0, 1.0));
        let off = 11;
        let (pb, pr) = p.up(&data.uniform(off + width * (stride + 1) + 3, -0.1, 0.1));
        let probes_b = SlotProbes::<WgpuBackend> {
            kind,
            slot_index: &ib,
            slot_coeff: &cb,
            dense: &db,
        };
        let probes_r = SlotProbes::<ReferenceBackend> {
            kind,
            slot_index: &ir,
            slot_coeff: &cr,
            dense: &dr,
        };
        let case = format!("{kind:?} {shape:?} every slot = {every_slot}");
        let (mut zb, mut zr) = p.up(&data.uniform(shape.len(), -9.0, 9.0));
        b.input_layer_forward_slots(shape, stride, &xb, &probes_b, &pb, off, &mut zb);
        p.r.input_layer_forward_slots(shape, stride, &xr, &probes_r, &pr, off, &mut zr);
        p.same(&format!("input forward {case}"), &zb, &zr);
        let (zbb, zbr) = p.up(&data.uniform(shape.len(), -1.0, 1.0));
        let (mut gb, mut gr) = p.up(&data.uniform(off + width * (stride + 1) + 3, -1.0, 1.0));
        b.input_layer_backward_slots(shape, stride, &xb, &probes_b, &zbb, &mut gb, off);
        p.r.input_layer_backward_slots(shape, stride, &xr, &probes_r, &zbr, &mut gr, off);
        p.same(&format!("input backward {case}"), &gb, &gr);
    }
}

fn activation_cases(b: &WgpuBackend) {
    let p = Pair {
        b,
        r: ReferenceBackend,
    };
    let mut data = Data(200);
    // 18 blocks x 100 points x 128 features: 14 times one binding, split into sub-batches.
    let cases = [
        (
            Activation::Tanh,
            JetShape {
                order: 2,
                n_dirs: 16,
                n_points: 100,
                width: 128,
                collapsed: true,
            },
        ),
        (
            Activation::Sin,
            JetShape {
                order: 3,
                n_dirs: 4,
                n_points: 61,
                width: 130,
                collapsed: false,
            },
        ),
    ];
    for (act, shape) in cases {
        let (zb, zr) = p.up(&data.uniform(shape.len(), -1.0, 1.0));
        let (hbb, hbr) = p.up(&data.uniform(shape.len(), -1.0, 1.0));
        let (mut hb, mut hr) = p.up(&vec![0.0; shape.len()]);
        b.jet_activation_forward(act, shape, &zb, &mut hb);
        p.r.jet_activation_forward(act, shape, &zr, &mut hr);
        p.same(&format!("activation forward {act:?} {shape:?}"), &hb, &hr);
        let (mut gb, mut gr) = p.up(&vec![0.0; shape.len()]);
        b.jet_activation_backward(act, shape, &zb, &hbb, &mut gb);
        p.r.jet_activation_backward(act, shape, &zr, &hbr, &mut gr);
        p.same(&format!("activation backward {act:?} {shape:?}"), &gb, &gr);
    }
}

fn point_cases(b: &WgpuBackend) {
    let p = Pair {
        b,
        r: ReferenceBackend,
    };
    let mut data = Data(300);
    let n = 9;
    // Ball points from the device sampler, split by rows.
    let (mut xb, mut xr) = p.up(&vec![0.0; n * DIM]);
    let what = Sampling::BallPoints {
        first: 3,
        n,
        d: DIM,
        stream: 2,
    };
    b.sample(what, 5, 1, &mut xb);
    p.r.sample(what, 5, 1, &mut xr);
    p.same("ball points", &xb, &xr);
    for what in [
        Sampling::Gaussian { count: 50_001 },
        Sampling::Rademacher { count: 40_003 },
    ] {
        let (mut ob, mut or) = p.up(&vec![0.0; 50_001]);
        b.sample(what, 5, 2, &mut ob);
        p.r.sample(what, 5, 2, &mut or);
        p.same(&format!("{what:?}"), &ob, &or);
    }
    // The generic samplers by rows of 3001 values (five to a binding): a time column, and the
    // samplers that the ball's kernel does not cover.
    for (sampler, time) in [
        (
            PointSampler::Box { lo: -0.5, hi: 2.0 },
            TimeSampler::Uniform { end: 1.5 },
        ),
        (PointSampler::SdeMarginal, TimeSampler::Uniform { end: 1.0 }),
        (PointSampler::Sphere, TimeSampler::Fixed(0.25)),
        (PointSampler::Gaussian { std: 0.5 }, TimeSampler::None),
    ] {
        let s = PointSampling {
            sampler,
            time,
            first: 4,
            n: 13,
            d: DIM,
            stream: 3,
        };
        let (mut ob, mut or) = p.up(&vec![0.0; s.n * s.stride()]);
        b.sample_points(s, 5, 3, &mut ob);
        p.r.sample_points(s, 5, 3, &mut or);
        p.same(&format!("points {sampler:?} {time:?}"), &ob, &or);
    }
    let len = 100_003;
    let (mut pb, mut pr) = p.up(&data.uniform(len, -1.0, 1.0));
    let (mut gb, mut gr) = p.up(&data.uniform(len, -1.0, 1.0));
    let (mut mb, mut mr) = p.up(&data.uniform(len, -0.1, 0.1));
    let (mut vb, mut vr) = p.up(&data.uniform(len, 0.0, 0.01));
    let step = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        t: 3,
    };
    b.adam(step, &mut pb, &mut gb, &mut mb, &mut vb);
    p.r.adam(step, &mut pr, &mut gr, &mut mr, &mut vr);
    p.same("adam params", &pb, &pr);
    p.same("adam gradient zeroed", &gb, &gr);
    p.same("adam first moment", &mb, &mr);
    p.same("adam second moment", &vb, &vr);
}

#[test]
fn gemm_splits_by_binding_windows() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(false, variant));
        assert_eq!(b.max_binding_bytes(), 64 << 10);
        gemm_cases(&b);
    }
}

#[test]
fn input_layer_splits_by_binding_windows() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(false, variant));
        input_layer_cases(&b);
    }
}

#[test]
fn jet_activations_split_into_sub_batches() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(false, variant));
        activation_cases(&b);
    }
}

#[test]
fn point_kernels_split_by_rows() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(false, variant));
        point_cases(&b);
    }
}

#[test]
fn buffers_split_across_wgpu_buffers() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(true, variant));
        let big = b.alloc(DIM * 20, "test").unwrap();
        assert!(big.n_chunks() > 1, "the test needs a multi-buffer Buf");
        gemm_cases(&b);
        input_layer_cases(&b);
        activation_cases(&b);
        point_cases(&b);
    }
}

#[test]
fn gemm_with_long_inner_dimension_matches_reference() {
    // Default limits: nothing is windowed, but blocks with few output tiles split their inner
    // dimension across workgroup layers and add the partial products in a second pass (the simple
    // family only when its few workgroups would leave cores idle: the first two cases).
    for variant in common::VARIANTS {
        let b = backend_or_skip!(WgpuParams {
            kernel_variant: variant,
            ..WgpuParams::default()
        });
        long_inner_cases(&b);
    }
}

fn long_inner_cases(b: &WgpuBackend) {
    let p = Pair {
        b,
        r: ReferenceBackend,
    };
    let mut data = Data(400);
    // The last case is aligned (offsets and row lengths multiples of four: vec4 loads).
    for (m, n, k, ta, tb, beta, (a_offset, b_offset)) in [
        (20, 40, 30_000, false, true, 0.5f32, (1, 2)),
        (4, 8, 20_000, false, false, 1.0, (1, 2)),
        (7, 130, 9_000, true, false, 0.0, (1, 2)),
        (4, 8, 20_000, false, true, 0.0, (4, 8)),
    ] {
        let g = Gemm {
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            alpha: 1.5,
            beta,
            a_offset,
            b_offset,
            c_offset: 3,
        };
        let (a, ar) = p.up(&data.uniform(a_offset + m * k, -1.0, 1.0));
        let (bb, br) = p.up(&data.uniform(b_offset + k * n, -1.0, 1.0));
        let (mut c, mut cr) = p.up(&data.uniform(3 + m * n, -1.0, 1.0));
        b.gemm(g, &a, &bb, &mut c);
        p.r.gemm(g, &ar, &br, &mut cr);
        p.same(&format!("gemm {m}x{n}x{k} ta={ta} tb={tb}"), &c, &cr);
    }
}
