/*
 * kernels/cuda/rmsnorm.cu — RMSNorm, one block per row. y and dx move the row
 * in 16-byte vectors (8 bf16 or 4 floats) when dim allows and the pointers are
 * 16-byte aligned, 256 threads a row (fewer for short rows), a thread's first
 * RMS_K vectors kept in registers between the row sum and the write; else
 * scalars, up to 1024 threads. The row sum is block_sum of per-thread partials
 * in a fixed order, so the same inputs give the same bits. dw without atomics, so
 * the same inputs give the same bits: rmsnorm_dw_part_k writes one fp32
 * partial row per slice of rows (cuda_rmsnorm_slices in kernels.h: one per
 * CUDA_RMS_SLICE_ROWS rows, at most CUDA_RMS_SLICES) into the caller's scratch, then rmsnorm_dw_sum_k sums the slices in order, in fp64,
 * and adds the sum to dw.
 */
#include "cuda/common.cuh"

/* A row's vectors j = threadIdx.x + k * blockDim.x: the first K a thread takes stay in registers between
 * the sum and the write pass, any further ones are loaded again. */
template <typename A, int V, int K>
__global__ void __launch_bounds__(V > 1 ? 256 : 1024) rmsnorm_fwd_k(A *y, float *rstd, const A *x, const A *w, int dim, float eps) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const A *xr = x + row * dim;
    A *yr = y + row * dim;
    int nv = dim / V, bd = blockDim.x, tid = threadIdx.x;
    actv<A, V> xs[K];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++)
        if (tid + k * bd < nv) {
            xs[k] = ldv<V>(xr, (int64_t)(tid + k * bd) * V);
#pragma unroll
            for (int e = 0; e < V; e++) { float v = tof(xs[k].v[e]); ss += v * v; }
        }
    for (int j = tid + K * bd; j < nv; j += bd) {
        actv<A, V> a = ldv<V>(xr, (int64_t)j * V);
#pragma unroll
        for (int e = 0; e < V; e++) { float v = tof(a.v[e]); ss += v * v; }
    }
    ss = block_sum(ss, sh);
    float r = rsqrtf(ss / dim + eps);
    if (tid == 0) rstd[row] = r;
#pragma unroll
    for (int k = 0; k < K; k++)
        if (tid + k * bd < nv) {
            int j = tid + k * bd;
            actv<A, V> wv = ldv<V>(w, (int64_t)j * V), o;
#pragma unroll
            for (int e = 0; e < V; e++) setf(o.v[e], tof(xs[k].v[e]) * r * tof(wv.v[e]));
            stv<V>(yr, (int64_t)j * V, o);
        }
    for (int j = tid + K * bd; j < nv; j += bd) {
        actv<A, V> a = ldv<V>(xr, (int64_t)j * V), wv = ldv<V>(w, (int64_t)j * V), o;
#pragma unroll
        for (int e = 0; e < V; e++) setf(o.v[e], tof(a.v[e]) * r * tof(wv.v[e]));
        stv<V>(yr, (int64_t)j * V, o);
    }
}

template <typename A, int V, int K>
__global__ void __launch_bounds__(V > 1 ? 256 : 1024) rmsnorm_dx_k(A *dx, const A *dy, const A *x, const A *w, const float *rstd,
                                                     int dim) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const A *xr = x + row * dim, *gr = dy + row * dim;
    A *dr = dx + row * dim;
    int nv = dim / V, bd = blockDim.x, tid = threadIdx.x;
    actv<A, V> gs[K], ws[K], xs[K];
    float c = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++)
        if (tid + k * bd < nv) {
            int64_t j = (int64_t)(tid + k * bd) * V;
            gs[k] = ldv<V>(gr, j), ws[k] = ldv<V>(w, j), xs[k] = ldv<V>(xr, j);
#pragma unroll
            for (int e = 0; e < V; e++) c += tof(gs[k].v[e]) * tof(ws[k].v[e]) * tof(xs[k].v[e]);
        }
    for (int j = tid + K * bd; j < nv; j += bd) {
        actv<A, V> g = ldv<V>(gr, (int64_t)j * V), wv = ldv<V>(w, (int64_t)j * V), a = ldv<V>(xr, (int64_t)j * V);
#pragma unroll
        for (int e = 0; e < V; e++) c += tof(g.v[e]) * tof(wv.v[e]) * tof(a.v[e]);
    }
    c = block_sum(c, sh);
    float r = rstd[row], k = c * r * r * r / dim;
#pragma unroll
    for (int q = 0; q < K; q++)
        if (tid + q * bd < nv) {
            int64_t j = (int64_t)(tid + q * bd) * V;
            actv<A, V> d = ldv<V>(dr, j);
#pragma unroll
            for (int e = 0; e < V; e++)
                setf(d.v[e], tof(d.v[e]) + r * tof(ws[q].v[e]) * tof(gs[q].v[e]) - k * tof(xs[q].v[e]));
            stv<V>(dr, j, d);
        }
    for (int jv = tid + K * bd; jv < nv; jv += bd) {
        int64_t j = (int64_t)jv * V;
        actv<A, V> d = ldv<V>(dr, j), g = ldv<V>(gr, j), wv = ldv<V>(w, j), a = ldv<V>(xr, j);
#pragma unroll
        for (int e = 0; e < V; e++) setf(d.v[e], tof(d.v[e]) + r * tof(wv.v[e]) * tof(g.v[e]) - k * tof(a.v[e]));
        stv<V>(dr, j, d);
    }
}

/* grid (column blocks, slices): each thread sums its column over a slice of rows, in order. */
template <typename A>
__global__ void rmsnorm_dw_part_k(float *part /* (slices, dim) */, const A *dy, const A *x, const float *rstd,
                                  int64_t n, int dim, int64_t rows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < n ? r0 + rows : n;
    float acc = 0.0f;
#pragma unroll 4
    for (int64_t r = r0; r < r1; r++) acc += ld(dy, r * dim + c) * ld(x, r * dim + c) * rstd[r];
    part[(int64_t)blockIdx.y * dim + c] = acc;
}

__global__ void rmsnorm_dw_sum_k(float *dw, const float *part, int slices, int dim) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    double acc = 0.0;
    for (int k = 0; k < slices; k++) acc += part[(int64_t)k * dim + c];
    dw[c] += (float)acc;
}

/* Threads per row for nv vectors: 256 at most for 16-byte vectors, 1024 for scalars. */
static int row_threads(int nv, int v) {
    int cap = v > 1 ? 256 : 1024;
    return nv >= cap ? cap : nv <= 32 ? 32 : (nv + 31) / 32 * 32;
}
#define RMS_K 2 /* vectors a thread keeps in registers */

extern "C" int cuda_rmsnorm_fwd(ms_cuda_stream s, int bf16f, void *y, float *rstd, const void *x, const void *w,
                                int64_t n, int dim, float eps) {
    if (n == 0) return 0;
    ACT_DISPATCH(bf16f, {
        constexpr int W = VW<A>::n;
        if (dim % W == 0 && aligned_to(16, y, x, w))
            rmsnorm_fwd_k<A, W, RMS_K><<<(unsigned)n, row_threads(dim / W, W), 0, s>>>((A *)y, rstd, (const A *)x,
                                                                                      (const A *)w, dim, eps);
        else
            rmsnorm_fwd_k<A, 1, RMS_K><<<(unsigned)n, row_threads(dim, 1), 0, s>>>((A *)y, rstd, (const A *)x,
                                                                                  (const A *)w, dim, eps);
    });
    return launched();
}

extern "C" int cuda_rmsnorm_bwd(ms_cuda_stream s, int bf16f, void *dx, float *dw, const void *dy, const void *x,
                                const void *w, const float *rstd, int64_t n, int dim, void *scratch) {
    if (n == 0 || dim == 0) return 0;
    if (!scratch) return (int)cudaErrorInvalidValue;
    int64_t slices = cuda_rmsnorm_slices(n), rows = (n + slices - 1) / slices;
    float *part = (float *)scratch;
    dim3 g((dim + 127) / 128, (unsigned)slices);
    ACT_DISPATCH(bf16f, {
        constexpr int W = VW<A>::n;
        if (dim % W == 0 && aligned_to(16, dx, dy, x, w))
            rmsnorm_dx_k<A, W, RMS_K><<<(unsigned)n, row_threads(dim / W, W), 0, s>>>(
                (A *)dx, (const A *)dy, (const A *)x, (const A *)w, rstd, dim);
        else
            rmsnorm_dx_k<A, 1, RMS_K><<<(unsigned)n, row_threads(dim, 1), 0, s>>>(
                (A *)dx, (const A *)dy, (const A *)x, (const A *)w, rstd, dim);
        rmsnorm_dw_part_k<A><<<g, 128, 0, s>>>(part, (const A *)dy, (const A *)x, rstd, n, dim, rows);
    });
    rmsnorm_dw_sum_k<<<(dim + 127) / 128, 128, 0, s>>>(dw, part, (int)slices, dim);
    return launched();
}
