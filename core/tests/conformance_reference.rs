//! The conformance suite run on the reference backend itself: it must agree with itself exactly,
//! which checks that the suite's cases are well formed.

use stde_core::backend::reference::ReferenceBackend;
use stde_core::conformance::Tolerance;

stde_core::conformance_tests!(reference, ReferenceBackend, Tolerance::EXACT);
