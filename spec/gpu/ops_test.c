/*
 * spec/gpu/ops_test.c — every entry of the CUDA backend against the CPU
 * backend of the same precision, on fresh random inputs (gpu.h has the
 * tolerances: relative L2 error 1e-4 fp32, 1e-2 bf16).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

#define C(p) (&(p)->cpu)
#define G(p) (&(p)->gpu)
#define BOTH(name)                                                              \
    TEST(cuda_##name##_fp32) { return name(MS_PRECISION_FP32); }                \
    TEST(cuda_##name##_bf16) { return name(MS_PRECISION_BF16); }

static int32_t *rnd_tokens(long n, unsigned seed, int vocab) {
    float *r = rnd(n, seed, 1.0f, 0);
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    for (long i = 0; i < n; i++) {
        t[i] = (int32_t)((r[i] + 1.0f) * 0.5f * (float)vocab);
        if (t[i] >= vocab) t[i] = vocab - 1;
    }
    free(r);
    return t;
}

static int matmul(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    /* add: 0 none, 1 y itself, 2 another tensor (y0 holds garbage then) */
    for (int add = 0; add <= 2; add++) {
        int acc = add > 0;
        long n = 67 + add * 100, in = 96, out = 80;
        float *x = rnd(n * in, 1 + add, 1, b), *w = rnd(out * in, 2, 0.5f, b), *y0 = rnd(n * out, 3, 1, b);
        float *r = rnd(n * out, 7, 1, b), *yc = host_copy(y0, n * out);
        void *gx = up_act(p, x, n * in), *gw = up_act(p, w, out * in), *gy = up_act(p, y0, n * out);
        void *gr = up_act(p, r, n * out);
        C(p)->matmul_fwd(C(p), yc, x, w, n, in, out, add == 0 ? NULL : add == 1 ? (void *)yc : r);
        G(p)->matmul_fwd(G(p), gy, gx, gw, n, in, out, add == 0 ? NULL : add == 1 ? gy : gr);
        CHECK_GPU(p);
        CHECK_REL("matmul_fwd y", down_act(p, gy, n * out), yc, n * out, p->tol);

        float *dy = rnd(n * out, 4, 1, b), *dx0 = rnd(n * in, 5, 1, b), *dw0 = rnd(out * in, 6, 1, 0);
        float *dxc = host_copy(dx0, n * in), *dwc = host_copy(dw0, out * in);
        void *gdy = up_act(p, dy, n * out), *gdx = up_act(p, dx0, n * in), *gdw = up_f32(p, dw0, out * in);
        /* acc 0: dx and dw overwritten (dw0 holds garbage), acc 1: added to */
        C(p)->matmul_bwd(C(p), dxc, dwc, dy, x, w, n, in, out, acc, acc);
        G(p)->matmul_bwd(G(p), gdx, gdw, gdy, gx, gw, n, in, out, acc, acc);
        CHECK_GPU(p);
        CHECK_REL("matmul_bwd dx", down_act(p, gdx, n * in), dxc, n * in, p->tol);
        CHECK_REL("matmul_bwd dw", down_f32(p, gdw, out * in), dwc, out * in, p->tol);
    }
    gpair_close(p);
    return 0;
}
BOTH(matmul)

/* More shapes than the backend caches cuBLASLt plans for (generation grows T
 * a token at a time): recycled plans must still compute the right product. */
static int matmul_shapes(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    long in = 32, out = 24;
    float *w = rnd(out * in, 2, 0.5f, b);
    void *gw = up_act(p, w, out * in);
    for (int pass = 0; pass < 2; pass++)
        for (long n = 1; n <= 130; n += 1 + pass * 6) {
            float *x = rnd(n * in, (unsigned)n, 1, b), *y = rnd(n * out, 3, 1, b);
            void *gx = up_act(p, x, n * in), *gy = up_act(p, y, n * out);
            C(p)->matmul_fwd(C(p), y, x, w, n, (int)in, (int)out, NULL);
            G(p)->matmul_fwd(G(p), gy, gx, gw, n, (int)in, (int)out, NULL);
            CHECK_GPU(p);
            CHECK_REL("matmul_fwd over many shapes", down_act(p, gy, n * out), y, n * out, p->tol);
            free(x), free(y);
        }
    gpair_close(p);
    return 0;
}
BOTH(matmul_shapes)

static int embedding(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    long V = 50, D = 64, n = 300;
    int32_t *tok = rnd_tokens(n, 1, (int)V);
    float *table = rnd(V * D, 2, 1, b), *y = rnd(n * D, 3, 1, b);
    void *gt = up_act(p, table, V * D), *gy = up_act(p, y, n * D), *gtok = up_i32(p, tok, n);
    C(p)->embedding_fwd(C(p), y, tok, table, n, (int)D);
    G(p)->embedding_fwd(G(p), gy, gtok, gt, n, (int)D);
    CHECK_GPU(p);
    CHECK_REL("embedding_fwd", down_act(p, gy, n * D), y, n * D, 0.0);
    float *dy = rnd(n * D, 4, 1, b), *dt = rnd(V * D, 5, 1, 0);
    void *gdy = up_act(p, dy, n * D), *gdt = up_f32(p, dt, V * D);
    C(p)->embedding_bwd(C(p), dt, dy, tok, n, (int)D);
    G(p)->embedding_bwd(G(p), gdt, gdy, gtok, n, (int)D);
    CHECK_GPU(p);
    CHECK_REL("embedding_bwd", down_f32(p, gdt, V * D), dt, V * D, 1e-6);
    gpair_close(p);
    return 0;
}
BOTH(embedding)

static int rmsnorm(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    long n = 133, D = 160;
    float *x = rnd(n * D, 1, 2, b), *w = rnd(D, 2, 0.2f, 0), *y = rnd(n * D, 3, 1, b), rstd[133];
    for (long j = 0; j < D; j++) w[j] = b ? cpu_bf16_round(1.0f + w[j]) : 1.0f + w[j];
    void *gx = up_act(p, x, n * D), *gw = up_act(p, w, D), *gy = up_act(p, y, n * D), *gr = up_f32(p, rstd, n);
    C(p)->rmsnorm_fwd(C(p), y, rstd, x, w, n, (int)D, 1e-5f);
    G(p)->rmsnorm_fwd(G(p), gy, gr, gx, gw, n, (int)D, 1e-5f);
    CHECK_GPU(p);
    CHECK_REL("rmsnorm_fwd y", down_act(p, gy, n * D), y, n * D, p->tol);
    CHECK_REL("rmsnorm_fwd rstd", down_f32(p, gr, n), rstd, n, TOL_F32);
    float *dy = rnd(n * D, 4, 1, b), *dx = rnd(n * D, 5, 1, b), *dw = rnd(D, 6, 1, 0);
    void *gdy = up_act(p, dy, n * D), *gdx = up_act(p, dx, n * D), *gdw = up_f32(p, dw, D);
    for (int acc = 0; acc <= 1; acc++) { /* dw overwritten (it held garbage), then added to */
        C(p)->rmsnorm_bwd(C(p), dx, dw, dy, x, w, rstd, n, (int)D, acc);
        G(p)->rmsnorm_bwd(G(p), gdx, gdw, gdy, gx, gw, gr, n, (int)D, acc);
        CHECK_GPU(p);
        CHECK_REL("rmsnorm_bwd dx", down_act(p, gdx, n * D), dx, n * D, p->tol);
        CHECK_REL("rmsnorm_bwd dw", down_f32(p, gdw, D), dw, D, p->tol);
    }
    gpair_close(p);
    return 0;
}
BOTH(rmsnorm)

static int rope(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    long B = 2, T = 17, Hh = 3, hd = 64, n = B * T * Hh * hd;
    float *cs = rnd(T * hd, 1, 1, 0);
    void *gcs = up_f32(p, cs, T * hd);
    C(p)->rope_table(C(p), cs, (int)T, (int)hd, 10000.0f);
    G(p)->rope_table(G(p), gcs, (int)T, (int)hd, 10000.0f);
    CHECK_GPU(p);
    CHECK_REL("rope_table", down_f32(p, gcs, T * hd), cs, T * hd, 0.0);
    for (int dir = 0; dir < 2; dir++) {
        float *x = rnd(n, 2 + dir, 1, b);
        void *gx = up_act(p, x, n);
        if (dir == 0) {
            C(p)->rope_fwd(C(p), x, cs, B, (int)T, (int)Hh, (int)hd);
            G(p)->rope_fwd(G(p), gx, gcs, B, (int)T, (int)Hh, (int)hd);
        } else {
            C(p)->rope_bwd(C(p), x, cs, B, (int)T, (int)Hh, (int)hd);
            G(p)->rope_bwd(G(p), gx, gcs, B, (int)T, (int)Hh, (int)hd);
        }
        CHECK_GPU(p);
        CHECK_REL(dir ? "rope_bwd" : "rope_fwd", down_act(p, gx, n), x, n, p->tol);
    }
    gpair_close(p);
    return 0;
}
BOTH(rope)

static int attention_case(gpair *p, int B, int T, int H, int KV, int hd, int docs, unsigned seed) {
    int b = p->bf16;
    long nq = (long)B * T * H * hd, nk = (long)B * T * KV * hd, nl = (long)B * H * T;
    float *q = rnd(nq, seed, 1.5f, b), *k = rnd(nk, seed + 1, 1.5f, b), *v = rnd(nk, seed + 2, 1, b);
    float *out = rnd(nq, seed + 3, 1, 0), *lse = rnd(nl, seed + 4, 1, 0);
    int32_t *doc = NULL;
    if (docs) { /* documents start at t = 0, T/3 and 3T/5 + b */
        doc = malloc(sizeof(int32_t) * (size_t)B * T);
        for (int bb = 0; bb < B; bb++)
            for (int t = 0; t < T; t++) {
                int s1 = T / 3, s2 = 3 * T / 5 + bb;
                doc[bb * T + t] = t >= s2 ? s2 : t >= s1 ? s1 : 0;
            }
    }
    void *gq = up_act(p, q, nq), *gk = up_act(p, k, nk), *gv = up_act(p, v, nk), *go = up_act(p, out, nq);
    void *gl = up_f32(p, lse, nl), *gdoc = doc ? up_i32(p, doc, (long)B * T) : NULL;
    C(p)->attention_fwd(C(p), out, lse, q, k, v, doc, B, T, H, KV, hd);
    G(p)->attention_fwd(G(p), go, gl, gq, gk, gv, gdoc, B, T, H, KV, hd);
    CHECK_GPU(p);
    CHECK_REL("attention_fwd out", down_act(p, go, nq), out, nq, p->tol);
    CHECK_REL("attention_fwd lse", down_f32(p, gl, nl), lse, nl, TOL_F32);
    float *dout = rnd(nq, seed + 5, 1, b), *dq = rnd(nq, 9, 1, 0), *dk = rnd(nk, 10, 1, 0), *dv = rnd(nk, 11, 1, 0);
    void *gdo = up_act(p, dout, nq), *gdq = up_act(p, dq, nq), *gdk = up_act(p, dk, nk), *gdv = up_act(p, dv, nk);
    C(p)->attention_bwd(C(p), dq, dk, dv, dout, q, k, v, out, lse, doc, B, T, H, KV, hd);
    G(p)->attention_bwd(G(p), gdq, gdk, gdv, gdo, gq, gk, gv, go, gl, gdoc, B, T, H, KV, hd);
    CHECK_GPU(p);
    CHECK_REL("attention_bwd dq", down_act(p, gdq, nq), dq, nq, p->tol);
    CHECK_REL("attention_bwd dk", down_act(p, gdk, nk), dk, nk, p->tol);
    CHECK_REL("attention_bwd dv", down_act(p, gdv, nk), dv, nk, p->tol);
    return 0;
}

static int attention(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    if (attention_case(p, 2, 70, 4, 2, 64, 0, 1)) return 1;
    if (attention_case(p, 2, 70, 4, 2, 64, 1, 2)) return 1;
    if (attention_case(p, 1, 100, 4, 1, 128, 0, 3)) return 1;
    if (attention_case(p, 1, 100, 2, 2, 128, 1, 4)) return 1;
    if (attention_case(p, 2, 5, 2, 1, 4, 0, 5)) return 1;
    if (attention_case(p, 1, 33, 3, 3, 48, 1, 6)) return 1;
    /* several key and query tiles of the flash kernels (bf16, hd 64 and 128), ragged ends */
    if (attention_case(p, 1, 300, 4, 2, 128, 1, 7)) return 1;
    if (attention_case(p, 2, 200, 4, 1, 64, 0, 8)) return 1;
    /* many key and query tiles a head, 2 sequences, 4 query heads a kv head, documents */
    if (attention_case(p, 2, 1100, 8, 2, 128, 1, 9)) return 1;
    gpair_close(p);
    return 0;
}
BOTH(attention)

static int swiglu(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    long n = 10007;
    float *g = rnd(n, 1, 6, b), *u = rnd(n, 2, 2, b), *h = rnd(n, 3, 1, b);
    void *gg = up_act(p, g, n), *gu = up_act(p, u, n), *gh = up_act(p, h, n);
    C(p)->swiglu_fwd(C(p), h, g, u, n);
    G(p)->swiglu_fwd(G(p), gh, gg, gu, n);
    CHECK_GPU(p);
    CHECK_REL("swiglu_fwd", down_act(p, gh, n), h, n, p->tol);
    float *dh = rnd(n, 4, 1, b), *dg = rnd(n, 5, 1, b), *du = rnd(n, 6, 1, b);
    void *gdh = up_act(p, dh, n), *gdg = up_act(p, dg, n), *gdu = up_act(p, du, n);
    C(p)->swiglu_bwd(C(p), dg, du, dh, g, u, n);
    G(p)->swiglu_bwd(G(p), gdg, gdu, gdh, gg, gu, n);
    CHECK_GPU(p);
    CHECK_REL("swiglu_bwd dgate", down_act(p, gdg, n), dg, n, p->tol);
    CHECK_REL("swiglu_bwd dup", down_act(p, gdu, n), du, n, p->tol);
    gpair_close(p);
    return 0;
}
BOTH(swiglu)

static int lmhead(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    int b = p->bf16;
    long n = 37, D = 64, V = 300, chunk = 16;
    float *x = rnd(n * D, 1, 1, b), *w = rnd(V * D, 2, 0.3f, b), *ws = rnd(chunk * V, 3, 1, 0);
    int32_t *tg = rnd_tokens(n, 4, (int)V);
    void *gx = up_act(p, x, n * D), *gw = up_act(p, w, V * D), *gws = up_f32(p, ws, chunk * V);
    double lc = 0, lg = 0;
    for (int ignore = 0; ignore <= 1; ignore++) { /* then row 5 ignored: its loss is 0, whatever a row held before */
        if (ignore) tg[5] = -1;
        void *gtg = up_i32(p, tg, n);
        lc = C(p)->lmhead_xent(C(p), NULL, NULL, ws, x, w, tg, n, (int)D, (int)V, (int)chunk, 1.0f, 1);
        lg = G(p)->lmhead_xent(G(p), NULL, NULL, gws, gx, gw, gtg, n, (int)D, (int)V, (int)chunk, 1.0f, 1);
        CHECK_GPU(p);
        CHECK_NEAR(lg, lc, 0, 1e-5);
    }
    void *gtg = up_i32(p, tg, n);
    float *dx = rnd(n * D, 5, 1, b), *dw = rnd(V * D, 6, 1, 0);
    void *gdx = up_act(p, dx, n * D), *gdw = up_f32(p, dw, V * D);
    for (int acc = 0; acc <= 1; acc++) { /* dw overwritten by the first chunk (it held garbage), then added to */
        lc = C(p)->lmhead_xent(C(p), dx, dw, ws, x, w, tg, n, (int)D, (int)V, (int)chunk, 1.0f / 36, acc);
        lg = G(p)->lmhead_xent(G(p), gdx, gdw, gws, gx, gw, gtg, n, (int)D, (int)V, (int)chunk, 1.0f / 36, acc);
        CHECK_GPU(p);
        CHECK_NEAR(lg, lc, 0, 1e-5);
        CHECK_REL("lmhead dx", down_act(p, gdx, n * D), dx, n * D, p->tol);
        CHECK_REL("lmhead dw", down_f32(p, gdw, V * D), dw, V * D, p->tol);
    }
    float *y = rnd(n * V, 7, 1, 0);
    void *gy = up_f32(p, y, n * V);
    C(p)->logits(C(p), y, x, w, n, (int)D, (int)V);
    G(p)->logits(G(p), gy, gx, gw, n, (int)D, (int)V);
    CHECK_GPU(p);
    CHECK_REL("logits", down_f32(p, gy, n * V), y, n * V, TOL_F32);
    gpair_close(p);
    return 0;
}
BOTH(lmhead)

static int optim(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    long n = 100003;
    float *x = rnd(n, 1, 3, 0);
    void *gx = up_f32(p, x, n);
    /* one array, then three pieces of it summed in one trip */
    const float *cx[3] = {x, x + 1, x + 50000}, *gxs[3] = {gx, (const float *)gx + 1, (const float *)gx + 50000};
    int64_t whole = n, parts[3] = {1, 49999, n - 50000};
    double sc = C(p)->sumsq(C(p), cx, &whole, 1), sg = G(p)->sumsq(G(p), gxs, &whole, 1);
    double pc = C(p)->sumsq(C(p), cx, parts, 3), pg = G(p)->sumsq(G(p), gxs, parts, 3);
    CHECK_GPU(p);
    CHECK_NEAR(sg, sc, 0, 1e-12);
    CHECK_NEAR(pg, pc, 0, 1e-12);
    CHECK_NEAR(pc, sc, 0, 1e-12);
    float *par = rnd(n, 2, 1, 0), *m = rnd(n, 3, 0.1f, 0), *v = rnd(n, 4, 0.01f, 0), *g = rnd(n, 5, 1, 0);
    for (long i = 0; i < n; i++) v[i] = fabsf(v[i]);
    void *gp = up_f32(p, par, n), *gm = up_f32(p, m, n), *gv = up_f32(p, v, n), *gg = up_f32(p, g, n);
    C(p)->adamw(C(p), par, m, v, g, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, 3, NULL);
    G(p)->adamw(G(p), gp, gm, gv, gg, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, 3, NULL);
    CHECK_GPU(p);
    CHECK_REL("adamw param", down_f32(p, gp, n), par, n, 1e-6);
    CHECK_REL("adamw m", down_f32(p, gm, n), m, n, 1e-6);
    CHECK_REL("adamw v", down_f32(p, gv, n), v, n, 1e-6);
    /* with the compute copy written in the same pass, from arrays at each phase
     * (aligned; all one element on; the gradient at another phase): the
     * update as above, and the copy what cast_params makes of it */
    static const int at[3][2] = {{0, 0}, {1, 1}, {1, 2}};
    for (int c = 0; c < 3; c++) {
        long o = at[c][0], og = at[c][1], k = n - 3;
        C(p)->adamw(C(p), par + o, m + o, v + o, g + og, k, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.7f, 4, NULL);
        long eb = p->bf16 ? 2 : 4;
        void *gc = up_act(p, rnd(n, 8, 1, 0), n), *gref = up_act(p, rnd(n, 8, 1, 0), n);
        G(p)->adamw(G(p), (float *)gp + o, (float *)gm + o, (float *)gv + o, (float *)gg + og, k, 1e-2f, 0.9f, 0.95f,
                    1e-8f, 0.1f, 0.7f, 4, (char *)gc + o * eb);
        G(p)->cast_params(G(p), (char *)gref + o * eb, (float *)gp + o, k);
        CHECK_GPU(p);
        CHECK_REL("adamw param, fused", down_f32(p, gp, n), par, n, 1e-6);
        CHECK_REL("adamw m, fused", down_f32(p, gm, n), m, n, 1e-6);
        CHECK_REL("adamw compute copy = cast_params of the update", down_act(p, gc, n), down_act(p, gref, n), n, 0.0);
    }
    float *act = rnd(n, 6, 1, 0);
    void *ga = up_act(p, act, n);
    C(p)->cast_params(C(p), act, x, n);
    G(p)->cast_params(G(p), ga, gx, n);
    CHECK_GPU(p);
    CHECK_REL("cast_params", down_act(p, ga, n), act, n, 0.0);
    float *y = rnd(n, 7, 1, 0);
    void *gy = up_f32(p, y, n);
    C(p)->add(C(p), y, x, n);
    G(p)->add(G(p), gy, gx, n);
    CHECK_GPU(p);
    CHECK_REL("add", down_f32(p, gy, n), y, n, 0.0);
    gpair_close(p);
    return 0;
}
BOTH(optim)

/* Failures become an ms_status and a message, never an abort. */
TEST(cuda_errors_are_statuses) {
    gpair P, *p = &P;
    if (gpair_open(p, MS_PRECISION_BF16)) return 1;
    void *big = NULL;
    CHECK_FAILS(G(p)->reserve(G(p), (int64_t)1 << 50, &big), MS_ERR_NOMEM, "could not reserve");
    CHECK(big == NULL);
    CHECK_OK(ms_cuda_status(G(p)));
    void *buf = NULL;
    CHECK_OK(G(p)->reserve(G(p), 1 << 20, &buf));
    G(p)->attention_fwd(G(p), buf, buf, buf, buf, buf, NULL, 1, 4, 1, 1, 256);
    G(p)->sync(G(p));
    CHECK_FAILS(ms_cuda_status(G(p)), MS_ERR_INVALID, "head_dim <= 128");
    gpair_close(p);
    return 0;
}

/* The profile times each op of the window by name, a matmul by its shape,
 * and the ops fit inside the window. */
TEST(cuda_profile_times_ops_by_name) {
    gpair P, *p = &P;
    if (gpair_open(p, MS_PRECISION_BF16)) return 1;
    long n = 512, in = 256, out = 384;
    float *x = rnd(n * in, 1, 1, 1), *w = rnd(out * in, 2, 0.5f, 1), *nw = rnd(in, 3, 1, 1);
    void *gx = up_act(p, x, n * in), *gw = up_act(p, w, out * in), *gy = up_act(p, x, n * out);
    void *gn = up_act(p, nw, in), *gxn = up_act(p, x, n * in), *grstd = up_f32(p, x, n);
    ms_op_time ops[8];
    double window = -1;
    CHECK(G(p)->profile(G(p), 0, ops, 8, &window) == 0); /* none running: nothing, window untouched */
    CHECK(window == -1);
    CHECK(G(p)->profile(G(p), 1, NULL, 0, NULL) == 0);
    for (int i = 0; i < 3; i++) G(p)->matmul_fwd(G(p), gy, gx, gw, n, in, out, i == 2 ? gy : NULL);
    G(p)->rmsnorm_fwd(G(p), gxn, grstd, gx, gn, n, in, 1e-5f);
    int got = G(p)->profile(G(p), 0, ops, 8, &window);
    CHECK_GPU(p);
    CHECK(got == 3);
    double sum = 0;
    int seen = 0;
    for (int i = 0; i < got; i++) {
        CHECK(ops[i].seconds > 0);
        CHECK(i == 0 || ops[i].seconds <= ops[i - 1].seconds); /* largest first */
        sum += ops[i].seconds;
        const char *names[] = {"matmul 384x512x256 TN", "matmul 384x512x256 TN +=", "rmsnorm_fwd"};
        int64_t calls[] = {2, 1, 1};
        for (int k = 0; k < 3; k++)
            if (strcmp(ops[i].name, names[k]) == 0) {
                CHECK(ops[i].calls == calls[k]);
                seen |= 1 << k;
            }
    }
    CHECK(seen == 7);
    CHECK(window >= sum && window < 1.0);
    CHECK(G(p)->profile(G(p), 1, NULL, 0, NULL) == 0); /* a second window starts afresh */
    G(p)->rmsnorm_fwd(G(p), gxn, grstd, gx, gn, n, in, 1e-5f);
    CHECK(G(p)->profile(G(p), 0, ops, 1, &window) == 1);
    CHECK(ops[0].calls == 1 && strcmp(ops[0].name, "rmsnorm_fwd") == 0);
    gpair_close(p);
    return 0;
}
