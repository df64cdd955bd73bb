// program_series.cu: the series entry point of a generated program (`stde_cuda::codegen`), appended after
// the generated part, which defines the sizes and the functions prog_point_loops_series (every
// accumulator's series along one direction) and prog_main_series (every output's series).
//
// One thread per (point n, direction s), neighbouring threads on neighbouring points. The primal kernel
// ran first: it wrote block 0 (the primal, shared by every direction) and stored each point's
// accumulators and argmax windows in `acc`. A thread re-evaluates as series only the windows its
// direction touches (all of them for a dense direction) and writes Taylor coefficients 1..K of output j
// to block 1 + (k−1)·V + s of the jet batch: out[((1 + (k−1)·V + s)·n_points + n)·PROG_N_OUT + j].

extern "C" __global__ void prog_series(const float* __restrict__ points, const float* __restrict__ params,
                                       const float* __restrict__ acc, const u32* __restrict__ slot_index,
                                       const float* __restrict__ slot_coeff, const float* __restrict__ dense,
                                       float* __restrict__ out, u32 n_points, u32 n_dirs, u32 dense_probes) {
    const u64 total = (u64)n_points * n_dirs;
    for (u64 t = global_index(); t < total; t += grid_stride()) {
        const u64 n = t % n_points;
        const u32 s = (u32)(t / n_points);
        ProgDir dir;
        prog_load_dir(dir, s, slot_index, slot_coeff, dense, dense_probes, PROG_STRIDE);
        const float* x = points + n * PROG_STRIDE;
        double r[PROG_ACC_LEN][K + 1];
        prog_point_loops_series(dir, x, params, (const u32*)acc, n, n_points, r);
        double o[PROG_OUT_LEN][K + 1];
        prog_main_series(dir, x, params, r, o);
        for (int j = 0; j < PROG_N_OUT; ++j) {
#pragma unroll
            for (int k = 1; k <= K; ++k) {
                const u64 block = 1u + (u64)(k - 1) * n_dirs + s;
                out[(block * n_points + n) * PROG_N_OUT + j] = (float)o[j][k];
            }
        }
    }
}
