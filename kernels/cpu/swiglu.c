/*
 * kernels/cpu/swiglu.c — SwiGLU gate, h = silu(gate) * up, silu(g) = g sigmoid(g).
 *
 * Backward with s = sigmoid(g): dup = dh * g s, dgate = dh * up * s (1 + g (1 - s)).
 * Elementwise, in parallel; the sigmoid is 1 / (1 + exp(-g)), which saturates
 * cleanly to 0 or 1 for large |g|.
 */
#include "cpu/kernels.h"
#include <math.h>


static inline float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

void cpu_swiglu_fwd(float *h,             /* (n) = */
                    const float *gate,    /* (n) */
                    const float *up,      /* (n) */
                    int64_t n) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) h[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void cpu_swiglu_bwd(float *dgate,         /* (n) = */
                    float *dup,           /* (n) = */
                    const float *dh,      /* (n) */
                    const float *gate,    /* (n) */
                    const float *up,      /* (n) */
                    int64_t n) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoid(g);
        dup[i] = dh[i] * g * s;
        dgate[i] = dh[i] * up[i] * s * (1.0f + g * (1.0f - s));
    }
}
