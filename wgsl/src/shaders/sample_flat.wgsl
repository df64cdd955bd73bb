// sample_flat.wgsl: flat fills of `stde_core::rng::Philox::fill_*_f32`: element e is word e % 4 of
// block index e / 4 (sub 0), as a Rademacher sign (kind 0) or a normal (kind 1). One invocation per
// block; the window starts at an element that is a multiple of 4.

struct Params {
    count: u32,
    e0: u32,
    key0: u32,
    key1: u32,
    step: u32,
    stream: u32,
    kind: u32,
    o_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let blk = linear_group(wid, nwg) * 64u + lid;
    if 4u * blk >= p.count {
        return;
    }
    let words = philox(vec4<u32>(p.e0 / 4u + blk, p.step, p.stream, 0u), vec2<u32>(p.key0, p.key1));
    var v = vec4<f32>();
    if p.kind == 0u {
        v = rademacher4(words);
    } else {
        v = normals4(words);
    }
    for (var j = 0u; j < 4u; j++) {
        let e = 4u * blk + j;
        if e < p.count {
            o[p.o_base + e] = v[j];
        }
    }
}
