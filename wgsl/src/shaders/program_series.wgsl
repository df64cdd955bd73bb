// program_series.wgsl: truncated Taylor series for the series kernel of a compiled program. A
// Series holds the Taylor coefficients 0..=K (K from the generated prelude) of a value along the
// curve tau -> x + sum_k tau^k v_k; the rules are those of `stde_core::series` (and of
// `stde_core::program::interp::call_series`), in f32.
//
// Every helper takes and returns values, so the generated body is a list of `let` bindings. The
// s_*_c and s_c* forms take one operand as a number (a value that does not move along the curve:
// constants, parameters, reductions over windows that never move), which saves the products with
// its zero coefficients.

alias Series = array<f32, KP1>;

// The pair (sin a, cos a).
struct SinCos {
    s: Series,
    c: Series,
}

fn s_const(c: f32) -> Series {
    var o = Series();
    o[0] = c;
    return o;
}

fn s_neg(a: Series) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        o[k] = -a[k];
    }
    return o;
}

fn s_add(a: Series, b: Series) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        o[k] = a[k] + b[k];
    }
    return o;
}

fn s_sub(a: Series, b: Series) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        o[k] = a[k] - b[k];
    }
    return o;
}

// a + c
fn s_add_c(a: Series, c: f32) -> Series {
    var o = a;
    o[0] = a[0] + c;
    return o;
}

// a - c
fn s_sub_c(a: Series, c: f32) -> Series {
    var o = a;
    o[0] = a[0] - c;
    return o;
}

// c - a
fn s_csub(c: f32, a: Series) -> Series {
    var o = s_neg(a);
    o[0] = c - a[0];
    return o;
}

// a * c
fn s_scale(a: Series, c: f32) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        o[k] = a[k] * c;
    }
    return o;
}

// a / c
fn s_div_c(a: Series, c: f32) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        o[k] = a[k] / c;
    }
    return o;
}

// The Cauchy product o_k = sum_{j<=k} a_j b_{k-j}.
fn s_mul(a: Series, b: Series) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        var t = 0.0;
        for (var j = 0u; j <= k; j++) {
            t += a[j] * b[k - j];
        }
        o[k] = t;
    }
    return o;
}

// a / w: o_k = (a_k - sum_{j=1..k} w_j o_{k-j}) / w_0.
fn s_div(a: Series, w: Series) -> Series {
    var o = Series();
    for (var k = 0u; k < KP1; k++) {
        var t = a[k];
        for (var j = 1u; j <= k; j++) {
            t -= w[j] * o[k - j];
        }
        o[k] = t / w[0];
    }
    return o;
}

// c / w
fn s_cdiv(c: f32, w: Series) -> Series {
    return s_div(s_const(c), w);
}

// e^a: k o_k = sum_{j=1..k} j a_j o_{k-j}.
fn s_exp(a: Series) -> Series {
    var o = Series();
    o[0] = pg_exp(a[0]);
    for (var k = 1u; k <= K; k++) {
        var t = 0.0;
        for (var j = 1u; j <= k; j++) {
            t += f32(j) * a[j] * o[k - j];
        }
        o[k] = t / f32(k);
    }
    return o;
}

// ln a: a_0 o_k = a_k - (1/k) sum_{j=1..k-1} j o_j a_{k-j}.
fn s_log(a: Series) -> Series {
    var o = Series();
    o[0] = pg_log(a[0]);
    for (var k = 1u; k <= K; k++) {
        var t = 0.0;
        for (var j = 1u; j < k; j++) {
            t += f32(j) * o[j] * a[k - j];
        }
        o[k] = (a[k] - t / f32(k)) / a[0];
    }
    return o;
}

// sin a and cos a together: k s_k = sum j a_j c_{k-j}, k c_k = -sum j a_j s_{k-j}.
fn s_sincos(a: Series) -> SinCos {
    var s = Series();
    var c = Series();
    let sc = m_sincos(a[0]);
    s[0] = sc.x;
    c[0] = sc.y;
    for (var k = 1u; k <= K; k++) {
        var ts = 0.0;
        var tc = 0.0;
        for (var j = 1u; j <= k; j++) {
            ts += f32(j) * a[j] * c[k - j];
            tc -= f32(j) * a[j] * s[k - j];
        }
        s[k] = ts / f32(k);
        c[k] = tc / f32(k);
    }
    return SinCos(s, c);
}

fn s_sin(a: Series) -> Series {
    return s_sincos(a).s;
}

fn s_cos(a: Series) -> Series {
    return s_sincos(a).c;
}

// tanh a: k o_k = sum_{j=1..k} j a_j d_{k-j} with d = 1 - o^2 built one coefficient ahead of o.
fn s_tanh(a: Series) -> Series {
    var o = Series();
    var d = Series();
    o[0] = m_tanh(a[0]);
    d[0] = 1.0 - o[0] * o[0];
    for (var k = 1u; k <= K; k++) {
        var t = 0.0;
        for (var j = 1u; j <= k; j++) {
            t += f32(j) * a[j] * d[k - j];
        }
        o[k] = t / f32(k);
        var sq = 0.0;
        for (var i = 0u; i <= k; i++) {
            sq += o[i] * o[k - i];
        }
        d[k] = -sq;
    }
    return o;
}

// atan a: k o_k = sum_{j=1..k} j a_j q_{k-j} with q = 1 / (1 + a^2).
fn s_atan(a: Series) -> Series {
    let q = s_cdiv(1.0, s_add_c(s_mul(a, a), 1.0));
    var o = Series();
    o[0] = pg_atan(a[0]);
    for (var k = 1u; k <= K; k++) {
        var t = 0.0;
        for (var j = 1u; j <= k; j++) {
            t += f32(j) * a[j] * q[k - j];
        }
        o[k] = t / f32(k);
    }
    return o;
}

// sqrt a: 2 o_0 o_k = a_k - sum_{j=1..k-1} o_j o_{k-j}.
fn s_sqrt(a: Series) -> Series {
    var o = Series();
    o[0] = sqrt(a[0]);
    for (var k = 1u; k <= K; k++) {
        var t = a[k];
        for (var j = 1u; j < k; j++) {
            t -= o[j] * o[k - j];
        }
        o[k] = t / (2.0 * o[0]);
    }
    return o;
}

// |a|: the series times the sign of a_0 (+1 at 0).
fn s_abs(a: Series) -> Series {
    if a[0] < 0.0 {
        return s_neg(a);
    }
    return a;
}

// a^n by repeated squaring of series; a negative n is the reciprocal of a^|n|.
fn s_powi(a: Series, n: i32) -> Series {
    var e = select(bitcast<u32>(n), 0u - bitcast<u32>(n), n < 0);
    var base = a;
    var r = s_const(1.0);
    loop {
        if (e & 1u) != 0u {
            r = s_mul(r, base);
        }
        e >>= 1u;
        if e == 0u {
            break;
        }
        base = s_mul(base, base);
    }
    if n < 0 {
        return s_cdiv(1.0, r);
    }
    return r;
}

// a^b = e^(b ln a).
fn s_pow(a: Series, b: Series) -> Series {
    return s_exp(s_mul(b, s_log(a)));
}

// The series of the operand with the smaller primal (a on ties).
fn s_min(a: Series, b: Series) -> Series {
    if b[0] < a[0] {
        return b;
    }
    return a;
}

// The series of the operand with the larger primal (a on ties).
fn s_max(a: Series, b: Series) -> Series {
    if b[0] > a[0] {
        return b;
    }
    return a;
}
