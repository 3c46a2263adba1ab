/*
 * kernels/cpu/matmul.c — the Linear layer through OpenBLAS sgemm.
 *
 * y = x W^T with W stored (out, in) like torch.nn.Linear; backward
 * dx = dy W and dW += dy^T x. BLAS threads itself, so these are never called
 * from inside an OpenMP parallel region. The row count n is split into slices
 * that fit BLAS's int dimensions; in and out must fit an int already.
 */
#include "cpu/kernels.h"
#include <cblas.h>

#define MAX_ROWS ((int64_t)1 << 30)  /* rows per sgemm call */

static int slice(int64_t n, int64_t r0) {
    return (int)(n - r0 < MAX_ROWS ? n - r0 : MAX_ROWS);
}

void cpu_matmul_fwd(float *y,             /* (n, out)  = or += */
                    const float *x,       /* (n, in) */
                    const float *w,       /* (out, in) */
                    int64_t n, int in, int out, int accumulate) {
    for (int64_t r0 = 0; r0 < n; r0 += MAX_ROWS)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, slice(n, r0), out, in,
                    1.0f, x + r0 * in, in, w, in,
                    accumulate ? 1.0f : 0.0f, y + r0 * out, out);
}

void cpu_matmul_bwd(float *dx,            /* (n, in)   = or += (accumulate_dx); NULL: skip */
                    float *dw,            /* (out, in) += */
                    const float *dy,      /* (n, out) */
                    const float *x,       /* (n, in) */
                    const float *w,       /* (out, in) */
                    int64_t n, int in, int out, int accumulate_dx) {
    for (int64_t r0 = 0; r0 < n; r0 += MAX_ROWS) {
        int rows = slice(n, r0);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out,
                        1.0f, dy + r0 * out, out, w, in,
                        accumulate_dx ? 1.0f : 0.0f, dx + r0 * in, in);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, rows,
                    1.0f, dy + r0 * out, out, x + r0 * in, in, 1.0f, dw, in);
    }
}
