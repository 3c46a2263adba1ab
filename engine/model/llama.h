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
    int32_t grad_fresh;  /* its gradient is overwritten by the next write, not added to (ms_model_grads_fresh) */
    uint32_t id;         /* stable across world sizes: the meta-init counter */
    float init_std;      /* normal(0, init_std), or the constant init_value when 0 */
    float init_value;
} ms_tensor;

/* How a unit's state is split across ranks (zero/zero.h decides, per stage). */
typedef struct ms_unit_split {
    int32_t world, rank;
    int32_t shard_params;   /* compute params: only this rank's shard is kept (stage 3) */
    int32_t shard_grads;    /* gradients reduce-scattered into shards (stage >= 2) */
    int32_t shard_optim;    /* master weights and moments of this rank's shard only (stage >= 1) */
    int32_t own_grads;      /* a full gradient buffer of its own (else the shared scratch) */
    int32_t offload;        /* master weights and moments in host memory, updated by the CPU (zero/offload.h) */
    int32_t offload_params; /* and the compute shard (stage 3): uploaded just before each gather */
} ms_unit_split;

typedef struct ms_unit {
    char name[MS_NAME_LEN];
    int32_t kind;        /* UNIT_* */
    int32_t layer;       /* block index, -1 otherwise */
    int32_t first;       /* tensors [first, first + count) */
    int32_t count;
    int64_t numel;
    int64_t padded;      /* a multiple of MS_UNIT_PAD * world: splits evenly */
    ms_unit_split split;
    int64_t lo, hi;      /* the elements whose optimizer state this rank owns */
    /* where compute reads and writes: the whole unit */
    void *params;        /* (padded) act dtype; NULL while a sharded unit is released */
    float *grads;        /* (padded) fp32; NULL outside backward for shared-scratch units */
    /* what this rank keeps */
    void *params_home;   /* (padded) act, or (hi - lo) when shard_params; host memory when offload_params */
    float *grads_home;   /* (padded) when own_grads, else NULL */
    float *grads_owned;  /* (hi - lo) gradient of the owned range (a shard, or a view of grads_home) */
    float *master;       /* (hi - lo) fp32; under fp32 a view of params_home */
    float *m, *v;        /* (hi - lo) fp32 Adam moments */
    void *grads_host;    /* (hi - lo) act, offloaded units: the owned gradient in host memory, then (bf16)
                            the updated parameters on their way up; master, m and v are host memory too */
} ms_unit;

/* The compute copy of the elements this rank owns, [lo, hi) of unit un. */
static inline void *ms_unit_params_mine(const ms_unit *un, const ms_device *d) {
    return (char *)un->params_home + (un->split.shard_params ? 0 : un->lo * ms_act_bytes(d));
}

/* What one block's forward keeps for its backward. Under activation
 * checkpointing only x is per block; the rest is one shared set that the
 * recompute before each block's backward refills. Under selective
 * checkpointing xn1, xn2 and h (cheap to recompute: two norms and SwiGLU) are
 * that shared set and the rest is per block. N = B*T rows. */
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
    int32_t checkpoint;  /* activation checkpointing: blocks recomputed in backward */
    int32_t selective;   /* selective checkpointing: only norms and SwiGLU recomputed */
    int32_t doc_mask;    /* attention stays within documents (doc_start is filled) */
    int32_t bos;         /* the token that starts a document */
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
    int32_t *doc_start;  /* (N) under doc_mask: where each token's document starts in its sequence; else NULL */
} ms_model;

/* Check a configuration: every message names the key and what would be right. */
ms_status ms_model_check(const ms_config *cfg);

/* Build the unit and tensor tables (host metadata only) for this rank of a
 * world of `world` ranks under ZeRO `stage`. */
ms_status ms_model_build(ms_model *m, const ms_config *cfg, int32_t rank, int32_t world, int32_t stage);
void ms_model_free(ms_model *m);

/* Declare every buffer of the model through a layout pass (see core/arena.h):
 * on the device (l), and in host memory (host) what offloaded units keep there. */
void ms_model_layout(ms_model *m, const ms_device *d, ms_layout *l, ms_layout *host);

/* Meta init: the initial values of elements [from, from + n) of unit u's flat
 * buffer into out (host memory), each a pure function of (seed, tensor id,
 * element index), zeros in the padding. The engine stages them onto the
 * device chunk by chunk; the compute copy is refreshed by the caller
 * (zero/zero.h), as after an optimizer step. */
void ms_model_init_values(const ms_model *m, int u, uint64_t seed, int64_t from, int64_t n, float *out);
/* Initial value of one element (what ms_model_init_values writes). */
float ms_tensor_init_value(const ms_tensor *t, uint64_t seed, int64_t index);

/* The schedule is phrased in units, so that ZeRO can gather a unit's
 * parameters before it computes and reduce its gradients right after.
 * Forward of unit u over m->tokens (B sequences of T tokens, B <= m->B,
 * T <= m->T): embedding lookup, one block, or the final norm. */
void ms_model_unit_forward(ms_model *m, ms_device *d, int u, int B, int T);
/* The (B*T, dim) activations, in the compute dtype, that unit u's forward
 * wrote last: the embedding, a block's output, the head's normed input. */
void *ms_model_unit_output(const ms_model *m, int u);
/* Backward of unit u, reading the gradient of its output from m->dres and
 * leaving its input's there; gradients accumulate into unit->grads (the head's
 * into the embedding's too when tied). The head computes the loss here (fused
 * with its backward) and returns its sum; a checkpointed block recomputes its
 * forward first. */
double ms_model_unit_backward(ms_model *m, ms_device *d, int u, int B, int T, float grad_scale);
/* Summed loss after a forward of every unit, no backward (evaluation). */
double ms_model_loss(ms_model *m, ms_device *d, int B, int T);
/* fp32 logits (V) of the position `pos` of sequence 0 after a forward. */
void ms_model_logits_at(ms_model *m, ms_device *d, int pos, float *out);
/* The unit whose parameters the head also reads (the embedding when tied), or -1. */
int ms_model_head_extra_unit(const ms_model *m);

/* Parameters that take part in matmuls: the blocks' and the LM head's (the
 * embedding lookup is not a matmul; a tied head counts once). */
int64_t ms_model_matmul_params(const ms_model_config *c);
/* Model FLOPs for one trained token, 6N + attn_factor*L*T*d with N the above. */
double ms_model_flops_per_token(const ms_model_config *c, int T, int attn_factor);

/* Whether unit u's master weights are split over several ranks (a whole unit
 * exists on none of them). */
static inline int ms_unit_sharded(const ms_unit *u) { return u->split.shard_optim && u->split.world > 1; }

/* The elements of unit u this rank's checkpoint holds: its owned range
 * without padding, or, for a replicated unit, everything on rank 0 and
 * nothing elsewhere. */
void ms_unit_held(const ms_unit *u, int64_t *lo, int64_t *hi);

/* Unit u's gradient buffer holds nothing of use: the next write to each of
 * its tensors' gradients overwrites instead of adding (no zeroing pass). The
 * padding after its tensors is the caller's to keep zero. */
void ms_model_grads_fresh(ms_model *m, int u);

/* Pointers into a unit's compute buffers for tensor t (the unit must be resident). */
void *ms_tensor_param(const ms_model *m, const ms_device *d, int t);
float *ms_tensor_grad(const ms_model *m, int t);

#endif
