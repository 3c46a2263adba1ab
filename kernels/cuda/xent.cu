/* kernels/cuda/xent.cu — per-row softmax cross-entropy of fp32 logits and the
 * logit gradient in place (one block per row). Two reads of a row: the maximum
 * and the sum of exponentials together (online: the sum is rescaled when the
 * maximum grows), then the gradient; V logits a thread at a time (4: 16-byte
 * loads, when rows are 16-byte aligned). Loss per row in double; the caller
 * sums rows in a fixed order. */
#include "cuda/common.cuh"

/* (m, s) of a set of logits: its maximum and the sum of exp(z - m) */
struct msum { float m, s; };

__device__ __forceinline__ float rescale(float m, float to) { return m == -INFINITY ? 0.0f : expf(m - to); }

__device__ __forceinline__ msum merge(msum a, msum b) {
    float m = fmaxf(a.m, b.m);
    return {m, a.s * rescale(a.m, m) + b.s * rescale(b.m, m)};
}

template <int V> __device__ __forceinline__ msum row_msum(const float *z, int vocab) {
    msum t = {-INFINITY, 0.0f};
    for (int j = threadIdx.x * V; j < vocab; j += blockDim.x * V) {
        float x[V];
        if (V == 4) *(float4 *)x = *(const float4 *)(z + j);
        else x[0] = z[j];
        float m = x[0];
        for (int i = 1; i < V; i++) m = fmaxf(m, x[i]);
        float s = 0.0f;
        if (m > t.m) { s = t.s * rescale(t.m, m); t.m = m; } else s = t.s;
        for (int i = 0; i < V; i++) s += expf(x[i] - t.m);
        t.s = s;
    }
    return t;
}

__device__ __forceinline__ msum warp_msum(msum t) {
    for (int o = 16; o > 0; o >>= 1)
        t = merge(t, {__shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o)});
    return t;
}

/* over the block (up to 1024 threads), the result in every thread */
__device__ __forceinline__ msum block_msum(msum t, msum *sh /* 32 */) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    t = warp_msum(t);
    if (lane == 0) sh[w] = t;
    __syncthreads();
    return warp_msum(lane < nw ? sh[lane] : msum{-INFINITY, 0.0f});
}

template <int V>
__global__ void xent_rows_k(float *logits, double *loss, const int32_t *targets, int vocab, int64_t ld_f, int grad,
                            int bf16_grad, float grad_scale) {
    __shared__ msum sh[32];
    int row = blockIdx.x, target = targets[row];
    float *z = logits + (int64_t)row * ld_f;
    float m = 0.0f, inv = 0.0f;
    if (target < 0) { /* an ignored row: its loss and gradient are zero */
        if (threadIdx.x == 0) loss[row] = 0.0;
    } else {
        msum t = block_msum(row_msum<V>(z, vocab), sh);
        m = t.m;
        inv = 1.0f / t.s;
        if (threadIdx.x == 0) loss[row] = (double)m + log((double)t.s) - (double)z[target];
    }
    if (!grad) return;
    __syncthreads(); /* z[target] is read before any gradient overwrites it */
    /* in increasing chunks of blockDim * V: read a chunk, then write it; a bf16
     * write of element j lands on fp32 element j/2, already read */
    for (int c0 = 0; c0 < vocab; c0 += blockDim.x * V) {
        int j = c0 + threadIdx.x * V;
        float g[V];
        if (j < vocab) {
            float x[V];
            if (V == 4) *(float4 *)x = *(const float4 *)(z + j);
            else x[0] = z[j];
            for (int i = 0; i < V; i++)
                g[i] = target < 0 ? 0.0f : (expf(x[i] - m) * inv - (j + i == target ? 1.0f : 0.0f)) * grad_scale;
        }
        if (bf16_grad) __syncthreads();
        if (j < vocab) {
            if (!bf16_grad) {
                if (V == 4) *(float4 *)(z + j) = *(float4 *)g;
                else z[j] = g[0];
            } else if (V == 4) {
                __nv_bfloat162 lo = __floats2bfloat162_rn(g[0], g[1]), hi = __floats2bfloat162_rn(g[2], g[3]);
                uint2 pk = {*(uint32_t *)&lo, *(uint32_t *)&hi};
                *(uint2 *)((bf16 *)z + j) = pk;
            } else {
                ((bf16 *)z)[j] = __float2bfloat16_rn(g[0]);
            }
        }
    }
}

extern "C" int cuda_xent_rows(ms_cuda_stream s, float *logits, double *loss, const int32_t *targets, int rows,
                              int vocab, int grad, int bf16_grad, float grad_scale) {
    if (rows == 0) return 0;
    if (vocab % 4 == 0 && aligned_to(16, logits))
        xent_rows_k<4><<<rows, 1024, 0, s>>>(logits, loss, targets, vocab, vocab, grad, bf16_grad, grad_scale);
    else
        xent_rows_k<1><<<rows, 1024, 0, s>>>(logits, loss, targets, vocab, vocab, grad, bf16_grad, grad_scale);
    return launched();
}
