//! The `stde_core::conformance` suite on the wgpu backend, held to `Tolerance::F32`, once per
//! kernel family: the GPU kernels (`Tiled`) and the software-adapter kernels (`Simple`), each
//! forced whatever the adapter, so that both are checked on every machine.
//!
//! Without an adapter each test prints one `skipped: no wgpu adapter (…)` line and returns, unless
//! `STDE_REQUIRE_GPU=1`, which turns that into a failure.

mod common;

use stde_core::conformance::Tolerance;
use stde_wgpu::{KernelVariant, WgpuParams};

fn params(kernel_variant: KernelVariant) -> WgpuParams {
    WgpuParams {
        kernel_variant,
        ..WgpuParams::default()
    }
}

stde_core::conformance_tests!(
    wgpu_tiled,
    backend_or_skip!(params(KernelVariant::Tiled)),
    Tolerance::F32
);
stde_core::conformance_tests!(
    wgpu_simple,
    backend_or_skip!(params(KernelVariant::Simple)),
    Tolerance::F32
);

/// `stde_core::program::conformance::check_programs` (compiled programs in primal and series mode
/// against the f64 interpreter) once per kernel family.
mod programs {
    use super::*;
    use stde_core::program::conformance::check_programs;

    fn run(kernel_variant: KernelVariant) {
        let b = backend_or_skip!(params(kernel_variant));
        if let Err(m) = check_programs(&b, Tolerance::F32) {
            panic!("program conformance failure ({kernel_variant:?}): {m}");
        }
    }

    #[test]
    fn programs_tiled() {
        run(KernelVariant::Tiled);
    }

    #[test]
    fn programs_simple() {
        run(KernelVariant::Simple);
    }
}
