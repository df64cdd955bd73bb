// forcing_simple.wgsl: forcing.wgsl for software adapters: one invocation per point runs over the
// d coordinates serially (no workgroup reduction), summing in chunks of 64 terms so that rounding
// grows like a two-level tree rather than a chain of d additions. The formulas are those of
// forcing.wgsl.

struct Params {
    rows: u32,
    dim: u32,
    n_terms: u32,
    solution: u32,
    nonlinearity: u32,
    x_base: u32,
    c_base: u32,
    g_base: u32,
    e_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coeffs: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> exact: array<f32>;

const CHUNK: u32 = 64u;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_group(wid, nwg) * 8u + lid;
    if row >= p.rows {
        return;
    }
    let xb = p.x_base + row * p.dim;
    let d = f32(p.dim);
    // (S, first sum, second sum, |x|^2).
    var t = vec4<f32>(0.0);
    for (var i0 = 0u; i0 < p.dim; i0 += CHUNK) {
        var acc = vec4<f32>(0.0);
        let i1 = min(p.dim, i0 + CHUNK);
        for (var i = i0; i < i1; i++) {
            let a = x[xb + i];
            acc.w += a * a;
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
                    acc.x += c * sct.x;
                    acc.y += c * (sct.y * (taa + tbb) - sct.x * (ta * ta + tb * tb));
                    acc.z += c * sct.y * (a * ta + b * tb);
                } else {
                    let e = x[xb + i + 2u];
                    let pr = a * b * e;
                    let ep = c * m_exp(pr);
                    let a2 = a * a;
                    let b2 = b * b;
                    let e2 = e * e;
                    acc.x += ep;
                    acc.y += ep * (a2 * b2 + b2 * e2 + a2 * e2);
                    acc.z += ep * (12.0 * pr + 2.0 * d);
                }
            }
        }
        t += acc;
    }
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
