// input_layer.cu: the sparse first layer: the tangent gather of one-hot probes, the fill of every
// non-primal block from the per-direction tangents, and the scatter-add of the tangent cotangents.
//
// With one-hot probes the slot-1 tangent of direction s through W1 is the column W1[:, idx[s]]: a gather
// of `width` numbers instead of a width × d product, and its adjoint is a scatter-add into V columns of
// ∂W1. Dense probes compute the same V × width tangent matrix with cuBLAS instead and share the fill.

// t[s·width + h] = W1[h·dim + idx[s]]: the tangent of one-hot direction s through the first layer.
extern "C" __global__ void input_gather(const float* __restrict__ w1, const u32* __restrict__ idx,
                                        float* __restrict__ t, u32 n_dirs, u32 width, u64 dim) {
    const u64 total = (u64)n_dirs * width;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        const u32 s = (u32)(e / width);
        const u32 h = (u32)(e % width);
        t[e] = w1[(u64)h * dim + idx[s]];
    }
}

// Completes the input layer's output batch z (n_blocks blocks of n_points × width) after cuBLAS wrote
// x·W1ᵀ into the primal block: block 0 gets the bias; block 1 + s (s < n_dirs, the slot-1 coefficient of
// direction s) gets t[s] on every point; every other block is zero. In a collapsed 1-jet
// (summed_top = 1) slot 1 is the top, and the single summed block gets Σ_s t[s].
//
// grid.y walks the blocks (strided when there are more than gridDim.y), grid.x the points × features of
// one block, so the block index needs no division.
extern "C" __global__ void input_fill(float* __restrict__ z, const float* __restrict__ bias,
                                      const float* __restrict__ t, u32 n_points, u32 width, u32 n_blocks,
                                      u32 n_dirs, u32 summed_top) {
    const u64 block_len = (u64)n_points * width;
    for (u32 b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        float* out = z + (u64)b * block_len;
        for (u64 e = global_index(); e < block_len; e += grid_stride()) {
            const u32 h = (u32)(e % width);
            if (b == 0) {
                out[e] += bias[h];
            } else if (summed_top) {
                float sum = 0.0f;
                for (u32 s = 0; s < n_dirs; ++s) {
                    sum += t[(u64)s * width + h];
                }
                out[e] = sum;
            } else if (b <= n_dirs) {
                out[e] = t[(u64)(b - 1) * width + h];
            } else {
                out[e] = 0.0f;
            }
        }
    }
}

// grad_w1[h·dim + idx[s]] += g[s·width + h]: the adjoint of the gather. Sampled index sets hold distinct
// indices, so every address receives one addition and the result is deterministic; the atomic keeps a
// caller's repeated index correct as well.
extern "C" __global__ void input_scatter(const float* __restrict__ g, const u32* __restrict__ idx,
                                         float* __restrict__ grad_w1, u32 n_dirs, u32 width, u64 dim) {
    const u64 total = (u64)n_dirs * width;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        const u32 s = (u32)(e / width);
        const u32 h = (u32)(e % width);
        atomicAdd(grad_w1 + (u64)h * dim + idx[s], g[e]);
    }
}
