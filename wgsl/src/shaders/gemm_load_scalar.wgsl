// gemm_load_scalar.wgsl: the operand loader of gemm_simple.wgsl for unaligned operands: four
// scalar loads. Values past the end of the binding are clamped or zeroed by the implementation's
// robust access; gemm_simple.wgsl never lets such values reach a stored result.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// Values o..o + 4 of A.
fn load_a(o: u32) -> vec4<f32> {
    return vec4<f32>(a[o], a[o + 1u], a[o + 2u], a[o + 3u]);
}

// Values o..o + 4 of B.
fn load_b(o: u32) -> vec4<f32> {
    return vec4<f32>(b[o], b[o + 1u], b[o + 2u], b[o + 3u]);
}
