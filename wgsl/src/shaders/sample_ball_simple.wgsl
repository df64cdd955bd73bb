// sample_ball_simple.wgsl: sample_ball.wgsl for software adapters: one invocation per point, no
// workgroup reduction. It draws the normals twice, once for |z| and once to write radius * z / |z|,
// because on a CPU-emulated adapter recomputing a Philox block (vector arithmetic) is cheaper than
// reading back the values written (a lane-by-lane loop per load). Same streams as sample_ball.wgsl.

struct Params {
    rows: u32,
    dim: u32,
    key0: u32,
    key1: u32,
    step: u32,
    stream: u32,
    first: u32,
    o_base: u32,
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
    let key = vec2<u32>(p.key0, p.key1);
    let quads = (p.dim + 3u) / 4u;
    let base = p.o_base + row * p.dim;
    var ss = vec4<f32>(0.0);
    for (var q = 0u; q < quads; q++) {
        let z = normals4(philox(vec4<u32>(q, p.step, p.stream, i + 1u), key));
        // Coordinates past d (the last block's tail) are drawn but not part of the point.
        let keep = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.dim);
        ss = fma(select(vec4<f32>(0.0), z, keep), select(vec4<f32>(0.0), z, keep), ss);
    }
    let norm = sqrt((ss.x + ss.y) + (ss.z + ss.w));
    let radius = uniform_f32(philox(vec4<u32>(i, p.step, p.stream, 0u), key).x);
    // A zero Gaussian vector cannot occur (r > 0 for every open uniform); the origin beats a NaN.
    let scale = select(0.0, radius / norm, norm > 0.0);
    for (var q = 0u; q < quads; q++) {
        let z = normals4(philox(vec4<u32>(q, p.step, p.stream, i + 1u), key));
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * q + j;
            if c < p.dim {
                o[base + c] = z[j] * scale;
            }
        }
    }
}
