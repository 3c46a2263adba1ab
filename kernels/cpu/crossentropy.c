/*
 * kernels/cpu/crossentropy.c — LM head fused with cross-entropy.
 *
 * Rows go chunk at a time: logits = x_c W^T (sgemm) into the (chunk, vocab)
 * workspace, then per row a stable log-softmax, loss = lse - logit[target],
 * and with dx the logits are overwritten in place by their gradient
 * (softmax - onehot) * grad_scale, optionally rounded to bf16, before
 * dx_c = dlogits W (=) and dW += dlogits^T x_c (sgemm again). A row whose
 * target is < 0 adds no loss and gets a zero gradient. The loss is summed in
 * double over a fixed partition of the chunk's rows, then over chunks in
 * order, so it does not depend on the thread count. BLAS runs outside the
 * OpenMP regions. A target must be < vocab; chunk * vocab must fit the
 * workspace and chunk an int.
 */
#include "cpu/kernels.h"
#include <math.h>
#include <string.h>

#define PARTS 64  /* fixed row partition of a chunk for the loss sum */

/* One row: return its loss; with grad, overwrite the logits by dlogits. */
static double row_xent(float *z,          /* (vocab) logits in, dlogits out when grad */
                       int target, int vocab, int grad, float grad_scale, int round_bf16) {
    if (target < 0) {
        if (grad) memset(z, 0, sizeof(float) * vocab);
        return 0.0;
    }
    float m = z[0];
    for (int j = 1; j < vocab; j++) m = z[j] > m ? z[j] : m;
    double sum = 0.0;
    for (int j = 0; j < vocab; j++) sum += expf(z[j] - m);
    double loss = m + log(sum) - z[target];
    if (grad) {
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < vocab; j++) {
            float p = expf(z[j] - m) * inv;
            z[j] = (p - (j == target ? 1.0f : 0.0f)) * grad_scale;
        }
        if (round_bf16)
            for (int j = 0; j < vocab; j++) z[j] = cpu_bf16_round(z[j]);
    }
    return loss;
}

/* Loss (and gradient) of rows [0, rows) of the chunk; deterministic sum. */
static double chunk_xent(float *logits,          /* (rows, vocab) */
                         const int32_t *targets, /* (rows) */
                         int rows, int vocab, int grad, float grad_scale, int round_bf16) {
    double part[PARTS];
    int per = (rows + PARTS - 1) / PARTS;
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < PARTS; p++) {
        int lo = p * per, hi = lo + per < rows ? lo + per : rows;
        double s = 0.0;
        for (int i = lo; i < hi; i++)
            s += row_xent(logits + (int64_t)i * vocab, targets[i], vocab, grad, grad_scale,
                          round_bf16);
        part[p] = s;
    }
    double s = 0.0;
    for (int p = 0; p < PARTS; p++) s += part[p];
    return s;
}

double cpu_lmhead_xent(float *dx,         /* (n, dim) = ; NULL: forward only */
                       float *dw,         /* (vocab, dim) += ; may be NULL when dx is */
                       float *logits,     /* (chunk, vocab) workspace */
                       const float *x,    /* (n, dim) */
                       const float *w,    /* (vocab, dim) */
                       const int32_t *targets, /* (n) */
                       int64_t n, int dim, int vocab, int chunk,
                       float grad_scale, int round_bf16) {
    double loss = 0.0;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int rows = (int)(n - r0 < chunk ? n - r0 : chunk);
        const float *xc = x + r0 * dim;  /* (rows, dim) */
        cpu_matmul_fwd(logits, xc, w, rows, dim, vocab, 0);
        loss += chunk_xent(logits, targets + r0, rows, vocab, dx != NULL, grad_scale, round_bf16);
        if (dx) cpu_matmul_bwd(dx + r0 * dim, dw, logits, xc, w, rows, dim, vocab, 0);
    }
    return loss;
}
