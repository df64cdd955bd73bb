// residual_simple.wgsl: residual.wgsl for software adapters: one invocation per point runs over
// the directions serially, with no workgroup reduction and no barrier (the formulas, helpers and
// layouts are those of residual.wgsl, repeated here because WGSL has no includes).
//
// With the boundary factor
// phi(x + v t) = [1 - |x|^2, -2 x.v, -|v|^2, 0, ...] (or 1) and u = phi * m along every direction:
//   r = w * sum_s u^s_K + f(u_0) - g,  loss = r^2,  r_bar = 2 r / N,
// and m_bar is the adjoint of the product for the cotangent
// u_bar = (r_bar f'(u_0), 0, ..., 0, r_bar w):
//   m_bar^s_j = r_bar w phi^s_{K-j} (j >= 1),
//   m_bar_0 = r_bar (f'(u_0) phi_0 + w sum_s phi^s_K).
// Collapsed batches use the lower series of each direction (top coefficients zeroed) plus
// phi_0 m_top + m_0 phi_top once, as in `stde_core::reference::mul_forward`.
//
// The dots buffer holds |x_n|^2 at [n], x_n.v_s at [N + n V + s] and |v_s|^2 at [N + N V + s].

struct Params {
    n_points: u32,
    n_dirs: u32,
    order: u32,
    collapsed: u32,
    hard: u32,
    one_hot: u32,
    nonlinearity: u32,
    weight: f32,
    inv_n: f32,
    m_base: u32,
    d_base: u32,
    f_base: u32,
    l_base: u32,
    mb_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> m: array<f32>;
@group(0) @binding(2) var<storage, read> dots: array<f32>;
@group(0) @binding(3) var<storage, read> forcing: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> m_bar: array<f32>;

// phi^s_1 and phi^s_2 of direction s at point n (0 and 0 without the hard boundary).
fn phi12(n: u32, s: u32) -> vec2<f32> {
    if p.hard == 0u {
        return vec2<f32>(0.0);
    }
    let big_n = p.n_points;
    let v = p.n_dirs;
    var phi2 = -1.0;
    if p.one_hot == 0u {
        phi2 = -dots[p.d_base + big_n + big_n * v + s];
    }
    return vec2<f32>(-2.0 * dots[p.d_base + big_n + n * v + s], phi2);
}

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = linear_group(wid, nwg) * 8u + lid;
    if n >= p.n_points {
        return;
    }
    let big_n = p.n_points;
    let v = p.n_dirs;
    let order = p.order;
    let collapsed = p.collapsed != 0u;
    var phi0 = 1.0;
    if p.hard != 0u {
        phi0 = 1.0 - dots[p.d_base + n];
    }
    // The top coefficients of u (lower series when collapsed) and sum_s phi^s_K.
    var est = 0.0;
    var phi_sum = 0.0;
    // u^s_K = sum_j phi_j m_{K-j}; collapsed drops j = 0 (m_K zeroed) and j = K (phi_K zeroed).
    var j_lo = 0u;
    var j_hi = min(order, 2u);
    if collapsed {
        j_lo = 1u;
        j_hi = min(order - 1u, 2u);
    }
    for (var s = 0u; s < v; s++) {
        let ph = phi12(n, s);
        for (var j = j_lo; j <= j_hi; j++) {
            est += phi_at(j, phi0, ph.x, ph.y) * m_at(order - j, s, n);
        }
        phi_sum += phi_at(order, phi0, ph.x, ph.y);
    }
    let m0 = m_at(0u, 0u, n);
    let u0 = phi0 * m0;
    var top = est;
    if collapsed {
        top += phi0 * m_at(order, 0u, n) + m0 * phi_sum;
    }
    let r = p.weight * top + f_of(u0) - forcing[p.f_base + n];
    loss[p.l_base + n] = r * r;
    let r_bar = 2.0 * r * p.inv_n;
    m_bar[p.mb_base + n] = r_bar * (f_prime(u0) * phi0 + p.weight * phi_sum);
    if collapsed {
        m_bar[p.mb_base + block_of(order, 0u) * big_n + n] = r_bar * p.weight * phi0;
    }
    let rw = r_bar * p.weight;
    var upper = order;
    if collapsed {
        upper = order - 1u;
    }
    for (var s = 0u; s < v; s++) {
        let ph = phi12(n, s);
        for (var j = 1u; j <= upper; j++) {
            let phi = phi_at(order - j, phi0, ph.x, ph.y);
            m_bar[p.mb_base + block_of(j, s) * big_n + n] = rw * phi;
        }
    }
}
