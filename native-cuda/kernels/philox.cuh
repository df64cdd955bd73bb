// philox.cuh: Philox4x32-10 and the uniform, Rademacher and Box–Muller conversions of `stde_core::rng`.
//
// Integers and uniforms are bit-identical to the Rust generator: the uniforms are 24-bit integers
// scaled by 2^-24, exact in f32. Normals use the same f32 formulas with the accurate logf/sqrtf/sinf/cosf
// (never the __ intrinsics, and the kernels are not compiled with fast math), so they agree with the
// host to a few ulps.

// Random123's multipliers (counter words 0 and 2) and Weyl key increments.
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// Four output words of one Philox block.
struct Words4 {
    u32 w[4];
};

// The Philox4x32-10 bijection of the counter [c0, c1, c2, c3] under the key [k0, k1]: ten rounds, the
// key bumped before rounds 1..9, each round `[hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]` where
// (hi0, lo0) = M0·c0 and (hi1, lo1) = M1·c2.
__device__ __forceinline__ Words4 philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        const u32 hi0 = __umulhi(PHILOX_M0, c0);
        const u32 lo0 = PHILOX_M0 * c0;
        const u32 hi1 = __umulhi(PHILOX_M1, c2);
        const u32 lo1 = PHILOX_M1 * c2;
        const u32 n0 = hi1 ^ c1 ^ k0;
        const u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    Words4 out;
    out.w[0] = c0;
    out.w[1] = c1;
    out.w[2] = c2;
    out.w[3] = c3;
    return out;
}

// The block at address (stream, step, index, sub): counter [index, step, stream, sub].
__device__ __forceinline__ Words4 philox_block(u32 k0, u32 k1, u32 stream, u32 step, u32 index, u32 sub) {
    return philox4x32_10(index, step, stream, sub, k0, k1);
}

// 2^-24: the spacing of the 24-bit uniforms.
#define STDE_TWO_POW_M24 5.9604644775390625e-8f

// A uniform in [0, 1): (u >> 8)·2^-24, exact in f32.
__device__ __forceinline__ float uniform_f32(u32 u) {
    return (float)(u >> 8) * STDE_TWO_POW_M24;
}

// A uniform in (0, 1): ((u >> 8) | 1)·2^-24, exact in f32, so logf never sees zero.
__device__ __forceinline__ float uniform_open_f32(u32 u) {
    return (float)((u >> 8) | 1u) * STDE_TWO_POW_M24;
}

// −1 if bit 31 is set, else +1.
__device__ __forceinline__ float rademacher_f32(u32 u) {
    return (u & 0x80000000u) ? -1.0f : 1.0f;
}

// Box–Muller on two words: r = sqrt(−2 ln u1), θ = 2π(u2 − ½), returns (r cos θ, r sin θ). The angle is
// centred so that it stays in (−π, π), as on the host; 6.2831855f is the f32 constant `TAU`.
__device__ __forceinline__ void box_muller_f32(u32 w1, u32 w2, float* z0, float* z1) {
    const float u1 = uniform_open_f32(w1);
    const float u2 = uniform_open_f32(w2);
    const float r = sqrtf(-2.0f * logf(u1));
    const float theta = 6.2831855f * (u2 - 0.5f);
    *z0 = r * cosf(theta);
    *z1 = r * sinf(theta);
}

// The four normals of one block: words (0, 1) give z0, z1 and words (2, 3) give z2, z3.
__device__ __forceinline__ void normals4(const Words4& b, float z[4]) {
    box_muller_f32(b.w[0], b.w[1], &z[0], &z[1]);
    box_muller_f32(b.w[2], b.w[3], &z[2], &z[3]);
}
