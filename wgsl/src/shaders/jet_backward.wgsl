// jet_backward.wgsl: z_bar from z and h_bar, the adjoint of jet_forward.wgsl, one invocation per
// (point, feature) looping over directions: a_bar_j = sum_{k>=j} b_bar_k act'_{k-j} with the act'
// series that the forward rule produces (no second-order rule), the shared primal's cotangent
// summed over directions, and for collapsed batches act''(a0) * top_in * top_bar added once.

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
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> h_bar: array<f32>;
@group(0) @binding(3) var<storage, read_write> z_bar: array<f32>;

var<private> ja: array<f32, KP1>;
var<private> jb: array<f32, KP1>;
var<private> jd: array<f32, KP1>;
var<private> jbb: array<f32, KP1>;

// Block of coefficient k >= 1 of direction s (the collapsed top is one shared block).
fn block_of(k: u32, s: u32) -> u32 {
    if p.collapsed != 0u && k == K {
        return 1u + KM1 * p.n_dirs;
    }
    return 1u + (k - 1u) * p.n_dirs + s;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = linear_group(wid, nwg) * 64u + lid;
    if e >= p.n_points * p.width {
        return;
    }
    let stride = p.n_points * p.width;
    let collapsed = p.collapsed != 0u;
    var upper = K;
    if collapsed {
        upper = KM1;
    }
    let a0 = z[p.z_base + e];
    ja[0] = a0;
    act_primal();
    // The primal's own cotangent through act'(a0).
    var primal_bar = jd[0] * h_bar[p.hb_base + e];
    for (var s = 0u; s < p.n_dirs; s++) {
        jbb[0] = 0.0;
        for (var k = 1u; k <= K; k++) {
            let at = block_of(k, s) * stride + e;
            if collapsed && k == K {
                ja[k] = 0.0;
            } else {
                ja[k] = z[p.z_base + at];
            }
            jbb[k] = h_bar[p.hb_base + at];
        }
        act_series();
        // a_bar_j for j = 0..=K; j = 0 feeds the shared primal.
        for (var j = 0u; j <= K; j++) {
            var acc = 0.0;
            for (var k = j; k <= K; k++) {
                acc += jbb[k] * jd[k - j];
            }
            if j == 0u {
                primal_bar += acc;
            } else if j <= upper {
                z_bar[p.zb_base + block_of(j, s) * stride + e] = acc;
            } else if s == 0u {
                // The collapsed top: b_bar_K * act'(a0), the same for every direction.
                z_bar[p.zb_base + block_of(K, 0u) * stride + e] = acc;
            }
        }
    }
    if collapsed {
        let top = block_of(K, 0u) * stride + e;
        primal_bar += h_bar[p.hb_base + top] * act_second(a0) * z[p.z_base + top];
    }
    z_bar[p.zb_base + e] = primal_bar;
}
