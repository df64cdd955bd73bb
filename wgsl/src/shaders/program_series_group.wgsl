// program_series_group.wgsl: the entry point of a compiled program's series kernel with one
// workgroup per (point, direction), for directions that move every window of a long loop (dense
// probes, or a moved coordinate that a loop body reads outside its window): invocation `lane`
// visits windows lo + lane, lo + lane + WG, ... and group_sum_series adds the partial series in a
// tree. Everything else is computed by every invocation alike and written by invocation 0.
//
// Besides spreading the work, this bounds the loop iterations of one invocation: llvmpipe
// (lavapipe) ends every loop of an invocation once all of them together have run 65535 iterations,
// silently, and a series window costs tens of iterations of the helpers' coefficient loops. WG is
// a power of two.

var<workgroup> red_series: array<Series, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_group(wid, nwg);
    if t >= p.rows * p.n_dirs {
        return;
    }
    start_invocation(t % p.rows, t / p.rows);
    writer = lid == 0u;
    lane = lid;
    lanes = WG;
    pg_series_point();
}

// The sum of v over the workgroup, in every invocation (called in uniform control flow).
fn group_sum_series(v: Series) -> Series {
    red_series[lane] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lane < half {
            red_series[lane] = s_add(red_series[lane], red_series[lane + half]);
        }
        workgroupBarrier();
    }
    let total = red_series[0];
    workgroupBarrier();
    return total;
}
