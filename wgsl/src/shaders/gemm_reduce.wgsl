// gemm_reduce.wgsl: C = alpha * sum_z partial[z] + beta * C, the second pass of a matrix product
// whose inner dimension was split across workgroup layers (gemm.wgsl), one invocation per output.

struct Params {
    m: u32,
    n: u32,
    splits: u32,
    stride: u32,
    p_base: u32,
    c_base: u32,
    ldc: u32,
    alpha: f32,
    beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 256u + lid;
    if e >= p.m * p.n {
        return;
    }
    var s = 0.0;
    for (var z = 0u; z < p.splits; z++) {
        s += partial[p.p_base + z * p.stride + e];
    }
    let idx = p.c_base + (e / p.n) * p.ldc + e % p.n;
    var old = 0.0;
    if p.beta != 0.0 {
        old = p.beta * c[idx];
    }
    c[idx] = p.alpha * s + old;
}
