/*
 * plan.c — the memory plan: every byte one rank will reserve, by purpose,
 * computed by running the engine's layout in sizing mode (core/arena.h). The
 * engine reserves from the very same layout, so the plan is exact.
 */
#include <string.h>

#include "core/status.h"
#include "engine.h"

ms_status ms_config_world(const ms_config *cfg, ms_world *out) {
    TRY(ms_world_from_env(out));
    if (cfg->world_size > 0 && cfg->world_size != out->world) {
        if (out->world > 1)
            return ms_fail(MS_ERR_INVALID, "world_size = %d, but the environment (%s) says %d ranks; drop "
                           "world_size or launch %d ranks", cfg->world_size, out->source, out->world,
                           cfg->world_size);
        out->world = cfg->world_size; /* planning for a world not started here: rank 0's view */
        out->rank = 0;
    }
    int per_step = cfg->train.micro_batch * out->world;
    if (cfg->train.batch % per_step != 0)
        return ms_fail(MS_ERR_INVALID, "train.batch = %d is not a multiple of train.micro_batch x ranks = %d x %d; "
                       "every rank runs the same number of micro-batches of the global batch",
                       cfg->train.batch, cfg->train.micro_batch, out->world);
    return MS_OK;
}

/* The backend's scratch, sized for the largest calls of a step: the
 * micro-batch's rows, attention over its sequences, the model's width. */
static void backend_layout(ms_backend_scratch *b, const ms_model *m, const ms_device *d, ms_layout *l) {
    ms_device_shape shape = {.rows = (int64_t)m->B * m->T, .B = m->B, .T = m->T, .heads = m->c.n_heads,
                             .head_dim = m->head_dim, .dim = m->c.dim};
    b->bytes = d->scratch_bytes ? d->scratch_bytes(d, &shape) : 0;
    b->base = b->bytes ? ms_layout_take(l, MS_MEM_BACKEND, b->bytes, 1) : NULL;
}

void ms_engine_layout(ms_model *m, ms_zero *z, ms_offload *o, ms_staging *s, ms_backend_scratch *b,
                      const ms_device *d, ms_layout *l, ms_layout *host) {
    ms_model_layout(m, d, l, host);
    ms_zero_layout(z, m, d, l);
    ms_offload_layout(o, m, d, l, host);
    ms_staging_layout(s, m, host);
    backend_layout(b, m, d, l);
}

/* The chunk of init values and weights: up to MS_STAGE_BLOCK floats, never
 * more than the largest unit holds. A whole unit only where saving weights
 * must gather one from its shards' owners. The state an asynchronous
 * checkpoint writes, when the recipe asks for those. */
void ms_staging_layout(ms_staging *s, const ms_model *m, ms_layout *l) {
    int64_t N = (int64_t)m->B * m->T, largest = 0;
    int sharded = 0;
    for (int u = 0; u < m->n_units; u++) {
        if (m->units[u].padded > largest) largest = m->units[u].padded;
        sharded |= ms_unit_sharded(&m->units[u]);
    }
    s->tokens = ms_layout_take(l, MS_MEM_DATA, N, 4);
    s->targets = ms_layout_take(l, MS_MEM_DATA, N, 4);
    s->doc_start = m->doc_mask ? ms_layout_take(l, MS_MEM_DATA, N, 4) : NULL;
    s->logits = ms_layout_take(l, MS_MEM_WORKSPACE, m->c.vocab_size, 4);
    s->block_elems = largest < MS_STAGE_BLOCK ? largest : MS_STAGE_BLOCK;
    s->block = ms_layout_take(l, MS_MEM_WORKSPACE, s->block_elems, 4);
    s->gather = sharded ? ms_layout_take(l, MS_MEM_WORKSPACE, largest, 4) : NULL;
    s->snapshot_floats = 0;
    for (int u = 0; u < m->n_units && s->async_checkpoints; u++) {
        int64_t lo, hi;
        ms_unit_held(&m->units[u], &lo, &hi);
        s->snapshot_floats += 3 * (hi - lo);
    }
    s->snapshot = s->snapshot_floats ? ms_layout_take(l, MS_MEM_CHECKPOINT, s->snapshot_floats, 4) : NULL;
}

void ms_plan_from_layout(const ms_config *cfg, const ms_model *m, const ms_layout *l, const ms_layout *host,
                         ms_plan *out) {
    memset(out, 0, sizeof *out);
    out->device = cfg->device;
    out->world_size = m->units[0].split.world;
    out->zero_stage = cfg->zero_stage;
    out->n_units = m->n_units;
    for (int t = 0; t < m->n_tensors; t++) out->n_params += m->tensors[t].numel;
    for (int u = 0; u < m->n_units; u++)
        if (m->units[u].split.offload) {
            out->offload_units++;
            out->offload_params += m->units[u].numel;
        }
    out->n_params_matmul = ms_model_matmul_params(&m->c);
    out->flops_per_token = ms_model_flops_per_token(&m->c, cfg->train.seq_len, 6);
    out->flops_per_token_full = ms_model_flops_per_token(&m->c, cfg->train.seq_len, 12);
    ms_memory_from_bytes(&out->device_bytes, l->bytes);
    /* the host holds the staging of what crosses (a batch, a row of logits,
       a chunk of weights) and the state of offloaded units */
    ms_memory_from_bytes(&out->host_bytes, host->bytes);
}

ms_status ms_plan_compute(const ms_config *cfg, ms_plan *out) {
    if (!cfg || !out) return ms_fail(MS_ERR_INVALID, "ms_plan_compute: cfg and out are required");
    TRY(ms_config_check(cfg));
    ms_world w;
    TRY(ms_config_world(cfg, &w));
    ms_device dev; /* described only: a plan for a GPU needs no GPU */
    TRY(ms_device_describe(&dev, cfg->device, cfg->precision));
    ms_model m;
    TRY(ms_model_build(&m, cfg, w.rank, w.world, cfg->zero_stage));
    ms_zero z;
    ms_zero_setup(&z, cfg->zero_stage, cfg->zero_prefetch, NULL, NULL);
    ms_layout sizing = {0}, host = {0};
    ms_staging stage = {.async_checkpoints = cfg->checkpoint_async};
    ms_offload o = {.overlap = cfg->offload_overlap};
    ms_backend_scratch b;
    ms_engine_layout(&m, &z, &o, &stage, &b, &dev, &sizing, &host);
    ms_plan_from_layout(cfg, &m, &sizing, &host, out);
    ms_model_free(&m);
    return MS_OK;
}
