//! The `stde_core::conformance` suite on the CUDA backend, held to `Tolerance::F32` (every primitive of
//! `Backend`, `ProgramBackend` and `GenericStep`), and the box sampler bit for bit against the host.
//!
//! Without a usable CUDA device each test prints one `skipped: no CUDA device (…)` line and returns,
//! unless `STDE_REQUIRE_CUDA=1`, which turns that into a failure (`bench/gpu.sh` sets it).

mod common;

use stde_core::conformance::Tolerance;

stde_core::conformance_tests!(cuda, backend_or_skip!(), Tolerance::F32);
