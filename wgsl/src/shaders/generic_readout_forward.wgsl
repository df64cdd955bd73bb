// generic_readout_forward.wgsl: the ansatz u = A + B * m along every direction and the readout of
// the terms, one invocation per point (`stde_core::backend::GenericStep::readout_forward`):
// features[0] = A_0 + B_0 m_0 and features[1 + j] = sum over s, k = 1..K of
// W[j][s][k - 1] * k! * u_k^s, with u_k^s the Cauchy product of the series of B and m plus A_k.
// A collapsed m holds the sum over directions of m_K in its top block, so each direction's u_K
// leaves out B_0 m_K and the summed B_0 * top is read once with the top weight of direction 0.
// Terms are accumulated TB at a time, so a direction's series is formed once per TB terms.

struct Params {
    n_points: u32,
    n_dirs: u32,
    n_terms: u32,
    collapsed: u32,
    m_base: u32,
    a_base: u32,
    w_base: u32,
    f_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read> ab: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> features: array<f32>;

const TB: u32 = 4u;

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
    let b0 = ansatz(0u, 0u, n, 1u);
    features[p.f_base + n] = fma(b0, m[p.m_base + n], ansatz(0u, 0u, n, 0u));
    let fact = factorials();
    for (var j0 = 0u; j0 < p.n_terms; j0 += TB) {
        let nj = min(TB, p.n_terms - j0);
        // With an initializer: see generic_readout_backward.wgsl.
        var acc = array<f32, TB>();
        for (var s = 0u; s < p.n_dirs; s++) {
            var bs = array<f32, KP1>();
            var ms = array<f32, KP1>();
            for (var k = 0u; k <= K; k++) {
                bs[k] = ansatz(k, s, n, 1u);
                ms[k] = m[p.m_base + m_block(k, s) * np + n];
            }
            for (var k = 1u; k <= K; k++) {
                var uk = ansatz(k, s, n, 0u);
                for (var i = 0u; i <= k; i++) {
                    if p.collapsed != 0u && k == K && i == 0u {
                        continue;
                    }
                    uk = fma(bs[i], ms[k - i], uk);
                }
                let c = fact[k] * uk;
                for (var jj = 0u; jj < nj; jj++) {
                    let wi = p.w_base + ((j0 + jj) * p.n_dirs + s) * K + k - 1u;
                    acc[jj] = fma(w[wi], c, acc[jj]);
                }
            }
        }
        if p.collapsed != 0u && K >= 1u {
            let top = fact[K] * b0 * m[p.m_base + m_block(K, 0u) * np + n];
            for (var jj = 0u; jj < nj; jj++) {
                let wi = p.w_base + (j0 + jj) * p.n_dirs * K + KM1;
                acc[jj] = fma(w[wi], top, acc[jj]);
            }
        }
        for (var jj = 0u; jj < nj; jj++) {
            features[p.f_base + (1u + j0 + jj) * np + n] = acc[jj];
        }
    }
}
