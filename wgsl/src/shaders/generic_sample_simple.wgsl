// generic_sample_simple.wgsl: generic_sample.wgsl for software adapters: one invocation per point,
// no workgroup memory. The ball and the sphere draw their normals twice, once for |z| and once to
// write them rescaled, as sample_ball_simple.wgsl does (recomputing a Philox block is cheaper than
// reading back on a CPU-emulated adapter). Same streams as generic_sample.wgsl.

struct Params {
    rows: u32,
    dim: u32,
    stride: u32,
    key0: u32,
    key1: u32,
    step: u32,
    stream: u32,
    first: u32,
    o_base: u32,
    sampler: u32,
    time_kind: u32,
    time_value: f32,
    a: f32,
    b: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;

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
    let i = p.first + row;
    let head = head_block(i);
    let t = point_time(head);
    var scale = normal_scale(t);
    let quads = (p.dim + 3u) / 4u;
    let base = p.o_base + row * p.stride;
    if normalises() {
        var ss = vec4<f32>(0.0);
        for (var q = 0u; q < quads; q++) {
            let z = coordinates4(q, i, 1.0);
            // Coordinates past d (the last block's tail) are drawn but not part of the point.
            let keep = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.dim);
            let zk = select(vec4<f32>(0.0), z, keep);
            ss = fma(zk, zk, ss);
        }
        let norm = sqrt((ss.x + ss.y) + (ss.z + ss.w));
        // A zero Gaussian vector cannot occur; the origin beats a NaN.
        scale = select(0.0, target_radius(head) / norm, norm > 0.0);
    }
    for (var q = 0u; q < quads; q++) {
        let z = coordinates4(q, i, scale);
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * q + j;
            if c < p.dim {
                o[base + c] = z[j];
            }
        }
    }
    if p.time_kind != TIME_NONE {
        o[base + p.dim] = t;
    }
}
