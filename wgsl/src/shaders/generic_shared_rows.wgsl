// generic_shared_rows.wgsl: the tangent rows of a weight-shared first block's map with one-hot
// probes, one row of n_blocks values per non-primal block of its output: row b = (k - 1) * n_dirs + s
// holds coeff[q] * w[j % block] in column j / block for slot q = s * order + (k - 1) with index j, and
// zero elsewhere (everywhere for an empty slot or an index past the blocks, such as the time); in a
// collapsed shape the top row (order - 1) * n_dirs sums every direction's top slot. input_fill.wgsl
// then broadcasts row b to every point of block 1 + b. One invocation per (row, column).

struct Params {
    rows: u32,
    n_blocks: u32,
    block: u32,
    mapped: u32,
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

fn slot_value(q: u32, col: u32) -> f32 {
    let j = idx[p.i_base + q];
    if j >= p.mapped || j / p.block != col {
        return 0.0;
    }
    return coeff[p.c_base + q] * w[p.w_base + j % p.block];
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.rows * p.n_blocks {
        return;
    }
    let b = e / p.n_blocks;
    let col = e % p.n_blocks;
    var acc = 0.0;
    if p.collapsed != 0u && b == (p.order - 1u) * p.n_dirs {
        for (var s = 0u; s < p.n_dirs; s++) {
            acc += slot_value(s * p.order + p.order - 1u, col);
        }
    } else {
        acc = slot_value((b % p.n_dirs) * p.order + b / p.n_dirs, col);
    }
    t[p.t_base + e] = acc;
}
