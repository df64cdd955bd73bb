// sample_ball.wgsl: points of the unit-ball sampler of `stde_core::rng::sample_ball_points_from`,
// one workgroup per point: coordinates 4q..4q+4 of point i are the normals of block
// [q, step, stream, i+1], the radius is uniform_f32 of word 0 of [i, step, stream, 0], and the
// point is radius * z / |z|.

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

const WG: u32 = 256u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_group(wid, nwg);
    if row >= p.rows {
        return;
    }
    let i = p.first + row;
    let key = vec2<u32>(p.key0, p.key1);
    let quads = (p.dim + 3u) / 4u;
    let base = p.o_base + row * p.dim;
    var ss = 0.0;
    for (var q = lid; q < quads; q += WG) {
        let z = normals4(philox(vec4<u32>(q, p.step, p.stream, i + 1u), key));
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * q + j;
            if c < p.dim {
                o[base + c] = z[j];
                ss = fma(z[j], z[j], ss);
            }
        }
    }
    partial[lid] = ss;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    let norm = sqrt(partial[0]);
    let radius = uniform_f32(philox(vec4<u32>(i, p.step, p.stream, 0u), key).x);
    // A zero Gaussian vector cannot occur (r > 0 for every open uniform); the origin beats a NaN.
    let scale = select(0.0, radius / norm, norm > 0.0);
    // Each invocation rescales exactly the values it wrote, so no barrier is needed in between.
    for (var q = lid; q < quads; q += WG) {
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * q + j;
            if c < p.dim {
                o[base + c] = o[base + c] * scale;
            }
        }
    }
}
