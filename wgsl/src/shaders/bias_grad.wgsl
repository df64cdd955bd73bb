// bias_grad.wgsl: grad[h] += sum over a range of primal rows of z_bar[row, h]; one workgroup per
// feature reduces in workgroup memory, so nothing is read back and no atomics are needed.

struct Params {
    rows: u32,
    width: u32,
    z_base: u32,
    g_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z_bar: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

const WG: u32 = 64u;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let h = linear_group(wid, nwg);
    if h >= p.width {
        return;
    }
    var s = 0.0;
    for (var n = lid; n < p.rows; n += WG) {
        s += z_bar[p.z_base + n * p.width + h];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        grad[p.g_base + h] += partial[0];
    }
}
