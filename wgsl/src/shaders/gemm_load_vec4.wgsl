// gemm_load_vec4.wgsl: the operand loader of gemm_simple.wgsl when A and B are bound as arrays of
// vec4: one load brings four values, so a software adapter pays its per-lane load loop once per
// four. The host picks it only when every base, row length and window offset is a multiple of four
// values and the bound sizes are multiples of 16 bytes, so that o is a multiple of four.

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;

// Values o..o + 4 of A (o a multiple of 4).
fn load_a(o: u32) -> vec4<f32> {
    return a[o / 4u];
}

// Values o..o + 4 of B (o a multiple of 4).
fn load_b(o: u32) -> vec4<f32> {
    return b[o / 4u];
}
