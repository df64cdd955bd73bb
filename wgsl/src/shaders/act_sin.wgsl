// act_sin.wgsl: the Taylor-mode rule of sin for the jet kernels (jet_forward.wgsl,
// jet_backward.wgsl): sine and cosine series together, k s_k = sum j a_j c_{k-j} and
// k c_k = -sum j a_j s_{k-j}; jb = sin(a(t)), jd = sin'(a(t)) = cos(a(t)).
//
// As in act_tanh.wgsl, act_primal runs once per (point, feature), act_series once per direction.

// jb[0], jd[0] from ja[0].
fn act_primal() {
    let sc = m_sincos(ja[0]);
    jb[0] = sc.x;
    jd[0] = sc.y;
}

// jb[k], jd[k] for k = 1..=K from ja and the primal coefficients set by act_primal.
fn act_series() {
    for (var k = 1u; k <= K; k++) {
        var s = 0.0;
        var c = 0.0;
        for (var j = 1u; j <= k; j++) {
            let ja_j = f32(j) * ja[j];
            s += ja_j * jd[k - j];
            c -= ja_j * jb[k - j];
        }
        jb[k] = s / f32(k);
        jd[k] = c / f32(k);
    }
}

// sin''(a0) = -sin(a0).
fn act_second(a0: f32) -> f32 {
    return -m_sin(a0);
}
