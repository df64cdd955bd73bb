// sample.cu: the counter-based samplers of `stde_core::rng` on the device: flat Rademacher and Gaussian
// fills, and points of the unit-ball sampler (uniform radius times a normalised Gaussian direction).

// Flat fill of `count` values from (stream, step): element e is word (or normal) e % 4 of the block at
// counter [e / 4, step, stream, 0]. One thread per block of four. kind: 0 = Rademacher, 1 = Gaussian.
extern "C" __global__ void sample_flat(float* __restrict__ out, u64 count, u32 key0, u32 key1, u32 stream,
                                       u32 step, u32 kind) {
    const u64 quads = (count + 3ull) / 4ull;
    for (u64 q = global_index(); q < quads; q += grid_stride()) {
        const Words4 b = philox_block(key0, key1, stream, step, (u32)q, 0u);
        float v[4];
        if (kind == 0u) {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                v[j] = rademacher_f32(b.w[j]);
            }
        } else {
            normals4(b, v);
        }
        const u64 base = q * 4ull;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            if (base + j < count) {
                out[base + j] = v[j];
            }
        }
    }
}

// Points first .. first + n_points of the ball sampler, row-major n_points × dim, one thread block per
// point. Coordinates 4q .. 4q + 4 of point i's Gaussian direction are the normals of the block at
// counter [q, step, stream, i + 1] (the extras of a last partial quad are dropped); the radius is
// uniform_f32 of word 0 of the block at [i, step, stream, 0]; the point is radius · z / ‖z‖.
//
// The Gaussian vector is written once, its squared norm reduced over the block (in f64, like the host),
// and then each thread rescales exactly the values it wrote itself, so no other synchronisation is needed.
extern "C" __global__ void sample_ball(float* __restrict__ out, u32 n_points, u32 dim, u32 first, u32 key0,
                                       u32 key1, u32 stream, u32 step) {
    __shared__ double scratch[32];
    const u32 quads = (dim + 3u) / 4u;
    for (u32 row = blockIdx.x; row < n_points; row += gridDim.x) {
        const u32 i = first + row;
        float* point = out + (u64)row * dim;
        double acc = 0.0;
        for (u32 q = threadIdx.x; q < quads; q += blockDim.x) {
            const Words4 b = philox_block(key0, key1, stream, step, q, i + 1u);
            float z[4];
            normals4(b, z);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const u32 c = q * 4u + (u32)j;
                if (c < dim) {
                    point[c] = z[j];
                    acc += (double)z[j] * z[j];
                }
            }
        }
        const double norm = sqrt(block_sum(acc, scratch));
        const double radius = uniform_f32(philox_block(key0, key1, stream, step, i, 0u).w[0]);
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
}
