/*
 * kernels/cuda/rmsnorm.cu — RMSNorm, one block per row. dw without atomics, so
 * the same inputs give the same bits: rmsnorm_dw_part_k writes one fp32
 * partial row per slice of rows (cuda_rmsnorm_slices in kernels.h: one per
 * CUDA_RMS_SLICE_ROWS rows, at most CUDA_RMS_SLICES) into the caller's scratch, then rmsnorm_dw_sum_k sums the slices in order, in fp64,
 * and adds the sum to dw.
 */
#include "cuda/common.cuh"

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

static int row_threads(int dim) { return dim >= 1024 ? 1024 : (dim + 31) / 32 * 32; }

extern "C" int cuda_rmsnorm_fwd(ms_cuda_stream s, int bf16f, void *y, float *rstd, const void *x, const void *w,
                                int64_t n, int dim, float eps) {
    if (n == 0) return 0;
    ACT_DISPATCH(bf16f, rmsnorm_fwd_k<A><<<(unsigned)n, row_threads(dim), 0, s>>>((A *)y, rstd, (const A *)x, (const A *)w, dim, eps));
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
        rmsnorm_dx_k<A><<<(unsigned)n, row_threads(dim), 0, s>>>((A *)dx, (const A *)dy, (const A *)x, (const A *)w, rstd, dim);
        rmsnorm_dw_part_k<A><<<g, 128, 0, s>>>(part, (const A *)dy, (const A *)x, rstd, n, dim, rows);
    });
    rmsnorm_dw_sum_k<<<(dim + 127) / 128, 128, 0, s>>>(dw, part, (int)slices, dim);
    return launched();
}
