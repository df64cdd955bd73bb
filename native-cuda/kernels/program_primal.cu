// program_primal.cu: the primal entry points of a generated program (`stde_cuda::codegen`), appended after
// the generated part, which defines the sizes (PROG_STRIDE, PROG_N_OUT, PROG_N_ACC, PROG_ACC_LEN,
// PROG_OUT_LEN), the window reductions prog_point_loops<TPP> and the main body prog_main_primal.
//
// TPP threads serve one point: 1 (no reduction, for programs without long loops), a warp, or the whole
// block (d in the thousands and beyond); the host picks by the longest loop (`codegen::PointLayout`). The
// lanes of a point split its windows, reduce (sums in f64, max with its first window), and lane 0 runs the
// main body in f64 and writes output j of point n to out[n·out_point_stride + j·out_output_stride]: the
// output columns of primal mode (stride 1, n_points), or block 0 of a jet batch in series mode (stride
// PROG_N_OUT, 1). Given `acc`, lane 0 also stores the accumulators for the series kernel (program.cuh).

template <int TPP>
__device__ __forceinline__ void prog_primal_points(const float* __restrict__ points,
                                                   const float* __restrict__ features,
                                                   const float* __restrict__ params, float* __restrict__ out,
                                                   float* __restrict__ acc, u32 n_points, u32 out_point_stride,
                                                   u32 out_output_stride) {
    __shared__ ProgShared shared;
    constexpr u32 points_per_block = STDE_BLOCK / TPP;
    const u32 lane = threadIdx.x % TPP;
    for (u64 first = (u64)blockIdx.x * points_per_block; first < n_points;
         first += (u64)gridDim.x * points_per_block) {
        const u64 n = first + threadIdx.x / TPP;
        // Uniform over the lanes of a point, so a block-wide reduction never loses a thread.
        if (n >= n_points) {
            continue;
        }
        const float* x = points + n * PROG_STRIDE;
        double r[PROG_ACC_LEN];
        u32 window[PROG_ACC_LEN];
        prog_point_loops<TPP>(x, params, lane, r, window, shared);
        if (lane != 0) {
            continue;
        }
        if (acc != nullptr) {
            for (int a = 0; a < PROG_N_ACC; ++a) {
                prog_store_acc((u32*)acc, a, n, n_points, r[a], window[a]);
            }
        }
        double o[PROG_OUT_LEN];
        prog_main_primal(x, features, n, n_points, params, r, o);
        for (int j = 0; j < PROG_N_OUT; ++j) {
            out[n * out_point_stride + (u64)j * out_output_stride] = (float)o[j];
        }
    }
}

// One thread per point.
extern "C" __global__ void prog_primal_thread(const float* __restrict__ points, const float* __restrict__ features,
                                              const float* __restrict__ params, float* __restrict__ out,
                                              float* __restrict__ acc, u32 n_points, u32 out_point_stride,
                                              u32 out_output_stride) {
    prog_primal_points<1>(points, features, params, out, acc, n_points, out_point_stride, out_output_stride);
}

// One warp per point.
extern "C" __global__ void prog_primal_warp(const float* __restrict__ points, const float* __restrict__ features,
                                            const float* __restrict__ params, float* __restrict__ out,
                                            float* __restrict__ acc, u32 n_points, u32 out_point_stride,
                                            u32 out_output_stride) {
    prog_primal_points<32>(points, features, params, out, acc, n_points, out_point_stride, out_output_stride);
}

// One block per point.
extern "C" __global__ void prog_primal_block(const float* __restrict__ points, const float* __restrict__ features,
                                             const float* __restrict__ params, float* __restrict__ out,
                                             float* __restrict__ acc, u32 n_points, u32 out_point_stride,
                                             u32 out_output_stride) {
    prog_primal_points<STDE_BLOCK>(points, features, params, out, acc, n_points, out_point_stride,
                                   out_output_stride);
}
