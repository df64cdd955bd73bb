//! The `stde_core::conformance` suite on the wgpu backend, held to `Tolerance::F32`.
//!
//! Without an adapter each test prints one `skipped: no wgpu adapter (…)` line and returns, unless
//! `STDE_REQUIRE_GPU=1`, which turns that into a failure.

mod common;

use stde_core::conformance::Tolerance;

stde_core::conformance_tests!(wgpu, backend_or_skip!(), Tolerance::F32);
