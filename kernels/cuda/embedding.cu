/* kernels/cuda/embedding.cu — token embedding gather and its scatter-add backward. */
#include "cuda/common.cuh"

template <typename A>
__global__ void embedding_fwd_k(A *y, const int32_t *tokens, const A *table, int64_t n, int dim) {
    int64_t total = n * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / dim, c = i % dim;
        y[i] = table[(int64_t)tokens[r] * dim + c];
    }
}

template <typename A>
__global__ void embedding_bwd_k(float *dtable, const A *dy, const int32_t *tokens, int64_t n, int dim) {
    int64_t total = n * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / dim, c = i % dim;
        atomicAdd(dtable + (int64_t)tokens[r] * dim + c, ld(dy, i));
    }
}

extern "C" int cuda_embedding_fwd(ms_cuda_stream s, int bf16f, void *y, const int32_t *tokens, const void *table,
                                  int64_t n, int dim) {
    ACT_DISPATCH(bf16f, embedding_fwd_k<A><<<blocks_for(n * dim, 256), 256, 0, s>>>((A *)y, tokens, (const A *)table, n, dim));
    return launched();
}

extern "C" int cuda_embedding_bwd(ms_cuda_stream s, int bf16f, float *dtable, const void *dy, const int32_t *tokens,
                                  int64_t n, int dim) {
    ACT_DISPATCH(bf16f, embedding_bwd_k<A><<<blocks_for(n * dim, 256), 256, 0, s>>>(dtable, (const A *)dy, tokens, n, dim));
    return launched();
}
