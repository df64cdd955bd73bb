//! The f64 reference operations on jet batches: elementwise jet rules, products, linear layers and
//! their adjoints, written as obviously as possible. This is the oracle of every backend.
//!
//! Collapsed batches use one identity throughout: every rule is linear in its top input coefficient,
//! so each direction is evaluated with its top coefficient set to zero, the results are summed, and the
//! linear top terms (`σ'(a_0)·Σ_s a_K^s` and, for adjoints of the primal, `σ''(a_0)·Σ_s a_K^s`) are
//! added once.

use crate::batch::{JetBatch, JetBatchRef, JetShape};
use crate::series::{self, Unary};

/// `σ''(a_0)`: the first Taylor coefficient of `σ'` along the curve `a_0 + t`.
fn second_derivative(op: Unary, a0: f64) -> f64 {
    let mut out = [0.0; 2];
    let mut deriv = [0.0; 2];
    series::unary_forward(op, &[a0, 1.0], &mut out, &mut deriv);
    deriv[1]
}

/// The series of one (direction, point, feature) with the top coefficient zeroed when collapsed.
fn lower_series(x: &JetBatchRef<'_>, dir: usize, point: usize, feature: usize) -> Vec<f64> {
    let mut s = x.series(dir, point, feature);
    if x.shape().collapsed {
        let k = x.shape().order;
        s[k] = 0.0;
    }
    s
}

/// Applies `op` elementwise: `out = σ(input)` with the layout of `input`.
pub fn unary_forward(op: Unary, input: JetBatchRef<'_>) -> JetBatch {
    let shape = input.shape();
    let order = shape.order;
    let mut out = JetBatch::zeros(shape);
    let mut o = vec![0.0; order + 1];
    let mut d = vec![0.0; order + 1];
    for n in 0..shape.n_points {
        for h in 0..shape.width {
            let mut top_sum = 0.0;
            for s in 0..shape.n_dirs {
                let a = lower_series(&input, s, n, h);
                series::unary_forward(op, &a, &mut o, &mut d);
                if s == 0 {
                    out.set(0, 0, n, h, o[0]);
                }
                let upper = if shape.collapsed { order - 1 } else { order };
                for k in 1..=upper {
                    out.set(k, s, n, h, o[k]);
                }
                top_sum += o[order];
            }
            if shape.collapsed {
                let a0 = input.get(0, 0, n, h);
                let mut d0 = [0.0];
                let mut o0 = [0.0];
                series::unary_forward(op, &[a0], &mut o0, &mut d0);
                let top_in = input.get(order, 0, n, h);
                out.set(order, 0, n, h, top_sum + d0[0] * top_in);
            }
        }
    }
    out
}

/// Adjoint of [`unary_forward`]: the cotangent of `input` given the cotangent of the output.
pub fn unary_adjoint(op: Unary, input: JetBatchRef<'_>, out_bar: JetBatchRef<'_>) -> JetBatch {
    let shape = input.shape();
    assert_eq!(shape, out_bar.shape(), "cotangent shape differs from input");
    let order = shape.order;
    let mut in_bar = JetBatch::zeros(shape);
    let mut o = vec![0.0; order + 1];
    let mut d = vec![0.0; order + 1];
    for n in 0..shape.n_points {
        for h in 0..shape.width {
            let mut primal_bar = 0.0;
            for s in 0..shape.n_dirs {
                let a = lower_series(&input, s, n, h);
                series::unary_forward(op, &a, &mut o, &mut d);
                let mut b_bar = out_bar.series(s, n, h);
                // The primal cotangent is shared by all directions: count it once below.
                b_bar[0] = 0.0;
                let mut a_bar = vec![0.0; order + 1];
                series::unary_adjoint(&d, &b_bar, &mut a_bar);
                primal_bar += a_bar[0];
                if s == 0 {
                    primal_bar += d[0] * out_bar.get(0, 0, n, h);
                }
                let upper = if shape.collapsed { order - 1 } else { order };
                for k in 1..=upper {
                    in_bar.set(k, s, n, h, a_bar[k]);
                }
                if shape.collapsed && s == 0 {
                    in_bar.set(order, 0, n, h, a_bar[order]);
                }
            }
            if shape.collapsed {
                // d/da_0 of σ'_K contains σ''(a_0)·a_K^s for every direction; the lower series above
                // left a_K out, so add the summed term once.
                let a0 = input.get(0, 0, n, h);
                let top_in = input.get(order, 0, n, h);
                let top_bar = out_bar.get(order, 0, n, h);
                primal_bar += top_bar * second_derivative(op, a0) * top_in;
            }
            in_bar.set(0, 0, n, h, primal_bar);
        }
    }
    in_bar
}

/// Elementwise product of two batches of the same shape.
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn mul_forward(a: JetBatchRef<'_>, w: JetBatchRef<'_>) -> JetBatch {
    let shape = a.shape();
    assert_eq!(shape, w.shape(), "product of batches with different shapes");
    let order = shape.order;
    let mut out = JetBatch::zeros(shape);
    let mut o = vec![0.0; order + 1];
    for n in 0..shape.n_points {
        for h in 0..shape.width {
            let mut top_sum = 0.0;
            for s in 0..shape.n_dirs {
                series::mul(
                    &lower_series(&a, s, n, h),
                    &lower_series(&w, s, n, h),
                    &mut o,
                );
                if s == 0 {
                    out.set(0, 0, n, h, o[0]);
                }
                let upper = if shape.collapsed { order - 1 } else { order };
                for k in 1..=upper {
                    out.set(k, s, n, h, o[k]);
                }
                top_sum += o[order];
            }
            if shape.collapsed {
                let top = top_sum
                    + a.get(0, 0, n, h) * w.get(order, 0, n, h)
                    + w.get(0, 0, n, h) * a.get(order, 0, n, h);
                out.set(order, 0, n, h, top);
            }
        }
    }
    out
}

/// Adjoint of [`mul_forward`]: cotangents of both factors.
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn mul_adjoint(
    a: JetBatchRef<'_>,
    w: JetBatchRef<'_>,
    out_bar: JetBatchRef<'_>,
) -> (JetBatch, JetBatch) {
    let shape = a.shape();
    assert_eq!(shape, w.shape(), "product of batches with different shapes");
    assert_eq!(shape, out_bar.shape(), "cotangent shape differs");
    let order = shape.order;
    let mut a_bar_b = JetBatch::zeros(shape);
    let mut w_bar_b = JetBatch::zeros(shape);
    for n in 0..shape.n_points {
        for h in 0..shape.width {
            let (mut a0_bar, mut w0_bar) = (0.0, 0.0);
            for s in 0..shape.n_dirs {
                let sa = lower_series(&a, s, n, h);
                let sw = lower_series(&w, s, n, h);
                let mut b_bar = out_bar.series(s, n, h);
                b_bar[0] = 0.0;
                let mut a_bar = vec![0.0; order + 1];
                let mut w_bar = vec![0.0; order + 1];
                series::mul_adjoint(&sa, &sw, &b_bar, &mut a_bar, &mut w_bar);
                a0_bar += a_bar[0];
                w0_bar += w_bar[0];
                if s == 0 {
                    let p = out_bar.get(0, 0, n, h);
                    a0_bar += p * sw[0];
                    w0_bar += p * sa[0];
                }
                let upper = if shape.collapsed { order - 1 } else { order };
                for k in 1..=upper {
                    a_bar_b.set(k, s, n, h, a_bar[k]);
                    w_bar_b.set(k, s, n, h, w_bar[k]);
                }
                if shape.collapsed && s == 0 {
                    a_bar_b.set(order, 0, n, h, a_bar[order]);
                    w_bar_b.set(order, 0, n, h, w_bar[order]);
                }
            }
            if shape.collapsed {
                let top_bar = out_bar.get(order, 0, n, h);
                a0_bar += top_bar * w.get(order, 0, n, h);
                w0_bar += top_bar * a.get(order, 0, n, h);
            }
            a_bar_b.set(0, 0, n, h, a0_bar);
            w_bar_b.set(0, 0, n, h, w0_bar);
        }
    }
    (a_bar_b, w_bar_b)
}

/// Linear layer on every coefficient row: `out_row = W·in_row (+ b on primal rows only)`.
/// `weight` is `out × in`, row-major.
///
/// # Panics
/// If `weight.len() != out·in` or `bias.len() != out`.
#[track_caller]
pub fn linear_forward(input: JetBatchRef<'_>, weight: &[f64], bias: &[f64]) -> JetBatch {
    let shape = input.shape();
    let fan_in = shape.width;
    let fan_out = bias.len();
    assert_eq!(
        weight.len(),
        fan_out * fan_in,
        "weight is not {fan_out}×{fan_in}"
    );
    let out_shape = shape.with_width(fan_out);
    let mut out = JetBatch::zeros(out_shape);
    let x = input.as_slice();
    let y = out.as_mut_slice();
    for row in 0..shape.n_rows() {
        let is_primal = row < shape.n_points;
        for o in 0..fan_out {
            let mut acc = if is_primal { bias[o] } else { 0.0 };
            for i in 0..fan_in {
                acc += weight[o * fan_in + i] * x[row * fan_in + i];
            }
            y[row * fan_out + o] = acc;
        }
    }
    out
}

/// Adjoint of [`linear_forward`]: returns the input cotangent and accumulates `∂/∂W`, `∂/∂b`.
pub fn linear_adjoint(
    input: JetBatchRef<'_>,
    weight: &[f64],
    out_bar: JetBatchRef<'_>,
    weight_grad: &mut [f64],
    bias_grad: &mut [f64],
) -> JetBatch {
    let shape = input.shape();
    let fan_in = shape.width;
    let fan_out = out_bar.shape().width;
    let mut in_bar = JetBatch::zeros(shape);
    let x = input.as_slice();
    let g = out_bar.as_slice();
    let xb = in_bar.as_mut_slice();
    for row in 0..shape.n_rows() {
        for o in 0..fan_out {
            let go = g[row * fan_out + o];
            if row < shape.n_points {
                bias_grad[o] += go;
            }
            for i in 0..fan_in {
                xb[row * fan_in + i] += go * weight[o * fan_in + i];
                weight_grad[o * fan_in + i] += go * x[row * fan_in + i];
            }
        }
    }
    in_bar
}

/// Builds a batch of constant series (`c_0 = value`, all higher coefficients zero) with `shape`.
pub fn constant_batch(shape: JetShape, values: &[f64]) -> JetBatch {
    assert_eq!(values.len(), shape.n_points * shape.width);
    let mut out = JetBatch::zeros(shape);
    out.as_mut_slice()[..values.len()].copy_from_slice(values);
    out
}
