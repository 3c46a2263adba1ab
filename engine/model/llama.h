/*
 * model/llama.h — the Llama family as units of flat parameter buffers.
 *
 * A model is a list of units: "embed" (token embedding), "block.<l>" (one
 * transformer block each) and "head" (final RMSNorm + LM head). Each unit owns
 * ONE flat buffer per kind of state (compute params, fp32 master, fp32 grads,
 * Adam m and v), padded to a multiple of MS_UNIT_PAD elements, with a table of
 * named tensor views into it. Sharding, offload and checkpoints later work on
 * these flat buffers and never on individual tensors.
 *
 * Block l (pre-norm, SwiGLU, grouped-query attention, HF Llama RoPE):
 *   x1  = x  + Wo · attn(rope(Wq·rms(x)), rope(Wk·rms(x)), Wv·rms(x))
 *   out = x1 + Wdown · (silu(Wgate·rms(x1)) * (Wup·rms(x1)))
 * Weights use the (out, in) layout of a torch Linear, so they map 1:1 onto
 * Hugging Face checkpoints.
 */
#ifndef MS_MODEL_LLAMA_H
#define MS_MODEL_LLAMA_H
#include <stdint.h>

#include "core/arena.h"
#include "device/device.h"
#include "include/moonspeed.h"

#define MS_UNIT_PAD 64
#define MS_NAME_LEN 48

enum { UNIT_EMBED, UNIT_BLOCK, UNIT_HEAD };

/* Tensor order inside a block unit. */
enum { B_ATTN_NORM, B_WQ, B_WK, B_WV, B_WO, B_MLP_NORM, B_GATE, B_UP, B_DOWN, B_COUNT };

typedef struct ms_tensor {
    char name[MS_NAME_LEN];
    int32_t unit;
    int32_t ndim;
    int64_t shape[4];
    int64_t numel;
    int64_t offset;      /* elements from the start of the unit's flat buffer */
    int32_t decay;       /* weight decay applies */
    uint32_t id;         /* stable across world sizes: the meta-init counter */
    float init_std;      /* normal(0, init_std), or the constant init_value when 0 */
    float init_value;
} ms_tensor;

typedef struct ms_unit {
    char name[MS_NAME_LEN];
    int32_t kind;        /* UNIT_* */
    int32_t layer;       /* block index, -1 otherwise */
    int32_t first;       /* tensors [first, first + count) */
    int32_t count;
    int64_t numel;
    int64_t padded;
    void *params;        /* (padded) act dtype: what compute reads */
    float *master;       /* (padded) fp32; the same buffer as params under fp32 */
    float *grads;        /* (padded) fp32 */
    float *m, *v;        /* (padded) fp32 Adam moments */
} ms_unit;

/* What one block's forward keeps for its backward. Under activation
 * checkpointing only x is per block; the rest is one shared set that the
 * recompute before each block's backward refills. N = B*T rows. */
typedef struct ms_block_acts {
    void *x;             /* (N, D) block input: the residual stream */
    void *xn1;           /* (N, D) rms(x) */
    float *rstd1;        /* (N) */
    void *q;             /* (N, H*hd) after RoPE */
    void *k, *v;         /* (N, KV*hd), k after RoPE */
    void *att;           /* (N, H*hd) attention output, heads concatenated */
    float *lse;          /* (B, H, T) softmax log-sum-exp */
    void *x1;            /* (N, D) after the attention residual */
    void *xn2;           /* (N, D) rms(x1) */
    float *rstd2;        /* (N) */
    void *gate, *up, *h; /* (N, F) */
} ms_block_acts;

typedef struct ms_model {
    ms_model_config c;
    int32_t B, T;        /* micro-batch shape the buffers hold */
    int32_t head_dim;
    int32_t chunk;       /* LM-head rows per chunk */
    int32_t checkpoint;  /* activation checkpointing */
    int32_t n_units, n_tensors;
    ms_unit *units;      /* (n_units) metadata, host */
    ms_tensor *tensors;  /* (n_tensors) metadata, host */
    ms_block_acts *acts; /* (n_layers) metadata, host */
    void *x_final;       /* (N, D) output of the last block */
    void *xnf;           /* (N, D) final norm output */
    float *rstdf;        /* (N) */
    /* backward scratch */
    void *dres;          /* (N, D) gradient of the residual stream, updated in place */
    void *dxn;           /* (N, D) gradient at a norm output */
    void *dq, *datt;     /* (N, H*hd) */
    void *dk, *dv;       /* (N, KV*hd) */
    void *dh, *dgate, *dup; /* (N, F) */
    float *rope_cs;      /* (T, hd/2, 2) cos, sin */
    float *logits;       /* (chunk, V) fp32 */
    int32_t *tokens;     /* (N) inputs */
    int32_t *targets;    /* (N) next tokens, -1 = ignore */
} ms_model;

/* Check a configuration: every message names the key and what would be right. */
ms_status ms_model_check(const ms_config *cfg);

/* Build the unit and tensor tables (host metadata only). */
ms_status ms_model_build(ms_model *m, const ms_config *cfg);
void ms_model_free(ms_model *m);

/* Declare every buffer of the model through a layout pass (see core/arena.h). */
void ms_model_layout(ms_model *m, const ms_device *d, ms_layout *l);

/* Meta init: write the initial value of every parameter into the master
 * buffers, each element a pure function of (seed, tensor id, element index). */
void ms_model_init(ms_model *m, ms_device *d, uint64_t seed);
/* Initial value of one element (what ms_model_init writes). */
float ms_tensor_init_value(const ms_tensor *t, uint64_t seed, int64_t index);

/* Forward over m->tokens for B sequences of T tokens (B <= m->B, T <= m->T). */
void ms_model_forward(ms_model *m, ms_device *d, int B, int T);
/* After forward: loss summed over targets >= 0; with backward != 0 also the
 * gradients of grad_scale * loss, accumulated into the units' grads. */
double ms_model_loss(ms_model *m, ms_device *d, int B, int T, float grad_scale, int backward);
/* fp32 logits (V) of the position `pos` of sequence 0 after a forward. */
void ms_model_logits_at(ms_model *m, ms_device *d, int pos, float *out);

/* Parameters that take part in matmuls: the blocks' and the LM head's (the
 * embedding lookup is not a matmul; a tied head counts once). */
int64_t ms_model_matmul_params(const ms_model_config *c);
/* Model FLOPs for one trained token, 6N + attn_factor*L*T*d with N the above. */
double ms_model_flops_per_token(const ms_model_config *c, int T, int attn_factor);

/* Pointers into a unit's buffers for tensor t. */
void *ms_tensor_param(const ms_model *m, const ms_device *d, int t);
float *ms_tensor_grad(const ms_model *m, int t);
float *ms_tensor_master(const ms_model *m, int t);

#endif
