// gemm_simple.wgsl: C = alpha * op(A) * op(B) + beta * C for software adapters (lavapipe,
// SwiftShader): no workgroup memory and no barriers. Each invocation accumulates a 16 x 8 block of
// C in registers, as eight 4 x 4 matrices, reading 4 x 4 blocks of op(A) and op(B) per four inner
// terms.
//
// Why: a CPU-emulated adapter runs a workgroup as loops over SIMD lanes, and every storage or
// workgroup-memory access becomes a lane-by-lane loop with a bounds check, so the cost is the
// number of loads; arithmetic is nearly free. A 16 x 8 block costs 24 loads of four values per 512
// multiply-adds, where the tiled kernel (gemm.wgsl) pays for staging, workgroup reads and barriers
// (each barrier splits the shader into resumable pieces).
//
// The generated prelude fixes TRANS_A and TRANS_B, the loader (gemm_load_vec4.wgsl or
// gemm_load_scalar.wgsl) binds A and B and reads four consecutive values along their contiguous
// dimension, and the storer (gemm_store_vec4.wgsl or gemm_store_scalar.wgsl) binds C and writes a
// 4 x 4 block of it. Operands and the split inner dimension are as in gemm.wgsl: element (i, q) of
// op(A) is at a_base + i * lda + q (a_base + q * lda + i when transposed), likewise for B;
// workgroup layer z sums q in [z * k_split, (z + 1) * k_split) and writes at
// c_base + z * out_stride.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    a_base: u32,
    b_base: u32,
    c_base: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    alpha: f32,
    beta: f32,
    k_split: u32,
    out_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Invocations per workgroup: one SIMD pass of an AVX2 llvmpipe (two of SwiftShader's 4 lanes).
const WG: u32 = 8u;

// Zeroes the columns q >= valid of an (i x q) block: the last inner terms of a slice read values
// past its end (other rows, or nothing), which may be anything, even NaN, so they are replaced
// rather than multiplied by zero.
fn mask_cols(m: mat4x4<f32>, valid: u32) -> mat4x4<f32> {
    let z = vec4<f32>(0.0);
    return mat4x4<f32>(
        select(z, m[0], valid > 0u),
        select(z, m[1], valid > 1u),
        select(z, m[2], valid > 2u),
        select(z, m[3], valid > 3u),
    );
}

// Zeroes the rows q >= valid of a (q x j) block.
fn mask_rows(m: mat4x4<f32>, valid: u32) -> mat4x4<f32> {
    let keep = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid);
    let z = vec4<f32>(0.0);
    return mat4x4<f32>(select(z, m[0], keep), select(z, m[1], keep), select(z, m[2], keep),
        select(z, m[3], keep));
}

// The 4 x 4 block of op(A) at rows i0.., inner terms q0.. (columns of the result are q).
fn block_a(i0: u32, q0: u32) -> mat4x4<f32> {
    let s = p.lda;
    if TRANS_A {
        // Stored k x m: one load per inner term runs along i, i.e. one column of the block.
        let o = p.a_base + q0 * s + i0;
        return mat4x4<f32>(load_a(o), load_a(o + s), load_a(o + 2u * s), load_a(o + 3u * s));
    }
    // Stored m x k: one load per row runs along q.
    let o = p.a_base + i0 * s + q0;
    return transpose(mat4x4<f32>(load_a(o), load_a(o + s), load_a(o + 2u * s),
        load_a(o + 3u * s)));
}

// The 4 x 4 block of op(B) at inner terms q0.., columns j0...
fn block_b(q0: u32, j0: u32) -> mat4x4<f32> {
    let s = p.ldb;
    if TRANS_B {
        // Stored n x k: one load per column runs along q.
        let o = p.b_base + j0 * s + q0;
        return mat4x4<f32>(load_b(o), load_b(o + s), load_b(o + 2u * s), load_b(o + 3u * s));
    }
    // Stored k x n: one load per inner term runs along j, i.e. one row of the block.
    let o = p.b_base + q0 * s + j0;
    return transpose(mat4x4<f32>(load_b(o), load_b(o + s), load_b(o + 2u * s),
        load_b(o + 3u * s)));
}

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let blocks_n = (p.n + 7u) / 8u;
    let g = linear_group(wid, nwg) * WG + lid;
    if g >= blocks_n * ((p.m + 15u) / 16u) {
        return;
    }
    let row0 = (g / blocks_n) * 16u;
    let col0 = (g % blocks_n) * 8u;
    // Blocks past the edge of C start at the last whole group of four instead, so that every load
    // stays on stored values; what they compute there is not stored.
    let last_i = (p.m - 1u) & ~3u;
    let last_j = (p.n - 1u) & ~3u;
    let i0 = min(row0, last_i);
    let i1 = min(row0 + 4u, last_i);
    let i2 = min(row0 + 8u, last_i);
    let i3 = min(row0 + 12u, last_i);
    let j0 = min(col0, last_j);
    let j1 = min(col0 + 4u, last_j);
    let k0 = wid.z * p.k_split;
    let k1 = min(p.k, k0 + p.k_split);
    var c00 = mat4x4<f32>();
    var c01 = mat4x4<f32>();
    var c10 = mat4x4<f32>();
    var c11 = mat4x4<f32>();
    var c20 = mat4x4<f32>();
    var c21 = mat4x4<f32>();
    var c30 = mat4x4<f32>();
    var c31 = mat4x4<f32>();
    var q = k0;
    for (; q + 4u <= k1; q += 4u) {
        let b0 = block_b(q, j0);
        let b1 = block_b(q, j1);
        var blk = block_a(i0, q);
        c00 += blk * b0;
        c01 += blk * b1;
        blk = block_a(i1, q);
        c10 += blk * b0;
        c11 += blk * b1;
        blk = block_a(i2, q);
        c20 += blk * b0;
        c21 += blk * b1;
        blk = block_a(i3, q);
        c30 += blk * b0;
        c31 += blk * b1;
    }
    if q < k1 {
        let valid = k1 - q;
        let b0 = mask_rows(block_b(q, j0), valid);
        let b1 = mask_rows(block_b(q, j1), valid);
        var blk = mask_cols(block_a(i0, q), valid);
        c00 += blk * b0;
        c01 += blk * b1;
        blk = mask_cols(block_a(i1, q), valid);
        c10 += blk * b0;
        c11 += blk * b1;
        blk = mask_cols(block_a(i2, q), valid);
        c20 += blk * b0;
        c21 += blk * b1;
        blk = mask_cols(block_a(i3, q), valid);
        c30 += blk * b0;
        c31 += blk * b1;
    }
    let c0 = p.c_base + wid.z * p.out_stride;
    store(c00, c0, row0, col0);
    store(c01, c0, row0, col0 + 4u);
    store(c10, c0, row0 + 4u, col0);
    store(c11, c0, row0 + 4u, col0 + 4u);
    store(c20, c0, row0 + 8u, col0);
    store(c21, c0, row0 + 8u, col0 + 4u);
    store(c30, c0, row0 + 12u, col0);
    store(c31, c0, row0 + 12u, col0 + 4u);
}
