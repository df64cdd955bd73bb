// jet2_backward.wgsl: jet_backward.wgsl specialised to order 2 (see jet2_forward.wgsl for why and
// for the element type T). With act', act'', act''' at a0 (d0, e0, f0 from derivs), the series of
// act'(a(t)) is (d0, e0 a_1, e0 a_2 + f0 a_1^2 / 2), and a_bar_j = sum_{k >= j} h_bar_k act'_{k-j}:
//   a_bar_2 = h_bar_2 d0,   a_bar_1 = h_bar_1 d0 + h_bar_2 e0 a_1,
//   a_bar_0 += h_bar_1 e0 a_1 + h_bar_2 (e0 a_2 + f0 a_1^2 / 2)   (summed over directions).
// Collapsed batches run each direction with a_2 = 0 and the shared top cotangent, then add the
// shared top input's own term h_bar_top e0 a_top once.

struct Params {
    n_points: u32,
    width: u32,
    n_dirs: u32,
    collapsed: u32,
    z_base: u32,
    hb_base: u32,
    zb_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<T>;
@group(0) @binding(2) var<storage, read> h_bar: array<T>;
@group(0) @binding(3) var<storage, read_write> z_bar: array<T>;

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
    let zi = p.z_base / LANES + e;
    let hi = p.hb_base / LANES + e;
    let oi = p.zb_base / LANES + e;
    let v = p.n_dirs;
    let dv = derivs(z[zi]);
    let d0 = dv.d;
    let e0 = dv.e;
    let half_f0 = 0.5 * dv.f;
    var primal_bar = d0 * h_bar[hi];
    if p.collapsed != 0u {
        let top = (1u + v) * stride;
        let hb2 = h_bar[hi + top];
        for (var s = 0u; s < v; s++) {
            let at = (1u + s) * stride;
            let a1 = z[zi + at];
            let hb1 = h_bar[hi + at];
            z_bar[oi + at] = hb1 * d0 + hb2 * e0 * a1;
            primal_bar += hb1 * e0 * a1 + hb2 * half_f0 * a1 * a1;
        }
        z_bar[oi + top] = hb2 * d0;
        primal_bar += hb2 * e0 * z[zi + top];
    } else {
        for (var s = 0u; s < v; s++) {
            let at1 = (1u + s) * stride;
            let at2 = (1u + v + s) * stride;
            let a1 = z[zi + at1];
            let a2 = z[zi + at2];
            let hb1 = h_bar[hi + at1];
            let hb2 = h_bar[hi + at2];
            z_bar[oi + at1] = hb1 * d0 + hb2 * e0 * a1;
            z_bar[oi + at2] = hb2 * d0;
            primal_bar += hb1 * e0 * a1 + hb2 * (e0 * a2 + half_f0 * a1 * a1);
        }
    }
    z_bar[oi] = primal_bar;
}
