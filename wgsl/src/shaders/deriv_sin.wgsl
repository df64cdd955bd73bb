// deriv_sin.wgsl: sin and its first three derivatives at one point, for the order-2 jet kernels
// (jet2_forward.wgsl, jet2_backward.wgsl), which need no Taylor recursion.

// (sin, cos, -sin, -cos) at a0.
fn act_derivs(a0: f32) -> vec4<f32> {
    let sc = m_sincos(a0);
    return vec4<f32>(sc.x, sc.y, -sc.x, -sc.y);
}
