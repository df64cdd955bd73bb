//! `stde list`: the equations, estimators and backends this build offers.

use crate::args::BackendArg;
use crate::backends::Chosen;
use crate::say;

/// Prints the lists to stdout.
pub fn run() {
    say!("problems (--equation NAME, or --problem FILE for a problem of your own):");
    for (name, _) in stde_core::problem::BUILTIN {
        // Shipped files are read in the tests; a defect would show here as its error.
        match stde_core::problem::builtin(name) {
            Some(Ok(spec)) => {
                let dims = match spec.max_dim {
                    Some(max) => format!("d in {}..={max}", spec.min_dim),
                    None => format!("d >= {}", spec.min_dim),
                };
                say!("  {name:<24} {} ({dims})", spec.description);
            }
            Some(Err(e)) => say!("  {name:<24} unreadable: {e}"),
            None => {}
        }
    }
    say!("estimators (--estimator):");
    say!("  sparse   V coordinates (or windows) without replacement, scaled by d/V (needs V <= d) [default]");
    say!("  dense    V Rademacher (Gaussian for the biharmonic) probe vectors, scaled by 1/V");
    say!("  exact    every coordinate and window (no sampling; cost grows with d)");
    say!("backends (--backend):");
    for b in Chosen::ALL {
        say!(
            "  {:<10} {:<14} {}",
            b.name(),
            if b.available() {
                "available"
            } else {
                "not available"
            },
            b.summary()
        );
    }
    say!("  auto       picks {}", BackendArg::Auto.resolve().name());
    let adapters = stde_wgpu::enumerate_adapters();
    say!("wgpu adapters found: {}", adapters.len());
    for a in adapters {
        say!(
            "  {} ({:?}, {:?}{})",
            a.name,
            a.backend,
            a.device_type,
            if a.is_software { ", software" } else { "" }
        );
    }
}
