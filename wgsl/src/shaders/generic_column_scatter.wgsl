// generic_column_scatter.wgsl: the weight adjoint of the input layer's tangent rows for one-hot
// probes in any slot, in one pass when the non-primal cotangent blocks and the weight gradient each
// fit in one binding: grad_W1[h, idx[q]] += sum over slots q' with idx[q'] = idx[q] of
// coeff[q'] * (sum over points of z_bar[block of q', point, h]), one invocation per
// (slot, feature).
// Slots of one step may share a coordinate (two slots of one direction, or the time column in many
// directions), so the lowest slot holding a coordinate adds the contributions of all of them and
// the others return: no two invocations write the same value, and no atomics are needed. With
// distinct indices (the paper's probes) the scan of the indices finds no other slot.

struct Params {
    n_points: u32,
    width: u32,
    n_dirs: u32,
    order: u32,
    collapsed: u32,
    stride: u32,
    z_base: u32,
    i_base: u32,
    c_base: u32,
    g_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z_bar: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> coeff: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

// Sum over points of feature h of block b (counted from block 1, where the bound window starts).
fn column_sum(b: u32, h: u32) -> f32 {
    var acc = 0.0;
    let base = p.z_base + b * p.n_points * p.width + h;
    for (var n = 0u; n < p.n_points; n++) {
        acc += z_bar[base + n * p.width];
    }
    return acc;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    let n_slots = p.n_dirs * p.order;
    if e >= n_slots * p.width {
        return;
    }
    let q = e / p.width;
    let h = e % p.width;
    let j = idx[p.i_base + q];
    if j >= p.stride {
        return;
    }
    var acc = 0.0;
    for (var q2 = 0u; q2 < n_slots; q2++) {
        if idx[p.i_base + q2] != j {
            continue;
        }
        if q2 < q {
            return;
        }
        acc = fma(coeff[p.c_base + q2], column_sum(slot_block(q2), h), acc);
    }
    grad[p.g_base + h * p.stride + j] += acc;
}
