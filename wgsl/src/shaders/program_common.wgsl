// program_common.wgsl: what every kernel of a compiled program (`stde_core::program`) shares: the
// accumulators of its reductions at the current point, and f32 math with the edge cases of the
// f64 interpreter (`stde_core::program::interp`): log of zero and of negatives, exp beyond the
// range of common.wgsl's m_exp, integer powers, atan.
//
// The generated prelude before this file defines DIM, STRIDE (DIM plus one with a time column),
// N_OUT (outputs), N_ACC (accumulators over all loops), N_ACC1 = max(N_ACC, 1) (an array length)
// and WG (invocations per workgroup); the generated body after the kernel file defines the pg_*
// functions the kernel calls.

// No window: the argmax of an empty range, or of a thread's share of one.
const NONE: u32 = 0xffffffffu;

// Value and argmax window of every accumulator at the current point, numbered as `Op::Reduced`
// numbers them (the argmax only for max accumulators).
var<private> acc: array<f32, N_ACC1>;
var<private> arg: array<u32, N_ACC1>;

// A float from its bits, at run time: a constant expression that evaluates to an infinity or a NaN
// is a shader-creation error in WGSL, so non-finite program constants are written this way.
fn f32_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}

// e^x over the whole f32 range: m_exp clamps its argument to [-87, 88].
fn pg_exp(x: f32) -> f32 {
    if x > 88.0 {
        if x > 89.0 {
            return f32_bits(0x7f800000u);
        }
        // e^x = 4 e^(x - 2 ln 2), which overflows to infinity past ln(f32 max) = 88.72.
        return 4.0 * m_exp(x - 1.38629436);
    }
    if x < -87.0 {
        if x < -104.0 {
            return 0.0;
        }
        // Subnormal results, e^x = 2^-25 e^(x + 25 ln 2) (zero where the device flushes them).
        return ldexp(m_exp(x + 17.3286795), -25);
    }
    return m_exp(x);
}

// ln x with ln 0 = -inf, ln inf = inf and NaN below zero, as in f64 (m_log assumes a finite x > 0).
fn pg_log(x: f32) -> f32 {
    if x > 0.0 {
        if x > f32_bits(0x7f7fffffu) {
            return x;
        }
        return m_log(x);
    }
    if x == 0.0 {
        return f32_bits(0xff800000u);
    }
    return f32_bits(0x7fc00000u);
}

// atan x (Cephes atanf): reduction to |t| <= tan(pi/8), then a minimax polynomial.
fn pg_atan(x_in: f32) -> f32 {
    let x = abs(x_in);
    var y = 0.0;
    var t = x;
    if x > 2.41421356 {
        y = 1.57079633;
        t = -1.0 / x;
    } else if x > 0.414213562 {
        y = 0.785398163;
        t = (x - 1.0) / (x + 1.0);
    }
    let z = t * t;
    y += (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z
        - 3.33329491539e-1) * z * t + t;
    return select(y, -y, x_in < 0.0);
}

// a^n by repeated squaring (a^0 = 1 for every a; a negative n is the reciprocal of a^|n|), as f64's
// powi computes it.
fn pg_powi(a: f32, n: i32) -> f32 {
    // |n| as u32, also for the most negative i32.
    var e = select(bitcast<u32>(n), 0u - bitcast<u32>(n), n < 0);
    var base = a;
    var r = 1.0;
    loop {
        if (e & 1u) != 0u {
            r *= base;
        }
        e >>= 1u;
        if e == 0u {
            break;
        }
        base *= base;
    }
    if n < 0 {
        return 1.0 / r;
    }
    return r;
}
