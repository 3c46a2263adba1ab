/*
 * spec/gpu/model_test.c — a whole training step of a tiny Llama (model.c) on
 * the GPU against the same step on the CPU backend, and a 100-step run whose
 * loss must fall and track the CPU run. bench_* entries are timings, not
 * specs: `make test-gpu` skips them; `build/spec-gpu bench_llama_1b` runs one.
 */
#include <math.h>
#include <stdlib.h>

#include "core/clock.h"
#include "gpu.h"

static gmodel_config tiny(void) {
    return (gmodel_config){.V = 64, .D = 64, .L = 2, .H = 4, .KV = 2, .F = 128, .B = 2, .T = 32, .tie = 0,
                           .chunk = 24, .theta = 10000.0f, .eps = 1e-5f};
}

/* A learnable batch: each sequence repeats a short pattern; targets are the next token. */
static void pattern_batch(const gmodel_config *c, int32_t *tok, int32_t *tgt) {
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++) {
            int i = b * c->T + t, period = 5 + b;
            tok[i] = (b * 11 + (t % period) * 7) % c->V;
            tgt[i] = (b * 11 + ((t + 1) % period) * 7) % c->V;
        }
    tgt[3] = -1;
}

static int run_pair(int prec, int steps, double tol_loss, double tol_master, int must_fall) {
    gpair P, *p = &P;
    if (gpair_open(p, prec)) return 1;
    gmodel_config c = tiny();
    int32_t tok[64], tgt[64];
    pattern_batch(&c, tok, tgt);
    gmodel *mc = gmodel_new(&p->cpu, &c, NULL, 3);
    int64_t np = gmodel_params(mc);
    float *init = malloc(sizeof(float) * (size_t)np), *wc = malloc(sizeof(float) * (size_t)np);
    float *wg = malloc(sizeof(float) * (size_t)np);
    gmodel_master(mc, init);
    gmodel *mg = gmodel_new(&p->gpu, &c, init, 0);
    CHECK_GPU(p);
    gmodel_set_batch(mc, tok, tgt);
    gmodel_set_batch(mg, tok, tgt);
    double worst = 0, first = 0, last = 0;
    for (int s = 1; s <= steps; s++) {
        double lc = gmodel_step(mc, 3e-3f, s), lg = gmodel_step(mg, 3e-3f, s);
        CHECK_GPU(p);
        CHECK(isfinite(lg));
        double e = fabs(lg - lc) / fabs(lc);
        worst = e > worst ? e : worst;
        if (s == 1) {
            first = lg;
            gmodel_master(mc, wc);
            gmodel_master(mg, wg);
            double me = rel_err(wg, wc, np);
            fprintf(stderr, "%s step 1: loss cpu %.6f gpu %.6f (rel %.2e); master after AdamW rel %.2e\n",
                    p->bf16 ? "bf16" : "fp32", lc, lg, e, me);
            CHECK_MSG(me <= tol_master, "master weights after one step differ by %.3g", me);
        }
        last = lg;
    }
    fprintf(stderr, "%s %d steps: loss %.4f -> %.4f, worst |gpu-cpu|/cpu %.2e\n", p->bf16 ? "bf16" : "fp32", steps,
            first, last, worst);
    CHECK_MSG(worst <= tol_loss, "loss differs from the CPU by %.3g", worst);
    if (must_fall) CHECK_MSG(last < 0.5 * first, "loss %.4f -> %.4f did not halve", first, last);
    gpair_close(p);
    return 0;
}

/* One whole step: loss and master weights after clipping + AdamW. */
TEST(cuda_model_step_fp32) { return run_pair(MS_PRECISION_FP32, 1, 1e-5, 1e-4, 0); }
TEST(cuda_model_step_bf16) { return run_pair(MS_PRECISION_BF16, 1, 1e-3, 1e-2, 0); }
/* 100 steps: loss within 1% of the CPU run at every step, and it falls. */
TEST(cuda_training_run_fp32) { return run_pair(MS_PRECISION_FP32, 100, 1e-2, 1e-4, 1); }
TEST(cuda_training_run_bf16) { return run_pair(MS_PRECISION_BF16, 100, 1e-2, 1e-2, 1); }

static int bench_model(gmodel_config c, const char *name, int warm, int steps) {
    ms_device d;
    CHECK_OK(ms_device_init(&d, MS_DEVICE_CUDA, MS_PRECISION_BF16, 0));
    CHECK_OK(d.start(&d));
    gmodel *m = gmodel_new(&d, &c, NULL, 1);
    CHECK_OK(ms_cuda_status(&d));
    long N = (long)c.B * c.T;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *tgt = malloc(sizeof(int32_t) * (size_t)N);
    float *r = rnd(2 * N, 5, 1, 0);
    for (long i = 0; i < N; i++) {
        tok[i] = (int32_t)((r[i] + 1) * 0.5f * (c.V - 1));
        tgt[i] = (int32_t)((r[N + i] + 1) * 0.5f * (c.V - 1));
    }
    gmodel_set_batch(m, tok, tgt);
    double loss = 0;
    for (int s = 1; s <= warm; s++) loss = gmodel_step(m, 1e-4f, s);
    CHECK_OK(ms_cuda_status(&d));
    double t0 = ms_now();
    for (int s = 1; s <= steps; s++) loss = gmodel_step(m, 1e-4f, warm + s);
    double dt = (ms_now() - t0) / steps;
    CHECK_OK(ms_cuda_status(&d));
    printf("BENCH %s: %lld params, B=%d T=%d bf16: %.1f ms/step, %.0f tokens/s (loss %.4f)\n", name,
           (long long)gmodel_params(m), c.B, c.T, dt * 1e3, N / dt, loss);
    d.stop(&d);
    return 0;
}

TEST(bench_tiny) {
    gmodel_config c = tiny();
    c.B = 16, c.T = 256;
    return bench_model(c, "tiny", 3, 20);
}

TEST(bench_llama_1b) {
    gmodel_config c = {.V = 128256, .D = 2048, .L = 16, .H = 32, .KV = 8, .F = 8192, .B = 1, .T = 4096, .tie = 1,
                       .chunk = 1024, .theta = 500000.0f, .eps = 1e-5f};
    return bench_model(c, "llama-3.2-1b-shape", 2, 5);
}

/* Four blocks of the Llama-3-8B shape at T=8192 with its embedding and LM
 * head: the 8B step's kernels at their real sizes, small enough for
 * kernels/bench/profile_step.sh to time every launch of a step. */
TEST(bench_llama_8b_4_blocks) {
    gmodel_config c = {.V = 128256, .D = 4096, .L = 4, .H = 32, .KV = 8, .F = 14336, .B = 1, .T = 8192, .tie = 0,
                       .chunk = 1024, .theta = 500000.0f, .eps = 1e-5f};
    return bench_model(c, "llama-3-8b-shape-4-blocks", 2, 5);
}

/* Attention and one matmul alone at the 1B shape, for the notes. */
TEST(bench_ops_1b) {
    ms_device d;
    CHECK_OK(ms_device_init(&d, MS_DEVICE_CUDA, MS_PRECISION_BF16, 0));
    CHECK_OK(d.start(&d));
    int B = 1, T = 4096, H = 32, KV = 8, hd = 64 * 2;
    CHECK(gpu_scratch(&d, (ms_device_shape){.rows = (int64_t)B * T, .B = B, .T = T, .heads = H, .head_dim = hd, .dim = 2048}) == 0);
    long nq = (long)B * T * H * hd, nk = (long)B * T * KV * hd;
    void *q, *k, *v, *o, *dq, *dk, *dv, *lse, *x, *w, *y;
    CHECK_OK(d.reserve(&d, nq * 2, &q)); CHECK_OK(d.reserve(&d, nk * 2, &k)); CHECK_OK(d.reserve(&d, nk * 2, &v));
    CHECK_OK(d.reserve(&d, nq * 2, &o)); CHECK_OK(d.reserve(&d, nq * 2, &dq)); CHECK_OK(d.reserve(&d, nk * 2, &dk));
    CHECK_OK(d.reserve(&d, nk * 2, &dv)); CHECK_OK(d.reserve(&d, (long)B * H * T * 4, &lse));
    float *h = rnd(nq, 1, 1, 1);
    /* values: cast from a random fp32 master */
    void *mq; CHECK_OK(d.reserve(&d, nq * 4, &mq));
    d.upload(&d, mq, h, nq * 4);
    d.cast_params(&d, q, mq, nq); d.cast_params(&d, k, mq, nk); d.cast_params(&d, v, (float *)mq + 1, nk);
    d.cast_params(&d, o, mq, nq);
    d.sync(&d);
    double flop_f = 4.0 * B * H * (double)T * T / 2 * hd;  /* causal: half of QK^T and PV */
    for (int i = 0; i < 3; i++) { /* warm-up: clocks, cuBLASLt and kernel loading */
        d.attention_fwd(&d, o, lse, q, k, v, NULL, B, T, H, KV, hd);
        d.attention_bwd(&d, dq, dk, dv, o, q, k, v, o, lse, NULL, B, T, H, KV, hd);
    }
    d.sync(&d);
    double t0 = ms_now();
    for (int i = 0; i < 10; i++) d.attention_fwd(&d, o, lse, q, k, v, NULL, B, T, H, KV, hd);
    d.sync(&d);
    double tf = (ms_now() - t0) / 10;
    t0 = ms_now();
    for (int i = 0; i < 10; i++) d.attention_bwd(&d, dq, dk, dv, o, q, k, v, o, lse, NULL, B, T, H, KV, hd);
    d.sync(&d);
    double tb = (ms_now() - t0) / 10;
    CHECK_OK(ms_cuda_status(&d));
    printf("BENCH attention B=%d T=%d H=%d KV=%d hd=%d bf16: fwd %.2f ms (%.1f TFLOP/s), bwd %.2f ms (%.1f TFLOP/s)\n",
           B, T, H, KV, hd, tf * 1e3, flop_f / tf / 1e12, tb * 1e3, 2.5 * flop_f / tb / 1e12);
    int n = 4096, in = 2048, out = 8192;
    CHECK_OK(d.reserve(&d, (long)n * in * 2, &x)); CHECK_OK(d.reserve(&d, (long)out * in * 2, &w));
    CHECK_OK(d.reserve(&d, (long)n * out * 2, &y));
    d.cast_params(&d, x, mq, (long)n * in); d.cast_params(&d, w, mq, (long)out * in);
    d.matmul_fwd(&d, y, x, w, n, in, out, NULL);
    d.sync(&d);
    t0 = ms_now();
    for (int i = 0; i < 20; i++) d.matmul_fwd(&d, y, x, w, n, in, out, NULL);
    d.sync(&d);
    double tm = (ms_now() - t0) / 20;
    CHECK_OK(ms_cuda_status(&d));
    printf("BENCH matmul %dx%dx%d bf16: %.3f ms (%.0f TFLOP/s)\n", n, in, out, tm * 1e3, 2.0 * n * in * out / tm / 1e12);
    d.stop(&d);
    return 0;
}
