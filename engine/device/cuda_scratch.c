/*
 * device/cuda_scratch.c — how much scratch the CUDA backend needs for calls up
 * to a shape (cuda.h lays it out). Plain C, built with or without nvcc, so a
 * plan for a GPU can be made on any machine; the kernels' own parts come from
 * kernels/cuda/kernels.h, the same formulas their launchers carve by.
 */
#include "cuda/kernels.h"
#include "device/cuda.h"

int64_t ms_cuda_sums_bytes(void) { return cuda_align256((MS_CUDA_SUM_BLOCKS + 1) * (int64_t)sizeof(double)); }

static int64_t max2(int64_t a, int64_t b) { return a > b ? a : b; }

int64_t ms_cuda_op_scratch_bytes(const ms_device_shape *s) {
    int64_t need = cuda_attention_bwd_scratch(s->B, s->T, s->heads, s->head_dim);
    need = max2(need, cuda_align256(s->rows * (int64_t)sizeof(double)));  /* lmhead_xent: a loss per row */
    need = max2(need, cuda_embedding_bwd_scratch(s->rows, s->dim));
    need = max2(need, cuda_rmsnorm_bwd_scratch(s->rows, s->dim));
    return need;
}

int64_t ms_cuda_scratch_bytes(const ms_device *d, const ms_device_shape *s) {
    (void)d;
    return cuda_align256(MS_CUDA_WORKSPACE_BYTES) + ms_cuda_sums_bytes() + ms_cuda_op_scratch_bytes(s);
}
