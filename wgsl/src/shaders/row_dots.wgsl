// row_dots.wgsl: out[n, s] = x_n . v_s for a window of points and a window of dense probes (the
// boundary factor's slot-1 coefficient -2 x.v_s needs it); one workgroup per (point, probe) pair.

struct Params {
    rows: u32,
    s_count: u32,
    dim: u32,
    x_base: u32,
    y_base: u32,
    o_base: u32,
    o_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pair = linear_group(wid, nwg);
    if pair >= p.rows * p.s_count {
        return;
    }
    let n = pair / p.s_count;
    let s = pair % p.s_count;
    let xb = p.x_base + n * p.dim;
    let yb = p.y_base + s * p.dim;
    var acc = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
        acc = fma(x[xb + i], y[yb + i], acc);
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        o[p.o_base + n * p.o_stride + s] = partial[0];
    }
}
