/*
 * spec/c/kernels_cast_test.c — bf16 rounding on known bit patterns (ties to
 * even, carries, Inf, NaN, signed zero, subnormals), the array forms, sumsq and
 * scale; and AdamW against a double reference over three steps.
 */
#include "check.h"
#include "cpu/kernels.h"
#include "kernels_fd.h"
#include <omp.h>

/* ---- bf16 rounding ------------------------------------------------------- */

TEST(kernel_bf16_round_bits) {
    static const struct { uint32_t in, want; } cases[] = {
        {0x3F800000u, 0x3F800000u},  /* 1.0 stays */
        {0x3F808000u, 0x3F800000u},  /* 1 + 2^-8: tie, 1.0 is even: down */
        {0x3F818000u, 0x3F820000u},  /* 1 + 3*2^-8: tie, 1 + 2^-7 is odd: up to 1 + 2^-6 */
        {0x3F808001u, 0x3F810000u},  /* just above the tie: up */
        {0x3F807FFFu, 0x3F800000u},  /* just below the tie: down */
        {0xBF818000u, 0xBF820000u},  /* negative tie, odd: away from zero */
        {0xBF808000u, 0xBF800000u},  /* negative tie, even: toward zero */
        {0x3FFF8000u, 0x40000000u},  /* 1.99609375 + tie, mantissa all ones: carries to 2.0 */
        {0x7F7F7FFFu, 0x7F7F0000u},  /* largest bf16 stays finite */
        {0x7F7FFFFFu, 0x7F800000u},  /* FLT_MAX rounds to Inf */
        {0x7F800000u, 0x7F800000u},  /* +Inf */
        {0xFF800000u, 0xFF800000u},  /* -Inf */
        {0x80000000u, 0x80000000u},  /* -0 */
        {0x00008000u, 0x00000000u},  /* subnormal tie, even: down to +0 */
        {0x00018000u, 0x00020000u},  /* subnormal tie, odd: up */
        {0x7FC00000u, 0x7FC00000u},  /* quiet NaN */
        {0xFFC12345u, 0xFFC10000u},  /* NaN keeps sign and top payload */
        {0x7F800001u, 0x7FC00000u},  /* signalling NaN, low payload only: stays NaN (quiet) */
        {0x7FFFFFFFu, 0x7FFF0000u},  /* NaN with all payload bits: no carry into the sign */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t got = kt_bits(cpu_bf16_round(kt_float(cases[i].in)));
        CHECK_MSG(got == cases[i].want, "bf16(0x%08X) = 0x%08X, want 0x%08X", cases[i].in, got,
                  cases[i].want);
    }
    return 0;
}

TEST(kernel_bf16_round_arrays) {
    long n = 100003;  /* the threaded path */
    float *x = kt_rand(n, 300, 1000.0f), *dst = kt_fill(n, NAN);
    cpu_copy_round_bf16(dst, x, n);
    for (long i = 0; i < n; i++) {
        CHECK(kt_bits(dst[i]) == kt_bits(cpu_bf16_round(x[i])));
        CHECK((kt_bits(dst[i]) & 0xFFFFu) == 0);
        CHECK_NEAR(dst[i], x[i], 0.0, 1.0 / 256);  /* half a bf16 ulp: 2^-9 relative */
    }
    cpu_round_bf16(x, n);
    CHECK(memcmp(x, dst, sizeof(float) * n) == 0);
    return 0;
}

/* ---- sumsq, scale -------------------------------------------------------- */

TEST(kernel_sumsq_scale) {
    long n = 100003;
    float *x = kt_rand(n, 301, 3.0f);
    double want = 0.0;
    for (long i = 0; i < n; i++) want += (double)x[i] * x[i];
    double got = cpu_sumsq(x, n);
    CHECK_NEAR(got, want, 0.0, 1e-12);
    omp_set_num_threads(1);  /* the same bits on any thread count */
    CHECK(cpu_sumsq(x, n) == got);
    omp_set_num_threads(3);
    CHECK(cpu_sumsq(x, n) == got);
    CHECK(cpu_sumsq(x, 0) == 0.0);
    CHECK(cpu_sumsq(x, 3) == (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);

    float *y = kt_copy(x, n);
    cpu_scale(y, -0.3f, n);
    for (long i = 0; i < n; i++) CHECK(y[i] == x[i] * -0.3f);
    return 0;
}

/* ---- adamw --------------------------------------------------------------- */

typedef struct { double lr, b1, b2, eps, wd, gs; } adam_hp;

/* torch.optim.AdamW: decay first, then the bias-corrected Adam update. */
static void ref_adamw(double *p, double *m, double *v, const float *g, long n, adam_hp h, int step) {
    double bc1 = 1.0 - pow(h.b1, step), bc2 = 1.0 - pow(h.b2, step);
    for (long i = 0; i < n; i++) {
        double gi = g[i] * h.gs;
        p[i] *= 1.0 - h.lr * h.wd;
        m[i] = h.b1 * m[i] + (1.0 - h.b1) * gi;
        v[i] = h.b2 * v[i] + (1.0 - h.b2) * gi * gi;
        p[i] -= h.lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + h.eps);
    }
}

TEST(kernel_adamw) {
    long n = 50;
    adam_hp h = {.lr = 1e-2, .b1 = 0.9, .b2 = 0.95, .eps = 1e-8, .wd = 0.1, .gs = 0.5};
    float *p = kt_rand(n, 310, 1.0f), *m = kt_fill(n, 0.0f), *v = kt_fill(n, 0.0f);
    double *wp = kt_to_double(p, n), *wm = kt_zeros(n), *wv = kt_zeros(n);
    for (int step = 1; step <= 3; step++) {
        float *g = kt_rand(n, 320 + step, 2.0f);
        cpu_adamw(p, m, v, g, n, (float)h.lr, (float)h.b1, (float)h.b2, (float)h.eps,
                  (float)h.wd, (float)h.gs, step);
        ref_adamw(wp, wm, wv, g, n, h, step);
        CHECK_ARRAYS("param", p, wp, n, 1e-7, 1e-6);
        CHECK_ARRAYS("m", m, wm, n, 1e-7, 1e-5);
        CHECK_ARRAYS("v", v, wv, n, 1e-9, 1e-5);
    }
    return 0;
}
