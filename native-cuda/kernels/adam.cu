// adam.cu: the fused Adam update, which also zeroes the gradient so that the next step can accumulate
// into it without a separate memset pass.
//
// One pass reads params, grad, m and v and writes all four: at d = 10^6 that is 128M parameters and the
// pass is bound by memory bandwidth, so everything a step needs is done while the values are in registers.
// one_minus_beta1/2 and the bias corrections c1 = 1 − β1^t, c2 = 1 − β2^t are computed on the host in f64.
extern "C" __global__ void adam(float* __restrict__ params, float* __restrict__ grad, float* __restrict__ m,
                                float* __restrict__ v, u64 len, float lr, float beta1, float beta2,
                                float one_minus_beta1, float one_minus_beta2, float c1, float c2, float eps) {
    for (u64 i = global_index(); i < len; i += grid_stride()) {
        const float g = grad[i];
        const float mi = beta1 * m[i] + one_minus_beta1 * g;
        const float vi = beta2 * v[i] + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        params[i] -= lr * (mi / c1) / (sqrtf(vi / c2) + eps);
        grad[i] = 0.0f;
    }
}
