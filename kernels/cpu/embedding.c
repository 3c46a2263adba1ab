/*
 * kernels/cpu/embedding.c — token embedding lookup.
 *
 * Forward copies table rows. Backward scatters dy rows into dtable; to stay
 * deterministic without atomics each thread owns a block of columns and walks
 * the tokens in order, so every dtable element sums in token order whatever
 * the thread count. Tokens must lie in [0, vocab); nothing checks it here.
 */
#include "cpu/kernels.h"
#include <string.h>

#define COLS 16  /* columns per backward work item: one 64-byte cache line */

void cpu_embedding_fwd(float *y,              /* (n, dim) = */
                       const int32_t *tokens, /* (n) */
                       const float *table,    /* (vocab, dim) */
                       int64_t n, int dim) {
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++)
        memcpy(y + i * dim, table + (int64_t)tokens[i] * dim, sizeof(float) * dim);
}

void cpu_embedding_bwd(float *dtable,         /* (vocab, dim) += ; deterministic order */
                       const float *dy,       /* (n, dim) */
                       const int32_t *tokens, /* (n) */
                       int64_t n, int dim) {
    int blocks = (dim + COLS - 1) / COLS;
#pragma omp parallel for
    for (int b = 0; b < blocks; b++) {
        int c0 = b * COLS, c1 = c0 + COLS < dim ? c0 + COLS : dim;
        for (int64_t i = 0; i < n; i++) {
            float *row = dtable + (int64_t)tokens[i] * dim;  /* (dim) */
            const float *g = dy + i * dim;                   /* (dim) */
            for (int c = c0; c < c1; c++) row[c] += g[c];
        }
    }
}
