/* spec/gpu/util.c — the helpers of gpu.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"
#include "cpu/kernels.h"

int gpair_open(gpair *p, int precision) {
    memset(p, 0, sizeof *p);
    ms_device_init_cpu(&p->cpu, precision, 0);
    if (p->cpu.start(&p->cpu) != MS_OK) return fprintf(stderr, "cpu start: %s\n", ms_last_error()), 1;
    if (ms_device_init(&p->gpu, MS_DEVICE_CUDA, precision, 0) != MS_OK)
        return fprintf(stderr, "cuda init: %s\n", ms_last_error()), 1;
    if (p->gpu.start(&p->gpu) != MS_OK) return fprintf(stderr, "cuda start: %s\n", ms_last_error()), 1;
    if (gpu_scratch(&p->gpu, GPAIR_SHAPE)) return 1;
    p->bf16 = precision == MS_PRECISION_BF16;
    p->tol = p->bf16 ? TOL_BF16 : TOL_F32;
    return 0;
}

int gpu_scratch(ms_device *d, ms_device_shape s) {
    if (!d->scratch_bytes) return 0;
    int64_t bytes = d->scratch_bytes(d, &s);
    void *base = NULL;
    if (d->reserve(d, bytes, &base) != MS_OK || d->scratch_use(d, base, bytes) != MS_OK)
        return fprintf(stderr, "backend scratch of %lld bytes: %s\n", (long long)bytes, ms_last_error()), 1;
    return 0;
}

void gpair_close(gpair *p) {
    p->gpu.stop(&p->gpu);
    p->cpu.stop(&p->cpu);
}

float *rnd(long n, unsigned seed, float scale, int round) {
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    fill_random(x, n, seed * 7919u + 17u, scale);
    if (round) cpu_round_bf16(x, n);
    return x;
}

static uint16_t to_bf16_bits(float x) {
    uint32_t u;
    x = cpu_bf16_round(x);
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

static float from_bf16_bits(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

void *up_act(gpair *p, const float *h, long n) {
    void *g = NULL;
    int64_t ab = ms_act_bytes(&p->gpu);
    if (p->gpu.reserve(&p->gpu, n * ab, &g) != MS_OK) return NULL;
    if (ab == 2) {
        uint16_t *t = malloc(2 * (size_t)n);
        for (long i = 0; i < n; i++) t[i] = to_bf16_bits(h[i]);
        p->gpu.upload(&p->gpu, g, t, 2 * n);
        p->gpu.sync(&p->gpu);
        free(t);
    } else {
        p->gpu.upload(&p->gpu, g, h, 4 * n);
    }
    return g;
}

void *up_f32(gpair *p, const float *h, long n) {
    void *g = NULL;
    if (p->gpu.reserve(&p->gpu, 4 * n, &g) != MS_OK) return NULL;
    p->gpu.upload(&p->gpu, g, h, 4 * n);
    return g;
}

void *up_i32(gpair *p, const int32_t *h, long n) { return up_f32(p, (const float *)h, n); }

float *host_copy(const float *h, long n) {
    float *c = malloc(sizeof(float) * (size_t)(n ? n : 1));
    memcpy(c, h, sizeof(float) * (size_t)n);
    return c;
}

float *down_act(gpair *p, const void *g, long n) {
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (ms_act_bytes(&p->gpu) == 2) {
        uint16_t *t = malloc(2 * (size_t)(n ? n : 1));
        p->gpu.download(&p->gpu, t, g, 2 * n);
        for (long i = 0; i < n; i++) h[i] = from_bf16_bits(t[i]);
        free(t);
    } else {
        p->gpu.download(&p->gpu, h, g, 4 * n);
    }
    return h;
}

float *down_f32(gpair *p, const void *g, long n) {
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    p->gpu.download(&p->gpu, h, g, 4 * n);
    return h;
}

double rel_err(const float *got, const float *want, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        if (!isfinite(got[i])) return INFINITY;
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
