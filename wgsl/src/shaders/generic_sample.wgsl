// generic_sample.wgsl: points of every sampler of `stde_core::rng::sample_points_from` (see
// generic_sample_common.wgsl), one workgroup per point as in sample_ball.wgsl: the invocations
// stride over the coordinate blocks and, for the ball and the sphere, reduce |z|^2 through
// workgroup memory before rescaling the values each one wrote.

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
    let head = head_block(i);
    let t = point_time(head);
    let scale = normal_scale(t);
    let quads = (p.dim + 3u) / 4u;
    let base = p.o_base + row * p.stride;
    var ss = 0.0;
    for (var q = lid; q < quads; q += WG) {
        let z = coordinates4(q, i, scale);
        for (var j = 0u; j < 4u; j++) {
            let c = 4u * q + j;
            if c < p.dim {
                o[base + c] = z[j];
                ss = fma(z[j], z[j], ss);
            }
        }
    }
    if normalises() {
        partial[lid] = ss;
        workgroupBarrier();
        for (var half = WG / 2u; half > 0u; half >>= 1u) {
            if lid < half {
                partial[lid] += partial[lid + half];
            }
            workgroupBarrier();
        }
        let norm = sqrt(partial[0]);
        // A zero Gaussian vector cannot occur (r > 0 for every open uniform); the origin beats a
        // NaN.
        let r = select(0.0, target_radius(head) / norm, norm > 0.0);
        // Each invocation rescales exactly the values it wrote, so no barrier is needed between.
        for (var q = lid; q < quads; q += WG) {
            for (var j = 0u; j < 4u; j++) {
                let c = 4u * q + j;
                if c < p.dim {
                    o[base + c] = o[base + c] * r;
                }
            }
        }
    }
    if p.time_kind != TIME_NONE && lid == 0u {
        o[base + p.dim] = t;
    }
}
