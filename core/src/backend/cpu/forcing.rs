//! The closed-form forcing `g = Δu* + f(u*)` and the exact solution `u*` at one point, vectorised over
//! the `d − 1` (two-body) or `d − 2` (three-body) terms, for [`super::CpuBackend::forcing`].
//!
//! The formulas are those of [`crate::pde`] (see the derivations on [`crate::pde::ExactSolution`]):
//! per point we need `‖x‖²` and three sums over the terms, then combine them in f64. Terms are
//! evaluated in f32 with the fast `sin`/`cos`/`exp` of [`super::simd`] (about 1 ulp on the small
//! arguments that occur here, `|x_i| ≤ 1`), summed in f32 per position over at most 16 blocks of 256
//! terms and folded into f64, so the sums keep ~1e-7 relative accuracy even at `d = 10⁶`. Points
//! with huge coordinates (never produced by the ball sampler) take an f64 `std` path instead.

use crate::backend::{Nonlinearity, SolutionKind};

use super::simd::{exp_f32, multiversioned, sin_cos_f32, sum_squares};

/// Terms per block: the temporaries are a few `[f32; BLOCK]` arrays on the stack, and every step is
/// a `for h in 0..len` loop that vectorises at full width.
const BLOCK: usize = 256;

/// Blocks per fold of the per-position f32 partial sums into f64 (at most 16 terms per partial).
const FOLD_BLOCKS: usize = 16;

/// Adds the per-position partial sums into their f64 totals and clears them. (Float sums are kept
/// per position because a running scalar sum would not vectorise without reassociation.)
#[inline(always)]
fn fold<const M: usize>(acc: &mut [[f32; BLOCK]; M], total: &mut [f64; M]) {
    for (a, t) in acc.iter_mut().zip(total.iter_mut()) {
        *t += a.iter().map(|&v| f64::from(v)).sum::<f64>();
        *a = [0.0; BLOCK];
    }
}

/// Two-body sums `[S, ΔS, x·∇S]` over the terms `c_i sin θ_i`, `θ_i = x_i + cos x_{i+1} + x_{i+1} cos x_i`.
///
/// `sin`/`cos` of each coordinate are computed once per block into arrays whose entry 0 carries the
/// last coordinate of the previous block, so term `h` reads `x_i` at `h` and `x_{i+1}` at `h + 1`.
/// Needs `|x_i| ≤ FAST_COORD_LIMIT` (then `|θ|` stays inside the fast `sin`/`cos` range).
#[inline(always)]
fn two_body(coeffs: &[f32], x: &[f32]) -> [f64; 3] {
    let n_terms = x.len().saturating_sub(1);
    let mut total = [0.0f64; 3];
    if n_terms == 0 {
        return total;
    }
    let mut acc = [[0.0f32; BLOCK]; 3];
    let (mut sx, mut cx) = ([0.0f32; BLOCK + 1], [0.0f32; BLOCK + 1]);
    let mut carry = sin_cos_f32(x[0]);
    for (blk, i0) in (0..n_terms).step_by(BLOCK).enumerate() {
        let len = BLOCK.min(n_terms - i0);
        let (a, b, c) = (
            &x[i0..i0 + len],
            &x[i0 + 1..i0 + 1 + len],
            &coeffs[i0..i0 + len],
        );
        (sx[0], cx[0]) = carry;
        {
            let (sn, cn) = (&mut sx[1..=len], &mut cx[1..=len]);
            for h in 0..len {
                (sn[h], cn[h]) = sin_cos_f32(b[h]);
            }
        }
        carry = (sx[len], cx[len]);
        let (sa, ca) = (&sx[..len], &cx[..len]);
        let (sb, cb) = (&sx[1..=len], &cx[1..=len]);
        let [acc_s, acc_lap, acc_xg] = &mut acc;
        let (acc_s, acc_lap, acc_xg) = (&mut acc_s[..len], &mut acc_lap[..len], &mut acc_xg[..len]);
        for h in 0..len {
            let theta = a[h] + cb[h] + b[h] * ca[h];
            let (st, ct) = sin_cos_f32(theta);
            let ta = 1.0 - b[h] * sa[h];
            let tb = ca[h] - sb[h];
            let taa = -b[h] * ca[h];
            let tbb = -cb[h];
            acc_s[h] += c[h] * st;
            acc_lap[h] += c[h] * (ct * (taa + tbb) - st * (ta * ta + tb * tb));
            acc_xg[h] += c[h] * ct * (a[h] * ta + b[h] * tb);
        }
        if blk % FOLD_BLOCKS == FOLD_BLOCKS - 1 {
            fold(&mut acc, &mut total);
        }
    }
    fold(&mut acc, &mut total);
    total
}

/// Three-body sums `[S, A, B]` with `S = Σ c_i e^{p_i}`, `A = Σ c_i e^{p_i}(a²b² + b²e² + a²e²)`,
/// `B = Σ c_i e^{p_i} p_i`, `p_i = x_i x_{i+1} x_{i+2}`; then `Δu* = φA − 12B − 2dS`.
#[inline(always)]
fn three_body(coeffs: &[f32], x: &[f32]) -> [f64; 3] {
    let n_terms = x.len().saturating_sub(2);
    let mut total = [0.0f64; 3];
    let mut acc = [[0.0f32; BLOCK]; 3];
    for (blk, i0) in (0..n_terms).step_by(BLOCK).enumerate() {
        let len = BLOCK.min(n_terms - i0);
        let (a, b, e) = (
            &x[i0..i0 + len],
            &x[i0 + 1..i0 + 1 + len],
            &x[i0 + 2..i0 + 2 + len],
        );
        let c = &coeffs[i0..i0 + len];
        let [acc_s, acc_a, acc_b] = &mut acc;
        let (acc_s, acc_a, acc_b) = (&mut acc_s[..len], &mut acc_a[..len], &mut acc_b[..len]);
        for h in 0..len {
            let p = a[h] * b[h] * e[h];
            let w = c[h] * exp_f32(p);
            let (a2, b2, e2) = (a[h] * a[h], b[h] * b[h], e[h] * e[h]);
            acc_s[h] += w;
            acc_a[h] += w * (a2 * b2 + b2 * e2 + a2 * e2);
            acc_b[h] += w * p;
        }
        if blk % FOLD_BLOCKS == FOLD_BLOCKS - 1 {
            fold(&mut acc, &mut total);
        }
    }
    fold(&mut acc, &mut total);
    total
}

/// The sums of [`two_body`] / [`three_body`] in f64 with `std` functions: the path for points with
/// coordinates beyond the fast range (never the unit ball's).
fn sums_f64(solution: SolutionKind, coeffs: &[f32], x: &[f32]) -> [f64; 3] {
    let mut t = [0.0f64; 3];
    match solution {
        SolutionKind::TwoBody => {
            for (c, w) in coeffs.iter().zip(x.windows(2)) {
                let (c, a, b) = (f64::from(*c), f64::from(w[0]), f64::from(w[1]));
                let (sin_a, cos_a) = a.sin_cos();
                let (sin_b, cos_b) = b.sin_cos();
                let (st, ct) = (a + cos_b + b * cos_a).sin_cos();
                let (ta, tb) = (1.0 - b * sin_a, cos_a - sin_b);
                t[0] += c * st;
                t[1] += c * (ct * (-b * cos_a - cos_b) - st * (ta * ta + tb * tb));
                t[2] += c * ct * (a * ta + b * tb);
            }
        }
        SolutionKind::ThreeBody => {
            for (c, w) in coeffs.iter().zip(x.windows(3)) {
                let (a, b, e) = (f64::from(w[0]), f64::from(w[1]), f64::from(w[2]));
                let p = a * b * e;
                let ce = f64::from(*c) * p.exp();
                t[0] += ce;
                t[1] += ce * (a * a * b * b + b * b * e * e + a * a * e * e);
                t[2] += ce * p;
            }
        }
    }
    t
}

/// Coordinates up to this magnitude keep every fast `sin`/`cos`/`exp` argument in range
/// (`|θ| ≤ 2|x| + 1`, and `exp` of `p` is only used where `|p|` is moderate; see [`point_sums`]).
const FAST_COORD_LIMIT: f64 = 1000.0;

multiversioned! {
    /// `‖x‖²` and the three term sums of `solution` at the point `x` (see [`two_body`],
    /// [`three_body`]).
    fn point_sums(solution: SolutionKind, coeffs: &[f32], x: &[f32]) -> (f64, [f64; 3]) {
        let sq = sum_squares(x);
        // ‖x‖ bounds every |x_i|; three-body needs |p| = |x_i x_{i+1} x_{i+2}| ≤ ‖x‖³ below exp's
        // clamp at 87, two-body |θ| far below the sin/cos fallback at 8192.
        let limit = match solution {
            SolutionKind::TwoBody => FAST_COORD_LIMIT * FAST_COORD_LIMIT,
            SolutionKind::ThreeBody => 16.0,
        };
        let sums = if sq > limit {
            sums_f64(solution, coeffs, x)
        } else {
            match solution {
                SolutionKind::TwoBody => two_body(coeffs, x),
                SolutionKind::ThreeBody => three_body(coeffs, x),
            }
        };
        (sq, sums)
    }
}

/// `(g(x), u*(x))` at one point, the term sums in f32/f64 as above and the combination in f64.
pub(crate) fn forcing_at(
    simd: super::simd::Simd,
    solution: SolutionKind,
    nonlinearity: Nonlinearity,
    coeffs: &[f32],
    x: &[f32],
) -> (f64, f64) {
    let (sq, [s, p, q]) = point_sums(simd, solution, coeffs, x);
    let phi = 1.0 - sq;
    let d = x.len() as f64;
    let lap = match solution {
        // Δu* = φ·ΔS − 4·x·∇S − 2d·S.
        SolutionKind::TwoBody => phi * p - 4.0 * q - 2.0 * d * s,
        // Δu* = Σ c e^p [φ(a²b² + b²e² + a²e²) − 12p − 2d].
        SolutionKind::ThreeBody => phi * p - 12.0 * q - 2.0 * d * s,
    };
    let u = phi * s;
    (lap + nonlinearity.value(u), u)
}
