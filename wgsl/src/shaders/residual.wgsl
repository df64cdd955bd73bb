// residual.wgsl: the PINN residual of one point per workgroup. With the boundary factor
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

const WG: u32 = 64u;
var<workgroup> red_est: array<f32, WG>;
var<workgroup> red_phi: array<f32, WG>;
var<workgroup> shared_r_bar: f32;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = linear_group(wid, nwg);
    if n >= p.n_points {
        return;
    }
    let big_n = p.n_points;
    let v = p.n_dirs;
    let order = p.order;
    let hard = p.hard != 0u;
    let collapsed = p.collapsed != 0u;
    var phi0 = 1.0;
    if hard {
        phi0 = 1.0 - dots[p.d_base + n];
    }
    // Partial sums over this invocation's directions: the top coefficients of u (lower series when
    // collapsed) and sum_s phi^s_K.
    var est = 0.0;
    var phi_top = 0.0;
    for (var s = lid; s < v; s += WG) {
        var phi1 = 0.0;
        var phi2 = 0.0;
        if hard {
            phi1 = -2.0 * dots[p.d_base + big_n + n * v + s];
            phi2 = -1.0;
            if p.one_hot == 0u {
                phi2 = -dots[p.d_base + big_n + big_n * v + s];
            }
        }
        // u^s_K = sum_j phi_j m_{K-j}; collapsed drops j = 0 (m_K zeroed) and j = K (phi_K zeroed).
        var j_lo = 0u;
        var j_hi = min(order, 2u);
        if collapsed {
            j_lo = 1u;
            j_hi = min(order - 1u, 2u);
        }
        for (var j = j_lo; j <= j_hi; j++) {
            est += phi_at(j, phi0, phi1, phi2) * m_at(order - j, s, n);
        }
        phi_top += phi_at(order, phi0, phi1, phi2);
    }
    red_est[lid] = est;
    red_phi[lid] = phi_top;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            red_est[lid] += red_est[lid + half];
            red_phi[lid] += red_phi[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let m0 = m_at(0u, 0u, n);
        let u0 = phi0 * m0;
        let phi_sum = red_phi[0];
        var top = red_est[0];
        if collapsed {
            top += phi0 * m_at(order, 0u, n) + m0 * phi_sum;
        }
        let r = p.weight * top + f_of(u0) - forcing[p.f_base + n];
        loss[p.l_base + n] = r * r;
        let r_bar = 2.0 * r * p.inv_n;
        shared_r_bar = r_bar;
        m_bar[p.mb_base + n] = r_bar * (f_prime(u0) * phi0 + p.weight * phi_sum);
        if collapsed {
            m_bar[p.mb_base + block_of(order, 0u) * big_n + n] = r_bar * p.weight * phi0;
        }
    }
    workgroupBarrier();
    let rw = shared_r_bar * p.weight;
    var upper = order;
    if collapsed {
        upper = order - 1u;
    }
    for (var s = lid; s < v; s += WG) {
        var phi1 = 0.0;
        var phi2 = 0.0;
        if hard {
            phi1 = -2.0 * dots[p.d_base + big_n + n * v + s];
            phi2 = -1.0;
            if p.one_hot == 0u {
                phi2 = -dots[p.d_base + big_n + big_n * v + s];
            }
        }
        for (var j = 1u; j <= upper; j++) {
            let phi = phi_at(order - j, phi0, phi1, phi2);
            m_bar[p.mb_base + block_of(j, s) * big_n + n] = rw * phi;
        }
    }
}
