//! Generated program kernels on a real CUDA device against the f64 interpreter, beyond core's program
//! conformance suite (run by `conformance.rs`): the hand-built programs of `program_cases` in every
//! point layout and at jet orders 1..=6, and long loops (d = 50 000 and 100 000) over many warps and
//! blocks.
//!
//! Without a usable CUDA device each test prints one `skipped: no CUDA device (…)` line and returns,
//! unless `STDE_REQUIRE_CUDA=1`, which turns that into a failure.

mod common;
mod program_cases;

use stde_core::program::conformance::triple_windows_time;
use stde_cuda::codegen::PointLayout;

use program_cases::{check_primal, check_series};

#[test]
fn hand_built_programs_match_the_interpreter_in_every_layout_and_order() {
    let b = backend_or_skip!();
    for (name, p) in program_cases::all_programs() {
        for layout in PointLayout::ALL {
            check_primal(&b, &name, &p, 300, layout).unwrap_or_else(|m| panic!("{m}"));
        }
    }
    for (name, p) in program_cases::series_programs() {
        for order in 1..=6 {
            check_series(&b, &name, &p, 40, order, 7, PointLayout::for_program(&p))
                .unwrap_or_else(|m| panic!("{m}"));
        }
    }
}

#[test]
fn long_loops_match_the_interpreter() {
    let b = backend_or_skip!();
    let p = triple_windows_time(100_000);
    for layout in PointLayout::ALL {
        check_primal(&b, "triple-windows-time d=100000", &p, 3, layout)
            .unwrap_or_else(|m| panic!("{m}"));
    }
    check_series(
        &b,
        "triple-windows-time d=100000",
        &p,
        2,
        4,
        5,
        PointLayout::Block,
    )
    .unwrap_or_else(|m| panic!("{m}"));
    let p = program_cases::window_functions(50_000);
    for layout in PointLayout::ALL {
        check_primal(&b, "window-functions d=50000", &p, 5, layout)
            .unwrap_or_else(|m| panic!("{m}"));
    }
    check_series(
        &b,
        "window-functions d=50000",
        &p,
        3,
        2,
        6,
        PointLayout::Block,
    )
    .unwrap_or_else(|m| panic!("{m}"));
}
