//! The f64 interpreter of [`Program`]s: the reference semantics of primal and series evaluation that
//! every backend's compiled programs are held to (and what the reference backend runs).
//!
//! It favours obviousness over speed, except that a one-hot direction re-evaluates only the windows
//! it touches, exactly as the device kernels must.

use super::{Func, Loop, Op, Program, ReduceKind};
use crate::backend::ProbeKind;
use crate::batch::JetShape;
use crate::series::{self, Unary};

/// Probe tangents on the host, in the layout of [`crate::backend::SlotProbes`].
#[derive(Clone, Debug, PartialEq)]
pub struct HostProbes {
    /// One-hot or dense.
    pub kind: ProbeKind,
    /// `V·K` coordinate indices ([`HostProbes::EMPTY`] for an empty slot).
    pub slot_index: Vec<u32>,
    /// `V·K` Taylor coefficients.
    pub slot_coeff: Vec<f64>,
    /// `V × stride` slot-1 tangents (dense).
    pub dense: Vec<f64>,
}

impl HostProbes {
    /// The index of an empty slot.
    pub const EMPTY: u32 = u32::MAX;
}

/// The primal value of one op given the values of earlier nodes.
fn primal_op(op: &Op, vals: &[f64], leaf: &dyn Fn(&Op) -> f64) -> f64 {
    let v = |id: u32| vals[id as usize];
    match *op {
        Op::Neg(a) => -v(a),
        Op::Add(a, b) => v(a) + v(b),
        Op::Sub(a, b) => v(a) - v(b),
        Op::Mul(a, b) => v(a) * v(b),
        Op::Div(a, b) => v(a) / v(b),
        Op::Min(a, b) => {
            if v(b) < v(a) {
                v(b)
            } else {
                v(a)
            }
        }
        Op::Max(a, b) => {
            if v(b) > v(a) {
                v(b)
            } else {
                v(a)
            }
        }
        Op::PowInt(a, n) => crate::expr::eval::powi(v(a), n),
        Op::Pow(a, b) => (v(b) * v(a).ln()).exp(),
        Op::Call(f, a) => crate::expr::eval::apply_func(f, v(a)),
        _ => leaf(op),
    }
}

/// The Taylor series of `f(a(τ))`.
pub fn call_series(f: Func, a: &[f64]) -> Vec<f64> {
    let n = a.len();
    let unary = |op: Unary| {
        let (mut out, mut d) = (vec![0.0; n], vec![0.0; n]);
        series::unary_forward(op, a, &mut out, &mut d);
        out
    };
    match f {
        Func::Exp => unary(Unary::Exp),
        Func::Log => unary(Unary::Log),
        Func::Sin => unary(Unary::Sin),
        Func::Cos => unary(Unary::Cos),
        Func::Tanh => unary(Unary::Tanh),
        Func::Sqrt => unary(Unary::Sqrt),
        Func::Abs => {
            let s = if a[0] < 0.0 { -1.0 } else { 1.0 };
            a.iter().map(|&c| s * c).collect()
        }
        Func::Atan => {
            // atan' = 1/(1 + a²): integrate b_k = (1/k) Σ_j j·a_j·q_{k−j}.
            let mut one_plus = vec![0.0; n];
            series::mul(a, a, &mut one_plus);
            one_plus[0] += 1.0;
            let mut q = vec![0.0; n];
            series::div(&series::constant(1.0, n), &one_plus, &mut q);
            let mut out = vec![0.0; n];
            out[0] = a[0].atan();
            for k in 1..n {
                let acc: f64 = (1..=k).map(|j| j as f64 * a[j] * q[k - j]).sum();
                out[k] = acc / k as f64;
            }
            out
        }
    }
}

/// The series of one op given the series of earlier nodes.
fn series_op(op: &Op, vals: &[Vec<f64>], leaf: &dyn Fn(&Op) -> Vec<f64>) -> Vec<f64> {
    let v = |id: u32| &vals[id as usize];
    let binary = |a: u32, b: u32, f: fn(&[f64], &[f64], &mut [f64])| {
        let mut out = vec![0.0; v(a).len()];
        f(v(a), v(b), &mut out);
        out
    };
    match *op {
        Op::Neg(a) => v(a).iter().map(|c| -c).collect(),
        Op::Add(a, b) => binary(a, b, series::add),
        Op::Sub(a, b) => binary(a, b, series::sub),
        Op::Mul(a, b) => binary(a, b, series::mul),
        Op::Div(a, b) => binary(a, b, series::div),
        Op::Min(a, b) => {
            if v(b)[0] < v(a)[0] {
                v(b).clone()
            } else {
                v(a).clone()
            }
        }
        Op::Max(a, b) => {
            if v(b)[0] > v(a)[0] {
                v(b).clone()
            } else {
                v(a).clone()
            }
        }
        Op::PowInt(a, 0) => series::constant(1.0, v(a).len()),
        Op::PowInt(a, n) => {
            let mut p = v(a).clone();
            for _ in 1..n.unsigned_abs() {
                let mut next = vec![0.0; p.len()];
                series::mul(&p, v(a), &mut next);
                p = next;
            }
            if n < 0 {
                let mut r = vec![0.0; p.len()];
                series::div(&series::constant(1.0, p.len()), &p, &mut r);
                p = r;
            }
            p
        }
        Op::Pow(a, b) => {
            let ln = call_series(Func::Log, v(a));
            let mut e = vec![0.0; ln.len()];
            series::mul(v(b), &ln, &mut e);
            call_series(Func::Exp, &e)
        }
        Op::Call(f, a) => call_series(f, v(a)),
        _ => leaf(op),
    }
}

/// Primal evaluation of one loop body at window `i`.
fn loop_body_primal(lp: &Loop, i: usize, row: &[f64], params: &[f64], dim: usize) -> Vec<f64> {
    let mut vals = Vec::with_capacity(lp.nodes.len());
    for op in &lp.nodes {
        let leaf = |op: &Op| leaf_primal(op, Some(i), row, &[], params, dim, 0);
        let x = primal_op(op, &vals, &leaf);
        vals.push(x);
    }
    vals
}

/// The value of a leaf op at point `row` (and window `i` inside a loop).
fn leaf_primal(
    op: &Op,
    window: Option<usize>,
    row: &[f64],
    features: &[f64],
    params: &[f64],
    dim: usize,
    feature_stride: usize,
) -> f64 {
    match *op {
        Op::Const(c) => c,
        Op::Coord(j) => row[j as usize],
        Op::Time => row[dim],
        Op::Param(i) => params[i as usize],
        Op::Feature(f) => features[f as usize * feature_stride],
        Op::WinCoord(k) => row[window_index(window, k)],
        Op::WinParam { base, k } => params[base as usize + window_index(window, k)],
        _ => unreachable!("not a leaf: {op:?}"),
    }
}

#[track_caller]
fn window_index(window: Option<usize>, k: i32) -> usize {
    let i = window.expect("a window read outside a loop body");
    usize::try_from(i as i64 + i64::from(k)).expect("a window read before coordinate 0")
}

/// Accumulated values of every loop at one point, numbered like [`Op::Reduced`].
fn reduce_primal(p: &Program, row: &[f64], params: &[f64]) -> Vec<f64> {
    let dim = p.dim as usize;
    let mut out = Vec::with_capacity(p.n_accumulators());
    for lp in &p.loops {
        let mut acc: Vec<f64> = lp
            .accumulators
            .iter()
            .map(|a| match a.kind {
                ReduceKind::Sum => 0.0,
                ReduceKind::Max => f64::NEG_INFINITY,
            })
            .collect();
        for i in lp.lo as usize..lp.hi as usize {
            let vals = loop_body_primal(lp, i, row, params, dim);
            for (slot, a) in acc.iter_mut().zip(&lp.accumulators) {
                let x = vals[a.value as usize];
                match a.kind {
                    ReduceKind::Sum => *slot += x,
                    ReduceKind::Max => {
                        if x > *slot {
                            *slot = x;
                        }
                    }
                }
            }
        }
        out.extend(acc);
    }
    out
}

/// Primal mode: `n_outputs` columns of `n_points` values (see [`crate::program`]).
///
/// # Panics
/// If a buffer is shorter than the program and `n_points` need.
#[track_caller]
pub fn run_primal(
    p: &Program,
    n_points: usize,
    points: &[f64],
    features: &[f64],
    params: &[f64],
) -> Vec<f64> {
    let stride = p.point_stride();
    let dim = p.dim as usize;
    assert!(points.len() >= n_points * stride, "points buffer too short");
    assert!(
        features.len() >= n_points * p.n_features as usize,
        "features buffer too short"
    );
    assert!(
        params.len() >= p.n_params as usize,
        "params buffer too short"
    );
    let mut out = vec![0.0; p.n_outputs() * n_points];
    for n in 0..n_points {
        let row = &points[n * stride..(n + 1) * stride];
        let reduced = reduce_primal(p, row, params);
        let feats = features.get(n..).unwrap_or(&[]);
        let mut vals = Vec::with_capacity(p.nodes.len());
        for op in &p.nodes {
            let leaf = |op: &Op| match *op {
                Op::Reduced(a) => reduced[a as usize],
                _ => leaf_primal(op, None, row, feats, params, dim, n_points),
            };
            let x = primal_op(op, &vals, &leaf);
            vals.push(x);
        }
        for (o, &id) in p.outputs.iter().enumerate() {
            out[o * n_points + n] = vals[id as usize];
        }
    }
    out
}

/// The curve of one direction: the tangent of each coordinate (by row index) per slot.
struct Curve {
    order: usize,
    /// `(row index, slot k, Taylor coefficient)`; for dense probes every coordinate at slot 1.
    entries: Vec<(usize, usize, f64)>,
    /// Per row index: its series beyond the primal (`order` values, slots 1..=K); `None` if untouched.
    touched: Vec<Option<Vec<f64>>>,
}

impl Curve {
    fn new(stride: usize, order: usize, entries: Vec<(usize, usize, f64)>) -> Self {
        let mut touched: Vec<Option<Vec<f64>>> = vec![None; stride];
        for &(j, k, c) in &entries {
            let t = touched[j].get_or_insert_with(|| vec![0.0; order]);
            t[k - 1] += c;
        }
        Self {
            order,
            entries,
            touched,
        }
    }

    fn series(&self, j: usize, x0: f64) -> Vec<f64> {
        let mut s = vec![0.0; self.order + 1];
        s[0] = x0;
        if let Some(t) = &self.touched[j] {
            s[1..].copy_from_slice(t);
        }
        s
    }

    fn is_touched(&self, j: usize) -> bool {
        self.touched.get(j).is_some_and(Option::is_some)
    }
}

/// The leaf series at a point (and window).
fn leaf_series(
    op: &Op,
    window: Option<usize>,
    row: &[f64],
    params: &[f64],
    dim: usize,
    curve: &Curve,
) -> Vec<f64> {
    let k = curve.order;
    match *op {
        Op::Coord(j) => curve.series(j as usize, row[j as usize]),
        Op::Time => curve.series(dim, row[dim]),
        Op::WinCoord(o) => {
            let j = window_index(window, o);
            curve.series(j, row[j])
        }
        Op::Feature(_) => panic!("a program in series mode reads no features"),
        _ => series::constant(leaf_primal(op, window, row, &[], params, dim, 0), k + 1),
    }
}

/// Whether window `i` of `lp` moves along the curve.
fn window_touched(lp: &Loop, i: usize, dim: usize, curve: &Curve) -> bool {
    lp.nodes.iter().any(|op| match *op {
        Op::WinCoord(k) => curve.is_touched(window_index(Some(i), k)),
        Op::Coord(j) => curve.is_touched(j as usize),
        Op::Time => curve.is_touched(dim),
        _ => false,
    })
}

fn loop_body_series(
    lp: &Loop,
    i: usize,
    row: &[f64],
    params: &[f64],
    dim: usize,
    curve: &Curve,
) -> Vec<Vec<f64>> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(lp.nodes.len());
    for op in &lp.nodes {
        let leaf = |op: &Op| leaf_series(op, Some(i), row, params, dim, curve);
        let s = series_op(op, &vals, &leaf);
        vals.push(s);
    }
    vals
}

/// Series of every accumulator at one point along one curve, given the primal accumulators and the
/// argmax window of each max.
fn reduce_series(
    p: &Program,
    row: &[f64],
    params: &[f64],
    curve: &Curve,
    primal: &[f64],
    argmax: &[Option<usize>],
) -> Vec<Vec<f64>> {
    let dim = p.dim as usize;
    let k = curve.order;
    let mut out = Vec::with_capacity(p.n_accumulators());
    let mut a0 = 0;
    for lp in &p.loops {
        // Windows that move: for one-hot curves only those reading a touched coordinate.
        let windows: Vec<usize> = (lp.lo as usize..lp.hi as usize)
            .filter(|&i| window_touched(lp, i, dim, curve))
            .collect();
        for (ai, acc) in lp.accumulators.iter().enumerate() {
            let total = primal[a0 + ai];
            let s = match acc.kind {
                ReduceKind::Sum => {
                    let mut s = series::constant(total, k + 1);
                    for &i in &windows {
                        let body = loop_body_series(lp, i, row, params, dim, curve);
                        let w = &body[acc.value as usize];
                        // The window's primal is already in the total; add its moving part.
                        for c in 1..=k {
                            s[c] += w[c];
                        }
                    }
                    s
                }
                ReduceKind::Max => match argmax[a0 + ai] {
                    Some(i) if windows.contains(&i) => {
                        let body = loop_body_series(lp, i, row, params, dim, curve);
                        let mut s = body[acc.value as usize].clone();
                        s[0] = total;
                        s
                    }
                    _ => series::constant(total, k + 1),
                },
            };
            out.push(s);
        }
        a0 += lp.accumulators.len();
    }
    out
}

/// The window attaining each max accumulator (first on ties), `None` for sums and empty ranges.
fn argmaxes(p: &Program, row: &[f64], params: &[f64]) -> Vec<Option<usize>> {
    let dim = p.dim as usize;
    let mut out = Vec::new();
    for lp in &p.loops {
        let mut best: Vec<(f64, Option<usize>)> =
            vec![(f64::NEG_INFINITY, None); lp.accumulators.len()];
        for i in lp.lo as usize..lp.hi as usize {
            let vals = loop_body_primal(lp, i, row, params, dim);
            for (b, a) in best.iter_mut().zip(&lp.accumulators) {
                let x = vals[a.value as usize];
                if a.kind == ReduceKind::Max && (b.1.is_none() || x > b.0) {
                    *b = (x, Some(i));
                }
            }
        }
        out.extend(best.into_iter().map(|(_, i)| i));
    }
    out
}

/// Series mode: the Taylor coefficients `0..=shape.order` of every output along every direction, in
/// the jet-batch layout of `shape` (width = outputs, not collapsed).
///
/// # Panics
/// If the shape is collapsed or its width is not the number of outputs, if the program reads
/// features, or if a buffer is too short.
#[track_caller]
pub fn run_series(
    p: &Program,
    shape: JetShape,
    points: &[f64],
    probes: &HostProbes,
    params: &[f64],
) -> Vec<f64> {
    assert!(!shape.collapsed, "series outputs are never collapsed");
    assert_eq!(
        shape.width,
        p.n_outputs(),
        "width must be the number of outputs"
    );
    assert!(
        !p.reads_features(),
        "a program in series mode reads no features"
    );
    let stride = p.point_stride();
    let dim = p.dim as usize;
    let (k, v, np) = (shape.order, shape.n_dirs, shape.n_points);
    assert!(points.len() >= np * stride, "points buffer too short");
    let mut out = vec![0.0; shape.len()];
    let curves: Vec<Curve> = (0..v)
        .map(|s| {
            let entries = match probes.kind {
                ProbeKind::OneHot => (1..=k)
                    .filter_map(|slot| {
                        let j = probes.slot_index[s * k + slot - 1];
                        (j != HostProbes::EMPTY).then(|| {
                            assert!((j as usize) < stride, "probe index {j} out of 0..{stride}");
                            (j as usize, slot, probes.slot_coeff[s * k + slot - 1])
                        })
                    })
                    .collect(),
                // At order 0 a direction has no slots: only the primal is asked for.
                ProbeKind::Dense if k == 0 => Vec::new(),
                ProbeKind::Dense => (0..stride)
                    .map(|j| (j, 1, probes.dense[s * stride + j]))
                    .filter(|e| e.2 != 0.0)
                    .collect(),
            };
            Curve::new(stride, k, entries)
        })
        .collect();
    let width = p.n_outputs();
    for n in 0..np {
        let row = &points[n * stride..(n + 1) * stride];
        let primal_red = reduce_primal(p, row, params);
        let argmax = argmaxes(p, row, params);
        for (s, curve) in curves.iter().enumerate() {
            debug_assert!(curve.entries.iter().all(|e| e.1 >= 1));
            let red = reduce_series(p, row, params, curve, &primal_red, &argmax);
            let mut vals: Vec<Vec<f64>> = Vec::with_capacity(p.nodes.len());
            for op in &p.nodes {
                let leaf = |op: &Op| match *op {
                    Op::Reduced(a) => red[a as usize].clone(),
                    _ => leaf_series(op, None, row, params, dim, curve),
                };
                let x = series_op(op, &vals, &leaf);
                vals.push(x);
            }
            for (o, &id) in p.outputs.iter().enumerate() {
                let sv = &vals[id as usize];
                if s == 0 {
                    out[n * width + o] = sv[0];
                }
                for c in 1..=k {
                    out[(shape.block(c, s) * np + n) * width + o] = sv[c];
                }
            }
        }
    }
    out
}
