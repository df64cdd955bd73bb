// program_series_thread.wgsl: the entry point of a compiled program's series kernel with one
// invocation per (point, direction), which visits alone every window its direction moves.

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_group(wid, nwg) * WG + lid;
    if t >= p.rows * p.n_dirs {
        return;
    }
    // Neighbouring invocations take neighbouring points of one direction: coalesced writes.
    start_invocation(t % p.rows, t / p.rows);
    writer = true;
    lane = 0u;
    lanes = 1u;
    pg_series_point();
}

// One invocation holds the whole sum.
fn group_sum_series(v: Series) -> Series {
    return v;
}
