//! Generated program kernels on the emulator against the f64 interpreter
//! (`stde_core::program::interp`), beyond core's program conformance suite (the `programs` test of
//! the conformance macro in `emulated.rs`): the hand-built programs of `program_cases` in every point
//! layout and at jet orders 1..=6 with one-hot and dense probes, and random programs in every
//! layout.

use proptest::prelude::*;
use stde_core::backend::{Backend, ProbeKind, ProgramBackend, SlotProbes};
use stde_core::batch::JetShape;
use stde_core::program::interp::HostProbes;
use stde_cuda::codegen::PointLayout;
use stde_cuda::exec::Engine;

use super::program_cases::{self, check_primal, check_series, download, inputs, upload};
use super::{emulated_or_skip, Emulator};

type Emulated = Engine<Emulator>;

#[test]
fn hand_built_programs_match_the_interpreter_in_every_layout() {
    let b = emulated_or_skip!();
    for (name, p) in program_cases::all_programs() {
        for layout in PointLayout::ALL {
            // 11 points: more than a block of warps serves (8), fewer than a block of threads.
            check_primal(&b, &name, &p, 11, layout).unwrap_or_else(|m| panic!("{m}"));
        }
    }
}

#[test]
fn hand_built_programs_match_the_interpreter_in_series_at_orders_1_to_6() {
    let b = emulated_or_skip!();
    for (name, p) in program_cases::series_programs() {
        let every_order =
            name.starts_with("mixed-operands d=6") || name.starts_with("window-functions d=5");
        let orders: Vec<usize> = if every_order {
            (1..=6).collect()
        } else {
            vec![2, 5]
        };
        for order in orders {
            check_series(&b, &name, &p, 3, order, 5, PointLayout::for_program(&p))
                .unwrap_or_else(|m| panic!("{m}"));
        }
    }
    // The accumulators stored by the warp and block reductions feed the series kernel too.
    let p = program_cases::mixed_operands(6);
    for layout in [PointLayout::Warp, PointLayout::Block] {
        check_series(&b, "mixed-operands d=6", &p, 3, 3, 4, layout)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn long_loops_match_the_interpreter_in_every_layout() {
    // Many windows per lane, and per warp of a block.
    let b = emulated_or_skip!();
    let p = program_cases::window_functions(5000);
    for layout in PointLayout::ALL {
        check_primal(&b, "window-functions d=5000", &p, 3, layout)
            .unwrap_or_else(|m| panic!("{m}"));
        check_series(&b, "window-functions d=5000", &p, 2, 2, 3, layout)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}

#[test]
fn one_hot_directions_write_every_coefficient_block() {
    // A direction whose slots are all empty moves nothing: every coefficient above 0 is exactly 0.
    let b = emulated_or_skip!();
    let p = program_cases::window_functions(9);
    let (n, order, n_dirs) = (2, 3, 2);
    let shape = JetShape {
        order,
        n_dirs,
        n_points: n,
        width: p.n_outputs(),
        collapsed: false,
    };
    let compiled = b.compile_program(&p).expect("the program builds");
    let (pts, _, params) = inputs(&p, n, 17);
    let probes = HostProbes {
        kind: ProbeKind::OneHot,
        slot_index: vec![HostProbes::EMPTY; n_dirs * order],
        slot_coeff: vec![0.0; n_dirs * order],
        dense: vec![0.0],
    };
    let mut idx = b.alloc_idx(n_dirs * order, "slots").expect("alloc");
    b.upload_idx(&mut idx, &probes.slot_index);
    let coeff = upload(&b, &probes.slot_coeff);
    let (pb, qb) = (upload(&b, &pts), upload(&b, &params));
    let mut out = b.alloc(shape.len(), "series").expect("alloc");
    b.upload(&mut out, 0, &vec![f32::NAN; shape.len()]);
    let sp = SlotProbes::<Emulated> {
        kind: ProbeKind::OneHot,
        slot_index: &idx,
        slot_coeff: &coeff,
        dense: &coeff,
    };
    b.run_program_series(&compiled, shape, &pb, &sp, &qb, &mut out);
    let got = download(&b, &out, shape.len());
    let primal_len = n * p.n_outputs();
    assert!(got[..primal_len].iter().all(|v| v.is_finite()), "{got:?}");
    assert!(got[primal_len..].iter().all(|&v| v == 0.0), "{got:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_programs_match_the_interpreter(
        program in program_cases::arb_program(),
        order in 1usize..=6,
        layout in prop::sample::select(PointLayout::ALL.to_vec()),
    ) {
        let Some(b) = emulated_or_skip() else {
            return Ok(());
        };
        let result = check_primal(&b, "random", &program, 4, layout)
            .and_then(|()| check_series(&b, "random", &program, 2, order, 3, layout));
        prop_assert!(result.is_ok(), "{:?}\n{program:?}", result.err());
    }
}
