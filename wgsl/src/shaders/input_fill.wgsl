// input_fill.wgsl: every non-primal row of the first layer's output: the slot-1 block of
// direction s gets t[s, :] at every point (the tangent W1 v_s is shared by all points), all other
// coefficients 0. In a collapsed 1-jet the single slot-1 block is the summed top, so it gets
// sum_s t[s, :].

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

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 256u + lid;
    if e >= p.count {
        return;
    }
    // Index in the non-primal part of the batch, which starts at block 1.
    let g = p.e0 + e;
    let block = 1u + g / (p.n_points * p.width);
    let h = g % p.width;
    var v = 0.0;
    if p.one_block != 0u {
        if block == 1u {
            for (var s = 0u; s < p.n_dirs; s++) {
                v += t[p.t_base + s * p.width + h];
            }
        }
    } else if block <= p.n_dirs {
        v = t[p.t_base + (block - 1u) * p.width + h];
    }
    z[p.z_base + e] = v;
}
