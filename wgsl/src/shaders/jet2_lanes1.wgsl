// jet2_lanes1.wgsl: the element type of the order-2 jet kernels (jet2_forward.wgsl,
// jet2_backward.wgsl) when each invocation handles one value of a row: T = f32.

alias T = f32;

// Values per element of T.
const LANES: u32 = 1u;

// act, act', act'', act''' at a0 (b, d, e, f).
struct Derivs {
    b: T,
    d: T,
    e: T,
    f: T,
}

fn derivs(a: T) -> Derivs {
    let v = act_derivs(a);
    return Derivs(v.x, v.y, v.z, v.w);
}
