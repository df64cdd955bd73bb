// generic_shared_scatter.wgsl: the one-hot part of the weight adjoint of a weight-shared first
// block's map. With g the column sums over the points of the cotangent's tangent blocks (row
// b = (k - 1) * n_dirs + s, or the summed top row (order - 1) * n_dirs of a collapsed shape, n_blocks
// values each), weight i gets grad[i] += sum over the slots q = s * order + (k - 1) whose index j is a
// mapped coordinate with j % block = i of coeff[q] * g[b * n_blocks + j / block]. One invocation per
// weight, the slots in order: no atomics, the same sum on every run.

struct Params {
    block: u32,
    n_blocks: u32,
    mapped: u32,
    n_dirs: u32,
    order: u32,
    collapsed: u32,
    g_base: u32,
    i_base: u32,
    c_base: u32,
    w_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> coeff: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_group(wid, nwg) * 64u + lid;
    if i >= p.block {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.n_dirs; s++) {
        for (var k = 1u; k <= p.order; k++) {
            let q = s * p.order + k - 1u;
            let j = idx[p.i_base + q];
            if j >= p.mapped || j % p.block != i {
                continue;
            }
            var b = (k - 1u) * p.n_dirs + s;
            if p.collapsed != 0u && k == p.order {
                b = (p.order - 1u) * p.n_dirs;
            }
            acc += coeff[p.c_base + q] * g[p.g_base + b * p.n_blocks + j / p.block];
        }
    }
    grad[p.w_base + i] += acc;
}
