/*
 * kernels/cpu/adamw.c — one AdamW step, decoupled weight decay, as
 * torch.optim.AdamW (single-tensor path) computes it:
 *   g = grad * grad_scale
 *   p *= 1 - lr * wd
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
 * Bias corrections are computed once in double. Elementwise, in parallel.
 */
#include "cpu/kernels.h"
#include <math.h>

void cpu_adamw(float *param,              /* (n) fp32 master, updated */
               float *m,                  /* (n) first moment, updated */
               float *v,                  /* (n) second moment, updated */
               const float *g,            /* (n) */
               int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, float grad_scale, int64_t step) {
    float step_size = (float)(lr / (1.0 - pow(beta1, (double)step)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
    float decay = 1.0f - lr * weight_decay;
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        param[i] = param[i] * decay - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}
