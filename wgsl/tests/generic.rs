//! The generic step primitives on the wgpu backend: every [`GenericKernel`] variant validates with
//! naga (no GPU needed) and binds what the Rust side binds; `stde_core::generic_conformance` holds
//! both kernel families to `Tolerance::F32`, at the default binding limit and at limits small
//! enough that every split path runs (windows of rows of `W1`, of blocks and of points, buffers
//! spread over several wgpu buffers), plus the first layer at d = 3000 with a 64 KiB binding.
//!
//! Without an adapter the GPU tests print one `skipped: no wgpu adapter (…)` line and return,
//! unless `STDE_REQUIRE_GPU=1`, which turns that into a failure.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{Backend, GenericStep, ProbeKind, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::conformance::{compare, Tolerance};
use stde_core::generic_conformance::{check_generic, check_input_layer_slots, check_sample_points};
use stde_core::rng::{self, Philox};
use stde_wgpu::generic::GenericKernel;
use stde_wgpu::kernels::Access;
use stde_wgpu::{KernelVariant, WgpuBackend, WgpuParams};
use wgpu::naga;

fn parse_and_validate(kernel: GenericKernel) -> naga::Module {
    let src = kernel.source();
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

#[test]
fn generic_step_conforms_with_gpu_kernels() {
    let b = backend_or_skip!(params(KernelVariant::Tiled));
    if let Err(m) = check_generic(&b, Tolerance::F32) {
        panic!("generic conformance failure (Tiled): {m}");
    }
    // At the default limit the one-hot weight adjoint is one pass.
    let programs = b.profile().programs;
    assert!(
        programs.contains_key("generic_column_scatter"),
        "{programs:?}"
    );
    assert!(!programs.contains_key("generic_scatter"), "{programs:?}");
}

#[test]
fn generic_step_conforms_with_software_kernels() {
    let b = backend_or_skip!(params(KernelVariant::Simple));
    if let Err(m) = check_generic(&b, Tolerance::F32) {
        panic!("generic conformance failure (Simple): {m}");
    }
}

/// The input layer and the samplers of the suite with 4 KiB bindings (a row of `W1` or a point is
/// at most 300 values, so windows hold a few rows), with and without `Buf`s spread over 6 KiB wgpu
/// buffers (windows then straddle buffer boundaries). The readout binds its arrays whole, so it
/// runs at the default limit only.
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
            if let Err(m) = check_sample_points(&b, Tolerance::F32) {
                panic!("split samplers ({case}): {m}");
            }
        }
    }
}

const DIM: usize = 3000;

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

/// The paper's first layer at d = 3000 (one-hot slot-1 probes from the index-set sampler, order
/// 2, collapsed or not) and slot probes in every slot sharing coordinates, with the time column,
/// under a 64 KiB binding: `W1` (40 × 3001) spans several windows.
#[test]
fn generic_input_layer_at_high_dimension_splits_by_binding_windows() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(WgpuParams {
            max_binding_bytes: Some(64 << 10),
            kernel_variant: variant,
            ..WgpuParams::default()
        });
        let r = ReferenceBackend;
        let (n, width, v) = (20, 40, 5);
        let stride = DIM + 1;
        for (order, collapsed, every_slot) in [(2, true, false), (2, false, false), (3, true, true)]
        {
            let shape = JetShape {
                order,
                n_dirs: v,
                n_points: n,
                width,
                collapsed,
            };
            let mut first = vec![0u32; v];
            rng::sample_index_set(3, order as u32, DIM, v, &mut first);
            let mut idx = vec![u32::MAX; v * order];
            let mut coeff = vec![0.0f32; v * order];
            for s in 0..v {
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
            let x = uniform(1, n * stride, -1.0, 1.0);
            let off = 11;
            let w = uniform(2, off + width * (stride + 1) + 3, -0.1, 0.1);
            let zbar = uniform(3, shape.len(), -1.0, 1.0);
            let g0 = uniform(4, w.len(), -1.0, 1.0);
            let case = format!("{variant:?} {shape:?} every slot = {every_slot}");

            let mut ib = b.alloc_idx(idx.len(), "test").unwrap();
            b.upload_idx(&mut ib, &idx);
            let (cb, db, xb, wb, zbb) = (
                up(&b, &coeff),
                up(&b, &[0.0]),
                up(&b, &x),
                up(&b, &w),
                up(&b, &zbar),
            );
            let pb = SlotProbes::<WgpuBackend> {
                kind: ProbeKind::OneHot,
                slot_index: &ib,
                slot_coeff: &cb,
                dense: &db,
            };
            let mut z = up(&b, &vec![7.0; shape.len()]);
            b.input_layer_forward_slots(shape, stride, &xb, &pb, &wb, off, &mut z);
            let mut g = up(&b, &g0);
            b.input_layer_backward_slots(shape, stride, &xb, &pb, &zbb, &mut g, off);

            let (cr, dr, xr, wr, zbr) = (
                up_ref(&coeff),
                vec![0.0],
                up_ref(&x),
                up_ref(&w),
                up_ref(&zbar),
            );
            let pr = SlotProbes::<ReferenceBackend> {
                kind: ProbeKind::OneHot,
                slot_index: &idx,
                slot_coeff: &cr,
                dense: &dr,
            };
            let mut zr = vec![0.0; shape.len()];
            r.input_layer_forward_slots(shape, stride, &xr, &pr, &wr, off, &mut zr);
            let mut gr = up_ref(&g0);
            r.input_layer_backward_slots(shape, stride, &xr, &pr, &zbr, &mut gr, off);

            same(&b, &format!("{case} forward"), &z, &zr);
            same(&b, &format!("{case} weight adjoint"), &g, &gr);
        }
    }
}

/// The paper's case through the slot primitives (one-hot probes in slot 1 only, order 2, collapsed)
/// equals the one-hot input layer of `Backend` and costs the same number of dispatches.
#[test]
fn slot_input_layer_matches_the_one_hot_layer_in_dispatches_and_values() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(params(variant));
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
        let mut idx = vec![u32::MAX; 2 * v];
        let mut coeff = vec![0.0f32; 2 * v];
        for s in 0..v {
            idx[2 * s] = first[s];
            coeff[2 * s] = 1.0;
        }
        let mut ib = b.alloc_idx(v, "test").unwrap();
        b.upload_idx(&mut ib, &first);
        let mut sb = b.alloc_idx(2 * v, "test").unwrap();
        b.upload_idx(&mut sb, &idx);
        let (cb, db) = (up(&b, &coeff), up(&b, &[0.0]));
        let x = up(&b, &uniform(5, n * dim, -1.0, 1.0));
        let w = up(&b, &uniform(6, width * (dim + 1), -0.1, 0.1));
        let zbar = up(&b, &uniform(7, shape.len(), -1.0, 1.0));
        let g0 = uniform(8, width * (dim + 1), -1.0, 1.0);
        let old = stde_core::backend::Probes::<WgpuBackend> {
            kind: ProbeKind::OneHot,
            indices: &ib,
            dense: &db,
        };
        let new = SlotProbes::<WgpuBackend> {
            kind: ProbeKind::OneHot,
            slot_index: &sb,
            slot_coeff: &cb,
            dense: &db,
        };
        let (mut z_old, mut z_new) = (
            up(&b, &vec![0.0; shape.len()]),
            up(&b, &vec![0.0; shape.len()]),
        );
        let (mut g_old, mut g_new) = (up(&b, &g0), up(&b, &g0));
        // Warm up both (pipelines, bind groups), then count a second call of each.
        for _ in 0..2 {
            b.reset_profile();
            b.input_layer_forward(shape, dim, &x, &old, &w, 0, &mut z_old);
            b.input_layer_backward(shape, dim, &x, &old, &zbar, &mut g_old, 0);
        }
        let old_dispatches = b.profile().dispatches();
        for _ in 0..2 {
            b.reset_profile();
            b.input_layer_forward_slots(shape, dim, &x, &new, &w, 0, &mut z_new);
            b.input_layer_backward_slots(shape, dim, &x, &new, &zbar, &mut g_new, 0);
        }
        let new_dispatches = b.profile().dispatches();
        assert_eq!(
            new_dispatches, old_dispatches,
            "{variant:?}: dispatches per call"
        );
        let dl = |buf: &stde_wgpu::WgpuBuf, len: usize| {
            pollster::block_on(b.download(buf, 0, len)).unwrap()
        };
        let (zo, zn) = (dl(&z_old, shape.len()), dl(&z_new, shape.len()));
        if let Err(m) = compare(&format!("{variant:?} forward"), &zn, &zo, Tolerance::F32) {
            panic!("{m}");
        }
        let len = g0.len();
        let (go, gn) = (dl(&g_old, len), dl(&g_new, len));
        if let Err(m) = compare(
            &format!("{variant:?} weight adjoint"),
            &gn,
            &go,
            Tolerance::F32,
        ) {
            panic!("{m}");
        }
    }
}
