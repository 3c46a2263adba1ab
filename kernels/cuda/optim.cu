/* kernels/cuda/optim.cu — AdamW, sum of squares, the bf16 cast of the master, fp32 add:
 * memory-bound passes, four floats a thread where the arrays allow. */
#include <type_traits>

#include "cuda/common.cuh"

#define SUM_BLOCKS 256

/* Partial sums of squares: block b's threads stride over x four floats at a
 * time (a scalar head up to 16-byte alignment, then float4, then a scalar
 * tail); fixed grid and order, so deterministic. */
__global__ void sumsq_k(double *partial, const float *x, int64_t n) {
    __shared__ double sh[256];
    int64_t head = min((int64_t)(((16 - ((uintptr_t)x & 15)) & 15) / 4), n), nv = (n - head) / 4;
    int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    const float4 *x4 = reinterpret_cast<const float4 *>(x + head);
    double s = 0.0;
#pragma unroll 4
    for (int64_t i = t; i < nv; i += stride) {
        float4 a = x4[i];
        s += (double)a.x * a.x + (double)a.y * a.y + (double)a.z * a.z + (double)a.w * a.w;
    }
    if (t < head) s += (double)x[t] * x[t];
    if (t < n - head - 4 * nv) s += (double)x[head + 4 * nv + t] * x[head + 4 * nv + t];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

/* one block of 256: fixed order, deterministic; with add, out[0] + the sum */
__global__ void sum_doubles_k(double *out, const double *x, int64_t n, int add) {
    __shared__ double sh[256];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = add ? out[0] + sh[0] : sh[0];
}

extern "C" int cuda_sum_doubles(ms_cuda_stream s, double *out, const double *x, int64_t n) {
    sum_doubles_k<<<1, 256, 0, s>>>(out, x, n, 0);
    return launched();
}

extern "C" int cuda_sumsq(ms_cuda_stream s, double *partial, double *out, const float *x, int64_t n, int add) {
    sumsq_k<<<SUM_BLOCKS, 256, 0, s>>>(partial, x, n);
    int e = launched();
    if (e) return e;
    sum_doubles_k<<<1, 256, 0, s>>>(out, partial, SUM_BLOCKS, add);
    return launched();
}

/* Elementwise kernels over fp32 arrays that share their offset modulo 16
 * bytes: thread j < nv takes the four elements head + 4 j .. (float4 loads and
 * stores); the threads after them take the head (the elements before 16-byte
 * alignment) and the tail, one element each. */
struct span4 {
    int64_t head, nv, n;
    __host__ __device__ int64_t threads() const { return nv + (n - 4 * nv); }
    /* the scalar element of thread j >= nv */
    __device__ int64_t scalar(int64_t j) const { return j - nv < head ? j - nv : 4 * nv + (j - nv); }
};
static span4 span_of(const void *p, int64_t n) {
    int64_t head = ((16 - ((uintptr_t)p & 15)) & 15) / 4;
    if (head > n) head = n;
    return span4{head, (n - head) / 4, n};
}
static bool same_phase(const void *a, const void *b) { return (((uintptr_t)a ^ (uintptr_t)b) & 15) == 0; }
static unsigned blocks4(span4 sp) { return (unsigned)((sp.threads() + 255) / 256); }

struct adamw_args {
    float beta1, beta2, eps, decay, grad_scale, step_size, bc2_sqrt;
};
__device__ __forceinline__ void adamw1(float &p, float &m, float &v, float g, const adamw_args &a) {
    float gi = g * a.grad_scale;
    float mi = a.beta1 * m + (1.0f - a.beta1) * gi;
    float vi = a.beta2 * v + (1.0f - a.beta2) * gi * gi;
    m = mi;
    v = vi;
    p = p * a.decay - a.step_size * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
}

/* y (act) = x rounded, four elements a thread where x's span allows (y's
 * 8- or 16-byte stores then need y at the same element phase). */
__device__ __forceinline__ void st4(float *y, float4 x) { *reinterpret_cast<float4 *>(y) = x; }
__device__ __forceinline__ void st4(bf16 *y, float4 x) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y), hi = __floats2bfloat162_rn(x.z, x.w);
    uint2 u = {*reinterpret_cast<uint32_t *>(&lo), *reinterpret_cast<uint32_t *>(&hi)};
    *reinterpret_cast<uint2 *>(y) = u;
}

/* AdamW over a span; with Y not void, the updated parameters are also written
 * to y as the compute copy (rounded as cast_k does). */
template <typename Y>
__global__ void adamw_k(float *p, float *m, float *v, const float *g, Y *y, span4 sp, adamw_args a) {
    int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j < sp.nv) {
        int64_t i = sp.head + 4 * j;
        float4 P = *reinterpret_cast<float4 *>(p + i), M = *reinterpret_cast<float4 *>(m + i);
        float4 V = *reinterpret_cast<float4 *>(v + i), G = *reinterpret_cast<const float4 *>(g + i);
        adamw1(P.x, M.x, V.x, G.x, a);
        adamw1(P.y, M.y, V.y, G.y, a);
        adamw1(P.z, M.z, V.z, G.z, a);
        adamw1(P.w, M.w, V.w, G.w, a);
        *reinterpret_cast<float4 *>(p + i) = P;
        *reinterpret_cast<float4 *>(m + i) = M;
        *reinterpret_cast<float4 *>(v + i) = V;
        if constexpr (!std::is_void<Y>::value) st4(y + i, P);
    } else if (j < sp.threads()) {
        int64_t i = sp.scalar(j);
        adamw1(p[i], m[i], v[i], g[i], a);
        if constexpr (!std::is_void<Y>::value) st(y, i, p[i]);
    }
}

/* The same one element a thread, for arrays whose offsets differ modulo 16 bytes. */
template <typename Y>
__global__ void adamw_scalar_k(float *p, float *m, float *v, const float *g, Y *y, int64_t n, adamw_args a) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        adamw1(p[i], m[i], v[i], g[i], a);
        if constexpr (!std::is_void<Y>::value) st(y, i, p[i]);
    }
}

/* Whether act y (element size eb) can take four-element stores where span sp's vectors start. */
static bool y_fits(const void *y, span4 sp, int eb) { return (((uintptr_t)y + sp.head * eb) & (4 * eb - 1)) == 0; }

template <typename Y>
static void adamw_launch(ms_cuda_stream s, float *p, float *m, float *v, const float *g, Y *y, int64_t n,
                         adamw_args a, int eb) {
    span4 sp = span_of(p, n);
    if (same_phase(p, m) && same_phase(p, v) && same_phase(p, g) && (!y || y_fits(y, sp, eb)))
        adamw_k<Y><<<blocks4(sp), 256, 0, s>>>(p, m, v, g, y, sp, a);
    else
        adamw_scalar_k<Y><<<blocks_for(n, 256), 256, 0, s>>>(p, m, v, g, y, n, a);
}

extern "C" int cuda_adamw(ms_cuda_stream s, float *param, float *m, float *v, const float *g, int64_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay, float grad_scale, float step_size,
                          float bc2_sqrt, void *compute, int bf16f) {
    if (n == 0) return 0;
    adamw_args a = {beta1, beta2, eps, 1.0f - lr * weight_decay, grad_scale, step_size, bc2_sqrt};
    if (!compute) adamw_launch<void>(s, param, m, v, g, NULL, n, a, 0);
    else if (bf16f) adamw_launch(s, param, m, v, g, (bf16 *)compute, n, a, 2);
    else adamw_launch(s, param, m, v, g, (float *)compute, n, a, 4);
    return launched();
}

template <typename A>
__global__ void cast_k(A *y, const float *x, span4 sp) {
    int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j < sp.nv) {
        int64_t i = sp.head + 4 * j;
        st4(y + i, *reinterpret_cast<const float4 *>(x + i));
    } else if (j < sp.threads()) {
        int64_t i = sp.scalar(j);
        st(y, i, x[i]);
    }
}

template <typename A>
__global__ void cast_scalar_k(A *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(y, i, x[i]);
}

extern "C" int cuda_cast_params(ms_cuda_stream s, int bf16f, void *params, const float *master, int64_t n) {
    if (n == 0) return 0;
    span4 sp = span_of(master, n);
    if (y_fits(params, sp, bf16f ? 2 : 4))
        ACT_DISPATCH(bf16f, cast_k<A><<<blocks4(sp), 256, 0, s>>>((A *)params, master, sp));
    else
        ACT_DISPATCH(bf16f, cast_scalar_k<A><<<blocks_for(n, 256), 256, 0, s>>>((A *)params, master, n));
    return launched();
}

__global__ void add_k(float *y, const float *x, span4 sp) {
    int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j < sp.nv) {
        int64_t i = sp.head + 4 * j;
        float4 a = *reinterpret_cast<float4 *>(y + i), b = *reinterpret_cast<const float4 *>(x + i);
        *reinterpret_cast<float4 *>(y + i) = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    } else if (j < sp.threads()) {
        int64_t i = sp.scalar(j);
        y[i] += x[i];
    }
}

__global__ void add_scalar_k(float *y, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

extern "C" int cuda_add(ms_cuda_stream s, float *y, const float *x, int64_t n) {
    if (n == 0) return 0;
    span4 sp = span_of(y, n);
    if (same_phase(y, x)) add_k<<<blocks4(sp), 256, 0, s>>>(y, x, sp);
    else add_scalar_k<<<blocks_for(n, 256), 256, 0, s>>>(y, x, n);
    return launched();
}
