//! Shared by the GPU tests: obtaining a backend, or skipping (with one line on stderr) when no
//! adapter exists, unless `STDE_REQUIRE_GPU=1` makes that a failure.

#![allow(dead_code)]

use stde_core::backend::BackendError;
use stde_wgpu::{WgpuBackend, WgpuParams};

/// Whether a missing adapter must fail the test.
pub fn gpu_required() -> bool {
    std::env::var("STDE_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A backend with `params`, `None` (after printing why) when no adapter exists and a GPU is not
/// required.
///
/// # Panics
/// If no adapter exists and `STDE_REQUIRE_GPU=1`, or on any other backend error.
pub fn backend_with(params: WgpuParams) -> Option<WgpuBackend> {
    match pollster::block_on(WgpuBackend::new(params)) {
        Ok(b) => Some(b),
        Err(BackendError::NoDevice { reason, .. }) => {
            if gpu_required() {
                panic!("STDE_REQUIRE_GPU=1 but no wgpu adapter is available: {reason}");
            }
            eprintln!("skipped: no wgpu adapter ({reason})");
            None
        }
        Err(e) => panic!("creating the wgpu backend failed: {e}"),
    }
}

/// The default backend or a skip.
pub fn backend() -> Option<WgpuBackend> {
    backend_with(WgpuParams::default())
}

/// Builds the backend or returns from the calling test (the skip is printed by `backend_with`).
#[macro_export]
macro_rules! backend_or_skip {
    () => {
        backend_or_skip!(stde_wgpu::WgpuParams::default())
    };
    ($params:expr) => {
        match common::backend_with($params) {
            Some(b) => b,
            None => return,
        }
    };
}

/// Both kernel families, for tests that run once per family.
pub const VARIANTS: [stde_wgpu::KernelVariant; 2] = [
    stde_wgpu::KernelVariant::Tiled,
    stde_wgpu::KernelVariant::Simple,
];
