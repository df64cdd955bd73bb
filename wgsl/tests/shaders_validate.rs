//! Every WGSL kernel variant parses and validates with naga (no GPU needed), gives every
//! function-scope `var` an initializer (see `common::vars_without_initializer`), and its bindings
//! and uniform fields agree with what the Rust side binds and writes.

mod common;

use stde_wgpu::kernels::{Access, Kernel, MAX_ORDER};
use wgpu::naga;

fn orders(kernel: Kernel) -> Vec<u32> {
    if kernel.depends_on_order() {
        (0..=MAX_ORDER as u32).collect()
    } else {
        vec![0]
    }
}

fn parse_and_validate(kernel: Kernel, order: u32) -> naga::Module {
    let src = kernel.source(order);
    common::assert_vars_initialised(&format!("{} (K = {order})", kernel.name()), &src);
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
        panic!(
            "{} (K = {order}) does not parse:\n{}",
            kernel.name(),
            e.emit_to_string(&src)
        )
    });
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    if let Err(e) = validator.validate(&module) {
        panic!(
            "{} (K = {order}) does not validate:\n{}",
            kernel.name(),
            e.emit_to_string(&src)
        );
    }
    module
}

#[test]
fn every_kernel_variant_validates() {
    let mut variants = 0;
    for kernel in Kernel::ALL {
        for order in orders(kernel) {
            parse_and_validate(kernel, order);
            variants += 1;
        }
    }
    assert_eq!(variants, Kernel::ALL.len() + 4 * MAX_ORDER);
}

/// The check itself: it finds a `var` without an initializer in a loop or at the top of a function
/// (also `var<function>`), and passes initialised ones, module-scope ones and comments.
#[test]
fn uninitialised_vars_are_found() {
    let src = "var<private> p: array<f32, 4>;\n\
               var<workgroup> w: array<f32, 64>;\n\
               // var c: f32;\n\
               fn f() -> f32 {\n\
               \x20   var top: f32; /* var b: f32; */\n\
               \x20   for (var i = 0u; i < 3u; i++) {\n\
               \x20       var acc: array<f32, 3>;\n\
               \x20       var ok = array<f32, 3>();\n\
               \x20       var<function> named: vec2<f32>;\n\
               \x20       acc[1] += ok[1] + named.x;\n\
               \x20       top += acc[1];\n\
               \x20   }\n\
               \x20   return top;\n\
               }\n";
    assert_eq!(
        common::vars_without_initializer(src),
        [
            "line 5: var top: f32;",
            "line 7: var acc: array<f32, 3>;",
            "line 9: var<function> named: vec2<f32>;",
        ]
    );
}

#[test]
fn kernel_names_are_distinct() {
    // Names label pipelines and profile rows; two variants sharing one would be confused.
    let mut names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate kernel names");
    let mut all = Kernel::ALL.to_vec();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        Kernel::ALL.len(),
        "a kernel listed twice in Kernel::ALL"
    );
}

#[test]
fn bindings_match_the_rust_layout() {
    for kernel in Kernel::ALL {
        let module = parse_and_validate(kernel, 2);
        let mut storage = Vec::new();
        let mut uniform = None;
        for (_, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            assert_eq!(
                binding.group,
                0,
                "{}: group {}",
                kernel.name(),
                binding.group
            );
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
                other => panic!("{}: unexpected address space {other:?}", kernel.name()),
            }
        }
        storage.sort_by_key(|(b, _)| *b);
        let expected: Vec<(u32, Access)> = kernel
            .bindings()
            .iter()
            .enumerate()
            .map(|(i, &a)| (i as u32 + 1, a))
            .collect();
        assert_eq!(storage, expected, "{}: storage bindings", kernel.name());
        let (slot, ty) = uniform.unwrap_or_else(|| panic!("{}: no uniform block", kernel.name()));
        assert_eq!(
            slot,
            0,
            "{}: the uniform block must be binding 0",
            kernel.name()
        );
        let naga::TypeInner::Struct { members, .. } = &module.types[ty].inner else {
            panic!("{}: the uniform block is not a struct", kernel.name());
        };
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            kernel.param_names(),
            "{}: uniform fields",
            kernel.name()
        );
        for (i, m) in members.iter().enumerate() {
            assert_eq!(
                m.offset,
                4 * i as u32,
                "{}: field {} is not packed",
                kernel.name(),
                i
            );
        }
        let entry: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(entry, ["main"], "{}: entry points", kernel.name());
    }
}
