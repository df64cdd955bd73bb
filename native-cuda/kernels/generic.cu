// generic.cu: the problem-agnostic step primitives (`GenericStep`): probe tangents in any slot of the
// input layer (a scaled gather of W1's columns and its scatter-add adjoint), the shared block map of a
// weight-shared first block and its adjoint, the ansatz u = A + B·m with
// the weighted readout of the term estimates and its adjoint, and every point sampler of
// `stde_core::rng::sample_points_from`.
//
// The f64 semantics these kernels follow are `core/src/backend/host_step.rs` and `rng.rs`. Jet batches
// use the stacked-row layout: block 0 the primal, coefficient k of direction s at block 1 + (k−1)·V + s,
// and in a collapsed batch one summed block 1 + (K−1)·V for k = K.

// A slot with no probe (`SlotProbes::EMPTY` on the host).
#define STDE_EMPTY_SLOT 0xFFFFFFFFu

// c·W1[:, j] for slot i (= s·order + k − 1) of the one-hot probes, or zero for an empty slot. An index
// past the row (a caller's bug the host cannot see without a download) gives NaN, so that it shows in the
// loss instead of reading outside W1.
__device__ __forceinline__ float slot_column(const float* __restrict__ w1, const u32* __restrict__ slot_index,
                                             const float* __restrict__ slot_coeff, u32 i, u32 h, u64 stride) {
    const u32 j = slot_index[i];
    if (j == STDE_EMPTY_SLOT) {
        return 0.0f;
    }
    if ((u64)j >= stride) {
        return __int_as_float(0x7fc00000);
    }
    return slot_coeff[i] * w1[(u64)h * stride + j];
}

// The tangent row of every tangent block b = 1 .. n_blocks − 1 of the input layer's output with one-hot
// probes: rows[(b − 1)·width + h] = Σ over the slots (s, k) stored in block b of c·W1[h, j]. Uncollapsed,
// block b holds slot k = (b − 1) / V + 1 of direction s = (b − 1) % V; collapsed, the last block sums
// slot K of every direction. `input_fill` (input_layer.cu) then broadcasts each row to every point.
extern "C" __global__ void slot_gather(const float* __restrict__ w1, const u32* __restrict__ slot_index,
                                       const float* __restrict__ slot_coeff, float* __restrict__ rows,
                                       u32 n_dirs, u32 order, u32 width, u64 stride, u32 collapsed) {
    const u32 n_rows = collapsed ? (order - 1u) * n_dirs + 1u : order * n_dirs;
    const u64 total = (u64)n_rows * width;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        const u32 r = (u32)(e / width);
        const u32 h = (u32)(e % width);
        float v = 0.0f;
        if (collapsed && r == n_rows - 1u) {
            for (u32 s = 0; s < n_dirs; ++s) {
                v += slot_column(w1, slot_index, slot_coeff, s * order + order - 1u, h, stride);
            }
        } else {
            const u32 k = r / n_dirs + 1u;
            const u32 s = r % n_dirs;
            v = slot_column(w1, slot_index, slot_coeff, s * order + k - 1u, h, stride);
        }
        rows[e] = v;
    }
}

// The adjoint of `slot_gather` and the broadcast: grad_w1[h·stride + j] += c·g[(b − 1)·width + h] for
// every filled slot (s, k), with b its block and g the column sums of the tangent blocks' cotangents
// (one row per tangent block). Empty slots and out-of-range indices add nothing. Repeated indices are
// correct through the atomic (their order of addition is not fixed, so such sums may differ run to run
// by rounding).
extern "C" __global__ void slot_scatter(const float* __restrict__ g, const u32* __restrict__ slot_index,
                                        const float* __restrict__ slot_coeff, float* __restrict__ grad_w1,
                                        u32 n_dirs, u32 order, u32 width, u64 stride, u32 collapsed) {
    const u64 total = (u64)n_dirs * order * width;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        const u32 i = (u32)(e / width);
        const u32 h = (u32)(e % width);
        const u32 j = slot_index[i];
        if (j == STDE_EMPTY_SLOT || (u64)j >= stride) {
            continue;
        }
        const u32 s = i / order;
        const u32 k = i % order + 1u;
        const u32 row = (collapsed && k == order) ? (order - 1u) * n_dirs : (k - 1u) * n_dirs + s;
        atomicAdd(grad_w1 + (u64)h * stride + j, slot_coeff[i] * g[(u64)row * width + h]);
    }
}

// k! in f64 (exact up to 18!).
__device__ __forceinline__ double factorial_f64(u32 k) {
    double f = 1.0;
    for (u32 i = 2; i <= k; ++i) {
        f *= (double)i;
    }
    return f;
}

// The readout's view of one point: the model output m (width 1, possibly collapsed) and the ansatz
// series A, B (width 2, never collapsed), both with V directions and order K over n_points points.
struct ReadoutPoint {
    const float* m;
    const float* ansatz;
    u32 n_points, n_dirs, order, n;
    bool summed;

    // Block of coefficient k of direction s in the uncollapsed layout.
    __device__ __forceinline__ u64 block(u32 k, u32 s) const {
        return k == 0u ? 0ull : 1ull + (u64)(k - 1u) * n_dirs + s;
    }
    // The summed top block of a collapsed batch.
    __device__ __forceinline__ u64 top_block() const {
        return 1ull + (u64)(order - 1u) * n_dirs;
    }
    // m_k^s (k < K when summed).
    __device__ __forceinline__ double mm(u32 k, u32 s) const {
        return m[block(k, s) * n_points + n];
    }
    // A_k^s (f = 0) or B_k^s (f = 1).
    __device__ __forceinline__ double ab(u32 k, u32 s, u32 f) const {
        return ansatz[(block(k, s) * n_points + n) * 2ull + f];
    }
    // u_k^s = A_k + Σ_i B_i·m_{k−i}; for the collapsed top, without B_0·m_K (stored only summed).
    __device__ __forceinline__ double u(u32 k, u32 s) const {
        double acc = ab(k, s, 0u);
        const u32 first = (summed && k == order) ? 1u : 0u;
        for (u32 i = first; i <= k; ++i) {
            acc += ab(i, s, 1u) * mm(k - i, s);
        }
        return acc;
    }
};

// One thread per point n: features[n] = u_0 = A_0 + B_0·m_0, and for every term j
//   features[(1 + j)·N + n] = Σ_s Σ_{k=1..K} W[j][s][k−1]·k!·u_k^s
// with W the weight table (n_terms × V × K, weights on derivative coefficients). In a collapsed batch the
// directions' tops share the weight W[j][0][K−1], and B_0·m_top is added once. Neighbouring threads read
// neighbouring points of every block (coalesced); sums run in f64 as on the host.
extern "C" __global__ void readout_forward(const float* __restrict__ m, const float* __restrict__ ansatz,
                                           const float* __restrict__ weights, float* __restrict__ features,
                                           u32 n_points, u32 n_dirs, u32 order, u32 n_terms, u32 collapsed) {
    for (u64 e = global_index(); e < n_points; e += grid_stride()) {
        ReadoutPoint p = {m, ansatz, n_points, n_dirs, order, (u32)e, collapsed != 0u && order >= 1u};
        const double b0 = p.ab(0u, 0u, 1u);
        features[e] = (float)(p.ab(0u, 0u, 0u) + b0 * (double)m[e]);
        for (u32 j = 0; j < n_terms; ++j) {
            const float* w = weights + (u64)j * n_dirs * order;
            double acc = 0.0;
            for (u32 s = 0; s < n_dirs; ++s) {
                for (u32 k = 1; k <= order; ++k) {
                    acc += (double)w[(u64)s * order + k - 1u] * factorial_f64(k) * p.u(k, s);
                }
            }
            if (p.summed) {
                const double top = m[p.top_block() * n_points + e];
                acc += (double)w[order - 1u] * factorial_f64(order) * b0 * top;
            }
            features[(u64)(1u + j) * n_points + e] = (float)acc;
        }
    }
}

// The adjoint of readout_forward, one thread per point: with ū_k^s = Σ_j f̄_{1+j}·W[j][s][k−1]·k! (for the
// collapsed top, the shared weight W[j][0][K−1]) and u_k = Σ_i B_i m_{k−i},
//   m̄_0 = f̄_0·B_0 + Σ_s Σ_{k≥1} ū_k^s·B_k^s,   m̄_q^s = Σ_{k=q..K} ū_k^s·B_{k−q}^s  (1 ≤ q, q < K if
// collapsed), and the collapsed top m̄_top = ū_K·B_0. Every value of m_bar is written.
extern "C" __global__ void readout_backward(const float* __restrict__ ansatz, const float* __restrict__ weights,
                                            const float* __restrict__ feature_bar, float* __restrict__ m_bar,
                                            u32 n_points, u32 n_dirs, u32 order, u32 n_terms, u32 collapsed) {
    for (u64 e = global_index(); e < n_points; e += grid_stride()) {
        const ReadoutPoint p = {nullptr, ansatz, n_points, n_dirs, order, (u32)e, collapsed != 0u && order >= 1u};
        const auto u_bar = [&](u32 s, u32 k) {
            const u32 ws = (p.summed && k == order) ? 0u : s;
            double acc = 0.0;
            for (u32 j = 0; j < n_terms; ++j) {
                acc += (double)feature_bar[(u64)(1u + j) * n_points + e] *
                       (double)weights[((u64)j * n_dirs + ws) * order + k - 1u];
            }
            return acc * factorial_f64(k);
        };
        const double b0 = p.ab(0u, 0u, 1u);
        double m0_bar = (double)feature_bar[e] * b0;
        const u32 upper = p.summed ? order - 1u : order;
        for (u32 s = 0; s < n_dirs; ++s) {
            for (u32 k = 1; k <= order; ++k) {
                m0_bar += u_bar(s, k) * p.ab(k, s, 1u);
            }
            for (u32 q = 1; q <= upper; ++q) {
                double acc = 0.0;
                for (u32 k = q; k <= order; ++k) {
                    acc += u_bar(s, k) * p.ab(k - q, s, 1u);
                }
                m_bar[p.block(q, s) * n_points + e] = (float)acc;
            }
        }
        if (p.summed) {
            m_bar[p.top_block() * n_points + e] = (float)(u_bar(0u, order) * b0);
        }
        m_bar[e] = (float)m0_bar;
    }
}

// Space samplers (`PointSampler` on the host) and time rules (`TimeSampler`).
#define STDE_SAMPLER_BALL 0u
#define STDE_SAMPLER_SPHERE 1u
#define STDE_SAMPLER_BOX 2u
#define STDE_SAMPLER_GAUSSIAN 3u
#define STDE_SAMPLER_SDE 4u
#define STDE_TIME_NONE 0u
#define STDE_TIME_UNIFORM 1u
#define STDE_TIME_FIXED 2u

// Points first .. first + n_points of a sampler, rows of `stride` values (dim coordinates, then the time
// when time_kind is not NONE), one thread block per point, addressed as `sample_points_from`:
// * the head block [i, step, stream, 0]: word 0 the ball's radius, word 1 the uniform time end·u;
// * coordinates 4q .. 4q + 4 from the block [q, step, stream, i + 1]: four normals (ball, sphere, Gaussian,
//   SDE marginal) or four uniforms (box: lo + (hi − lo)·u, the product unfused as on the host, so box
//   coordinates are bit-identical).
// The ball and sphere reduce ‖z‖² over the block in f64 and each thread rescales the values it wrote,
// like `sample_ball`. p0, p1 are (lo, hi) for the box and (std, −) for the Gaussian.
extern "C" __global__ void sample_points(float* __restrict__ out, u32 n_points, u32 dim, u32 stride, u32 first,
                                         u32 key0, u32 key1, u32 stream, u32 step, u32 sampler, float p0,
                                         float p1, u32 time_kind, float time_value) {
    __shared__ double scratch[32];
    const u32 quads = (dim + 3u) / 4u;
    const bool normalise = sampler == STDE_SAMPLER_BALL || sampler == STDE_SAMPLER_SPHERE;
    for (u32 row = blockIdx.x; row < n_points; row += gridDim.x) {
        const u32 i = first + row;
        float* point = out + (u64)row * stride;
        const Words4 head = philox_block(key0, key1, stream, step, i, 0u);
        const float t = time_kind == STDE_TIME_UNIFORM ? time_value * uniform_f32(head.w[1])
                                                       : (time_kind == STDE_TIME_FIXED ? time_value : 0.0f);
        // The factor of the normals: std for the Gaussian, √(2t) for the SDE marginal.
        const float scale_z =
            sampler == STDE_SAMPLER_GAUSSIAN ? p0 : (sampler == STDE_SAMPLER_SDE ? sqrtf(2.0f * t) : 1.0f);
        double acc = 0.0;
        for (u32 q = threadIdx.x; q < quads; q += blockDim.x) {
            const Words4 b = philox_block(key0, key1, stream, step, q, i + 1u);
            float z[4];
            if (sampler == STDE_SAMPLER_BOX) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    z[j] = p0 + __fmul_rn(p1 - p0, uniform_f32(b.w[j]));
                }
            } else {
                normals4(b, z);
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const u32 c = q * 4u + (u32)j;
                if (c < dim) {
                    if (normalise) {
                        point[c] = z[j];
                        acc += (double)z[j] * z[j];
                    } else if (sampler == STDE_SAMPLER_BOX) {
                        point[c] = z[j];
                    } else {
                        point[c] = z[j] * scale_z;
                    }
                }
            }
        }
        if (normalise) {
            const double norm = sqrt(block_sum(acc, scratch));
            const double radius = sampler == STDE_SAMPLER_BALL ? (double)uniform_f32(head.w[0]) : 1.0;
            // A zero Gaussian vector cannot occur (every open uniform gives r > 0), but the origin beats a NaN.
            const double scale = norm > 0.0 ? radius / norm : 0.0;
            for (u32 q = threadIdx.x; q < quads; q += blockDim.x) {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const u32 c = q * 4u + (u32)j;
                    if (c < dim) {
                        point[c] = (float)((double)point[c] * scale);
                    }
                }
            }
        }
        if (time_kind != STDE_TIME_NONE && threadIdx.x == 0) {
            point[dim] = t;
        }
    }
}

// The shared block map of a weight-shared first block (`GenericStep::shared_block_forward`): the point
// rows' coordinates 0 .. n_blocks·B are cut into blocks of B, each mapped by the shared weights
// w = params[offset .. offset + B] and bias c = params[offset + B] to y_b = w·x_block + c (coordinates
// past the blocks, such as the time, are not read). The block features are a jet batch of width
// n_blocks in the stacked-row layout. f64 semantics: `host_step::shared_block_forward`.

// Primal rows of the block features: one thread per (point, block), the block's dot product in f32.
extern "C" __global__ void shared_primal(const float* __restrict__ points, const float* __restrict__ params,
                                         float* __restrict__ out, u32 n_points, u32 n_blocks, u32 block,
                                         u64 stride, u64 offset) {
    const u64 total = (u64)n_points * n_blocks;
    const float* w = params + offset;
    const float c = params[offset + block];
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        const u64 n = e / n_blocks;
        const u64 b = e % n_blocks;
        const float* x = points + n * stride + b * block;
        float acc = 0.0f;
        for (u32 i = 0; i < block; ++i) {
            acc += w[i] * x[i];
        }
        out[e] = acc + c;
    }
}

// Column `col` of the tangent row of slot (s, k): one-hot a·e_j gives a·w[j mod B] in column j / B for
// a mapped j and zero elsewhere (NaN for an index past the row, as `slot_column`); dense (slot 1 only)
// gives the block's dot product with the tangent.
__device__ __forceinline__ float shared_slot_value(const float* __restrict__ w, const u32* __restrict__ slot_index,
                                                   const float* __restrict__ slot_coeff,
                                                   const float* __restrict__ dense, u32 s, u32 k, u32 order,
                                                   u32 col, u32 n_blocks, u32 block, u64 stride, u32 dense_kind) {
    if (dense_kind) {
        if (k != 1u) {
            return 0.0f;
        }
        const float* v = dense + (u64)s * stride + (u64)col * block;
        float acc = 0.0f;
        for (u32 i = 0; i < block; ++i) {
            acc += w[i] * v[i];
        }
        return acc;
    }
    const u32 slot = s * order + k - 1u;
    const u32 j = slot_index[slot];
    if (j == STDE_EMPTY_SLOT) {
        return 0.0f;
    }
    if ((u64)j >= stride) {
        return __int_as_float(0x7fc00000);
    }
    const u64 mapped = (u64)n_blocks * block;
    return ((u64)j < mapped && j / block == col) ? slot_coeff[slot] * w[j % block] : 0.0f;
}

// The tangent row of every tangent block r (= block r + 1), n_blocks values each: rows[r·n_blocks + col].
// Uncollapsed, block r + 1 holds slot k = r / V + 1 of direction s = r % V; collapsed, the last row sums
// slot K of every direction.
extern "C" __global__ void shared_rows(const float* __restrict__ params, const u32* __restrict__ slot_index,
                                       const float* __restrict__ slot_coeff, const float* __restrict__ dense,
                                       float* __restrict__ rows, u32 n_dirs, u32 order, u32 n_blocks, u32 block,
                                       u64 stride, u64 offset, u32 dense_kind, u32 collapsed) {
    const u32 n_rows = collapsed ? (order - 1u) * n_dirs + 1u : order * n_dirs;
    const u64 total = (u64)n_rows * n_blocks;
    const float* w = params + offset;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        const u32 r = (u32)(e / n_blocks);
        const u32 col = (u32)(e % n_blocks);
        float v = 0.0f;
        if (collapsed && r == n_rows - 1u) {
            for (u32 s = 0; s < n_dirs; ++s) {
                v += shared_slot_value(w, slot_index, slot_coeff, dense, s, order, order, col, n_blocks, block,
                                       stride, dense_kind);
            }
        } else {
            v = shared_slot_value(w, slot_index, slot_coeff, dense, r % n_dirs, r / n_dirs + 1u, order, col,
                                  n_blocks, block, stride, dense_kind);
        }
        rows[e] = v;
    }
}

// Broadcasts tangent row r to every point of block r + 1 of the block features.
extern "C" __global__ void shared_fill(const float* __restrict__ rows, float* __restrict__ out, u32 n_points,
                                       u32 n_blocks, u32 n_rows) {
    const u64 block_len = (u64)n_points * n_blocks;
    const u64 total = (u64)n_rows * block_len;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        out[block_len + e] = rows[(e / block_len) * n_blocks + e % n_blocks];
    }
}

// The primal part of the shared map's weight adjoint in chunks of the (point, block) pairs: thread i of
// chunk c writes partial[c·(B + 1) + i] = Σ ȳ_0[n, b]·x[n, b·B + i] over the chunk's pairs (i < B), or
// Σ ȳ_0[n, b] (i = B), summed in f64 in pair order. Neighbouring threads read neighbouring coordinates.
extern "C" __global__ void shared_grad_partial(const float* __restrict__ points, const float* __restrict__ y_bar,
                                               float* __restrict__ partial, u32 n_points, u32 n_blocks,
                                               u32 block, u64 stride, u32 n_chunks) {
    const u64 i = global_index();
    if (i > block) {
        return;
    }
    const u64 pairs = (u64)n_points * n_blocks;
    for (u32 c = blockIdx.y; c < n_chunks; c += gridDim.y) {
        const u64 lo = pairs * c / n_chunks;
        const u64 hi = pairs * (c + 1u) / n_chunks;
        double acc = 0.0;
        for (u64 q = lo; q < hi; ++q) {
            const double yb = (double)y_bar[q];
            if (i < block) {
                const u64 n = q / n_blocks;
                const u64 b = q % n_blocks;
                acc += yb * (double)points[n * stride + b * block + i];
            } else {
                acc += yb;
            }
        }
        partial[(u64)c * (block + 1u) + i] = (float)acc;
    }
}

// ∂w_i and ∂c, one thread each: the chunks' partial sums in chunk order, plus the tangent blocks' part
// from `sums` (the column sums over the points of every tangent block of ȳ, n_blocks per row): one-hot
// slots a·e_j add a·sums[row][j / B] to ∂w_{j mod B}, dense slots Σ_b sums[row][b]·v[b·B + i].
extern "C" __global__ void shared_grad_reduce(const float* __restrict__ partial, const float* __restrict__ sums,
                                              const u32* __restrict__ slot_index,
                                              const float* __restrict__ slot_coeff,
                                              const float* __restrict__ dense, float* __restrict__ grad,
                                              u32 n_chunks, u32 n_dirs, u32 order, u32 n_blocks, u32 block,
                                              u64 stride, u32 dense_kind, u32 collapsed) {
    const u64 i = global_index();
    if (i > block) {
        return;
    }
    double acc = 0.0;
    for (u32 c = 0; c < n_chunks; ++c) {
        acc += (double)partial[(u64)c * (block + 1u) + i];
    }
    const u64 mapped = (u64)n_blocks * block;
    if (i < block) {
        for (u32 s = 0; s < n_dirs; ++s) {
            for (u32 k = 1; k <= order; ++k) {
                const u32 row = (collapsed && k == order) ? (order - 1u) * n_dirs : (k - 1u) * n_dirs + s;
                const float* g = sums + (u64)row * n_blocks;
                if (dense_kind) {
                    if (k != 1u) {
                        continue;
                    }
                    const float* v = dense + (u64)s * stride;
                    for (u32 b = 0; b < n_blocks; ++b) {
                        acc += (double)g[b] * (double)v[(u64)b * block + i];
                    }
                } else {
                    const u32 j = slot_index[s * order + k - 1u];
                    if (j == STDE_EMPTY_SLOT || (u64)j >= mapped || j % block != i) {
                        continue;
                    }
                    acc += (double)slot_coeff[s * order + k - 1u] * (double)g[j / block];
                }
            }
        }
    }
    grad[i] = (float)((double)grad[i] + acc);
}
