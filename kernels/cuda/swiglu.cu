/* kernels/cuda/swiglu.cu — h = silu(gate) * up and its backward, elementwise. */
#include "cuda/common.cuh"

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename A>
__global__ void swiglu_fwd_k(A *h, const A *gate, const A *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ld(gate, i);
        st(h, i, g * sigmoid(g) * ld(up, i));
    }
}

template <typename A>
__global__ void swiglu_bwd_k(A *dgate, A *dup, const A *dh, const A *gate, const A *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ld(gate, i), s = sigmoid(g), d = ld(dh, i), u = ld(up, i);
        st(dup, i, d * g * s);
        st(dgate, i, d * u * s * (1.0f + g * (1.0f - s)));
    }
}

extern "C" int cuda_swiglu_fwd(ms_cuda_stream s, int bf16f, void *h, const void *gate, const void *up, int64_t n) {
    ACT_DISPATCH(bf16f, swiglu_fwd_k<A><<<blocks_for(n, 256), 256, 0, s>>>((A *)h, (const A *)gate, (const A *)up, n));
    return launched();
}

extern "C" int cuda_swiglu_bwd(ms_cuda_stream s, int bf16f, void *dgate, void *dup, const void *dh, const void *gate,
                               const void *up, int64_t n) {
    ACT_DISPATCH(bf16f, swiglu_bwd_k<A><<<blocks_for(n, 256), 256, 0, s>>>((A *)dgate, (A *)dup, (const A *)dh,
                                                                           (const A *)gate, (const A *)up, n));
    return launched();
}
