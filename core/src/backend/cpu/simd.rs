//! Run-time instruction-set dispatch and the vectorisable f32 building blocks (fast branch-free
//! `tanh`/`exp`/`sin`/`cos`, blocked reductions) that the CPU kernels are written with.
//!
//! The kernels are plain Rust loops over slices (`for h in 0..n { out[h] = f(a[h], …) }`) whose bodies
//! call the `#[inline(always)]`, branch-free scalar functions below, so LLVM's loop vectoriser turns
//! them into full-width vector code. What decides their speed is the instruction set they are
//! compiled for: the default x86-64 target only has SSE2, which runs these loops 4–16× slower than
//! AVX-512. A global `target-cpu=native` would make the binaries non-portable, so
//! [`multiversioned!`] compiles each kernel three times (AVX-512, AVX2+FMA, baseline) and picks one
//! at run time from the [`Simd`] level detected once per backend.

/// The instruction set the hot loops run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Off x86-64 (aarch64, wasm32) only `Baseline` is ever detected.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Simd {
    /// x86-64-v4: AVX-512 F/VL/DQ/BW (plus AVX2, FMA, BMI).
    Avx512,
    /// x86-64-v3: AVX2 and FMA.
    Avx2,
    /// Whatever the compilation target guarantees (SSE2 on x86-64, NEON on aarch64, …).
    Baseline,
}

impl Simd {
    /// The best level this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let v3 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("bmi1")
                && std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("lzcnt")
                && std::arch::is_x86_feature_detected!("popcnt");
            let v4 = v3
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512bw");
            if v4 {
                return Simd::Avx512;
            }
            if v3 {
                return Simd::Avx2;
            }
        }
        Simd::Baseline
    }

    /// A short name for [`crate::backend::Backend::describe`].
    pub(crate) fn name(self) -> &'static str {
        match self {
            Simd::Avx512 => "avx512",
            Simd::Avx2 => "avx2",
            Simd::Baseline => "baseline",
        }
    }
}

/// Defines `fn name(simd: Simd, args…)` whose body is compiled for every [`Simd`] level and dispatched
/// on `simd` at run time.
///
/// The body becomes an `#[inline(always)]` function that is inlined into one `#[target_feature]`
/// wrapper per level, so everything it calls that is `#[inline(always)]` too (the helpers of this
/// module) is compiled with the wider instruction set. Only non-generic signatures are supported;
/// dispatch on enums inside the body to reach generic code.
macro_rules! multiversioned {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        #[allow(unsafe_code)]
        $vis fn $name(simd: $crate::backend::cpu::simd::Simd, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(
                enable = "avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi1,bmi2,lzcnt,popcnt"
            )]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            match simd {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Simd::Avx512` is only produced by `Simd::detect` after
                // `is_x86_feature_detected!` confirmed every feature enabled on `avx512`.
                $crate::backend::cpu::simd::Simd::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, `Simd::Avx2` is only produced after the features of `avx2` were
                // detected.
                $crate::backend::cpu::simd::Simd::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use multiversioned;

/// `1.5·2²³`: adding and subtracting it rounds an f32 of magnitude below 2²² to the nearest integer,
/// and the low mantissa bits of the sum hold that integer (two's complement). Cheaper and more
/// portable than `round()` (which is a libm call on SSE2) or a saturating `as i32`.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x`, relative error ≲ 2 ulp on `[−87, 88]` (inputs are clamped to that range); branch-free, so
/// a loop over a slice calling it vectorises.
///
/// Cody–Waite reduction `x = n·ln 2 + r`, the Cephes `expf` polynomial on `|r| ≤ ln2/2`, and `2^n`
/// assembled from its exponent bits.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn exp_f32(v: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_40e-4;
    let v = if v < -87.0 { -87.0 } else { v };
    let v = if v > 88.0 { 88.0 } else { v };
    let t = v * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = v - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    let p = (((((1.987_569_150_0e-4 * r + 1.398_199_950_7e-3) * r + 8.333_451_907_3e-3) * r
        + 4.166_579_589_4e-2)
        * r
        + 1.666_666_545_9e-1)
        * r
        + 5.000_000_120_1e-1)
        * z
        + r
        + 1.0;
    let n_int = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    p * f32::from_bits(n_int.wrapping_add(127) << 23)
}

/// `(tanh x, 1 − tanh² x)`, branch-free.
///
/// `tanh` is Eigen's rational approximation (odd degree-13 over even degree-6, clamped where f32
/// `tanh` is within 3·10⁻⁷ of ±1), about 2 ulp. The derivative is *not* `1 − b²`: that cancels
/// catastrophically once `|x| ≳ 4` (b² rounds towards 1), and the jet recurrences multiply every
/// coefficient by it. `sech² x = 4t/(1 + t)²` with `t = e^{−2|x|}` keeps its relative accuracy for
/// all x.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn tanh_d_f32(v: f32) -> (f32, f32) {
    const CLAMP: f32 = 7.905_311_107_635_498;
    let c = if v > CLAMP { CLAMP } else { v };
    let c = if c < -CLAMP { -CLAMP } else { c };
    let x2 = c * c;
    let p = ((((((-2.760_768_477_423_55e-16 * x2 + 2.000_187_904_824_77e-13) * x2
        - 8.604_671_522_137_35e-11)
        * x2
        + 5.122_297_090_371_14e-8)
        * x2
        + 1.485_722_357_179_79e-5)
        * x2
        + 6.372_619_288_754_36e-4)
        * x2
        + 4.893_524_558_917_86e-3)
        * c;
    let q = ((1.198_258_394_667_02e-6 * x2 + 1.185_347_056_866_54e-4) * x2
        + 2.268_434_632_439_00e-3)
        * x2
        + 4.893_525_185_543_85e-3;
    let b = if v.abs() < 4e-4 { v } else { p / q };
    let t = exp_f32(-2.0 * v.abs());
    let one_t = 1.0 + t;
    (b, 4.0 * t / (one_t * one_t))
}

/// `(sin x, cos x)`, about 1 ulp for `|x| ≤ 8192`; branch-free. Callers fix larger arguments with
/// [`sin_cos_fixup`].
///
/// `x = j·π/2 + r` with π/2 split in three parts (the products with the first two are exact for
/// `|j| < 2¹³`), the Cephes minimax polynomials on `|r| ≤ π/4`, and the quadrant `j mod 4` applied
/// with a swap and sign flips.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn sin_cos_f32(v: f32) -> (f32, f32) {
    const PIO2_1: f32 = 1.570_312_5;
    const PIO2_2: f32 = 4.837_512_969_970_703_125e-4;
    const PIO2_3: f32 = 7.549_789_954_891_882e-8;
    let t = v * std::f32::consts::FRAC_2_PI + ROUND_MAGIC;
    let j = t - ROUND_MAGIC;
    let q = t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let r = v - j * PIO2_1 - j * PIO2_2 - j * PIO2_3;
    let z = r * r;
    let sr = r + r * z * ((-1.951_529_589_1e-4 * z + 8.332_160_873_6e-3) * z - 1.666_665_461_1e-1);
    let cr = 1.0 - 0.5 * z
        + z * z
            * ((2.443_315_711_809_948e-5 * z - 1.388_731_625_493_765e-3) * z
                + 4.166_664_568_298_827e-2);
    let swap = q & 1 != 0;
    let (ss, cc) = if swap { (cr, sr) } else { (sr, cr) };
    // sin is negative in quadrants 2, 3; cos in quadrants 1, 2.
    (
        f32::from_bits(ss.to_bits() ^ ((q & 2) << 30)),
        f32::from_bits(cc.to_bits() ^ ((q.wrapping_add(1) & 2) << 30)),
    )
}

/// Above this magnitude the reduction of [`sin_cos_f32`] loses accuracy (`j·PIO2_2` stops being
/// exact).
const SINCOS_FAST_LIMIT: f32 = 8192.0;

/// Recomputes with `std` the entries of `s`, `c` whose argument exceeds the fast reduction's range.
#[inline(always)]
pub(crate) fn sin_cos_fixup(x: &[f32], s: &mut [f32], c: &mut [f32]) {
    let any_large = x
        .iter()
        .fold(false, |acc, v| acc | (v.abs() > SINCOS_FAST_LIMIT));
    if any_large {
        for ((xv, sv), cv) in x.iter().zip(s.iter_mut()).zip(c.iter_mut()) {
            if xv.abs() > SINCOS_FAST_LIMIT {
                (*sv, *cv) = xv.sin_cos();
            }
        }
    }
}

/// `acc[h] += Σ_r rows[r·width + h]` in f64 (column sums of a row-major block).
#[inline(always)]
pub(crate) fn add_columns(rows: &[f32], width: usize, acc: &mut [f64]) {
    let acc = &mut acc[..width];
    for row in rows.chunks_exact(width) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += f64::from(v);
        }
    }
}

/// `atan x`, about 2 ulp for every finite `x` (±π/2 at ±∞, NaN stays NaN); branch-free.
///
/// Cephes `atanf`: `|x|` is reduced below `tan(π/8)` with `atan x = π/4 + atan((x−1)/(x+1))` above
/// `tan(π/8)` and `atan x = π/2 − atan(1/x)` above `tan(3π/8)` (one division either way, chosen by
/// selects), then an odd degree-9 polynomial; the sign is copied back from `x`.
#[allow(clippy::excessive_precision)]
#[inline(always)]
pub(crate) fn atan_f32(v: f32) -> f32 {
    let x = v.abs();
    let big = x > 2.414_213_562_373_095;
    let mid = x > 0.414_213_562_373_095;
    let num = if big {
        -1.0
    } else if mid {
        x - 1.0
    } else {
        x
    };
    let den = if big {
        x
    } else if mid {
        x + 1.0
    } else {
        1.0
    };
    let base = if big {
        std::f32::consts::FRAC_PI_2
    } else if mid {
        std::f32::consts::FRAC_PI_4
    } else {
        0.0
    };
    let r = num / den;
    let z = r * r;
    let p = (((8.053_744_495_38e-2 * z - 1.387_768_560_32e-1) * z + 1.997_771_064_78e-1) * z
        - 3.333_294_915_39e-1)
        * z
        * r
        + r;
    let y = base + p;
    // y ≥ 0 here, so or-ing in the sign bit of v gives atan(v) = sign(v)·atan|v|.
    f32::from_bits(y.to_bits() | (v.to_bits() & 0x8000_0000))
}
