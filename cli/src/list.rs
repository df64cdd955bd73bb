//! `stde list`: the equations, estimators and backends this build offers.

use stde_core::pde::ProblemKind;

use crate::args::BackendArg;
use crate::backends::Chosen;
use crate::say;

/// Prints the lists to stdout.
pub fn run() {
    say!("equations (--equation):");
    for kind in ProblemKind::ALL {
        say!(
            "  {:<24} Δu{} = g, exact solution {}, needs --dim >= {}",
            kind.name(),
            match kind.equation.name() {
                "poisson" => "",
                "allen-cahn" => " + u − u³",
                _ => " + sin u",
            },
            kind.solution.name(),
            kind.solution.min_dim()
        );
    }
    say!("estimators (--estimator):");
    say!("  sparse   V coordinates without replacement, scaled by d/V (needs V <= d) [default]");
    say!("  dense    V Rademacher probe vectors (Hutchinson), scaled by 1/V");
    say!("  exact    all d coordinates (the exact Laplacian; cost grows with d)");
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
