// generic_sample_common.wgsl: the point samplers of `stde_core::rng::sample_points_from`, shared by
// generic_sample.wgsl and generic_sample_simple.wgsl. Point i (= first + row) reads the head block
// at counter [i, step, stream, 0] (word 0: the ball radius, word 1: a uniform time) and its
// coordinates 4q..4q+4 from the block at [q, step, stream, i + 1]: uniforms for the box, normals
// (Box-Muller) for every other sampler. Rows are `stride` long; the time, if any, goes in column
// `dim`. Reads the parameters p of the including kernel.

const BALL: u32 = 0u;
const SPHERE: u32 = 1u;
const BOX: u32 = 2u;
const GAUSSIAN: u32 = 3u;
const SDE_MARGINAL: u32 = 4u;

const TIME_NONE: u32 = 0u;
const TIME_UNIFORM: u32 = 1u;
const TIME_FIXED: u32 = 2u;

fn point_key() -> vec2<u32> {
    return vec2<u32>(p.key0, p.key1);
}

fn head_block(i: u32) -> vec4<u32> {
    return philox(vec4<u32>(i, p.step, p.stream, 0u), point_key());
}

// The time of a point from its head block.
fn point_time(head: vec4<u32>) -> f32 {
    if p.time_kind == TIME_UNIFORM {
        return p.time_value * uniform_f32(head.y);
    }
    if p.time_kind == TIME_FIXED {
        return p.time_value;
    }
    return 0.0;
}

// The factor of the normals before any normalisation: the Gaussian's standard deviation, the SDE
// marginal's sqrt(2t), else 1 (the ball and the sphere rescale afterwards).
fn normal_scale(t: f32) -> f32 {
    if p.sampler == GAUSSIAN {
        return p.a;
    }
    if p.sampler == SDE_MARGINAL {
        return sqrt(2.0 * t);
    }
    return 1.0;
}

// Coordinates 4q..4q+4 of point i (before the ball's and sphere's normalisation).
fn coordinates4(q: u32, i: u32, scale: f32) -> vec4<f32> {
    let b = philox(vec4<u32>(q, p.step, p.stream, i + 1u), point_key());
    if p.sampler == BOX {
        let u = vec4<f32>(uniform_f32(b.x), uniform_f32(b.y), uniform_f32(b.z), uniform_f32(b.w));
        return vec4<f32>(p.a) + vec4<f32>(p.b - p.a) * u;
    }
    return normals4(b) * scale;
}

// Whether the sampler normalises the Gaussian vector (to the ball's radius or to 1).
fn normalises() -> bool {
    return p.sampler == BALL || p.sampler == SPHERE;
}

// The length the normalised vector gets.
fn target_radius(head: vec4<u32>) -> f32 {
    if p.sampler == BALL {
        return uniform_f32(head.x);
    }
    return 1.0;
}
