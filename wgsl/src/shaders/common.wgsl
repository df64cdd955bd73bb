// common.wgsl: helpers every kernel shares: workgroup linearisation and accurate f32 math.
//
// WGSL guarantees `sin`/`cos` only to an absolute 2^-11 on [-pi, pi] and specifies `exp`, `log` and
// `tanh` loosely; real drivers (LLVMpipe among them) use fast approximations. The kernels are held
// to an f64 oracle at ~1e-6 relative, so they use these Cephes-style versions, built from +, *,
// floor, round, frexp and ldexp only, which every device evaluates exactly or to within an ulp.

// The index of a workgroup in a (possibly two-dimensional) grid: grids are 2-D only because one
// dimension holds at most 65535 workgroups.
fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// e^x for x in [-87, 88] (clamped outside), to about one ulp (Cephes expf).
fn m_exp(x_in: f32) -> f32 {
    let x = clamp(x_in, -87.0, 88.0);
    let n = floor(x * 1.44269504088896341 + 0.5);
    // ln 2 split in two so that n * C1 is exact.
    var r = x - n * 0.693359375;
    r = r + n * 2.12194440e-4;
    let z = r * r;
    var y = ((((1.9875691500e-4 * r + 1.3981999507e-3) * r + 8.3334519073e-3) * r
        + 4.1665795894e-2) * r + 1.6666665459e-1) * r + 5.0000001201e-1;
    y = y * z + r + 1.0;
    return ldexp(y, i32(n));
}

// ln x for x > 0, to about one ulp (Cephes logf). Accurate also near 1, where Box-Muller needs it.
fn m_log(x_in: f32) -> f32 {
    let fe = frexp(x_in);
    var e = f32(fe.exp);
    var x = fe.fract;
    if x < 0.707106781186547524 {
        e = e - 1.0;
        x = x + x - 1.0;
    } else {
        x = x - 1.0;
    }
    let z = x * x;
    var y = ((((((((7.0376836292e-2 * x - 1.1514610310e-1) * x + 1.1676998740e-1) * x
        - 1.2420140846e-1) * x + 1.4249322787e-1) * x - 1.6668057665e-1) * x
        + 2.0000714765e-1) * x - 2.4999993993e-1) * x + 3.3333331174e-1) * x * z;
    y = y - e * 2.12194440e-4;
    y = y - 0.5 * z;
    return x + y + e * 0.693359375;
}

// (sin x, cos x): reduction by pi/2 in three parts (exact for |x| < 2^15), then the Cephes
// minimax polynomials on [-pi/4, pi/4].
fn m_sincos(x: f32) -> vec2<f32> {
    let q = round(x * 0.636619772367581343);
    var r = x - q * 1.5703125;
    r = r - q * 4.837512969970703125e-4;
    r = r - q * 7.54978995489188216e-8;
    let z = r * r;
    let s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
    let c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z
        - 0.5 * z + 1.0;
    // x = r + q*pi/2: rotate (sin r, cos r) by the quadrant; `& 3` is the quadrant for negative q
    // too.
    switch (i32(q) & 3) {
        case 0: {
            return vec2<f32>(s, c);
        }
        case 1: {
            return vec2<f32>(c, -s);
        }
        case 2: {
            return vec2<f32>(-s, -c);
        }
        default: {
            return vec2<f32>(-c, s);
        }
    }
}

fn m_sin(x: f32) -> f32 {
    return m_sincos(x).x;
}

fn m_cos(x: f32) -> f32 {
    return m_sincos(x).y;
}

// tanh x (Cephes tanhf): a polynomial near 0, where 1 - 2/(e^2x + 1) would cancel.
fn m_tanh(x: f32) -> f32 {
    let ax = abs(x);
    if ax < 0.625 {
        let z = x * x;
        return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z
            + 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
    }
    if ax > 9.0 {
        return sign(x);
    }
    let y = 1.0 - 2.0 / (m_exp(2.0 * ax) + 1.0);
    return select(y, -y, x < 0.0);
}
