//! How work is split so that every dispatch binds only windows of at most the storage binding
//! limit: block sizes of a matrix product and ranges of rows or values.

/// Output tile of the GEMM kernel (rows and columns per workgroup).
pub(crate) const GEMM_TILE: usize = 64;

/// Rounds a block size down to whole GEMM tiles when it spans more than one.
fn whole_tiles(x: usize) -> usize {
    if x >= GEMM_TILE {
        x / GEMM_TILE * GEMM_TILE
    } else {
        x.max(1)
    }
}

/// Shrinks a `rows × cols` sub-block of a row-major matrix with row length `ld` until its memory
/// extent `(rows − 1)·ld + cols` is at most `lim` values: fewer rows first, then (a single row)
/// fewer columns.
fn fit(rows: &mut usize, cols: &mut usize, ld: usize, lim: usize) {
    if (*rows - 1) * ld + *cols <= lim {
        return;
    }
    if *cols > lim {
        *cols = whole_tiles(lim);
        *rows = 1;
    } else {
        *rows = whole_tiles((lim - *cols) / ld + 1);
    }
}

/// Block sizes `(bm, bn, bk)` of `C[m×n] = op(A)[m×k]·op(B)[k×n]` such that the sub-blocks of `A`,
/// `B` and `C` that one dispatch touches each span at most `lim` consecutive values of their
/// buffers, and `bm`, `bn` at most `max_mn` (the grid limit).
///
/// A stored row is contiguous, so the cheapest split is by whole stored rows: rows of `X` and of
/// `W1` for the first layer's `X·W1ᵀ`, rows of `∂W1` (and of `X`) for its adjoint. Only when a
/// single row exceeds the limit is the inner dimension cut (and the partial products accumulated
/// with β = 1).
pub(crate) fn gemm_blocks(
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    lim: usize,
    max_mn: usize,
) -> (usize, usize, usize) {
    let lda = if trans_a { m } else { k };
    let ldb = if trans_b { k } else { n };
    let (mut bm, mut bn, mut bk) = (m.clamp(1, max_mn), n.clamp(1, max_mn), k.max(1));
    loop {
        let before = (bm, bn, bk);
        if trans_a {
            fit(&mut bk, &mut bm, lda, lim);
        } else {
            fit(&mut bm, &mut bk, lda, lim);
        }
        if trans_b {
            fit(&mut bn, &mut bk, ldb, lim);
        } else {
            fit(&mut bk, &mut bn, ldb, lim);
        }
        fit(&mut bm, &mut bn, n, lim);
        if (bm, bn, bk) == before {
            return (bm, bn, bk);
        }
    }
}

/// `[lo, hi)` of the values spanned by the `rows × cols` sub-block at `(r0, c0)` of a matrix with
/// row length `ld` starting at `offset` (one value when the block is empty, so that something
/// binds).
pub(crate) fn extent(
    offset: usize,
    ld: usize,
    r0: usize,
    c0: usize,
    rows: usize,
    cols: usize,
) -> (usize, usize) {
    let lo = offset + r0 * ld + c0;
    if rows == 0 || cols == 0 {
        return (lo, lo + 1);
    }
    (lo, offset + (r0 + rows - 1) * ld + c0 + cols)
}

/// Consecutive ranges `[a, b)` of `0..total`, each at most `step` long.
pub(crate) fn ranges(total: usize, step: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = step.max(1);
    (0..total)
        .step_by(step)
        .map(move |a| (a, (a + step).min(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extents_fit(m: usize, n: usize, k: usize, ta: bool, tb: bool, lim: usize) {
        let (bm, bn, bk) = gemm_blocks(m, n, k, ta, tb, lim, 1 << 20);
        let lda = if ta { m } else { k };
        let ldb = if tb { k } else { n };
        let a = if ta {
            (bk - 1) * lda + bm
        } else {
            (bm - 1) * lda + bk
        };
        let b = if tb {
            (bn - 1) * ldb + bk
        } else {
            (bk - 1) * ldb + bn
        };
        let c = (bm - 1) * n + bn;
        assert!(
            a <= lim && b <= lim && c <= lim,
            "{m} {n} {k} {ta} {tb}: {bm} {bn} {bk}"
        );
    }

    #[test]
    fn gemm_blocks_fit_the_binding_limit() {
        for &(m, n, k) in &[
            (100, 128, 5000),
            (128, 5000, 100),
            (1, 1, 1),
            (7, 9000, 3),
            (300, 300, 300),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    extents_fit(m, n, k, ta, tb, 4096);
                    extents_fit(m, n, k, ta, tb, 100);
                }
            }
        }
    }

    #[test]
    fn first_layer_splits_by_whole_rows() {
        // X (100 × 5000) · W1ᵀ (128 × 5000): whole rows of both, k never cut.
        let (bm, bn, bk) = gemm_blocks(100, 128, 5000, false, true, 16_000, 1 << 20);
        assert_eq!((bm, bn, bk), (3, 3, 5000));
    }
}
