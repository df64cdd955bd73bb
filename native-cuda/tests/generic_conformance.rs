//! The `stde_core::generic_conformance` suite (slot probes, readout, point samplers) on the CUDA
//! backend, held to `Tolerance::F32`.
//!
//! Without a usable CUDA device each test prints one `skipped: no CUDA device (…)` line and returns,
//! unless `STDE_REQUIRE_CUDA=1`, which turns that into a failure (`bench/gpu.sh` sets it).

mod common;

use stde_core::conformance::Tolerance;
use stde_core::generic_conformance as g;

#[test]
fn input_layer_slots_match_the_reference() {
    let b = backend_or_skip!();
    g::check_input_layer_slots(&b, Tolerance::F32).unwrap_or_else(|m| panic!("{m}"));
}

#[test]
fn readout_matches_the_reference() {
    let b = backend_or_skip!();
    g::check_readout(&b, Tolerance::F32).unwrap_or_else(|m| panic!("{m}"));
}

#[test]
fn point_samplers_match_the_reference() {
    let b = backend_or_skip!();
    g::check_sample_points(&b, Tolerance::F32).unwrap_or_else(|m| panic!("{m}"));
}

/// Box coordinates and time columns are uniforms (and products the kernels keep unfused), so they
/// equal `rng::sample_points_from` bit for bit.
#[test]
fn box_points_and_times_are_bit_identical_to_the_host() {
    use stde_core::backend::{Backend, GenericStep, PointSampling};
    use stde_core::rng::{sample_points_from, PointSampler, TimeSampler};
    let b = backend_or_skip!();
    for time in [
        TimeSampler::None,
        TimeSampler::Uniform { end: 0.7 },
        TimeSampler::Fixed(0.3),
    ] {
        let s = PointSampling {
            sampler: PointSampler::Box { lo: -2.0, hi: 3.1 },
            time,
            first: 4,
            n: 9,
            d: 13,
            stream: 9,
        };
        let len = s.n * s.stride();
        let mut buf = b.alloc(len, "points").expect("alloc");
        b.sample_points(s, 11, 5, &mut buf);
        let got = pollster::block_on(b.download(&buf, 0, len)).expect("download");
        let mut want = vec![0.0f32; len];
        sample_points_from(
            11, s.sampler, s.time, s.stream, 5, s.first, s.n, s.d, &mut want,
        );
        stde_core::conformance::compare(&format!("{s:?}"), &got, &want, Tolerance::EXACT)
            .unwrap_or_else(|m| panic!("{m}"));
    }
}
