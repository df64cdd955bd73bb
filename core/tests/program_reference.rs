//! Compiled-program conformance of the reference backend (the interpreter against itself through
//! the trait), and the interpreter's series against the jet oracle of [`stde_core::jet::Jet`].

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::ProbeKind;
use stde_core::batch::JetShape;
use stde_core::conformance::Tolerance;
use stde_core::jet::Jet;
use stde_core::program::conformance::{check_programs, pair_windows};
use stde_core::program::interp::{run_primal, run_series, HostProbes};

#[test]
fn reference_backend_passes_program_conformance() {
    if let Err(m) = check_programs(&ReferenceBackend, Tolerance::F32) {
        panic!("{m}");
    }
}

/// The two-body-like program's first output along `x + τ·e_j` equals the same function written
/// with `Jet` arithmetic, coefficient by coefficient.
#[test]
fn one_hot_series_matches_jet_arithmetic() {
    let dim = 6u32;
    let p = pair_windows(dim);
    let x: Vec<f64> = (0..dim).map(|j| 0.1 * f64::from(j) - 0.25).collect();
    let c: Vec<f64> = (0..dim - 1).map(|i| 0.3 + 0.2 * f64::from(i)).collect();
    let order = 4;
    for j in 0..dim as usize {
        let probes = HostProbes {
            kind: ProbeKind::OneHot,
            slot_index: [j as u32]
                .into_iter()
                .chain(std::iter::repeat_n(HostProbes::EMPTY, order - 1))
                .collect(),
            slot_coeff: [1.0].into_iter().chain(vec![0.0; order - 1]).collect(),
            dense: vec![0.0],
        };
        let shape = JetShape {
            order,
            n_dirs: 1,
            n_points: 1,
            width: 3,
            collapsed: false,
        };
        let got = run_series(&p, shape, &x, &probes, &c);
        let xs: Vec<Jet> = (0..dim as usize)
            .map(|i| {
                if i == j {
                    Jet::variable(x[i], order)
                } else {
                    Jet::constant(x[i], order)
                }
            })
            .collect();
        let mut s = Jet::constant(0.0, order);
        for i in 0..dim as usize - 1 {
            let theta = &(&xs[i] + &xs[i + 1].cos()) + &(&xs[i + 1] * &xs[i].cos());
            s = &s + &(&Jet::constant(c[i], order) * &theta.sin());
        }
        let mut r = Jet::constant(0.0, order);
        for xi in &xs {
            r = &r + &(xi * xi);
        }
        let u = &(&Jet::constant(1.0, order) - &r) * &s;
        let want = u.taylor();
        for k in 0..=order {
            let g = got[(shape.block(k, 0)) * 3];
            assert!(
                (g - want[k]).abs() <= 1e-12 * (1.0 + want[k].abs()),
                "direction {j}, coefficient {k}: got {g}, expected {}",
                want[k]
            );
        }
        let primal = run_primal(&p, 1, &x, &[], &c);
        assert!((primal[0] - want[0]).abs() < 1e-12);
    }
}

#[test]
fn cpu_backend_passes_generic_step_conformance() {
    let cpu = stde_core::backend::cpu::CpuBackend::new();
    if let Err(m) = stde_core::generic_conformance::check_generic(&cpu, Tolerance::F32) {
        panic!("{m}");
    }
    if let Err(m) =
        stde_core::generic_conformance::check_generic(&ReferenceBackend, Tolerance::EXACT)
    {
        panic!("{m}");
    }
}
