// generic_readout_backward.wgsl: the adjoint of generic_readout_forward.wgsl for the model output,
// one invocation per point (`stde_core::backend::GenericStep::readout_backward`). With
// ub_k^s = k! * sum over j of fbar[1 + j] * W[j][s][k - 1], the cotangent of the series of u along
// direction s, and u_k = sum over i of B_i m_{k - i}: m_bar_q^s = sum over k >= q of
// ub_k^s * B_{k - q}^s for q >= 1, and m_bar_0 = fbar[0] B_0 + sum over s, k >= 1 of ub_k^s B_k^s.
// A collapsed top is shared by every direction with the top weight of direction 0, so its
// cotangent is ub_K * B_0. Every value of m_bar is written.

struct Params {
    n_points: u32,
    n_dirs: u32,
    n_terms: u32,
    collapsed: u32,
    a_base: u32,
    w_base: u32,
    fb_base: u32,
    mb_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ab: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> fbar: array<f32>;
@group(0) @binding(4) var<storage, read_write> m_bar: array<f32>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = linear_group(wid, nwg) * WG + lid;
    if n >= p.n_points {
        return;
    }
    let np = p.n_points;
    let fact = factorials();
    let b0 = ansatz(0u, 0u, n, 1u);
    var m0_bar = fbar[p.fb_base + n] * b0;
    var top_bar = 0.0;
    var upper = K;
    if p.collapsed != 0u {
        upper = KM1;
    }
    for (var s = 0u; s < p.n_dirs; s++) {
        // Written with initializers: a declaration inside a loop must start from zero on every
        // iteration, which Chromium's WebGPU skips for a `var` declared without one.
        var bs = array<f32, KP1>();
        var ub = array<f32, KP1>();
        for (var k = 0u; k <= K; k++) {
            bs[k] = ansatz(k, s, n, 1u);
        }
        for (var j = 0u; j < p.n_terms; j++) {
            let fj = fbar[p.fb_base + (1u + j) * np + n];
            let wj = p.w_base + (j * p.n_dirs + s) * K;
            for (var k = 1u; k <= K; k++) {
                ub[k] = fma(fj, w[wj + k - 1u], ub[k]);
            }
        }
        if p.collapsed != 0u {
            // Every direction's top shares the weight of direction 0.
            var t = 0.0;
            for (var j = 0u; j < p.n_terms; j++) {
                let wi = p.w_base + j * p.n_dirs * K + KM1;
                t = fma(fbar[p.fb_base + (1u + j) * np + n], w[wi], t);
            }
            ub[K] = t;
            top_bar = t * fact[K];
        }
        for (var k = 1u; k <= K; k++) {
            ub[k] *= fact[k];
            m0_bar = fma(ub[k], bs[k], m0_bar);
        }
        for (var q = 1u; q <= upper; q++) {
            var acc = 0.0;
            for (var k = q; k <= K; k++) {
                acc = fma(ub[k], bs[k - q], acc);
            }
            m_bar[p.mb_base + m_block(q, s) * np + n] = acc;
        }
    }
    if p.collapsed != 0u && K >= 1u {
        m_bar[p.mb_base + m_block(K, 0u) * np + n] = top_bar * b0;
    }
    m_bar[p.mb_base + n] = m0_bar;
}
