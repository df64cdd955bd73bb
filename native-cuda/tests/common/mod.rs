//! Shared by the GPU tests: opening the CUDA backend, or skipping (with one line on stderr) when no
//! CUDA device is usable, unless `STDE_REQUIRE_CUDA=1` makes that a failure.

#![allow(dead_code)]

use stde_core::backend::BackendError;
use stde_cuda::{CudaBackend, CudaParams};

/// Whether a missing device must fail the test.
pub fn gpu_required() -> bool {
    std::env::var("STDE_REQUIRE_CUDA").is_ok_and(|v| v == "1")
}

/// The backend, or `None` (after printing why) when no CUDA device is usable and none is required.
///
/// # Panics
/// If no device is usable and `STDE_REQUIRE_CUDA=1`, or on any error other than `NoDevice`.
pub fn backend_with(params: CudaParams) -> Option<CudaBackend> {
    match CudaBackend::new(params) {
        Ok(b) => Some(b),
        Err(BackendError::NoDevice { reason, .. }) => {
            if gpu_required() {
                panic!("STDE_REQUIRE_CUDA=1 but no CUDA device is usable: {reason}");
            }
            eprintln!("skipped: no CUDA device ({reason})");
            None
        }
        Err(e) => panic!("opening the CUDA backend failed: {e}"),
    }
}

/// The backend with default parameters, or a skip.
pub fn backend_or_skip() -> Option<CudaBackend> {
    backend_with(CudaParams::default())
}

/// Builds the backend or returns from the calling test (the skip is printed by `backend_with`).
#[macro_export]
macro_rules! backend_or_skip {
    () => {
        match common::backend_or_skip() {
            Some(b) => b,
            None => return,
        }
    };
}
