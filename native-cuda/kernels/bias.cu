// bias.cu: the bias of a linear layer on the primal rows of a jet batch, and the column sums that give its
// gradient (and the per-direction tangent sums of the input layer's adjoint).

// z[n·width + h] += bias[h] for the n_points primal rows (block 0) only: higher Taylor coefficients of
// an affine map carry no bias. One thread per (point, feature); neighbouring threads touch neighbouring
// features, so both loads are coalesced.
extern "C" __global__ void add_bias(float* __restrict__ z, const float* __restrict__ bias, u32 n_points,
                                    u32 width) {
    const u64 total = (u64)n_points * width;
    for (u64 e = global_index(); e < total; e += grid_stride()) {
        z[e] += bias[(u32)(e % width)];
    }
}

// Column sums of `n_src_blocks` matrices of `rows × width` values:
//   dst[b·dst_stride + h] (+)= Σ_{r < rows} src[b·src_block_stride + r·width + h].
// With one block and accumulate = 1 it is the bias gradient (Σ over points of the primal cotangent); the
// input layer's adjoint uses it with one block per direction (src_block_stride = 0 when all directions
// share the summed top block of a collapsed 1-jet).
//
// Thread blocks are 32 features × 8 row groups: each thread sums every 8th row of its feature (loads of
// a warp are 32 neighbouring features: coalesced), then the 8 partial sums are added in shared memory in
// a fixed order, so the result does not depend on scheduling.
extern "C" __global__ void column_sums(const float* __restrict__ src, float* __restrict__ dst, u32 rows,
                                       u32 width, u64 src_block_stride, u32 n_src_blocks, u32 dst_stride,
                                       u32 accumulate) {
    __shared__ float partial[8][33];
    const u32 tx = threadIdx.x & 31u;
    const u32 ty = threadIdx.x >> 5;
    const u32 h = blockIdx.x * 32u + tx;
    for (u32 b = blockIdx.y; b < n_src_blocks; b += gridDim.y) {
        const float* block = src + (u64)b * src_block_stride;
        float acc = 0.0f;
        if (h < width) {
            for (u32 r = ty; r < rows; r += 8u) {
                acc += block[(u64)r * width + h];
            }
        }
        partial[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && h < width) {
            float sum = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                sum += partial[i][tx];
            }
            float* out = dst + (u64)b * dst_stride + h;
            *out = accumulate ? *out + sum : sum;
        }
        // `partial` is rewritten by the next source block.
        __syncthreads();
    }
}
