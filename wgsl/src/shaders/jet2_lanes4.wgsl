// jet2_lanes4.wgsl: the element type of the order-2 jet kernels (jet2_forward.wgsl,
// jet2_backward.wgsl) when each invocation handles four consecutive values of a row: T = vec4.
// Software adapters pay a lane-by-lane loop per load or store, so one vec4 access for four values
// roughly halves the kernels' time; the host picks it only for batches whose block stride, bases
// and windows are multiples of four values.

alias T = vec4<f32>;

// Values per element of T.
const LANES: u32 = 4u;

// act, act', act'', act''' at the four values of a0 (b, d, e, f).
struct Derivs {
    b: T,
    d: T,
    e: T,
    f: T,
}

fn derivs(a: T) -> Derivs {
    let m = transpose(mat4x4<f32>(act_derivs(a.x), act_derivs(a.y), act_derivs(a.z),
        act_derivs(a.w)));
    return Derivs(m[0], m[1], m[2], m[3]);
}
