/*
 * kernels/bench/attention.c — the attention workbench: the tensor-core flash
 * kernels (kernels/cuda/attention_flash.cu's mma.sync ones and, on sm_90,
 * attention_wgmma.cu's) against the plain fp32-arithmetic
 * kernels (kernels/cuda/attention.cu) as the reference, on fresh random bf16
 * inputs, then timed with CUDA events (median of 10 after 3 warm-ups).
 *
 *   build/bench-attention [T ...]      default: the shapes below
 *
 * Prints one "BENCH flash ..." line per shape: relative L2 errors of out, lse,
 * dq, dk, dv against the reference (bf16 tolerance 1e-2; fails above it) and
 * fwd / bwd times and TFLOP/s. FLOPs: causal forward 4·B·H·T²·hd / 2, backward
 * 2.5× that (the convention of FlashAttention's benchmarks and of
 * kernels/bench/attention_sdpa.py, which times torch's SDPA on the same shapes).
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cuda/kernels.h"


typedef struct shape { int B, T, H, KV, hd, docs; } shape;

/* A kernel choice: the mma.sync kernels' warps per forward block (nw), keys per
 * forward tile, warps per dq and dk/dv block; or the wgmma kernels' backward
 * (their forward has one shape): warpgroups per dq block (dq: 1 at head dim
 * 64, or 2; 0 the fused backward, head dim 128), warpgroups per dk/dv block
 * (kv) and dk/dv blocks an SM (kv_occ: 1, or 3 at head dim 64 with one
 * warpgroup). */
typedef struct variant { int wgmma, nw, keys, dq, kv, kv_occ; } variant;
static const variant variants[] = {
    {0, 4, 64, 4, 4, 0}, {0, 8, 64, 8, 4, 0}, {0, 4, 128, 4, 8, 0}, {0, 8, 128, 8, 8, 0},
    {1, 0, 0, 2, 1, 1},  {1, 0, 0, 2, 2, 1},  {1, 0, 0, 2, 1, 3},  {1, 0, 0, 1, 1, 3},  {1, 0, 0, 0, 2, 1},
};


/* The buffers of one shape: inputs, and outputs [0] reference / [1] under test. */
typedef struct bufs {
    void *q, *k, *v, *dout, *o[2], *dq[2], *dk[2], *dv[2];
    float *lse[2];
    void *work; /* the backward's scratch: cuda_attention_bwd_scratch */
    int32_t *doc;
} bufs;

/* Launch what (0 forward, 1 backward, 2 dq alone, 3 dk/dv alone) of variant x
 * (NULL: the engine's default) into the [1] outputs. */
static void launch(const variant *x, int what, cudaStream_t st, bufs *u, shape s) {
    ms_cuda_stream ms = (ms_cuda_stream)st;
    int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
    if (what == 0) {
        if (!x) CK(cuda_flash_fwd(ms, u->o[1], u->lse[1], u->q, u->k, u->v, u->doc, B, T, H, KV, hd));
        else if (x->wgmma)
            CK(cuda_flash_wgmma_fwd(ms, u->o[1], u->lse[1], u->q, u->k, u->v, u->doc, B, T, H, KV, hd));
        else CK(cuda_flash_fwd_nw(ms, u->o[1], u->lse[1], u->q, u->k, u->v, u->doc, B, T, H, KV, hd, x->nw, x->keys));
    } else if (!x) {
        CK(cuda_attention_bwd(ms, 1, u->dq[1], u->dk[1], u->dv[1], u->dout, u->q, u->k, u->v, u->o[1], u->lse[1],
                              u->work, u->doc, B, T, H, KV, hd));
    } else if (x->wgmma) {
        CK(cuda_flash_wgmma_bwd(ms, u->dq[1], u->dk[1], u->dv[1], u->dout, u->q, u->k, u->v, u->lse[1], u->work,
                                u->doc, B, T, H, KV, hd, x->dq, x->kv, x->kv_occ, what == 1 ? 3 : what - 1));
    } else {
        CK(cuda_flash_bwd_nw(ms, u->dq[1], u->dk[1], u->dv[1], u->dout, u->q, u->k, u->v, u->lse[1], u->work, u->doc,
                             B, T, H, KV, hd, x->dq, x->kv));
    }
}

/* One launch to time: what of variant x on a shape's buffers. */
typedef struct timing { const variant *x; int what; cudaStream_t st; bufs *u; shape s; } timing;
static void launch_timing(void *ctx) {
    timing *c = ctx;
    launch(c->x, c->what, c->st, c->u, c->s);
}
static float timed(const variant *x, int what, cudaStream_t st, bufs *u, shape s) {
    timing c = {x, what, st, u, s};
    return bench_median_ms(st, launch_timing, &c);
}

/* A device buffer of n bf16 values uniform in [-scale, scale]. */
static void *rand_bf16(long n, float scale) {
    uint16_t *h = malloc(2 * (size_t)n);
    for (long i = 0; i < n; i++) h[i] = bf16_bits(scale * uniform());
    void *d;
    CK(cudaMalloc(&d, 2 * (size_t)n));
    CK(cudaMemcpy(d, h, 2 * (size_t)n, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static void *dev(long bytes) {
    void *d;
    CK(cudaMalloc(&d, (size_t)bytes));
    CK(cudaMemset(d, 0xff, (size_t)bytes)); /* poison: NaN in bf16 and fp32 */
    return d;
}

/* ||a - b|| / ||b|| of two device buffers (bf16 when bf16, else fp32). */
static double rel(const void *a, const void *b, long n, int bf16) {
    size_t eb = bf16 ? 2 : 4;
    void *ha = malloc(eb * (size_t)n), *hb = malloc(eb * (size_t)n);
    CK(cudaMemcpy(ha, a, eb * (size_t)n, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb, b, eb * (size_t)n, cudaMemcpyDeviceToHost));
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double x = bf16 ? bf16_value(((uint16_t *)ha)[i]) : ((float *)ha)[i];
        double y = bf16 ? bf16_value(((uint16_t *)hb)[i]) : ((float *)hb)[i];
        num += (x - y) * (x - y);
        den += y * y;
    }
    free(ha);
    free(hb);
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}


static int run(shape s) {
    int B = s.B, T = s.T, H = s.H, KV = s.KV, hd = s.hd;
    long nq = (long)B * T * H * hd, nk = (long)B * T * KV * hd, nl = (long)B * H * T;
    bufs U = {0}, *u = &U;
    u->q = rand_bf16(nq, 2.0f), u->k = rand_bf16(nk, 2.0f), u->v = rand_bf16(nk, 1.0f), u->dout = rand_bf16(nq, 1.0f);
    for (int i = 0; i < 2; i++) {
        u->o[i] = dev(nq * 2), u->dq[i] = dev(nq * 2), u->dk[i] = dev(nk * 2), u->dv[i] = dev(nk * 2);
        u->lse[i] = dev(nl * 4);
    }
    u->work = dev(cuda_attention_bwd_scratch(B, T, H, hd));
    if (s.docs) { /* documents start at 0, T/3 and 3T/5 + b */
        int32_t *h = malloc(sizeof(int32_t) * (size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) h[b * T + t] = t >= 3 * T / 5 + b ? 3 * T / 5 + b : t >= T / 3 ? T / 3 : 0;
        u->doc = dev(sizeof(int32_t) * (long)B * T);
        CK(cudaMemcpy(u->doc, h, sizeof(int32_t) * (size_t)B * T, cudaMemcpyHostToDevice));
        free(h);
    }
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    ms_cuda_stream ms = (ms_cuda_stream)st;
    /* the plain kernels into [0]: the reference */
    CK(cuda_attention_plain_fwd(ms, 1, u->o[0], u->lse[0], u->q, u->k, u->v, u->doc, B, T, H, KV, hd));
    CK(cuda_attention_plain_bwd(ms, 1, u->dq[0], u->dk[0], u->dv[0], u->dout, u->q, u->k, u->v, u->o[0], u->lse[0],
                                u->work, u->doc, B, T, H, KV, hd));
    launch(NULL, 0, st, u, s);
    launch(NULL, 1, st, u, s);
    CK(cudaStreamSynchronize(st));
    double e[5] = {rel(u->o[1], u->o[0], nq, 1), rel(u->lse[1], u->lse[0], nl, 0), rel(u->dq[1], u->dq[0], nq, 1),
                   rel(u->dk[1], u->dk[0], nk, 1), rel(u->dv[1], u->dv[0], nk, 1)};
    int bad = 0;
    for (int i = 0; i < 5; i++) bad |= !(e[i] <= 1e-2);

    double f = 4.0 * B * H * (double)T * T / 2 * hd, tf = 0, tb = 0;
    /* the variants, each checked and timed (the wgmma ones on sm_90 only); then the engine's default */
    int nv = (int)(sizeof variants / sizeof variants[0]);
    for (int a = 0; a <= nv; a++) {
        const variant *x = a < nv ? &variants[a] : NULL;
        if (x && x->wgmma &&
            (!cuda_flash_wgmma_ready() || ((x->kv_occ == 3 || x->dq == 1) && hd != 64) ||
             (x->dq == 0 && !cuda_attention_fused_bwd(hd))))
            continue;
        tf = timed(x, 0, st, u, s);
        tb = timed(x, 1, st, u, s);
        if (!x) break;
        double w = fmax(fmax(rel(u->o[1], u->o[0], nq, 1), rel(u->dq[1], u->dq[0], nq, 1)),
                        fmax(rel(u->dk[1], u->dk[0], nk, 1), rel(u->dv[1], u->dv[0], nk, 1)));
        bad |= !(w <= 1e-2);
        char what[192];
        if (x->wgmma && x->dq == 0)
            snprintf(what, sizeof what, "wgmma fwd | bwd fused, dq in the dk/dv kernel, %d warpgroups", x->kv);
        else if (x->wgmma)
            snprintf(what, sizeof what, "wgmma fwd | bwd dq %d warpgroup(s), dk/dv %d warpgroup(s), %d block(s) an "
                     "SM (dq %.3f ms, dk/dv %.3f ms)", x->dq, x->kv, x->kv_occ,
                     timed(x, 2, st, u, s), timed(x, 3, st, u, s));
        else
            snprintf(what, sizeof what, "mma fwd %d warps x %d keys | bwd dq %d warps, dk/dv %d warps", x->nw,
                     x->keys, x->dq, x->kv);
        printf("variant %s: fwd %.3f ms %.0f TFLOP/s, bwd %.3f ms %.0f TFLOP/s | worst rel err %.1e%s\n", what, tf,
               f / tf / 1e9, tb, 2.5 * f / tb / 1e9, w, w <= 1e-2 ? "" : "  FAILED");
    }
    /* the default backward once more, into the reference's buffers: the same bits (every sum across blocks in
       a fixed order) */
    CK(cuda_attention_bwd(ms, 1, u->dq[0], u->dk[0], u->dv[0], u->dout, u->q, u->k, u->v, u->o[1], u->lse[1],
                          u->work, u->doc, B, T, H, KV, hd));
    CK(cudaStreamSynchronize(st));
    int same = rel(u->dq[0], u->dq[1], nq, 1) == 0 && rel(u->dk[0], u->dk[1], nk, 1) == 0 &&
               rel(u->dv[0], u->dv[1], nk, 1) == 0;
    bad |= !same;
    printf("BENCH flash B=%d T=%d H=%d KV=%d hd=%d%s: fwd %.3f ms %.0f TFLOP/s, bwd %.3f ms %.0f TFLOP/s; "
           "rel err out %.1e lse %.1e dq %.1e dk %.1e dv %.1e; backward repeatable: %s%s\n",
           B, T, H, KV, hd, s.docs ? " docs" : "", tf, f / tf / 1e9, tb, 2.5 * f / tb / 1e9, e[0], e[1], e[2], e[3],
           e[4], same ? "bitwise" : "NO", bad ? "  FAILED" : "");
    fflush(stdout);
    for (int i = 0; i < 2; i++)
        cudaFree(u->o[i]), cudaFree(u->dq[i]), cudaFree(u->dk[i]), cudaFree(u->dv[i]), cudaFree(u->lse[i]);
    cudaFree(u->q), cudaFree(u->k), cudaFree(u->v), cudaFree(u->dout), cudaFree(u->work), cudaFree(u->doc);
    cudaStreamDestroy(st);
    return bad;
}

int main(int argc, char **argv) {
    shape shapes[] = {
        {1, 8192, 32, 32, 128, 0}, /* the target: causal bf16 hd 128 T=8192 */
        {1, 8192, 32, 8, 128, 0},  /* the Llama-3-8B layer: 4 query heads a kv head */
        {1, 4096, 32, 32, 128, 0},
        {1, 4096, 32, 8, 64, 0},   /* the Llama-3.2-1B layer */
        {2, 1000, 8, 2, 128, 1},   /* ragged T, GQA, documents */
        {2, 777, 4, 4, 64, 1},
    };
    int n = (int)(sizeof shapes / sizeof shapes[0]), bad = 0;
    if (argc > 1) { /* T values for the first two shapes */
        for (int i = 1; i < argc; i++)
            for (int k = 0; k < 2; k++) {
                shape s = shapes[k];
                s.T = atoi(argv[i]);
                bad |= run(s);
            }
        return bad;
    }
    for (int i = 0; i < n; i++) bad |= run(shapes[i]);
    return bad;
}
