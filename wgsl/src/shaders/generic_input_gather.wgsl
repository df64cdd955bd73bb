// generic_input_gather.wgsl: the tangent rows of the input layer with one-hot probes in any slot,
// one row per non-primal block of its output: row b = (k - 1) * n_dirs + s holds
// coeff[q] * W1[:, idx[q]] for slot q = s * order + (k - 1) (zero when the slot is empty), and in a
// collapsed shape the top row (order - 1) * n_dirs holds the sum of every direction's top slot.
// input_fill.wgsl then broadcasts row b to every point of block 1 + b. Rows h0..h0 + h_count of W1
// are bound here (one invocation per (row, feature)); an index at or above `stride`
// (SlotProbes::EMPTY) reads as an empty slot.

struct Params {
    rows: u32,
    h_count: u32,
    stride: u32,
    width: u32,
    h0: u32,
    n_dirs: u32,
    order: u32,
    collapsed: u32,
    w_base: u32,
    i_base: u32,
    c_base: u32,
    t_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> coeff: array<f32>;
@group(0) @binding(4) var<storage, read_write> t: array<f32>;

fn slot_value(q: u32, hh: u32) -> f32 {
    let j = idx[p.i_base + q];
    if j >= p.stride {
        return 0.0;
    }
    return coeff[p.c_base + q] * w[p.w_base + hh * p.stride + j];
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.rows * p.h_count {
        return;
    }
    let b = e / p.h_count;
    let hh = e % p.h_count;
    var acc = 0.0;
    if p.collapsed != 0u && b == (p.order - 1u) * p.n_dirs {
        for (var s = 0u; s < p.n_dirs; s++) {
            acc += slot_value(s * p.order + p.order - 1u, hh);
        }
    } else {
        acc = slot_value((b % p.n_dirs) * p.order + b / p.n_dirs, hh);
    }
    t[p.t_base + b * p.width + p.h0 + hh] = acc;
}
