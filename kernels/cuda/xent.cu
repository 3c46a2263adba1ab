/* kernels/cuda/xent.cu — per-row softmax cross-entropy of fp32 logits and the
 * logit gradient in place (one block per row). Loss per row in double; the
 * caller sums rows in a fixed order. */
#include "cuda/common.cuh"

__global__ void xent_rows_k(float *logits, double *loss, const int32_t *targets, int vocab, int64_t ld_f, int grad,
                            int bf16_grad, float grad_scale) {
    __shared__ float sh[32];
    __shared__ float shm;
    int row = blockIdx.x, target = targets[row];
    float *z = logits + (int64_t)row * ld_f;
    if (target < 0) {
        if (threadIdx.x == 0) loss[row] = 0.0;
        if (grad) {
            if (bf16_grad) for (int j = threadIdx.x; j < vocab; j += blockDim.x) ((bf16 *)z)[j] = __float2bfloat16_rn(0.0f);
            else for (int j = threadIdx.x; j < vocab; j += blockDim.x) z[j] = 0.0f;
        }
        return;
    }
    float m = -INFINITY;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, z[j]);
    m = warp_max(m);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x < 32) {
        float x = threadIdx.x < (blockDim.x + 31) / 32 ? sh[threadIdx.x] : -INFINITY;
        x = warp_max(x);
        if (threadIdx.x == 0) shm = x;
    }
    __syncthreads();
    m = shm;
    float sum = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(z[j] - m);
    sum = block_sum(sum, sh);
    float zt = z[target];
    if (threadIdx.x == 0) loss[row] = (double)m + log((double)sum) - (double)zt;
    if (!grad) return;
    float inv = 1.0f / sum;
    /* in increasing chunks of blockDim: read a chunk, then write it; a bf16 write of
     * element j lands on fp32 element j/2, already read */
    for (int c0 = 0; c0 < vocab; c0 += blockDim.x) {
        int j = c0 + threadIdx.x;
        float g = 0.0f;
        if (j < vocab) g = (expf(z[j] - m) * inv - (j == target ? 1.0f : 0.0f)) * grad_scale;
        __syncthreads();
        if (j < vocab) {
            if (bf16_grad) ((bf16 *)z)[j] = __float2bfloat16_rn(g);
            else z[j] = g;
        }
        __syncthreads();
    }
}

extern "C" int cuda_xent_rows(ms_cuda_stream s, float *logits, double *loss, const int32_t *targets, int rows,
                              int vocab, int grad, int bf16_grad, float grad_scale) {
    if (rows == 0) return 0;
    xent_rows_k<<<rows, 1024, 0, s>>>(logits, loss, targets, vocab, vocab, grad, bf16_grad, grad_scale);
    return launched();
}
