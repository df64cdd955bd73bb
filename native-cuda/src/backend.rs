//! `impl Backend for Engine<E>`: each primitive as GEMMs and kernel launches on an [`Executor`] (the
//! CUDA device: cuBLAS and NVRTC-built kernels on one stream), with the bounds of every buffer checked
//! on the host first, so that a caller's shape bug panics here instead of corrupting device memory.

use std::future::Future;

use stde_core::backend::{AdamStep, Backend, BackendError, Gemm, Sampling};
use stde_core::batch::JetShape;
use stde_core::mlp::Activation;
use stde_core::rng::streams;

use crate::exec::{
    check_args, grid_for, Arg, ColMajorGemm, DeviceBuffer, Engine, Executor, Grid, Op, MAX_GRID_Y,
};
use crate::kernels::{Kernel, MAX_ORDER};

/// Panics unless `offset + len ≤ buf_len`.
#[track_caller]
pub(crate) fn check_range(what: &str, buf_len: usize, offset: usize, len: usize) {
    assert!(
        offset.checked_add(len).is_some_and(|end| end <= buf_len),
        "{what}: elements {offset}..{offset}+{len} exceed the buffer of {buf_len}"
    );
}

/// Panics unless `value` fits the kernels' 32-bit size parameters.
#[track_caller]
pub(crate) fn u32_of(what: &str, value: usize) -> u32 {
    u32::try_from(value)
        .unwrap_or_else(|_| panic!("{what} = {value} exceeds the CUDA kernels' 32-bit range"))
}

/// Panics unless the jet order has compiled kernels.
#[track_caller]
fn check_order(shape: JetShape) {
    assert!(
        shape.order <= MAX_ORDER,
        "the CUDA backend's jet kernels support orders up to {MAX_ORDER}, got {}",
        shape.order
    );
    assert!(
        shape.order >= 1 || !shape.collapsed,
        "a collapsed batch needs jet order at least 1"
    );
}

impl<E: Executor> Engine<E> {
    /// Checks `args` against the kernel's parameters, then launches it.
    #[track_caller]
    fn launch(&self, kernel: Kernel, order: Option<usize>, grid: Grid, args: &[Arg]) {
        check_args(kernel, args);
        self.exec.launch(kernel, order, grid, args);
    }

    /// The device address of element `offset` of a buffer.
    fn ptr(&self, buf: &impl DeviceBuffer, offset: usize) -> u64 {
        buf.addr(offset)
    }

    /// Launches a jet activation kernel (one thread per point and unit) on `buffers` followed by the
    /// shape arguments every such kernel takes.
    fn launch_activation(&self, kernel: Kernel, shape: JetShape, buffers: &[Arg]) {
        let elems = shape.n_points * shape.width;
        if elems == 0 {
            return;
        }
        let shape_args = [
            Arg::U32(u32_of("points", shape.n_points)),
            Arg::U32(u32_of("width", shape.width)),
            Arg::U32(u32_of("directions", shape.n_dirs)),
            Arg::U32(u32::from(shape.collapsed)),
        ];
        // At most three buffers; a fixed array keeps the launch free of allocation.
        let mut args = [Arg::U32(0); 7];
        let len = buffers.len() + shape_args.len();
        args[..buffers.len()].copy_from_slice(buffers);
        args[buffers.len()..len].copy_from_slice(&shape_args);
        self.launch(
            kernel,
            Some(shape.order),
            (grid_for(elems as u64), 1),
            &args[..len],
        );
    }

    fn failed(&self) -> bool {
        self.exec.failed()
    }

    /// `C = alpha·op(A)·op(B) + beta·C` on row-major matrices at device addresses `a`, `b`, `c`
    /// (offsets applied) with the column-major `sgemm`: the row-major `C` is the column-major `Cᵀ`,
    /// and `Cᵀ = op(B)ᵀ·op(A)ᵀ`, so the operands swap, each keeps its transpose flag, and no data moves.
    pub(crate) fn sgemm(&self, g: Gemm, a: u64, b: u64, c: u64) {
        if self.failed() || g.m == 0 || g.n == 0 {
            return;
        }
        // Column-major views: row-major A (m × k) is Aᵀ (k × m, leading dimension k); stored
        // transposed (k × m) it is m × k with leading dimension m. Likewise for B.
        let (op_a, lda) = if g.trans_a {
            (Op::T, g.m)
        } else {
            (Op::N, g.k)
        };
        let (op_b, ldb) = if g.trans_b {
            (Op::T, g.k)
        } else {
            (Op::N, g.n)
        };
        self.exec.sgemm_col_major(ColMajorGemm {
            op_a: op_b,
            op_b: op_a,
            m: g.n,
            n: g.m,
            k: g.k,
            alpha: g.alpha,
            a: b,
            lda: ldb.max(1),
            b: a,
            ldb: lda.max(1),
            beta: g.beta,
            c,
            ldc: g.n,
        });
    }

    /// `dst (+)= column sums of n_src_blocks matrices rows × width` (see `column_sums` in `bias.cu`).
    pub(crate) fn column_sums(
        &self,
        src: u64,
        dst: u64,
        rows: usize,
        width: usize,
        src_block_stride: usize,
        n_src_blocks: usize,
        dst_stride: usize,
        accumulate: bool,
    ) {
        if rows == 0 || width == 0 || n_src_blocks == 0 {
            return;
        }
        self.launch(
            Kernel::ColumnSums,
            None,
            (
                u32_of("width", width.div_ceil(32)),
                u32_of("blocks", n_src_blocks.min(MAX_GRID_Y as usize)),
            ),
            &[
                Arg::F32In(src),
                Arg::F32Out(dst),
                Arg::U32(u32_of("rows", rows)),
                Arg::U32(u32_of("width", width)),
                Arg::U64(src_block_stride as u64),
                Arg::U32(u32_of("blocks", n_src_blocks)),
                Arg::U32(u32_of("stride", dst_stride)),
                Arg::U32(u32::from(accumulate)),
            ],
        );
    }
}

impl<E: Executor> Backend for Engine<E> {
    type Buf = E::F32Buf;
    type Idx = E::U32Buf;

    fn describe(&self) -> String {
        self.exec.describe()
    }

    fn alloc(&self, len: usize, what: &'static str) -> Result<Self::Buf, BackendError> {
        self.exec.alloc_f32(len, what)
    }

    fn alloc_idx(&self, len: usize, what: &'static str) -> Result<Self::Idx, BackendError> {
        self.exec.alloc_u32(len, what)
    }

    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[f32]) {
        check_range("upload", dst.len(), offset, src.len());
        self.exec.upload_f32(dst, offset, src);
    }

    fn upload_idx(&self, dst: &mut Self::Idx, src: &[u32]) {
        check_range("index upload", dst.len(), 0, src.len());
        self.exec.upload_u32(dst, src);
    }

    fn download(
        &self,
        src: &Self::Buf,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>> {
        check_range("download", src.len(), offset, len);
        // The copy waits for the work enqueued so far, so the result is ready when it returns.
        std::future::ready(self.exec.download(src, offset, len))
    }

    fn gemm(&self, g: Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) {
        check_range("gemm A", a.len(), g.a_offset, g.m * g.k);
        check_range("gemm B", b.len(), g.b_offset, g.k * g.n);
        check_range("gemm C", c.len(), g.c_offset, g.m * g.n);
        self.sgemm(
            g,
            self.ptr(a, g.a_offset),
            self.ptr(b, g.b_offset),
            self.ptr(c, g.c_offset),
        );
    }

    fn add_bias(&self, shape: JetShape, params: &Self::Buf, bias_offset: usize, z: &mut Self::Buf) {
        let (n, w) = (shape.n_points, shape.width);
        check_range("bias", params.len(), bias_offset, w);
        check_range("add_bias z", z.len(), 0, n * w);
        if n * w == 0 {
            return;
        }
        self.launch(
            Kernel::AddBias,
            None,
            (grid_for((n * w) as u64), 1),
            &[
                Arg::F32Out(self.ptr(z, 0)),
                Arg::F32In(self.ptr(params, bias_offset)),
                Arg::U32(u32_of("points", n)),
                Arg::U32(u32_of("width", w)),
            ],
        );
    }

    fn bias_grad(
        &self,
        shape: JetShape,
        z_bar: &Self::Buf,
        grad: &mut Self::Buf,
        bias_offset: usize,
    ) {
        let (n, w) = (shape.n_points, shape.width);
        check_range("bias_grad z_bar", z_bar.len(), 0, n * w);
        check_range("bias_grad grad", grad.len(), bias_offset, w);
        self.column_sums(
            self.ptr(z_bar, 0),
            self.ptr(grad, bias_offset),
            n,
            w,
            0,
            1,
            0,
            true,
        );
    }

    fn jet_activation_forward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h: &mut Self::Buf,
    ) {
        check_order(shape);
        check_range("activation input", z.len(), 0, shape.len());
        check_range("activation output", h.len(), 0, shape.len());
        let kernel = match act {
            Activation::Tanh => Kernel::JetTanhForward,
            Activation::Sin => Kernel::JetSinForward,
        };
        self.launch_activation(
            kernel,
            shape,
            &[Arg::F32In(self.ptr(z, 0)), Arg::F32Out(self.ptr(h, 0))],
        );
    }

    fn jet_activation_backward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h_bar: &Self::Buf,
        z_bar: &mut Self::Buf,
    ) {
        check_order(shape);
        check_range("activation input", z.len(), 0, shape.len());
        check_range("activation cotangent", h_bar.len(), 0, shape.len());
        check_range("activation input cotangent", z_bar.len(), 0, shape.len());
        let kernel = match act {
            Activation::Tanh => Kernel::JetTanhBackward,
            Activation::Sin => Kernel::JetSinBackward,
        };
        self.launch_activation(
            kernel,
            shape,
            &[
                Arg::F32In(self.ptr(z, 0)),
                Arg::F32In(self.ptr(h_bar, 0)),
                Arg::F32Out(self.ptr(z_bar, 0)),
            ],
        );
    }

    fn sample(&self, what: Sampling, seed: u64, step: u32, out: &mut Self::Buf) {
        let (key0, key1) = (seed as u32, (seed >> 32) as u32);
        let out_ptr = self.ptr(out, 0);
        match what {
            Sampling::BallPoints {
                first,
                n,
                d,
                stream,
            } => {
                check_range("ball points", out.len(), 0, n * d);
                assert!(
                    ((first + n) as u64) < u64::from(u32::MAX),
                    "ball points: point index {} does not fit the counter's sub word",
                    first + n
                );
                if n == 0 || d == 0 {
                    return;
                }
                self.launch(
                    Kernel::SampleBall,
                    None,
                    (u32_of("points", n.min(MAX_GRID_Y as usize)), 1),
                    &[
                        Arg::F32Out(out_ptr),
                        Arg::U32(u32_of("points", n)),
                        Arg::U32(u32_of("dimension", d)),
                        Arg::U32(u32_of("first point", first)),
                        Arg::U32(key0),
                        Arg::U32(key1),
                        Arg::U32(stream),
                        Arg::U32(step),
                    ],
                );
            }
            Sampling::Rademacher { count } | Sampling::Gaussian { count } => {
                check_range("flat sample", out.len(), 0, count);
                let blocks = count.div_ceil(4) as u64;
                assert!(
                    blocks <= 1 << 32,
                    "a flat fill of {count} values needs more than 2^32 generator blocks"
                );
                if count == 0 {
                    return;
                }
                let kind = u32::from(matches!(what, Sampling::Gaussian { .. }));
                self.launch(
                    Kernel::SampleFlat,
                    None,
                    (grid_for(blocks), 1),
                    &[
                        Arg::F32Out(out_ptr),
                        Arg::U64(count as u64),
                        Arg::U32(key0),
                        Arg::U32(key1),
                        Arg::U32(streams::DENSE_TANGENTS),
                        Arg::U32(step),
                        Arg::U32(kind),
                    ],
                );
            }
        }
    }

    fn adam(
        &self,
        s: AdamStep,
        params: &mut Self::Buf,
        grad: &mut Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
    ) {
        let len = params.len();
        check_range("Adam gradient", grad.len(), 0, len);
        check_range("Adam first moment", m.len(), 0, len);
        check_range("Adam second moment", v.len(), 0, len);
        if len == 0 {
            return;
        }
        let (b1, b2) = (f64::from(s.beta1), f64::from(s.beta2));
        let t = s.t as i32;
        self.launch(
            Kernel::Adam,
            None,
            (grid_for(len as u64), 1),
            &[
                Arg::F32Out(self.ptr(params, 0)),
                Arg::F32Out(self.ptr(grad, 0)),
                Arg::F32Out(self.ptr(m, 0)),
                Arg::F32Out(self.ptr(v, 0)),
                Arg::U64(len as u64),
                Arg::F32(s.lr),
                Arg::F32(s.beta1),
                Arg::F32(s.beta2),
                Arg::F32((1.0 - b1) as f32),
                Arg::F32((1.0 - b2) as f32),
                Arg::F32((1.0 - b1.powi(t)) as f32),
                Arg::F32((1.0 - b2.powi(t)) as f32),
                Arg::F32(s.eps),
            ],
        );
    }
}
