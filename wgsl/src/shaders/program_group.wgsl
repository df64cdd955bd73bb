// program_group.wgsl: the entry point of a compiled program's per-point kernels (primal mode, and
// the reduction pass of series mode) with one workgroup per point: invocation `lid` accumulates
// windows lo + lid, lo + lid + WG, ... and a tree reduction in workgroup memory combines the
// partial values (sums added, maxima compared with the first window winning ties), so that a
// point's O(d) work is spread over WG invocations (GPUs at large d, and any adapter where one
// invocation would exceed llvmpipe's limit of 65535 loop iterations per invocation). WG is a power
// of two. The kernel file before it defines Params (with `rows` and `x_base`) and finish_point; the
// generated body defines pg_accumulate and pg_acc_is_max.

var<workgroup> red_sum: array<f32, WG>;
var<workgroup> red_max: array<f32, WG>;
var<workgroup> red_arg: array<u32, WG>;

// Combines the invocations' partial accumulators into `acc` and `arg` of every invocation. Sums and
// maxima are reduced side by side so that every barrier stays in uniform control flow.
fn group_reduce(lid: u32) {
    for (var a = 0u; a < N_ACC; a++) {
        red_sum[lid] = acc[a];
        red_max[lid] = acc[a];
        red_arg[lid] = arg[a];
        workgroupBarrier();
        for (var half = WG / 2u; half > 0u; half >>= 1u) {
            if lid < half {
                red_sum[lid] += red_sum[lid + half];
                let i1 = red_arg[lid];
                let i2 = red_arg[lid + half];
                let m1 = red_max[lid];
                let m2 = red_max[lid + half];
                if i2 != NONE && (i1 == NONE || m2 > m1 || (m2 == m1 && i2 < i1)) {
                    red_max[lid] = m2;
                    red_arg[lid] = i2;
                }
            }
            workgroupBarrier();
        }
        if pg_acc_is_max(a) {
            acc[a] = red_max[0];
            arg[a] = red_arg[0];
        } else {
            acc[a] = red_sum[0];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = linear_group(wid, nwg);
    if r >= p.rows {
        return;
    }
    let xb = p.x_base + r * STRIDE;
    pg_accumulate(xb, lid, WG);
    group_reduce(lid);
    if lid == 0u {
        finish_point(xb, r);
    }
}
