/*
 * kernels/cpu/rope.c — rotary position embedding, Hugging Face Llama layout.
 *
 * Element i of a head pairs with element i + hd/2 (rotate_half):
 *   y_i = x_i cos - x_{i+hd/2} sin,   y_{i+hd/2} = x_{i+hd/2} cos + x_i sin
 * with angle t * inv_freq_i and inv_freq_i = 1 / theta^(2i/hd). The table is
 * computed as HF does, in fp32: exponent, power, reciprocal and t * inv_freq are
 * fp32 operations; only cos and sin are taken in double and rounded once.
 * Backward is the inverse rotation (angle negated). head_dim must be even.
 */
#include "cpu/kernels.h"
#include <math.h>

void cpu_rope_table(float *cs,            /* (T, head_dim/2, 2): cos, sin */
                    int T, int head_dim, float theta) {
    int half = head_dim / 2;
#pragma omp parallel for
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
            float angle = (float)t * inv_freq;
            cs[((int64_t)t * half + i) * 2 + 0] = (float)cos((double)angle);
            cs[((int64_t)t * half + i) * 2 + 1] = (float)sin((double)angle);
        }
}

/* Rotate every head of x by the angles of cs; sign -1 rotates back. */
static void rotate(float *x,              /* (B, T, n_heads, head_dim) */
                   const float *cs,       /* (T, head_dim/2, 2) */
                   int64_t B, int T, int n_heads, int head_dim, float sign) {
    int half = head_dim / 2;
#pragma omp parallel for
    for (int64_t bt = 0; bt < B * T; bt++) {
        const float *c = cs + (bt % T) * half * 2;  /* (head_dim/2, 2) */
        for (int h = 0; h < n_heads; h++) {
            float *xh = x + (bt * n_heads + h) * head_dim;  /* (head_dim) */
            for (int i = 0; i < half; i++) {
                float co = c[2 * i], si = sign * c[2 * i + 1];
                float a = xh[i], b = xh[i + half];
                xh[i] = a * co - b * si;
                xh[i + half] = b * co + a * si;
            }
        }
    }
}

void cpu_rope_fwd(float *x,               /* (B, T, n_heads, head_dim) rotated in place */
                  const float *cs,        /* (T, head_dim/2, 2) */
                  int64_t B, int T, int n_heads, int head_dim) {
    rotate(x, cs, B, T, n_heads, head_dim, 1.0f);
}

void cpu_rope_bwd(float *dx,              /* (B, T, n_heads, head_dim) rotated back in place */
                  const float *cs,        /* (T, head_dim/2, 2) */
                  int64_t B, int T, int n_heads, int head_dim) {
    rotate(dx, cs, B, T, n_heads, head_dim, -1.0f);
}
