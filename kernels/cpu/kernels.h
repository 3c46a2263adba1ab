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

/* adamw_simd.c — the fast host optimizer (optimizer offload; the CPU backend's
 * AdamW). SIMD paths chosen at run time, the widest the CPU has:
 * AVX-512F, else AVX2+FMA, else the x86-64-v2 baseline (SSE4.2).
 *
 * cpu_adamw_fast: one AdamW step over n elements, cpu_adamw's math (torch's
 * AdamW), in one pass: reads param, m, v and grad once, writes param, m, v and,
 * when param_bf16 is not NULL, the updated param rounded to bf16 (cpu_bf16_round:
 * nearest even, NaN kept a NaN) as uint16 bit patterns.
 *   grad: (n) const float * when grad_bf16 == 0, const uint16_t * (bf16 bits)
 *         when grad_bf16 == 1; multiplied by hp->grad_scale first.
 * Accuracy: every path gives cpu_adamw's bits exactly (same operations in the
 * same order, correctly rounded, no FMA contraction): tolerance 0; a bf16
 * gradient is exactly the fp32 of its bits. Elementwise, so any n and any
 * thread count give the same bits. Arrays may not overlap (but an output may
 * be its own input, as in place); no alignment needed.
 *
 * cpu_sumsq_f32 / cpu_sumsq_bf16: sum of x^2 with double accumulation over a
 * partition fixed by n (16 lanes a part): the same bits on every ISA path and
 * thread count; within a few double ulps of a sequential double sum (not the
 * same bits as cpu_sumsq, which keeps its own order).
 *
 * threads: OpenMP threads for this call; <= 0: omp_get_max_threads() of the
 * calling thread. Any pthread may call (libgomp gives each caller its own team);
 * n up to 16 K elements runs on the calling thread alone, with no OpenMP region
 * (nothing allocated; a thread that calls with more gets its libgomp team once). */
typedef struct cpu_adam_hp {
    float lr, beta1, beta2, eps, weight_decay;
    float grad_scale;                     /* clipping / loss scale, applied to grad */
    int64_t step;                         /* counts from 1 */
} cpu_adam_hp;
void cpu_adamw_fast(float *param,         /* (n) fp32 master, updated */
                    float *m, float *v,   /* (n) fp32 moments, updated */
                    const void *grad,     /* (n) fp32 or bf16, see grad_bf16 */
                    int grad_bf16,
                    uint16_t *param_bf16, /* (n) = bf16 of the updated param; NULL: none */
                    int64_t n, const cpu_adam_hp *hp, int threads);
/* The same step from the state (param0, m0, v0) into (param, m, v): a second
 * copy of the state, the first left as it was (or the same arrays). */
void cpu_adamw_fast_from(const float *param0, const float *m0, const float *v0, float *param, float *m, float *v,
                         const void *grad, int grad_bf16, uint16_t *param_bf16, int64_t n, const cpu_adam_hp *hp,
                         int threads);
double cpu_sumsq_f32(const float *x /* (n) */, int64_t n, int threads);
double cpu_sumsq_bf16(const uint16_t *x /* (n) bf16 bits */, int64_t n, int threads);

/* Which path the fast kernels take. cpu_isa_force is for specs and benches:
 * -1 when this CPU lacks the ISA (nothing changes), else 0; process-wide. */
typedef enum { CPU_ISA_BASE = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 } cpu_isa;
cpu_isa cpu_isa_best(void);               /* the widest this CPU supports */
cpu_isa cpu_isa_active(void);             /* the one in use (best, unless forced) */
int cpu_isa_force(cpu_isa isa);
const char *cpu_isa_name(cpu_isa isa);    /* "avx512", "avx2", "x86-64-v2" */

/* cast.c — bf16 rounding (round to nearest even, NaN kept) and fp32 helpers */
float cpu_bf16_round(float x);
void cpu_round_bf16(float *x, int64_t n);                      /* in place */
void cpu_copy_round_bf16(float *dst, const float *src, int64_t n);
double cpu_sumsq(const float *x, int64_t n);                   /* sum of squares, double accumulation */
void cpu_scale(float *x, float s, int64_t n);
void cpu_add(float *y, const float *x, int64_t n);                /* y += x */

#endif
