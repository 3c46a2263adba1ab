/* kernels/cuda/rope.cu — rotary embedding in place, Hugging Face rotate_half layout. */
#include "cuda/common.cuh"

template <typename A>
__global__ void rope_k(A *x, const float *cs, int64_t B, int T, int heads, int hd, float sign) {
    int half = hd / 2;
    int64_t total = B * T * heads * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int p = (int)(i % half);
        int64_t bth = i / half, bt = bth / heads;
        int t = (int)(bt % T);
        float co = cs[((int64_t)t * half + p) * 2], si = sign * cs[((int64_t)t * half + p) * 2 + 1];
        A *xh = x + bth * hd;
        float a = ld(xh, p), b = ld(xh, p + half);
        st(xh, p, a * co - b * si);
        st(xh, p + half, b * co + a * si);
    }
}

extern "C" int cuda_rope(ms_cuda_stream s, int bf16f, void *x, const float *cs, int64_t B, int T, int heads, int hd,
                         float sign) {
    ACT_DISPATCH(bf16f, rope_k<A><<<blocks_for(B * T * heads * (hd / 2), 256), 256, 0, s>>>((A *)x, cs, B, T, heads, hd, sign));
    return launched();
}
