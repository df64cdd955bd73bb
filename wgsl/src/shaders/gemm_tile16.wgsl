// gemm_tile16.wgsl: the small tile of gemm.wgsl: 16x16 outputs per workgroup, one per invocation,
// for the thin blocks that windows of long rows produce (a 64x64 tile would mostly idle there).

const WORK: u32 = 1u;
