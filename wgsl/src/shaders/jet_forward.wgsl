// jet_forward.wgsl: h = act(z) on a jet batch in the stacked-row layout of `stde_core::batch`, one
// invocation per (point, feature) looping over directions; the activation rule (act_tanh.wgsl or
// act_sin.wgsl) and the order K (prelude) are compiled in.
//
// Collapsed batches: each direction runs with its top coefficient zeroed, the tops are summed, and
// act'(a0) * (summed top input) is added once (every rule is linear in its top input).

struct Params {
    n_points: u32,
    width: u32,
    n_dirs: u32,
    collapsed: u32,
    z_base: u32,
    h_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;

var<private> ja: array<f32, KP1>;
var<private> jb: array<f32, KP1>;
var<private> jd: array<f32, KP1>;

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
    // Value (block, point, feature) sits at block * stride + e.
    let stride = p.n_points * p.width;
    let collapsed = p.collapsed != 0u;
    var upper = K;
    if collapsed {
        upper = KM1;
    }
    let a0 = z[p.z_base + e];
    ja[0] = a0;
    act_primal();
    h[p.h_base + e] = jb[0];
    var top_sum = 0.0;
    for (var s = 0u; s < p.n_dirs; s++) {
        for (var k = 1u; k <= K; k++) {
            if collapsed && k == K {
                ja[k] = 0.0;
            } else {
                ja[k] = z[p.z_base + block_of(k, s) * stride + e];
            }
        }
        act_series();
        for (var k = 1u; k <= upper; k++) {
            h[p.h_base + block_of(k, s) * stride + e] = jb[k];
        }
        top_sum += jb[K];
    }
    if collapsed {
        let top = block_of(K, 0u) * stride + e;
        h[p.h_base + top] = top_sum + jd[0] * z[p.z_base + top];
    }
}
