// column_scatter.wgsl: column_sums.wgsl and scatter_add.wgsl in one pass for one-hot probes, when
// the slot-1 cotangent blocks and the first layer's weight gradient each fit in one binding:
// grad_W1[h, idx[s]] += sum over points of z_bar[slot-1 block of s, point, h], one invocation per
// (direction, feature). The per-direction sums never go through memory, and a step saves a
// dispatch. The indices of one step are distinct, so no two invocations touch the same value.

struct Params {
    n_points: u32,
    width: u32,
    n_dirs: u32,
    one_block: u32,
    dim: u32,
    z_base: u32,
    i_base: u32,
    g_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z_bar: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.n_dirs * p.width {
        return;
    }
    let s = e / p.width;
    let h = e % p.width;
    // The bound window starts at the slot-1 block of direction 0 (or at the shared block).
    var block = s;
    if p.one_block != 0u {
        block = 0u;
    }
    var acc = 0.0;
    let base = p.z_base + block * p.n_points * p.width + h;
    for (var n = 0u; n < p.n_points; n++) {
        acc += z_bar[base + n * p.width];
    }
    grad[p.g_base + h * p.dim + idx[p.i_base + s]] += acc;
}
