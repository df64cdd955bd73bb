// row_sq_norm_simple.wgsl: row_sq_norm.wgsl for software adapters: one invocation per row, no
// workgroup reduction.

struct Params {
    rows: u32,
    len: u32,
    ld: u32,
    x_base: u32,
    o_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = linear_group(wid, nwg) * 8u + lid;
    if r >= p.rows {
        return;
    }
    let base = p.x_base + r * p.ld;
    var acc = vec4<f32>(0.0);
    var i = 0u;
    for (; i + 4u <= p.len; i += 4u) {
        let v = vec4<f32>(x[base + i], x[base + i + 1u], x[base + i + 2u], x[base + i + 3u]);
        acc = fma(v, v, acc);
    }
    for (; i < p.len; i++) {
        let v = x[base + i];
        acc.x = fma(v, v, acc.x);
    }
    o[p.o_base + r] = (acc.x + acc.y) + (acc.z + acc.w);
}
