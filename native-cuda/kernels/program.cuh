// program.cuh: the fixed part of every generated program kernel (`stde_cuda::codegen`): math overloads for
// f32 and f64, integer and real powers, the lane/warp/block reductions of the primal kernels (sums in f64,
// max with the first window attaining it) and the per-point accumulator storage of series mode.
//
// Window bodies compute in f32 (they run once per window, d times per point) and main bodies in f64 (once
// per point, where large sums partly cancel, as in Δu* = φ·ΔS − 4·x·∇S − 2d·S at d = 10^6). The generated
// code calls one name for both precisions, so the overloads below pick `expf` or `exp` by argument type.

// An empty probe slot, and "no window" for the argmax of an empty range.
#define PROG_NONE 0xffffffffu

__device__ __forceinline__ float prog_exp(float a) { return expf(a); }
__device__ __forceinline__ double prog_exp(double a) { return exp(a); }
__device__ __forceinline__ float prog_log(float a) { return logf(a); }
__device__ __forceinline__ double prog_log(double a) { return log(a); }
__device__ __forceinline__ float prog_sin(float a) { return sinf(a); }
__device__ __forceinline__ double prog_sin(double a) { return sin(a); }
__device__ __forceinline__ float prog_cos(float a) { return cosf(a); }
__device__ __forceinline__ double prog_cos(double a) { return cos(a); }
__device__ __forceinline__ float prog_tanh(float a) { return tanhf(a); }
__device__ __forceinline__ double prog_tanh(double a) { return tanh(a); }
__device__ __forceinline__ float prog_atan(float a) { return atanf(a); }
__device__ __forceinline__ double prog_atan(double a) { return atan(a); }
__device__ __forceinline__ float prog_sqrt(float a) { return sqrtf(a); }
__device__ __forceinline__ double prog_sqrt(double a) { return sqrt(a); }
__device__ __forceinline__ float prog_abs(float a) { return fabsf(a); }
__device__ __forceinline__ double prog_abs(double a) { return fabs(a); }

// min and max with the reference's tie rule: the first operand unless the second is strictly beyond it.
template <typename T>
__device__ __forceinline__ T prog_min(T a, T b) {
    return b < a ? b : a;
}

template <typename T>
__device__ __forceinline__ T prog_max(T a, T b) {
    return b > a ? b : a;
}

// a^n by repeated squaring; a negative n is the reciprocal of the positive power (a^0 = 1, also at 0).
template <typename T>
__device__ __forceinline__ T prog_powi(T a, int n) {
    unsigned e = n < 0 ? 0u - (unsigned)n : (unsigned)n;
    T result = T(1);
    T base = a;
    while (e != 0u) {
        if (e & 1u) {
            result *= base;
        }
        e >>= 1;
        if (e != 0u) {
            base *= base;
        }
    }
    return n < 0 ? T(1) / result : result;
}

// a^b = exp(b·ln a), defined for a > 0 (the reference's meaning of a non-integer power).
template <typename T>
__device__ __forceinline__ T prog_pow(T a, T b) {
    return prog_exp(b * prog_log(a));
}

__device__ __forceinline__ float prog_neg_inf() { return __uint_as_float(0xff800000u); }

// Shared memory of the warp and block reductions: one value and one window index per warp.
struct ProgShared {
    double value[32];
    u32 index[32];
};

// Folds candidate (v, i) into the running max (best, best_i): the larger value wins, the smaller window
// on ties, and any window beats none (so an all −∞ range still names its first window, as the reference).
__device__ __forceinline__ void prog_argmax_take(float& best, u32& best_i, float v, u32 i) {
    if (i != PROG_NONE && (best_i == PROG_NONE || v > best || (v == best && i < best_i))) {
        best = v;
        best_i = i;
    }
}

// The sum over the TPP lanes of one point (1, a warp, or the whole block); valid in lane 0.
template <int TPP>
__device__ __forceinline__ double prog_reduce_sum(double v, ProgShared& shared) {
    if constexpr (TPP == 1) {
        return v;
    } else if constexpr (TPP == 32) {
        return warp_sum(v);
    } else {
        static_assert(TPP == STDE_BLOCK, "a point is served by 1, 32 or STDE_BLOCK threads");
        return block_sum(v, shared.value);
    }
}

// The max and its first window over the lanes of a warp; valid in lane 0.
__device__ __forceinline__ void prog_warp_argmax(float& best, u32& best_i) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float v = __shfl_down_sync(0xffffffffu, best, offset);
        const u32 i = __shfl_down_sync(0xffffffffu, best_i, offset);
        prog_argmax_take(best, best_i, v, i);
    }
}

// The max and its first window over the TPP lanes of one point; valid in lane 0.
template <int TPP>
__device__ __forceinline__ void prog_reduce_argmax(float& best, u32& best_i, ProgShared& shared) {
    if constexpr (TPP == 32) {
        prog_warp_argmax(best, best_i);
    } else if constexpr (TPP == STDE_BLOCK) {
        const u32 lane = threadIdx.x & 31u;
        const u32 warp = threadIdx.x >> 5;
        prog_warp_argmax(best, best_i);
        if (lane == 0) {
            shared.value[warp] = best;
            shared.index[warp] = best_i;
        }
        __syncthreads();
        if (warp == 0) {
            best = lane < (STDE_BLOCK >> 5) ? (float)shared.value[lane] : prog_neg_inf();
            best_i = lane < (STDE_BLOCK >> 5) ? shared.index[lane] : PROG_NONE;
            prog_warp_argmax(best, best_i);
        }
        // The next reduction reuses the shared slots.
        __syncthreads();
    }
}

// Series mode stores each point's accumulators between its two kernels as three 32-bit words per
// accumulator: the f64 value's low and high halves and the argmax window. Word w of accumulator a of point
// n is at acc[(3a + w)·n_points + n], so that neighbouring points touch neighbouring words.
__device__ __forceinline__ void prog_store_acc(u32* __restrict__ acc, int a, u64 n, u32 n_points, double value,
                                               u32 window) {
    const u64 at = (u64)(3 * a) * n_points + n;
    acc[at] = (u32)__double2loint(value);
    acc[at + n_points] = (u32)__double2hiint(value);
    acc[at + 2ull * n_points] = window;
}

__device__ __forceinline__ double prog_load_acc_value(const u32* __restrict__ acc, int a, u64 n, u32 n_points) {
    const u64 at = (u64)(3 * a) * n_points + n;
    return __hiloint2double((int)acc[at + n_points], (int)acc[at]);
}

__device__ __forceinline__ u32 prog_load_acc_window(const u32* __restrict__ acc, int a, u64 n, u32 n_points) {
    return acc[(u64)(3 * a + 2) * n_points + n];
}
