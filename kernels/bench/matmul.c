/*
 * kernels/bench/matmul.c — the matmul workbench: what cuBLASLt's first
 * heuristic (the algorithm engine/device/cuda.c uses) leaves on the table at
 * the Llama-3-8B step's shapes, and what fusing the q/k/v and gate/up
 * projections would gain.
 *
 *   build/bench-matmul [N [HOT_MS]]   N tokens a micro-batch (default 8192, T=8192)
 *
 * Each shape is the engine's own call (row-major y = x W^T, dx = dy W,
 * dW = dy^T x in fp32, the same cuBLASLt descriptors): the first heuristic
 * and each of up to 16 others, timed with CUDA events (median of 10 after 3
 * warm-ups) on random bf16 data. One "BENCH matmul" line a shape: TFLOP/s of
 * the first heuristic and of the fastest, and which. Then the step's matmul
 * time both ways, and separate against fused projections.
 *
 * With HOT_MS each algorithm is timed instead after HOT_MS of running alone
 * (bench_sustained_ms), at the clock the GPU's power cap leaves it, as in a
 * long step, and a "BENCH matmul-algo" line names each one's configuration
 * (cuBLASLt's algorithm, tile, stages, cluster shape and split-k ids): which
 * algorithm spends the fewest joules a FLOP, the ranking a capped step needs.
 */
#include <cublasLt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "device/cuda.h"

#define LT(call)                                                                     \
    do {                                                                             \
        cublasStatus_t s_ = (call);                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                           \
            fprintf(stderr, "%s:%d: %s: status %d\n", __FILE__, __LINE__, #call, (int)s_); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

enum { FWD, DX, DW };
static const char *kind_name[] = {"fwd", "dx", "dw"};

/* One matmul of the step: y (n, out) = x (n, in) W^T, or its dx / dW; how
 * often a step runs it, and whether it is part of a projection fusing would
 * merge (1: one of the separate ones, 2: the fused one). */
typedef struct shape { const char *name; int kind, in, out, add, per_step, proj; } shape;

typedef struct call {
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    const cublasLtMatmulAlgo_t *algo;
    const void *a, *b;
    void *c;
    float beta;
    void *ws;
    size_t ws_bytes;
    cudaStream_t st;
} call;

static void launch(void *ctx) {
    call *k = ctx;
    float alpha = 1.0f;
    LT(cublasLtMatmul(k->lt, k->op, &alpha, k->a, k->la, k->b, k->lb, &k->beta, k->c, k->lc, k->c, k->lc, k->algo,
                      k->ws, k->ws_bytes, k->st));
}

static void *random_bf16(size_t n) {
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = bf16_bits(uniform() * 0.5f);
    void *d;
    CK(cudaMalloc(&d, n * 2));
    CK(cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static int algo_config(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoConfigAttributes_t what) {
    int v = -1;
    size_t written;
    return cublasLtMatmulAlgoConfigGetAttribute(a, what, &v, sizeof v, &written) == CUBLAS_STATUS_SUCCESS ? v : -1;
}

/* Times shape s at n tokens: *first and *best in ms (best over up to 16
 * heuristics; over 8, sustained for hot_ms each, when hot_ms > 0). */
static void measure(cublasLtHandle_t lt, cudaStream_t st, void *ws, size_t ws_bytes, const shape *s, int64_t n,
                    float hot_ms, float *first, float *best, int *best_i, int *found) {
    /* column-major as cuda.c's gemm(): m x n' = op(A) op(B) */
    int ta = s->kind == FWD, tb = s->kind == DW;
    int64_t M = s->kind == FWD ? s->out : s->in, Nc = s->kind == DW ? s->out : n;
    int64_t K = s->kind == FWD ? s->in : s->kind == DX ? s->out : n;
    int64_t lda = s->in, ldb = s->kind == FWD ? s->in : s->out, ldc = M;
    cudaDataType_t ct = s->kind == DW ? CUDA_R_32F : CUDA_R_16BF;
    call k = {.lt = lt, .ws = ws, .ws_bytes = ws_bytes, .st = st, .beta = s->add ? 1.0f : 0.0f};
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT(cublasLtMatmulDescCreate(&k.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(k.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT(cublasLtMatmulDescSetAttribute(k.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    LT(cublasLtMatrixLayoutCreate(&k.la, CUDA_R_16BF, ta ? K : M, ta ? M : K, lda));
    LT(cublasLtMatrixLayoutCreate(&k.lb, CUDA_R_16BF, tb ? Nc : K, tb ? K : Nc, ldb));
    LT(cublasLtMatrixLayoutCreate(&k.lc, ct, M, Nc, ldc));
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                            sizeof ws_bytes));
    cublasLtMatmulHeuristicResult_t h[16];
    LT(cublasLtMatmulAlgoGetHeuristic(lt, k.op, k.la, k.lb, k.lc, k.lc, pref, hot_ms > 0 ? 8 : 16, h, found));
    k.a = random_bf16((size_t)(lda * (ta ? M : K)));
    k.b = random_bf16((size_t)(ldb * (tb ? K : Nc)));
    CK(cudaMalloc(&k.c, (size_t)(ldc * Nc * (ct == CUDA_R_32F ? 4 : 2))));
    CK(cudaMemset(k.c, 0, (size_t)(ldc * Nc * (ct == CUDA_R_32F ? 4 : 2))));
    *best = 1e30f, *best_i = 0;
    for (int i = 0; i < *found; i++) {
        k.algo = &h[i].algo;
        float ms = hot_ms > 0 ? bench_sustained_ms(st, launch, &k, hot_ms) : bench_median_ms(st, launch, &k);
        if (hot_ms > 0)
            printf("BENCH matmul-algo %-4s %-14s #%d algo %d tile %d stages %d cluster %d splitk %d: %.3f ms %.0f "
                   "TFLOP/s\n", kind_name[s->kind], s->name, i, algo_config(k.algo, CUBLASLT_ALGO_CONFIG_ID),
                   algo_config(k.algo, CUBLASLT_ALGO_CONFIG_TILE_ID), algo_config(k.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                   algo_config(k.algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID),
                   algo_config(k.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM), ms, 2.0 * n * s->in * s->out / ms / 1e9);
        if (i == 0) *first = ms;
        if (ms < *best) *best = ms, *best_i = i;
    }
    CK(cudaFree((void *)k.a));
    CK(cudaFree((void *)k.b));
    CK(cudaFree(k.c));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(k.lc);
    cublasLtMatrixLayoutDestroy(k.lb);
    cublasLtMatrixLayoutDestroy(k.la);
    cublasLtMatmulDescDestroy(k.op);
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 8192;
    float hot_ms = argc > 2 ? (float)atof(argv[2]) : 0.0f;
    if (n < 1 || hot_ms < 0) {
        fprintf(stderr, "usage: bench-matmul [N tokens, >= 1 [HOT_MS, >= 0]]\n");
        return 2;
    }
    enum { D = 4096, F = 14336, KVD = 1024, V = 128256, L = 32 };
    /* per step: each of L blocks; dx of q/k/v and gate/up accumulate into one buffer; dW fresh (one micro-batch) */
    const shape shapes[] = {
        {"q", FWD, D, D, 0, L, 1}, {"k,v", FWD, D, KVD, 0, 2 * L, 1}, {"o +res", FWD, D, D, 1, L, 0},
        {"gate,up", FWD, D, F, 0, 2 * L, 1}, {"down +res", FWD, F, D, 1, L, 0}, {"lm head", FWD, D, V, 0, 1, 0},
        {"q", DX, D, D, 0, L, 1}, {"k,v", DX, D, KVD, 1, 2 * L, 1}, {"o", DX, D, D, 0, L, 0},
        {"gate", DX, D, F, 0, L, 1}, {"up", DX, D, F, 1, L, 1}, {"down", DX, F, D, 0, L, 0},
        {"lm head", DX, D, V, 0, 1, 0},
        {"q", DW, D, D, 0, L, 1}, {"k,v", DW, D, KVD, 0, 2 * L, 1}, {"o", DW, D, D, 0, L, 0},
        {"gate,up", DW, D, F, 0, 2 * L, 1}, {"down", DW, F, D, 0, L, 0}, {"lm head", DW, D, V, 0, 1, 0},
        /* fused: q|k|v as one (D + 2 KVD) x D weight, gate|up as one 2F x D */
        {"qkv fused", FWD, D, D + 2 * KVD, 0, 0, 2}, {"gate|up fused", FWD, D, 2 * F, 0, 0, 2},
        {"qkv fused", DX, D, D + 2 * KVD, 0, 0, 2}, {"gate|up fused", DX, D, 2 * F, 0, 0, 2},
        {"qkv fused", DW, D, D + 2 * KVD, 0, 0, 2}, {"gate|up fused", DW, D, 2 * F, 0, 0, 2},
    };
    int count = sizeof shapes / sizeof shapes[0];
    cublasLtHandle_t lt;
    LT(cublasLtCreate(&lt));
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    size_t ws_bytes = (size_t)MS_CUDA_WORKSPACE_BYTES; /* the engine's */
    void *ws;
    CK(cudaMalloc(&ws, ws_bytes));
    double step_first = 0, step_best = 0, sep[3] = {0}, fused[3] = {0};
    for (int i = 0; i < count; i++) {
        const shape *s = &shapes[i];
        float first = 0, best = 0;
        int best_i, found;
        if (hot_ms > 0 && s->proj == 2) continue; /* the step's own shapes only */
        measure(lt, st, ws, ws_bytes, s, n, hot_ms, &first, &best, &best_i, &found);
        double flop = 2.0 * n * s->in * s->out;
        printf("BENCH matmul %-4s %-14s n %lld in %5d out %6d%s: heuristic 0 %.3f ms %.0f TFLOP/s, "
               "best of %d #%d %.3f ms %.0f TFLOP/s (%.1f%%)\n",
               kind_name[s->kind], s->name, (long long)n, s->in, s->out, s->add ? " +C" : "", first,
               flop / first / 1e9, found, best_i, best, flop / best / 1e9, 100 * (first / best - 1));
        step_first += s->per_step * first, step_best += s->per_step * best;
        if (s->proj == 1) sep[s->kind] += s->per_step / L * first;
        if (s->proj == 2) fused[s->kind] += first;
    }
    printf("BENCH matmul step (%d blocks, one micro-batch of %lld tokens%s): %.1f ms with heuristic 0, %.1f ms with the "
           "best (%.1f%% faster)\n", L, (long long)n, hot_ms > 0 ? ", sustained" : "", step_first, step_best,
           100 * (step_first / step_best - 1));
    for (int k = 0; k < 3 && hot_ms == 0; k++)
        printf("BENCH matmul projections %s a block: q,k,v and gate,up separate %.3f ms, fused %.3f ms (%.1f%%)\n",
               kind_name[k], sep[k], fused[k], 100 * (sep[k] / fused[k] - 1));
    CK(cudaFree(ws));
    cublasLtDestroy(lt);
    return 0;
}
