// generic_scatter.wgsl: generic_column_scatter.wgsl when the cotangent or the weight gradient is
// larger than one binding: the per-block sums over points come precomputed (column_sums.wgsl, one
// row of `width` values per non-primal block) and rows h0..h0 + h_count of the gradient are bound
// here: grad_W1[h, idx[q]] += sum over slots q' with idx[q'] = idx[q] of
// coeff[q'] * sums[block of q', h], written by the lowest such slot only (no atomics needed).

struct Params {
    n_dirs: u32,
    order: u32,
    collapsed: u32,
    h_count: u32,
    stride: u32,
    width: u32,
    h0: u32,
    s_base: u32,
    i_base: u32,
    c_base: u32,
    g_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> sums: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> coeff: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    let n_slots = p.n_dirs * p.order;
    if e >= n_slots * p.h_count {
        return;
    }
    let q = e / p.h_count;
    let hh = e % p.h_count;
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
        acc = fma(coeff[p.c_base + q2], sums[p.s_base + slot_block(q2) * p.width + p.h0 + hh], acc);
    }
    grad[p.g_base + hh * p.stride + j] += acc;
}
