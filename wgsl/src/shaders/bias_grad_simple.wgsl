// bias_grad_simple.wgsl: bias_grad.wgsl for software adapters: one invocation per feature sums its
// column over the rows serially, with no workgroup reduction (barriers are what a CPU-emulated
// adapter pays most for; the loads are the same either way).

struct Params {
    rows: u32,
    width: u32,
    z_base: u32,
    g_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z_bar: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let h = linear_group(wid, nwg) * 8u + lid;
    if h >= p.width {
        return;
    }
    // Four partial sums: a shorter dependency chain, closer to the GPU kernel's tree order.
    var s = vec4<f32>(0.0);
    var n = 0u;
    for (; n + 4u <= p.rows; n += 4u) {
        let at = p.z_base + n * p.width + h;
        s += vec4<f32>(z_bar[at], z_bar[at + p.width], z_bar[at + 2u * p.width],
            z_bar[at + 3u * p.width]);
    }
    for (; n < p.rows; n++) {
        s.x += z_bar[p.z_base + n * p.width + h];
    }
    grad[p.g_base + h] += (s.x + s.y) + (s.z + s.w);
}
