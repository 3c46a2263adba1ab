/* kernels/cuda/common.cuh — act-type loads and stores (scalar and 16-byte vectors) shared by the .cu files. */
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

/* Vectors of act values: VW<A> elements are 16 bytes (8 bf16, 4 floats). actv<A, V> is V of them moved by one
 * load or store, so p + i must be aligned to V * sizeof(A); V = 1 is the scalar case. */
template <typename A> struct VW { enum { n = 16 / (int)sizeof(A) }; };
template <typename A, int V> struct alignas(sizeof(A) * V) actv { A v[V]; };
template <int V, typename A> __device__ __forceinline__ actv<A, V> ldv(const A *p, int64_t i) {
    return *(const actv<A, V> *)(p + i);
}
template <int V, typename A> __device__ __forceinline__ void stv(A *p, int64_t i, const actv<A, V> &x) {
    *(actv<A, V> *)(p + i) = x;
}
__device__ __forceinline__ float tof(float x) { return x; }
__device__ __forceinline__ float tof(bf16 x) { return __bfloat162float(x); }
/* the same rounding as st() */
__device__ __forceinline__ void setf(float &d, float x) { d = x; }
__device__ __forceinline__ void setf(bf16 &d, float x) { d = __float2bfloat16_rn(x); }
/* Whether every pointer given is aligned to `bytes` (a power of two). */
static inline bool aligned_to(int bytes, const void *a, const void *b = nullptr, const void *c = nullptr,
                              const void *d = nullptr, const void *e = nullptr) {
    uintptr_t bits = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d | (uintptr_t)e;
    return (bits & (uintptr_t)(bytes - 1)) == 0;
}

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
