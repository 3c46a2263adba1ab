/* kernels/cuda/optim.cu — AdamW, sum of squares, the bf16 cast of the master, fp32 add. */
#include "cuda/common.cuh"

#define SUM_BLOCKS 256

__global__ void sumsq_k(double *partial, const float *x, int64_t n) {
    __shared__ double sh[256];
    double s = 0.0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

/* one block of 256: fixed order, deterministic */
__global__ void sum_doubles_k(double *out, const double *x, int64_t n) {
    __shared__ double sh[256];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = sh[0];
}

extern "C" int cuda_sum_doubles(ms_cuda_stream s, double *out, const double *x, int64_t n) {
    sum_doubles_k<<<1, 256, 0, s>>>(out, x, n);
    return launched();
}

extern "C" int cuda_sumsq(ms_cuda_stream s, double *partial, double *out, const float *x, int64_t n) {
    sumsq_k<<<SUM_BLOCKS, 256, 0, s>>>(partial, x, n);
    int e = launched();
    if (e) return e;
    return cuda_sum_doubles(s, out, partial, SUM_BLOCKS);
}

__global__ void adamw_k(float *p, float *m, float *v, const float *g, int64_t n, float beta1, float beta2, float eps,
                        float decay, float grad_scale, float step_size, float bc2_sqrt) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float gi = g[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

extern "C" int cuda_adamw(ms_cuda_stream s, float *param, float *m, float *v, const float *g, int64_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay, float grad_scale, float step_size,
                          float bc2_sqrt) {
    adamw_k<<<blocks_for(n, 256), 256, 0, s>>>(param, m, v, g, n, beta1, beta2, eps, 1.0f - lr * weight_decay,
                                               grad_scale, step_size, bc2_sqrt);
    return launched();
}

template <typename A>
__global__ void cast_k(A *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, i, x[i]);
}

extern "C" int cuda_cast_params(ms_cuda_stream s, int bf16f, void *params, const float *master, int64_t n) {
    ACT_DISPATCH(bf16f, cast_k<A><<<blocks_for(n, 256), 256, 0, s>>>((A *)params, master, n));
    return launched();
}

__global__ void add_k(float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

extern "C" int cuda_add(ms_cuda_stream s, float *y, const float *x, int64_t n) {
    add_k<<<blocks_for(n, 256), 256, 0, s>>>(y, x, n);
    return launched();
}
