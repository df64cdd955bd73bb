//! Fused f32 jet kernels for the hidden activations (tanh, sin), forward and adjoint, for any order
//! `K ≤ 16`, collapsed or not, on the stacked-row layout of [`crate::batch`].
//!
//! One call handles a range of points (one rayon task). The layout puts features innermost, so for
//! one point every coefficient of every direction is a contiguous row of `width` features. The
//! kernels work on such rows, up to [`ROW`] features at a time: every step of a recurrence is a
//! `for h in 0..cw` loop over slices, which LLVM's loop vectoriser turns into full-width vector code
//! for any width. (Keeping 16-lane arrays in registers instead leaves the work to the SLP vectoriser,
//! which split loop-carried accumulators into 4/8/4-lane pieces that stalled on store forwarding:
//! measured 5× slower.) Inputs and outputs are read and written in place; the recurrence
//! temporaries are a few rows on the stack, in L1.
//!
//! Orders 1 and 2 (the Laplacian, first-order operators) have closed forms in `σ'`, `σ''`, `σ'''`;
//! higher orders run the O(K²) Taylor recurrences.
//!
//! The semantics are exactly those of [`crate::reference::unary_forward`] and
//! [`crate::reference::unary_adjoint`]:
//!
//! * uncollapsed: each direction runs the full recurrence from the shared primal;
//! * collapsed: each direction runs with its top input coefficient zeroed, the per-direction tops are
//!   summed, and the linear top terms are added once (`σ'(a_0)·Σ_s a_K^s` forward; in the adjoint the
//!   top cotangent `σ'(a_0)·b̄_K` and, for the primal, `σ''(a_0)·a_K·b̄_K`).

use crate::batch::JetShape;
use crate::mlp::Activation;

use super::simd::{multiversioned, sin_cos_f32, sin_cos_fixup, tanh_d_f32};

/// The largest jet order the kernels accept.
pub(crate) const MAX_ORDER: usize = 16;

/// Features per row chunk: the paper's hidden width, so a whole row is one chunk there. Temporaries
/// are `[f32; ROW]` arrays on the stack (two sets of `MAX_ORDER + 1` plus one: 17.5 KiB for the
/// generic orders).
const ROW: usize = 128;

/// One row of temporaries.
type Row = [f32; ROW];

/// The block/row arithmetic of a [`JetShape`], inlined into the kernels.
#[derive(Clone, Copy)]
struct Geo {
    order: usize,
    dirs: usize,
    points: usize,
    width: usize,
    collapsed: bool,
}

impl Geo {
    fn new(shape: JetShape) -> Self {
        Self {
            order: shape.order,
            dirs: shape.n_dirs,
            points: shape.n_points,
            width: shape.width,
            collapsed: shape.collapsed,
        }
    }

    /// Block of coefficient `k` of direction `s` (as [`JetShape::block`], without its checks).
    #[inline(always)]
    fn block(&self, k: usize, s: usize) -> usize {
        if k == 0 {
            0
        } else if self.collapsed && k == self.order {
            1 + (self.order - 1) * self.dirs
        } else {
            1 + (k - 1) * self.dirs + s
        }
    }

    /// Flat index of the first feature of (block, point) in the whole batch.
    #[inline(always)]
    fn row(&self, block: usize, point: usize) -> usize {
        (block * self.points + point) * self.width
    }
}

/// Where one task is in the batch: point `n` (global), its row offset `base` in the task's block
/// views, the feature chunk `c0 .. c0 + cw`.
#[derive(Clone, Copy)]
struct At {
    n: usize,
    base: usize,
    c0: usize,
    cw: usize,
}

impl At {
    /// Row chunk of coefficient `k` of direction `s` in a whole batch.
    #[inline(always)]
    fn input<'a>(&self, g: &Geo, buf: &'a [f32], k: usize, s: usize) -> &'a [f32] {
        let i = g.row(g.block(k, s), self.n) + self.c0;
        &buf[i..i + self.cw]
    }

    /// Row chunk of block `b` in a task's block views.
    #[inline(always)]
    fn output<'a>(&self, out: &'a mut [&mut [f32]], b: usize) -> &'a mut [f32] {
        let i = self.base + self.c0;
        &mut out[b][i..i + self.cw]
    }
}

/// One activation's rules on rows.
trait Rule {
    /// `b0 = σ(a0)`, `d0 = σ'(a0)` (all slices of one length).
    fn primal(a0: &[f32], b0: &mut [f32], d0: &mut [f32]);

    /// `(σ''(a_0), σ'''(a_0))` from `σ(a_0)` and `σ'(a_0)`.
    fn higher(b0: f32, d0: f32) -> (f32, f32);

    /// Coefficient `k` of `σ'` along the curve, from the input coefficients `a_1..=a_jmax` (higher
    /// ones are zero), `b[..=k]` and `d[..k]`, written to `dk`.
    fn next_d<'a>(
        k: usize,
        jmax: usize,
        a: &impl Fn(usize) -> &'a [f32],
        b: &[Row],
        d_k: &mut [f32],
    );
}

/// `tanh`: `σ' = 1 − b²`, so `d_k = −Σ_i b_i b_{k−i}` (`k ≥ 1`).
struct TanhRule;

impl Rule for TanhRule {
    #[inline(always)]
    fn primal(a0: &[f32], b0: &mut [f32], d0: &mut [f32]) {
        let n = a0.len();
        let (b0, d0) = (&mut b0[..n], &mut d0[..n]);
        for h in 0..n {
            (b0[h], d0[h]) = tanh_d_f32(a0[h]);
        }
    }

    #[inline(always)]
    fn higher(b0: f32, d0: f32) -> (f32, f32) {
        // σ'' = −2bσ', σ''' = −2σ'² + 4b²σ'.
        (-2.0 * b0 * d0, d0 * (4.0 * b0 * b0 - 2.0 * d0))
    }

    #[inline(always)]
    fn next_d<'a>(
        k: usize,
        _jmax: usize,
        _a: &impl Fn(usize) -> &'a [f32],
        b: &[Row],
        d_k: &mut [f32],
    ) {
        let n = d_k.len();
        // Each off-diagonal pair of (b²)_k once, doubled, then the middle term. The first pair
        // (i = 0, always present for k ≥ 1) initialises the row instead of a separate zero fill.
        let (b0, bk) = (&b[0][..n], &b[k][..n]);
        for h in 0..n {
            d_k[h] = -2.0 * b0[h] * bk[h];
        }
        for i in 1..k.div_ceil(2) {
            let (bi, bki) = (&b[i][..n], &b[k - i][..n]);
            for h in 0..n {
                d_k[h] -= 2.0 * bi[h] * bki[h];
            }
        }
        if k.is_multiple_of(2) {
            let bm = &b[k / 2][..n];
            for h in 0..n {
                d_k[h] -= bm[h] * bm[h];
            }
        }
    }
}

/// `sin`: with `b = sin a`, `d = cos a`: `k·d_k = −Σ_j j·a_j·b_{k−j}`.
struct SinRule;

impl Rule for SinRule {
    #[inline(always)]
    fn primal(a0: &[f32], b0: &mut [f32], d0: &mut [f32]) {
        let n = a0.len();
        let (b0, d0) = (&mut b0[..n], &mut d0[..n]);
        for h in 0..n {
            (b0[h], d0[h]) = sin_cos_f32(a0[h]);
        }
        sin_cos_fixup(a0, b0, d0);
    }

    #[inline(always)]
    fn higher(b0: f32, d0: f32) -> (f32, f32) {
        (-b0, -d0)
    }

    #[inline(always)]
    fn next_d<'a>(
        k: usize,
        jmax: usize,
        a: &impl Fn(usize) -> &'a [f32],
        b: &[Row],
        d_k: &mut [f32],
    ) {
        let n = d_k.len();
        // Term j = 1 initialises the row (jmax ≥ 1 whenever a series is run).
        let (a1, bk1) = (&a(1)[..n], &b[k - 1][..n]);
        let w1 = 1.0 / k as f32;
        for h in 0..n {
            d_k[h] = -w1 * a1[h] * bk1[h];
        }
        for j in 2..=k.min(jmax) {
            let (aj, bkj) = (&a(j)[..n], &b[k - j][..n]);
            let w = j as f32 / k as f32;
            for h in 0..n {
                d_k[h] -= w * aj[h] * bkj[h];
            }
        }
    }
}

/// `b_k = (1/k) Σ_{j=1..min(k, jmax)} j·a_j·d_{k−j}`: the chain rule shared by tanh and sin.
#[inline(always)]
fn next_b<'a>(k: usize, jmax: usize, a: &impl Fn(usize) -> &'a [f32], d: &[Row], b_k: &mut [f32]) {
    let n = b_k.len();
    // Term j = 1 initialises the row (jmax ≥ 1 whenever a series is run).
    let (a1, dk1) = (&a(1)[..n], &d[k - 1][..n]);
    let w1 = 1.0 / k as f32;
    for h in 0..n {
        b_k[h] = w1 * a1[h] * dk1[h];
    }
    for j in 2..=k.min(jmax) {
        let (aj, dkj) = (&a(j)[..n], &d[k - j][..n]);
        let w = j as f32 / k as f32;
        for h in 0..n {
            b_k[h] += w * aj[h] * dkj[h];
        }
    }
}

/// Runs the recurrences of one direction: `b[1..=order]` and `d[1..=d_upto]` from `b[0]`, `d[0]` and
/// the input coefficients `a_1..=a_jmax` (`jmax = K − 1` zeroes the top of a collapsed series).
#[inline(always)]
fn series<'a, R: Rule>(
    order: usize,
    jmax: usize,
    d_upto: usize,
    a: &impl Fn(usize) -> &'a [f32],
    b: &mut [Row],
    d: &mut [Row],
    cw: usize,
) {
    for k in 1..=order {
        next_b(k, jmax, a, d, &mut b[k][..cw]);
        if k <= d_upto {
            R::next_d(k, jmax, a, b, &mut d[k][..cw]);
        }
    }
}

/// The chunks `(c0, cw)` of a row of `width` features.
#[inline(always)]
fn chunks(width: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..width)
        .step_by(ROW)
        .map(move |c0| (c0, ROW.min(width - c0)))
}

/// Forward rule for the points `p0 .. p0 + rows` (`out[b]` is block `b` of those points).
#[inline(always)]
fn forward_task<R: Rule>(g: Geo, z: &[f32], p0: usize, out: &mut [&mut [f32]]) {
    let order = g.order;
    let rows = out[0].len() / g.width;
    let upper = if g.collapsed { order - 1 } else { order };
    let top_block = g.block(order, 0);
    let mut b = [[0.0f32; ROW]; MAX_ORDER + 1];
    let mut d = [[0.0f32; ROW]; MAX_ORDER + 1];
    let mut top = [0.0f32; ROW];
    for ln in 0..rows {
        for (c0, cw) in chunks(g.width) {
            let at = At {
                n: p0 + ln,
                base: ln * g.width,
                c0,
                cw,
            };
            R::primal(at.input(&g, z, 0, 0), &mut b[0][..cw], &mut d[0][..cw]);
            at.output(out, 0).copy_from_slice(&b[0][..cw]);
            let top = &mut top[..cw];
            top.fill(0.0);
            // In a collapsed 1-jet the per-direction tops are σ applied to [a_0, 0]: exactly zero.
            if upper > 0 {
                for s in 0..g.dirs {
                    let a = |k: usize| at.input(&g, z, k, s);
                    series::<R>(order, upper, order - 1, &a, &mut b, &mut d, cw);
                    for k in 1..=upper {
                        at.output(out, g.block(k, s)).copy_from_slice(&b[k][..cw]);
                    }
                    if g.collapsed {
                        let bk = &b[order][..cw];
                        for h in 0..cw {
                            top[h] += bk[h];
                        }
                    }
                }
            }
            if g.collapsed {
                let (t_in, d0) = (at.input(&g, z, order, 0), &d[0][..cw]);
                let o = at.output(out, top_block);
                for h in 0..cw {
                    o[h] = top[h] + d0[h] * t_in[h];
                }
            }
        }
    }
}

/// Adjoint for the points `p0 .. p0 + rows` (`out[b]` is block `b` of `z_bar` for those points).
#[inline(always)]
fn backward_task<R: Rule>(g: Geo, z: &[f32], h_bar: &[f32], p0: usize, out: &mut [&mut [f32]]) {
    let order = g.order;
    let rows = out[0].len() / g.width;
    let upper = if g.collapsed { order - 1 } else { order };
    let top_block = g.block(order, 0);
    let mut b = [[0.0f32; ROW]; MAX_ORDER + 1];
    let mut d = [[0.0f32; ROW]; MAX_ORDER + 1];
    let mut pb = [0.0f32; ROW];
    for ln in 0..rows {
        for (c0, cw) in chunks(g.width) {
            let at = At {
                n: p0 + ln,
                base: ln * g.width,
                c0,
                cw,
            };
            R::primal(at.input(&g, z, 0, 0), &mut b[0][..cw], &mut d[0][..cw]);
            let pb = &mut pb[..cw];
            pb.fill(0.0);
            // A collapsed 1-jet has no per-direction terms: its lower series is [a_0, 0], whose
            // derivative series has a zero first coefficient.
            if upper > 0 {
                for s in 0..g.dirs {
                    let a = |k: usize| at.input(&g, z, k, s);
                    series::<R>(order, upper, order, &a, &mut b, &mut d, cw);
                    // b̄_k of this direction (for a collapsed top, the shared top cotangent).
                    let bb = |k: usize| at.input(&g, h_bar, k, s);
                    // ā_j = Σ_{k≥j} b̄_k·d_{k−j}; the primal's share (j = 0) sums over directions.
                    for j in 1..=upper {
                        let o = at.output(out, g.block(j, s));
                        let (bj, d0) = (bb(j), &d[0][..cw]);
                        for h in 0..cw {
                            o[h] = bj[h] * d0[h];
                        }
                        for k in j + 1..=order {
                            let (bk, dkj) = (bb(k), &d[k - j][..cw]);
                            for h in 0..cw {
                                o[h] += bk[h] * dkj[h];
                            }
                        }
                    }
                    for k in 1..=order {
                        let (bk, dk) = (bb(k), &d[k][..cw]);
                        for h in 0..cw {
                            pb[h] += bk[h] * dk[h];
                        }
                    }
                }
            }
            let (hb0, b0, d0) = (at.input(&g, h_bar, 0, 0), &b[0][..cw], &d[0][..cw]);
            for h in 0..cw {
                pb[h] += d0[h] * hb0[h];
            }
            if g.collapsed {
                let (t_in, t_bar) = (at.input(&g, z, order, 0), at.input(&g, h_bar, order, 0));
                let o = at.output(out, top_block);
                for h in 0..cw {
                    o[h] = t_bar[h] * d0[h];
                    pb[h] += t_bar[h] * R::higher(b0[h], d0[h]).0 * t_in[h];
                }
            }
            at.output(out, 0).copy_from_slice(pb);
        }
    }
}

/// Orders 1 and 2 in closed form: with `σ', σ'', σ'''` at `a_0`,
/// `b_1 = σ'a_1`, `b_2 = σ'a_2 + ½σ''a_1²`, and along the curve `d_1 = σ''a_1`,
/// `d_2 = σ''a_2 + ½σ'''a_1²` (a collapsed top enters only through its linear terms).
#[inline(always)]
fn low_order_forward<R: Rule>(g: Geo, z: &[f32], p0: usize, out: &mut [&mut [f32]]) {
    let order = g.order;
    let rows = out[0].len() / g.width;
    let top_block = g.block(order, 0);
    let (mut b0, mut d0, mut half_dd) = ([0.0f32; ROW], [0.0f32; ROW], [0.0f32; ROW]);
    let mut sq = [0.0f32; ROW];
    for ln in 0..rows {
        for (c0, cw) in chunks(g.width) {
            let at = At {
                n: p0 + ln,
                base: ln * g.width,
                c0,
                cw,
            };
            let (b0, d0, half_dd, sq) = (
                &mut b0[..cw],
                &mut d0[..cw],
                &mut half_dd[..cw],
                &mut sq[..cw],
            );
            R::primal(at.input(&g, z, 0, 0), b0, d0);
            at.output(out, 0).copy_from_slice(b0);
            for h in 0..cw {
                half_dd[h] = 0.5 * R::higher(b0[h], d0[h]).0;
            }
            match (order, g.collapsed) {
                (1, true) => {}
                (1, false) => {
                    for s in 0..g.dirs {
                        let a1 = at.input(&g, z, 1, s);
                        let o = at.output(out, g.block(1, s));
                        for h in 0..cw {
                            o[h] = d0[h] * a1[h];
                        }
                    }
                }
                (_, false) => {
                    for s in 0..g.dirs {
                        let (a1, a2) = (at.input(&g, z, 1, s), at.input(&g, z, 2, s));
                        let o = at.output(out, g.block(1, s));
                        for h in 0..cw {
                            o[h] = d0[h] * a1[h];
                        }
                        let o = at.output(out, g.block(2, s));
                        for h in 0..cw {
                            o[h] = d0[h] * a2[h] + half_dd[h] * a1[h] * a1[h];
                        }
                    }
                }
                (_, true) => {
                    sq.fill(0.0);
                    for s in 0..g.dirs {
                        let a1 = at.input(&g, z, 1, s);
                        let o = at.output(out, g.block(1, s));
                        for h in 0..cw {
                            o[h] = d0[h] * a1[h];
                            sq[h] += a1[h] * a1[h];
                        }
                    }
                }
            }
            if g.collapsed {
                // Top: σ'·Σ_s a_K^s plus, for K = 2, the per-direction lower tops ½σ''·Σ_s a_1².
                let t_in = at.input(&g, z, order, 0);
                let o = at.output(out, top_block);
                for h in 0..cw {
                    o[h] = d0[h] * t_in[h];
                }
                if order == 2 {
                    for h in 0..cw {
                        o[h] += half_dd[h] * sq[h];
                    }
                }
            }
        }
    }
}

/// Adjoint of [`low_order_forward`]: `ā_1 = b̄_1σ' + b̄_2 d_1`, `ā_2 = b̄_2σ'`,
/// `ā_0 = σ'b̄_0 + Σ_s (b̄_1 d_1 + b̄_2 d_2)` (+ `σ''·a_K·b̄_K` for a collapsed top).
#[inline(always)]
fn low_order_backward<R: Rule>(
    g: Geo,
    z: &[f32],
    h_bar: &[f32],
    p0: usize,
    out: &mut [&mut [f32]],
) {
    let order = g.order;
    let rows = out[0].len() / g.width;
    let top_block = g.block(order, 0);
    let (mut b0, mut d0, mut dd, mut half_ddd) =
        ([0.0f32; ROW], [0.0f32; ROW], [0.0f32; ROW], [0.0f32; ROW]);
    let mut pb = [0.0f32; ROW];
    for ln in 0..rows {
        for (c0, cw) in chunks(g.width) {
            let at = At {
                n: p0 + ln,
                base: ln * g.width,
                c0,
                cw,
            };
            let (b0, d0, dd, half_ddd, pb) = (
                &mut b0[..cw],
                &mut d0[..cw],
                &mut dd[..cw],
                &mut half_ddd[..cw],
                &mut pb[..cw],
            );
            R::primal(at.input(&g, z, 0, 0), b0, d0);
            for h in 0..cw {
                let (s2, s3) = R::higher(b0[h], d0[h]);
                dd[h] = s2;
                half_ddd[h] = 0.5 * s3;
            }
            let hb0 = at.input(&g, h_bar, 0, 0);
            for h in 0..cw {
                pb[h] = d0[h] * hb0[h];
            }
            match (order, g.collapsed) {
                (1, true) => {}
                (1, false) => {
                    for s in 0..g.dirs {
                        let (a1, hb1) = (at.input(&g, z, 1, s), at.input(&g, h_bar, 1, s));
                        let o = at.output(out, g.block(1, s));
                        for h in 0..cw {
                            o[h] = hb1[h] * d0[h];
                            pb[h] += hb1[h] * dd[h] * a1[h];
                        }
                    }
                }
                (_, false) => {
                    for s in 0..g.dirs {
                        let (a1, a2) = (at.input(&g, z, 1, s), at.input(&g, z, 2, s));
                        let (hb1, hb2) = (at.input(&g, h_bar, 1, s), at.input(&g, h_bar, 2, s));
                        let o = at.output(out, g.block(1, s));
                        for h in 0..cw {
                            let d1 = dd[h] * a1[h];
                            let d2 = dd[h] * a2[h] + half_ddd[h] * a1[h] * a1[h];
                            o[h] = hb1[h] * d0[h] + hb2[h] * d1;
                            pb[h] += hb1[h] * d1 + hb2[h] * d2;
                        }
                        let o = at.output(out, g.block(2, s));
                        for h in 0..cw {
                            o[h] = hb2[h] * d0[h];
                        }
                    }
                }
                (_, true) => {
                    let t_bar = at.input(&g, h_bar, order, 0);
                    for s in 0..g.dirs {
                        let (a1, hb1) = (at.input(&g, z, 1, s), at.input(&g, h_bar, 1, s));
                        let o = at.output(out, g.block(1, s));
                        for h in 0..cw {
                            // The lower series has a_2 = 0: d_1 = σ''a_1, d_2 = ½σ'''a_1².
                            let d1 = dd[h] * a1[h];
                            let d2 = half_ddd[h] * a1[h] * a1[h];
                            o[h] = hb1[h] * d0[h] + t_bar[h] * d1;
                            pb[h] += hb1[h] * d1 + t_bar[h] * d2;
                        }
                    }
                }
            }
            if g.collapsed {
                let (t_in, t_bar) = (at.input(&g, z, order, 0), at.input(&g, h_bar, order, 0));
                let o = at.output(out, top_block);
                for h in 0..cw {
                    o[h] = t_bar[h] * d0[h];
                    pb[h] += t_bar[h] * dd[h] * t_in[h];
                }
            }
            at.output(out, 0).copy_from_slice(pb);
        }
    }
}

/// Dispatches to the closed forms (orders 1, 2) or the recurrences.
#[inline(always)]
fn forward_any<R: Rule>(g: Geo, z: &[f32], p0: usize, out: &mut [&mut [f32]]) {
    match g.order {
        1 | 2 => low_order_forward::<R>(g, z, p0, out),
        _ => forward_task::<R>(g, z, p0, out),
    }
}

/// Dispatches to the closed forms (orders 1, 2) or the recurrences.
#[inline(always)]
fn backward_any<R: Rule>(g: Geo, z: &[f32], h_bar: &[f32], p0: usize, out: &mut [&mut [f32]]) {
    match g.order {
        1 | 2 => low_order_backward::<R>(g, z, h_bar, p0, out),
        _ => backward_task::<R>(g, z, h_bar, p0, out),
    }
}

multiversioned! {
    /// The forward rule of `act` on the points `p0 ..` of `out`, compiled for each SIMD level.
    pub(crate) fn activation_forward_task(
        act: Activation,
        shape: JetShape,
        z: &[f32],
        p0: usize,
        out: &mut [&mut [f32]],
    ) {
        let g = Geo::new(shape);
        match act {
            Activation::Tanh => forward_any::<TanhRule>(g, z, p0, out),
            Activation::Sin => forward_any::<SinRule>(g, z, p0, out),
        }
    }
}

multiversioned! {
    /// The adjoint of `act` on the points `p0 ..` of `out`, compiled for each SIMD level.
    pub(crate) fn activation_backward_task(
        act: Activation,
        shape: JetShape,
        z: &[f32],
        h_bar: &[f32],
        p0: usize,
        out: &mut [&mut [f32]],
    ) {
        let g = Geo::new(shape);
        match act {
            Activation::Tanh => backward_any::<TanhRule>(g, z, h_bar, p0, out),
            Activation::Sin => backward_any::<SinRule>(g, z, h_bar, p0, out),
        }
    }
}
