//! The CPU backend without a working C compiler: automatic native programs fall back to the tape
//! (with the same results), a demand for native programs fails with the compiler named, and
//! temporary files that a killed compilation left behind are cleared.
//! (A test file of its own: it sets the process's `STDE_CC` and `STDE_CACHE_DIR`.)

#[path = "common/forcing_program.rs"]
mod forcing_program;

use stde_core::backend::cpu::NativePrograms;
use stde_core::backend::{BackendError, CpuBackend, ProgramBackend};

#[test]
fn a_missing_compiler_leaves_programs_on_the_tape() {
    let cache = std::env::temp_dir().join(format!("stde-fallback-test-{}", std::process::id()));
    // This file holds one test, so nothing else in the process reads them.
    std::env::set_var("STDE_CACHE_DIR", &cache);
    std::env::set_var("STDE_CC", "/nonexistent/stde-test-cc");
    // What a process killed while compiling leaves behind: removed once over an hour old.
    let dir = cache.join("programs");
    std::fs::create_dir_all(&dir).unwrap();
    let (stale, fresh) = (dir.join("tmp-1-1.c"), dir.join("tmp-2-2.c"));
    for f in [&stale, &fresh] {
        std::fs::write(f, "int x;").unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let program = forcing_program::two_body_forcing(5000);

    let auto = CpuBackend::new().with_native_programs(NativePrograms::Auto);
    let compiled = auto
        .compile_program(&program)
        .expect("auto falls back to the tape");
    assert!(
        !compiled.listing().contains("native code"),
        "{}",
        compiled.listing()
    );
    let tape = CpuBackend::new().with_native_programs(NativePrograms::Never);
    let reference = tape.compile_program(&program).expect("compiles");
    let d = 5000;
    let pts: Vec<f32> = (0..2 * d).map(|i| ((i % 17) as f32 - 8.0) * 1e-3).collect();
    let coeffs: Vec<f32> = (0..d - 1).map(|i| ((i % 5) as f32 - 2.0) * 0.5).collect();
    let mut a = vec![0.0f32; 2 * program.n_outputs()];
    let mut b = a.clone();
    auto.run_program(&compiled, 2, &pts, &vec![], &coeffs, &mut a);
    tape.run_program(&reference, 2, &pts, &vec![], &coeffs, &mut b);
    assert_eq!(a, b);

    let always = CpuBackend::new().with_native_programs(NativePrograms::Always);
    match always.compile_program(&program) {
        Err(BackendError::NoDevice { reason, .. }) => {
            assert!(reason.contains("/nonexistent/stde-test-cc"), "{reason}");
        }
        other => panic!("expected a compiler error, got {other:?}"),
    }
    assert!(!stale.exists(), "a stale temporary file is left");
    assert!(
        fresh.exists(),
        "a recent temporary file (maybe in use) was removed"
    );
    let _ = std::fs::remove_dir_all(&cache);
}
