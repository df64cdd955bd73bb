// forcing_shared.wgsl: the pieces both forcing kernels (forcing.wgsl, forcing_simple.wgsl) share: one
// coordinate's contribution to the sums and the final g and u* of a point. Appended after the kernel
// file; module-scope declarations in WGSL may be used before they appear.

// Coordinate i of the point starting at xb, as its contribution to (S, first sum, second sum, |x|^2).
fn forcing_term(xb: u32, i: u32, d: f32) -> vec4<f32> {
    let a = x[xb + i];
    var acc = vec4<f32>(0.0, 0.0, 0.0, a * a);
    if i < p.n_terms {
        let c = coeffs[p.c_base + i];
        let b = x[xb + i + 1u];
        if p.solution == 0u {
            let sca = m_sincos(a);
            let scb = m_sincos(b);
            let sct = m_sincos(a + scb.y + b * sca.y);
            let ta = 1.0 - b * sca.x;
            let tb = sca.y - scb.x;
            let taa = -b * sca.y;
            let tbb = -scb.y;
            acc.x = c * sct.x;
            acc.y = c * (sct.y * (taa + tbb) - sct.x * (ta * ta + tb * tb));
            acc.z = c * sct.y * (a * ta + b * tb);
        } else {
            let e = x[xb + i + 2u];
            let pr = a * b * e;
            let ep = c * m_exp(pr);
            let a2 = a * a;
            let b2 = b * b;
            let e2 = e * e;
            acc.x = ep;
            acc.y = ep * (a2 * b2 + b2 * e2 + a2 * e2);
            acc.z = ep * (12.0 * pr + 2.0 * d);
        }
    }
    return acc;
}

// Writes g = Lap u* + f(u*) and u* of point `row` from its summed terms t.
fn forcing_finish(row: u32, t: vec4<f32>, d: f32) {
    let phi = 1.0 - t.w;
    let u = phi * t.x;
    var lap: f32;
    if p.solution == 0u {
        lap = phi * t.y - 4.0 * t.z - 2.0 * d * t.x;
    } else {
        lap = phi * t.y - t.z;
    }
    var f = 0.0;
    if p.nonlinearity == 1u {
        f = u - u * u * u;
    } else if p.nonlinearity == 2u {
        f = m_sin(u);
    }
    g[p.g_base + row] = lap + f;
    exact[p.e_base + row] = u;
}
