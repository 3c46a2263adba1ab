/*
 * spec/c/kernels_fd.h — helpers shared by the kernel specs (kernels_*_test.c):
 * random inputs, float/double conversion, and central finite differences.
 *
 * The pattern: each op has a naive double-precision reference forward, the
 * scalar loss L = sum(r * y) for a fixed random r, and its gradient by central
 * differences (step KT_EPS, in double). The float kernels are compared with
 * both. Arrays come from malloc and are not freed: each test runs in its own
 * process.
 */
#ifndef MS_SPEC_KERNELS_FD_H
#define MS_SPEC_KERNELS_FD_H
#include <stdint.h>

#define KT_EPS 1e-6               /* finite-difference step */
#define KT_FWD_ATOL 2e-6          /* float forward vs double reference */
#define KT_FWD_RTOL 2e-6
#define KT_GRAD_ATOL 2e-6         /* float backward vs finite differences */
#define KT_GRAD_RTOL 2e-5

float *kt_rand(long n, unsigned seed, float scale);  /* fill_random into a new array */
float *kt_fill(long n, float value);
double *kt_to_double(const float *x, long n);
double *kt_zeros(long n);
double kt_dot(const double *a, const double *b, long n);
float *kt_copy(const float *x, long n);
double *kt_plus(const float *base, const double *g, long n); /* base + g, new array */

/* grad[i] = dL/dp[i] by central differences; p is perturbed and restored. */
typedef double (*kt_loss)(void *ctx);
void kt_fd_grad(double *grad, double *p, long n, kt_loss loss, void *ctx);

/* The bits of a float and back. */
uint32_t kt_bits(float x);
float kt_float(uint32_t u);
#endif
