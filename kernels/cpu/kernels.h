/*
 * kernels/cpu/kernels.h — the CPU reference kernels, one op family per file.
 *
 * Every kernel works on fp32 arrays in row-major layout and knows nothing of
 * precision policy: the CPU backend (engine/device/cpu.c) rounds outputs to
 * bf16 where the GPU would. Shapes are written next to each pointer.
 * Backward kernels document whether they overwrite (=) or accumulate (+=).
 * Threading is OpenMP inside each kernel; BLAS (OpenBLAS) does the matmuls.
 */
#ifndef MS_KERNELS_CPU_H
#define MS_KERNELS_CPU_H
#include <stdint.h>

/* matmul.c — y = x W^T with W in the (out, in) layout of a torch Linear. */
void cpu_matmul_fwd(float *y,             /* (n, out)  = or += */
                    const float *x,       /* (n, in) */
                    const float *w,       /* (out, in) */
                    int64_t n, int in, int out, int accumulate);
void cpu_matmul_bwd(float *dx,            /* (n, in)   = or += (accumulate_dx); NULL: skip */
                    float *dw,            /* (out, in) += */
                    const float *dy,      /* (n, out) */
                    const float *x,       /* (n, in) */
                    const float *w,       /* (out, in) */
                    int64_t n, int in, int out, int accumulate_dx);

/* embedding.c */
void cpu_embedding_fwd(float *y,          /* (n, dim) = */
                       const int32_t *tokens, /* (n) */
                       const float *table,    /* (vocab, dim) */
                       int64_t n, int dim);
void cpu_embedding_bwd(float *dtable,     /* (vocab, dim) += ; deterministic order */
                       const float *dy,   /* (n, dim) */
                       const int32_t *tokens, int64_t n, int dim);

/* rmsnorm.c — y = x / sqrt(mean(x^2) + eps) * w */
void cpu_rmsnorm_fwd(float *y,            /* (n, dim) = */
                     float *rstd,         /* (n) = 1/sqrt(mean(x^2)+eps) */
                     const float *x,      /* (n, dim) */
                     const float *w,      /* (dim) */
                     int64_t n, int dim, float eps);
void cpu_rmsnorm_bwd(float *dx,           /* (n, dim) += (the residual gradient is already there) */
                     float *dw,           /* (dim) += */
                     const float *dy,     /* (n, dim) */
                     const float *x, const float *w, const float *rstd,
                     int64_t n, int dim);

/* rope.c — rotary embedding, Hugging Face Llama convention: the pair of
 * element i is element i + head_dim/2 (rotate_half), frequency
 * theta^(-2i/head_dim), position t = index within the sequence. */
void cpu_rope_table(float *cs,            /* (T, head_dim/2, 2): cos, sin */
                    int T, int head_dim, float theta);
void cpu_rope_fwd(float *x,               /* (B, T, n_heads, head_dim) rotated in place */
                  const float *cs, int64_t B, int T, int n_heads, int head_dim);
void cpu_rope_bwd(float *dx,              /* (B, T, n_heads, head_dim) rotated back in place */
                  const float *cs, int64_t B, int T, int n_heads, int head_dim);

/* attention.c — causal grouped-query attention, softmax(q k^T / sqrt(hd)) v.
 * Query head h reads kv head h / (n_heads / n_kv). Forward keeps only the
 * per-row log-sum-exp; backward recomputes the probabilities (no T×T store).
 * doc_start (B, T), when not NULL, masks packed documents from each other:
 * row t attends to keys doc_start[b, t] <= s <= t (the start of its document). */
void cpu_attention_fwd(float *out,        /* (B, T, H, hd) = */
                       float *lse,        /* (B, H, T) = */
                       const float *q,    /* (B, T, H, hd) */
                       const float *k,    /* (B, T, KV, hd) */
                       const float *v,    /* (B, T, KV, hd) */
                       const int32_t *doc_start, /* (B, T) or NULL */
                       int B, int T, int H, int KV, int hd);
void cpu_attention_bwd(float *dq,         /* (B, T, H, hd) = */
                       float *dk,         /* (B, T, KV, hd) = */
                       float *dv,         /* (B, T, KV, hd) = */
                       const float *dout, /* (B, T, H, hd) */
                       const float *q, const float *k, const float *v,
                       const float *out, const float *lse,
                       const int32_t *doc_start, /* (B, T) or NULL */
                       int B, int T, int H, int KV, int hd);

/* swiglu.c — h = silu(gate) * up */
void cpu_swiglu_fwd(float *h, const float *gate, const float *up, int64_t n);
void cpu_swiglu_bwd(float *dgate,         /* (n) = */
                    float *dup,           /* (n) = */
                    const float *dh, const float *gate, const float *up, int64_t n);

/* crossentropy.c — the LM head fused with cross-entropy, chunk rows at a time,
 * so only (chunk, vocab) fp32 logits ever exist. Returns the SUM of
 * -log softmax(x W^T)[target] over rows whose target >= 0. With dx != NULL it
 * also does the backward of (grad_scale * that sum): dx (n, dim) =, dw += .
 * round_bf16: round the logit gradients to bf16 before the two matmuls, as a
 * bf16 GPU path holds them. */
double cpu_lmhead_xent(float *dx,         /* (n, dim) = ; NULL: forward only */
                       float *dw,         /* (vocab, dim) += ; may be NULL when dx is */
                       float *logits,     /* (chunk, vocab) workspace */
                       const float *x,    /* (n, dim) */
                       const float *w,    /* (vocab, dim) */
                       const int32_t *targets, /* (n) */
                       int64_t n, int dim, int vocab, int chunk,
                       float grad_scale, int round_bf16);

/* adamw.c — one AdamW step (decoupled weight decay) on a flat fp32 range.
 * g is scaled by grad_scale (clipping) before use; step counts from 1. */
void cpu_adamw(float *param,              /* (n) fp32 master, updated */
               float *m, float *v,        /* (n) moments, updated */
               const float *g,            /* (n) */
               int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, float grad_scale, int64_t step);

/* cast.c — bf16 rounding (round to nearest even, NaN kept) and fp32 helpers */
float cpu_bf16_round(float x);
void cpu_round_bf16(float *x, int64_t n);                      /* in place */
void cpu_copy_round_bf16(float *dst, const float *src, int64_t n);
double cpu_sumsq(const float *x, int64_t n);                   /* sum of squares, double accumulation */
void cpu_scale(float *x, float s, int64_t n);
void cpu_add(float *y, const float *x, int64_t n);                /* y += x */

#endif
