// row_dots_simple.wgsl: row_dots.wgsl for software adapters: one invocation per (point, probe)
// pair, no workgroup reduction.

struct Params {
    rows: u32,
    s_count: u32,
    dim: u32,
    x_base: u32,
    y_base: u32,
    o_base: u32,
    o_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pair = linear_group(wid, nwg) * 8u + lid;
    if pair >= p.rows * p.s_count {
        return;
    }
    let n = pair / p.s_count;
    let s = pair % p.s_count;
    let xb = p.x_base + n * p.dim;
    let yb = p.y_base + s * p.dim;
    var acc = vec4<f32>(0.0);
    var i = 0u;
    for (; i + 4u <= p.dim; i += 4u) {
        let u = vec4<f32>(x[xb + i], x[xb + i + 1u], x[xb + i + 2u], x[xb + i + 3u]);
        let v = vec4<f32>(y[yb + i], y[yb + i + 1u], y[yb + i + 2u], y[yb + i + 3u]);
        acc = fma(u, v, acc);
    }
    for (; i < p.dim; i++) {
        acc.x = fma(x[xb + i], y[yb + i], acc.x);
    }
    o[p.o_base + n * p.o_stride + s] = (acc.x + acc.y) + (acc.z + acc.w);
}
