// deriv_tanh.wgsl: tanh and its first three derivatives at one point, for the order-2 jet kernels
// (jet2_forward.wgsl, jet2_backward.wgsl), which need no Taylor recursion.

// (tanh, tanh', tanh'', tanh''') at a0: with b = tanh, b' = 1 - b^2, b'' = -2 b b',
// b''' = -2 (b'^2 + b b'').
fn act_derivs(a0: f32) -> vec4<f32> {
    let b = m_tanh(a0);
    let d = 1.0 - b * b;
    let e = -2.0 * b * d;
    return vec4<f32>(b, d, e, -2.0 * (d * d + b * e));
}
