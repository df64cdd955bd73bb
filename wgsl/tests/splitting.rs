//! The binding-window splits, forced at small sizes: with `max_binding_bytes = 64 KiB` (and, in a
//! second configuration, wgpu buffers of 96 KiB so that `Buf`s span several of them and windows
//! straddle their boundaries) every split primitive still equals the f64 reference at d = 3000.
//! One binding then holds 5 rows of 3000 values; the sizes are kept small because every window is
//! a dispatch, and lavapipe needs milliseconds per dispatch. Every case runs once per kernel
//! family (`Tiled`, `Simple`), whatever the adapter.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{
    AdamStep, Backend, Gemm, Nonlinearity, ProbeKind, Probes, ResidualParams, Sampling,
    SolutionKind,
};
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, Tolerance};
use stde_core::mlp::Activation;
use stde_core::rng::{self, Philox};
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

fn input_layer_cases(b: &WgpuBackend) {
    let p = Pair {
        b,
        r: ReferenceBackend,
    };
    let mut data = Data(100);
    let (n, width) = (20, 40);
    for kind in [ProbeKind::OneHot, ProbeKind::Dense] {
        for (order, collapsed) in [(2, true), (2, false), (1, true)] {
            let n_dirs = 5;
            let shape = JetShape {
                order,
                n_dirs,
                n_points: n,
                width,
                collapsed,
            };
            let mut idx = vec![0u32; n_dirs];
            rng::sample_index_set(3, order as u32, DIM, n_dirs, &mut idx);
            let (ib, ir) = p.up_idx(&idx);
            let (db, dr) = p.up(&data.uniform(n_dirs * DIM, -1.0, 1.0));
            let (xb, xr) = p.up(&data.uniform(n * DIM, -1.0, 1.0));
            let off = 11;
            let (pb, pr) = p.up(&data.uniform(off + width * (DIM + 1) + 3, -0.1, 0.1));
            let probes_b = Probes::<WgpuBackend> {
                kind,
                indices: &ib,
                dense: &db,
            };
            let probes_r = Probes::<ReferenceBackend> {
                kind,
                indices: &ir,
                dense: &dr,
            };
            let (mut zb, mut zr) = p.up(&data.uniform(shape.len(), -9.0, 9.0));
            b.input_layer_forward(shape, DIM, &xb, &probes_b, &pb, off, &mut zb);
            p.r.input_layer_forward(shape, DIM, &xr, &probes_r, &pr, off, &mut zr);
            p.same(&format!("input forward {kind:?} {shape:?}"), &zb, &zr);
            let (zbb, zbr) = p.up(&data.uniform(shape.len(), -1.0, 1.0));
            let (mut gb, mut gr) = p.up(&data.uniform(off + width * (DIM + 1) + 3, -1.0, 1.0));
            b.input_layer_backward(shape, DIM, &xb, &probes_b, &zbb, &mut gb, off);
            p.r.input_layer_backward(shape, DIM, &xr, &probes_r, &zbr, &mut gr, off);
            p.same(&format!("input backward {kind:?} {shape:?}"), &gb, &gr);
        }
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
    // Points from the device sampler (split by rows), compared, then reused as inputs.
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
    let coeffs: Vec<f32> = rng::solution_coeffs(5, DIM)
        .iter()
        .map(|&c| c as f32)
        .collect();
    let (cb, cr) = p.up(&coeffs);
    for solution in [SolutionKind::TwoBody, SolutionKind::ThreeBody] {
        let (mut gb, mut gr) = p.up(&vec![0.0; n]);
        let (mut eb, mut er) = p.up(&vec![0.0; n]);
        b.forcing(
            solution,
            Nonlinearity::SineGordon,
            n,
            DIM,
            &cb,
            &xb,
            &mut gb,
            &mut eb,
        );
        p.r.forcing(
            solution,
            Nonlinearity::SineGordon,
            n,
            DIM,
            &cr,
            &xr,
            &mut gr,
            &mut er,
        );
        p.same(&format!("forcing {solution:?}"), &gb, &gr);
        p.same(&format!("exact {solution:?}"), &eb, &er);
    }
    for kind in [ProbeKind::Dense, ProbeKind::OneHot] {
        let n_dirs = 6;
        let shape = JetShape {
            order: 2,
            n_dirs,
            n_points: n,
            width: 1,
            collapsed: false,
        };
        let mut idx = vec![0u32; n_dirs];
        rng::sample_index_set(3, 9, DIM, n_dirs, &mut idx);
        let (ib, ir) = p.up_idx(&idx);
        let (db, dr) = p.up(&data.uniform(n_dirs * DIM, -1.0, 1.0));
        let (mb, mr) = p.up(&data.uniform(shape.len(), -1.0, 1.0));
        let (fb, fr) = p.up(&data.uniform(n, -1.0, 1.0));
        let rp = ResidualParams {
            shape,
            dim: DIM,
            top_weight: 1.0 / n_dirs as f32,
            nonlinearity: Nonlinearity::AllenCahn,
            hard_ball_boundary: true,
        };
        let (mut lb, mut lr) = p.up(&vec![0.0; n]);
        let (mut mbb, mut mbr) = p.up(&vec![0.0; shape.len()]);
        let probes_b = Probes::<WgpuBackend> {
            kind,
            indices: &ib,
            dense: &db,
        };
        let probes_r = Probes::<ReferenceBackend> {
            kind,
            indices: &ir,
            dense: &dr,
        };
        b.pinn_residual(rp, &mb, &xb, &probes_b, &fb, &mut lb, &mut mbb);
        p.r.pinn_residual(rp, &mr, &xr, &probes_r, &fr, &mut lr, &mut mbr);
        p.same(&format!("residual loss {kind:?}"), &lb, &lr);
        p.same(&format!("residual cotangent {kind:?}"), &mbb, &mbr);
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
