// residual_shared.wgsl: helpers shared by both residual kernels (residual.wgsl and
// residual_simple.wgsl): output and boundary-factor coefficients, the PDE nonlinearity. Appended
// after the kernel file; module-scope declarations in WGSL may be used before they appear.

// Block of coefficient k >= 1 of direction s (the collapsed top is one shared block).
fn block_of(k: u32, s: u32) -> u32 {
    if p.collapsed != 0u && k == p.order {
        return 1u + (p.order - 1u) * p.n_dirs;
    }
    return 1u + (k - 1u) * p.n_dirs + s;
}

// Coefficient k of direction s of the network output at point n (k = 0 is the shared primal).
fn m_at(k: u32, s: u32, n: u32) -> f32 {
    if k == 0u {
        return m[p.m_base + n];
    }
    return m[p.m_base + block_of(k, s) * p.n_points + n];
}

// Coefficient j of the boundary factor along direction s, from phi_0 and that direction's dots.
fn phi_at(j: u32, phi0: f32, phi1: f32, phi2: f32) -> f32 {
    switch j {
        case 0u: {
            return phi0;
        }
        case 1u: {
            return phi1;
        }
        case 2u: {
            return phi2;
        }
        default: {
            return 0.0;
        }
    }
}

fn f_of(u: f32) -> f32 {
    switch p.nonlinearity {
        case 1u: {
            return u - u * u * u;
        }
        case 2u: {
            return m_sin(u);
        }
        default: {
            return 0.0;
        }
    }
}

fn f_prime(u: f32) -> f32 {
    switch p.nonlinearity {
        case 1u: {
            return 1.0 - 3.0 * u * u;
        }
        case 2u: {
            return m_cos(u);
        }
        default: {
            return 0.0;
        }
    }
}
