// generic_readout_common.wgsl: indexing shared by the ansatz-and-readout kernels. The model output
// m is a jet batch of width 1 (block-major, collapsed or not); the ansatz series (A, B) a batch of
// width 2 with the same order, directions and points, never collapsed. Reads p.n_points,
// p.n_dirs, p.collapsed and p.a_base of the including kernel's parameters.

// Block of coefficient k of direction s in m.
fn m_block(k: u32, s: u32) -> u32 {
    if k == 0u {
        return 0u;
    }
    if p.collapsed != 0u && k == K {
        return 1u + KM1 * p.n_dirs;
    }
    return 1u + (k - 1u) * p.n_dirs + s;
}

// Coefficient k of direction s of ansatz feature f (0: A, 1: B) at point n.
fn ansatz(k: u32, s: u32, n: u32, f: u32) -> f32 {
    var b = 0u;
    if k > 0u {
        b = 1u + (k - 1u) * p.n_dirs + s;
    }
    return ab[p.a_base + (b * p.n_points + n) * 2u + f];
}

// k! for k = 0..=K (weights are on derivative coefficients, series hold Taylor coefficients).
fn factorials() -> array<f32, KP1> {
    var fact = array<f32, KP1>();
    fact[0] = 1.0;
    for (var k = 1u; k <= K; k++) {
        fact[k] = fact[k - 1u] * f32(k);
    }
    return fact;
}
