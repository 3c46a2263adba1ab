/*
 * kernels/cpu/cast.c — bf16 rounding and small fp32 helpers.
 *
 * bf16 is the top 16 bits of an fp32. Rounding is round-to-nearest-even on the
 * dropped 16 bits, done on the bit pattern: add 0x7FFF plus the lowest kept bit,
 * then truncate. Inf stays Inf, finite values past the largest bf16 round to Inf
 * (as IEEE rounding does), NaN stays NaN (forced quiet so no payload truncates
 * to Inf), subnormals round like any other value. Results stay stored as fp32.
 * cpu_sumsq sums in double over a fixed partition of the range, so the result
 * does not depend on the thread count.
 */
#include "cpu/kernels.h"
#include <string.h>

#define SUM_PARTS 64   /* fixed partition of cpu_sumsq: deterministic result */

float cpu_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {          /* NaN: keep it, quiet */
        u = (u | 0x00400000u) & 0xFFFF0000u;
    } else {
        u += 0x7FFFu + ((u >> 16) & 1u);
        u &= 0xFFFF0000u;
    }
    memcpy(&x, &u, sizeof x);
    return x;
}

void cpu_round_bf16(float *x /* (n) */, int64_t n) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) x[i] = cpu_bf16_round(x[i]);
}

void cpu_copy_round_bf16(float *dst /* (n) */, const float *src /* (n) */, int64_t n) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) dst[i] = cpu_bf16_round(src[i]);
}

double cpu_sumsq(const float *x /* (n) */, int64_t n) {
    double part[SUM_PARTS];
    int64_t per = (n + SUM_PARTS - 1) / SUM_PARTS;
#pragma omp parallel for
    for (int p = 0; p < SUM_PARTS; p++) {
        int64_t lo = p * per, hi = lo + per < n ? lo + per : n;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[p] = s;
    }
    double s = 0.0;
    for (int p = 0; p < SUM_PARTS; p++) s += part[p];
    return s;
}

void cpu_scale(float *x /* (n) */, float s, int64_t n) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void cpu_add(float *y, const float *x, int64_t n) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
