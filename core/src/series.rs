//! Truncated Taylor series arithmetic on coefficient slices: the forward rules and their adjoints.
//!
//! Every function here works on *Taylor coefficients* `c_0..=c_K` (a slice of length `K + 1`), where a
//! curve is `x(t) = Σ c_k t^k`. Derivative coefficients (`y_k = k!·c_k`, the `jax.experimental.jet`
//! convention) are converted at the API boundary with [`taylor_to_derivative`] and
//! [`derivative_to_taylor`]. Taylor coefficients keep every recurrence free of factorials, which is
//! why the kernels of every backend use them too.
//!
//! The code is deliberately obvious: it is the f64 oracle that every backend is tested against.
//!
//! Adjoints follow one rule. For `b(t) = σ(a(t))`, perturbing `a_j` moves `b(t)` by `t^j·σ'(a(t))`,
//! so `∂b_k/∂a_j = [σ'(a(t))]_{k−j}` and the vector-Jacobian product is
//! `ā_j = Σ_{k≥j} b̄_k·σ'_{k−j}` ([`unary_adjoint`]). The series of `σ'` along the curve is produced by
//! the forward pass ([`unary_forward`]), so no second-order rule is ever needed.

/// Elementwise unary operations with a Taylor-mode forward rule and an adjoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `-a`
    Neg,
    /// `s·a`
    Scale(f64),
    /// `a²`
    Square,
    /// `1/a`
    Recip,
    /// `e^a`
    Exp,
    /// `ln a` (needs `a_0 > 0`)
    Log,
    /// `sin a`
    Sin,
    /// `cos a`
    Cos,
    /// `tanh a`
    Tanh,
    /// `1/(1 + e^{−a})`
    Sigmoid,
    /// `ln(1 + e^a)`
    Softplus,
    /// `√a` (needs `a_0 > 0`)
    Sqrt,
    /// `a^n` for an integer `n` (negative `n` needs `a_0 ≠ 0`)
    Powi(i32),
}

/// Panics unless all slices have the same length `K + 1 ≥ 1`.
#[track_caller]
fn check_len(lens: &[usize]) {
    assert!(
        lens[0] >= 1,
        "a series needs at least the constant coefficient"
    );
    assert!(
        lens.iter().all(|&l| l == lens[0]),
        "series lengths differ: {lens:?}"
    );
}

/// `out = a + b`.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn add(a: &[f64], b: &[f64], out: &mut [f64]) {
    check_len(&[a.len(), b.len(), out.len()]);
    for k in 0..a.len() {
        out[k] = a[k] + b[k];
    }
}

/// `out = a − b`.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn sub(a: &[f64], b: &[f64], out: &mut [f64]) {
    check_len(&[a.len(), b.len(), out.len()]);
    for k in 0..a.len() {
        out[k] = a[k] - b[k];
    }
}

/// Cauchy product `out_k = Σ_{j≤k} a_j·b_{k−j}`.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn mul(a: &[f64], b: &[f64], out: &mut [f64]) {
    check_len(&[a.len(), b.len(), out.len()]);
    for k in 0..a.len() {
        let mut acc = 0.0;
        for j in 0..=k {
            acc += a[j] * b[k - j];
        }
        out[k] = acc;
    }
}

/// Quotient `q = a / w`: `q_k = (a_k − Σ_{j=1..k} w_j q_{k−j}) / w_0`.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn div(a: &[f64], w: &[f64], out: &mut [f64]) {
    check_len(&[a.len(), w.len(), out.len()]);
    for k in 0..a.len() {
        let mut acc = a[k];
        for j in 1..=k {
            acc -= w[j] * out[k - j];
        }
        out[k] = acc / w[0];
    }
}

/// Adjoint of [`mul`]: accumulates `ā += b̄ ⋆ b` and `w̄ += b̄ ⋆ a` (correlations).
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn mul_adjoint(a: &[f64], w: &[f64], out_bar: &[f64], a_bar: &mut [f64], w_bar: &mut [f64]) {
    check_len(&[a.len(), w.len(), out_bar.len(), a_bar.len(), w_bar.len()]);
    unary_adjoint(w, out_bar, a_bar);
    unary_adjoint(a, out_bar, w_bar);
}

/// Adjoint of [`div`] given its output `q = a / w`: `∂q/∂a_j` is `t^j / w(t)` and `∂q/∂w_j` is
/// `−t^j·q(t)/w(t)`.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn div_adjoint(w: &[f64], q: &[f64], out_bar: &[f64], a_bar: &mut [f64], w_bar: &mut [f64]) {
    check_len(&[w.len(), q.len(), out_bar.len(), a_bar.len(), w_bar.len()]);
    let n = w.len();
    let one = constant(1.0, n);
    let mut inv_w = vec![0.0; n];
    div(&one, w, &mut inv_w);
    let mut dq_dw = vec![0.0; n];
    mul(q, &inv_w, &mut dq_dw);
    for c in &mut dq_dw {
        *c = -*c;
    }
    unary_adjoint(&inv_w, out_bar, a_bar);
    unary_adjoint(&dq_dw, out_bar, w_bar);
}

/// The series of a constant: `[c, 0, 0, …]` of length `len`.
pub fn constant(c: f64, len: usize) -> Vec<f64> {
    let mut s = vec![0.0; len];
    s[0] = c;
    s
}

/// Adjoint of any elementwise unary rule: accumulates `ā_j += Σ_{k≥j} b̄_k·σ'_{k−j}`, where `deriv` is
/// the Taylor series of `σ'(a(t))` written by [`unary_forward`].
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn unary_adjoint(deriv: &[f64], out_bar: &[f64], a_bar: &mut [f64]) {
    check_len(&[deriv.len(), out_bar.len(), a_bar.len()]);
    let n = deriv.len();
    for j in 0..n {
        let mut acc = 0.0;
        for k in j..n {
            acc += out_bar[k] * deriv[k - j];
        }
        a_bar[j] += acc;
    }
}

/// Integrates `b' = σ'(a)·a'` coefficient by coefficient: `b_k = (1/k) Σ_{j=1..k} j·a_j·d_{k−j}` where
/// `d` is the series of `σ'(a(t))`. `next_deriv(k, b, d)` must fill `d[k]` once `b[..=k]` is known.
fn integrate_chain(
    a: &[f64],
    out: &mut [f64],
    deriv: &mut [f64],
    mut next_deriv: impl FnMut(usize, &[f64], &mut [f64]),
) {
    next_deriv(0, out, deriv);
    for k in 1..a.len() {
        let mut acc = 0.0;
        for j in 1..=k {
            acc += j as f64 * a[j] * deriv[k - j];
        }
        out[k] = acc / k as f64;
        next_deriv(k, out, deriv);
    }
}

/// Forward rule of `op`: writes `out = σ(a(t))` and `deriv = σ'(a(t))`, both as Taylor series.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn unary_forward(op: Unary, a: &[f64], out: &mut [f64], deriv: &mut [f64]) {
    check_len(&[a.len(), out.len(), deriv.len()]);
    let n = a.len();
    match op {
        Unary::Neg => {
            for k in 0..n {
                out[k] = -a[k];
            }
            deriv.copy_from_slice(&constant(-1.0, n));
        }
        Unary::Scale(s) => {
            for k in 0..n {
                out[k] = s * a[k];
            }
            deriv.copy_from_slice(&constant(s, n));
        }
        Unary::Square => {
            mul(a, a, out);
            for k in 0..n {
                deriv[k] = 2.0 * a[k];
            }
        }
        Unary::Recip => {
            div(&constant(1.0, n), a, out);
            // d/da (1/a) = −(1/a)²
            mul(out, out, deriv);
            for d in deriv.iter_mut() {
                *d = -*d;
            }
        }
        Unary::Exp => {
            out[0] = a[0].exp();
            integrate_chain(a, out, deriv, |k, b, d| d[k] = b[k]);
        }
        Unary::Log => {
            // σ' = 1/a, known before the integration.
            div(&constant(1.0, n), a, deriv);
            out[0] = a[0].ln();
            integrate_chain(a, out, deriv, |_, _, _| {});
        }
        Unary::Sin | Unary::Cos => {
            let mut s = vec![0.0; n];
            let mut c = vec![0.0; n];
            sin_cos(a, &mut s, &mut c);
            if op == Unary::Sin {
                out.copy_from_slice(&s);
                deriv.copy_from_slice(&c);
            } else {
                out.copy_from_slice(&c);
                for k in 0..n {
                    deriv[k] = -s[k];
                }
            }
        }
        Unary::Tanh => {
            out[0] = a[0].tanh();
            // σ' = 1 − b², built one coefficient ahead of b.
            integrate_chain(a, out, deriv, |k, b, d| {
                let mut sq = 0.0;
                for i in 0..=k {
                    sq += b[i] * b[k - i];
                }
                d[k] = if k == 0 { 1.0 - sq } else { -sq };
            });
        }
        Unary::Sigmoid => {
            out[0] = logistic(a[0]);
            // σ' = b − b²
            integrate_chain(a, out, deriv, |k, b, d| {
                let mut sq = 0.0;
                for i in 0..=k {
                    sq += b[i] * b[k - i];
                }
                d[k] = b[k] - sq;
            });
        }
        Unary::Softplus => {
            let mut sig_deriv = vec![0.0; n];
            unary_forward(Unary::Sigmoid, a, deriv, &mut sig_deriv);
            out[0] = softplus_scalar(a[0]);
            integrate_chain(a, out, deriv, |_, _, _| {});
        }
        Unary::Sqrt => {
            out[0] = a[0].sqrt();
            for k in 1..n {
                let mut acc = a[k];
                for j in 1..k {
                    acc -= out[j] * out[k - j];
                }
                out[k] = acc / (2.0 * out[0]);
            }
            // σ' = 1/(2√a)
            div(&constant(0.5, n), out, deriv);
        }
        Unary::Powi(p) => {
            powi(a, p, out);
            if p == 0 {
                // a⁰ = 1 is constant: σ' = 0, also at a_0 = 0 where 0·a^{−1} would be NaN.
                deriv.fill(0.0);
            } else {
                // σ' = p·a^{p−1}
                powi(a, p - 1, deriv);
                for d in deriv.iter_mut() {
                    *d *= p as f64;
                }
            }
        }
    }
}

/// `out = a^p` by repeated squaring of series (exact for `a_0 = 0` too when `p ≥ 0`).
fn powi(a: &[f64], p: i32, out: &mut [f64]) {
    let n = a.len();
    let mut result = constant(1.0, n);
    let mut base = a.to_vec();
    let mut e = p.unsigned_abs();
    let mut tmp = vec![0.0; n];
    while e > 0 {
        if e & 1 == 1 {
            mul(&result, &base, &mut tmp);
            result.copy_from_slice(&tmp);
        }
        e >>= 1;
        if e > 0 {
            mul(&base, &base, &mut tmp);
            base.copy_from_slice(&tmp);
        }
    }
    if p < 0 {
        div(&constant(1.0, n), &result, out);
    } else {
        out.copy_from_slice(&result);
    }
}

/// Sine and cosine series together: `k·s_k = Σ j·a_j·c_{k−j}`, `k·c_k = −Σ j·a_j·s_{k−j}`.
///
/// # Panics
/// If the slices differ in length.
#[track_caller]
pub fn sin_cos(a: &[f64], sin_out: &mut [f64], cos_out: &mut [f64]) {
    check_len(&[a.len(), sin_out.len(), cos_out.len()]);
    sin_out[0] = a[0].sin();
    cos_out[0] = a[0].cos();
    for k in 1..a.len() {
        let (mut s, mut c) = (0.0, 0.0);
        for j in 1..=k {
            s += j as f64 * a[j] * cos_out[k - j];
            c -= j as f64 * a[j] * sin_out[k - j];
        }
        sin_out[k] = s / k as f64;
        cos_out[k] = c / k as f64;
    }
}

/// The logistic function, stable for large `|x|`.
pub fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)`, stable for large `|x|`.
pub fn softplus_scalar(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Convenience: `σ(a(t))` as a new series.
pub fn unary(op: Unary, a: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len()];
    let mut deriv = vec![0.0; a.len()];
    unary_forward(op, a, &mut out, &mut deriv);
    out
}

/// Taylor coefficients `c_k` to derivative coefficients `y_k = k!·c_k`.
pub fn taylor_to_derivative(taylor: &[f64]) -> Vec<f64> {
    let mut fact = 1.0;
    taylor
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            if k > 0 {
                fact *= k as f64;
            }
            c * fact
        })
        .collect()
}

/// Derivative coefficients `y_k` to Taylor coefficients `c_k = y_k / k!`.
pub fn derivative_to_taylor(derivative: &[f64]) -> Vec<f64> {
    let mut fact = 1.0;
    derivative
        .iter()
        .enumerate()
        .map(|(k, &y)| {
            if k > 0 {
                fact *= k as f64;
            }
            y / fact
        })
        .collect()
}

/// `k!` as f64 (exact up to 22!).
pub fn factorial(k: usize) -> f64 {
    (1..=k).map(|i| i as f64).product()
}
