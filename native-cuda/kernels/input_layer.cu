// input_layer.cu: the fill of the input layer's output batch: the bias on the primal rows and the
// per-block tangent rows broadcast to every point.
//
// A probe tangent is the same for every point, so its image through W1 is one row of `width` numbers per
// tangent block, computed once (a scaled gather of W1's columns for one-hot probes, `slot_gather` in
// generic.cu, or a cuBLAS product for dense ones) and broadcast here.

// Completes the input layer's output batch z (n_blocks blocks of n_points × width) after cuBLAS wrote
// x·W1ᵀ into the primal block: block 0 gets the bias; tangent block b (1 ≤ b ≤ n_rows) gets
// rows[b − 1] on every point; every other block is zero. With summed_top = 1 (a collapsed 1-jet with
// dense probes) the single tangent block gets the sum of the n_rows rows.
//
// grid.y walks the blocks (strided when there are more than gridDim.y), grid.x the points × features of
// one block, so the block index needs no division.
extern "C" __global__ void input_fill(float* __restrict__ z, const float* __restrict__ bias,
                                      const float* __restrict__ rows, u32 n_points, u32 width, u32 n_blocks,
                                      u32 n_rows, u32 summed_top) {
    const u64 block_len = (u64)n_points * width;
    for (u32 b = blockIdx.y; b < n_blocks; b += gridDim.y) {
        float* out = z + (u64)b * block_len;
        for (u64 e = global_index(); e < block_len; e += grid_stride()) {
            const u32 h = (u32)(e % width);
            if (b == 0) {
                out[e] += bias[h];
            } else if (summed_top) {
                float sum = 0.0f;
                for (u32 r = 0; r < n_rows; ++r) {
                    sum += rows[(u64)r * width + h];
                }
                out[e] = sum;
            } else if (b <= n_rows) {
                out[e] = rows[(u64)(b - 1) * width + h];
            } else {
                out[e] = 0.0f;
            }
        }
    }
}
