//! Tests of the Philox generator and its samplers: known answers, moments, addressing and determinism.

use stde_core::rng::{
    box_muller_f32, philox4x32, sample_ball_points, sample_ball_points_from, sample_index_set,
    solution_coeffs, streams, uniform_f32, uniform_open_f32, Philox,
};

/// Mean and variance of a sample, in f64.
fn mean_var(xs: impl Iterator<Item = f64>) -> (f64, f64, usize) {
    let (mut n, mut s, mut s2) = (0usize, 0.0, 0.0);
    for x in xs {
        n += 1;
        s += x;
        s2 += x * x;
    }
    let m = s / n as f64;
    (m, s2 / n as f64 - m * m, n)
}

/// Asserts `|got − want| ≤ 5·se`.
#[track_caller]
fn within_5_se(what: &str, got: f64, want: f64, se: f64) {
    assert!(
        (got - want).abs() <= 5.0 * se,
        "{what}: got {got}, expected {want} ± 5·{se}"
    );
}

#[test]
fn philox_matches_random123_known_answers() {
    let cases = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [0xffffffff; 4],
            [0xffffffff; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in cases {
        let got = philox4x32(ctr, key);
        assert_eq!(
            got, want,
            "philox4x32({ctr:08x?}, {key:08x?}) = {got:08x?}, expected {want:08x?}"
        );
    }
}

#[test]
fn philox_counter_layout_is_index_step_stream_sub() {
    let seed = 0x0123_4567_89ab_cdef_u64;
    let rng = Philox::new(seed);
    assert_eq!(rng.key(), [0x89ab_cdef, 0x0123_4567]);
    assert_eq!(
        rng.block_sub(7, 11, 13, 17),
        philox4x32([13, 11, 7, 17], [0x89ab_cdef, 0x0123_4567])
    );
    assert_eq!(rng.block(7, 11, 13), rng.block_sub(7, 11, 13, 0));
}

#[test]
fn uniform_conversions_are_exact_and_in_range() {
    assert_eq!(uniform_f32(0), 0.0);
    assert_eq!(uniform_f32(u32::MAX), 1.0 - 2f32.powi(-24));
    assert_eq!(uniform_f32(0x8000_0000), 0.5);
    assert_eq!(uniform_open_f32(0), 2f32.powi(-24));
    assert_eq!(uniform_open_f32(u32::MAX), 1.0 - 2f32.powi(-24));
    // The conversion must be exact: the f32 equals the integer formula evaluated in f64.
    for u in [1u32, 255, 256, 0x1234_5678, 0xdead_beef, 0xffff_ff00] {
        assert_eq!(f64::from(uniform_f32(u)), f64::from(u >> 8) / 16_777_216.0);
        assert_eq!(
            f64::from(uniform_open_f32(u)),
            f64::from((u >> 8) | 1) / 16_777_216.0
        );
    }
}

#[test]
fn uniform_mean_and_variance_match_u01() {
    let rng = Philox::new(42);
    let n_blocks = 250_000u32;
    let xs = (0..n_blocks).flat_map(|i| rng.uniform_f32(streams::RESIDUAL_POINTS, 3, i));
    let (m, v, n) = mean_var(xs.map(f64::from));
    assert_eq!(n, 1_000_000);
    let n = n as f64;
    within_5_se("uniform mean", m, 0.5, (1.0 / 12.0 / n).sqrt());
    // Var[(U − ½)²] = 1/80 − 1/144 = 1/180.
    within_5_se("uniform variance", v, 1.0 / 12.0, (1.0 / 180.0 / n).sqrt());
}

#[test]
fn normal_moments_match_standard_normal() {
    let rng = Philox::new(7);
    let zs: Vec<f64> = (0..250_000u32)
        .flat_map(|i| rng.normal_f32(streams::DENSE_TANGENTS, 0, i))
        .map(f64::from)
        .collect();
    let n = zs.len() as f64;
    let (m, v, _) = mean_var(zs.iter().copied());
    within_5_se("normal mean", m, 0.0, (1.0 / n).sqrt());
    // Var[z²] = 3 − 1 = 2.
    within_5_se("normal variance", v, 1.0, (2.0 / n).sqrt());
    // Var[z⁴] = 105 − 9 = 96.
    let m4 = zs.iter().map(|z| z.powi(4)).sum::<f64>() / n;
    within_5_se("normal fourth moment", m4, 3.0, (96.0 / n).sqrt());
    // The two halves of a pair must be uncorrelated (a wrong angle would correlate them).
    let pairs = zs.chunks(2).map(|p| p[0] * p[1]);
    let (c, _, np) = mean_var(pairs);
    within_5_se("normal pair correlation", c, 0.0, (1.0 / np as f64).sqrt());
}

#[test]
fn normal_f32_is_box_muller_of_the_block_words() {
    let rng = Philox::new(99);
    let b = rng.block(streams::DENSE_TANGENTS, 5, 123);
    let z = rng.normal_f32(streams::DENSE_TANGENTS, 5, 123);
    let u1 = ((b[0] >> 8) | 1) as f32 * 2f32.powi(-24);
    let u2 = ((b[1] >> 8) | 1) as f32 * 2f32.powi(-24);
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f32::consts::TAU * (u2 - 0.5);
    assert_eq!(z[0], r * theta.cos());
    assert_eq!(z[1], r * theta.sin());
    assert_eq!([z[2], z[3]], box_muller_f32(b[2], b[3]));
}

#[test]
fn rademacher_signs_are_balanced_and_follow_the_top_bit() {
    let rng = Philox::new(5);
    let b = rng.block(streams::DENSE_TANGENTS, 1, 2);
    let s = rng.rademacher_f32(streams::DENSE_TANGENTS, 1, 2);
    for w in 0..4 {
        assert_eq!(s[w], if b[w] >> 31 == 1 { -1.0 } else { 1.0 });
    }
    let mut buf = vec![0.0f32; 400_001];
    rng.fill_rademacher_f32(streams::DENSE_TANGENTS, 9, &mut buf);
    assert!(buf.iter().all(|&x| x == 1.0 || x == -1.0));
    let (m, _, n) = mean_var(buf.iter().map(|&x| f64::from(x)));
    within_5_se("rademacher mean", m, 0.0, (1.0 / n as f64).sqrt());
}

#[test]
fn flat_fills_use_block_e_div_4_word_e_mod_4() {
    let rng = Philox::new(31);
    let mut u = vec![0.0f32; 11];
    let mut z = vec![0.0f32; 11];
    rng.fill_uniform_f32(streams::INIT_WEIGHTS, 2, &mut u);
    rng.fill_normal_f32(streams::INIT_WEIGHTS, 2, &mut z);
    for e in 0..11 {
        assert_eq!(
            u[e],
            rng.uniform_f32(streams::INIT_WEIGHTS, 2, (e / 4) as u32)[e % 4]
        );
        assert_eq!(
            z[e],
            rng.normal_f32(streams::INIT_WEIGHTS, 2, (e / 4) as u32)[e % 4]
        );
    }
}

#[test]
fn index_set_is_distinct_in_range_and_uniform() {
    let (d, v, steps) = (50usize, 7usize, 20_000u32);
    let mut counts = vec![0u32; d];
    let mut out = vec![0u32; v];
    for step in 0..steps {
        sample_index_set(1234, step, d, v, &mut out);
        let mut sorted = out.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), v, "step {step}: repeated index in {out:?}");
        assert!(
            out.iter().all(|&i| (i as usize) < d),
            "step {step}: {out:?}"
        );
        for &i in &out {
            counts[i as usize] += 1;
        }
    }
    let p = v as f64 / d as f64;
    let se = (p * (1.0 - p) / f64::from(steps)).sqrt();
    for (i, &c) in counts.iter().enumerate() {
        within_5_se(
            &format!("inclusion frequency of index {i}"),
            f64::from(c) / f64::from(steps),
            p,
            se,
        );
    }
}

#[test]
fn index_set_follows_floyd_on_sequential_words() {
    let (seed, step, d, v) = (77u64, 4u32, 1000usize, 13usize);
    let mut out = vec![0u32; v];
    sample_index_set(seed, step, d, v, &mut out);
    // Re-derive from the documented draw sequence.
    let rng = Philox::new(seed);
    let mut want: Vec<u32> = Vec::new();
    for m in 0..v {
        let u = rng.block(streams::INDEX_SET, step, (m / 4) as u32)[m % 4];
        let j = (d - v + m) as u64;
        let t = ((u64::from(u) * (j + 1)) >> 32) as u32;
        want.push(if want.contains(&t) { j as u32 } else { t });
    }
    assert_eq!(out, want);
}

#[test]
fn index_set_edge_cases() {
    let mut all = vec![0u32; 20];
    sample_index_set(3, 0, 20, 20, &mut all);
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<u32>>());
    sample_index_set(3, 0, 20, 0, &mut []);
    // Large V takes the hash-set path and must agree with the linear scan's definition.
    let (d, v) = (5000usize, 3000usize);
    let mut big = vec![0u32; v];
    sample_index_set(8, 1, d, v, &mut big);
    let mut sorted = big.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), v);
    let rng = Philox::new(8);
    let mut want: Vec<u32> = Vec::with_capacity(v);
    for m in 0..v {
        let u = rng.block(streams::INDEX_SET, 1, (m / 4) as u32)[m % 4];
        let j = (d - v + m) as u64;
        let t = ((u64::from(u) * (j + 1)) >> 32) as u32;
        want.push(if want.contains(&t) { j as u32 } else { t });
    }
    assert_eq!(big, want);
}

#[test]
#[should_panic(expected = "cannot draw")]
fn index_set_rejects_v_above_d() {
    sample_index_set(0, 0, 3, 4, &mut [0; 4]);
}

#[test]
fn ball_points_lie_in_the_ball_with_uniform_radius() {
    let (n, d) = (20_000usize, 7usize);
    let mut pts = vec![0.0f32; n * d];
    sample_ball_points(2024, streams::TEST_POINTS, 0, n, d, &mut pts);
    let radii: Vec<f64> = pts
        .chunks(d)
        .map(|p| p.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt())
        .collect();
    assert!(
        radii.iter().all(|&r| r <= 1.0 + 1e-6),
        "a point left the ball"
    );
    let (m, v, _) = mean_var(radii.iter().copied());
    let nf = n as f64;
    within_5_se("radius mean", m, 0.5, (1.0 / 12.0 / nf).sqrt());
    within_5_se("radius variance", v, 1.0 / 12.0, (1.0 / 180.0 / nf).sqrt());
    // Directions are isotropic: every coordinate of the unit direction has mean 0 and E[x²] = 1/d.
    for k in 0..d {
        let dir = pts.chunks(d).zip(&radii).map(|(p, &r)| f64::from(p[k]) / r);
        let (mk, vk, _) = mean_var(dir);
        within_5_se("direction mean", mk, 0.0, (1.0 / d as f64 / nf).sqrt());
        assert!(
            (vk - 1.0 / d as f64).abs() < 0.01,
            "coordinate {k}: E[x²] = {vk}"
        );
    }
}

#[test]
fn ball_points_follow_the_documented_addressing() {
    let (seed, step, n, d) = (5u64, 3u32, 6usize, 10usize);
    let mut pts = vec![0.0f32; n * d];
    sample_ball_points(seed, streams::RESIDUAL_POINTS, step, n, d, &mut pts);
    let rng = Philox::new(seed);
    for i in 0..n {
        // What a GPU thread per (point, quad) computes, then the per-point normalisation.
        let mut z = Vec::new();
        for q in 0..d.div_ceil(4) {
            let b = rng.block_sub(streams::RESIDUAL_POINTS, step, q as u32, i as u32 + 1);
            z.extend(box_muller_f32(b[0], b[1]));
            z.extend(box_muller_f32(b[2], b[3]));
        }
        z.truncate(d);
        let r = uniform_f32(rng.block_sub(streams::RESIDUAL_POINTS, step, i as u32, 0)[0]);
        let norm = z.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        let scale = f64::from(r) / norm;
        for k in 0..d {
            let want = (f64::from(z[k]) * scale) as f32;
            assert_eq!(pts[i * d + k], want, "point {i} coordinate {k}");
        }
    }
}

#[test]
fn ball_points_drawn_in_chunks_equal_one_draw() {
    let (n, d) = (9usize, 5usize);
    let mut whole = vec![0.0f32; n * d];
    sample_ball_points(1, streams::TEST_POINTS, 0, n, d, &mut whole);
    let mut parts = vec![0.0f32; n * d];
    let (a, b) = parts.split_at_mut(4 * d);
    sample_ball_points_from(1, streams::TEST_POINTS, 0, 0, 4, d, a);
    sample_ball_points_from(1, streams::TEST_POINTS, 0, 4, 5, d, b);
    assert_eq!(whole, parts);
}

#[test]
fn same_seed_same_numbers_other_stream_or_seed_other_numbers() {
    let a = Philox::new(10);
    let b = Philox::new(10);
    assert_eq!(
        a.normal_f32(streams::DENSE_TANGENTS, 4, 8),
        b.normal_f32(streams::DENSE_TANGENTS, 4, 8)
    );
    let all = [
        streams::RESIDUAL_POINTS,
        streams::TEST_POINTS,
        streams::INDEX_SET,
        streams::DENSE_TANGENTS,
        streams::SOLUTION_COEFFS,
        streams::INIT_WEIGHTS,
    ];
    for (i, &s) in all.iter().enumerate() {
        for &t in &all[i + 1..] {
            assert_ne!(s, t, "two streams share the id {s}");
            assert_ne!(a.block(s, 0, 0), a.block(t, 0, 0));
        }
    }
    assert_ne!(a.block(1, 0, 0), Philox::new(11).block(1, 0, 0));
    assert_ne!(a.block(1, 0, 0), a.block(1, 1, 0));

    let (n, d) = (16usize, 3usize);
    let mut p1 = vec![0.0f32; n * d];
    let mut p2 = vec![0.0f32; n * d];
    let mut p3 = vec![0.0f32; n * d];
    sample_ball_points(3, streams::RESIDUAL_POINTS, 0, n, d, &mut p1);
    sample_ball_points(3, streams::RESIDUAL_POINTS, 0, n, d, &mut p2);
    sample_ball_points(3, streams::TEST_POINTS, 0, n, d, &mut p3);
    assert_eq!(p1, p2);
    assert_ne!(p1, p3);

    let mut i1 = [0u32; 5];
    let mut i2 = [0u32; 5];
    sample_index_set(3, 9, 100, 5, &mut i1);
    sample_index_set(3, 9, 100, 5, &mut i2);
    assert_eq!(i1, i2);

    assert_eq!(solution_coeffs(3, 10), solution_coeffs(3, 10));
    assert_ne!(solution_coeffs(3, 10), solution_coeffs(4, 10));
    // The sequence does not depend on its length: a prefix is a prefix.
    assert_eq!(solution_coeffs(3, 7)[..], solution_coeffs(3, 10)[..7]);
}

#[test]
fn solution_coeffs_are_standard_normal() {
    let c = solution_coeffs(17, 200_000);
    let (m, v, n) = mean_var(c.iter().copied());
    let n = n as f64;
    within_5_se("coefficient mean", m, 0.0, (1.0 / n).sqrt());
    within_5_se("coefficient variance", v, 1.0, (2.0 / n).sqrt());
}
