/*
 * spec/c/kernels_test.c — the CPU reference kernels for the dense ops (matmul,
 * embedding, rmsnorm, swiglu, rope) against naive double-precision forwards,
 * and their backwards against finite differences of L = sum(r * y)
 * (see kernels_fd.h). Attention, the fused LM head, AdamW and the casts have
 * their own kernels_*_test.c files.
 */
#include "check.h"
#include "cpu/kernels.h"
#include "kernels_fd.h"

/* ---- matmul: y = x W^T, W (out, in) ------------------------------------- */

static void ref_matmul(double *y,         /* (n, out) */
                       const double *x,   /* (n, in) */
                       const double *w,   /* (out, in) */
                       long n, int in, int out) {
    for (long i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = 0.0;
            for (int k = 0; k < in; k++) s += x[i * in + k] * w[o * in + k];
            y[i * out + o] = s;
        }
}

typedef struct { double *x, *w, *r, *y; long n; int in, out; } matmul_ctx;

static double matmul_loss(void *p) {
    matmul_ctx *c = p;
    ref_matmul(c->y, c->x, c->w, c->n, c->in, c->out);
    return kt_dot(c->r, c->y, c->n * c->out);
}

TEST(kernel_matmul_fwd) {
    long n = 5;
    int in = 7, out = 6;
    float *x = kt_rand(n * in, 1, 1.0f), *w = kt_rand(out * in, 2, 1.0f);
    float *y0 = kt_rand(n * out, 3, 1.0f);
    double *want = kt_zeros(n * out);
    ref_matmul(want, kt_to_double(x, n * in), kt_to_double(w, out * in), n, in, out);

    float *y = kt_fill(n * out, NAN);  /* = must not read y */
    cpu_matmul_fwd(y, x, w, n, in, out, 0);
    CHECK_ARRAYS("y =", y, want, n * out, KT_FWD_ATOL, KT_FWD_RTOL);

    double *want_acc = kt_plus(y0, want, n * out);
    memcpy(y, y0, sizeof(float) * n * out);
    cpu_matmul_fwd(y, x, w, n, in, out, 1);
    CHECK_ARRAYS("y +=", y, want_acc, n * out, KT_FWD_ATOL, KT_FWD_RTOL);
    return 0;
}

TEST(kernel_matmul_bwd) {
    matmul_ctx c = {.n = 5, .in = 7, .out = 6};
    long nx = c.n * c.in, nw = (long)c.out * c.in, ny = c.n * c.out;
    float *x = kt_rand(nx, 4, 1.0f), *w = kt_rand(nw, 5, 1.0f), *dy = kt_rand(ny, 6, 1.0f);
    c.x = kt_to_double(x, nx), c.w = kt_to_double(w, nw), c.r = kt_to_double(dy, ny);
    c.y = kt_zeros(ny);
    double *gx = kt_zeros(nx), *gw = kt_zeros(nw);
    kt_fd_grad(gx, c.x, nx, matmul_loss, &c);
    kt_fd_grad(gw, c.w, nw, matmul_loss, &c);

    /* dx =, dw += */
    float *dx = kt_fill(nx, NAN), *dw = kt_rand(nw, 7, 1.0f);
    double *want_dw = kt_plus(dw, gw, nw);
    cpu_matmul_bwd(dx, dw, dy, x, w, c.n, c.in, c.out, 0);
    CHECK_ARRAYS("dx =", dx, gx, nx, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dw +=", dw, want_dw, nw, KT_GRAD_ATOL, KT_GRAD_RTOL);

    /* dx +=, dw += once more */
    fill_random(dx, nx, 8, 1.0f);
    double *want_dx = kt_plus(dx, gx, nx);
    want_dw = kt_plus(dw, gw, nw);
    cpu_matmul_bwd(dx, dw, dy, x, w, c.n, c.in, c.out, 1);
    CHECK_ARRAYS("dx +=", dx, want_dx, nx, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dw += (2nd)", dw, want_dw, nw, KT_GRAD_ATOL, KT_GRAD_RTOL);

    /* dx NULL: only dw */
    want_dw = kt_plus(dw, gw, nw);
    cpu_matmul_bwd(NULL, dw, dy, x, w, c.n, c.in, c.out, 0);
    CHECK_ARRAYS("dw += (dx NULL)", dw, want_dw, nw, KT_GRAD_ATOL, KT_GRAD_RTOL);
    return 0;
}

/* ---- embedding ----------------------------------------------------------- */

static void ref_embedding(double *y, const int32_t *tok, const double *table, long n, int dim) {
    for (long i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) y[i * dim + j] = table[(long)tok[i] * dim + j];
}

typedef struct { double *table, *r, *y; const int32_t *tok; long n; int dim; } embedding_ctx;

static double embedding_loss(void *p) {
    embedding_ctx *c = p;
    ref_embedding(c->y, c->tok, c->table, c->n, c->dim);
    return kt_dot(c->r, c->y, c->n * c->dim);
}

TEST(kernel_embedding) {
    static const int32_t tok[] = {3, 0, 3, 5, 1, 3, 0, 2, 5};  /* repeats; 4 unused */
    int vocab = 6;
    embedding_ctx c = {.tok = tok, .n = 9, .dim = 19};  /* 19: a partial column block */
    long nt = (long)vocab * c.dim, ny = c.n * c.dim;
    float *table = kt_rand(nt, 10, 1.0f), *dy = kt_rand(ny, 11, 1.0f);
    c.table = kt_to_double(table, nt), c.r = kt_to_double(dy, ny), c.y = kt_zeros(ny);

    float *y = kt_fill(ny, NAN);
    cpu_embedding_fwd(y, tok, table, c.n, c.dim);
    double *want_y = kt_zeros(ny);
    ref_embedding(want_y, tok, c.table, c.n, c.dim);
    CHECK_ARRAYS("y", y, want_y, ny, 0.0, 0.0);

    double *g = kt_zeros(nt);
    kt_fd_grad(g, c.table, nt, embedding_loss, &c);
    float *dtable = kt_rand(nt, 12, 1.0f);
    double *want = kt_plus(dtable, g, nt);
    cpu_embedding_bwd(dtable, dy, tok, c.n, c.dim);
    CHECK_ARRAYS("dtable +=", dtable, want, nt, KT_GRAD_ATOL, KT_GRAD_RTOL);
    return 0;
}

/* Many tokens (the threaded path): bitwise equal to a serial sum in token order. */
TEST(kernel_embedding_bwd_deterministic) {
    long n = 5000;
    int dim = 40, vocab = 7;
    int32_t *tok = malloc(sizeof(int32_t) * n);
    for (long i = 0; i < n; i++) tok[i] = (int32_t)(i * i % vocab);
    float *dy = kt_rand(n * dim, 13, 1.0f), *dtable = kt_rand((long)vocab * dim, 14, 1.0f);
    float *serial = kt_copy(dtable, (long)vocab * dim);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) serial[(long)tok[i] * dim + j] += dy[i * dim + j];
    cpu_embedding_bwd(dtable, dy, tok, n, dim);
    CHECK(memcmp(dtable, serial, sizeof(float) * vocab * dim) == 0);
    return 0;
}

/* ---- rmsnorm ------------------------------------------------------------- */

static void ref_rmsnorm(double *y, double *rstd, const double *x, const double *w, long n,
                        int dim, double eps) {
    for (long i = 0; i < n; i++) {
        double ss = 0.0;
        for (int j = 0; j < dim; j++) ss += x[i * dim + j] * x[i * dim + j];
        double r = 1.0 / sqrt(ss / dim + eps);
        if (rstd) rstd[i] = r;
        for (int j = 0; j < dim; j++) y[i * dim + j] = x[i * dim + j] * r * w[j];
    }
}

typedef struct { double *x, *w, *r, *y; long n; int dim; double eps; } rmsnorm_ctx;

static double rmsnorm_loss(void *p) {
    rmsnorm_ctx *c = p;
    ref_rmsnorm(c->y, NULL, c->x, c->w, c->n, c->dim, c->eps);
    return kt_dot(c->r, c->y, c->n * c->dim);
}

TEST(kernel_rmsnorm) {
    rmsnorm_ctx c = {.n = 4, .dim = 37, .eps = 1e-5};  /* 37: dw in 3 column blocks */
    long nx = c.n * c.dim;
    float *x = kt_rand(nx, 20, 2.0f), *w = kt_rand(c.dim, 21, 1.0f), *dy = kt_rand(nx, 22, 1.0f);
    for (int j = 0; j < c.dim; j++) x[j] *= 2e-3f;  /* row 0: mean(x^2) near eps, so eps counts */
    c.x = kt_to_double(x, nx), c.w = kt_to_double(w, c.dim), c.r = kt_to_double(dy, nx);
    c.y = kt_zeros(nx);

    float *y = kt_fill(nx, NAN), *rstd = kt_fill(c.n, NAN);
    cpu_rmsnorm_fwd(y, rstd, x, w, c.n, c.dim, (float)c.eps);
    double *want_y = kt_zeros(nx), *want_rstd = kt_zeros(c.n);
    ref_rmsnorm(want_y, want_rstd, c.x, c.w, c.n, c.dim, c.eps);
    CHECK_ARRAYS("y", y, want_y, nx, KT_FWD_ATOL, KT_FWD_RTOL);
    CHECK_ARRAYS("rstd", rstd, want_rstd, c.n, 0.0, KT_FWD_RTOL);

    double *gx = kt_zeros(nx), *gw = kt_zeros(c.dim);
    kt_fd_grad(gx, c.x, nx, rmsnorm_loss, &c);
    kt_fd_grad(gw, c.w, c.dim, rmsnorm_loss, &c);
    float *dx = kt_rand(nx, 23, 1.0f), *dw = kt_rand(c.dim, 24, 1.0f);  /* += onto these */
    double *want_dx = kt_plus(dx, gx, nx), *want_dw = kt_plus(dw, gw, c.dim);
    cpu_rmsnorm_bwd(dx, dw, dy, x, w, rstd, c.n, c.dim);
    CHECK_ARRAYS("dx +=", dx, want_dx, nx, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dw +=", dw, want_dw, c.dim, KT_GRAD_ATOL, KT_GRAD_RTOL);
    return 0;
}

/* ---- swiglu -------------------------------------------------------------- */

static void ref_swiglu(double *h, const double *g, const double *u, long n) {
    for (long i = 0; i < n; i++) h[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
}

typedef struct { double *g, *u, *r, *h; long n; } swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    ref_swiglu(c->h, c->g, c->u, c->n);
    return kt_dot(c->r, c->h, c->n);
}

TEST(kernel_swiglu) {
    swiglu_ctx c = {.n = 37};
    float *gate = kt_rand(c.n, 30, 6.0f), *up = kt_rand(c.n, 31, 2.0f), *dh = kt_rand(c.n, 32, 1.0f);
    gate[0] = -100.0f, gate[1] = 100.0f, gate[2] = 0.0f;  /* saturation and the origin */
    c.g = kt_to_double(gate, c.n), c.u = kt_to_double(up, c.n), c.r = kt_to_double(dh, c.n);
    c.h = kt_zeros(c.n);

    float *h = kt_fill(c.n, NAN);
    cpu_swiglu_fwd(h, gate, up, c.n);
    double *want_h = kt_zeros(c.n);
    ref_swiglu(want_h, c.g, c.u, c.n);
    CHECK_ARRAYS("h", h, want_h, c.n, KT_FWD_ATOL, KT_FWD_RTOL);

    double *gg = kt_zeros(c.n), *gu = kt_zeros(c.n);
    kt_fd_grad(gg, c.g, c.n, swiglu_loss, &c);
    kt_fd_grad(gu, c.u, c.n, swiglu_loss, &c);
    float *dgate = kt_fill(c.n, NAN), *dup = kt_fill(c.n, NAN);
    cpu_swiglu_bwd(dgate, dup, dh, gate, up, c.n);
    CHECK_ARRAYS("dgate", dgate, gg, c.n, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dup", dup, gu, c.n, KT_GRAD_ATOL, KT_GRAD_RTOL);
    return 0;
}

/* ---- rope ---------------------------------------------------------------- */

TEST(kernel_rope_table) {
    static const float thetas[] = {10000.0f, 500000.0f};
    int T = 33, hd = 16, half = hd / 2;
    float *cs = kt_fill((long)T * hd, NAN);
    for (int k = 0; k < 2; k++) {
        cpu_rope_table(cs, T, hd, thetas[k]);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < half; i++) {
                double angle = t * pow(thetas[k], -2.0 * i / hd);
                double tol = 1e-7 + 4e-7 * angle;  /* HF takes the angle in fp32 */
                CHECK_NEAR(cs[(t * half + i) * 2 + 0], cos(angle), tol, 0.0);
                CHECK_NEAR(cs[(t * half + i) * 2 + 1], sin(angle), tol, 0.0);
            }
    }
    return 0;
}

/* The convention itself: at t = 1 element 0 pairs with element hd/2, angle 1,
 * and rotates as HF's q cos + rotate_half(q) sin. */
TEST(kernel_rope_convention) {
    float cs[2 * 2 * 2], x[2 * 4] = {0, 0, 0, 0, 1, 0, 2, 0};  /* T=2, hd=4: x[t=1] = e0 + 2 e2 */
    cpu_rope_table(cs, 2, 4, 10000.0f);
    cpu_rope_fwd(x, cs, 1, 2, 1, 4);
    double c = cos(1.0), s = sin(1.0);
    double want[8] = {0, 0, 0, 0, c - 2 * s, 0, 2 * c + s, 0};
    CHECK_ARRAYS("rope(e0 + 2 e2 at t=1)", x, want, 8, 1e-7, 0.0);
    return 0;
}

static void ref_rope(double *y, const double *x, const double *cs, long B, int T, int H, int hd) {
    int half = hd / 2;
    for (long b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                long o = ((b * T + t) * H + h) * hd;
                for (int i = 0; i < half; i++) {
                    double c = cs[(t * half + i) * 2], s = cs[(t * half + i) * 2 + 1];
                    y[o + i] = x[o + i] * c - x[o + i + half] * s;
                    y[o + i + half] = x[o + i + half] * c + x[o + i] * s;
                }
            }
}

typedef struct { double *x, *cs, *r, *y; long B; int T, H, hd; } rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    ref_rope(c->y, c->x, c->cs, c->B, c->T, c->H, c->hd);
    return kt_dot(c->r, c->y, c->B * c->T * c->H * c->hd);
}

TEST(kernel_rope) {
    rope_ctx c = {.B = 2, .T = 5, .H = 3, .hd = 8};
    long n = c.B * c.T * c.H * c.hd, ncs = (long)c.T * c.hd;
    float *cs = kt_fill(ncs, NAN);
    cpu_rope_table(cs, c.T, c.hd, 10000.0f);
    float *x = kt_rand(n, 40, 1.0f), *dy = kt_rand(n, 41, 1.0f);
    c.x = kt_to_double(x, n), c.cs = kt_to_double(cs, ncs), c.r = kt_to_double(dy, n);
    c.y = kt_zeros(n);

    float *y = kt_copy(x, n);
    cpu_rope_fwd(y, cs, c.B, c.T, c.H, c.hd);
    double *want_y = kt_zeros(n);
    ref_rope(want_y, c.x, c.cs, c.B, c.T, c.H, c.hd);
    CHECK_ARRAYS("y", y, want_y, n, KT_FWD_ATOL, KT_FWD_RTOL);

    double *g = kt_zeros(n);
    kt_fd_grad(g, c.x, n, rope_loss, &c);
    float *dx = kt_copy(dy, n);
    cpu_rope_bwd(dx, cs, c.B, c.T, c.H, c.hd);
    CHECK_ARRAYS("dx", dx, g, n, KT_GRAD_ATOL, KT_GRAD_RTOL);

    cpu_rope_bwd(y, cs, c.B, c.T, c.H, c.hd);  /* bwd(fwd(x)) == x */
    CHECK_ARRAYS("bwd(fwd(x))", y, c.x, n, 1e-6, 0.0);
    return 0;
}
