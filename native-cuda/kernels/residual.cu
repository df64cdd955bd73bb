// residual.cu: the PINN residual of one step (boundary factor, readout of the top coefficients,
// nonlinearity, per-point squared residual and the cotangent of the network output in one kernel) and the
// row norms it needs.
//
// The hard-boundary ansatz is u = φ·m with φ(x(t)) = 1 − ‖x + v t‖², whose Taylor coefficients along
// direction s are φ_0 = 1 − ‖x‖², φ_1 = −2 x·v_s, φ_2 = −‖v_s‖², zero above. The host supplies ‖x‖²
// (row_sq_norms), and for dense probes x·v_s (a cuBLAS product) and ‖v_s‖² (row_sq_norms); for one-hot
// probes x·v_s is the coordinate x[idx[s]] and ‖v_s‖² = 1.

// dst[r] = Σ_c src[r·cols + c]²: one block per row (grid.x = rows), accumulated in f64 so that the
// norm of a 10^7-dimensional point keeps full f32 accuracy.
extern "C" __global__ void row_sq_norms(const float* __restrict__ src, float* __restrict__ dst, u32 rows,
                                        u64 cols) {
    __shared__ double scratch[32];
    for (u32 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = src + (u64)r * cols;
        double acc = 0.0;
        for (u64 c = threadIdx.x; c < cols; c += blockDim.x) {
            const double v = row[c];
            acc += v * v;
        }
        const double total = block_sum(acc, scratch);
        if (threadIdx.x == 0) {
            dst[r] = (float)total;
        }
    }
}

// φ's Taylor coefficient `j` along one direction.
__device__ __forceinline__ float phi_coefficient(int j, float phi0, float phi1, float phi2) {
    return j == 0 ? phi0 : (j == 1 ? phi1 : (j == 2 ? phi2 : 0.0f));
}

// One thread per point n. `m` is the network output, a jet batch of width 1 (value (block b, point n) at
// b·n_points + n). With K = order, w = weight (the top weight times K!), and u = φ·m as a Cauchy product:
//   estimate  = Σ_s w·u_K^s        (collapsed: w·u_top with u_top = Σ_s u_K^s(tops zeroed) + φ_0·m_top
//                                    + m_0·Σ_s φ_K^s)
//   r_n       = estimate + f(u_0) − g_n,   loss_terms[n] = r_n²
//   r̄ = 2 r_n / N,  c = r̄·w,  ū_0 = r̄·f'(u_0),  ū_K^s = c
//   m̄_k^s = c·φ_{K−k}^s (k ≥ 1),  m̄_0 = ū_0·φ_0 + c·Σ_s φ_K^s
// which is the product rule's adjoint m̄_j = Σ_{k≥j} ū_k φ_{k−j}. Order 0 reads the primal itself once
// per direction, as the reference does. Every value of m_bar is written (zeros included).
//
// `dots` is n_points × n_dirs (x·v_s, dense probes only), `sq_v` has n_dirs values (dense only), `sq_x`
// n_points values (hard boundary only); unused pointers may be null.
extern "C" __global__ void pinn_residual(const float* __restrict__ m, const float* __restrict__ points,
                                         const u32* __restrict__ idx, const float* __restrict__ sq_x,
                                         const float* __restrict__ dots, const float* __restrict__ sq_v,
                                         const float* __restrict__ forcing, float* __restrict__ loss_terms,
                                         float* __restrict__ m_bar, u32 n_points, u32 dim, u32 order,
                                         u32 n_dirs, u32 collapsed, u32 hard_boundary, u32 dense,
                                         u32 nonlinearity, float weight, float inv_n) {
    const u32 n = (u32)global_index();
    if (n >= n_points) {
        return;
    }
    const int kk = (int)order;
    const bool summed = collapsed != 0u && kk >= 1;
    const float phi0 = hard_boundary ? 1.0f - sq_x[n] : 1.0f;
    const float m0 = m[n];
    const float u0 = phi0 * m0;
    // The top block of a collapsed batch.
    const u64 top_block = kk >= 1 ? 1ull + (u64)(kk - 1) * n_dirs : 0ull;

    // The φ coefficients 1 and 2 of direction s.
    auto probe = [&](u32 s, float* phi1, float* phi2) {
        if (!hard_boundary) {
            *phi1 = 0.0f;
            *phi2 = 0.0f;
        } else if (dense) {
            *phi1 = -2.0f * dots[(u64)n * n_dirs + s];
            *phi2 = -sq_v[s];
        } else {
            *phi1 = -2.0f * points[(u64)n * dim + idx[s]];
            *phi2 = -1.0f;
        }
    };
    // Coefficient k ≥ 1 of direction s of m (the uncollapsed block formula).
    auto m_coef = [&](int k, u32 s) { return m[(1ull + (u64)(k - 1) * n_dirs + s) * n_points + n]; };

    float estimate = 0.0f;
    float phi_top_sum = 0.0f;
    if (kk == 0) {
        estimate = (float)n_dirs * weight * u0;
    } else {
        float top_lower = 0.0f;
        for (u32 s = 0; s < n_dirs; ++s) {
            float phi1, phi2;
            probe(s, &phi1, &phi2);
            const float phik = phi_coefficient(kk, phi0, phi1, phi2);
            phi_top_sum += phik;
            if (summed) {
                // Tops zeroed: only φ_j·m_{K−j} with 1 ≤ j and K − j ≥ 1 remain.
                if (kk - 1 >= 1) {
                    top_lower += phi1 * m_coef(kk - 1, s);
                }
                if (kk - 2 >= 1) {
                    top_lower += phi2 * m_coef(kk - 2, s);
                }
            } else {
                float uk = phi0 * m_coef(kk, s) + phik * m0 * (kk <= 2 ? 1.0f : 0.0f);
                if (kk - 1 >= 1) {
                    uk += phi1 * m_coef(kk - 1, s);
                }
                if (kk - 2 >= 1) {
                    uk += phi2 * m_coef(kk - 2, s);
                }
                estimate += weight * uk;
            }
        }
        if (summed) {
            const float m_top = m[top_block * n_points + n];
            estimate = weight * (top_lower + phi0 * m_top + m0 * phi_top_sum);
        }
    }
    const float r = estimate + nonlinearity_value_f32(nonlinearity, u0) - forcing[n];
    loss_terms[n] = r * r;
    const float r_bar = 2.0f * r * inv_n;
    const float c = r_bar * weight;
    float u0_bar = r_bar * nonlinearity_derivative_f32(nonlinearity, u0);
    if (kk == 0) {
        u0_bar += (float)n_dirs * c;
    }
    m_bar[n] = u0_bar * phi0 + (kk >= 1 ? c * phi_top_sum : 0.0f);
    if (kk >= 1) {
        const int upper = summed ? kk - 1 : kk;
        for (u32 s = 0; s < n_dirs; ++s) {
            float phi1, phi2;
            probe(s, &phi1, &phi2);
            for (int k = 1; k <= upper; ++k) {
                m_bar[(1ull + (u64)(k - 1) * n_dirs + s) * n_points + n] =
                    c * phi_coefficient(kk - k, phi0, phi1, phi2);
            }
        }
        if (summed) {
            m_bar[top_block * n_points + n] = c * phi0;
        }
    }
}
