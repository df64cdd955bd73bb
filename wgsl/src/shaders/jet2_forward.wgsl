// jet2_forward.wgsl: jet_forward.wgsl specialised to order 2 (the Laplacian's order, so every
// training step), with the rule written out instead of run through the general recursion on
// private arrays: from h = act(a(t)) with act, act', act'' at a0 (derivs),
//   h_1 = act'(a0) a_1,   h_2 = act'(a0) a_2 + act''(a0) a_1^2 / 2.
// Software adapters keep dynamically indexed private arrays in memory and pay for every access
// lane by lane; GPUs save the registers. Same layouts and parameters as jet_forward.wgsl: block 0
// the primal, block 1 + s the first coefficient of direction s, then the second coefficients
// (block 1 + V + s), or one shared block 1 + V summing the tops when collapsed.
//
// The element type T (f32, or vec4 for four values per invocation) and `derivs` come from
// jet2_lanes1.wgsl or jet2_lanes4.wgsl; act_derivs from deriv_tanh.wgsl or deriv_sin.wgsl.

struct Params {
    n_points: u32,
    width: u32,
    n_dirs: u32,
    collapsed: u32,
    z_base: u32,
    h_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<T>;
@group(0) @binding(2) var<storage, read_write> h: array<T>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Indices count elements of T (LANES values each); the host passes multiples of LANES.
    let e = linear_group(wid, nwg) * 64u + lid;
    let stride = p.n_points * p.width / LANES;
    if e >= stride {
        return;
    }
    let zb = p.z_base / LANES + e;
    let hb = p.h_base / LANES + e;
    let v = p.n_dirs;
    let dv = derivs(z[zb]);
    let d0 = dv.d;
    let half_e0 = 0.5 * dv.e;
    h[hb] = dv.b;
    if p.collapsed != 0u {
        // Every direction's own top is half_e0 a_1^2 (its top input zeroed); the summed top input
        // enters once, through act'(a0).
        var sq = T(0.0);
        for (var s = 0u; s < v; s++) {
            let at = (1u + s) * stride;
            let a1 = z[zb + at];
            h[hb + at] = d0 * a1;
            sq = fma(a1, a1, sq);
        }
        let top = (1u + v) * stride;
        h[hb + top] = half_e0 * sq + d0 * z[zb + top];
    } else {
        for (var s = 0u; s < v; s++) {
            let at1 = (1u + s) * stride;
            let at2 = (1u + v + s) * stride;
            let a1 = z[zb + at1];
            let a2 = z[zb + at2];
            h[hb + at1] = d0 * a1;
            h[hb + at2] = d0 * a2 + half_e0 * a1 * a1;
        }
    }
}
