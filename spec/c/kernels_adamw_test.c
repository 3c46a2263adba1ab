/*
 * spec/c/kernels_adamw_test.c — the fast host optimizer (kernels/cpu/adamw_simd.c)
 * on every ISA path this CPU has, forced in turn: AdamW equal bit for bit to
 * the reference cpu_adamw (and close to a double reference) for fp32 and bf16
 * gradients, lengths off the vector width and past one thread's chunk, step 1
 * and 1000, with and without weight decay; the bf16 output equal to
 * cpu_bf16_round of the result, on the edge patterns too; from a second copy
 * of the state (the source untouched); calls from another
 * pthread; sums of squares against double, the same bits on every path and
 * thread count.
 */
#include "check.h"
#include "cpu/kernels.h"
#include "kernels_fd.h"
#include <pthread.h>

static uint16_t top16(float x) { return (uint16_t)(kt_bits(x) >> 16); }

static uint16_t *to_bf16(const float *x, long n) { /* bit patterns, rounded as the engine does */
    uint16_t *h = malloc(2 * (n ? n : 1));
    for (long i = 0; i < n; i++) h[i] = top16(cpu_bf16_round(x[i]));
    return h;
}

static float *from_bf16(const uint16_t *h, long n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) x[i] = kt_float((uint32_t)h[i] << 16);
    return x;
}

static int same_bits(const char *what, const float *a, const float *b, long n) {
    for (long i = 0; i < n; i++)
        if (kt_bits(a[i]) != kt_bits(b[i])) {
            fprintf(stderr, "%s[%ld] = %.9g (0x%08X), reference %.9g (0x%08X)\n", what, i, a[i], kt_bits(a[i]),
                    b[i], kt_bits(b[i]));
            return 0;
        }
    return 1;
}

/* the ISA paths this CPU can run, widest first */
static int n_isas(cpu_isa *isa) {
    int k = 0;
    for (int i = cpu_isa_best(); i >= CPU_ISA_BASE; i--) isa[k++] = (cpu_isa)i;
    return k;
}

typedef struct { long n; int bf16, out, step, threads; float wd; } acase;

/* one case on the forced path: three steps from fresh state, each compared */
static int run_case(acase c, unsigned seed) {
    cpu_adam_hp hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = c.wd,
                      .grad_scale = 0.7f};
    long n = c.n;
    float *p = kt_rand(n, seed, 1.0f), *m = kt_rand(n, seed + 1, 0.01f), *v = kt_rand(n, seed + 2, 1e-4f);
    for (long i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *rp = kt_copy(p, n), *rm = kt_copy(m, n), *rv = kt_copy(v, n);
    double *wp = kt_to_double(p, n), *wm = kt_to_double(m, n), *wv = kt_to_double(v, n);
    uint16_t *out = malloc(2 * (n ? n : 1));
    for (int s = 0; s < 3; s++) {
        hp.step = c.step + s;
        float *g = kt_rand(n, seed + 10 + s, 2.0f);
        uint16_t *g16 = to_bf16(g, n);
        float *gref = c.bf16 ? from_bf16(g16, n) : g; /* the values the bf16 gradient holds */
        memset(out, 0xAB, 2 * (n ? n : 1));
        cpu_adamw_fast(p, m, v, c.bf16 ? (const void *)g16 : g, c.bf16, c.out ? out : NULL, n, &hp, c.threads);
        cpu_adamw(rp, rm, rv, gref, n, hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, hp.grad_scale, hp.step);
        CHECK(same_bits("param", p, rp, n) && same_bits("m", m, rm, n) && same_bits("v", v, rv, n));
        for (long i = 0; i < n; i++) {
            if (c.out) CHECK_MSG(out[i] == top16(cpu_bf16_round(p[i])), "out[%ld] = 0x%04X for %.9g", i, out[i], p[i]);
            else CHECK(out[i] == 0xABAB); /* no output asked: none written */
        }
        /* and torch's math in double (decay, moments, bias-corrected update) */
        double bc1 = 1.0 - pow(0.9, hp.step), bc2 = 1.0 - pow(0.95, hp.step);
        for (long i = 0; i < n; i++) {
            double gi = (double)gref[i] * 0.7;
            wp[i] *= 1.0 - 1e-2 * c.wd;
            wm[i] = 0.9 * wm[i] + 0.1 * gi;
            wv[i] = 0.95 * wv[i] + 0.05 * gi * gi;
            wp[i] -= 1e-2 * (wm[i] / bc1) / (sqrt(wv[i] / bc2) + 1e-8);
        }
        CHECK_ARRAYS("param vs double", p, wp, n, 1e-6, 1e-5);
        CHECK_ARRAYS("m vs double", m, wm, n, 1e-7, 1e-5);
    }
    return 0;
}

TEST(kernel_adamw_fast_matches_reference) {
    static const long sizes[] = {1, 3, 15, 16, 17, 31, 33, 1000, 16384 * 3 + 5};
    cpu_isa isa[3];
    int k = n_isas(isa);
    unsigned seed = 500;
    for (int a = 0; a < k; a++) {
        CHECK(cpu_isa_force(isa[a]) == 0 && cpu_isa_active() == isa[a]);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int variant = 0; variant < 8; variant++) {
                acase c = {.n = sizes[s], .bf16 = variant & 1, .out = (variant >> 1) & 1,
                           .step = variant & 4 ? 1000 : 1, .wd = variant & 2 ? 0.1f : 0.0f,
                           .threads = (int)(s % 3)};
                if (run_case(c, seed += 20)) {
                    fprintf(stderr, "  path %s, n %ld, %s grads, out %d, step %d, wd %g, threads %d\n",
                            cpu_isa_name(isa[a]), c.n, c.bf16 ? "bf16" : "fp32", c.out, c.step, c.wd, c.threads);
                    return 1;
                }
            }
    }
    return 0;
}

/* lr = 0 leaves each weight as it is (p * 1 - 0 * ...), so the bf16 output is
 * the rounding of chosen bit patterns: ties, carries, Inf, NaN, subnormals;
 * and a NaN gradient makes a NaN weight whose output stays NaN */
TEST(kernel_adamw_fast_bf16_output_edges) {
    static const uint32_t pat[] = {0x3F800000u, 0x3F808000u, 0x3F818000u, 0x3F808001u, 0x3F807FFFu,
                                   0xBF818000u, 0xBF808000u, 0x3FFF8000u, 0x7F7F7FFFu, 0x7F7FFFFFu,
                                   0x7F800000u, 0xFF800000u, 0x80000000u, 0x00008000u, 0x00018000u,
                                   0x7FC00000u, 0xFFC12345u, 0x7F800001u, 0x7FFFFFFFu, 0x00000000u};
    const int np = sizeof pat / sizeof pat[0];
    long n = 16 * 7 + 9; /* patterns at every lane, in the vector part and the tail */
    cpu_isa isa[3];
    int k = n_isas(isa);
    for (int a = 0; a < k; a++) {
        cpu_isa_force(isa[a]);
        float *p = malloc(sizeof(float) * n), *m = kt_fill(n, 0.0f), *v = kt_fill(n, 0.0f);
        float *g = kt_rand(n, 600, 1.0f);
        for (long i = 0; i < n; i++) g[i] = fabsf(g[i]); /* m >= 0: -0 - 0 stays -0 */
        for (long i = 0; i < n; i++) p[i] = kt_float(pat[(i * 7 + a) % np]);
        float *before = kt_copy(p, n);
        uint16_t *out = malloc(2 * n);
        cpu_adam_hp hp = {.lr = 0.0f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                          .grad_scale = 1.0f, .step = 1};
        cpu_adamw_fast(p, m, v, g, 0, out, n, &hp, 0);
        for (long i = 0; i < n; i++) {
            CHECK(isnan(before[i]) ? isnan(p[i]) : kt_bits(p[i]) == kt_bits(before[i]));
            uint16_t want = top16(cpu_bf16_round(p[i]));
            CHECK_MSG(out[i] == want, "%s: bf16(0x%08X) = 0x%04X, want 0x%04X", cpu_isa_name(isa[a]),
                      kt_bits(p[i]), out[i], want);
        }
        g[5] = NAN, g[40] = NAN, g[n - 2] = NAN;
        hp.lr = 1e-3f;
        cpu_adamw_fast(p, m, v, g, 0, out, n, &hp, 0);
        CHECK(isnan(p[5]) && isnan(p[40]) && isnan(p[n - 2]));
        CHECK(out[5] == top16(cpu_bf16_round(p[5])) && (out[5] & 0x7FFF) > 0x7F80);
        CHECK(out[n - 2] == top16(cpu_bf16_round(p[n - 2])) && (out[n - 2] & 0x7FFF) > 0x7F80);
    }
    return 0;
}

/* From one copy of the state into another: the in-place result, bit for bit,
 * and the source untouched (the offload's speculative update); into arrays
 * aligned for the non-temporal stores (shift 0) and not (shift 1). */
TEST(kernel_adamw_fast_from_a_second_copy) {
    cpu_isa isa[3];
    long n = 40013;
    size_t bytes = (sizeof(float) * (size_t)(n + 1) + 63) / 64 * 64;
    int k = n_isas(isa);
    for (int a = 0; a < 2 * k; a++) {
        int shift = a % 2;
        cpu_isa_force(isa[a / 2]);
        float *p = kt_rand(n, 700, 1.0f), *m = kt_rand(n, 701, 0.01f), *v = kt_rand(n, 702, 1e-4f);
        for (long i = 0; i < n; i++) v[i] = fabsf(v[i]);
        uint16_t *g = to_bf16(kt_rand(n, 703, 1.0f), n);
        float *p0 = kt_copy(p, n), *m0 = kt_copy(m, n), *v0 = kt_copy(v, n);
        float *b1[3];
        for (int j = 0; j < 3; j++) b1[j] = aligned_alloc(64, bytes);
        float *p1 = b1[0] + shift, *m1 = b1[1] + shift, *v1 = b1[2] + shift;
        uint16_t *out = malloc(2 * n), *out1 = malloc(2 * n);
        cpu_adam_hp hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                          .grad_scale = 0.5f, .step = 7};
        cpu_adamw_fast(p, m, v, g, 1, out, n, &hp, 0);
        cpu_adamw_fast_from(p0, m0, v0, p1, m1, v1, g, 1, out1, n, &hp, 0);
        CHECK(same_bits("param", p1, p, n) && same_bits("m", m1, m, n) && same_bits("v", v1, v, n));
        CHECK(memcmp(out, out1, 2 * n) == 0);
        float *q = kt_rand(n, 700, 1.0f);
        CHECK(same_bits("the source param", p0, q, n));
        free(p), free(m), free(v), free(g), free(p0), free(m0), free(v0), free(b1[0]), free(b1[1]), free(b1[2]), free(q);
        free(out), free(out1);
    }
    cpu_isa_force(cpu_isa_best());
    return 0;
}

typedef struct { float *p, *m, *v, *g; uint16_t *out; long n; } thread_job;

static void *offload_thread(void *arg) {
    thread_job *t = arg;
    cpu_adam_hp hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                      .grad_scale = 1.0f, .step = 7};
    cpu_adamw_fast(t->p, t->m, t->v, t->g, 0, t->out, t->n, &hp, 2);
    return NULL;
}

/* the offload calls from its own pthread while the main thread runs OpenMP too */
TEST(kernel_adamw_fast_from_another_thread) {
    long n = 16384 * 4 + 3;
    thread_job t = {kt_rand(n, 700, 1.0f), kt_fill(n, 0.0f), kt_fill(n, 0.0f), kt_rand(n, 701, 1.0f),
                    malloc(2 * n), n};
    float *rp = kt_copy(t.p, n), *rm = kt_fill(n, 0.0f), *rv = kt_fill(n, 0.0f);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, offload_thread, &t) == 0);
    double busy = cpu_sumsq_f32(rp, n, 2); /* OpenMP on the main thread meanwhile */
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(busy > 0.0);
    cpu_adamw(rp, rm, rv, t.g, n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 7);
    CHECK(same_bits("param", t.p, rp, n) && same_bits("v", t.v, rv, n));
    for (long i = 0; i < n; i++) CHECK(t.out[i] == top16(cpu_bf16_round(rp[i])));
    return 0;
}

TEST(kernel_sumsq_fast) {
    static const long sizes[] = {0, 1, 15, 16, 17, 100003, 16384 * 300 + 7};
    cpu_isa isa[3];
    int k = n_isas(isa);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        long n = sizes[s];
        float *x = kt_rand(n, 800 + (unsigned)s, 3.0f);
        uint16_t *h = to_bf16(x, n);
        double want32 = 0.0, want16 = 0.0;
        for (long i = 0; i < n; i++) {
            double b = kt_float((uint32_t)h[i] << 16);
            want32 += (double)x[i] * x[i];
            want16 += b * b;
        }
        double first32 = 0.0, first16 = 0.0;
        for (int a = 0; a < k; a++) {
            cpu_isa_force(isa[a]);
            for (int threads = 0; threads <= 3; threads++) {
                double g32 = cpu_sumsq_f32(x, n, threads), g16 = cpu_sumsq_bf16(h, n, threads);
                CHECK_NEAR(g32, want32, 0.0, 1e-12);
                CHECK_NEAR(g16, want16, 0.0, 1e-12);
                if (a == 0 && threads == 0) first32 = g32, first16 = g16;
                CHECK_MSG(g32 == first32 && g16 == first16, "%s, %d threads, n %ld: %.17g %.17g vs %.17g %.17g",
                          cpu_isa_name(isa[a]), threads, n, g32, g16, first32, first16);
            }
        }
        if (n == 3) CHECK(first32 == (double)x[0] * x[0] + (double)x[1] * x[1] + (double)x[2] * x[2]);
    }
    return 0;
}

TEST(kernel_isa_dispatch) {
    cpu_isa best = cpu_isa_best();
    CHECK(cpu_isa_active() == best);  /* a fresh process: the widest */
    CHECK(cpu_isa_force((cpu_isa)7) == -1 && cpu_isa_force((cpu_isa)-1) == -1);
    if (best < CPU_ISA_AVX512) CHECK(cpu_isa_force((cpu_isa)(best + 1)) == -1);
    CHECK(cpu_isa_active() == best);  /* a refused force changes nothing */
    CHECK(cpu_isa_force(CPU_ISA_BASE) == 0 && cpu_isa_active() == CPU_ISA_BASE);
    CHECK(!strcmp(cpu_isa_name(CPU_ISA_AVX512), "avx512") && !strcmp(cpu_isa_name(CPU_ISA_AVX2), "avx2") &&
          !strcmp(cpu_isa_name(CPU_ISA_BASE), "x86-64-v2"));
    return 0;
}
