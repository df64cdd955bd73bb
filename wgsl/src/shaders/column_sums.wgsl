// column_sums.wgsl: g[b, h] = sum over points of z_bar[non-primal block b, point, h] for blocks
// b = s0 .. s0 + s_count of the input layer's cotangent (the slot-1 blocks of dense probes, or the
// non-primal blocks of one-hot slot probes): the cotangents of the shared tangent rows, one
// invocation per (block, feature). With one_block the single non-primal block (a collapsed 1-jet)
// is summed into every row.

struct Params {
    n_points: u32,
    width: u32,
    s_count: u32,
    s0: u32,
    one_block: u32,
    z_base: u32,
    g_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z_bar: array<f32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.s_count * p.width {
        return;
    }
    let s = e / p.width;
    let h = e % p.width;
    // The bound window starts at non-primal block s0 (or at the single shared block).
    var block = s;
    if p.one_block != 0u {
        block = 0u;
    }
    var acc = 0.0;
    let base = p.z_base + block * p.n_points * p.width + h;
    for (var n = 0u; n < p.n_points; n++) {
        acc += z_bar[base + n * p.width];
    }
    g[p.g_base + (p.s0 + s) * p.width + h] = acc;
}
