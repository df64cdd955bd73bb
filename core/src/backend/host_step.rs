//! Host implementations of the generic step primitives ([`super::GenericStep`]) for any backend whose
//! buffers are host vectors (the reference in f64, the CPU backend and custom host backends in f32):
//! the ansatz-and-readout, its adjoint, the tangent rows of the input layer with probes in any
//! slot, and the shared block map of a weight-shared first block and its adjoint. The CPU backend
//! runs its large products (and the shared map's primal rows) itself.

use super::{Backend, ProbeKind, ReadoutShape, SharedBlocks, SlotProbes};
use crate::batch::JetShape;
use crate::series::factorial;

/// A host float: f64 for the reference, f32 for the CPU backend; sums run in f64.
pub trait HostFloat: Copy + Send + Sync {
    /// The value in f64.
    fn get(self) -> f64;
    /// The f64 value rounded to this type.
    fn put(v: f64) -> Self;
}

impl HostFloat for f64 {
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
    #[inline(always)]
    fn put(v: f64) -> Self {
        v
    }
}

impl HostFloat for f32 {
    #[inline(always)]
    fn get(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn put(v: f64) -> Self {
        v as f32
    }
}

/// Host probe buffers (one-hot slots or dense rows); see [`SlotProbes`] for their meaning.
#[derive(Clone, Copy, Debug)]
pub struct HostSlots<'a, T> {
    /// Which buffers are read.
    pub kind: ProbeKind,
    /// `V·K` coordinate indices (one-hot).
    pub slot_index: &'a [u32],
    /// `V·K` Taylor coefficients (one-hot).
    pub slot_coeff: &'a [T],
    /// `V × stride` tangents (dense).
    pub dense: &'a [T],
}

impl<'a, T> HostSlots<'a, T> {
    /// The probes of a backend whose buffers are host vectors.
    pub fn of<B>(p: &'a SlotProbes<'_, B>) -> Self
    where
        B: Backend<Buf = Vec<T>, Idx = Vec<u32>> + ?Sized,
    {
        Self {
            kind: p.kind,
            slot_index: p.slot_index,
            slot_coeff: p.slot_coeff,
            dense: p.dense,
        }
    }
}

/// The series of `u = A + B·m` of direction `s` at point `n`, coefficients `0..=K`; in a collapsed
/// shape the top coefficient is this direction's part without `B_0·m_K` (which only exists summed).
fn u_series<T: HostFloat>(
    shape: JetShape,
    m: &[T],
    ansatz: &[T],
    n: usize,
    s: usize,
    out: &mut [f64],
) {
    let k_max = shape.order;
    let np = shape.n_points;
    let a_shape = super::ansatz_shape(shape);
    let ab = |k: usize, f: usize| ansatz[a_shape.index(a_shape.block(k, s), n, f)].get();
    let mm = |k: usize| m[shape.block(k, s) * np + n].get();
    for k in 0..=k_max {
        let mut acc = ab(k, 0);
        for i in 0..=k {
            if shape.collapsed && k == k_max && i == 0 {
                continue;
            }
            acc += ab(i, 1) * mm(k - i);
        }
        out[k] = acc;
    }
}

/// [`super::GenericStep::readout_forward`] on host buffers.
pub fn readout_forward<T: HostFloat>(
    r: ReadoutShape,
    m: &[T],
    ansatz: &[T],
    weights: &[T],
    features: &mut [T],
) {
    let shape = r.shape;
    let (np, v, k_max, nt) = (shape.n_points, shape.n_dirs, shape.order, r.n_terms);
    let a_shape = super::ansatz_shape(shape);
    let w =
        |j: usize, s: usize, k: usize| weights[(j * v + s) * k_max + k - 1].get() * factorial(k);
    let mut u = vec![0.0; k_max + 1];
    let mut terms = vec![0.0; nt];
    for n in 0..np {
        terms.iter_mut().for_each(|t| *t = 0.0);
        for s in 0..v {
            u_series(shape, m, ansatz, n, s, &mut u);
            for (j, t) in terms.iter_mut().enumerate() {
                for k in 1..=k_max {
                    *t += w(j, s, k) * u[k];
                }
            }
        }
        if shape.collapsed && k_max >= 1 {
            // The summed top block, read with the common top weight.
            let b0 = ansatz[a_shape.index(0, n, 1)].get();
            let top = m[shape.block(k_max, 0) * np + n].get();
            for (j, t) in terms.iter_mut().enumerate() {
                *t += w(j, 0, k_max) * b0 * top;
            }
        }
        let a0 = ansatz[a_shape.index(0, n, 0)].get();
        let b0 = ansatz[a_shape.index(0, n, 1)].get();
        features[n] = T::put(a0 + b0 * m[n].get());
        for (j, t) in terms.iter().enumerate() {
            features[(1 + j) * np + n] = T::put(*t);
        }
    }
}

/// [`super::GenericStep::readout_backward`] on host buffers.
pub fn readout_backward<T: HostFloat>(
    r: ReadoutShape,
    ansatz: &[T],
    weights: &[T],
    feature_bar: &[T],
    m_bar: &mut [T],
) {
    let shape = r.shape;
    let (np, v, k_max, nt) = (shape.n_points, shape.n_dirs, shape.order, r.n_terms);
    let a_shape = super::ansatz_shape(shape);
    let w =
        |j: usize, s: usize, k: usize| weights[(j * v + s) * k_max + k - 1].get() * factorial(k);
    let m_bar = &mut m_bar[..shape.len()];
    m_bar.iter_mut().for_each(|x| *x = T::put(0.0));
    let mut u_bar = vec![0.0; k_max + 1];
    for n in 0..np {
        let fb = |f: usize| feature_bar[f * np + n].get();
        let bb = |k: usize, s: usize| ansatz[a_shape.index(a_shape.block(k, s), n, 1)].get();
        let mut m0_bar = fb(0) * bb(0, 0);
        let mut top_bar = 0.0;
        for s in 0..v {
            for k in 1..=k_max {
                u_bar[k] = (0..nt).map(|j| fb(1 + j) * w(j, s, k)).sum();
            }
            if shape.collapsed && k_max >= 1 {
                // Every direction's top shares the common weight.
                u_bar[k_max] = (0..nt).map(|j| fb(1 + j) * w(j, 0, k_max)).sum();
                top_bar = u_bar[k_max];
            }
            // u_k = Σ_i B_i m_{k−i}: m̄_q += ū_k·B_{k−q}.
            for k in 1..=k_max {
                m0_bar += u_bar[k] * bb(k, s);
            }
            let upper = if shape.collapsed { k_max - 1 } else { k_max };
            for q in 1..=upper {
                let acc: f64 = (q..=k_max).map(|k| u_bar[k] * bb(k - q, s)).sum();
                m_bar[shape.block(q, s) * np + n] = T::put(acc);
            }
        }
        if shape.collapsed && k_max >= 1 {
            m_bar[shape.block(k_max, 0) * np + n] = T::put(top_bar * bb(0, 0));
        }
        m_bar[n] = T::put(m0_bar);
    }
}

/// The tangent row of direction `s`, slot `k` (`W1·v_k^s`, `width` values) into `row`; `false` when
/// the slot is empty.
pub fn tangent_row<T: HostFloat>(
    probes: &HostSlots<'_, T>,
    order: usize,
    stride: usize,
    width: usize,
    params: &[T],
    weight_offset: usize,
    s: usize,
    k: usize,
    row: &mut [f64],
) -> bool {
    match probes.kind {
        ProbeKind::OneHot => {
            let j = probes.slot_index[s * order + k - 1];
            if j == u32::MAX {
                return false;
            }
            let j = j as usize;
            assert!(j < stride, "probe index {j} out of 0..{stride}");
            let c = probes.slot_coeff[s * order + k - 1].get();
            for (h, r) in row.iter_mut().enumerate().take(width) {
                *r = c * params[weight_offset + h * stride + j].get();
            }
            true
        }
        ProbeKind::Dense => {
            if k != 1 {
                return false;
            }
            let v = &probes.dense[s * stride..(s + 1) * stride];
            for (h, r) in row.iter_mut().enumerate().take(width) {
                let w = &params[weight_offset + h * stride..weight_offset + (h + 1) * stride];
                *r = w.iter().zip(v).map(|(a, b)| a.get() * b.get()).sum();
            }
            true
        }
    }
}

/// Writes the tangent blocks of the input layer (every block but the primal) from the probes.
pub fn input_tangent_blocks<T: HostFloat>(
    shape: JetShape,
    stride: usize,
    probes: &HostSlots<'_, T>,
    params: &[T],
    weight_offset: usize,
    z: &mut [T],
) {
    let (np, width, v, k_max) = (shape.n_points, shape.width, shape.n_dirs, shape.order);
    let block_len = np * width;
    z[block_len..shape.len()]
        .iter_mut()
        .for_each(|x| *x = T::put(0.0));
    let mut row = vec![0.0; width];
    let mut top_sum = vec![0.0; width];
    for s in 0..v {
        for k in 1..=k_max {
            if !tangent_row(
                probes,
                k_max,
                stride,
                width,
                params,
                weight_offset,
                s,
                k,
                &mut row,
            ) {
                continue;
            }
            if shape.collapsed && k == k_max {
                top_sum.iter_mut().zip(&row).for_each(|(a, b)| *a += b);
                continue;
            }
            let b = shape.block(k, s);
            for n in 0..np {
                for (h, r) in row.iter().enumerate() {
                    z[(b * np + n) * width + h] = T::put(*r);
                }
            }
        }
    }
    if shape.collapsed && k_max >= 1 {
        let b = shape.block(k_max, 0);
        for n in 0..np {
            for (h, r) in top_sum.iter().enumerate() {
                z[(b * np + n) * width + h] = T::put(*r);
            }
        }
    }
}

/// Accumulates the tangent rows' weight gradient: `G_k^s = Σ_n z̄[block(k, s), n]` scattered into
/// the probed columns (one-hot) or multiplied by the dense tangents.
pub fn input_tangent_grad<T: HostFloat>(
    shape: JetShape,
    stride: usize,
    probes: &HostSlots<'_, T>,
    z_bar: &[T],
    grad: &mut [T],
    weight_offset: usize,
) {
    let (np, width, v, k_max) = (shape.n_points, shape.width, shape.n_dirs, shape.order);
    let mut g = vec![0.0; width];
    for s in 0..v {
        for k in 1..=k_max {
            let b = shape.block(k, s);
            g.iter_mut().for_each(|x| *x = 0.0);
            for n in 0..np {
                for (h, x) in g.iter_mut().enumerate() {
                    *x += z_bar[(b * np + n) * width + h].get();
                }
            }
            match probes.kind {
                ProbeKind::OneHot => {
                    let j = probes.slot_index[s * k_max + k - 1];
                    if j == u32::MAX {
                        continue;
                    }
                    let j = j as usize;
                    assert!(j < stride, "probe index {j} out of 0..{stride}");
                    let c = probes.slot_coeff[s * k_max + k - 1].get();
                    for (h, x) in g.iter().enumerate() {
                        let i = weight_offset + h * stride + j;
                        grad[i] = T::put(grad[i].get() + c * x);
                    }
                }
                ProbeKind::Dense => {
                    if k != 1 {
                        continue;
                    }
                    let row = &probes.dense[s * stride..(s + 1) * stride];
                    for (h, x) in g.iter().enumerate() {
                        for (j, vj) in row.iter().enumerate() {
                            let i = weight_offset + h * stride + j;
                            grad[i] = T::put(grad[i].get() + x * vj.get());
                        }
                    }
                }
            }
        }
    }
}

/// The primal rows of the shared block features: `y[n·n_blocks + b] = Σ_i w_i·x_{n, bB+i} + c` for
/// points `0..n_points` (sums in f64).
pub fn shared_block_primal<T: HostFloat>(
    map: SharedBlocks,
    n_points: usize,
    points: &[T],
    params: &[T],
    y: &mut [T],
) {
    let (bl, nb, stride) = (map.block, map.n_blocks, map.stride);
    let w = &params[map.offset..map.offset + bl];
    let c = params[map.offset + bl].get();
    for n in 0..n_points {
        let row = &points[n * stride..n * stride + map.mapped()];
        for (b, x) in row.chunks_exact(bl.max(1)).enumerate().take(nb) {
            let dot: f64 = w.iter().zip(x).map(|(a, v)| a.get() * v.get()).sum();
            y[n * nb + b] = T::put(dot + c);
        }
    }
}

/// The tangent row of direction `s`, slot `k` of the shared block map (`n_blocks` values into `row`,
/// overwritten); `false` when the slot is empty.
fn shared_tangent_row<T: HostFloat>(
    map: SharedBlocks,
    probes: &HostSlots<'_, T>,
    order: usize,
    params: &[T],
    s: usize,
    k: usize,
    row: &mut [f64],
) -> bool {
    let (bl, mapped) = (map.block, map.mapped());
    let w = &params[map.offset..map.offset + bl];
    row.fill(0.0);
    match probes.kind {
        ProbeKind::OneHot => {
            let j = probes.slot_index[s * order + k - 1];
            if j == u32::MAX {
                return false;
            }
            let j = j as usize;
            assert!(j < map.stride, "probe index {j} out of 0..{}", map.stride);
            if j < mapped {
                row[j / bl] = probes.slot_coeff[s * order + k - 1].get() * w[j % bl].get();
            }
            true
        }
        ProbeKind::Dense => {
            if k != 1 {
                return false;
            }
            let v = &probes.dense[s * map.stride..s * map.stride + mapped];
            for (r, x) in row.iter_mut().zip(v.chunks_exact(bl.max(1))) {
                *r = w.iter().zip(x).map(|(a, b)| a.get() * b.get()).sum();
            }
            true
        }
    }
}

/// The tangent blocks of [`super::GenericStep::shared_block_forward`] (every block but the primal).
pub fn shared_tangent_blocks<T: HostFloat>(
    map: SharedBlocks,
    shape: JetShape,
    probes: &HostSlots<'_, T>,
    params: &[T],
    out: &mut [T],
) {
    let fshape = map.features(shape);
    let (np, nb, k_max) = (shape.n_points, map.n_blocks, shape.order);
    if k_max == 0 {
        return;
    }
    let y = &mut out[..fshape.len()];
    y[np * nb..].iter_mut().for_each(|x| *x = T::put(0.0));
    let mut row = vec![0.0; nb];
    let mut top = vec![0.0; nb];
    let mut put = |block: usize, row: &[f64]| {
        for dst in y[block * np * nb..(block + 1) * np * nb].chunks_exact_mut(nb.max(1)) {
            dst.iter_mut().zip(row).for_each(|(d, v)| *d = T::put(*v));
        }
    };
    for s in 0..shape.n_dirs {
        for k in 1..=k_max {
            if !shared_tangent_row(map, probes, k_max, params, s, k, &mut row) {
                continue;
            }
            if shape.collapsed && k == k_max {
                top.iter_mut().zip(&row).for_each(|(a, b)| *a += b);
                continue;
            }
            put(shape.block(k, s), &row);
        }
    }
    if shape.collapsed {
        put(shape.block(k_max, 0), &top);
    }
}

/// [`super::GenericStep::shared_block_forward`] on host buffers.
pub fn shared_block_forward<T: HostFloat>(
    map: SharedBlocks,
    shape: JetShape,
    points: &[T],
    probes: &HostSlots<'_, T>,
    params: &[T],
    out: &mut [T],
) {
    shared_block_primal(map, shape.n_points, points, params, out);
    shared_tangent_blocks(map, shape, probes, params, out);
}

/// The column sums of every tangent block of the block features' cotangent `y_bar`: block `b ≥ 1`
/// of `map.features(shape)` summed over the points, at `(b − 1)·n_blocks` (in f64).
pub fn shared_tangent_sums<T: HostFloat>(
    map: SharedBlocks,
    shape: JetShape,
    y_bar: &[T],
) -> Vec<f64> {
    let (np, nb) = (shape.n_points, map.n_blocks);
    let blocks = map.features(shape).n_blocks();
    let mut sums = vec![0.0; (blocks - 1) * nb];
    for (b, acc) in sums.chunks_exact_mut(nb.max(1)).enumerate() {
        let block = &y_bar[(b + 1) * np * nb..(b + 2) * np * nb];
        for row in block.chunks_exact(nb) {
            acc.iter_mut().zip(row).for_each(|(a, v)| *a += v.get());
        }
    }
    sums
}

/// Accumulates the tangent part of the shared map's weight adjoint into `∂w` from the column sums
/// of [`shared_tangent_sums`]: one-hot slots add `a·Σ_n ȳ[n, j/B]` to `∂w_{j mod B}`, dense slots
/// `Σ_b (Σ_n ȳ[n, b])·v[bB + i]` to `∂w_i`.
pub fn shared_tangent_grad<T: HostFloat>(
    map: SharedBlocks,
    shape: JetShape,
    probes: &HostSlots<'_, T>,
    sums: &[f64],
    grad: &mut [T],
) {
    let (bl, nb, k_max, mapped) = (map.block, map.n_blocks, shape.order, map.mapped());
    let mut acc = vec![0.0; bl];
    for s in 0..shape.n_dirs {
        for k in 1..=k_max {
            let g = &sums[(shape.block(k, s) - 1) * nb..shape.block(k, s) * nb];
            match probes.kind {
                ProbeKind::OneHot => {
                    let j = probes.slot_index[s * k_max + k - 1];
                    if j == u32::MAX {
                        continue;
                    }
                    let j = j as usize;
                    assert!(j < map.stride, "probe index {j} out of 0..{}", map.stride);
                    if j < mapped {
                        acc[j % bl] += probes.slot_coeff[s * k_max + k - 1].get() * g[j / bl];
                    }
                }
                ProbeKind::Dense => {
                    if k != 1 {
                        continue;
                    }
                    let v = &probes.dense[s * map.stride..s * map.stride + mapped];
                    for (gb, x) in g.iter().zip(v.chunks_exact(bl.max(1))) {
                        acc.iter_mut()
                            .zip(x)
                            .for_each(|(a, xi)| *a += gb * xi.get());
                    }
                }
            }
        }
    }
    add_block_grad(map, &acc, grad);
}

/// Adds the f64 sums `acc` (`∂w_0 … ∂w_{B−1}`, and `∂c` after them when given) to the block's
/// parameters in `grad`.
fn add_block_grad<T: HostFloat>(map: SharedBlocks, acc: &[f64], grad: &mut [T]) {
    for (e, a) in grad[map.offset..map.offset + acc.len()].iter_mut().zip(acc) {
        *e = T::put(e.get() + a);
    }
}

/// Accumulates the primal part of the shared map's adjoint: `∂w_i += Σ_{n,b} ȳ_0[n,b]·x_{n,bB+i}`
/// and `∂c += Σ_{n,b} ȳ_0[n,b]` (sums in f64).
pub fn shared_primal_grad<T: HostFloat>(
    map: SharedBlocks,
    n_points: usize,
    points: &[T],
    y_bar: &[T],
    grad: &mut [T],
) {
    let (bl, nb) = (map.block, map.n_blocks);
    let mut acc = vec![0.0; bl + 1];
    for n in 0..n_points {
        let row = &points[n * map.stride..n * map.stride + map.mapped()];
        for (b, x) in row.chunks_exact(bl.max(1)).enumerate().take(nb) {
            let yb = y_bar[n * nb + b].get();
            acc[..bl]
                .iter_mut()
                .zip(x)
                .for_each(|(a, xi)| *a += yb * xi.get());
            acc[bl] += yb;
        }
    }
    add_block_grad(map, &acc, grad);
}

/// [`super::GenericStep::shared_block_backward`] on host buffers.
pub fn shared_block_backward<T: HostFloat>(
    map: SharedBlocks,
    shape: JetShape,
    points: &[T],
    probes: &HostSlots<'_, T>,
    y_bar: &[T],
    grad: &mut [T],
) {
    shared_primal_grad(map, shape.n_points, points, y_bar, grad);
    if shape.order > 0 {
        let sums = shared_tangent_sums(map, shape, y_bar);
        shared_tangent_grad(map, shape, probes, &sums, grad);
    }
}
