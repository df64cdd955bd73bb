// program_thread.wgsl: the entry point of a compiled program's per-point kernels (primal mode, and
// the reduction pass of series mode) with one invocation per point: its reductions run serially
// over the windows, with no workgroup memory and no barrier (for programs with few windows, and on
// software adapters while one invocation stays within llvmpipe's loop-iteration limit). The kernel file before it defines Params (with `rows` and
// `x_base`) and finish_point; the generated body defines pg_accumulate.

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = linear_group(wid, nwg) * WG + lid;
    if r >= p.rows {
        return;
    }
    let xb = p.x_base + r * STRIDE;
    pg_accumulate(xb, 0u, 1u);
    finish_point(xb, r);
}
