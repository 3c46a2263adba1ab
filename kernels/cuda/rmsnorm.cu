/* kernels/cuda/rmsnorm.cu — RMSNorm, one block per row; dw by row slices and atomics. */
#include "cuda/common.cuh"

#define ROWS_PER_SLICE 64

template <typename A>
__global__ void rmsnorm_fwd_k(A *y, float *rstd, const A *x, const A *w, int dim, float eps) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const A *xr = x + row * dim;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) { float v = ld(xr, j); ss += v * v; }
    ss = block_sum(ss, sh);
    float r = rsqrtf(ss / dim + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) st(y + row * dim, j, ld(xr, j) * r * ld(w, j));
}

template <typename A>
__global__ void rmsnorm_dx_k(A *dx, const A *dy, const A *x, const A *w, const float *rstd, int dim) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const A *xr = x + row * dim, *gr = dy + row * dim;
    float c = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) c += ld(gr, j) * ld(w, j) * ld(xr, j);
    c = block_sum(c, sh);
    float r = rstd[row], k = c * r * r * r / dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        st(dx + row * dim, j, ld(dx + row * dim, j) + r * ld(w, j) * ld(gr, j) - k * ld(xr, j));
}

/* grid (column blocks, row slices): each thread sums its column over a slice. */
template <typename A>
__global__ void rmsnorm_dw_k(float *dw, const A *dy, const A *x, const float *rstd, int64_t n, int dim) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    int64_t r0 = (int64_t)blockIdx.y * ROWS_PER_SLICE, r1 = r0 + ROWS_PER_SLICE < n ? r0 + ROWS_PER_SLICE : n;
    float acc = 0.0f;
    for (int64_t r = r0; r < r1; r++) acc += ld(dy, r * dim + c) * ld(x, r * dim + c) * rstd[r];
    atomicAdd(dw + c, acc);
}

static int row_threads(int dim) { return dim >= 1024 ? 1024 : (dim + 31) / 32 * 32; }

extern "C" int cuda_rmsnorm_fwd(ms_cuda_stream s, int bf16f, void *y, float *rstd, const void *x, const void *w,
                                int64_t n, int dim, float eps) {
    if (n == 0) return 0;
    ACT_DISPATCH(bf16f, rmsnorm_fwd_k<A><<<(unsigned)n, row_threads(dim), 0, s>>>((A *)y, rstd, (const A *)x, (const A *)w, dim, eps));
    return launched();
}

extern "C" int cuda_rmsnorm_bwd(ms_cuda_stream s, int bf16f, void *dx, float *dw, const void *dy, const void *x,
                                const void *w, const float *rstd, int64_t n, int dim) {
    if (n == 0) return 0;
    dim3 g((dim + 127) / 128, (unsigned)((n + ROWS_PER_SLICE - 1) / ROWS_PER_SLICE));
    ACT_DISPATCH(bf16f, {
        rmsnorm_dx_k<A><<<(unsigned)n, row_threads(dim), 0, s>>>((A *)dx, (const A *)dy, (const A *)x, (const A *)w, rstd, dim);
        rmsnorm_dw_k<A><<<g, 128, 0, s>>>(dw, (const A *)dy, (const A *)x, rstd, n, dim);
    });
    return launched();
}
