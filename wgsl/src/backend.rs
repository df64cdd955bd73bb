//! `impl Backend for WgpuBackend`: every primitive as a sequence of dispatches, each binding only
//! windows of at most the storage binding limit (see the crate documentation for the splits).

use std::future::Future;

use stde_core::backend::{AdamStep, Backend, BackendError, Gemm, Sampling};
use stde_core::batch::JetShape;
use stde_core::mlp::Activation;
use stde_core::rng::streams;

use crate::buffer::{RawBuf, WgpuBuf, WgpuIdx};
use crate::context::{State, Window, PARTIAL_SLOT, STRADDLE_SLOTS};
use crate::kernels::{GemmLayout, Jet2, Kernel, MAX_ORDER};
use crate::plan::{extent, gemm_blocks, ranges, GEMM_TILE};
use crate::WgpuBackend;

/// A GEMM block with fewer output tiles than this splits its inner dimension.
const SPLIT_TARGET: usize = 256;
/// Fewest inner-dimension terms per split.
const SPLIT_MIN_K: usize = 256;
/// The same two for the simple variant on a CPU-emulated adapter: a few cores, and each split costs
/// a reduction pass.
const SIMPLE_SPLIT_TARGET: usize = 4;
const SIMPLE_SPLIT_MIN_K: usize = 4096;

/// `u32` of a size or index that the caller's shapes already bound (kernels index with u32).
#[track_caller]
fn u(x: usize) -> u32 {
    u32::try_from(x).expect("a size above u32 reached a kernel")
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

/// Panics with a caller-facing message unless `need <= have`.
#[track_caller]
pub(crate) fn check_len(what: &str, need: usize, have: usize) {
    assert!(
        need <= have,
        "{what}: needs {need} values, the buffer holds {have}"
    );
}

impl WgpuBackend {
    /// A grid of `groups` workgroups on x, spilling onto y above the per-dimension limit (kernels
    /// linearise the workgroup id).
    fn grid_2d(&self, groups: usize) -> (u32, u32) {
        let max = self.max_groups as usize;
        if groups <= max {
            (u(groups), 1)
        } else {
            (u(max), u(groups.div_ceil(max)))
        }
    }

    /// The `…Simple` variant and its workgroup count for `items` outputs (one invocation each) on
    /// a software adapter, else the GPU kernel with `gpu_groups` workgroups.
    fn pick(
        &self,
        gpu: Kernel,
        simple: Kernel,
        items: usize,
        gpu_groups: usize,
    ) -> (Kernel, usize) {
        if self.simple {
            (simple, items.div_ceil(Kernel::SIMPLE_WG))
        } else {
            (gpu, gpu_groups)
        }
    }

    /// Rows of `row_len` values that fit in one window.
    ///
    /// # Panics
    /// If a single row does not fit in a storage binding.
    #[track_caller]
    fn rows_per(&self, row_len: usize) -> usize {
        assert!(
            row_len <= self.win_elems,
            "a row of {row_len} values does not fit in one storage binding of {} bytes",
            self.bind_bytes
        );
        (self.win_elems / row_len.max(1)).max(1)
    }

    /// `C = alpha·op(A)·op(B) + beta·C`, split into blocks whose operands each fit in a window.
    pub(crate) fn gemm_raw(&self, st: &mut State, g: Gemm, a: &RawBuf, b: &RawBuf, c: &RawBuf) {
        if g.m == 0 || g.n == 0 {
            return;
        }
        // The thin-tile kernel covers 16 columns per workgroup: keep its grid within the limit.
        let max_mn = self.max_groups as usize * (GEMM_TILE / 4);
        let (bm, bn, bk) = gemm_blocks(g.m, g.n, g.k, g.trans_a, g.trans_b, self.win_elems, max_mn);
        let lda = if g.trans_a { g.m } else { g.k };
        let ldb = if g.trans_b { g.k } else { g.n };
        let k_blocks: Vec<(usize, usize)> = if g.k == 0 {
            vec![(0, 0)]
        } else {
            ranges(g.k, bk).collect()
        };
        for (i0, i1) in ranges(g.m, bm) {
            for (j0, j1) in ranges(g.n, bn) {
                let (mi, nj) = (i1 - i0, j1 - j0);
                for &(p0, p1) in &k_blocks {
                    let kp = p1 - p0;
                    let (a_lo, a_hi) = if g.trans_a {
                        extent(g.a_offset, lda, p0, i0, kp, mi)
                    } else {
                        extent(g.a_offset, lda, i0, p0, mi, kp)
                    };
                    let (b_lo, b_hi) = if g.trans_b {
                        extent(g.b_offset, ldb, j0, p0, nj, kp)
                    } else {
                        extent(g.b_offset, ldb, p0, j0, kp, nj)
                    };
                    // An empty inner dimension reads nothing; bind the first value.
                    let (a_lo, a_hi) = if kp == 0 { (0, 1) } else { (a_lo, a_hi) };
                    let (b_lo, b_hi) = if kp == 0 { (0, 1) } else { (b_lo, b_hi) };
                    let (c_lo, c_hi) = extent(g.c_offset, g.n, i0, j0, mi, nj);
                    let wa = self.window(st, a, a_lo, a_hi);
                    let wb = self.window(st, b, b_lo, b_hi);
                    let wc = self.window(st, c, c_lo, c_hi);
                    // Later slices of a cut inner dimension accumulate onto the first one.
                    let beta = if p0 == 0 { g.beta } else { 1.0 };
                    let (kernel, grid, blocks) = if self.simple {
                        // One invocation per 16 x 8 block of C, SIMPLE_WG per workgroup.
                        let blocks = mi.div_ceil(16) * nj.div_ceil(8);
                        let aligned = |w: &Window, base: u32, ld: usize| {
                            self.vec4_ok
                                && w.offset.is_multiple_of(16)
                                && w.size.is_multiple_of(16)
                                && base.is_multiple_of(4)
                                && ld.is_multiple_of(4)
                        };
                        let layout = GemmLayout {
                            trans_a: g.trans_a,
                            trans_b: g.trans_b,
                            load_vec4: aligned(&wa, wa.base(a_lo), lda)
                                && aligned(&wb, wb.base(b_lo), ldb),
                            // Whole groups of four columns, including the partial products of a
                            // split (stride mi * nj), so a block never writes a neighbour's values.
                            store_vec4: aligned(&wc, wc.base(c_lo), g.n) && nj.is_multiple_of(4),
                        };
                        let groups = blocks.div_ceil(Kernel::SIMPLE_WG);
                        (Kernel::GemmSimple(layout), self.grid_2d(groups), groups)
                    } else {
                        let small = mi < GEMM_TILE || nj < GEMM_TILE;
                        let (kernel, tile) = if small {
                            (Kernel::GemmSmall, GEMM_TILE / 4)
                        } else {
                            (Kernel::Gemm, GEMM_TILE)
                        };
                        let grid = (u(nj.div_ceil(tile)), u(mi.div_ceil(tile)));
                        (kernel, grid, nj.div_ceil(tile) * mi.div_ceil(tile))
                    };
                    // A block with few workgroups and a long inner dimension (the first layer: a
                    // few hundred outputs, d terms each) would keep most of the device idle: split
                    // the inner dimension across workgroup layers and add the layers in a second
                    // pass. A CPU-emulated adapter has a few cores, so it splits only when its
                    // workgroups would not even cover those.
                    let (target, min_k) = if self.simple {
                        (SIMPLE_SPLIT_TARGET, SIMPLE_SPLIT_MIN_K)
                    } else {
                        (SPLIT_TARGET, SPLIT_MIN_K)
                    };
                    let mut splits = 1;
                    if blocks < target && kp >= 2 * min_k {
                        splits = (target / blocks)
                            .min(kp / min_k)
                            .min(self.max_groups as usize)
                            .min(self.win_elems / (mi * nj));
                    }
                    let head = [
                        u(mi),
                        u(nj),
                        u(kp),
                        u32::from(g.trans_a),
                        u32::from(g.trans_b),
                        wa.base(a_lo),
                        wb.base(b_lo),
                    ];
                    if splits > 1 {
                        let k_split = kp.div_ceil(splits).next_multiple_of(16);
                        let splits = kp.div_ceil(k_split);
                        let stride = mi * nj;
                        let (pid, pbuf) =
                            self.scratch(st, PARTIAL_SLOT, (splits * stride) as u64 * 4);
                        let wp = Self::scratch_window(pid, pbuf);
                        let mut params = head.to_vec();
                        params.extend([
                            0,
                            u(lda),
                            u(ldb),
                            u(nj),
                            f(1.0),
                            f(0.0),
                            u(k_split),
                            u(stride),
                        ]);
                        let grid = (grid.0, grid.1, u(splits));
                        // The layers go to the partial-product scratch (base 0, rows of nj).
                        let kernel = match kernel {
                            Kernel::GemmSimple(l) => Kernel::GemmSimple(GemmLayout {
                                store_vec4: self.vec4_ok
                                    && nj.is_multiple_of(4)
                                    && wp.size.is_multiple_of(16),
                                ..l
                            }),
                            k => k,
                        };
                        self.dispatch_grid(st, kernel, 0, &params, &[&wa, &wb, &wp], grid);
                        let params = [
                            u(mi),
                            u(nj),
                            u(splits),
                            u(stride),
                            0,
                            wc.base(c_lo),
                            u(g.n),
                            f(g.alpha),
                            f(beta),
                        ];
                        let groups = stride.div_ceil(256);
                        self.dispatch(st, Kernel::GemmReduce, 0, &params, &[&wp, &wc], groups);
                    } else {
                        let mut params = head.to_vec();
                        params.extend([
                            wc.base(c_lo),
                            u(lda),
                            u(ldb),
                            u(g.n),
                            f(g.alpha),
                            f(beta),
                            u(kp),
                            0,
                        ]);
                        let grid = (grid.0, grid.1, 1);
                        self.dispatch_grid(st, kernel, 0, &params, &[&wa, &wb, &wc], grid);
                    }
                }
            }
        }
    }

    fn add_bias_raw(
        &self,
        st: &mut State,
        n_points: usize,
        width: usize,
        params: &RawBuf,
        bias_offset: usize,
        z: &RawBuf,
    ) {
        if n_points * width == 0 {
            return;
        }
        for (r0, r1) in ranges(n_points, self.rows_per(width)) {
            let wp = self.window(st, params, bias_offset, bias_offset + width);
            let wz = self.window(st, z, r0 * width, r1 * width);
            let count = (r1 - r0) * width;
            let p = [
                u(count),
                u(width),
                0,
                wp.base(bias_offset),
                wz.base(r0 * width),
            ];
            let (kernel, groups) = self.pick(
                Kernel::AddBias,
                Kernel::AddBiasSimple,
                r1 - r0,
                count.div_ceil(256),
            );
            self.dispatch(st, kernel, 0, &p, &[&wp, &wz], groups);
        }
    }

    fn bias_grad_raw(
        &self,
        st: &mut State,
        n_points: usize,
        width: usize,
        z_bar: &RawBuf,
        grad: &RawBuf,
        bias_offset: usize,
    ) {
        if n_points * width == 0 {
            return;
        }
        // Each window of points adds its partial sums; dispatches run in order.
        for (r0, r1) in ranges(n_points, self.rows_per(width)) {
            let wz = self.window(st, z_bar, r0 * width, r1 * width);
            let wg = self.window(st, grad, bias_offset, bias_offset + width);
            let p = [
                u(r1 - r0),
                u(width),
                wz.base(r0 * width),
                wg.base(bias_offset),
            ];
            let (kernel, groups) =
                self.pick(Kernel::BiasGrad, Kernel::BiasGradSimple, width, width);
            self.dispatch(st, kernel, 0, &p, &[&wz, &wg], groups);
        }
    }

    /// The jet activation forward (`h_bar = None`) or its adjoint.
    fn jet_activation(
        &self,
        act: Activation,
        shape: JetShape,
        z: &RawBuf,
        h_bar: Option<&RawBuf>,
        out: &RawBuf,
    ) {
        assert!(
            shape.order <= MAX_ORDER,
            "jet order {} above the supported {MAX_ORDER}",
            shape.order
        );
        let len = shape.len();
        check_len("jet activation input", len, z.len);
        check_len("jet activation output", len, out.len);
        if let Some(hb) = h_bar {
            check_len("jet activation cotangent", len, hb.len);
        }
        if len == 0 {
            return;
        }
        let head = |sh: &JetShape| {
            vec![
                u(sh.n_points),
                u(sh.width),
                u(sh.n_dirs),
                u32::from(sh.collapsed),
            ]
        };
        let mut st = self.lock();
        let st = &mut *st;
        if len <= self.win_elems {
            let wz = self.window(st, z, 0, len);
            let wo = self.window(st, out, 0, len);
            let mut p = head(&shape);
            p.push(wz.base(0));
            match h_bar {
                None => {
                    p.push(wo.base(0));
                    self.jet_dispatch(st, act, &shape, &p, &[&wz, &wo]);
                }
                Some(hb) => {
                    let wh = self.window(st, hb, 0, len);
                    p.push(wh.base(0));
                    p.push(wo.base(0));
                    self.jet_dispatch(st, act, &shape, &p, &[&wz, &wh, &wo]);
                }
            }
            return;
        }
        // Larger than one binding: the coefficients of a point sit one block apart across the
        // whole batch, so gather sub-batches of points (every block's rows) into scratch buffers,
        // run the kernel there and scatter the result back.
        let n_blocks = shape.n_blocks();
        let w = shape.width;
        let per_point = n_blocks * w;
        assert!(
            per_point <= self.win_elems,
            "one point of this jet batch ({per_point} values) does not fit in a storage binding \
             of {} bytes",
            self.bind_bytes
        );
        let stride = shape.n_points * w;
        for (p0, p1) in ranges(shape.n_points, self.win_elems / per_point) {
            let sub = JetShape {
                n_points: p1 - p0,
                ..shape
            };
            let sub_stride = sub.n_points * w;
            let bytes = sub.len() as u64 * 4;
            let gather = |st: &mut State, raw: &RawBuf, dst: &wgpu::Buffer| {
                for b in 0..n_blocks {
                    let lo = b * stride + p0 * w;
                    self.copy_out(
                        st,
                        raw,
                        lo,
                        lo + sub_stride,
                        dst,
                        (b * sub_stride) as u64 * 4,
                    );
                }
            };
            let (zid, zbuf) = self.scratch(st, STRADDLE_SLOTS, bytes);
            gather(st, z, &zbuf);
            let (oid, obuf) = self.scratch(st, STRADDLE_SLOTS + 1, bytes);
            let wz = Self::scratch_window(zid, zbuf);
            let wo = Self::scratch_window(oid, obuf.clone());
            let mut p = head(&sub);
            p.push(0);
            match h_bar {
                None => {
                    p.push(0);
                    self.jet_dispatch(st, act, &sub, &p, &[&wz, &wo]);
                }
                Some(hb) => {
                    let (hid, hbuf) = self.scratch(st, STRADDLE_SLOTS + 2, bytes);
                    gather(st, hb, &hbuf);
                    let wh = Self::scratch_window(hid, hbuf);
                    p.push(0);
                    p.push(0);
                    self.jet_dispatch(st, act, &sub, &p, &[&wz, &wh, &wo]);
                }
            }
            for b in 0..n_blocks {
                let lo = b * stride + p0 * w;
                self.copy_in(
                    st,
                    &obuf,
                    (b * sub_stride) as u64 * 4,
                    out,
                    lo,
                    lo + sub_stride,
                );
            }
        }
    }

    /// One jet activation dispatch on bound windows (`z, out` forward, `z, h_bar, out` adjoint)
    /// with parameters `p` (the shape, then the bases).
    fn jet_dispatch(
        &self,
        st: &mut State,
        act: Activation,
        sh: &JetShape,
        p: &[u32],
        wins: &[&Window],
    ) {
        let backward = wins.len() == 3;
        let count = sh.n_points * sh.width;
        // Order 2 (every training step) has its rule written out; other orders run the recursion.
        let (kernel, lanes) = if sh.order == 2 {
            // Four values per invocation where a software adapter can read them as one vec4.
            let vec4 = self.simple
                && self.vec4_ok
                && count.is_multiple_of(4)
                && p[4..].iter().all(|b| b.is_multiple_of(4))
                && wins
                    .iter()
                    .all(|w| w.offset.is_multiple_of(16) && w.size.is_multiple_of(16));
            let jet = Jet2 {
                sin: matches!(act, Activation::Sin),
                backward,
                vec4,
            };
            (Kernel::Jet2(jet), if vec4 { 4 } else { 1 })
        } else {
            let kernel = match (act, backward) {
                (Activation::Tanh, false) => Kernel::JetTanhForward,
                (Activation::Tanh, true) => Kernel::JetTanhBackward,
                (Activation::Sin, false) => Kernel::JetSinForward,
                (Activation::Sin, true) => Kernel::JetSinBackward,
            };
            (kernel, 1)
        };
        let groups = (count / lanes).div_ceil(64);
        self.dispatch(st, kernel, u(sh.order), p, wins, groups);
    }
}

impl Backend for WgpuBackend {
    type Buf = WgpuBuf;
    type Idx = WgpuIdx;

    fn describe(&self) -> String {
        WgpuBackend::describe(self)
    }

    fn alloc(&self, len: usize, what: &'static str) -> Result<WgpuBuf, BackendError> {
        Ok(WgpuBuf {
            raw: self.alloc_raw(len, what)?,
        })
    }

    fn alloc_idx(&self, len: usize, what: &'static str) -> Result<WgpuIdx, BackendError> {
        Ok(WgpuIdx {
            raw: self.alloc_raw(len, what)?,
        })
    }

    #[track_caller]
    fn upload(&self, dst: &mut WgpuBuf, offset: usize, src: &[f32]) {
        check_len("upload", offset + src.len(), dst.len());
        self.write(&dst.raw, offset, bytemuck::cast_slice(src));
    }

    #[track_caller]
    fn upload_idx(&self, dst: &mut WgpuIdx, src: &[u32]) {
        check_len("index upload", src.len(), dst.len());
        self.write(&dst.raw, 0, bytemuck::cast_slice(src));
    }

    #[track_caller]
    fn download(
        &self,
        src: &WgpuBuf,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>> {
        check_len("download", offset + len, src.len());
        self.read(&src.raw, offset, len)
    }

    #[track_caller]
    fn gemm(&self, g: Gemm, a: &WgpuBuf, b: &WgpuBuf, c: &mut WgpuBuf) {
        check_len("gemm A", g.a_offset + g.m * g.k, a.len());
        check_len("gemm B", g.b_offset + g.k * g.n, b.len());
        check_len("gemm C", g.c_offset + g.m * g.n, c.len());
        let mut st = self.lock();
        self.gemm_raw(&mut st, g, &a.raw, &b.raw, &c.raw);
    }

    #[track_caller]
    fn add_bias(&self, shape: JetShape, params: &WgpuBuf, bias_offset: usize, z: &mut WgpuBuf) {
        check_len("bias", bias_offset + shape.width, params.len());
        check_len("biased rows", shape.n_points * shape.width, z.len());
        let mut st = self.lock();
        self.add_bias_raw(
            &mut st,
            shape.n_points,
            shape.width,
            &params.raw,
            bias_offset,
            &z.raw,
        );
    }

    #[track_caller]
    fn bias_grad(&self, shape: JetShape, z_bar: &WgpuBuf, grad: &mut WgpuBuf, bias_offset: usize) {
        check_len("bias gradient", bias_offset + shape.width, grad.len());
        check_len("cotangent rows", shape.n_points * shape.width, z_bar.len());
        let mut st = self.lock();
        self.bias_grad_raw(
            &mut st,
            shape.n_points,
            shape.width,
            &z_bar.raw,
            &grad.raw,
            bias_offset,
        );
    }

    #[track_caller]
    fn jet_activation_forward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &WgpuBuf,
        h: &mut WgpuBuf,
    ) {
        self.jet_activation(act, shape, &z.raw, None, &h.raw);
    }

    #[track_caller]
    fn jet_activation_backward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &WgpuBuf,
        h_bar: &WgpuBuf,
        z_bar: &mut WgpuBuf,
    ) {
        self.jet_activation(act, shape, &z.raw, Some(&h_bar.raw), &z_bar.raw);
    }

    #[track_caller]
    fn sample(&self, what: Sampling, seed: u64, step: u32, out: &mut WgpuBuf) {
        let (key0, key1) = (seed as u32, (seed >> 32) as u32);
        let mut st = self.lock();
        let st = &mut *st;
        match what {
            Sampling::BallPoints {
                first,
                n,
                d,
                stream,
            } => {
                check_len("ball points", n * d, out.len());
                for (r0, r1) in ranges(n, self.rows_per(d)) {
                    let wo = self.window(st, &out.raw, r0 * d, r1 * d);
                    let q = [
                        u(r1 - r0),
                        u(d),
                        key0,
                        key1,
                        step,
                        stream,
                        u(first + r0),
                        wo.base(r0 * d),
                    ];
                    let rows = r1 - r0;
                    let (kernel, groups) =
                        self.pick(Kernel::SampleBall, Kernel::SampleBallSimple, rows, rows);
                    self.dispatch(st, kernel, 0, &q, &[&wo], groups);
                }
            }
            Sampling::Rademacher { count } | Sampling::Gaussian { count } => {
                check_len("samples", count, out.len());
                let kind = u32::from(matches!(what, Sampling::Gaussian { .. }));
                // Windows start at whole blocks of four values.
                for (e0, e1) in ranges(count, self.win_elems / 4 * 4) {
                    let wo = self.window(st, &out.raw, e0, e1);
                    let q = [
                        u(e1 - e0),
                        u(e0),
                        key0,
                        key1,
                        step,
                        streams::DENSE_TANGENTS,
                        kind,
                        wo.base(e0),
                    ];
                    let groups = (e1 - e0).div_ceil(4).div_ceil(64);
                    self.dispatch(st, Kernel::SampleFlat, 0, &q, &[&wo], groups);
                }
            }
        }
    }

    #[track_caller]
    fn adam(
        &self,
        s: AdamStep,
        params: &mut WgpuBuf,
        grad: &mut WgpuBuf,
        m: &mut WgpuBuf,
        v: &mut WgpuBuf,
    ) {
        let len = params.len();
        check_len("gradient", len, grad.len());
        check_len("Adam first moment", len, m.len());
        check_len("Adam second moment", len, v.len());
        let corr1 = 1.0 - f64::from(s.beta1).powi(s.t as i32);
        let corr2 = 1.0 - f64::from(s.beta2).powi(s.t as i32);
        let mut st = self.lock();
        let st = &mut *st;
        for (e0, e1) in ranges(len, self.win_elems) {
            let wp = self.window(st, &params.raw, e0, e1);
            let wg = self.window(st, &grad.raw, e0, e1);
            let wm = self.window(st, &m.raw, e0, e1);
            let wv = self.window(st, &v.raw, e0, e1);
            let q = [
                u(e1 - e0),
                f(s.lr),
                f(s.beta1),
                f(s.beta2),
                f(s.eps),
                f(corr1 as f32),
                f(corr2 as f32),
                wp.base(e0),
                wg.base(e0),
                wm.base(e0),
                wv.base(e0),
            ];
            let groups = (e1 - e0).div_ceil(256);
            self.dispatch(st, Kernel::Adam, 0, &q, &[&wp, &wg, &wm, &wv], groups);
        }
    }
}
