/* kernels/cuda/common.cuh — act-type loads and stores shared by the .cu files. */
#ifndef MS_KERNELS_CUDA_COMMON_CUH
#define MS_KERNELS_CUDA_COMMON_CUH
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda/kernels.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16 *p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float *p, int64_t i, float x) { p[i] = x; }
/* round to nearest even, as cpu_bf16_round */
__device__ __forceinline__ void st(bf16 *p, int64_t i, float x) { p[i] = __float2bfloat16_rn(x); }

static inline int launched(void) { return (int)cudaGetLastError(); }

static inline unsigned blocks_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535 * 16 ? 65535 * 16 : (b < 1 ? 1 : b));
}

/* Dispatch a templated launch on the act type. */
#define ACT_DISPATCH(bf16flag, ...)                      \
    do {                                                 \
        if (bf16flag) { typedef bf16 A; __VA_ARGS__; }   \
        else { typedef float A; __VA_ARGS__; }           \
    } while (0)

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
/* Sum over a block of up to 1024 threads (blockDim.x a multiple of 32). */
__device__ __forceinline__ float block_sum(float x, float *sh /* 32 */) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    x = warp_sum(x);
    __syncthreads();
    if (lane == 0) sh[w] = x;
    __syncthreads();
    x = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(x);
}
#endif
