// gather_dots.wgsl: out[n, s] = x[n, idx[s]], the dot product of a point with a one-hot probe.

struct Params {
    rows: u32,
    n_dirs: u32,
    dim: u32,
    x_base: u32,
    i_base: u32,
    o_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.rows * p.n_dirs {
        return;
    }
    let n = e / p.n_dirs;
    let s = e % p.n_dirs;
    o[p.o_base + e] = x[p.x_base + n * p.dim + idx[p.i_base + s]];
}
