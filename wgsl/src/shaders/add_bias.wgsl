// add_bias.wgsl: z[row, h] += bias[h] on a range of primal rows (one invocation per value).

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
    z[p.z_base + e] += params[p.bias_base + (p.e0 + e) % p.width];
}
