/* spec/c/kernels_fd.c — see kernels_fd.h. */
#include "kernels_fd.h"
#include "check.h"

float *kt_rand(long n, unsigned seed, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    fill_random(x, n, seed, scale);
    return x;
}

float *kt_fill(long n, float value) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = value;
    return x;
}

double *kt_to_double(const float *x, long n) {
    double *y = malloc(sizeof(double) * (n ? n : 1));
    for (long i = 0; i < n; i++) y[i] = x[i];
    return y;
}

double *kt_zeros(long n) { return calloc(n ? n : 1, sizeof(double)); }

double kt_dot(const double *a, const double *b, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

float *kt_copy(const float *x, long n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}

double *kt_plus(const float *base, const double *g, long n) {
    double *y = kt_to_double(base, n);
    for (long i = 0; i < n; i++) y[i] += g[i];
    return y;
}

void kt_fd_grad(double *grad, double *p, long n, kt_loss loss, void *ctx) {
    for (long i = 0; i < n; i++) {
        double saved = p[i];
        p[i] = saved + KT_EPS;
        double lp = loss(ctx);
        p[i] = saved - KT_EPS;
        double lm = loss(ctx);
        p[i] = saved;
        grad[i] = (lp - lm) / (2 * KT_EPS);
    }
}

uint32_t kt_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

float kt_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
