//! The conformance suite on the fast f32 CPU backend, against the f64 reference.

use stde_core::backend::cpu::CpuBackend;
use stde_core::conformance::Tolerance;

stde_core::conformance_tests!(cpu, CpuBackend::new(), Tolerance::F32);

mod single_thread {
    use super::*;
    stde_core::conformance_tests!(cpu_one_thread, CpuBackend::with_threads(1), Tolerance::F32);
}
