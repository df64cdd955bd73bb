// act_tanh.wgsl: the Taylor-mode rule of tanh for the jet kernels (jet_forward.wgsl,
// jet_backward.wgsl): from ja = a(t) it writes jb = tanh(a(t)) and jd = tanh'(a(t)) = 1 - jb^2, as
// Taylor coefficients 0..=K, with k b_k = sum_{j=1..k} j a_j d_{k-j} (d one coefficient ahead of
// b).
//
// The primal coefficients depend on a_0 only, which every direction of a point shares, so
// act_primal runs once per (point, feature) and act_series (coefficients 1..=K) once per direction.

// jb[0], jd[0] from ja[0].
fn act_primal() {
    jb[0] = m_tanh(ja[0]);
    jd[0] = 1.0 - jb[0] * jb[0];
}

// jb[k], jd[k] for k = 1..=K from ja and the primal coefficients set by act_primal.
fn act_series() {
    for (var k = 1u; k <= K; k++) {
        var acc = 0.0;
        for (var j = 1u; j <= k; j++) {
            acc += f32(j) * ja[j] * jd[k - j];
        }
        jb[k] = acc / f32(k);
        var sq = 0.0;
        for (var i = 0u; i <= k; i++) {
            sq += jb[i] * jb[k - i];
        }
        jd[k] = -sq;
    }
}

// tanh''(a0) = -2 tanh(a0) (1 - tanh(a0)^2), for the collapsed adjoint of the primal.
fn act_second(a0: f32) -> f32 {
    let b0 = m_tanh(a0);
    return -2.0 * b0 * (1.0 - b0 * b0);
}
