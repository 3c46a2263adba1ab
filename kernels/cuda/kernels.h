/*
 * kernels/cuda/kernels.h — launchers of the CUDA kernels, one op family per
 * .cu file, callable from C (engine/device/cuda.c).
 *
 * Semantics, shapes and = / += are those of kernels/cpu/kernels.h. "act"
 * pointers hold bf16 when bf16 != 0 and fp32 otherwise; everything else is
 * fp32 (int32 for tokens). Every launcher enqueues on the given stream and
 * returns the launch status (cudaGetLastError after the launch) as an int
 * (a cudaError_t); 0 is success. Matmuls are not here: cuda.c does them
 * through cuBLASLt.
 */
#ifndef MS_KERNELS_CUDA_H
#define MS_KERNELS_CUDA_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
typedef struct CUstream_st *ms_cuda_stream;

/* Scratch of the launchers that take some: plain C, so that the plan can size
 * it where there is no GPU (engine/device/cuda_scratch.c). Every part starts
 * on a 256-byte boundary; the bytes grow with n, never shrink. */
static inline int64_t cuda_align256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

/* embedding.cu — the backward sorts the n (token, position) pairs by token (a
 * stable LSD radix sort, 8 bits a pass, in tiles of CUDA_EMB_TILE), then sums
 * each token's rows in position order, chunk by chunk of CUDA_EMB_CHUNK sorted
 * pairs; a token whose pairs cross chunks is summed through per-chunk partials
 * in chunk order. No float atomics: the same inputs give the same bits. */
enum { CUDA_EMB_TILE = 2048, CUDA_EMB_CHUNK = 64 };
static inline int64_t cuda_embedding_bwd_scratch(int64_t n, int dim) {
    int64_t tiles = (n + CUDA_EMB_TILE - 1) / CUDA_EMB_TILE, chunks = (n + CUDA_EMB_CHUNK - 1) / CUDA_EMB_CHUNK;
    return 4 * cuda_align256(4 * n)              /* keys and positions, twice (ping-pong) */
           + cuda_align256(4 * 256 * tiles)      /* per-tile digit counts */
           + cuda_align256(4 * tiles)            /* per-tile OR of the tokens: how many passes */
           + 2 * cuda_align256(4 * chunks * (int64_t)dim); /* per-chunk partial rows: head, tail */
}
int cuda_embedding_fwd(ms_cuda_stream s, int bf16, void *y, const int32_t *tokens, const void *table, int64_t n, int dim);
/* dtable += ; deterministic; scratch of cuda_embedding_bwd_scratch(n, dim) bytes */
int cuda_embedding_bwd(ms_cuda_stream s, int bf16, float *dtable, const void *dy, const int32_t *tokens, int64_t n,
                       int dim, void *scratch);

/* rmsnorm.cu — dw in two steps: per slice of rows a partial row (fp32), then
 * the slices summed in order (fp64) and added. Slices: n / 64 rounded up, at
 * most CUDA_RMS_SLICES. */
enum { CUDA_RMS_SLICE_ROWS = 64, CUDA_RMS_SLICES = 256 };
static inline int64_t cuda_rmsnorm_slices(int64_t n) {
    int64_t s = (n + CUDA_RMS_SLICE_ROWS - 1) / CUDA_RMS_SLICE_ROWS;
    return s < CUDA_RMS_SLICES ? s : CUDA_RMS_SLICES;
}
static inline int64_t cuda_rmsnorm_bwd_scratch(int64_t n, int dim) {
    return cuda_align256(4 * cuda_rmsnorm_slices(n) * (int64_t)dim);
}
int cuda_rmsnorm_fwd(ms_cuda_stream s, int bf16, void *y, float *rstd, const void *x, const void *w, int64_t n, int dim,
                     float eps);
/* dx +=, dw += (deterministic); scratch of cuda_rmsnorm_bwd_scratch(n, dim) bytes */
int cuda_rmsnorm_bwd(ms_cuda_stream s, int bf16, void *dx, float *dw, const void *dy, const void *x, const void *w,
                     const float *rstd, int64_t n, int dim, void *scratch);

/* rope.cu */
int cuda_rope(ms_cuda_stream s, int bf16, void *x, const float *cs, int64_t B, int T, int heads, int hd, float sign);

/* attention.cu — causal GQA, online softmax, O(T) memory; hd up to 128. bf16
 * calls with hd 64 or 128 run the tensor-core kernels (attention_flash.cu, or
 * on sm_90 attention_wgmma.cu), the rest (fp32, other head dims) the plain
 * fp32 kernels. */
int cuda_attention_fwd(ms_cuda_stream s, int bf16, void *out, float *lse, const void *q, const void *k, const void *v,
                       const int32_t *doc_start, int B, int T, int H, int KV, int hd);
/* D_t = dout_t . out_t into delta (B, H, T); cuda_attention_bwd runs it itself */
int cuda_attention_delta(ms_cuda_stream s, int bf16, float *delta, const void *dout, const void *out, int B, int T,
                         int H, int hd);
/* The backward's scratch `work`: delta (B, H, T) fp32, D_t = dout_t . out_t;
 * then, where the fused backward runs (sm_90, hd 128: cuda_attention_fused_bwd),
 * for each tile of CUDA_ATTN_DQ_ROWS query rows of each (b, h) a counter and
 * the fp32 sums of its dq. */
enum { CUDA_ATTN_DQ_ROWS = 64 };
static inline int cuda_attention_fused_bwd(int hd) { return hd == 128; }
static inline int64_t cuda_attention_bwd_scratch(int B, int T, int H, int hd) {
    int64_t tiles = (int64_t)B * H * ((T + CUDA_ATTN_DQ_ROWS - 1) / CUDA_ATTN_DQ_ROWS);
    return cuda_align256(4 * (int64_t)B * H * T) +
           (cuda_attention_fused_bwd(hd) ? cuda_align256(4 * tiles) + 4 * tiles * CUDA_ATTN_DQ_ROWS * hd : 0);
}
int cuda_attention_bwd(ms_cuda_stream s, int bf16, void *dq, void *dk, void *dv, const void *dout, const void *q,
                       const void *k, const void *v, const void *out, const float *lse, void *work,
                       const int32_t *doc_start, int B, int T, int H, int KV, int hd);

/* attention_flash.cu — the same on tensor cores: bf16, hd 64 or 128, 16-byte
 * aligned pointers (cuda_flash_supported says whether a call qualifies);
 * cuda_attention_* dispatch to it. work (or delta) as above, its delta filled
 * by the caller. */
int cuda_flash_supported(int bf16, int hd, int H, int KV);
int cuda_flash_fwd(ms_cuda_stream s, void *out, float *lse, const void *q, const void *k, const void *v,
                   const int32_t *doc_start, int B, int T, int H, int KV, int hd);
int cuda_flash_bwd(ms_cuda_stream s, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                   const void *v, const float *lse, void *work, const int32_t *doc_start, int B, int T, int H, int KV,
                   int hd);
/* Block-shape variants for the workbench: nw warps (4 or 8, 16 rows each) per
 * forward block and keys (64 or 128) per forward tile; warps per dq and dk/dv block. */
int cuda_flash_fwd_nw(ms_cuda_stream s, void *out, float *lse, const void *q, const void *k, const void *v,
                      const int32_t *doc_start, int B, int T, int H, int KV, int hd, int nw, int keys);
int cuda_flash_bwd_nw(ms_cuda_stream s, void *dq, void *dk, void *dv, const void *dout, const void *q,
                      const void *k, const void *v, const float *lse, const float *delta, const int32_t *doc_start,
                      int B, int T, int H, int KV, int hd, int nw_dq, int nw_kv);
/* attention_wgmma.cu — the same three kernels on warpgroup MMA, for sm_90
 * (H100, H200): cuda_flash_fwd / _bwd take them when cuda_flash_wgmma_ready()
 * says the current device can. Variants of the backward for the workbench:
 * warpgroups (1 or 2) per dq block, warpgroups (1 or 2) per dk/dv block,
 * occ_kv (1 or 3) dk/dv blocks an SM, where one-warpgroup dq blocks and 3
 * dk/dv blocks an SM take head dim 64 and one-warpgroup dk/dv blocks; parts
 * (1 dq, 2 dk/dv, 3 both). No dq warpgroups (nwg_q 0) is the fused backward,
 * dq summed in the dk/dv kernel: head dim 128, 2 warpgroups, 1 block an SM,
 * both parts. */
int cuda_flash_wgmma_ready(void);
int cuda_flash_wgmma_fwd(ms_cuda_stream s, void *out, float *lse, const void *q, const void *k, const void *v,
                         const int32_t *doc_start, int B, int T, int H, int KV, int hd);
int cuda_flash_wgmma_bwd(ms_cuda_stream s, void *dq, void *dk, void *dv, const void *dout, const void *q,
                         const void *k, const void *v, const float *lse, void *work, const int32_t *doc_start,
                         int B, int T, int H, int KV, int hd, int nwg_q, int nwg_kv, int occ_kv, int parts);
/* The plain kernels of attention.cu whatever the inputs (the workbench compares). */
int cuda_attention_plain_fwd(ms_cuda_stream s, int bf16, void *out, float *lse, const void *q, const void *k,
                             const void *v, const int32_t *doc_start, int B, int T, int H, int KV, int hd);
int cuda_attention_plain_bwd(ms_cuda_stream s, int bf16, void *dq, void *dk, void *dv, const void *dout,
                             const void *q, const void *k, const void *v, const void *out, const float *lse,
                             void *work, const int32_t *doc_start, int B, int T, int H, int KV, int hd);

/* swiglu.cu */
int cuda_swiglu_fwd(ms_cuda_stream s, int bf16, void *h, const void *gate, const void *up, int64_t n);
int cuda_swiglu_bwd(ms_cuda_stream s, int bf16, void *dgate, void *dup, const void *dh, const void *gate,
                    const void *up, int64_t n);

/* xent.cu — rows of fp32 logits (row stride ld floats): loss[i] = lse - z[target]
 * (0 when target < 0); with grad, dlogits = (softmax - onehot) * scale written in
 * place: fp32, or bf16 into the first half of each row (bf16 row stride 2*ld). */
int cuda_xent_rows(ms_cuda_stream s, float *logits, double *loss, const int32_t *targets, int rows, int vocab,
                   int grad, int bf16_grad, float grad_scale);
/* out[0] = sum of x[0..n) in a fixed order (one block) */
int cuda_sum_doubles(ms_cuda_stream s, double *out, const double *x, int64_t n);

/* optim.cu */
/* out[0] = (add ? out[0] : 0) + the sum of squares of x[0..n), in a fixed order */
int cuda_sumsq(ms_cuda_stream s, double *partial /* (256) scratch */, double *out, const float *x, int64_t n,
               int add);
/* compute (or NULL): the updated param also written as act (bf16 when bf16), as cuda_cast_params would */
int cuda_adamw(ms_cuda_stream s, float *param, float *m, float *v, const float *g, int64_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, float grad_scale, float step_size, float bc2_sqrt,
               void *compute, int bf16);
int cuda_cast_params(ms_cuda_stream s, int bf16, void *params, const float *master, int64_t n);
int cuda_add(ms_cuda_stream s, float *y, const float *x, int64_t n);
#ifdef __cplusplus
}
#endif
#endif
