// gemm_store_vec4.wgsl: the result writer of gemm_simple.wgsl when C is bound as vec4 values: one
// store per row of a 4 x 4 block (a software adapter pays a lane-by-lane loop per store, as per
// load). The host picks it only when the base, the row length, the block width n and the window
// are multiples of four values, so a block's four columns are all inside C or all outside it.

@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

// Rows i0 + i of C (columns j0..j0 + 4) = alpha * acc^T + beta * C for the rows inside the block.
fn store(acc: mat4x4<f32>, c0: u32, i0: u32, j0: u32) {
    if j0 >= p.n {
        return;
    }
    let rows = transpose(acc);
    for (var i = 0u; i < 4u; i++) {
        if i0 + i < p.m {
            let idx = (c0 + (i0 + i) * p.ldc + j0) / 4u;
            // beta = 0 overwrites: C may hold garbage (even NaN) that 0 * C would keep.
            var old = vec4<f32>(0.0);
            if p.beta != 0.0 {
                old = p.beta * c[idx];
            }
            c[idx] = p.alpha * rows[i] + old;
        }
    }
}
