//! Compiles every CUDA kernel file at every jet order it is specialised for, for `sm_80` and `sm_90`,
//! with NVRTC (no GPU or driver needed), failing on any compile error or warning.
//!
//! Without the NVRTC library the test prints one `skipped: NVRTC not found (…)` line to stderr and
//! passes, unless `STDE_REQUIRE_NVRTC=1` (set by CI after `source .ci/nvrtc.sh`), which makes a missing
//! library a failure.

use stde_cuda::kernels::{self, Source, CHECKED_ARCHS};

#[test]
fn every_kernel_file_compiles_cleanly_for_sm80_and_sm90() {
    if !kernels::nvrtc_available() {
        let why = "libnvrtc.so.13 is not on the library path; `source .ci/nvrtc.sh` installs it";
        if std::env::var("STDE_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("STDE_REQUIRE_NVRTC=1 but NVRTC cannot be loaded: {why}");
        }
        eprintln!("skipped: NVRTC not found ({why})");
        return;
    }
    let (major, minor) = kernels::nvrtc_version().expect("NVRTC reports its version");
    let mut failures = Vec::new();
    let mut compiled = 0usize;
    for arch in CHECKED_ARCHS {
        for source in Source::ALL {
            let (mut ptx_bytes, mut cubin_bytes, mut programs) = (0usize, 0usize, 0usize);
            for order in source.orders() {
                let name = kernels::program_name(source, order);
                match kernels::compile(source, order, arch) {
                    Ok(program) => {
                        if program.has_warnings() {
                            failures.push(format!(
                                "{name} for {}: warnings:\n{}",
                                arch.sm(),
                                program.log
                            ));
                        }
                        for kernel in source.kernels() {
                            // Entry points are `extern "C"`, so their PTX names are unmangled.
                            let entry = format!(".entry {}(", kernel.entry());
                            if !program.ptx.contains(&entry) {
                                failures.push(format!(
                                    "{name} for {}: the PTX has no entry point {}",
                                    arch.sm(),
                                    kernel.entry()
                                ));
                            }
                        }
                        if program.cubin.is_none() {
                            failures.push(format!("{name} for {}: NVRTC made no cubin", arch.sm()));
                        }
                        ptx_bytes += program.ptx.len();
                        cubin_bytes += program.cubin.as_ref().map_or(0, Vec::len);
                        programs += 1;
                        compiled += 1;
                    }
                    Err(e) => failures.push(format!("{name} for {}: {e}", arch.sm())),
                }
            }
            eprintln!(
                "nvrtc {major}.{minor} {}: {} ({programs} program{}): PTX {ptx_bytes} bytes, cubin {cubin_bytes} bytes",
                arch.sm(),
                source.file_name(),
                if programs == 1 { "" } else { "s" },
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the NVRTC compilations failed or warned:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("nvrtc: {compiled} programs compiled cleanly");
}
