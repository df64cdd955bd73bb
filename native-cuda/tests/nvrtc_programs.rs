//! Compiles the CUDA C generated from programs with NVRTC for `sm_80` and `sm_90` (no GPU or driver
//! needed), failing on any compile error or warning: the hand-built programs of `program_cases`
//! (every op, function and reduction kind, time columns) in primal mode and in series mode at jet
//! orders 1..=6, and random programs.
//!
//! Without the NVRTC library each test prints one `skipped: NVRTC not found (…)` line to stderr and
//! passes, unless `STDE_REQUIRE_NVRTC=1` (set by CI after `source .ci/nvrtc.sh`), which makes a missing
//! library a failure.

mod program_cases;

use proptest::prelude::*;
use stde_core::program::Program;
use stde_cuda::codegen::{self, Unit};
use stde_cuda::kernels::{self, CHECKED_ARCHS};

/// Whether NVRTC is here; `false` after printing the skip line, a panic if it is required.
fn nvrtc_or_skip() -> bool {
    if kernels::nvrtc_available() {
        return true;
    }
    let why = "libnvrtc.so.13 is not on the library path; `source .ci/nvrtc.sh` installs it";
    if std::env::var("STDE_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!("STDE_REQUIRE_NVRTC=1 but NVRTC cannot be loaded: {why}");
    }
    eprintln!("skipped: NVRTC not found ({why})");
    false
}

/// Compiles `unit` for every checked architecture; a description of each failure or warning.
fn compile_everywhere(unit: &Unit) -> Vec<String> {
    let mut failures = Vec::new();
    for arch in CHECKED_ARCHS {
        match codegen::compile_unit(unit, arch) {
            Ok(program) => {
                if program.has_warnings() {
                    failures.push(format!(
                        "{} for {}: warnings:\n{}",
                        unit.name,
                        arch.sm(),
                        program.log
                    ));
                }
                for kernel in unit.kernels {
                    let entry = format!(".entry {}(", kernel.entry());
                    if !program.ptx.contains(&entry) {
                        failures.push(format!(
                            "{} for {}: the PTX has no entry point {}",
                            unit.name,
                            arch.sm(),
                            kernel.entry()
                        ));
                    }
                }
                if program.cubin.is_none() {
                    failures.push(format!(
                        "{} for {}: NVRTC made no cubin",
                        unit.name,
                        arch.sm()
                    ));
                }
            }
            Err(e) => failures.push(format!("{} for {}: {e}", unit.name, arch.sm())),
        }
    }
    failures
}

/// The units of a program: primal, and series at `orders` unless it reads features.
fn units(program: &Program, orders: impl IntoIterator<Item = usize>) -> Vec<Unit> {
    let mut v = vec![codegen::primal_unit(program).expect("the program is well formed")];
    if !program.reads_features() {
        for k in orders {
            v.push(codegen::series_unit(program, k).expect("the program is well formed"));
        }
    }
    v
}

#[test]
fn generated_programs_compile_cleanly_for_sm80_and_sm90() {
    if !nvrtc_or_skip() {
        return;
    }
    let (major, minor) = kernels::nvrtc_version().expect("NVRTC reports its version");
    let mut failures = Vec::new();
    let mut compiled = 0;
    for (name, program) in program_cases::all_programs() {
        // Every order on one program; two orders on the others keep the test short.
        let orders: Vec<usize> = if name.starts_with("mixed-operands d=6") {
            (1..=6).collect()
        } else {
            vec![1, 4]
        };
        for unit in units(&program, orders) {
            failures.extend(compile_everywhere(&unit));
            compiled += CHECKED_ARCHS.len();
        }
    }
    assert!(
        failures.is_empty(),
        "{} generated programs failed or warned under NVRTC {major}.{minor}:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("nvrtc {major}.{minor}: {compiled} generated programs compiled cleanly");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_compile_cleanly(program in program_cases::arb_program(), order in 1usize..=6) {
        if !nvrtc_or_skip() {
            return Ok(());
        }
        let failures: Vec<String> = units(&program, [order])
            .iter()
            .flat_map(compile_everywhere)
            .collect();
        prop_assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}
