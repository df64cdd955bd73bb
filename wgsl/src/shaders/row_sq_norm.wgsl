// row_sq_norm.wgsl: out[r] = sum_i x[r, i]^2 over `len` values of each row (|x|^2 of a point, |v|^2
// of a dense probe); one workgroup per row reduces in workgroup memory.

struct Params {
    rows: u32,
    len: u32,
    ld: u32,
    x_base: u32,
    o_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = linear_group(wid, nwg);
    if r >= p.rows {
        return;
    }
    let base = p.x_base + r * p.ld;
    var acc = 0.0;
    for (var i = lid; i < p.len; i += WG) {
        let v = x[base + i];
        acc = fma(v, v, acc);
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
        o[p.o_base + r] = partial[0];
    }
}
