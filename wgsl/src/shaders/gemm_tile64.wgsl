// gemm_tile64.wgsl: the large tile of gemm.wgsl: 64x64 outputs per workgroup, 4x4 per invocation.

const WORK: u32 = 4u;
