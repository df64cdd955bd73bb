// forcing.wgsl: the closed-form forcing g = Lap u* + f(u*) and the exact value u* of the PDE suite
// (`stde_core::pde`), one workgroup per point with a workgroup reduction over the d coordinates.
//
// u* = phi S with phi = 1 - |x|^2. Two-body (theta_i = x_i + cos x_{i+1} + x_{i+1} cos x_i):
//   Lap u* = phi sum c_i [cos th (th_aa + th_bb) - sin th (th_a^2 + th_b^2)]
//            - 4 sum c_i cos th (a th_a + b th_b) - 2 d S.
// Three-body (p_i = x_i x_{i+1} x_{i+2}):
//   Lap u* = phi sum c_i e^p (a^2 b^2 + b^2 e^2 + a^2 e^2) - sum c_i e^p (12 p + 2 d),
// split in two sums so that one pass over the coordinates suffices (phi is known only at the end).

struct Params {
    rows: u32,
    dim: u32,
    n_terms: u32,
    solution: u32,
    nonlinearity: u32,
    x_base: u32,
    c_base: u32,
    g_base: u32,
    e_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coeffs: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> exact: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<vec4<f32>, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_group(wid, nwg);
    if row >= p.rows {
        return;
    }
    let xb = p.x_base + row * p.dim;
    let d = f32(p.dim);
    // (S, first sum, second sum, |x|^2).
    var acc = vec4<f32>(0.0);
    for (var i = lid; i < p.dim; i += WG) {
        acc += forcing_term(xb, i, d);
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        forcing_finish(row, partial[0], d);
    }
}
