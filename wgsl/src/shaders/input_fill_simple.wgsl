// input_fill_simple.wgsl: input_fill.wgsl for software adapters: one invocation per row (a point of
// one coefficient block) loops over the features, so the block is found with one division per row
// instead of two per value (see add_bias_simple.wgsl).

struct Params {
    count: u32,
    e0: u32,
    n_points: u32,
    width: u32,
    n_dirs: u32,
    one_block: u32,
    t_base: u32,
    z_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The host passes whole rows: count and e0 are multiples of the width.
    let r = linear_group(wid, nwg) * 8u + lid;
    if r * p.width >= p.count {
        return;
    }
    // Row in the non-primal part of the batch, which starts at block 1.
    let block = 1u + (p.e0 / p.width + r) / p.n_points;
    let base = p.z_base + r * p.width;
    if p.one_block != 0u && block == 1u {
        for (var h = 0u; h < p.width; h++) {
            var v = 0.0;
            for (var s = 0u; s < p.n_dirs; s++) {
                v += t[p.t_base + s * p.width + h];
            }
            z[base + h] = v;
        }
    } else if p.one_block == 0u && block <= p.n_dirs {
        let src = p.t_base + (block - 1u) * p.width;
        for (var h = 0u; h < p.width; h++) {
            z[base + h] = t[src + h];
        }
    } else {
        for (var h = 0u; h < p.width; h++) {
            z[base + h] = 0.0;
        }
    }
}
