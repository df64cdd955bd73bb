// add_bias_simple.wgsl: add_bias.wgsl for software adapters: one invocation per primal row loops
// over its features, so no invocation divides by the width (a CPU has no vector integer division,
// so a per-value `% width` costs a scalar division per lane).

struct Params {
    count: u32,
    width: u32,
    e0: u32,
    bias_base: u32,
    z_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The host passes whole rows: count and e0 are multiples of the width.
    let row = linear_group(wid, nwg) * 8u + lid;
    if row * p.width >= p.count {
        return;
    }
    let base = p.z_base + row * p.width;
    for (var h = 0u; h < p.width; h++) {
        z[base + h] += params[p.bias_base + h];
    }
}
