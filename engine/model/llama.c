/*
 * model/llama.c — tables, layout, meta init, forward and backward of the
 * Llama family, phrased entirely in device-interface calls.
 *
 * Backward is explicit: the head computes loss and the gradient of its input
 * in one fused chunked pass; blocks then run in reverse, each reading the
 * gradient of its output from `dres` and leaving the gradient of its input
 * there (the residual path adds in place). Under activation checkpointing a
 * block's forward is re-run from its kept input right before its backward;
 * under selective checkpointing only its norms and SwiGLU are.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "model/llama.h"

/* ---- configuration ------------------------------------------------------ */

static int divisors_near(int n, int around, char *buf, size_t len) {
    /* up to three divisors of n closest to `around`, for "did you mean" hints */
    int found = 0;
    buf[0] = 0;
    for (int delta = 0; delta <= n && found < 3; delta++) {
        int cand[2] = {around - delta, around + delta};
        for (int i = 0; i < (delta ? 2 : 1) && found < 3; i++) {
            int c = cand[i];
            if (c >= 1 && c <= n && n % c == 0) {
                size_t used = strlen(buf);
                snprintf(buf + used, len - used, "%s%d", found ? ", " : "", c);
                found++;
            }
        }
    }
    return found;
}

ms_status ms_model_check(const ms_config *cfg) {
    const ms_model_config *c = &cfg->model;
    char hint[64];
    if (c->vocab_size < 2)
        return ms_fail(MS_ERR_INVALID, "model.vocab_size = %d: a vocabulary needs at least 2 tokens", c->vocab_size);
    if (cfg->doc_mask && (cfg->bos_token < 0 || cfg->bos_token >= c->vocab_size))
        return ms_fail(MS_ERR_INVALID, "data.doc_mask: the token that starts a document (bos_token = %d) must be in "
                       "0..model.vocab_size-1 = %d; it is the tokenizer's BOS", cfg->bos_token, c->vocab_size - 1);
    if (c->dim < 1 || c->n_layers < 1 || c->n_heads < 1 || c->n_kv_heads < 1 || c->ffn_dim < 1 || c->max_seq_len < 1)
        return ms_fail(MS_ERR_INVALID,
                       "model: dim = %d, n_layers = %d, n_heads = %d, n_kv_heads = %d, ffn_dim = %d and "
                       "max_seq_len = %d must all be at least 1",
                       c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->max_seq_len);
    if (c->dim % c->n_heads != 0) {
        divisors_near(c->dim, c->n_heads, hint, sizeof hint);
        return ms_fail(MS_ERR_INVALID,
                       "model.dim = %d is not divisible by model.n_heads = %d; every head needs dim/n_heads "
                       "channels: choose n_heads among the divisors of %d (nearest: %s)",
                       c->dim, c->n_heads, c->dim, hint);
    }
    if ((c->dim / c->n_heads) % 2 != 0)
        return ms_fail(MS_ERR_INVALID,
                       "model: head_dim = dim/n_heads = %d/%d = %d is odd; rotary embeddings rotate channel "
                       "pairs, so head_dim must be even",
                       c->dim, c->n_heads, c->dim / c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0) {
        divisors_near(c->n_heads, c->n_kv_heads, hint, sizeof hint);
        return ms_fail(MS_ERR_INVALID,
                       "model.n_heads = %d is not a multiple of model.n_kv_heads = %d; grouped-query attention "
                       "shares each kv head among n_heads/n_kv_heads query heads: choose n_kv_heads among "
                       "the divisors of %d (nearest: %s)",
                       c->n_heads, c->n_kv_heads, c->n_heads, hint);
    }
    if (!(c->rope_theta > 0) || !(c->norm_eps > 0) || !(c->init_std > 0))
        return ms_fail(MS_ERR_INVALID,
                       "model: rope_theta = %g, norm_eps = %g and init_std = %g must all be positive",
                       c->rope_theta, c->norm_eps, c->init_std);
    if (cfg->train.seq_len < 1 || cfg->train.seq_len > c->max_seq_len)
        return ms_fail(MS_ERR_INVALID,
                       "train.seq_len = %d is outside 1..model.max_seq_len = %d; lower seq_len or raise "
                       "max_seq_len",
                       cfg->train.seq_len, c->max_seq_len);
    /* keep every per-op element count inside int64 and every row width inside int */
    double rows = (double)cfg->train.micro_batch * cfg->train.seq_len;
    double widest = fmax(fmax((double)c->ffn_dim, (double)c->vocab_size), (double)c->dim);
    if (rows * widest > 9.0e15 || (double)c->vocab_size * c->dim > 9.0e15)
        return ms_fail(MS_ERR_INVALID, "model and train sizes overflow 64-bit element counts");
    return MS_OK;
}

/* ---- tables ------------------------------------------------------------- */

static void add_tensor(ms_model *m, int unit, int index, const char *name, int ndim, int64_t d0, int64_t d1,
                       int decay, float std, float value) {
    ms_unit *u = &m->units[unit];
    ms_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    if (snprintf(t->name, sizeof t->name, "%s.%s", u->name, name) >= (int)sizeof t->name)
        t->name[sizeof t->name - 1] = 0; /* unit and tensor names are short: cannot happen */
    t->unit = unit;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    t->numel = ndim > 1 ? d0 * d1 : d0;
    t->offset = u->numel;
    t->decay = decay;
    t->id = (uint32_t)(unit * 64 + index);
    t->init_std = std;
    t->init_value = value;
    u->numel += t->numel;
    u->count++;
}

static ms_unit *add_unit(ms_model *m, int kind, int layer, const char *name) {
    ms_unit *u = &m->units[m->n_units++];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->kind = kind;
    u->layer = layer;
    u->first = m->n_tensors;
    return u;
}

/* What ZeRO stage `stage` keeps whole and what it splits, for one unit. A
 * persistent unit (the embedding when the head shares it: two units use it, at
 * the two ends of the step) keeps whole parameters and its own gradients. */
static ms_unit_split split_for(int32_t stage, int32_t rank, int32_t world, int persistent) {
    return (ms_unit_split){
        .world = world, .rank = rank,
        .shard_optim = stage >= 1,
        .shard_grads = stage >= 2,
        .own_grads = stage < 2 || persistent,
        .shard_params = stage >= 3 && !persistent,
    };
}

/* Optimizer offload in whole units, the last in forward order first: their
 * gradients are final first in backward and their parameters are needed
 * last in the next forward, which leaves the CPU the most time. Units are
 * taken while that brings the offloaded share nearest to offload_ratio. */
static void choose_offload(ms_model *m, const ms_config *cfg) {
    if (!cfg->offload_optimizer) return;
    double total = 0, have = 0;
    for (int u = 0; u < m->n_units; u++) total += (double)m->units[u].numel;
    for (int u = m->n_units - 1; u >= 0; u--) {
        ms_unit *un = &m->units[u];
        if (have + 0.5 * (double)un->numel > cfg->offload_ratio * total) break;
        un->split.offload = 1;
        un->split.offload_params = cfg->offload_params && un->split.shard_params;
        have += (double)un->numel;
    }
}

ms_status ms_model_build(ms_model *m, const ms_config *cfg, int32_t rank, int32_t world, int32_t stage) {
    memset(m, 0, sizeof *m);
    TRY(ms_model_check(cfg));
    if (world < 1 || rank < 0 || rank >= world || stage < 0 || stage > 3)
        return ms_fail(MS_ERR_INVALID, "rank %d of world %d under ZeRO stage %d: expected 0 <= rank < world "
                       "and a stage of 0..3", rank, world, stage);
    const ms_model_config *c = &cfg->model;
    m->c = *c;
    m->B = cfg->train.micro_batch;
    m->T = cfg->train.seq_len;
    m->head_dim = c->dim / c->n_heads;
    m->checkpoint = cfg->train.checkpoint_activations == 1;
    m->selective = cfg->train.checkpoint_activations == 2;
    m->doc_mask = cfg->doc_mask != 0;
    m->bos = cfg->bos_token;
    int64_t rows = (int64_t)m->B * m->T;
    /* ~64 MiB of fp32 logits on the CPU. On a GPU, whose LM-head matmuls want
       many rows, a micro-batch's logits in one chunk (the head's fp32 weight
       gradient is then read and written once, not once a chunk) when they fit
       in 2 GiB, or in 8 GiB unless the recipe saves memory elsewhere
       (offloading the optimizer or checkpointing every activation); else
       ~512 MiB chunks (1046 rows at a 128K vocabulary) */
    int64_t logits = rows * c->vocab_size;
    int lean = cfg->offload_optimizer || m->checkpoint;
    int one = logits <= (int64_t)1 << 29 || (!lean && logits <= (int64_t)1 << 31);
    int64_t budget = cfg->device != MS_DEVICE_CUDA ? (int64_t)1 << 24 : one ? logits : (int64_t)1 << 27;
    int64_t auto_chunk = budget / c->vocab_size;
    if (auto_chunk < 64) auto_chunk = 64;
    int64_t chunk = cfg->loss_chunk > 0 ? cfg->loss_chunk : auto_chunk;
    m->chunk = (int32_t)(chunk < rows ? chunk : rows);

    int L = c->n_layers;
    m->units = calloc((size_t)L + 2, sizeof *m->units);
    m->tensors = calloc((size_t)L * B_COUNT + 3, sizeof *m->tensors);
    m->acts = calloc((size_t)L, sizeof *m->acts);
    if (!m->units || !m->tensors || !m->acts) {
        ms_model_free(m);
        return ms_fail(MS_ERR_NOMEM, "model tables for %d layers: out of host memory", L);
    }
    int D = c->dim, hd = m->head_dim, F = c->ffn_dim;
    float std = c->init_std, out_std = c->init_std / sqrtf(2.0f * (float)L);

    add_unit(m, UNIT_EMBED, -1, "embed");
    add_tensor(m, 0, 0, "weight", 2, c->vocab_size, D, 0, std, 0);
    for (int l = 0; l < L; l++) {
        char name[32];
        snprintf(name, sizeof name, "block.%d", l);
        add_unit(m, UNIT_BLOCK, l, name);
        int u = m->n_units - 1;
        add_tensor(m, u, B_ATTN_NORM, "attn_norm", 1, D, 0, 0, 0, 1.0f);
        add_tensor(m, u, B_WQ, "attn.wq", 2, (int64_t)c->n_heads * hd, D, 1, std, 0);
        add_tensor(m, u, B_WK, "attn.wk", 2, (int64_t)c->n_kv_heads * hd, D, 1, std, 0);
        add_tensor(m, u, B_WV, "attn.wv", 2, (int64_t)c->n_kv_heads * hd, D, 1, std, 0);
        add_tensor(m, u, B_WO, "attn.wo", 2, D, (int64_t)c->n_heads * hd, 1, out_std, 0);
        add_tensor(m, u, B_MLP_NORM, "mlp_norm", 1, D, 0, 0, 0, 1.0f);
        add_tensor(m, u, B_GATE, "mlp.w_gate", 2, F, D, 1, std, 0);
        add_tensor(m, u, B_UP, "mlp.w_up", 2, F, D, 1, std, 0);
        add_tensor(m, u, B_DOWN, "mlp.w_down", 2, D, F, 1, out_std, 0);
    }
    add_unit(m, UNIT_HEAD, -1, "head");
    add_tensor(m, m->n_units - 1, 0, "norm", 1, D, 0, 0, 0, 1.0f);
    if (!c->tie_embeddings) add_tensor(m, m->n_units - 1, 1, "weight", 2, c->vocab_size, D, 1, std, 0);
    int64_t pad = (int64_t)MS_UNIT_PAD * world;
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        un->padded = (un->numel + pad - 1) / pad * pad;
        un->split = split_for(stage, rank, world, u == ms_model_head_extra_unit(m));
        int64_t shard = un->padded / world;
        un->lo = un->split.shard_optim ? rank * shard : 0;
        un->hi = un->split.shard_optim ? un->lo + shard : un->padded;
    }
    choose_offload(m, cfg);
    return MS_OK;
}

void ms_model_free(ms_model *m) {
    free(m->units);
    free(m->tensors);
    free(m->acts);
    m->units = NULL;
    m->tensors = NULL;
    m->acts = NULL;
}

/* ---- layout ------------------------------------------------------------- */

void ms_model_layout(ms_model *m, const ms_device *d, ms_layout *l, ms_layout *host) {
    const ms_model_config *c = &m->c;
    int64_t ab = ms_act_bytes(d), i32 = d->elem_bytes(d, MS_I32);
    int64_t N = (int64_t)m->B * m->T, D = c->dim, F = c->ffn_dim;
    int64_t QD = (int64_t)c->n_heads * m->head_dim, KD = (int64_t)c->n_kv_heads * m->head_dim;
#define ACT(purpose, count) ms_layout_take(l, purpose, count, ab)
#define F32(purpose, count) ((float *)ms_layout_take(l, purpose, count, 4))

    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        const ms_unit_split *sp = &un->split;
        int64_t owned = un->hi - un->lo, shard = un->padded / sp->world;
        un->params_home = ms_layout_take(sp->offload_params ? host : l, MS_MEM_PARAMS,
                                         sp->shard_params ? shard : un->padded, ab);
        un->params = sp->shard_params ? NULL : un->params_home;
        un->grads_home = sp->own_grads ? F32(MS_MEM_GRADS, un->padded) : NULL;
        un->grads = un->grads_home;
        un->grads_owned = sp->shard_grads ? F32(MS_MEM_GRADS, shard)
                                          : (un->grads_home ? un->grads_home + un->lo : NULL);
        /* the optimizer's state: on the device, or in host memory when offloaded */
        ms_layout *opt = sp->offload ? host : l;
        if (d->bf16 || sp->offload) un->master = ms_layout_take(opt, MS_MEM_MASTER, owned, 4);
        else if (un->params_home) un->master = (float *)un->params_home + (sp->shard_params ? 0 : un->lo);
        un->m = ms_layout_take(opt, MS_MEM_OPTIMIZER, owned, 4);
        un->v = ms_layout_take(opt, MS_MEM_OPTIMIZER, owned, 4);
        un->grads_host = sp->offload ? ms_layout_take(host, MS_MEM_GRADS, owned, ab) : NULL;
    }

    /* activations: per block everything, or under checkpointing only the
       block inputs plus one shared set for the recompute */
    ms_block_acts shared = {0};
    for (int b = 0; b < c->n_layers; b++) {
        ms_block_acts *a = &m->acts[b];
        a->x = ACT(MS_MEM_ACTIVATIONS, N * D);
        if (m->checkpoint && b > 0) {
            void *x = a->x;
            *a = shared;
            a->x = x;
            continue;
        }
        int own = b == 0 || !m->selective; /* selective: block 0 holds the shared set */
        a->xn1 = own ? ACT(MS_MEM_ACTIVATIONS, N * D) : shared.xn1;
        a->rstd1 = F32(MS_MEM_ACTIVATIONS, N);
        a->q = ACT(MS_MEM_ACTIVATIONS, N * QD);
        a->k = ACT(MS_MEM_ACTIVATIONS, N * KD);
        a->v = ACT(MS_MEM_ACTIVATIONS, N * KD);
        a->att = ACT(MS_MEM_ACTIVATIONS, N * QD);
        a->lse = F32(MS_MEM_ACTIVATIONS, N * c->n_heads);
        a->x1 = ACT(MS_MEM_ACTIVATIONS, N * D);
        a->xn2 = own ? ACT(MS_MEM_ACTIVATIONS, N * D) : shared.xn2;
        a->rstd2 = F32(MS_MEM_ACTIVATIONS, N);
        a->gate = ACT(MS_MEM_ACTIVATIONS, N * F);
        a->up = ACT(MS_MEM_ACTIVATIONS, N * F);
        a->h = own ? ACT(MS_MEM_ACTIVATIONS, N * F) : shared.h;
        if ((m->checkpoint || m->selective) && b == 0) shared = *a;
    }
    m->x_final = ACT(MS_MEM_ACTIVATIONS, N * D);
    m->xnf = ACT(MS_MEM_ACTIVATIONS, N * D);
    m->rstdf = F32(MS_MEM_ACTIVATIONS, N);

    m->dres = ACT(MS_MEM_WORKSPACE, N * D);
    m->dxn = ACT(MS_MEM_WORKSPACE, N * D);
    m->dq = ACT(MS_MEM_WORKSPACE, N * QD);
    m->datt = ACT(MS_MEM_WORKSPACE, N * QD);
    m->dk = ACT(MS_MEM_WORKSPACE, N * KD);
    m->dv = ACT(MS_MEM_WORKSPACE, N * KD);
    m->dh = ACT(MS_MEM_WORKSPACE, N * F);
    m->dgate = ACT(MS_MEM_WORKSPACE, N * F);
    m->dup = ACT(MS_MEM_WORKSPACE, N * F);
    m->rope_cs = F32(MS_MEM_WORKSPACE, (int64_t)m->T * m->head_dim);
    m->logits = F32(MS_MEM_WORKSPACE, (int64_t)m->chunk * c->vocab_size);

    m->tokens = ms_layout_take(l, MS_MEM_DATA, N, i32);
    m->targets = ms_layout_take(l, MS_MEM_DATA, N, i32);
    m->doc_start = m->doc_mask ? ms_layout_take(l, MS_MEM_DATA, N, i32) : NULL;
#undef ACT
#undef F32
}

/* ---- parameters --------------------------------------------------------- */

void *ms_tensor_param(const ms_model *m, const ms_device *d, int t) {
    const ms_tensor *tt = &m->tensors[t];
    return (char *)m->units[tt->unit].params + tt->offset * ms_act_bytes(d);
}

float *ms_tensor_grad(const ms_model *m, int t) {
    const ms_tensor *tt = &m->tensors[t];
    return m->units[tt->unit].grads + tt->offset;
}

void ms_unit_held(const ms_unit *u, int64_t *lo, int64_t *hi) {
    if (!u->split.shard_optim && u->split.rank != 0) {
        *lo = *hi = 0;
        return;
    }
    *lo = u->lo < u->numel ? u->lo : u->numel;
    *hi = u->hi < u->numel ? u->hi : u->numel;
}

void ms_model_grads_fresh(ms_model *m, int u) {
    const ms_unit *un = &m->units[u];
    for (int i = un->first; i < un->first + un->count; i++) m->tensors[i].grad_fresh = 1;
}

/* Whether this write to tensor t's gradient adds (else it overwrites, once). */
static int grad_adds(ms_model *m, int t) {
    int adds = !m->tensors[t].grad_fresh;
    m->tensors[t].grad_fresh = 0;
    return adds;
}

float ms_tensor_init_value(const ms_tensor *t, uint64_t seed, int64_t index) {
    if (t->init_std == 0) return t->init_value;
    return t->init_std * ms_rng_normal(ms_rng_key(seed, MS_STREAM_INIT), (uint64_t)index, t->id);
}

void ms_model_init_values(const ms_model *m, int u, uint64_t seed, int64_t from, int64_t n, float *out) {
    const ms_unit *un = &m->units[u];
    memset(out, 0, (size_t)n * sizeof(float)); /* padding stays zero */
    for (int i = un->first; i < un->first + un->count; i++) {
        const ms_tensor *t = &m->tensors[i];
        int64_t lo = t->offset > from ? t->offset : from;
        int64_t hi = t->offset + t->numel < from + n ? t->offset + t->numel : from + n;
        #pragma omp parallel for schedule(static)
        for (int64_t e = lo; e < hi; e++) out[e - from] = ms_tensor_init_value(t, seed, e - t->offset);
    }
}

/* ---- forward ------------------------------------------------------------ */

/* Block index helpers: the tensor index of block l's tensor k. */
static int bt(int l, int k) { return 1 + l * B_COUNT + k; }
static int head_norm(const ms_model *m) { return 1 + m->c.n_layers * B_COUNT; }
static int head_weight(const ms_model *m) { return m->c.tie_embeddings ? 0 : head_norm(m) + 1; }

#define P(t) ms_tensor_param(m, d, (t))
#define G(t) ms_tensor_grad(m, (t))
#define ADDS(t) grad_adds(m, (t))

static void *block_out(ms_model *m, int l) {
    return l + 1 < m->c.n_layers ? m->acts[l + 1].x : m->x_final;
}

static void block_forward(ms_model *m, ms_device *d, int l, int B, int T) {
    const ms_model_config *c = &m->c;
    ms_block_acts *a = &m->acts[l];
    int64_t N = (int64_t)B * T;
    int D = c->dim, F = c->ffn_dim, H = c->n_heads, KV = c->n_kv_heads, hd = m->head_dim;
    void *out = block_out(m, l);

    d->rmsnorm_fwd(d, a->xn1, a->rstd1, a->x, P(bt(l, B_ATTN_NORM)), N, D, c->norm_eps);
    d->matmul_fwd(d, a->q, a->xn1, P(bt(l, B_WQ)), N, D, H * hd, NULL);
    d->matmul_fwd(d, a->k, a->xn1, P(bt(l, B_WK)), N, D, KV * hd, NULL);
    d->matmul_fwd(d, a->v, a->xn1, P(bt(l, B_WV)), N, D, KV * hd, NULL);
    d->rope_fwd(d, a->q, m->rope_cs, B, T, H, hd);
    d->rope_fwd(d, a->k, m->rope_cs, B, T, KV, hd);
    d->attention_fwd(d, a->att, a->lse, a->q, a->k, a->v, m->doc_start, B, T, H, KV, hd);
    d->matmul_fwd(d, a->x1, a->att, P(bt(l, B_WO)), N, H * hd, D, a->x);

    d->rmsnorm_fwd(d, a->xn2, a->rstd2, a->x1, P(bt(l, B_MLP_NORM)), N, D, c->norm_eps);
    d->matmul_fwd(d, a->gate, a->xn2, P(bt(l, B_GATE)), N, D, F, NULL);
    d->matmul_fwd(d, a->up, a->xn2, P(bt(l, B_UP)), N, D, F, NULL);
    d->swiglu_fwd(d, a->h, a->gate, a->up, N * F);
    d->matmul_fwd(d, out, a->h, P(bt(l, B_DOWN)), N, F, D, a->x1);
}

int ms_model_head_extra_unit(const ms_model *m) { return m->c.tie_embeddings ? 0 : -1; }

void ms_model_unit_forward(ms_model *m, ms_device *d, int u, int B, int T) {
    int64_t N = (int64_t)B * T;
    switch (m->units[u].kind) {
    case UNIT_EMBED:
        d->embedding_fwd(d, m->acts[0].x, m->tokens, P(0), N, m->c.dim);
        break;
    case UNIT_BLOCK:
        block_forward(m, d, m->units[u].layer, B, T);
        break;
    case UNIT_HEAD:
        d->rmsnorm_fwd(d, m->xnf, m->rstdf, m->x_final, P(head_norm(m)), N, m->c.dim, m->c.norm_eps);
        break;
    }
}

void *ms_model_unit_output(const ms_model *m, int u) {
    const ms_unit *un = &m->units[u];
    switch (un->kind) {
    case UNIT_EMBED: return m->acts[0].x;
    case UNIT_BLOCK: return un->layer + 1 < m->c.n_layers ? m->acts[un->layer + 1].x : m->x_final;
    default: return m->xnf;
    }
}

void ms_model_logits_at(ms_model *m, ms_device *d, int pos, float *out) {
    int64_t row = (int64_t)pos * ms_act_bytes(d) * m->c.dim;
    d->logits(d, out, (char *)m->xnf + row, P(head_weight(m)), 1, m->c.dim, m->c.vocab_size);
}

/* ---- backward ----------------------------------------------------------- */

/* Reads the gradient of block l's output from dres, leaves its input's there. */
static void block_backward(ms_model *m, ms_device *d, int l, int B, int T) {
    const ms_model_config *c = &m->c;
    ms_block_acts *a = &m->acts[l];
    int64_t N = (int64_t)B * T;
    int D = c->dim, F = c->ffn_dim, H = c->n_heads, KV = c->n_kv_heads, hd = m->head_dim;

    if (m->selective) { /* the shared xn1, xn2, h hold another block's: recompute this one's */
        d->rmsnorm_fwd(d, a->xn1, a->rstd1, a->x, P(bt(l, B_ATTN_NORM)), N, D, c->norm_eps);
        d->rmsnorm_fwd(d, a->xn2, a->rstd2, a->x1, P(bt(l, B_MLP_NORM)), N, D, c->norm_eps);
        d->swiglu_fwd(d, a->h, a->gate, a->up, N * F);
    }
    /* out = x1 + Wdown·h */
    d->matmul_bwd(d, m->dh, G(bt(l, B_DOWN)), m->dres, a->h, P(bt(l, B_DOWN)), N, F, D, 0, ADDS(bt(l, B_DOWN)));
    d->swiglu_bwd(d, m->dgate, m->dup, m->dh, a->gate, a->up, N * F);
    d->matmul_bwd(d, m->dxn, G(bt(l, B_GATE)), m->dgate, a->xn2, P(bt(l, B_GATE)), N, D, F, 0, ADDS(bt(l, B_GATE)));
    d->matmul_bwd(d, m->dxn, G(bt(l, B_UP)), m->dup, a->xn2, P(bt(l, B_UP)), N, D, F, 1, ADDS(bt(l, B_UP)));
    d->rmsnorm_bwd(d, m->dres, G(bt(l, B_MLP_NORM)), m->dxn, a->x1, P(bt(l, B_MLP_NORM)), a->rstd2, N, D,
                   ADDS(bt(l, B_MLP_NORM)));

    /* x1 = x + Wo·attention */
    d->matmul_bwd(d, m->datt, G(bt(l, B_WO)), m->dres, a->att, P(bt(l, B_WO)), N, H * hd, D, 0, ADDS(bt(l, B_WO)));
    d->attention_bwd(d, m->dq, m->dk, m->dv, m->datt, a->q, a->k, a->v, a->att, a->lse, m->doc_start, B, T, H, KV,
                     hd);
    d->rope_bwd(d, m->dq, m->rope_cs, B, T, H, hd);
    d->rope_bwd(d, m->dk, m->rope_cs, B, T, KV, hd);
    d->matmul_bwd(d, m->dxn, G(bt(l, B_WQ)), m->dq, a->xn1, P(bt(l, B_WQ)), N, D, H * hd, 0, ADDS(bt(l, B_WQ)));
    d->matmul_bwd(d, m->dxn, G(bt(l, B_WK)), m->dk, a->xn1, P(bt(l, B_WK)), N, D, KV * hd, 1, ADDS(bt(l, B_WK)));
    d->matmul_bwd(d, m->dxn, G(bt(l, B_WV)), m->dv, a->xn1, P(bt(l, B_WV)), N, D, KV * hd, 1, ADDS(bt(l, B_WV)));
    d->rmsnorm_bwd(d, m->dres, G(bt(l, B_ATTN_NORM)), m->dxn, a->x, P(bt(l, B_ATTN_NORM)), a->rstd1, N, D,
                   ADDS(bt(l, B_ATTN_NORM)));
}

static int loss_chunk(const ms_model *m, int64_t N) { return m->chunk < N ? m->chunk : (int)N; }

double ms_model_loss(ms_model *m, ms_device *d, int B, int T) {
    int64_t N = (int64_t)B * T;
    return d->lmhead_xent(d, NULL, NULL, m->logits, m->xnf, P(head_weight(m)), m->targets, N, m->c.dim,
                          m->c.vocab_size, loss_chunk(m, N), 0.0f, 1);
}

double ms_model_unit_backward(ms_model *m, ms_device *d, int u, int B, int T, float grad_scale) {
    const ms_model_config *c = &m->c;
    int64_t N = (int64_t)B * T;
    switch (m->units[u].kind) {
    case UNIT_HEAD: {
        int hw = head_weight(m);
        double loss = d->lmhead_xent(d, m->dxn, G(hw), m->logits, m->xnf, P(hw), m->targets, N, c->dim,
                                     c->vocab_size, loss_chunk(m, N), grad_scale, ADDS(hw));
        d->zero(d, m->dres, N * c->dim * ms_act_bytes(d));
        d->rmsnorm_bwd(d, m->dres, G(head_norm(m)), m->dxn, m->x_final, P(head_norm(m)), m->rstdf, N, c->dim,
                       ADDS(head_norm(m)));
        return loss;
    }
    case UNIT_BLOCK:
        if (m->checkpoint) block_forward(m, d, m->units[u].layer, B, T);
        block_backward(m, d, m->units[u].layer, B, T);
        return 0;
    case UNIT_EMBED: /* a scatter that adds: a fresh table (untied) is zeroed first */
        if (!ADDS(0)) d->zero(d, G(0), (int64_t)c->vocab_size * c->dim * 4);
        d->embedding_bwd(d, G(0), m->dres, m->tokens, N, c->dim);
        return 0;
    }
    return 0;
}

int64_t ms_model_matmul_params(const ms_model_config *c) {
    int64_t hd = c->dim / c->n_heads, D = c->dim;
    int64_t per_block = D * c->n_heads * hd * 2 + D * c->n_kv_heads * hd * 2 + 3 * D * (int64_t)c->ffn_dim;
    return per_block * c->n_layers + (int64_t)c->vocab_size * D; /* blocks + LM head, tied or not */
}

double ms_model_flops_per_token(const ms_model_config *c, int T, int attn_factor) {
    return 6.0 * (double)ms_model_matmul_params(c) + (double)attn_factor * c->n_layers * T * c->dim;
}
