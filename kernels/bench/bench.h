/*
 * kernels/bench/bench.h — what the GPU workbenches share: checked CUDA calls,
 * seeded random inputs, bf16 bits, and the median time of a launch. Included
 * by C (attention.c) and CUDA (elementwise.c) sources alike.
 */
#ifndef MS_KERNELS_BENCH_H
#define MS_KERNELS_BENCH_H
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A CUDA call that must succeed: else the file, line, call and error, and exit 1. */
#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (cudaError_t)(call);                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t bench_rng = 0x9e3779b97f4a7c15ull;
static inline float uniform(void) { /* xorshift64*, in [-1, 1) */
    bench_rng ^= bench_rng >> 12, bench_rng ^= bench_rng << 25, bench_rng ^= bench_rng >> 27;
    return (float)((bench_rng * 0x2545f4914f6cdd1dull) >> 40) / (float)(1 << 23) - 1.0f;
}

static inline uint16_t bf16_bits(float x) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline float bf16_value(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static inline int bench_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of 10 runs of launch(ctx) on st after 3 warm-ups, by CUDA events. */
static inline float bench_median_ms(cudaStream_t st, void (*launch)(void *ctx), void *ctx) {
    static cudaEvent_t ev[2];
    if (!ev[0]) {
        CK(cudaEventCreate(&ev[0]));
        CK(cudaEventCreate(&ev[1]));
    }
    float t[10];
    for (int r = -3; r < 10; r++) {
        float ms;
        CK(cudaEventRecord(ev[0], st));
        launch(ctx);
        CK(cudaEventRecord(ev[1], st));
        CK(cudaEventSynchronize(ev[1]));
        CK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
        if (r >= 0) t[r] = ms;
    }
    qsort(t, 10, sizeof(float), bench_cmp_float);
    return (t[4] + t[5]) / 2;
}

/* Milliseconds a launch of launch(ctx) takes on st when the GPU has run
 * nothing else for hot_ms: the calls of hot_ms back to back, then as many
 * again timed as one span. A short median runs at the top clock; a long run
 * settles at the clock the power cap allows for this kernel, which is what a
 * training step sees. */
static inline float bench_sustained_ms(cudaStream_t st, void (*launch)(void *ctx), void *ctx, float hot_ms) {
    float one = bench_median_ms(st, launch, ctx), ms;
    int calls = one > 0 ? (int)(hot_ms / one) + 1 : 1;
    cudaEvent_t ev[2];
    CK(cudaEventCreate(&ev[0]));
    CK(cudaEventCreate(&ev[1]));
    for (int i = 0; i < calls; i++) launch(ctx);
    CK(cudaEventRecord(ev[0], st));
    for (int i = 0; i < calls; i++) launch(ctx);
    CK(cudaEventRecord(ev[1], st));
    CK(cudaEventSynchronize(ev[1]));
    CK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
    CK(cudaEventDestroy(ev[0]));
    CK(cudaEventDestroy(ev[1]));
    return ms / calls;
}
#endif
