//! Counter-based random numbers (Philox4x32-10) and the samplers built on them, specified so that the
//! WGSL and CUDA backends reproduce them: integers and uniforms bit for bit, normals to rounding.
//!
//! # Specification (what every backend must implement)
//!
//! * **Generator.** Philox4x32-10 of Salmon et al. (2011), exactly as in Random123: multipliers
//!   `0xD2511F53` (applied to counter word 0) and `0xCD9E8D57` (word 2), Weyl key increments
//!   `0x9E3779B9`, `0xBB67AE85`, ten rounds, the key bumped between rounds (nine bumps).
//! * **Key.** A `u64` seed becomes the key `[seed as u32, (seed >> 32) as u32]` (low word first).
//! * **Address.** A block of four words is addressed by `(stream, step, index, sub)`, placed in the
//!   counter as `[index, step, stream, sub]`. `stream` is one of the constants in [`streams`], `step`
//!   the training step (or another slowly varying address where a stream is not per-step), `index` the
//!   position inside the step, and `sub` a sub-stream selector that is `0` unless a sampler says
//!   otherwise. Word `w ∈ 0..4` of a block is the `w`-th output word.
//! * **Uniforms in f32.** [`uniform_f32`]`(u) = (u >> 8) as f32 · 2⁻²⁴ ∈ [0, 1)` and
//!   [`uniform_open_f32`]`(u) = ((u >> 8) | 1) as f32 · 2⁻²⁴ ∈ (0, 1)`. Both integers are below `2²⁴`, so
//!   the conversion and the scaling are exact: no rounding mode can make two devices disagree. (The
//!   open form sets the lowest of the 24 bits instead of adding ½: `(u >> 8) + 0.5` needs 25 significant
//!   bits, rounds in f32, and the largest value would round up to exactly `1.0`.)
//! * **Normals in f32.** Box–Muller on one block: from words `(w0, w1)` take `u1 = uniform_open_f32(w0)`,
//!   `u2 = uniform_open_f32(w1)`, `r = sqrt(−2·ln u1)`, `θ = 2π·(u2 − ½)` and return
//!   `z0 = r·cos θ`, `z1 = r·sin θ`; words `(w2, w3)` give `z2, z3` the same way. All arithmetic is f32,
//!   `2π` is the f32 constant `6.2831855`. `u2 − ½` is exact, and keeping `θ` in `(−π, π)` keeps it in
//!   the range where WGSL guarantees the accuracy of `sin`/`cos`. `ln`, `sqrt`, `sin` and `cos` are not
//!   correctly rounded on every device, so normals agree across backends to a few ulps, not bit for bit.
//!   CUDA must use `logf`, `sqrtf`, `sinf`, `cosf` (not the `__` intrinsics or `-use_fast_math`).
//! * **Rademacher signs.** [`rademacher_f32`]`(u) = −1` if bit 31 of `u` is set, else `+1`.
//! * **Flat fills.** Element `e` of a flat buffer filled from `(stream, step)` uses word `e % 4` of the
//!   block at `index = e / 4`, `sub = 0` ([`Philox::fill_uniform_f32`], [`Philox::fill_normal_f32`],
//!   [`Philox::fill_rademacher_f32`]).
//! * **Ball points** ([`sample_ball_points`]) and **index sets** ([`sample_index_set`]) have their own
//!   addressing, written in their docs.
//! * **f64** ([`uniform_f64`], [`box_muller_f64`], [`Philox::normal_f64`]) is host-only: two words make
//!   one 53-bit uniform, and one block makes two normals.

/// Named streams: the `stream` word of the counter, one per consumer, so that no two consumers ever
/// share a block.
pub mod streams {
    /// Residual (collocation) points, one draw per training step.
    pub const RESIDUAL_POINTS: u32 = 1;
    /// Test points, drawn once (step 0).
    pub const TEST_POINTS: u32 = 2;
    /// Sampled dimensions of the sparse estimators ([`super::sample_index_set`]).
    pub const INDEX_SET: u32 = 3;
    /// Dense probe tangents (Gaussian or Rademacher) of the dense estimators.
    pub const DENSE_TANGENTS: u32 = 4;
    /// The coefficients `c_i` of the exact solutions ([`super::solution_coeffs`]).
    pub const SOLUTION_COEFFS: u32 = 5;
    /// Initial model weights.
    pub const INIT_WEIGHTS: u32 = 6;
}

/// Multiplier applied to counter word 0 in each round.
const PHILOX_M0: u32 = 0xD251_1F53;
/// Multiplier applied to counter word 2 in each round.
const PHILOX_M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 (golden ratio).
const PHILOX_W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 (√3 − 1).
const PHILOX_W1: u32 = 0xBB67_AE85;

/// 2⁻²⁴, the spacing of the 24-bit f32 uniforms.
const TWO_POW_M24_F32: f32 = 1.0 / 16_777_216.0;
/// 2⁻⁵³, the spacing of the 53-bit f64 uniforms.
const TWO_POW_M53_F64: f64 = 1.0 / 9_007_199_254_740_992.0;

/// The Philox4x32-10 bijection: ten rounds of the Random123 `philox4x32` function.
///
/// Each round multiplies words 0 and 2 by fixed odd constants, keeps both halves of the 64-bit
/// products, and mixes the high halves with words 1 and 3 and the round key. Branch-free and
/// `#[inline(always)]` so that loops over counters vectorise.
#[inline(always)]
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut ctr = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
        }
        let p0 = u64::from(PHILOX_M0) * u64::from(ctr[0]);
        let p1 = u64::from(PHILOX_M1) * u64::from(ctr[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        ctr = [hi1 ^ ctr[1] ^ k[0], lo1, hi0 ^ ctr[3] ^ k[1], lo0];
    }
    ctr
}

/// A 24-bit uniform in `[0, 1)`: `(u >> 8) as f32 · 2⁻²⁴`, exact in f32.
#[inline(always)]
pub fn uniform_f32(u: u32) -> f32 {
    (u >> 8) as f32 * TWO_POW_M24_F32
}

/// A uniform in the open interval `(0, 1)`: `((u >> 8) | 1) as f32 · 2⁻²⁴`, exact in f32.
///
/// The values are the odd multiples of `2⁻²⁴`, from `2⁻²⁴` to `1 − 2⁻²⁴`, each equally likely, so the
/// mean is exactly ½ and `ln` never sees zero.
#[inline(always)]
pub fn uniform_open_f32(u: u32) -> f32 {
    ((u >> 8) | 1) as f32 * TWO_POW_M24_F32
}

/// A 53-bit uniform in `[0, 1)` from two words (`hi` supplies the top 32 bits). Host only.
pub fn uniform_f64(lo: u32, hi: u32) -> f64 {
    (join(lo, hi) >> 11) as f64 * TWO_POW_M53_F64
}

/// A uniform in `(0, 1)` from two words: the 53-bit integer with its lowest bit set, times `2⁻⁵³`.
/// Host only.
pub fn uniform_open_f64(lo: u32, hi: u32) -> f64 {
    ((join(lo, hi) >> 11) | 1) as f64 * TWO_POW_M53_F64
}

/// `hi·2³² + lo`.
fn join(lo: u32, hi: u32) -> u64 {
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A Rademacher sign from the top bit of a word: `−1` if bit 31 is set, else `+1`.
pub fn rademacher_f32(u: u32) -> f32 {
    if u & 0x8000_0000 != 0 {
        -1.0
    } else {
        1.0
    }
}

/// `ln 2` split so that `e·LN2_HI` is exact for the exponents of f32.
const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// `π/2` rounded to f32.
const PIO2_HI: f32 = 1.570_796_4;
/// `π/2 − PIO2_HI`.
const PIO2_LO: f32 = -4.371_139e-8;
/// `1.5·2²³`: adding and subtracting it rounds an f32 of magnitude below 2²² to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `ln x` for a normal positive f32, by exponent extraction and the series of
/// `ln m = 2·atanh((m − 1)/(m + 1))` on `m ∈ [√2/2, √2)`; relative error below 2e-7.
///
/// Written with plain f32 operations in a fixed order and no branches, so that it gives the same bits
/// on every x86-64/aarch64/wasm32 CPU and in vectorised loops, and a WGSL or CUDA port agrees with it
/// to rounding.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = mantissa > std::f32::consts::SQRT_2;
    let m = if big { mantissa * 0.5 } else { mantissa };
    let e = (exponent + i32::from(big)) as f32;
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let poly = 1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e * LN2_HI + (e * LN2_LO + 2.0 * s * poly)
}

/// `(sin θ, cos θ)` for `|θ| ≤ π` (the Box–Muller angle): reduction by a two-part `π/2` to
/// `|r| ≤ π/4`, Taylor polynomials to `r⁹` and `r¹⁰`, and a quadrant swap; absolute error below 1e-7.
/// Deterministic and branch-free like [`ln_f32`].
#[inline(always)]
pub fn sin_cos_f32(theta: f32) -> (f32, f32) {
    let j = (theta * std::f32::consts::FRAC_2_PI + ROUND_MAGIC) - ROUND_MAGIC;
    let r = (theta - j * PIO2_HI) - j * PIO2_LO;
    let r2 = r * r;
    let s = r + r
        * r2
        * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0))));
    let c = 1.0
        + r2 * (-0.5
            + r2 * (1.0 / 24.0
                + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0)))));
    let quadrant = (j as i32) & 3;
    let (sin_r, cos_r) = if quadrant & 1 == 0 { (s, c) } else { (c, -s) };
    if quadrant & 2 == 0 {
        (sin_r, cos_r)
    } else {
        (-sin_r, -cos_r)
    }
}

/// Box–Muller in f32 on two words: `r = sqrt(−2·ln u1)`, `θ = 2π(u2 − ½)`, returns `[r cos θ, r sin θ]`
/// with `u1, u2` the open uniforms of `w1`, `w2`, `ln` and `sin/cos` from [`ln_f32`] and
/// [`sin_cos_f32`] (so every host backend draws identical bits; GPU ports agree to rounding).
#[inline(always)]
pub fn box_muller_f32(w1: u32, w2: u32) -> [f32; 2] {
    let u1 = uniform_open_f32(w1);
    let u2 = uniform_open_f32(w2);
    let r = (-2.0 * ln_f32(u1)).sqrt();
    // Centring the angle costs nothing (the subtraction is exact) and keeps it where GPU sin/cos are
    // accurate; the distribution of (z0, z1) is unchanged because θ is still uniform on a full turn.
    let (sin_t, cos_t) = sin_cos_f32(std::f32::consts::TAU * (u2 - 0.5));
    [r * cos_t, r * sin_t]
}

/// Box–Muller in f64 on one whole block: words `(0, 1)` make `u1`, words `(2, 3)` make `u2`, with the
/// same formulas as [`box_muller_f32`]. Host only.
pub fn box_muller_f64(block: [u32; 4]) -> [f64; 2] {
    let u1 = uniform_open_f64(block[0], block[1]);
    let u2 = uniform_open_f64(block[2], block[3]);
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f64::consts::TAU * (u2 - 0.5);
    [r * theta.cos(), r * theta.sin()]
}

/// A keyed Philox generator: every draw is a pure function of `(seed, stream, step, index, sub)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Philox {
    key: [u32; 2],
}

impl Philox {
    /// The generator for `seed`; the key is `[low word, high word]`.
    pub fn new(seed: u64) -> Self {
        Self {
            key: [seed as u32, (seed >> 32) as u32],
        }
    }

    /// The Philox key.
    pub fn key(&self) -> [u32; 2] {
        self.key
    }

    /// The block at counter `[index, step, stream, 0]`.
    pub fn block(&self, stream: u32, step: u32, index: u32) -> [u32; 4] {
        self.block_sub(stream, step, index, 0)
    }

    /// The block at counter `[index, step, stream, sub]`.
    pub fn block_sub(&self, stream: u32, step: u32, index: u32, sub: u32) -> [u32; 4] {
        philox4x32([index, step, stream, sub], self.key)
    }

    /// Four uniforms in `[0, 1)` ([`uniform_f32`] of each word of the block).
    pub fn uniform_f32(&self, stream: u32, step: u32, index: u32) -> [f32; 4] {
        self.block(stream, step, index).map(uniform_f32)
    }

    /// Four standard normals: [`box_muller_f32`] on words `(0, 1)` and `(2, 3)`.
    pub fn normal_f32(&self, stream: u32, step: u32, index: u32) -> [f32; 4] {
        let b = self.block(stream, step, index);
        let [z0, z1] = box_muller_f32(b[0], b[1]);
        let [z2, z3] = box_muller_f32(b[2], b[3]);
        [z0, z1, z2, z3]
    }

    /// Four Rademacher signs ([`rademacher_f32`] of each word).
    pub fn rademacher_f32(&self, stream: u32, step: u32, index: u32) -> [f32; 4] {
        self.block(stream, step, index).map(rademacher_f32)
    }

    /// Two standard normals in f64 from one block ([`box_muller_f64`]). Host only.
    pub fn normal_f64(&self, stream: u32, step: u32, index: u32) -> [f64; 2] {
        box_muller_f64(self.block(stream, step, index))
    }

    /// Fills `out` with uniforms: element `e` is word `e % 4` of block `index = e / 4`.
    ///
    /// # Panics
    /// If `out` needs more than `2³²` blocks.
    #[track_caller]
    pub fn fill_uniform_f32(&self, stream: u32, step: u32, out: &mut [f32]) {
        self.fill_flat(out, |b| self.uniform_f32(stream, step, b));
    }

    /// Fills `out` with standard normals: element `e` is normal `e % 4` of block `index = e / 4`.
    ///
    /// # Panics
    /// If `out` needs more than `2³²` blocks.
    #[track_caller]
    pub fn fill_normal_f32(&self, stream: u32, step: u32, out: &mut [f32]) {
        self.fill_flat(out, |b| self.normal_f32(stream, step, b));
    }

    /// Fills `out` with Rademacher signs: element `e` is the sign of word `e % 4` of block `e / 4`.
    ///
    /// # Panics
    /// If `out` needs more than `2³²` blocks.
    #[track_caller]
    pub fn fill_rademacher_f32(&self, stream: u32, step: u32, out: &mut [f32]) {
        self.fill_flat(out, |b| self.rademacher_f32(stream, step, b));
    }

    /// The flat layout shared by the `fill_*` methods.
    #[track_caller]
    fn fill_flat(&self, out: &mut [f32], block: impl Fn(u32) -> [f32; 4]) {
        let blocks = out.len().div_ceil(4);
        assert!(
            blocks as u64 <= 1 << 32,
            "a flat fill of {} elements needs {blocks} blocks, more than the 2^32 a step can address",
            out.len()
        );
        for (b, chunk) in out.chunks_mut(4).enumerate() {
            let words = block(b as u32);
            chunk.copy_from_slice(&words[..chunk.len()]);
        }
    }
}

/// Points in the unit ball of `R^d`, written row-major into `out` (`n × d`): point `i` is
/// `r_i · z_i / ‖z_i‖` with `r_i ~ U[0, 1)` and `z_i` a standard Gaussian vector.
///
/// This is the sampler of the paper's official code, **not** uniform in volume: the radius is uniform,
/// so mass concentrates near the centre (a volume-uniform radius would be `U^{1/d}`). Test and residual
/// points must both come from it to match the paper.
///
/// Same as [`sample_ball_points_from`] with `first = 0`.
///
/// # Panics
/// As [`sample_ball_points_from`].
#[track_caller]
pub fn sample_ball_points(seed: u64, stream: u32, step: u32, n: usize, d: usize, out: &mut [f32]) {
    sample_ball_points_from(seed, stream, step, 0, n, d, out);
}

/// Points `first .. first + n` of the ball sampler of [`sample_ball_points`], so that a large set (the
/// test points at high `d`) can be drawn in chunks and still equal the one-shot draw.
///
/// Addressing, which a GPU thread per (point `i`, quad `q` of coordinates) reproduces:
/// * coordinates `4q .. 4q + 4` of the Gaussian direction of point `i` are the four normals
///   ([`Philox::normal_f32`] formulas) of the block at counter `[q, step, stream, i + 1]`; the extra
///   coordinates of the last quad (when `4 ∤ d`) are discarded;
/// * the radius of point `i` is [`uniform_f32`] of word 0 of the block at counter `[i, step, stream, 0]`.
///
/// The point index lives in the `sub` word rather than being folded into `index` (`i·⌈d/4⌉ + q`),
/// because that product overflows 32 bits for 20 000 test points at `d = 10⁶`.
///
/// The norm `‖z_i‖` is accumulated in f64 here; a GPU reduces in f32 in its own order, so points agree
/// across backends to rounding (like the normals they come from), not bit for bit.
///
/// # Panics
/// If `out.len() != n·d`, if `d` needs more than `2³²` quads, or if a point index reaches `2³² − 1`.
#[track_caller]
#[inline(always)]
pub fn sample_ball_points_from(
    seed: u64,
    stream: u32,
    step: u32,
    first: usize,
    n: usize,
    d: usize,
    out: &mut [f32],
) {
    assert_eq!(
        out.len(),
        n * d,
        "ball points: out has {} values, expected n·d = {n}·{d}",
        out.len()
    );
    let quads = d.div_ceil(4);
    assert!(
        quads as u64 <= 1 << 32,
        "ball points: d = {d} needs more than 2^32 quads"
    );
    assert!(
        ((first + n) as u64) < u64::from(u32::MAX),
        "ball points: point index {} does not fit the sub word",
        first + n
    );
    let key = Philox::new(seed).key();
    for (row, point) in out.chunks_mut(d.max(1)).enumerate().take(n) {
        let i = (first + row) as u32;
        ball_point(key, stream, step, i, point);
    }
}

/// [`philox4x32`] on `L` counters `[c0[l], c1, c2, c3]` at once, word-major: `out[w][l]` is word `w` of
/// lane `l`. Same bits as the scalar function, laid out for vector registers.
#[inline(always)]
fn philox4x32_lanes<const L: usize>(
    c0: [u32; L],
    c1: u32,
    c2: u32,
    c3: u32,
    key: [u32; 2],
) -> [[u32; L]; 4] {
    let mut x = [c0, [c1; L], [c2; L], [c3; L]];
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
        }
        let mut next = [[0u32; L]; 4];
        for l in 0..L {
            let p0 = u64::from(PHILOX_M0) * u64::from(x[0][l]);
            let p1 = u64::from(PHILOX_M1) * u64::from(x[2][l]);
            next[0][l] = ((p1 >> 32) as u32) ^ x[1][l] ^ k[0];
            next[1][l] = p1 as u32;
            next[2][l] = ((p0 >> 32) as u32) ^ x[3][l] ^ k[1];
            next[3][l] = p0 as u32;
        }
        x = next;
    }
    x
}

/// [`box_muller_f32`] on `L` pairs of words at once.
#[inline(always)]
fn box_muller_lanes<const L: usize>(w1: &[u32; L], w2: &[u32; L]) -> ([f32; L], [f32; L]) {
    let mut a = [0f32; L];
    let mut b = [0f32; L];
    for l in 0..L {
        let [x, y] = box_muller_f32(w1[l], w2[l]);
        a[l] = x;
        b[l] = y;
    }
    (a, b)
}

/// Fills one point of the ball sampler (see [`sample_ball_points_from`]). The loop over full quads
/// is branch-free so that it vectorises across quads.
#[inline(always)]
fn ball_point(key: [u32; 2], stream: u32, step: u32, i: u32, point: &mut [f32]) {
    gaussian_direction(key, stream, step, i, point);
    let radius = f64::from(uniform_f32(philox4x32([i, step, stream, 0], key)[0]));
    scale_to_radius(point, radius);
}

/// The standard normals of point `i`: coordinates `4q..4q+4` from the block at counter
/// `[q, step, stream, i + 1]` (the direction of every point sampler).
#[inline(always)]
fn gaussian_direction(key: [u32; 2], stream: u32, step: u32, i: u32, point: &mut [f32]) {
    let d = point.len();
    let full = d / 4;
    let (body, tail) = point.split_at_mut(full * 4);
    // Lanes of quads processed together: every step below is a plain loop over the lanes, which the
    // compiler turns into vector code (16 u32 lanes fill one AVX-512 register).
    const LANES: usize = 16;
    let mut groups = body.chunks_exact_mut(4 * LANES);
    let mut q0 = 0u32;
    for group in &mut groups {
        let mut c0 = [0u32; LANES];
        for (l, c) in c0.iter_mut().enumerate() {
            *c = q0 + l as u32;
        }
        let words = philox4x32_lanes(c0, step, stream, i + 1, key);
        let (z0, z1) = box_muller_lanes(&words[0], &words[1]);
        let (z2, z3) = box_muller_lanes(&words[2], &words[3]);
        for l in 0..LANES {
            group[4 * l] = z0[l];
            group[4 * l + 1] = z1[l];
            group[4 * l + 2] = z2[l];
            group[4 * l + 3] = z3[l];
        }
        q0 += LANES as u32;
    }
    for (q, quad) in groups.into_remainder().chunks_exact_mut(4).enumerate() {
        let b = philox4x32([q0 + q as u32, step, stream, i + 1], key);
        let [z0, z1] = box_muller_f32(b[0], b[1]);
        let [z2, z3] = box_muller_f32(b[2], b[3]);
        quad.copy_from_slice(&[z0, z1, z2, z3]);
    }
    if !tail.is_empty() {
        let b = philox4x32([full as u32, step, stream, i + 1], key);
        let [z0, z1] = box_muller_f32(b[0], b[1]);
        let [z2, z3] = box_muller_f32(b[2], b[3]);
        tail.copy_from_slice(&[z0, z1, z2, z3][..tail.len()]);
    }
}

/// Scales a Gaussian vector to length `radius` (in f64, rounded once).
#[inline(always)]
fn scale_to_radius(point: &mut [f32], radius: f64) {
    // Eight running sums, not one: a single f64 chain is bound by the adder's latency (it was a
    // quarter of a 10 000-D sampler's time); eight lanes fill a vector and keep the f64 accuracy.
    const SUMS: usize = 8;
    let mut sums = [0.0f64; SUMS];
    let mut chunks = point.chunks_exact(SUMS);
    for chunk in &mut chunks {
        for (s, &z) in sums.iter_mut().zip(chunk) {
            *s += f64::from(z) * f64::from(z);
        }
    }
    for (s, &z) in sums.iter_mut().zip(chunks.remainder()) {
        *s += f64::from(z) * f64::from(z);
    }
    let norm = sums.iter().sum::<f64>().sqrt();
    // A zero Gaussian vector cannot occur in practice (r > 0 for every open uniform), but if it
    // did, the origin is a valid point and beats a NaN.
    let scale = if norm > 0.0 { radius / norm } else { 0.0 };
    for z in point.iter_mut() {
        *z = (f64::from(*z) * scale) as f32;
    }
}

/// The radius `r_i ~ U[0, 1)` of point `i` of the ball sampler ([`sample_ball_points_from`]): word 0 of
/// the block at counter `[i, step, stream, 0]`. Points satisfy `‖x_i‖ = r_i` up to f32 rounding, which
/// lets the host know `1 − ‖x‖²` of points drawn on a device.
pub fn ball_radius(seed: u64, stream: u32, step: u32, i: usize) -> f32 {
    uniform_f32(Philox::new(seed).block_sub(stream, step, i as u32, 0)[0])
}

/// `v` distinct indices from `0..d`, without replacement, for step `step` of stream
/// [`streams::INDEX_SET`], written to `out` in the order they are chosen.
///
/// Floyd's algorithm, so that a single GPU thread can run it with `v` words of state. The `m`-th draw
/// (`m = 0, 1, …, v − 1`) takes `u` = word `m % 4` of the block at counter
/// `[m / 4, step, INDEX_SET, 0]`; for `j = d − v + m`:
///
/// ```text
/// t = ((u as u64 · (j + 1) as u64) >> 32)      // uniform on 0..=j, bias below (j+1)/2³²
/// out[m] = if t is among out[..m] { j } else { t }
/// ```
///
/// Every `v`-subset is equally likely (up to that bias); the order is not a uniform permutation
/// (late indices tend to come late), which the estimators do not need.
///
/// # Panics
/// If `v > d`, `out.len() != v`, or `d > 2³²`.
#[track_caller]
pub fn sample_index_set(seed: u64, step: u32, d: usize, v: usize, out: &mut [u32]) {
    sample_index_set_sub(seed, step, 0, d, v, out);
}

/// [`sample_index_set`] on sub-stream `sub` (counter word 3) of the index-set stream: independent
/// draws for other populations in the same step (sub-stream 1 samples the windows of a mixed-window
/// term). Sub-stream 0 is [`sample_index_set`].
///
/// # Panics
/// As [`sample_index_set`].
pub fn sample_index_set_sub(seed: u64, step: u32, sub: u32, d: usize, v: usize, out: &mut [u32]) {
    assert!(
        v <= d,
        "index set: cannot draw {v} distinct indices from 0..{d}"
    );
    assert_eq!(
        out.len(),
        v,
        "index set: out has {} slots, v = {v}",
        out.len()
    );
    assert!(
        d as u64 <= 1 << 32,
        "index set: d = {d} does not fit in u32"
    );
    let rng = Philox::new(seed);
    // A linear scan is what a GPU thread does and is fastest for the usual V ≤ a few hundred; a hash
    // set keeps huge V from going quadratic on the host.
    let mut seen = (v > 256).then(|| std::collections::HashSet::with_capacity(v));
    let mut block = [0u32; 4];
    for m in 0..v {
        if m % 4 == 0 {
            block = rng.block_sub(streams::INDEX_SET, step, (m / 4) as u32, sub);
        }
        let u = block[m % 4];
        let j = (d - v + m) as u64;
        let t = ((u64::from(u) * (j + 1)) >> 32) as u32;
        let taken = match &seen {
            Some(set) => set.contains(&t),
            None => out[..m].contains(&t),
        };
        let pick = if taken { j as u32 } else { t };
        out[m] = pick;
        if let Some(set) = &mut seen {
            set.insert(pick);
        }
    }
}

/// `len` coefficients `c_i ~ N(0, 1)` of the exact solutions, from stream
/// [`streams::SOLUTION_COEFFS`], step 0: `c_i` is normal `i % 2` of [`Philox::normal_f64`] at
/// `index = i / 2`. The sequence does not depend on `len`, so the first `d − 2` coefficients of a
/// three-body problem equal those of the two-body problem with the same seed.
///
/// # Panics
/// If `len > 2³³`.
#[track_caller]
pub fn solution_coeffs(seed: u64, len: usize) -> Vec<f64> {
    assert!(
        len as u64 <= 1 << 33,
        "solution coefficients: {len} is more than one step of the stream can address"
    );
    let rng = Philox::new(seed);
    (0..len)
        .map(|i| rng.normal_f64(streams::SOLUTION_COEFFS, 0, (i / 2) as u32)[i % 2])
        .collect()
}

/// Where the space coordinates of a point sampler come from (every draw is addressed by point, so a
/// large set can be drawn in chunks and equals the one-shot draw).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PointSampler {
    /// The paper's ball: [`sample_ball_points_from`] (radius `U[0,1)` times a normalised Gaussian).
    Ball,
    /// The unit sphere: the normalised Gaussian direction of [`PointSampler::Ball`].
    Sphere,
    /// Every coordinate `lo + (hi − lo)·u`, `u` = [`uniform_f32`] of word `j % 4` of the block at
    /// counter `[j / 4, step, stream, i + 1]`.
    Box {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `std·z` with `z` the normals of [`PointSampler::Ball`]'s direction.
    Gaussian {
        /// Standard deviation.
        std: f32,
    },
    /// `x = √(2t)·z` (the marginal of `dX = √2 dW` from 0), `t` from the time rule, which must
    /// be [`TimeSampler::Uniform`].
    SdeMarginal,
}

/// The time column of sampled points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeSampler {
    /// No time column.
    None,
    /// `t = end·u`, `u` = [`uniform_f32`] of word 1 of the block at counter `[i, step, stream, 0]`.
    Uniform {
        /// `T`.
        end: f32,
    },
    /// Every point at this time.
    Fixed(f32),
}

impl TimeSampler {
    /// Whether rows carry a time column.
    pub fn has_time(self) -> bool {
        !matches!(self, TimeSampler::None)
    }
}

/// Points `first .. first + n` of a sampler: rows of `d` coordinates, plus the time in column `d`
/// when `time` has one.
///
/// # Panics
/// If `out` is not `n` rows long, or [`PointSampler::SdeMarginal`] comes without a uniform time.
#[track_caller]
pub fn sample_points_from(
    seed: u64,
    sampler: PointSampler,
    time: TimeSampler,
    stream: u32,
    step: u32,
    first: usize,
    n: usize,
    d: usize,
    out: &mut [f32],
) {
    let stride = d + usize::from(time.has_time());
    assert_eq!(
        out.len(),
        n * stride,
        "points: out has {} values, expected {n}·{stride}",
        out.len()
    );
    assert!(
        !matches!(sampler, PointSampler::SdeMarginal)
            || matches!(time, TimeSampler::Uniform { .. }),
        "the SDE marginal sampler needs a uniform time"
    );
    let key = Philox::new(seed).key();
    for (row, point) in out.chunks_mut(stride.max(1)).enumerate().take(n) {
        let i = (first + row) as u32;
        let head = philox4x32([i, step, stream, 0], key);
        let t = match time {
            TimeSampler::None => 0.0,
            TimeSampler::Uniform { end } => end * uniform_f32(head[1]),
            TimeSampler::Fixed(t) => t,
        };
        let x = &mut point[..d];
        match sampler {
            PointSampler::Ball => ball_point(key, stream, step, i, x),
            PointSampler::Sphere => {
                gaussian_direction(key, stream, step, i, x);
                scale_to_radius(x, 1.0);
            }
            PointSampler::Gaussian { std } => {
                gaussian_direction(key, stream, step, i, x);
                x.iter_mut().for_each(|v| *v *= std);
            }
            PointSampler::SdeMarginal => {
                gaussian_direction(key, stream, step, i, x);
                let s = (2.0 * t).sqrt();
                x.iter_mut().for_each(|v| *v *= s);
            }
            PointSampler::Box { lo, hi } => {
                for (q, quad) in x.chunks_mut(4).enumerate() {
                    let b = philox4x32([q as u32, step, stream, i + 1], key);
                    for (v, w) in quad.iter_mut().zip(b) {
                        *v = lo + (hi - lo) * uniform_f32(w);
                    }
                }
            }
        }
        if time.has_time() {
            point[d] = t;
        }
    }
}
