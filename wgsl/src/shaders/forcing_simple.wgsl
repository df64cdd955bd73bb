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
            acc += forcing_term(xb, i, d);
        }
        t += acc;
    }
    forcing_finish(row, t, d);
}
