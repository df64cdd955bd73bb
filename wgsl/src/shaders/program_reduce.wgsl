// program_reduce.wgsl: the first pass of a compiled program's series mode: every point's
// accumulators and argmax windows, computed once per point (not once per direction) and stored
// for the series pass (program_series_kernel.wgsl) as 2 * N_ACC words per point: the accumulators'
// f32 bits, then their argmax windows. Followed by an entry point (program_thread.wgsl or
// program_group.wgsl) and the generated body.

struct Params {
    rows: u32,
    x_base: u32,
    p_base: u32,
    r_base: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> prm: array<f32>;
@group(0) @binding(3) var<storage, read_write> red: array<u32>;

// After the reductions: stores them for the dispatch's point r.
fn finish_point(xb: u32, r: u32) {
    let b = p.r_base + r * 2u * N_ACC;
    for (var a = 0u; a < N_ACC; a++) {
        red[b + a] = bitcast<u32>(acc[a]);
        red[b + N_ACC + a] = arg[a];
    }
}
