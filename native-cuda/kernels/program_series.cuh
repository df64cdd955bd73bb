// program_series.cuh: truncated Taylor series of order K (from the generated prelude's STDE_K) on
// coefficient arrays T[K + 1], for the series kernels of generated programs (`stde_cuda::codegen`), and
// the probe direction a thread moves its point along.
//
// Coefficients are Taylor coefficients (x(τ) = Σ c_k τ^k), so no rule needs a factorial. The rules are
// those of the f64 reference (`stde_core::series`, `stde_core::program::interp`):
//   product    c_k = Σ_{j≤k} a_j b_{k−j}
//   quotient   q_k = (a_k − Σ_{j=1..k} b_j q_{k−j}) / b_0
//   chain      for b = σ(a): k·b_k = Σ_{j=1..k} j·a_j·σ'_{k−j}, with σ' = b (exp), cos/−sin (sin/cos),
//              1 − b² (tanh, built one coefficient behind b), 1/(1 + a²) (atan)
//   log        b_k = (a_k − (1/k)·Σ_{j=1..k−1} j·b_j·a_{k−j}) / a_0
//   sqrt       b_k = (a_k − Σ_{j=1..k−1} b_j b_{k−j}) / (2 b_0)
//   abs        the series of a or −a by the sign of a_0 (a_0 = 0 keeps a)
//   min, max   the series of the operand with the smaller/larger primal (ties: the first)
// Every K is a compile-time constant, so the loops unroll and the series live in registers. Outputs never
// alias inputs (the generated code gives every node its own array).

#ifndef STDE_K
#error "program_series.cuh is specialised by the generated prelude's STDE_K"
#endif

// The jet order.
constexpr int K = STDE_K;

template <typename T>
__device__ __forceinline__ void ser_const(T* __restrict__ o, T c) {
    o[0] = c;
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        o[k] = T(0);
    }
}

template <typename T>
__device__ __forceinline__ void ser_copy(const T* __restrict__ a, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        o[k] = a[k];
    }
}

template <typename T>
__device__ __forceinline__ void ser_neg(const T* __restrict__ a, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        o[k] = -a[k];
    }
}

template <typename T>
__device__ __forceinline__ void ser_add(const T* a, const T* b, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        o[k] = a[k] + b[k];
    }
}

template <typename T>
__device__ __forceinline__ void ser_sub(const T* a, const T* b, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        o[k] = a[k] - b[k];
    }
}

// a + c for a constant c.
template <typename T>
__device__ __forceinline__ void ser_add_scalar(const T* __restrict__ a, T c, T* __restrict__ o) {
    o[0] = a[0] + c;
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        o[k] = a[k];
    }
}

// a − c.
template <typename T>
__device__ __forceinline__ void ser_sub_scalar(const T* __restrict__ a, T c, T* __restrict__ o) {
    o[0] = a[0] - c;
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        o[k] = a[k];
    }
}

// c − b.
template <typename T>
__device__ __forceinline__ void ser_scalar_sub(T c, const T* __restrict__ b, T* __restrict__ o) {
    o[0] = c - b[0];
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        o[k] = -b[k];
    }
}

// a·c.
template <typename T>
__device__ __forceinline__ void ser_scale(const T* __restrict__ a, T c, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        o[k] = a[k] * c;
    }
}

// a / c (each coefficient divided, as the reference's quotient by a constant series does).
template <typename T>
__device__ __forceinline__ void ser_div_scalar(const T* __restrict__ a, T c, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        o[k] = a[k] / c;
    }
}

template <typename T>
__device__ __forceinline__ void ser_mul(const T* a, const T* b, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        T acc = T(0);
#pragma unroll
        for (int j = 0; j <= k; ++j) {
            acc += a[j] * b[k - j];
        }
        o[k] = acc;
    }
}

template <typename T>
__device__ __forceinline__ void ser_div(const T* a, const T* b, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        T acc = a[k];
#pragma unroll
        for (int j = 1; j <= k; ++j) {
            acc -= b[j] * o[k - j];
        }
        o[k] = acc / b[0];
    }
}

// c / b for a constant c.
template <typename T>
__device__ __forceinline__ void ser_scalar_div(T c, const T* __restrict__ b, T* __restrict__ o) {
#pragma unroll
    for (int k = 0; k <= K; ++k) {
        T acc = k == 0 ? c : T(0);
#pragma unroll
        for (int j = 1; j <= k; ++j) {
            acc -= b[j] * o[k - j];
        }
        o[k] = acc / b[0];
    }
}

// o_k = (1/k)·Σ_{j=1..k} j·a_j·d_{k−j} for k ≥ 1, given o_0: b = σ(a) from the known series d of σ'(a).
template <typename T>
__device__ __forceinline__ void ser_integrate(const T* __restrict__ a, const T* __restrict__ d, T* __restrict__ o) {
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        T acc = T(0);
#pragma unroll
        for (int j = 1; j <= k; ++j) {
            acc += T(j) * a[j] * d[k - j];
        }
        o[k] = acc / T(k);
    }
}

template <typename T>
__device__ __forceinline__ void ser_exp(const T* __restrict__ a, T* __restrict__ o) {
    o[0] = prog_exp(a[0]);
    // σ' = b itself: coefficient k needs b_0..b_{k−1} only.
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        T acc = T(0);
#pragma unroll
        for (int j = 1; j <= k; ++j) {
            acc += T(j) * a[j] * o[k - j];
        }
        o[k] = acc / T(k);
    }
}

template <typename T>
__device__ __forceinline__ void ser_log(const T* __restrict__ a, T* __restrict__ o) {
    o[0] = prog_log(a[0]);
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        T acc = T(0);
#pragma unroll
        for (int j = 1; j < k; ++j) {
            acc += T(j) * o[j] * a[k - j];
        }
        o[k] = (a[k] - acc / T(k)) / a[0];
    }
}

template <typename T>
__device__ __forceinline__ void ser_sincos(const T* __restrict__ a, T* __restrict__ s, T* __restrict__ c) {
    s[0] = prog_sin(a[0]);
    c[0] = prog_cos(a[0]);
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        T sa = T(0);
        T ca = T(0);
#pragma unroll
        for (int j = 1; j <= k; ++j) {
            sa += T(j) * a[j] * c[k - j];
            ca -= T(j) * a[j] * s[k - j];
        }
        s[k] = sa / T(k);
        c[k] = ca / T(k);
    }
}

template <typename T>
__device__ __forceinline__ void ser_sin(const T* __restrict__ a, T* __restrict__ o) {
    T c[K + 1];
    ser_sincos(a, o, c);
}

template <typename T>
__device__ __forceinline__ void ser_cos(const T* __restrict__ a, T* __restrict__ o) {
    T s[K + 1];
    ser_sincos(a, s, o);
}

template <typename T>
__device__ __forceinline__ void ser_tanh(const T* __restrict__ a, T* __restrict__ o) {
    T d[K + 1];
    o[0] = prog_tanh(a[0]);
    d[0] = T(1) - o[0] * o[0];
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        T acc = T(0);
#pragma unroll
        for (int j = 1; j <= k; ++j) {
            acc += T(j) * a[j] * d[k - j];
        }
        o[k] = acc / T(k);
        T sq = T(0);
#pragma unroll
        for (int i = 0; i <= k; ++i) {
            sq += o[i] * o[k - i];
        }
        d[k] = -sq;
    }
}

template <typename T>
__device__ __forceinline__ void ser_atan(const T* __restrict__ a, T* __restrict__ o) {
    T q[K + 1];
    T d[K + 1];
    ser_mul(a, a, q);
    q[0] += T(1);
    ser_scalar_div(T(1), q, d);
    o[0] = prog_atan(a[0]);
    ser_integrate(a, d, o);
}

template <typename T>
__device__ __forceinline__ void ser_sqrt(const T* __restrict__ a, T* __restrict__ o) {
    o[0] = prog_sqrt(a[0]);
#pragma unroll
    for (int k = 1; k <= K; ++k) {
        T acc = a[k];
#pragma unroll
        for (int j = 1; j < k; ++j) {
            acc -= o[j] * o[k - j];
        }
        o[k] = acc / (T(2) * o[0]);
    }
}

template <typename T>
__device__ __forceinline__ void ser_abs(const T* __restrict__ a, T* __restrict__ o) {
    if (a[0] < T(0)) {
        ser_neg(a, o);
    } else {
        ser_copy(a, o);
    }
}

template <typename T>
__device__ __forceinline__ void ser_min(const T* a, const T* b, T* __restrict__ o) {
    ser_copy(b[0] < a[0] ? b : a, o);
}

template <typename T>
__device__ __forceinline__ void ser_max(const T* a, const T* b, T* __restrict__ o) {
    ser_copy(b[0] > a[0] ? b : a, o);
}

// a^n by repeated squaring of series; a negative n is the reciprocal of the positive power.
template <typename T>
__device__ __forceinline__ void ser_powi(const T* __restrict__ a, int n, T* __restrict__ o) {
    unsigned e = n < 0 ? 0u - (unsigned)n : (unsigned)n;
    T result[K + 1];
    T base[K + 1];
    T tmp[K + 1];
    ser_const(result, T(1));
    ser_copy(a, base);
    while (e != 0u) {
        if (e & 1u) {
            ser_mul(result, base, tmp);
            ser_copy(tmp, result);
        }
        e >>= 1;
        if (e != 0u) {
            ser_mul(base, base, tmp);
            ser_copy(tmp, base);
        }
    }
    if (n < 0) {
        ser_scalar_div(T(1), result, o);
    } else {
        ser_copy(result, o);
    }
}

// a^b = exp(b·ln a) (a_0 > 0).
template <typename T>
__device__ __forceinline__ void ser_pow(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ o) {
    T l[K + 1];
    T m[K + 1];
    ser_log(a, l);
    ser_mul(b, l, m);
    ser_exp(m, o);
}

// One probe direction: x(τ) = x + Σ_{k=1..K} τ^k·v_k. One-hot slots put coeff[k−1] on coordinate
// index[k−1] (PROG_NONE: an empty slot); a dense direction is one row of tangents in slot 1.
struct ProgDir {
    u32 index[K];
    float coeff[K];
    // The direction's row of the V × stride dense tangents, or null for one-hot slots.
    const float* dense;
};

__device__ __forceinline__ void prog_load_dir(ProgDir& dir, u32 s, const u32* __restrict__ slot_index,
                                              const float* __restrict__ slot_coeff,
                                              const float* __restrict__ dense, u32 dense_probes, u32 stride) {
    if (dense_probes != 0u) {
        dir.dense = dense + (u64)s * stride;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            dir.index[k] = PROG_NONE;
            dir.coeff[k] = 0.0f;
        }
    } else {
        dir.dense = nullptr;
#pragma unroll
        for (int k = 0; k < K; ++k) {
            dir.index[k] = slot_index[(u64)s * K + k];
            dir.coeff[k] = slot_coeff[(u64)s * K + k];
        }
    }
}

// The series of coordinate j (the time for j = dim) of the point row x along the direction.
template <typename T>
__device__ __forceinline__ void prog_coord_series(const ProgDir& dir, const float* __restrict__ x, u32 j,
                                                  T* __restrict__ o) {
    ser_const(o, (T)x[j]);
    if (dir.dense != nullptr) {
        o[1] = (T)dir.dense[j];
    } else {
#pragma unroll
        for (int k = 0; k < K; ++k) {
            if (dir.index[k] == j) {
                o[k + 1] += (T)dir.coeff[k];
            }
        }
    }
}
