// philox.wgsl: Philox4x32-10 and the uniform, normal and Rademacher maps of `stde_core::rng`, in
// 32-bit integer math only (WGSL has no 64-bit integers), so that integers and uniforms are
// bit-identical to the host and normals agree to rounding.

// (high, low) words of the 64-bit product a*b, from four 16x16-bit partial products.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // At most 3 * 0xffff: no carry is lost.
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Ten Random123 rounds; counter [index, step, stream, sub], key [seed low, seed high].
fn philox(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = ctr_in;
    var k = key_in;
    for (var round = 0u; round < 10u; round++) {
        if round > 0u {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mul_hi_lo(0xD2511F53u, c.x);
        let p1 = mul_hi_lo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// (u >> 8) * 2^-24 in [0, 1): both steps are exact in f32.
fn uniform_f32(u: u32) -> f32 {
    return f32(u >> 8u) * 0x1p-24f;
}

// ((u >> 8) | 1) * 2^-24 in (0, 1), exact.
fn uniform_open_f32(u: u32) -> f32 {
    return f32((u >> 8u) | 1u) * 0x1p-24f;
}

// Box-Muller with the host's exact formulas: r = sqrt(-2 ln u1), theta = 2pi (u2 - 1/2).
fn box_muller(w1: u32, w2: u32) -> vec2<f32> {
    let u1 = uniform_open_f32(w1);
    let u2 = uniform_open_f32(w2);
    let r = sqrt(-2.0 * m_log(u1));
    let theta = 6.2831855 * (u2 - 0.5);
    let sc = m_sincos(theta);
    return vec2<f32>(r * sc.y, r * sc.x);
}

// The four normals of one block: words (0, 1) and (2, 3).
fn normals4(b: vec4<u32>) -> vec4<f32> {
    let z01 = box_muller(b.x, b.y);
    let z23 = box_muller(b.z, b.w);
    return vec4<f32>(z01, z23);
}

// -1 where bit 31 is set, else +1.
fn rademacher4(b: vec4<u32>) -> vec4<f32> {
    return select(vec4<f32>(1.0), vec4<f32>(-1.0), (b & vec4<u32>(0x80000000u)) != vec4<u32>(0u));
}
