/*
 * spec/gpu/gpu.h — helpers of the GPU specs: a CPU and a CUDA backend of the
 * same precision side by side, inputs uploaded to both, outputs compared by
 * relative L2 error ||gpu - cpu|| / ||cpu||.
 *
 * Tolerances: fp32 paths 1e-4, bf16 paths 1e-2. Act inputs are drawn
 * fresh and rounded to bf16 under bf16, so both backends see the same values.
 */
#ifndef MS_SPEC_GPU_H
#define MS_SPEC_GPU_H
#include <stdint.h>

#include "../c/check.h"
#include "core/status.h"
#include "cpu/kernels.h"
#include "device/cuda.h"
#include "device/device.h"

#define TOL_F32 1e-4
#define TOL_BF16 1e-2

typedef struct gpair {
    ms_device cpu, gpu;
    int bf16;
    double tol;
} gpair;

/* Both backends started; the GPU's backend scratch planned for GPAIR_SHAPE. */
int gpair_open(gpair *p, int precision);   /* 0 or prints why */
void gpair_close(gpair *p);
#define GPAIR_SHAPE ((ms_device_shape){.rows = 1 << 17, .B = 4, .T = 2048, .heads = 32, .head_dim = 128, .dim = 4096})
/* Reserve on d the backend scratch for calls up to shape s and hand it over,
 * as the engine does from its plan (nothing on a backend without scratch). */
int gpu_scratch(ms_device *d, ms_device_shape s);   /* 0 or prints why */

/* fresh random values in [-scale, scale], rounded to bf16 when round */
float *rnd(long n, unsigned seed, float scale, int round);
/* act buffer on the GPU holding h (bf16 or fp32) */
void *up_act(gpair *p, const float *h, long n);
void *up_f32(gpair *p, const float *h, long n);
void *up_i32(gpair *p, const int32_t *h, long n);
/* host copy of h (the CPU backend's buffer) */
float *host_copy(const float *h, long n);
/* GPU act buffer to host floats (malloc) */
float *down_act(gpair *p, const void *g, long n);
float *down_f32(gpair *p, const void *g, long n);
double rel_err(const float *got, const float *want, long n);

/* relative L2 error within tol, or print and fail */
#define CHECK_REL(what, got, want, n, tol)                                             \
    do {                                                                               \
        double e_ = rel_err(got, want, n);                                             \
        if (!(e_ <= (tol))) {                                                          \
            fprintf(stderr, "%s:%d: %s: relative error %.3g > %.3g\n", __FILE__, __LINE__, what, e_, (double)(tol)); \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

#define CHECK_GPU(p)                                                                   \
    do {                                                                               \
        (p)->gpu.sync(&(p)->gpu);                                                      \
        CHECK_OK(ms_cuda_status(&(p)->gpu));                                           \
    } while (0)

/* spec/gpu/model.c — a small Llama written against the backend interface */
typedef struct gmodel_config {
    int V, D, L, H, KV, F, B, T, tie, chunk;
    float theta, eps;
} gmodel_config;

typedef struct gmodel gmodel;
gmodel *gmodel_new(ms_device *d, const gmodel_config *c, const float *master_init /* NULL: seed */, unsigned seed);
int64_t gmodel_params(const gmodel *m);
void gmodel_set_batch(gmodel *m, const int32_t *tokens, const int32_t *targets);
/* forward + backward + clipped AdamW; returns the mean loss of the batch (NAN on failure) */
double gmodel_step(gmodel *m, float lr, int64_t step);
/* master weights to the host */
void gmodel_master(gmodel *m, float *out);
void gmodel_free(gmodel *m);
#endif
