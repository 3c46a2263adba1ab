/*
 * kernels/cpu/rmsnorm.c — RMSNorm, y = x * rstd * w with
 * rstd = 1 / sqrt(mean(x^2) + eps), the mean accumulated in double.
 *
 * Backward per row, with c = sum_k(dy_k w_k x_k):
 *   dx_j += rstd * w_j * dy_j - rstd^3 * x_j * c / dim
 *   dw_j += sum over rows of dy_j * x_j * rstd
 * dx runs in parallel over rows; dw (summed in double) in parallel over column
 * blocks, each walking rows in order, so both are deterministic.
 */
#include "cpu/kernels.h"
#include <math.h>

#define COLS 16  /* columns per dw work item */

void cpu_rmsnorm_fwd(float *y,            /* (n, dim) = */
                     float *rstd,         /* (n) = 1/sqrt(mean(x^2)+eps) */
                     const float *x,      /* (n, dim) */
                     const float *w,      /* (dim) */
                     int64_t n, int dim, float eps) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;  /* (dim) */
        float *yi = y + i * dim;        /* (dim) */
        double ss = 0.0;
        for (int j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / dim + eps));
        rstd[i] = r;
        for (int j = 0; j < dim; j++) yi[j] = xi[j] * r * w[j];
    }
}

static void rmsnorm_dx_row(float *dx, const float *dy, const float *x, const float *w,
                           float r, int dim) {
    double c = 0.0;
    for (int j = 0; j < dim; j++) c += (double)dy[j] * w[j] * x[j];
    float k = (float)(c * r * r * r / dim);
    for (int j = 0; j < dim; j++) dx[j] += r * w[j] * dy[j] - k * x[j];
}

void cpu_rmsnorm_bwd(float *dx,           /* (n, dim) += (the residual gradient is already there) */
                     float *dw,           /* (dim) += */
                     const float *dy,     /* (n, dim) */
                     const float *x,      /* (n, dim) */
                     const float *w,      /* (dim) */
                     const float *rstd,   /* (n) */
                     int64_t n, int dim) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++)
        rmsnorm_dx_row(dx + i * dim, dy + i * dim, x + i * dim, w, rstd[i], dim);

    int blocks = (dim + COLS - 1) / COLS;
#pragma omp parallel for
    for (int b = 0; b < blocks; b++) {
        int c0 = b * COLS, c1 = c0 + COLS < dim ? c0 + COLS : dim;
        double acc[COLS] = {0};
        for (int64_t i = 0; i < n; i++)
            for (int c = c0; c < c1; c++) acc[c - c0] += (double)dy[i * dim + c] * x[i * dim + c] * rstd[i];
        for (int c = c0; c < c1; c++) dw[c] += (float)acc[c - c0];
    }
}
