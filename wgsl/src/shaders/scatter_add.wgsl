// scatter_add.wgsl: the one-hot first layer's weight adjoint, grad_W1[h, idx[s]] += g[s, h] for the
// rows h0..h0 + h_count of the gradient bound here. The indices of one step are distinct, so no two
// invocations touch the same value and no atomics are needed.

struct Params {
    n_dirs: u32,
    h_count: u32,
    dim: u32,
    width: u32,
    h0: u32,
    g_base: u32,
    i_base: u32,
    t_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.n_dirs * p.h_count {
        return;
    }
    let s = e / p.h_count;
    let hh = e % p.h_count;
    grad[p.g_base + hh * p.dim + idx[p.i_base + s]] += t[p.t_base + s * p.width + p.h0 + hh];
}
