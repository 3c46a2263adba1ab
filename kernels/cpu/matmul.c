/*
 * kernels/cpu/matmul.c — the Linear layer through OpenBLAS sgemm.
 *
 * y = x W^T with W stored (out, in) like torch.nn.Linear; backward
 * dx = dy W and dW += dy^T x.
 *
 * We split the rows of the result across our OpenMP threads and give each
 * slice to single-threaded sgemm, rather than letting OpenBLAS thread itself:
 * OpenBLAS's threaded driver allocates a job table on every call, and so do
 * its small-matrix kernels (products under 10^6 multiply-adds), while a
 * training step must not allocate. Slices under that size run in a plain
 * strided loop instead. Row counts are split into calls that fit BLAS's int
 * dimensions; in and out must fit an int already.
 */
#include "cpu/kernels.h"
#include <cblas.h>
#include <omp.h>

#define MAX_ROWS ((int64_t)1 << 30)  /* rows per call */
#define SMALL 1e6                     /* multiply-adds below which a slice skips BLAS */

/* One thread: C (M, N) = A (M, K) B (K, N) + beta C, row-major, either operand transposed. */
static void gemm_slice(int ta, int tb, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                       float beta, float *c, int ldc) {
    if ((double)M * N * K > SMALL) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                    1.0f, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int64_t ai = ta ? 1 : lda, ak = ta ? lda : 1, bk = tb ? 1 : ldb, bj = tb ? ldb : 1;
    for (int i = 0; i < M; i++) {
        float *ci = c + (int64_t)i * ldc;
        for (int j = 0; j < N; j++) ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
        for (int k = 0; k < K; k++) {
            float aik = a[i * ai + k * ak];
            const float *bkp = b + k * bk;
            for (int j = 0; j < N; j++) ci[j] += aik * bkp[j * bj];
        }
    }
}

/* All threads: each takes a contiguous block of the M result rows. */
static void gemm(int ta, int tb, int64_t M, int N, int K, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc) {
    int64_t a_row = ta ? 1 : lda; /* distance between rows of op(A) */
#pragma omp parallel
    {
        int64_t parts = omp_get_num_threads(), me = omp_get_thread_num();
        int64_t r0 = M * me / parts, r1 = M * (me + 1) / parts;
        for (; r0 < r1; r0 += MAX_ROWS) {
            int rows = (int)(r1 - r0 < MAX_ROWS ? r1 - r0 : MAX_ROWS);
            gemm_slice(ta, tb, rows, N, K, a + r0 * a_row, lda, b, ldb, beta, c + r0 * ldc, ldc);
        }
    }
}

void cpu_matmul_fwd(float *y,             /* (n, out)  = or += */
                    const float *x,       /* (n, in) */
                    const float *w,       /* (out, in) */
                    int64_t n, int in, int out, int accumulate) {
    gemm(0, 1, n, out, in, x, in, w, in, accumulate ? 1.0f : 0.0f, y, out);
}

void cpu_matmul_bwd(float *dx,            /* (n, in)   = or += (accumulate_dx); NULL: skip */
                    float *dw,            /* (out, in) += */
                    const float *dy,      /* (n, out) */
                    const float *x,       /* (n, in) */
                    const float *w,       /* (out, in) */
                    int64_t n, int in, int out, int accumulate_dx) {
    if (dx) gemm(0, 0, n, in, out, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
    /* dW = dy^T x sums over all n rows: K = n must fit one call */
    for (int64_t r0 = 0; r0 < n; r0 += MAX_ROWS) {
        int rows = (int)(n - r0 < MAX_ROWS ? n - r0 : MAX_ROWS);
        gemm(1, 0, out, in, rows, dy + r0 * out, out, x + r0 * in, in, 1.0f, dw, in);
    }
}
