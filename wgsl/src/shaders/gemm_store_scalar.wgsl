// gemm_store_scalar.wgsl: the result writer of gemm_simple.wgsl for any C: one value at a time.

@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// C[i0 + i, j0 + j] = alpha * acc[j][i] + beta * C[..] for the entries inside the m x n block; c0
// is the block's base in the binding.
fn store(acc: mat4x4<f32>, c0: u32, i0: u32, j0: u32) {
    for (var j = 0u; j < 4u; j++) {
        for (var i = 0u; i < 4u; i++) {
            if i0 + i < p.m && j0 + j < p.n {
                let idx = c0 + (i0 + i) * p.ldc + j0 + j;
                // beta = 0 overwrites: C may hold garbage (even NaN) that 0 * C would keep.
                var old = 0.0;
                if p.beta != 0.0 {
                    old = p.beta * c[idx];
                }
                c[idx] = p.alpha * acc[j][i] + old;
            }
        }
    }
}
