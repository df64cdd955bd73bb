// program_primal.wgsl: primal mode of a compiled program: for every point n, output o at
// out[o * o_col + n * o_point], reading feature f at features[f * n_points + n]. Followed by an
// entry point (program_thread.wgsl or program_group.wgsl) and the generated body, which defines
// pg_primal_body.
//
// A dispatch covers points row0 .. row0 + rows of a batch of n_points; `x_base` is the window index
// of point row0's row, `f_base` and `o_base` those of the batch's first feature and output value.
// Primal mode writes columns (o_col = n_points, o_point = 1); series mode at order 0 writes the
// primal block of a jet batch, rows of the outputs (o_col = 1, o_point = number of outputs).

struct Params {
    rows: u32,
    row0: u32,
    n_points: u32,
    x_base: u32,
    f_base: u32,
    p_base: u32,
    o_base: u32,
    o_col: u32,
    o_point: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> feat: array<f32>;
@group(0) @binding(3) var<storage, read> prm: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// Feature f of point n of the batch.
fn feature(f: u32, n: u32) -> f32 {
    return feat[p.f_base + f * p.n_points + n];
}

// Output o of point n of the batch.
fn write_out(o: u32, n: u32, v: f32) {
    out[p.o_base + o * p.o_col + n * p.o_point] = v;
}

// After the reductions: the main body at the dispatch's point r.
fn finish_point(xb: u32, r: u32) {
    pg_primal_body(xb, p.row0 + r);
}
