// common.cuh: the integer types, launch-shape helpers and block reductions shared by every stde-cuda kernel.
//
// NVRTC compiles without the CUDA toolkit's headers, so nothing here includes anything: the fixed-width
// types are spelled out, and everything relies only on built-ins (threadIdx, __shfl_down_sync, …).
// The host prepends this file (after the generated prelude) to every kernel file.

typedef unsigned int u32;
typedef unsigned long long u64;

// Every kernel is launched with blocks of this many threads (a multiple of the warp size, which the
// reductions below rely on); the host uses the same number (`BLOCK` in `exec.rs`).
#define STDE_BLOCK 256

// The index of this thread in a one-dimensional grid, in 64 bits: flat buffers at d = 10^7 exceed 2^31.
__device__ __forceinline__ u64 global_index() {
    return (u64)blockIdx.x * blockDim.x + threadIdx.x;
}

// The stride of a grid-stride loop over a one-dimensional grid.
__device__ __forceinline__ u64 grid_stride() {
    return (u64)gridDim.x * blockDim.x;
}

// Sum over the 32 lanes of a warp; the result is valid in lane 0.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Sum over a whole one-dimensional block, returned to every thread. `scratch` is shared memory for 32
// values. Every thread of the block must call it (it synchronises), and the block size must be a
// multiple of 32. The order of the additions is fixed, so results are reproducible run to run.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    const u32 n_warps = (blockDim.x + 31u) >> 5;
    v = warp_sum(v);
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        T w = lane < n_warps ? scratch[lane] : T(0);
        w = warp_sum(w);
        if (lane == 0) {
            scratch[0] = w;
        }
    }
    __syncthreads();
    const T total = scratch[0];
    // A second call may overwrite scratch[0]; make every thread read it first.
    __syncthreads();
    return total;
}
