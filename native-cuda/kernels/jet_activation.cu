// jet_activation.cu: the fused Taylor-mode rules of tanh and sin (forward and adjoint) on a jet batch, for
// the jet order STDE_K fixed by the generated prelude.
//
// Layout (`stde_core::batch`): blocks of n_points × width values; block 0 is the primal, block
// 1 + (k−1)·V + s holds Taylor coefficient k of direction s; a collapsed batch replaces the V top blocks
// by one block holding their sum. One thread owns one (point, feature) and loops over the directions;
// a direction's coefficients sit n_points·width apart, neighbouring threads read neighbouring features
// (coalesced), and the whole series lives in registers because K is a compile-time constant.
//
// Forward rule in Taylor coefficients, with σ' the series of the derivative along the curve:
//   b_0 = σ(a_0),   k·b_k = Σ_{j=1..k} j·a_j·σ'_{k−j}
// (tanh: σ' = 1 − b², built one coefficient behind b; sin: σ' = cos, computed alongside).
// Adjoint: ā_j = Σ_{k≥j} b̄_k·σ'_{k−j}. The primal is shared by every direction, so its cotangent sums
// the ā_0 of all directions plus σ'(a_0)·b̄_0 once.
//
// Collapsed batches: every rule is linear in its top input coefficient. Each direction is evaluated with
// its top zeroed, the tops of the outputs are summed, and σ'(a_0)·(summed top input) is added once; the
// adjoint adds σ''(a_0)·top_in·top_bar to the primal cotangent and gives the top cotangent σ'(a_0)·top_bar.

#ifndef STDE_K
#error "jet_activation.cu is specialised by the generated prelude's STDE_K"
#endif

// The jet order.
constexpr int K = STDE_K;

// tanh. `primal` gives σ(a0) and σ'(a0); `series` fills b[1..K] and d[1..K] from a[0..K] given b[0], d[0].
struct TanhRule {
    __device__ static __forceinline__ void primal(float a0, float* b0, float* d0) {
        const float t = tanhf(a0);
        *b0 = t;
        *d0 = 1.0f - t * t;
    }

    __device__ static __forceinline__ void series(const float (&a)[K + 1], float (&b)[K + 1],
                                                  float (&d)[K + 1]) {
#pragma unroll
        for (int k = 1; k <= K; ++k) {
            float acc = 0.0f;
#pragma unroll
            for (int j = 1; j <= k; ++j) {
                acc += (float)j * a[j] * d[k - j];
            }
            b[k] = acc / (float)k;
            // d = 1 − b²: its coefficient k needs b_0..b_k, all known now.
            float sq = 0.0f;
#pragma unroll
            for (int i = 0; i <= k; ++i) {
                sq += b[i] * b[k - i];
            }
            d[k] = -sq;
        }
    }

    // σ''(a0) = −2·tanh(a0)·(1 − tanh²(a0)).
    __device__ static __forceinline__ float second(float b0, float d0) {
        return -2.0f * b0 * d0;
    }
};

// sin, with the cosine series as σ'.
struct SinRule {
    __device__ static __forceinline__ void primal(float a0, float* b0, float* d0) {
        *b0 = sinf(a0);
        *d0 = cosf(a0);
    }

    __device__ static __forceinline__ void series(const float (&a)[K + 1], float (&b)[K + 1],
                                                  float (&d)[K + 1]) {
#pragma unroll
        for (int k = 1; k <= K; ++k) {
            float s = 0.0f;
            float c = 0.0f;
#pragma unroll
            for (int j = 1; j <= k; ++j) {
                s += (float)j * a[j] * d[k - j];
                c -= (float)j * a[j] * b[k - j];
            }
            b[k] = s / (float)k;
            d[k] = c / (float)k;
        }
    }

    // σ''(a0) = −sin(a0).
    __device__ static __forceinline__ float second(float b0, float d0) {
        (void)d0;
        return -b0;
    }
};

// Block index of coefficient k ≥ 1 of direction s (the uncollapsed formula; callers special-case the
// collapsed top).
__device__ __forceinline__ u64 coefficient_block(int k, u32 s, u32 n_dirs) {
    return 1ull + (u64)(k - 1) * n_dirs + s;
}

template <class Rule>
__device__ __forceinline__ void jet_forward(const float* __restrict__ z, float* __restrict__ h, u32 n_points,
                                            u32 width, u32 n_dirs, u32 collapsed) {
    const u64 block_len = (u64)n_points * width;
    for (u64 e = global_index(); e < block_len; e += grid_stride()) {
        float a[K + 1];
        float b[K + 1];
        float d[K + 1];
        a[0] = z[e];
        Rule::primal(a[0], &b[0], &d[0]);
        h[e] = b[0];
        if constexpr (K > 0) {
            const bool summed = collapsed != 0u;
            float top_sum = 0.0f;
            for (u32 s = 0; s < n_dirs; ++s) {
#pragma unroll
                for (int k = 1; k <= K; ++k) {
                    a[k] = (summed && k == K) ? 0.0f : z[coefficient_block(k, s, n_dirs) * block_len + e];
                }
                Rule::series(a, b, d);
#pragma unroll
                for (int k = 1; k <= K; ++k) {
                    if (!(summed && k == K)) {
                        h[coefficient_block(k, s, n_dirs) * block_len + e] = b[k];
                    }
                }
                top_sum += b[K];
            }
            if (summed) {
                const u64 top = coefficient_block(K, 0, n_dirs) * block_len + e;
                h[top] = top_sum + d[0] * z[top];
            }
        }
    }
}

template <class Rule>
__device__ __forceinline__ void jet_backward(const float* __restrict__ z, const float* __restrict__ h_bar,
                                             float* __restrict__ z_bar, u32 n_points, u32 width,
                                             u32 n_dirs, u32 collapsed) {
    const u64 block_len = (u64)n_points * width;
    for (u64 e = global_index(); e < block_len; e += grid_stride()) {
        float a[K + 1];
        float b[K + 1];
        float d[K + 1];
        a[0] = z[e];
        Rule::primal(a[0], &b[0], &d[0]);
        float primal_bar = d[0] * h_bar[e];
        if constexpr (K > 0) {
            const bool summed = collapsed != 0u;
            // In a collapsed batch the top cotangent and input are one block shared by every direction.
            const u64 top = coefficient_block(K, 0, n_dirs) * block_len + e;
            const float top_bar = summed ? h_bar[top] : 0.0f;
            float b_bar[K + 1];
            for (u32 s = 0; s < n_dirs; ++s) {
#pragma unroll
                for (int k = 1; k <= K; ++k) {
                    const u64 at = coefficient_block(k, s, n_dirs) * block_len + e;
                    const bool is_top = summed && k == K;
                    a[k] = is_top ? 0.0f : z[at];
                    b_bar[k] = is_top ? top_bar : h_bar[at];
                }
                Rule::series(a, b, d);
#pragma unroll
                for (int j = 0; j <= K; ++j) {
                    float acc = 0.0f;
#pragma unroll
                    for (int k = (j > 1 ? j : 1); k <= K; ++k) {
                        acc += b_bar[k] * d[k - j];
                    }
                    if (j == 0) {
                        primal_bar += acc;
                    } else if (!(summed && j == K)) {
                        z_bar[coefficient_block(j, s, n_dirs) * block_len + e] = acc;
                    }
                }
            }
            if (summed) {
                z_bar[top] = top_bar * d[0];
                primal_bar += top_bar * Rule::second(b[0], d[0]) * z[top];
            }
        }
        z_bar[e] = primal_bar;
    }
}

extern "C" __global__ void jet_tanh_forward(const float* __restrict__ z, float* __restrict__ h, u32 n_points,
                                            u32 width, u32 n_dirs, u32 collapsed) {
    jet_forward<TanhRule>(z, h, n_points, width, n_dirs, collapsed);
}

extern "C" __global__ void jet_tanh_backward(const float* __restrict__ z, const float* __restrict__ h_bar,
                                             float* __restrict__ z_bar, u32 n_points, u32 width,
                                             u32 n_dirs, u32 collapsed) {
    jet_backward<TanhRule>(z, h_bar, z_bar, n_points, width, n_dirs, collapsed);
}

extern "C" __global__ void jet_sin_forward(const float* __restrict__ z, float* __restrict__ h, u32 n_points,
                                           u32 width, u32 n_dirs, u32 collapsed) {
    jet_forward<SinRule>(z, h, n_points, width, n_dirs, collapsed);
}

extern "C" __global__ void jet_sin_backward(const float* __restrict__ z, const float* __restrict__ h_bar,
                                            float* __restrict__ z_bar, u32 n_points, u32 width,
                                            u32 n_dirs, u32 collapsed) {
    jet_backward<SinRule>(z, h_bar, z_bar, n_points, width, n_dirs, collapsed);
}
