//! The `stde_core::conformance` suite on the wgpu backend (every primitive, compiled programs and
//! the generic step included), held to `Tolerance::F32`, once per kernel family: the GPU kernels
//! (`Tiled`) and the software-adapter kernels (`Simple`), each forced whatever the adapter, so that
//! both are checked on every machine.
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
