//! `CpuBackend`: the [`Backend`] trait in f32 on the host, fast: `gemm` for the matrix products,
//! fused and run-time-dispatched SIMD kernels for the jets, rayon across points.
//!
//! It computes what [`super::reference::ReferenceBackend`] computes (same layouts, same collapsed-top
//! identities, bit-identical random samples), in f32 instead of f64. Where f32 alone would lose
//! accuracy the kernels work harder: long sums (forcing, `‖x‖²`, column sums) fold f32
//! partial sums into f64, the per-point residual is evaluated in f64, and `tanh'` is computed as
//! `sech²` rather than `1 − tanh²`.
//!
//! # Threads
//!
//! Work runs on rayon's global pool. Kernels split the points of a jet batch into a few tasks per
//! thread; the products go to `gemm` with `Parallelism::Rayon` once they are large enough to repay
//! the fork. [`CpuBackend::with_threads`] caps the parallelism (1 runs everything on the caller's
//! thread, handy for benchmarks).
//!
//! Drive a training loop from inside the pool (`rayon::scope(|_| …)` or `ThreadPool::install`), as
//! `stde train` does: a step launches a few dozen parallel kernels, and from outside the pool each
//! of them is queued to a worker while the caller sleeps. From inside, the caller takes part, and
//! a 1 000-D step runs about 15 % faster on two cores.
//!
//! # Scratch
//!
//! Buffers belong to the caller. The few small temporaries (probe columns, column sums, per-point
//! dot products: at most `V × width` values) live in a scratch area inside the backend that only
//! grows, so steady-state steps do not allocate beyond tiny per-call task tables.

mod generic;
mod jet;
mod program;
pub(crate) mod simd;
#[cfg(test)]
mod tests;

pub use program::{CpuProgram, NativePrograms, AUTO_MIN_WINDOWS};

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::{AdamStep, Backend, BackendError, Gemm, Sampling};
use crate::batch::JetShape;
use crate::mlp::Activation;
use crate::rng;
use simd::{multiversioned, Simd};

/// Products with fewer multiply-adds than this run on one thread: 2¹⁹ of them take about 10 µs on
/// one AVX-512 core, the order of what a rayon fork/join plus gemm's per-thread packing costs.
const PAR_GEMM_MIN_FLOPS: usize = 1 << 19;

/// A product whose inner dimension is this many times its larger output dimension is split along
/// the inner dimension across threads (see [`CpuBackend::gemm_raw`]).
const SPLIT_K_RATIO: usize = 16;

/// The most slices a split-K product is cut into (each holds an `m × n` partial product).
const MAX_SPLIT_K_PARTS: usize = 32;

/// Elementwise work (values × order) below which a jet kernel runs as one task.
const PAR_JET_MIN_WORK: usize = 1 << 15;

/// Streaming kernels (Adam, sampling, forcing, norms) on fewer than twice this many values run on
/// one thread; above it they split into about four chunks per thread (for load balance), of at least
/// this many values each.
const STREAM_CHUNK: usize = 1 << 14;

/// The fast f32 host backend.
#[derive(Debug)]
pub struct CpuBackend {
    /// How many threads kernels split their work for.
    threads: usize,
    /// The instruction set the hand-written kernels run with.
    simd: Simd,
    /// Reusable temporaries (see the module documentation).
    scratch: Mutex<Scratch>,
    /// Partial products of split-K matrix products (separate from `scratch`, whose users call
    /// `gemm_raw` while holding it).
    split_k: Mutex<Vec<f32>>,
    /// When programs' loops are compiled to native code.
    native: NativePrograms,
}

/// Growable temporaries, reused across calls.
#[derive(Debug, Default)]
struct Scratch {
    f32s: Vec<f32>,
    f64s: Vec<f64>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// A strided matrix inside a flat buffer: element `(r, c)` is at `offset + r·row_stride +
/// c·col_stride`. Transposes are stride swaps.
#[derive(Clone, Copy, Debug)]
struct MatRef {
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

impl MatRef {
    /// A row-major matrix with `cols` columns.
    fn row_major(offset: usize, cols: usize) -> Self {
        Self {
            offset,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix stored with `stored_cols` columns (a column-major view).
    fn transposed(offset: usize, stored_cols: usize) -> Self {
        Self {
            offset,
            row_stride: 1,
            col_stride: stored_cols,
        }
    }

    /// Panics unless a `rows × cols` matrix at these strides fits in `len` values.
    #[track_caller]
    fn check(&self, len: usize, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (cols - 1).checked_mul(self.col_stride).map(|c| (r, c)))
            .and_then(|(r, c)| r.checked_add(c))
            .and_then(|rc| rc.checked_add(self.offset));
        assert!(
            matches!(last, Some(i) if i < len),
            "gemm: {what} ({rows}×{cols} at {self:?}) does not fit in a buffer of {len} values"
        );
    }
}

impl CpuBackend {
    /// A backend that uses every thread of rayon's global pool and the best SIMD level of this CPU.
    pub fn new() -> Self {
        Self::with_threads(rayon::current_num_threads())
    }

    /// A backend that splits work for at most `threads` threads (`0` is taken as `1`). Work still
    /// runs on rayon's global pool; with `1` it all runs on the calling thread.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            simd: Simd::detect(),
            scratch: Mutex::new(Scratch::default()),
            split_k: Mutex::new(Vec::new()),
            native: NativePrograms::from_env(),
        }
    }

    /// The same backend with programs compiled under `policy` (the default is
    /// [`NativePrograms::from_env`]: `STDE_CPU_PROGRAMS`, else automatic).
    pub fn with_native_programs(mut self, policy: NativePrograms) -> Self {
        self.native = policy;
        self
    }

    /// When programs' loops are compiled to native code.
    pub fn native_programs(&self) -> NativePrograms {
        self.native
    }

    /// The number of threads work is split for.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on scratch slices of `n32` f32 and `n64` f64 values (contents unspecified).
    fn with_scratch<R>(
        &self,
        n32: usize,
        n64: usize,
        f: impl FnOnce(&mut [f32], &mut [f64]) -> R,
    ) -> R {
        // A panic while the lock was held leaves only stale temporaries behind: safe to reuse.
        let mut guard = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &mut *guard;
        if s.f32s.len() < n32 {
            s.f32s.resize(n32, 0.0);
        }
        if s.f64s.len() < n64 {
            s.f64s.resize(n64, 0.0);
        }
        f(&mut s.f32s[..n32], &mut s.f64s[..n64])
    }

    /// `dst[m×n] = alpha·lhs[m×k]·rhs[k×n] + beta·dst` on strided views (`beta = 0`: `dst` is not
    /// read, so it may hold garbage).
    ///
    /// Large products run in parallel. gemm parallelises over the output, which leaves a long inner
    /// dimension with a small output (the input layer's `X·W1ᵀ`: 100×128 outputs, `k = d` up to 10⁶)
    /// streaming all of `X` through every thread; those are split along `k` instead, each thread
    /// writing a partial product that is summed afterwards.
    ///
    /// # Panics
    /// If a view does not fit in its buffer.
    #[track_caller]
    fn gemm_raw(
        &self,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (lhs, l): (&[f32], MatRef),
        (rhs, r): (&[f32], MatRef),
        beta: f32,
        (dst, d): (&mut [f32], MatRef),
    ) {
        l.check(lhs.len(), m, k, "lhs");
        r.check(rhs.len(), k, n, "rhs");
        d.check(dst.len(), m, n, "dst");
        if m == 0 || n == 0 {
            return;
        }
        let flops = m.saturating_mul(n).saturating_mul(k);
        let large = flops >= PAR_GEMM_MIN_FLOPS;
        // Whether and how to split depends on the shape alone, never on the thread count: the
        // order of the final sum, and so every bit of the result, is the same on any machine.
        if large && k >= SPLIT_K_RATIO * m.max(n) {
            self.gemm_split_k((m, n, k), alpha, (lhs, l), (rhs, r), beta, (dst, d));
            return;
        }
        let par = if large && self.threads > 1 {
            gemm::Parallelism::Rayon(self.threads)
        } else {
            gemm::Parallelism::None
        };
        gemm_checked((m, n, k), alpha, (lhs, l), (rhs, r), beta, (dst, d), par);
    }

    /// [`CpuBackend::gemm_raw`] split along `k` into a power of two of slices of about
    /// `SPLIT_K_RATIO / 2` times the larger output dimension (at most [`MAX_SPLIT_K_PARTS`]), summed
    /// in slice order.
    fn gemm_split_k(
        &self,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (lhs, l): (&[f32], MatRef),
        (rhs, r): (&[f32], MatRef),
        beta: f32,
        (dst, d): (&mut [f32], MatRef),
    ) {
        // A power of two, so that the slices share out evenly over 2, 4, 8, … threads.
        let wanted = (k / (SPLIT_K_RATIO / 2 * m.max(n))).clamp(2, MAX_SPLIT_K_PARTS);
        let parts = 1 << wanted.ilog2();
        let mut partials = self.split_k.lock().unwrap_or_else(PoisonError::into_inner);
        if partials.len() < parts * m * n {
            partials.resize(parts * m * n, 0.0);
        }
        let partials = &mut partials[..parts * m * n];
        let slice = |(t, part): (usize, &mut [f32])| {
            let (k0, k1) = (t * k / parts, (t + 1) * k / parts);
            // Column k0 of op(lhs) and row k0 of op(rhs) start the slice.
            let lt = MatRef {
                offset: l.offset + k0 * l.col_stride,
                ..l
            };
            let rt = MatRef {
                offset: r.offset + k0 * r.row_stride,
                ..r
            };
            gemm_checked(
                (m, n, k1 - k0),
                1.0,
                (lhs, lt),
                (rhs, rt),
                0.0,
                (part, MatRef::row_major(0, n)),
                gemm::Parallelism::None,
            );
        };
        if self.threads == 1 {
            partials.chunks_mut(m * n).enumerate().for_each(slice);
        } else {
            partials.par_chunks_mut(m * n).enumerate().for_each(slice);
        }
        for i in 0..m {
            for j in 0..n {
                let sum: f32 = (0..parts).map(|t| partials[t * m * n + i * n + j]).sum();
                let e = &mut dst[d.offset + i * d.row_stride + j * d.col_stride];
                *e = alpha * sum + if beta == 0.0 { 0.0 } else { beta * *e };
            }
        }
    }

    /// Items per parallel chunk for a streaming kernel over `items` items of `item_len` values each,
    /// or `None` when it should run on the calling thread.
    fn stream_items(&self, items: usize, item_len: usize) -> Option<usize> {
        let values = items.saturating_mul(item_len);
        if self.threads == 1 || values < 2 * STREAM_CHUNK || items < 2 {
            return None;
        }
        let per_chunk = items.div_ceil(4 * self.threads);
        let min_items = STREAM_CHUNK.div_ceil(item_len.max(1));
        Some(per_chunk.max(min_items).min(items))
    }

    /// How many point ranges a jet kernel over `shape` is split into.
    fn jet_tasks(&self, shape: JetShape) -> usize {
        let work = shape.len().saturating_mul(shape.order.max(1));
        if self.threads == 1 || work < PAR_JET_MIN_WORK {
            1
        } else {
            shape.n_points.min(4 * self.threads).max(1)
        }
    }

    /// Runs `f(p0, blocks)` over point ranges of `out` (a batch of `shape`), in parallel when it
    /// pays. `blocks[b]` is block `b` restricted to the range's points, so each task owns a disjoint
    /// part of every block: the block-major layout scatters one point's rows over all blocks.
    fn for_point_ranges(
        &self,
        shape: JetShape,
        out: &mut [f32],
        f: impl Fn(usize, &mut [&mut [f32]]) + Sync,
    ) {
        let tasks = self.jet_tasks(shape);
        let np = shape.n_points;
        let start = |t: usize| t * np / tasks;
        let mut views: Vec<(usize, Vec<&mut [f32]>)> = (0..tasks)
            .map(|t| (start(t), Vec::with_capacity(shape.n_blocks())))
            .collect();
        for block in out[..shape.len()].chunks_exact_mut(np * shape.width) {
            let mut rest = block;
            for (t, view) in views.iter_mut().enumerate() {
                let rows = start(t + 1) - start(t);
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(rows * shape.width);
                view.1.push(head);
                rest = tail;
            }
        }
        if tasks == 1 {
            let (p0, mut blocks) = views.pop().expect("one task");
            f(p0, &mut blocks);
        } else {
            views
                .into_par_iter()
                .for_each(|(p0, mut blocks)| f(p0, &mut blocks));
        }
    }

    /// Column sums (f64) of `rows` consecutive rows of `width` values into `acc`.
    fn column_sums(&self, rows: &[f32], width: usize, acc: &mut [f64]) {
        acc[..width].fill(0.0);
        if width > 0 {
            add_columns(self.simd, rows, width, acc);
        }
    }
}

multiversioned! {
    /// [`rng::sample_ball_points_from`] compiled for the detected instruction set: its polynomial
    /// Box–Muller vectorises across quads, and plain f32 operations give the same bits at every level.
    fn sample_ball_chunk(
        seed: u64,
        stream: u32,
        step: u32,
        first: usize,
        n: usize,
        d: usize,
        out: &mut [f32],
    ) {
        rng::sample_ball_points_from(seed, stream, step, first, n, d, out)
    }
}

multiversioned! {
    /// [`simd::add_columns`], dispatched.
    fn add_columns(rows: &[f32], width: usize, acc: &mut [f64]) {
        simd::add_columns(rows, width, acc)
    }
}

multiversioned! {
    /// One Adam update of a chunk (`lr_t = lr/(1 − β₁ᵗ)`, `inv_c2 = 1/√(1 − β₂ᵗ)`), zeroing `g`.
    fn adam_chunk(
        b1: f32,
        b2: f32,
        lr_t: f32,
        inv_c2: f32,
        eps: f32,
        p: &mut [f32],
        g: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
    ) {
        let n = p.len();
        let (g, m, v) = (&mut g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let gi = g[i];
            let mi = b1 * m[i] + (1.0 - b1) * gi;
            let vi = b2 * v[i] + (1.0 - b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            // m̂/(√v̂ + ε) with m̂ = m/c1, v̂ = v/c2, the bias corrections folded into two scalars.
            p[i] -= lr_t * mi / (vi.sqrt() * inv_c2 + eps);
            g[i] = 0.0;
        }
    }
}

/// `rows[r·w + h] += bias[h]` for every row, `w = bias.len()`.
fn add_bias_rows(rows: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    for row in rows.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `dst = alpha·lhs·rhs + beta·dst` through the `gemm` crate, after checking that every view fits.
///
/// # Panics
/// If a view does not fit in its buffer.
#[allow(unsafe_code)]
#[track_caller]
fn gemm_checked(
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    (lhs, l): (&[f32], MatRef),
    (rhs, r): (&[f32], MatRef),
    beta: f32,
    (dst, d): (&mut [f32], MatRef),
    parallelism: gemm::Parallelism,
) {
    l.check(lhs.len(), m, k, "lhs");
    r.check(rhs.len(), k, n, "rhs");
    d.check(dst.len(), m, n, "dst");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // The product is empty: only the scaling of `dst` remains.
        for i in 0..m {
            for j in 0..n {
                let e = &mut dst[d.offset + i * d.row_stride + j * d.col_stride];
                *e = if beta == 0.0 { 0.0 } else { beta * *e };
            }
        }
        return;
    }
    // In-bounds offsets and strides of slices are below isize::MAX (checked above).
    let s = |x: usize| x as isize;
    // SAFETY: the three `check` calls above prove that every element gemm reads or writes
    // (`offset + i·row_stride + j·col_stride` for `i < rows`, `j < cols`) lies inside its slice, so
    // the offset pointers and all strided accesses stay in bounds; `dst` is a unique borrow, so it
    // cannot alias `lhs` or `rhs`; f32 has no invalid bit patterns. gemm's `alpha` scales the old
    // `dst` and its `beta` the product, and it reads `dst` only when `read_dst` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(d.offset),
            s(d.col_stride),
            s(d.row_stride),
            beta != 0.0,
            lhs.as_ptr().add(l.offset),
            s(l.col_stride),
            s(l.row_stride),
            rhs.as_ptr().add(r.offset),
            s(r.col_stride),
            s(r.row_stride),
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Panics unless the jet order is one the kernels handle.
#[track_caller]
fn check_order(shape: JetShape) {
    assert!(
        shape.order <= jet::MAX_ORDER,
        "CpuBackend supports jet orders up to {}, got {}",
        jet::MAX_ORDER,
        shape.order
    );
}

impl Backend for CpuBackend {
    type Buf = Vec<f32>;
    type Idx = Vec<u32>;

    fn describe(&self) -> String {
        format!(
            "cpu (f32, {} thread{}, {})",
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.simd.name()
        )
    }

    fn alloc(&self, len: usize, what: &'static str) -> Result<Self::Buf, BackendError> {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| BackendError::OutOfMemory {
                requested_bytes: (len as u64).saturating_mul(4),
                what,
            })?;
        v.resize(len, 0.0);
        Ok(v)
    }

    fn alloc_idx(&self, len: usize, what: &'static str) -> Result<Self::Idx, BackendError> {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| BackendError::OutOfMemory {
                requested_bytes: (len as u64).saturating_mul(4),
                what,
            })?;
        v.resize(len, 0);
        Ok(v)
    }

    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[f32]) {
        dst[offset..offset + src.len()].copy_from_slice(src);
    }

    fn upload_idx(&self, dst: &mut Self::Idx, src: &[u32]) {
        dst[..src.len()].copy_from_slice(src);
    }

    fn download(
        &self,
        src: &Self::Buf,
        offset: usize,
        len: usize,
    ) -> impl Future<Output = Result<Vec<f32>, BackendError>> {
        let data = &src[offset..offset + len];
        let mut out = Vec::new();
        let result = match out.try_reserve_exact(len) {
            Ok(()) => {
                out.extend_from_slice(data);
                Ok(out)
            }
            Err(_) => Err(BackendError::OutOfMemory {
                requested_bytes: (len as u64).saturating_mul(4),
                what: "download",
            }),
        };
        std::future::ready(result)
    }

    fn gemm(&self, g: Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) {
        let l = if g.trans_a {
            MatRef::transposed(g.a_offset, g.m)
        } else {
            MatRef::row_major(g.a_offset, g.k)
        };
        let r = if g.trans_b {
            MatRef::transposed(g.b_offset, g.k)
        } else {
            MatRef::row_major(g.b_offset, g.n)
        };
        self.gemm_raw(
            (g.m, g.n, g.k),
            g.alpha,
            (a, l),
            (b, r),
            g.beta,
            (c, MatRef::row_major(g.c_offset, g.n)),
        );
    }

    fn add_bias(&self, shape: JetShape, params: &Self::Buf, bias_offset: usize, z: &mut Self::Buf) {
        let w = shape.width;
        add_bias_rows(
            &mut z[..shape.n_points * w],
            &params[bias_offset..bias_offset + w],
        );
    }

    fn bias_grad(
        &self,
        shape: JetShape,
        z_bar: &Self::Buf,
        grad: &mut Self::Buf,
        bias_offset: usize,
    ) {
        let w = shape.width;
        self.with_scratch(0, w, |_, acc| {
            self.column_sums(&z_bar[..shape.n_points * w], w, acc);
            for (g, a) in grad[bias_offset..bias_offset + w]
                .iter_mut()
                .zip(acc.iter())
            {
                *g = (f64::from(*g) + a) as f32;
            }
        });
    }

    fn jet_activation_forward(
        &self,
        act: Activation,
        shape: JetShape,
        z: &Self::Buf,
        h: &mut Self::Buf,
    ) {
        check_order(shape);
        if shape.is_empty() {
            return;
        }
        let z = &z[..shape.len()];
        let simd = self.simd;
        self.for_point_ranges(shape, h, |p0, out| {
            jet::activation_forward_task(simd, act, shape, z, p0, out);
        });
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
        if shape.is_empty() {
            return;
        }
        let z = &z[..shape.len()];
        let h_bar = &h_bar[..shape.len()];
        let simd = self.simd;
        self.for_point_ranges(shape, z_bar, |p0, out| {
            jet::activation_backward_task(simd, act, shape, z, h_bar, p0, out);
        });
    }

    fn sample(&self, what: Sampling, seed: u64, step: u32, out: &mut Self::Buf) {
        match what {
            Sampling::BallPoints {
                first,
                n,
                d,
                stream,
            } => {
                let out = &mut out[..n * d];
                match self.stream_items(n, d) {
                    None => sample_ball_chunk(self.simd, seed, stream, step, first, n, d, out),
                    // Points are independent and addressed by index, so chunks equal the one-shot
                    // draw bit for bit.
                    Some(rows) => {
                        out.par_chunks_mut(rows * d)
                            .enumerate()
                            .for_each(|(c, chunk)| {
                                sample_ball_chunk(
                                    self.simd,
                                    seed,
                                    stream,
                                    step,
                                    first + c * rows,
                                    chunk.len() / d,
                                    d,
                                    chunk,
                                );
                            })
                    }
                }
            }
            Sampling::Rademacher { count } | Sampling::Gaussian { count } => {
                let out = &mut out[..count];
                let philox = rng::Philox::new(seed);
                let stream = rng::streams::DENSE_TANGENTS;
                let gaussian = matches!(what, Sampling::Gaussian { .. });
                assert!(
                    count.div_ceil(4) as u64 <= 1 << 32,
                    "a flat fill of {count} elements needs more than the 2^32 blocks a step can address"
                );
                // Element e is word e % 4 of block e / 4, exactly as `Philox::fill_*_f32`.
                let fill = |first_block: usize, chunk: &mut [f32]| {
                    for (b, quad) in chunk.chunks_mut(4).enumerate() {
                        let index = (first_block + b) as u32;
                        let words = if gaussian {
                            philox.normal_f32(stream, step, index)
                        } else {
                            philox.rademacher_f32(stream, step, index)
                        };
                        quad.copy_from_slice(&words[..quad.len()]);
                    }
                };
                // Chunks of whole blocks (4 values), so every chunk starts at a block boundary.
                match self.stream_items(count.div_ceil(4), 4) {
                    None => fill(0, out),
                    Some(blocks) => out
                        .par_chunks_mut(4 * blocks)
                        .enumerate()
                        .for_each(|(c, chunk)| fill(c * blocks, chunk)),
                }
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
        let (b1, b2) = (f64::from(s.beta1), f64::from(s.beta2));
        let c1 = 1.0 - b1.powf(f64::from(s.t));
        let c2 = 1.0 - b2.powf(f64::from(s.t));
        let lr_t = (f64::from(s.lr) / c1) as f32;
        let inv_c2 = (1.0 / c2.sqrt()) as f32;
        let n = params.len();
        let (grad, m, v) = (&mut grad[..n], &mut m[..n], &mut v[..n]);
        let simd = self.simd;
        let step = |p: &mut [f32], g: &mut [f32], mm: &mut [f32], vv: &mut [f32]| {
            adam_chunk(simd, s.beta1, s.beta2, lr_t, inv_c2, s.eps, p, g, mm, vv);
        };
        match self.stream_items(n, 1) {
            None => step(params, grad, m, v),
            Some(chunk) => params
                .par_chunks_mut(chunk)
                .zip(grad.par_chunks_mut(chunk))
                .zip(m.par_chunks_mut(chunk))
                .zip(v.par_chunks_mut(chunk))
                .for_each(|(((p, g), mm), vv)| step(p, g, mm, vv)),
        }
    }
}
