// gemm.wgsl: C = alpha * op(A) * op(B) + beta * C on one block of a (possibly split) matrix
// product: 16x16 invocations, each computing WORK x WORK outputs (WORK comes from gemm_tile64.wgsl
// or gemm_tile16.wgsl), with 16-deep slices of A and B staged in workgroup memory.
//
// Operands are bound as windows of larger buffers: element (i, q) of op(A) is at
// a_base + i * lda + q (or a_base + q * lda + i when transposed), likewise for B and C, where lda
// is the row length of the stored matrix and the bases are relative to the bound window.
//
// Split inner dimension: workgroup layer z (grid z) sums q in [z * k_split, (z + 1) * k_split) and
// writes to c_base + z * out_stride; with several layers the host binds a scratch buffer there and
// gemm_reduce.wgsl adds the layers into C.

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
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

const TILE: u32 = 16u * WORK;
const DEPTH: u32 = 16u;

// a_tile[q * TILE + i] = op(A)[row0 + i, q0 + q]; b_tile[q * TILE + j] = op(B)[q0 + q, col0 + j].
var<workgroup> a_tile: array<f32, TILE * DEPTH>;
var<workgroup> b_tile: array<f32, TILE * DEPTH>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 16u + lid.x;
    let ta = p.trans_a != 0u;
    let tb = p.trans_b != 0u;
    let k0 = wid.z * p.k_split;
    let k1 = min(p.k, k0 + p.k_split);
    // Row r of this invocation's outputs is acc_r; column s is component s (WORK = 1 uses acc0.x).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var q0 = k0; q0 < k1; q0 += DEPTH) {
        for (var r = 0u; r < WORK; r++) {
            let e = t + r * 256u;
            // Neighbouring invocations read neighbouring addresses of the stored matrix.
            var i = 0u;
            var q = 0u;
            if ta {
                i = e % TILE;
                q = e / TILE;
            } else {
                q = e % DEPTH;
                i = e / DEPTH;
            }
            let gi = row0 + i;
            let gq = q0 + q;
            var v = 0.0;
            if gi < p.m && gq < k1 {
                v = a[p.a_base + select(gi * p.lda + gq, gq * p.lda + gi, ta)];
            }
            a_tile[q * TILE + i] = v;
        }
        for (var r = 0u; r < WORK; r++) {
            let e = t + r * 256u;
            var j = 0u;
            var q = 0u;
            if tb {
                q = e % DEPTH;
                j = e / DEPTH;
            } else {
                j = e % TILE;
                q = e / TILE;
            }
            let gj = col0 + j;
            let gq = q0 + q;
            var v = 0.0;
            if gj < p.n && gq < k1 {
                v = b[p.b_base + select(gq * p.ldb + gj, gj * p.ldb + gq, tb)];
            }
            b_tile[q * TILE + j] = v;
        }
        workgroupBarrier();
        for (var q = 0u; q < DEPTH; q++) {
            // Explicit registers (no dynamically indexed private arrays): software rasterisers
            // such as lavapipe turn those into per-lane memory traffic.
            let at = q * TILE + lid.y;
            let bt = q * TILE + lid.x;
            if WORK == 4u {
                let bv = vec4<f32>(
                    b_tile[bt],
                    b_tile[bt + 16u],
                    b_tile[bt + 32u],
                    b_tile[bt + 48u],
                );
                acc0 = fma(vec4<f32>(a_tile[at]), bv, acc0);
                acc1 = fma(vec4<f32>(a_tile[at + 16u]), bv, acc1);
                acc2 = fma(vec4<f32>(a_tile[at + 32u]), bv, acc2);
                acc3 = fma(vec4<f32>(a_tile[at + 48u]), bv, acc3);
            } else {
                acc0.x = fma(a_tile[at], b_tile[bt], acc0.x);
            }
        }
        workgroupBarrier();
    }
    let c0 = p.c_base + wid.z * p.out_stride;
    for (var r = 0u; r < WORK; r++) {
        let gi = row0 + lid.y + 16u * r;
        var row = acc0;
        if r == 1u {
            row = acc1;
        } else if r == 2u {
            row = acc2;
        } else if r == 3u {
            row = acc3;
        }
        for (var s = 0u; s < WORK; s++) {
            let gj = col0 + lid.x + 16u * s;
            if gi < p.m && gj < p.n {
                let idx = c0 + gi * p.ldc + gj;
                // beta = 0 overwrites: C may hold garbage (even NaN) that 0 * C would keep.
                var old = 0.0;
                if p.beta != 0.0 {
                    old = p.beta * c[idx];
                }
                c[idx] = p.alpha * row[s] + old;
            }
        }
    }
}
