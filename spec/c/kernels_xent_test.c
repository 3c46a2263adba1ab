/*
 * spec/c/kernels_xent_test.c — the LM head fused with cross-entropy against a
 * double reference (logits = x W^T, log-softmax, sum of -log p[target] over
 * targets >= 0), its gradients against finite differences of
 * grad_scale * loss, chunks that do not divide n, an ignored target, the
 * forward-only path, and the bf16 rounding of the logit gradients.
 */
#include "check.h"
#include "cpu/kernels.h"
#include "kernels_fd.h"
#include <omp.h>

typedef struct { double *x, *w, *logits; const int32_t *tgt; long n; int dim, vocab; double scale; } xent_ctx;

/* Rows of x W^T as logits; returns scale * sum of -log softmax[target]. */
static double ref_xent(xent_ctx *c) {
    double loss = 0.0;
    for (long i = 0; i < c->n; i++) {
        double *z = c->logits + i * c->vocab, m = -INFINITY, sum = 0.0;
        for (int j = 0; j < c->vocab; j++) {
            z[j] = kt_dot(c->x + i * c->dim, c->w + (long)j * c->dim, c->dim);
            m = fmax(m, z[j]);
        }
        for (int j = 0; j < c->vocab; j++) sum += exp(z[j] - m);
        if (c->tgt[i] >= 0) loss += m + log(sum) - z[c->tgt[i]];
    }
    return c->scale * loss;
}

static double xent_loss(void *p) { return ref_xent(p); }

/* dlogits of the reference (after ref_xent), each rounded to bf16 as a float. */
static void ref_dlogits_bf16(double *dz, const xent_ctx *c) {
    for (long i = 0; i < c->n; i++) {
        const double *z = c->logits + i * c->vocab;
        double m = -INFINITY, sum = 0.0;
        for (int j = 0; j < c->vocab; j++) m = fmax(m, z[j]);
        for (int j = 0; j < c->vocab; j++) sum += exp(z[j] - m);
        for (int j = 0; j < c->vocab; j++) {
            double g = c->tgt[i] < 0 ? 0.0 : (exp(z[j] - m) / sum - (j == c->tgt[i])) * c->scale;
            dz[i * c->vocab + j] = cpu_bf16_round((float)g);
        }
    }
}

enum { N = 7, DIM = 5, VOCAB = 11 };
static const int32_t targets[N] = {3, 10, -1, 0, 3, 7, 2};

static void setup(xent_ctx *c, float **x, float **w) {
    *x = kt_rand(N * DIM, 200, 1.5f), *w = kt_rand(VOCAB * DIM, 201, 1.5f);
    *c = (xent_ctx){.x = kt_to_double(*x, N * DIM), .w = kt_to_double(*w, VOCAB * DIM),
                    .logits = kt_zeros(N * VOCAB), .tgt = targets, .n = N, .dim = DIM,
                    .vocab = VOCAB, .scale = 1.0};
}

/* The workspace is exactly (chunk, vocab); a guard after it must stay intact. */
static float *workspace(int chunk) {
    float *ws = kt_fill((long)chunk * VOCAB + 1, NAN);
    ws[(long)chunk * VOCAB] = 42.0f;
    return ws;
}

TEST(kernel_xent_forward) {
    xent_ctx c;
    float *x, *w;
    setup(&c, &x, &w);
    double want = ref_xent(&c);
    static const int chunks[] = {1, 3, 7, 8};
    for (int k = 0; k < 4; k++) {
        float *ws = workspace(chunks[k]);
        double loss = cpu_lmhead_xent(NULL, NULL, ws, x, w, targets, N, DIM, VOCAB, chunks[k], 1.0f, 0);
        CHECK_NEAR(loss, want, 1e-5, 1e-6);
        CHECK(ws[(long)chunks[k] * VOCAB] == 42.0f);
    }
    return 0;
}

TEST(kernel_xent_backward) {
    xent_ctx c;
    float *x, *w;
    setup(&c, &x, &w);
    float grad_scale = 0.37f;
    c.scale = grad_scale;
    double *gx = kt_zeros(N * DIM), *gw = kt_zeros(VOCAB * DIM);
    kt_fd_grad(gx, c.x, N * DIM, xent_loss, &c);
    kt_fd_grad(gw, c.w, VOCAB * DIM, xent_loss, &c);

    int chunk = 3;  /* 7 rows: chunks of 3, 3, 1 */
    float *ws = workspace(chunk), *dx = kt_fill(N * DIM, NAN), *dw = kt_rand(VOCAB * DIM, 202, 1.0f);
    double *want_dw = kt_plus(dw, gw, VOCAB * DIM);
    double loss = cpu_lmhead_xent(dx, dw, ws, x, w, targets, N, DIM, VOCAB, chunk, grad_scale, 0);
    double fwd_only = cpu_lmhead_xent(NULL, NULL, ws, x, w, targets, N, DIM, VOCAB, chunk, grad_scale, 0);
    CHECK(loss == fwd_only);  /* the same loss with and without the backward */
    CHECK_NEAR(loss * grad_scale, ref_xent(&c), 1e-5, 1e-6);
    CHECK(ws[(long)chunk * VOCAB] == 42.0f);
    CHECK_ARRAYS("dx =", dx, gx, N * DIM, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dw +=", dw, want_dw, VOCAB * DIM, KT_GRAD_ATOL, KT_GRAD_RTOL);
    for (int j = 0; j < DIM; j++) CHECK(dx[2 * DIM + j] == 0.0f);  /* target -1 */
    return 0;
}

/* round_bf16: dx and dW are exactly the matmuls of bf16-rounded dlogits. */
TEST(kernel_xent_round_bf16) {
    xent_ctx c;
    float *x, *w;
    setup(&c, &x, &w);
    c.scale = 0.37;
    ref_xent(&c);
    double *dz = kt_zeros(N * VOCAB), *want_dx = kt_zeros(N * DIM), *want_dw = kt_zeros(VOCAB * DIM);
    ref_dlogits_bf16(dz, &c);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < VOCAB; j++)
            for (int d = 0; d < DIM; d++) {
                want_dx[i * DIM + d] += dz[i * VOCAB + j] * c.w[j * DIM + d];
                want_dw[j * DIM + d] += dz[i * VOCAB + j] * c.x[i * DIM + d];
            }
    float *ws = workspace(3), *dx = kt_fill(N * DIM, NAN), *dw = kt_fill(VOCAB * DIM, 0.0f);
    cpu_lmhead_xent(dx, dw, ws, x, w, targets, N, DIM, VOCAB, 3, 0.37f, 1);
    CHECK_ARRAYS("dx (bf16 dlogits)", dx, want_dx, N * DIM, 1e-6, 1e-5);
    CHECK_ARRAYS("dw (bf16 dlogits)", dw, want_dw, VOCAB * DIM, 1e-6, 1e-5);
    return 0;
}

/* More rows than the loss partition has parts, huge logits on one row (the
 * max subtraction), and the same loss bits on any thread count. */
TEST(kernel_xent_large) {
    long n = 300;
    int dim = 16, vocab = 50, chunk = 128;  /* chunks of 128, 128, 44 */
    float *x = kt_rand(n * dim, 210, 1.0f), *w = kt_rand((long)vocab * dim, 211, 1.0f);
    for (int j = 0; j < dim; j++) x[5 * dim + j] *= 1000.0f;  /* row 5: logits ~ 1e3 */
    int32_t *tgt = malloc(sizeof(int32_t) * n);
    for (long i = 0; i < n; i++) tgt[i] = (int32_t)(i % 7 == 3 ? -1 : i * 13 % vocab);
    xent_ctx c = {.x = kt_to_double(x, n * dim), .w = kt_to_double(w, (long)vocab * dim),
                  .logits = kt_zeros(n * vocab), .tgt = tgt, .n = n, .dim = dim, .vocab = vocab,
                  .scale = 1.0};
    double want = ref_xent(&c);

    float *ws = kt_fill((long)chunk * vocab, NAN), *dx = kt_fill(n * dim, NAN);
    float *dw = kt_fill((long)vocab * dim, 0.0f);
    double loss = cpu_lmhead_xent(dx, dw, ws, x, w, tgt, n, dim, vocab, chunk, 1.0f, 0);
    CHECK_NEAR(loss, want, 0.0, 1e-6);
    for (long i = 0; i < n * dim; i++) CHECK(isfinite(dx[i]));
    omp_set_num_threads(1);
    CHECK(cpu_lmhead_xent(NULL, NULL, ws, x, w, tgt, n, dim, vocab, chunk, 1.0f, 0) == loss);
    omp_set_num_threads(3);
    CHECK(cpu_lmhead_xent(NULL, NULL, ws, x, w, tgt, n, dim, vocab, chunk, 1.0f, 0) == loss);
    return 0;
}
