//! The generic step primitives on the wgpu backend beyond the conformance suite (which
//! `conformance.rs` runs at the default limits): every [`GenericKernel`] variant validates with naga
//! (no GPU needed), initialises every function-scope `var` and binds what the Rust side binds; the suite's input layer, shared block map and samplers hold
//! both kernel families to `Tolerance::F32` at limits small enough that every split path runs
//! (windows of rows of `W1`, of blocks and of points, buffers spread over several wgpu buffers);
//! and the paper's first layer costs the dispatches the crate documentation promises. The first
//! layer at d = 3000 under a 64 KiB binding is in `splitting.rs`.
//!
//! Without an adapter the GPU tests print one `skipped: no wgpu adapter (…)` line and return,
//! unless `STDE_REQUIRE_GPU=1`, which turns that into a failure.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{Backend, Gemm, GenericStep, ProbeKind, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, Tolerance};
use stde_core::generic_conformance::{
    check_input_layer_slots, check_sample_points, check_shared_block,
};
use stde_core::rng::{self, Philox};
use stde_wgpu::generic::GenericKernel;
use stde_wgpu::kernels::{Access, Kernel};
use stde_wgpu::{KernelVariant, WgpuBackend, WgpuParams};
use wgpu::naga;

fn parse_and_validate(kernel: GenericKernel) -> naga::Module {
    let src = kernel.source();
    common::assert_vars_initialised(&format!("{kernel:?}"), &src);
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{kernel:?} does not parse:\n{}", e.emit_to_string(&src)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    if let Err(e) = validator.validate(&module) {
        panic!("{kernel:?} does not validate:\n{}", e.emit_to_string(&src));
    }
    module
}

#[test]
fn every_generic_kernel_validates_and_matches_its_bindings() {
    let all = GenericKernel::all();
    let mut sorted = all.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "a kernel listed twice");
    for kernel in all {
        let module = parse_and_validate(kernel);
        let mut storage = Vec::new();
        let mut uniform = None;
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            assert_eq!(binding.group, 0, "{kernel:?}: group");
            match var.space {
                naga::AddressSpace::Uniform => uniform = Some((binding.binding, var.ty)),
                naga::AddressSpace::Storage { access } => {
                    let a = if access.contains(naga::StorageAccess::STORE) {
                        Access::ReadWrite
                    } else {
                        Access::Read
                    };
                    storage.push((binding.binding, a));
                }
                other => panic!("{kernel:?}: unexpected address space {other:?}"),
            }
        }
        storage.sort_by_key(|(b, _)| *b);
        let expected: Vec<(u32, Access)> = kernel
            .bindings()
            .iter()
            .enumerate()
            .map(|(i, &a)| (i as u32 + 1, a))
            .collect();
        assert_eq!(storage, expected, "{kernel:?}: storage bindings");
        let (slot, ty) = uniform.unwrap_or_else(|| panic!("{kernel:?}: no uniform block"));
        assert_eq!(slot, 0, "{kernel:?}: the uniform block must be binding 0");
        let naga::TypeInner::Struct { members, .. } = &module.types[ty].inner else {
            panic!("{kernel:?}: the uniform block is not a struct");
        };
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(names, kernel.param_names(), "{kernel:?}: uniform fields");
        for (i, m) in members.iter().enumerate() {
            assert_eq!(
                m.offset,
                4 * i as u32,
                "{kernel:?}: field {i} is not packed"
            );
        }
        let entry: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(entry, ["main"], "{kernel:?}: entry points");
    }
}

fn params(kernel_variant: KernelVariant) -> WgpuParams {
    WgpuParams {
        kernel_variant,
        ..WgpuParams::default()
    }
}

/// The input layer, the shared block map and the samplers of the suite with 4 KiB bindings (a row
/// of `W1` or a point is at most 300 values, so windows hold a few rows), with and without `Buf`s
/// spread over 6 KiB wgpu buffers (windows then straddle buffer boundaries). The readout binds its
/// arrays whole, so it runs at the default limit only.
#[test]
fn generic_input_layer_and_samplers_split_by_binding_windows() {
    for variant in common::VARIANTS {
        for chunked in [false, true] {
            let b = backend_or_skip!(WgpuParams {
                max_binding_bytes: Some(4 << 10),
                max_buffer_bytes: chunked.then_some(6 << 10),
                kernel_variant: variant,
                ..WgpuParams::default()
            });
            let case = format!("{variant:?}, chunked = {chunked}");
            if let Err(m) = check_input_layer_slots(&b, Tolerance::F32) {
                panic!("split input layer ({case}): {m}");
            }
            // The larger cases' weight adjoints went through the per-block sums.
            let programs = b.profile().programs;
            assert!(
                programs.contains_key("generic_scatter"),
                "{case}: {programs:?}"
            );
            if let Err(m) = check_shared_block(&b, Tolerance::F32) {
                panic!("split shared block ({case}): {m}");
            }
            if let Err(m) = check_sample_points(&b, Tolerance::F32) {
                panic!("split samplers ({case}): {m}");
            }
        }
    }
}

fn uniform(seed: u32, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut out = vec![0.0; len];
    Philox::new(78).fill_uniform_f32(9, seed, &mut out);
    out.iter_mut().for_each(|v| *v = lo + (hi - lo) * *v);
    out
}

fn up(b: &WgpuBackend, data: &[f32]) -> stde_wgpu::WgpuBuf {
    let mut x = b.alloc(data.len().max(1), "test").unwrap();
    b.upload(&mut x, 0, data);
    x
}

fn up_ref(data: &[f32]) -> Vec<f64> {
    data.iter().map(|&v| f64::from(v)).collect()
}

#[track_caller]
fn same(b: &WgpuBackend, case: &str, x: &stde_wgpu::WgpuBuf, want: &[f64]) {
    let got = pollster::block_on(b.download(x, 0, want.len())).unwrap();
    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    if let Err(m) = compare(case, &got, &want, Tolerance::F32) {
        panic!("{m}");
    }
}

/// Dispatches of one kernel (fixed or generic) in the profile.
fn count(b: &WgpuBackend, kernel: Kernel) -> u64 {
    b.profile().kernels.get(&kernel).map_or(0, |k| k.dispatches)
}

fn count_generic(b: &WgpuBackend, kernel: GenericKernel) -> u64 {
    b.profile()
        .programs
        .get(kernel.name())
        .map_or(0, |k| k.dispatches)
}

/// The dispatches of a second call of `f` (the first builds pipelines and bind groups).
fn dispatches(b: &WgpuBackend, f: &mut dyn FnMut()) -> u64 {
    f();
    b.reset_profile();
    f();
    b.profile().dispatches()
}

/// The paper's case (one-hot probes in slot 1 only, order 2, collapsed) at the default binding
/// limit: the input layer costs its primal GEMM and bias plus one gather and one fill, and its
/// weight adjoint the bias gradient and the primal GEMM plus one fused sum-and-scatter pass
/// (no per-block sums, no windowed scatter); both equal the f64 reference.
#[test]
fn paper_input_layer_costs_gather_fill_and_one_scatter_pass() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(variant));
        let r = ReferenceBackend;
        let (n, width, v, dim) = (33, 64, 16, 1000);
        let shape = JetShape {
            order: 2,
            n_dirs: v,
            n_points: n,
            width,
            collapsed: true,
        };
        let mut first = vec![0u32; v];
        rng::sample_index_set(5, 1, dim, v, &mut first);
        let mut idx = vec![SlotProbes::<WgpuBackend>::EMPTY; 2 * v];
        let mut coeff = vec![0.0f32; 2 * v];
        for s in 0..v {
            idx[2 * s] = first[s];
            coeff[2 * s] = 1.0;
        }
        let (x, w, zbar) = (
            uniform(5, n * dim, -1.0, 1.0),
            uniform(6, width * (dim + 1), -0.1, 0.1),
            uniform(7, shape.len(), -1.0, 1.0),
        );
        let g0 = uniform(8, width * (dim + 1), -1.0, 1.0);
        let mut sb = b.alloc_idx(2 * v, "test").unwrap();
        b.upload_idx(&mut sb, &idx);
        let (cb, db) = (up(&b, &coeff), up(&b, &[0.0]));
        let (xb, wb, zbb) = (up(&b, &x), up(&b, &w), up(&b, &zbar));
        let probes = SlotProbes::<WgpuBackend> {
            kind: ProbeKind::OneHot,
            slot_index: &sb,
            slot_coeff: &cb,
            dense: &db,
        };
        let mut z = up(&b, &vec![0.0; shape.len()]);
        let mut g = up(&b, &g0);
        let primal_fwd = Gemm::nt(n, width, dim);
        let primal_bwd = Gemm {
            m: width,
            n: dim,
            k: n,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 1.0,
            a_offset: 0,
            b_offset: 0,
            c_offset: 0,
        };
        // The primal GEMMs and biases alone, on scratch outputs, are the baseline.
        let mut z_scratch = up(&b, &vec![0.0; shape.len()]);
        let mut g_scratch = up(&b, &g0);
        let base_fwd = dispatches(&b, &mut || {
            b.gemm(primal_fwd, &xb, &wb, &mut z_scratch);
            b.add_bias(shape, &wb, width * dim, &mut z_scratch);
        });
        let base_bwd = dispatches(&b, &mut || {
            b.bias_grad(shape, &zbb, &mut g_scratch, width * dim);
            b.gemm(primal_bwd, &zbb, &xb, &mut g_scratch);
        });
        let fwd = dispatches(&b, &mut || {
            b.input_layer_forward_slots(shape, dim, &xb, &probes, &wb, 0, &mut z);
        });
        let fill = if variant == KernelVariant::Simple {
            Kernel::InputFillSimple
        } else {
            Kernel::InputFill
        };
        assert_eq!(
            (
                count_generic(&b, GenericKernel::InputGather),
                count(&b, fill)
            ),
            (1, 1),
            "{variant:?}: one gather and one fill"
        );
        assert_eq!(fwd, base_fwd + 2, "{variant:?}: forward dispatches");
        // The adjoint accumulates: it runs twice here, and twice on the reference below.
        let bwd = dispatches(&b, &mut || {
            b.input_layer_backward_slots(shape, dim, &xb, &probes, &zbb, &mut g, 0);
        });
        assert_eq!(
            count_generic(&b, GenericKernel::ColumnScatter),
            1,
            "{variant:?}: one fused scatter pass"
        );
        assert_eq!(
            (
                count_generic(&b, GenericKernel::Scatter),
                count(&b, Kernel::ColumnSums)
            ),
            (0, 0),
            "{variant:?}: no per-block sums at the default limit"
        );
        assert_eq!(bwd, base_bwd + 1, "{variant:?}: adjoint dispatches");

        let (ir, cr, dr, xr, wr, zbr) = (
            idx.clone(),
            up_ref(&coeff),
            vec![0.0],
            up_ref(&x),
            up_ref(&w),
            up_ref(&zbar),
        );
        let pr = SlotProbes::<ReferenceBackend> {
            kind: ProbeKind::OneHot,
            slot_index: &ir,
            slot_coeff: &cr,
            dense: &dr,
        };
        let mut zr = vec![0.0; shape.len()];
        r.input_layer_forward_slots(shape, dim, &xr, &pr, &wr, 0, &mut zr);
        let mut gr = up_ref(&g0);
        for _ in 0..2 {
            r.input_layer_backward_slots(shape, dim, &xr, &pr, &zbr, &mut gr, 0);
        }
        same(&b, &format!("{variant:?} forward"), &z, &zr);
        same(&b, &format!("{variant:?} weight adjoint"), &g, &gr);
    }
}
