/*
 * spec/gpu/determinism_test.c — the CUDA backward of the embedding, of
 * RMSNorm's weight and of attention is bitwise repeatable (no float atomics:
 * the same inputs give the same bits, run after run), the first two matching
 * the CPU reference (ops_test.c checks attention's; gpu.h's
 * tolerances); and the backend's scratch is the plan's: an op asking for
 * more than was planned fails with a status naming it and both sizes.
 * bench_backward_reductions times the two at real sizes (not a spec: `make
 * test-gpu` skips bench_*).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "cuda/kernels.h"
#include "gpu.h"

#define C(p) (&(p)->cpu)
#define G(p) (&(p)->gpu)
#define BOTH(name)                                                              \
    TEST(cuda_##name##_fp32) { return name(MS_PRECISION_FP32); }                \
    TEST(cuda_##name##_bf16) { return name(MS_PRECISION_BF16); }

/* The first element where two runs differ in their bits, or -1. */
static long first_difference(const float *a, const float *b, long n) {
    for (long i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(float)) != 0) return i;
    return -1;
}

#define CHECK_SAME_BITS(what, a, b, n)                                                           \
    do {                                                                                         \
        long at_ = first_difference(a, b, n);                                                    \
        CHECK_MSG(at_ < 0, "%s: two runs on the same inputs differ at element %ld (%.9g vs %.9g)", \
                  what, at_, at_ < 0 ? 0.0 : (double)(a)[at_], at_ < 0 ? 0.0 : (double)(b)[at_]); \
    } while (0)

/* ---- embedding ---------------------------------------------------------------- */

/* dtable += the scatter of dy by tok: the GPU twice from the same dtable, the CPU once. */
static int embedding_case(gpair *p, const char *name, long V, long D, long n, const int32_t *tok, unsigned seed) {
    int b = p->bf16;
    float *dy = rnd(n * D, seed, 1, b), *dt0 = rnd(V * D, seed + 1, 1, 0), *dt = host_copy(dt0, V * D);
    void *gdy = up_act(p, dy, n * D), *gtok = up_i32(p, tok, n);
    void *g1 = up_f32(p, dt0, V * D), *g2 = up_f32(p, dt0, V * D);
    CHECK(gdy && gtok && g1 && g2);
    C(p)->embedding_bwd(C(p), dt, dy, tok, n, (int)D);
    G(p)->embedding_bwd(G(p), g1, gdy, gtok, n, (int)D);
    G(p)->embedding_bwd(G(p), g2, gdy, gtok, n, (int)D);
    CHECK_GPU(p);
    float *r1 = down_f32(p, g1, V * D), *r2 = down_f32(p, g2, V * D);
    CHECK_SAME_BITS(name, r1, r2, V * D);
    CHECK_REL(name, r1, dt, V * D, TOL_F32);
    /* rows of tokens absent from the batch are untouched */
    char *seen = calloc((size_t)V, 1);
    for (long i = 0; i < n; i++) seen[tok[i]] = 1;
    for (long v = 0; v < V; v++)
        if (!seen[v]) CHECK_MSG(memcmp(r1 + v * D, dt0 + v * D, sizeof(float) * (size_t)D) == 0,
                                "%s: the row of token %ld, absent from the batch, changed", name, v);
    fprintf(stderr, "%s %s: n %ld, dim %ld, vocab %ld: repeatable, relative error %.2e\n", p->bf16 ? "bf16" : "fp32",
            name, n, D, V, rel_err(r1, dt, V * D));
    G(p)->release(G(p), gdy), G(p)->release(G(p), gtok), G(p)->release(G(p), g1), G(p)->release(G(p), g2);
    free(dy), free(dt0), free(dt), free(r1), free(r2), free(seen);
    return 0;
}

static int embedding_bwd_repeatable(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    long n = 5000;
    int32_t *tok = malloc(sizeof(int32_t) * 70000);
    float *r = rnd(70000, 11, 1, 0);
    /* about five of each of 1000 tokens: runs crossing the 64-pair chunks */
    for (long i = 0; i < n; i++) tok[i] = (int32_t)((r[i] + 1) * 0.5f * 999.0f);
    if (embedding_case(p, "embedding_bwd, random tokens", 1000, 256, n, tok, 1)) return 1;
    /* a 128K vocabulary (three radix passes), one token three times in four, 200 columns (a ragged slice) */
    n = 20000;
    for (long i = 0; i < n; i++) tok[i] = (i % 4) ? 128000 : (int32_t)((r[i] + 1) * 0.5f * 128255.0f);
    if (embedding_case(p, "embedding_bwd, one token repeated 15000 times", 128256, 200, n, tok, 3)) return 1;
    /* one token only, then another at the end (a single pass; a ragged last tile and chunk) */
    n = 4097;
    for (long i = 0; i < n; i++) tok[i] = i == n - 1 ? 69 : 0;
    if (embedding_case(p, "embedding_bwd, one token throughout", 70, 33, n, tok, 5)) return 1;
    /* tokens in descending order, several tiles, three column slices */
    n = 3 * 2048 + 5;
    for (long i = 0; i < n; i++) tok[i] = (int32_t)((n - 1 - i) * 300 / n);
    if (embedding_case(p, "embedding_bwd, descending tokens", 300, 520, n, tok, 7)) return 1;
    /* a long batch of few distinct tokens, each spread over many chunks */
    n = 70000;
    for (long i = 0; i < n; i++) tok[i] = (int32_t)((r[i] + 1) * 0.5f * 7.0f) * 4099;
    if (embedding_case(p, "embedding_bwd, 8 tokens over 70000 positions", 32000, 64, n, tok, 9)) return 1;
    tok[0] = 5;
    if (embedding_case(p, "embedding_bwd, one position", 10, 7, 1, tok, 13)) return 1;
    free(tok), free(r);
    gpair_close(p);
    return 0;
}
BOTH(embedding_bwd_repeatable)

/* ---- RMSNorm ------------------------------------------------------------------- */

static int rmsnorm_case(gpair *p, long n, long D, unsigned seed) {
    int b = p->bf16;
    float *x = rnd(n * D, seed, 2, b), *w = rnd(D, seed + 1, 0.2f, 0), *y = rnd(n * D, seed + 2, 1, b);
    float *rstd = malloc(sizeof(float) * (size_t)n);
    for (long j = 0; j < D; j++) w[j] = b ? cpu_bf16_round(1.0f + w[j]) : 1.0f + w[j];
    C(p)->rmsnorm_fwd(C(p), y, rstd, x, w, n, (int)D, 1e-5f);
    float *dy = rnd(n * D, seed + 3, 1, b), *dx0 = rnd(n * D, seed + 4, 1, b), *dw0 = rnd(D, seed + 5, 1, 0);
    float *dx = host_copy(dx0, n * D), *dw = host_copy(dw0, D);
    void *gx = up_act(p, x, n * D), *gw = up_act(p, w, D), *gr = up_f32(p, rstd, n), *gdy = up_act(p, dy, n * D);
    void *gdx[2], *gdw[2];
    for (int k = 0; k < 2; k++) gdx[k] = up_act(p, dx0, n * D), gdw[k] = up_f32(p, dw0, D);
    C(p)->rmsnorm_bwd(C(p), dx, dw, dy, x, w, rstd, n, (int)D, 1);
    for (int k = 0; k < 2; k++) G(p)->rmsnorm_bwd(G(p), gdx[k], gdw[k], gdy, gx, gw, gr, n, (int)D, 1);
    CHECK_GPU(p);
    float *dw1 = down_f32(p, gdw[0], D), *dw2 = down_f32(p, gdw[1], D);
    float *dx1 = down_act(p, gdx[0], n * D), *dx2 = down_act(p, gdx[1], n * D);
    CHECK_SAME_BITS("rmsnorm_bwd dw", dw1, dw2, D);
    CHECK_SAME_BITS("rmsnorm_bwd dx", dx1, dx2, n * D);
    CHECK_REL("rmsnorm_bwd dw", dw1, dw, D, p->tol);
    CHECK_REL("rmsnorm_bwd dx", dx1, dx, n * D, p->tol);
    fprintf(stderr, "%s rmsnorm_bwd: n %ld, dim %ld: repeatable, dw relative error %.2e\n", p->bf16 ? "bf16" : "fp32",
            n, D, rel_err(dw1, dw, D));
    G(p)->release(G(p), gx), G(p)->release(G(p), gw), G(p)->release(G(p), gr), G(p)->release(G(p), gdy);
    for (int k = 0; k < 2; k++) G(p)->release(G(p), gdx[k]), G(p)->release(G(p), gdw[k]);
    free(x), free(w), free(y), free(rstd), free(dy), free(dx0), free(dw0), free(dx), free(dw);
    free(dw1), free(dw2), free(dx1), free(dx2);
    return 0;
}

static int rmsnorm_bwd_repeatable(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    if (rmsnorm_case(p, 133, 160, 1)) return 1;   /* 3 slices, the last ragged */
    if (rmsnorm_case(p, 5000, 300, 2)) return 1;  /* 79 slices, 3 column blocks */
    if (rmsnorm_case(p, 70001, 64, 3)) return 1;  /* the most slices (256), of 274 rows */
    gpair_close(p);
    return 0;
}
BOTH(rmsnorm_bwd_repeatable)

/* ---- attention ------------------------------------------------------------------ */

/* The backward twice on the same inputs: the same bits (the flash backward
 * sums dq across key blocks in a fixed order: at hd 128 on sm_90 the fused
 * kernel's ordered bulk reductions, elsewhere a kernel of its own). */
static int attention_case(gpair *p, int B, int T, int H, int KV, int hd) {
    int b = p->bf16;
    long nq = (long)B * T * H * hd, nk = (long)B * T * KV * hd, nl = (long)B * H * T;
    float *q = rnd(nq, 1, 1.5f, b), *k = rnd(nk, 2, 1.5f, b), *v = rnd(nk, 3, 1, b), *dout = rnd(nq, 4, 1, b);
    void *gq = up_act(p, q, nq), *gk = up_act(p, k, nk), *gv = up_act(p, v, nk), *gdo = up_act(p, dout, nq);
    void *go = up_act(p, dout, nq), *gl = up_f32(p, dout, nl), *g[2][3];
    G(p)->attention_fwd(G(p), go, gl, gq, gk, gv, NULL, B, T, H, KV, hd);
    for (int r = 0; r < 2; r++) {
        g[r][0] = up_act(p, q, nq), g[r][1] = up_act(p, k, nk), g[r][2] = up_act(p, v, nk);
        G(p)->attention_bwd(G(p), g[r][0], g[r][1], g[r][2], gdo, gq, gk, gv, go, gl, NULL, B, T, H, KV, hd);
    }
    CHECK_GPU(p);
    const char *name[3] = {"attention_bwd dq", "attention_bwd dk", "attention_bwd dv"};
    for (int i = 0; i < 3; i++) {
        long n = i ? nk : nq;
        float *r1 = down_act(p, g[0][i], n), *r2 = down_act(p, g[1][i], n);
        CHECK_SAME_BITS(name[i], r1, r2, n);
        free(r1), free(r2);
    }
    fprintf(stderr, "%s attention_bwd: B %d, T %d, %d heads, %d kv heads, hd %d: repeatable\n",
            b ? "bf16" : "fp32", B, T, H, KV, hd);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) G(p)->release(G(p), g[r][i]);
    G(p)->release(G(p), gq), G(p)->release(G(p), gk), G(p)->release(G(p), gv), G(p)->release(G(p), gdo);
    G(p)->release(G(p), go), G(p)->release(G(p), gl);
    free(q), free(k), free(v), free(dout);
    return 0;
}

static int attention_bwd_repeatable(int prec) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    if (attention_case(p, 2, 2048, 32, 8, 128)) return 1; /* 16 key blocks of 128, GQA of 4 */
    if (attention_case(p, 1, 1000, 8, 8, 64)) return 1;
    gpair_close(p);
    return 0;
}
BOTH(attention_bwd_repeatable)

/* ---- the scratch is the plan's ---------------------------------------------------- */

TEST(cuda_scratch_is_planned) {
    ms_device d;
    /* without the planned scratch handed over, an op that needs it fails saying so */
    CHECK_OK(ms_device_init(&d, MS_DEVICE_CUDA, MS_PRECISION_FP32, 0));
    CHECK_OK(d.start(&d));
    void *buf = NULL;
    CHECK_OK(d.reserve(&d, 1 << 20, &buf));
    d.zero(&d, buf, 1 << 20);
    d.matmul_fwd(&d, buf, buf, buf, 4, 4, 4, NULL);
    d.sync(&d);
    CHECK_FAILS(ms_cuda_status(&d), MS_ERR_STATE, "matmul needs the backend's scratch");
    d.release(&d, buf);
    d.stop(&d);

    /* planned for 256 rows of 64: within it the ops run; 4096 rows ask more and fail, naming both sizes */
    ms_device_shape shape = {.rows = 256, .B = 1, .T = 256, .heads = 2, .dim = 64};
    int64_t planned = ms_cuda_scratch_bytes(NULL, &shape), ops = ms_cuda_op_scratch_bytes(&shape);
    CHECK(planned == 32 * 1024 * 1024 + ms_cuda_sums_bytes() + ops);
    CHECK(ops >= cuda_embedding_bwd_scratch(256, 64) && ops >= cuda_rmsnorm_bwd_scratch(256, 64));
    CHECK(ops >= 1 * 2 * 256 * 4 && ops >= 256 * 8);
    CHECK_OK(ms_device_init(&d, MS_DEVICE_CUDA, MS_PRECISION_FP32, 0));
    CHECK_OK(d.start(&d));
    void *base = NULL;
    CHECK_OK(d.reserve(&d, planned, &base));
    CHECK_FAILS(d.scratch_use(&d, base, 1000), MS_ERR_INVALID, "must hold at least");
    CHECK_OK(d.scratch_use(&d, base, planned));
    long n = 4096, D = 64;
    void *tok = NULL, *dy = NULL, *dt = NULL;
    CHECK_OK(d.reserve(&d, n * 4, &tok));
    CHECK_OK(d.reserve(&d, n * D * 4, &dy));
    CHECK_OK(d.reserve(&d, 10 * D * 4, &dt));
    d.zero(&d, tok, n * 4);
    d.zero(&d, dy, n * D * 4);
    d.zero(&d, dt, 10 * D * 4);
    d.embedding_bwd(&d, dt, dy, tok, 256, (int)D);
    d.sync(&d);
    CHECK_OK(ms_cuda_status(&d));
    d.embedding_bwd(&d, dt, dy, tok, n, (int)D);
    d.sync(&d);
    char asked[96], has[96];
    snprintf(asked, sizeof asked, "embedding_bwd asks for %lld bytes", (long long)cuda_embedding_bwd_scratch(n, D));
    snprintf(has, sizeof has, "the plan has %lld for one op's call (of %lld in all)", (long long)ops,
             (long long)planned);
    CHECK_FAILS(ms_cuda_status(&d), MS_ERR_NOMEM, asked);
    CHECK_FAILS(ms_cuda_status(&d), MS_ERR_NOMEM, has);
    d.stop(&d);
    return 0;
}

/* ---- timings at real sizes ------------------------------------------------------------- */

/* bf16, a 128256-row table; Zipf-like tokens (a few very frequent). */
TEST(bench_backward_reductions) {
    ms_device d;
    CHECK_OK(ms_device_init(&d, MS_DEVICE_CUDA, MS_PRECISION_BF16, 0));
    CHECK_OK(d.start(&d));
    long V = 128256, nmax = 65536, Dmax = 4096;
    CHECK(gpu_scratch(&d, (ms_device_shape){.rows = nmax, .B = 8, .T = 8192, .heads = 32, .dim = (int)Dmax}) == 0);
    void *tok, *dy, *x, *dt, *dw, *dx, *rstd, *mf;
    CHECK_OK(d.reserve(&d, nmax * 4, &tok));
    CHECK_OK(d.reserve(&d, nmax * Dmax * 2, &dy));
    CHECK_OK(d.reserve(&d, nmax * Dmax * 2, &x));
    CHECK_OK(d.reserve(&d, nmax * Dmax * 2, &dx));
    CHECK_OK(d.reserve(&d, V * Dmax * 4, &dt));
    CHECK_OK(d.reserve(&d, Dmax * 4, &dw));
    CHECK_OK(d.reserve(&d, nmax * 4, &rstd));
    CHECK_OK(d.reserve(&d, nmax * Dmax * 4, &mf));
    float *h = rnd(nmax, 3, 1, 0);
    int32_t *t = malloc(sizeof(int32_t) * (size_t)nmax);
    for (long i = 0; i < nmax; i++) {
        float u = (h[i] + 1) * 0.5f;
        t[i] = (int32_t)(u * u * u * u * (float)(V - 1));
    }
    d.upload(&d, tok, t, nmax * 4);
    float *r = rnd(nmax * 16, 4, 1, 0);
    for (long i = 0; i < nmax * Dmax; i += nmax * 16) d.upload(&d, (float *)mf + i, r, nmax * 16 * 4);
    d.cast_params(&d, dy, mf, nmax * Dmax);
    d.cast_params(&d, x, mf, nmax * Dmax);
    d.upload(&d, rstd, r, nmax * 4);
    d.zero(&d, dt, V * Dmax * 4);
    d.sync(&d);
    long shapes[][2] = {{4096, 2048}, {16384, 2048}, {65536, 2048}, {8192, 4096}, {65536, 4096}};
    for (int s = 0; s < 5; s++) {
        long n = shapes[s][0], D = shapes[s][1];
        d.embedding_bwd(&d, dt, dy, tok, n, (int)D);
        d.rmsnorm_bwd(&d, dx, dw, dy, x, x, rstd, n, (int)D, 1);
        d.sync(&d);
        double t0 = ms_now();
        for (int i = 0; i < 10; i++) d.embedding_bwd(&d, dt, dy, tok, n, (int)D);
        d.sync(&d);
        double te = (ms_now() - t0) / 10;
        t0 = ms_now();
        for (int i = 0; i < 10; i++) d.rmsnorm_bwd(&d, dx, dw, dy, x, x, rstd, n, (int)D, 1);
        d.sync(&d);
        double tr = (ms_now() - t0) / 10;
        CHECK_OK(ms_cuda_status(&d));
        printf("BENCH bf16 n %ld dim %ld: embedding_bwd %.1f us (dy read at %.0f GB/s), rmsnorm_bwd %.1f us\n", n, D,
               te * 1e6, n * D * 2 / te / 1e9, tr * 1e6);
    }
    free(h), free(t), free(r);
    d.stop(&d);
    return 0;
}
