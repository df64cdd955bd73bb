//! The matrix products of both kernel families against the f64 reference on the cases the
//! conformance suite's unaligned offsets never reach: operands whose bases and row lengths are
//! multiples of four (the simple family's vec4 loads), inner dimensions of every remainder mod 4
//! (its masked last slice of four inner terms, whose loads reach the next row or past the
//! operand), edges of its 16 × 8 register blocks, and NaN wherever a load may reach past an
//! operand (the rest of its buffer, and C itself when beta = 0), which must never reach a result.

mod common;

use stde_core::backend::reference::ReferenceBackend;
use stde_core::backend::{Backend, Gemm};
use stde_core::conformance::{compare, Tolerance};
use stde_core::rng::Philox;
use stde_wgpu::{WgpuBackend, WgpuParams};

/// Uniform values in [-1, 1) at the operand's entries, NaN everywhere else in its buffer (the
/// reference reads only the entries).
fn operand(
    seed: u32,
    offset: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    len: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut vals = vec![0.0f32; rows * cols];
    Philox::new(11).fill_uniform_f32(3, seed, &mut vals);
    let mut with_nan = vec![f32::NAN; len];
    let mut clean = vec![0.0f32; len];
    for r in 0..rows {
        for c in 0..cols {
            let v = 2.0 * vals[r * cols + c] - 1.0;
            with_nan[offset + r * ld + c] = v;
            clean[offset + r * ld + c] = v;
        }
    }
    (with_nan, clean)
}

fn check(b: &WgpuBackend, g: Gemm, seed: u32) {
    let r = ReferenceBackend;
    let lda = if g.trans_a { g.m } else { g.k };
    let ldb = if g.trans_b { g.k } else { g.n };
    let (a_rows, a_cols) = if g.trans_a { (g.k, g.m) } else { (g.m, g.k) };
    let (b_rows, b_cols) = if g.trans_b { (g.n, g.k) } else { (g.k, g.n) };
    // A tail past the operand's end, NaN.
    let a_len = g.a_offset + a_rows.max(1) * lda + 9;
    let b_len = g.b_offset + b_rows.max(1) * ldb + 9;
    let (a, a_clean) = operand(seed, g.a_offset, a_rows, a_cols, lda, a_len);
    let (bm, b_clean) = operand(seed + 1, g.b_offset, b_rows, b_cols, ldb, b_len);
    let c_len = g.c_offset + g.m * g.n + 5;
    let (mut c, _) = operand(seed + 2, g.c_offset, g.m, g.n, g.n, c_len);
    if g.beta == 0.0 {
        // Overwritten: garbage must not survive as 0 * NaN.
        c.iter_mut().for_each(|v| *v = f32::NAN);
    }
    let c_ref: Vec<f32> = c
        .iter()
        .map(|v| if v.is_nan() { 0.0 } else { *v })
        .collect();
    let up = |data: &[f32]| {
        let mut buf = b.alloc(data.len(), "test").unwrap();
        b.upload(&mut buf, 0, data);
        buf
    };
    let up_r = |data: &[f32]| {
        let mut buf = r.alloc(data.len(), "test").unwrap();
        r.upload(&mut buf, 0, data);
        buf
    };
    let (ab, bb, mut cb) = (up(&a), up(&bm), up(&c));
    b.gemm(g, &ab, &bb, &mut cb);
    let got = pollster::block_on(b.download(&cb, 0, c_len)).unwrap();
    // The reference sees zeros where the backend sees NaN.
    let (ar, br, mut cr) = (up_r(&a_clean), up_r(&b_clean), up_r(&c_ref));
    r.gemm(g, &ar, &br, &mut cr);
    let expected = pollster::block_on(r.download(&cr, 0, c_len)).unwrap();
    let range = g.c_offset..g.c_offset + g.m * g.n;
    let case = format!("{g:?} on {} ({:?})", b.describe(), b.kernel_variant());
    if let Err(m) = compare(&case, &got[range.clone()], &expected[range], Tolerance::F32) {
        panic!("{m}");
    }
}

#[test]
fn aligned_and_unaligned_products_match_reference() {
    for variant in common::VARIANTS {
        let b = backend_or_skip!(WgpuParams {
            kernel_variant: variant,
            ..WgpuParams::default()
        });
        let mut seed = 0;
        for &(m, n, k) in &[
            (16, 8, 4),
            (17, 9, 5),
            (32, 16, 6),
            (4, 4, 7),
            (1, 128, 36),
            (36, 1, 128),
            (44, 20, 1),
            (8, 12, 130),
        ] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                for (offsets, beta) in [((0, 0, 0), 0.0f32), ((4, 8, 3), 1.0), ((1, 4, 0), 0.5)] {
                    let g = Gemm {
                        m,
                        n,
                        k,
                        trans_a: ta,
                        trans_b: tb,
                        alpha: 0.75,
                        beta,
                        a_offset: offsets.0,
                        b_offset: offsets.1,
                        c_offset: offsets.2,
                    };
                    seed += 3;
                    check(&b, g, seed);
                }
            }
        }
    }
}
