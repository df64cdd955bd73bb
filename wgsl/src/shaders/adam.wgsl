// adam.wgsl: one fused Adam update per parameter (moments, bias correction, step) that also zeroes
// the gradient, so the next step accumulates into a clean buffer without another pass.

struct Params {
    count: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    corr1: f32,
    corr2: f32,
    p_base: u32,
    g_base: u32,
    m_base: u32,
    v_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 256u + lid;
    if e >= p.count {
        return;
    }
    let g = grad[p.g_base + e];
    let m = p.beta1 * m1[p.m_base + e] + (1.0 - p.beta1) * g;
    let v = p.beta2 * m2[p.v_base + e] + (1.0 - p.beta2) * g * g;
    m1[p.m_base + e] = m;
    m2[p.v_base + e] = v;
    let m_hat = m / p.corr1;
    let v_hat = v / p.corr2;
    params[p.p_base + e] -= p.lr * m_hat / (sqrt(v_hat) + p.eps);
    grad[p.g_base + e] = 0.0;
}
