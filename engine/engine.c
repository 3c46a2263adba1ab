/*
 * engine.c — the composition root: implements the public API by wiring the
 * device, the model, the optimizer and the data.
 *
 * Create reserves every byte the plan names (one arena per purpose) and
 * nothing afterwards: step, eval and generate only use what was reserved.
 * Work is phrased as a schedule of units (embedding, blocks, head): forward
 * in order, backward in reverse, with the ZeRO hooks (zero/zero.h) around
 * each unit, so one code path serves every stage and world size.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/source.h"
#include "core/clock.h"
#include "core/rng.h"
#include "core/status.h"
#include "device/cuda.h"
#include "engine.h"
#include "optim/optim.h"

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- create / free ------------------------------------------------------ */

/* Every arena, on the device and on the host, reserved and carved exactly as
 * planned. */
static ms_status reserve_arenas(ms_engine *e, const ms_layout *sizing, const ms_layout *host_sizing) {
    for (int p = 0; p < MS_MEM_COUNT; p++) {
        void *base = NULL;
        TRY(e->dev.reserve(&e->dev, sizing->bytes[p], &base));
        e->arenas[p] = (ms_arena){.base = base, .capacity = sizing->bytes[p], .used = 0};
        e->reservations++;
        TRY(e->dev.host_reserve(&e->dev, host_sizing->bytes[p], &base));
        e->host[p] = (ms_arena){.base = base, .capacity = host_sizing->bytes[p], .used = 0};
    }
    ms_layout carve = {.arenas = e->arenas}, host = {.arenas = e->host};
    ms_engine_layout(&e->model, &e->zero, &e->offload, &e->stage, &e->backend, &e->dev, &carve, &host);
    for (int p = 0; p < MS_MEM_COUNT; p++)
        if (e->arenas[p].used != e->arenas[p].capacity || e->host[p].used != e->host[p].capacity)
            return ms_fail(MS_ERR_INTERNAL, "layout: purpose %d carved %lld of %lld planned bytes (host: %lld of %lld)",
                           p, (long long)e->arenas[p].used, (long long)e->arenas[p].capacity,
                           (long long)e->host[p].used, (long long)e->host[p].capacity);
    /* the backend's own scratch is planned memory too: the device only slices it */
    if (e->backend.bytes) TRY(e->dev.scratch_use(&e->dev, e->backend.base, e->backend.bytes));
    return MS_OK;
}

static ms_status open_data(ms_engine *e) {
    const char *tok = e->tokenizer;
    int T = e->cfg.train.seq_len, V = e->cfg.model.vocab_size;
    if (e->train_path) {
        TRY(ms_dataset_open(&e->train, e->train_path, V, tok, T));
        e->has_train = 1;
    }
    if (e->val_path) {
        TRY(ms_dataset_open(&e->val, e->val_path, V, tok, T));
        e->has_val = 1;
    }
    return MS_OK;
}

/* ---- host staging ------------------------------------------------------- */

/* A failure the device latched (a CUDA error) becomes this call's status. */
static ms_status device_status(ms_engine *e) {
#ifdef MS_HAVE_CUDA
    if (e->dev.kind == MS_DEVICE_CUDA) return ms_cuda_status(&e->dev);
#endif
    (void)e;
    return MS_OK;
}

void ms_stage_up(ms_engine *e, void *dev_dst, const void *host_src, int64_t bytes) {
    ms_device *d = &e->dev;
    int64_t chunk = e->stage.block_elems * 4;
    for (int64_t at = 0; at < bytes; at += chunk) {
        int64_t n = bytes - at < chunk ? bytes - at : chunk;
        memcpy(e->stage.block, (const char *)host_src + at, (size_t)n);
        d->upload(d, (char *)dev_dst + at, e->stage.block, n);
        d->sync(d); /* the block is refilled next */
    }
}

void ms_stage_down(ms_engine *e, void *host_dst, const void *dev_src, int64_t bytes) {
    ms_device *d = &e->dev;
    int64_t chunk = e->stage.block_elems * 4;
    for (int64_t at = 0; at < bytes; at += chunk) {
        int64_t n = bytes - at < chunk ? bytes - at : chunk;
        d->download(d, e->stage.block, (const char *)dev_src + at, n);
        memcpy((char *)host_dst + at, e->stage.block, (size_t)n);
    }
}

/* The initial master weights through the staging block, chunk by chunk of
 * this rank's owned range: meta init computed on the host
 * (ms_model_init_values), or read from src (init.from: a Hugging Face
 * directory, a run, a checkpoint), each rank reading only what it owns.
 * Moments and gradients start at zero on the device. */
static ms_status init_weights(ms_engine *e, uint64_t seed, ms_source *src) {
    ms_model *m = &e->model;
    ms_device *d = &e->dev;
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        int64_t owned = un->hi - un->lo;
        for (int64_t at = 0; at < owned; at += e->stage.block_elems) {
            int64_t n = owned - at < e->stage.block_elems ? owned - at : e->stage.block_elems;
            if (src) TRY(src->read(src, u, un->lo + at, un->lo + at + n, e->stage.block));
            else ms_model_init_values(m, u, seed, un->lo + at, n, e->stage.block);
            d->upload(d, un->master + at, e->stage.block, n * 4);
            d->sync(d);
        }
        d->zero(d, un->m, owned * 4);
        d->zero(d, un->v, owned * 4);
        if (un->grads_home) d->zero(d, un->grads_home, un->padded * 4);
        if (un->split.shard_grads) d->zero(d, un->grads_owned, owned * 4);
    }
    return device_status(e);
}

/* The batch the host filled in the staging buffers, onto the device. The
 * previous batch's upload must be done before the host refills them, so
 * callers call stage_wait first. */
static void stage_wait(ms_engine *e) { e->dev.sync(&e->dev); }

static void stage_batch(ms_engine *e, int B, int T) {
    ms_model *m = &e->model;
    ms_device *d = &e->dev;
    int64_t n = (int64_t)B * T * 4;
    if (m->doc_start) {
        ms_batch_doc_starts(e->stage.tokens, B, T, m->bos, e->stage.doc_start);
        d->upload(d, m->doc_start, e->stage.doc_start, n);
    }
    d->upload(d, m->tokens, e->stage.tokens, n);
    d->upload(d, m->targets, e->stage.targets, n);
}

#ifdef MS_HAVE_CUDA
static void device_copy(void *ctx, void *dst, const void *src, int64_t bytes) {
    ms_device *d = ctx;
    d->copy(d, dst, src, bytes);
}
#endif

/* Start the device, and the communicator over its buffers where the host's
 * will not do: on GPUs, NCCL between ranks (each local rank on its own GPU),
 * device copies for one rank. */
static ms_status start_device(ms_engine *e) {
    int32_t timeout = e->cfg.comm_timeout_ms ? e->cfg.comm_timeout_ms : 300000;
#ifdef MS_HAVE_CUDA
    if (e->dev.kind == MS_DEVICE_CUDA && e->world.world > 1) {
        ms_status st = ms_cuda_use_gpu(&e->dev, e->world.local_rank);
        if (st != MS_OK)
            return ms_fail_context(st, "local rank %d of %d on this node needs a GPU of its own", e->world.local_rank,
                                   e->world.local_world);
    }
    TRY(e->dev.start(&e->dev));
    if (e->dev.kind == MS_DEVICE_CUDA) {
        TRY(e->world.world > 1 ? ms_comm_nccl(&e->world, e->comm, &e->dev, timeout, &e->dev_comm)
                               : ms_comm_single_with_copy(device_copy, &e->dev, &e->dev_comm));
        e->zero.comm = e->dev_comm;
    }
    return MS_OK;
#else
    (void)timeout;
    return e->dev.start(&e->dev);
#endif
}

static ms_status create(ms_engine *e, const ms_config *cfg) {
    TRY(ms_config_check(cfg));
    e->cfg = *cfg;
    e->train_path = dup_or_null(cfg->train_path);
    e->val_path = dup_or_null(cfg->val_path);
    e->tokenizer = dup_or_null(cfg->tokenizer);
    e->cfg.train_path = e->train_path;
    e->cfg.val_path = e->val_path;
    e->cfg.tokenizer = e->tokenizer;
    e->cfg.comm_provider = NULL; /* read only here */
    e->cfg.init_from = NULL;
    TRY(ms_config_world(cfg, &e->world));
    /* ranks on one host share its cores unless the recipe says otherwise */
    int32_t threads = cfg->threads;
    if (threads == 0 && e->world.local_world > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > e->world.local_world ? (int32_t)(cores / e->world.local_world) : 1;
    }
    TRY(ms_device_init(&e->dev, cfg->device, cfg->precision, threads));
    TRY(ms_model_build(&e->model, cfg, e->world.rank, e->world.world, cfg->zero_stage));
    ms_model *m = &e->model;
    e->order_fwd = malloc((size_t)m->n_units * sizeof *e->order_fwd);
    e->order_bwd = malloc((size_t)m->n_units * sizeof *e->order_bwd);
    if (!e->order_fwd || !e->order_bwd) return ms_fail(MS_ERR_NOMEM, "ms_engine_create: out of host memory");
    for (int u = 0; u < m->n_units; u++) {
        e->order_fwd[u] = u;
        e->order_bwd[u] = m->n_units - 1 - u;
    }
    TRY(open_data(e));
    if (e->world.world > 1 && strcmp(e->world.source, "none") == 0)
        return ms_fail(MS_ERR_INVALID, "world_size = %d, but no ranks were started: run the recipe with "
                       "`moonspeed launch --nproc-per-node %d`", e->world.world, e->world.world);
    if (e->world.world > 1)
        TRY(ms_comm_create(&e->world, cfg->comm_provider, cfg->comm_timeout_ms ? cfg->comm_timeout_ms : 300000,
                           &e->comm));
    else
        TRY(ms_comm_single(&e->comm));
    ms_zero_setup(&e->zero, cfg->zero_stage, cfg->zero_prefetch, e->comm, e->comm);
    TRY(ms_offload_setup(&e->offload, m, &e->dev, &e->zero, e->order_fwd, cfg->offload_overlap));

    ms_layout sizing = {0}, host = {0};
    e->stage.async_checkpoints = cfg->checkpoint_async != 0;
    ms_engine_layout(m, &e->zero, &e->offload, &e->stage, &e->backend, &e->dev, &sizing, &host);
    ms_plan_from_layout(cfg, m, &sizing, &host, &e->plan);
    TRY(start_device(e));
    TRY(reserve_arenas(e, &sizing, &host));
    TRY(ms_offload_start(&e->offload));

    e->dev.rope_table(&e->dev, m->rope_cs, m->T, m->head_dim, m->c.rope_theta);
    ms_source *src = NULL;
    ms_status st = cfg->init_from && *cfg->init_from ? ms_source_open(m, cfg->init_from, &src) : MS_OK;
    if (st == MS_OK) st = init_weights(e, cfg->train.seed, src);
    ms_source_close(src);
    if (st != MS_OK) return cfg->init_from && *cfg->init_from ? ms_fail_context(st, "init.from") : st;
    return ms_zero_refresh_params(&e->zero, m, &e->dev);
}

ms_status ms_engine_create(const ms_config *cfg, ms_engine **out) {
    if (!cfg || !out) return ms_fail(MS_ERR_INVALID, "ms_engine_create: cfg and out are required");
    *out = NULL;
    ms_engine *e = calloc(1, sizeof *e);
    if (!e) return ms_fail(MS_ERR_NOMEM, "ms_engine_create: out of host memory");
    ms_status st = create(e, cfg);
    if (st != MS_OK) {
        ms_engine_free(e);
        return st;
    }
    *out = e;
    return MS_OK;
}

void ms_engine_free(ms_engine *e) {
    if (!e) return;
    ms_state_abandon(e);
    ms_offload_stop(&e->offload);
    if (e->dev.release)
        for (int p = 0; p < MS_MEM_COUNT; p++) {
            e->dev.release(&e->dev, e->arenas[p].base);
            e->dev.host_release(&e->dev, e->host[p].base);
        }
    if (e->dev_comm) e->dev_comm->destroy(e->dev_comm);
    if (e->dev.stop) e->dev.stop(&e->dev);
    if (e->comm) e->comm->destroy(e->comm);
    ms_dataset_close(&e->train);
    ms_dataset_close(&e->val);
    ms_model_free(&e->model);
    free(e->order_fwd);
    free(e->order_bwd);
    free(e->train_path);
    free(e->val_path);
    free(e->tokenizer);
    free(e);
}

/* ---- training ----------------------------------------------------------- */

/* Forward through every unit, each resident only while it computes. While
 * the head is resident, *loss gets the summed loss (when loss is not NULL)
 * and host_logits (n_pos, V; host memory) the logits of positions pos ..
 * pos + n_pos - 1 of sequence 0 (when host_logits is not NULL), each row
 * computed into m->logits and brought down through the staging row. */
static ms_status forward(ms_engine *e, int B, int T, double *loss, int pos, int n_pos, float *host_logits) {
    ms_model *m = &e->model;
    int64_t V = m->c.vocab_size;
    for (int i = 0; i < m->n_units; i++) {
        int u = e->order_fwd[i];
        /* the host's update of u, and of the units ZeRO gathers ahead */
        for (int k = 0; k <= e->zero.prefetch && i + k < m->n_units; k++)
            TRY(ms_offload_acquire(&e->offload, e->order_fwd[i + k]));
        TRY(ms_zero_acquire(&e->zero, m, &e->dev, e->order_fwd, m->n_units, i));
        ms_model_unit_forward(m, &e->dev, u, B, T);
        if (m->units[u].kind == UNIT_HEAD) {
            if (loss) *loss = ms_model_loss(m, &e->dev, B, T);
            for (int p = 0; host_logits && p < n_pos; p++) {
                ms_model_logits_at(m, &e->dev, pos + p, m->logits);
                e->dev.download(&e->dev, e->stage.logits, m->logits, V * 4);
                if (host_logits != e->stage.logits) memcpy(host_logits + p * V, e->stage.logits, (size_t)V * 4);
            }
        }
        ms_zero_release(&e->zero, m, u);
    }
    return device_status(e);
}

ms_status ms_engine_forward_backward(ms_engine *e, int B, int T, float grad_scale, int last, double *loss) {
    ms_model *m = &e->model;
    ms_device *d = &e->dev;
    TRY(forward(e, B, T, NULL, 0, 0, NULL));
    if (last) ms_offload_step_begin(&e->offload, &e->cfg.train, ms_schedule_lr(&e->cfg.train, e->step), e->step + 1);
    TRY(ms_zero_grads_micro_begin(&e->zero, m));
    *loss = 0;
    for (int i = 0; i < m->n_units; i++) {
        int u = e->order_bwd[i];
        TRY(ms_zero_acquire(&e->zero, m, d, e->order_bwd, m->n_units, i));
        TRY(ms_zero_grads_begin(&e->zero, m, d, u));
        *loss += ms_model_unit_backward(m, d, u, B, T, grad_scale);
        TRY(ms_zero_grads_end(&e->zero, m, d, u, last));
        if (last && ms_zero_grads_final_per_unit(&e->zero, &m->units[u])) ms_offload_grads(&e->offload, u);
        ms_zero_release(&e->zero, m, u);
    }
    return MS_OK;
}

static void comm_delta(const ms_comm_stats *before, const ms_comm_stats *after, ms_step_stats *out) {
    for (int k = 0; k < MS_COMM_KINDS; k++) {
        out->comm_calls[k] = after->calls[k] - before->calls[k];
        out->comm_bytes[k] = after->bytes[k] - before->bytes[k];
        out->comm_seconds[k] = after->seconds[k] - before->seconds[k];
    }
}

/* A step whose loss or gradient norm is not finite: nothing is updated; it
 * is skipped (counted as a step) or it fails, as the recipe says. */
static ms_status nonfinite(ms_engine *e, ms_step_stats *out, double loss, double norm, double t0) {
    char where[sizeof out->nonfinite];
    TRY(ms_health_diagnose(e, where, sizeof where));
    if (!e->cfg.train.skip_nonfinite)
        return ms_fail(MS_ERR_NUMERIC, "the loss is %g and the gradient norm %g; the first non-finite numbers are in %s. "
                       "Nothing was updated; lower train.lr, set train.clip, or set train.nan = \"skip\" to skip such steps",
                       loss, norm, where);
    if (out) {
        *out = (ms_step_stats){.step = e->step, .loss = (float)loss, .lr = ms_schedule_lr(&e->cfg.train, e->step),
                               .grad_norm = (float)norm, .seconds = ms_now() - t0, .skipped = 1};
        snprintf(out->nonfinite, sizeof out->nonfinite, "%s", where);
    }
    e->step++;
    return MS_OK;
}

static ms_status step(ms_engine *e, ms_step_stats *out) {
    double t0 = ms_now();
    const ms_train_config *t = &e->cfg.train;
    ms_model *m = &e->model;
    ms_device *d = &e->dev;
    ms_comm_stats before = e->comm->stats;
    int B = m->B, T = m->T, W = e->world.world;
    int per_rank = t->batch / W, accum = per_rank / B;
    float scale = 1.0f / ((float)t->batch * (float)T);

    ms_zero_grads_step_begin(&e->zero, m, d);
    double loss = 0, sums[2];
    for (int micro = 0; micro < accum; micro++) {
        int64_t first = (int64_t)e->world.rank * per_rank + (int64_t)micro * B;
        stage_wait(e);
        ms_batch_train(&e->train, t->seed, e->step, first, B, T, e->stage.tokens, e->stage.targets);
        stage_batch(e, B, T);
        double part;
        TRY(ms_engine_forward_backward(e, B, T, scale, micro == accum - 1, &part));
        loss += part;
    }
    TRY(ms_zero_grads_step_end(&e->zero));
    ms_offload_grads_rest(&e->offload);
    ms_health_inject(e);
    TRY(ms_zero_grad_sumsq(&e->zero, m, d, &sums[1]));
    sums[0] = loss;
    TRY(ms_zero_sum(&e->zero, sums, 1));
    double norm = sqrt(sums[1]);
    if (!isfinite(sums[0]) || !isfinite(norm)) {
        ms_offload_update(&e->offload, 0, 0.0f);
        return nonfinite(e, out, sums[0] / ((double)t->batch * T), norm, t0);
    }
    float clip = (t->clip > 0 && norm > t->clip) ? (float)(t->clip / (norm + 1e-6)) : 1.0f;
    float lr = ms_schedule_lr(t, e->step);
    ms_optimizer_step(m, d, t, lr, clip, e->step + 1);
    ms_offload_update(&e->offload, 1, clip);
    TRY(ms_zero_share_updated(&e->zero, m, d));
    d->sync(d);
    TRY(device_status(e));

    double update_s, wait_s;
    int32_t recomputed;
    ms_offload_take_costs(&e->offload, &update_s, &wait_s, &recomputed);
    if (out) {
        int64_t tokens = (int64_t)t->batch * T;
        *out = (ms_step_stats){
            .step = e->step, .loss = (float)(sums[0] / (double)tokens), .lr = lr, .grad_norm = (float)norm,
            .tokens = tokens, .seconds = ms_now() - t0, .flops = e->plan.flops_per_token * (double)tokens,
            .offload_update_seconds = update_s, .offload_wait_seconds = wait_s, .offload_recomputed = recomputed,
        };
        comm_delta(&before, &e->comm->stats, out);
    }
    e->step++;
    return MS_OK;
}

ms_status ms_engine_step(ms_engine *e, ms_step_stats *out) {
    if (!e) return ms_fail(MS_ERR_INVALID, "ms_engine_step: engine is NULL");
    if (!e->has_train)
        return ms_fail(MS_ERR_STATE, "ms_engine_step: the engine has no training data; set data.train");
    ms_status st = step(e, out);
    if (st != MS_OK) return ms_fail_context(st, "step %lld", (long long)e->step);
    return MS_OK;
}

/* Every rank runs the same number of forward passes (a stage-3 forward is
 * collective); rank r evaluates batches r, r + W, ... and counts those < n. */
ms_status ms_engine_eval(ms_engine *e, float *out_loss) {
    if (!e || !out_loss) return ms_fail(MS_ERR_INVALID, "ms_engine_eval: engine and out_loss are required");
    if (!e->has_val)
        return ms_fail(MS_ERR_STATE, "ms_engine_eval: the engine has no validation data; set data.val");
    int n = e->cfg.train.eval_batches, W = e->world.world;
    if (n < 1) return ms_fail(MS_ERR_STATE, "ms_engine_eval: train.eval_batches is 0; set it to at least 1");
    ms_model *m = &e->model;
    double loss = 0;
    for (int k = 0; k < (n + W - 1) / W; k++) {
        int b = k * W + e->world.rank;
        stage_wait(e);
        ms_batch_eval(&e->val, b % n, n, m->B, m->T, e->stage.tokens, e->stage.targets);
        stage_batch(e, m->B, m->T);
        double part;
        TRY(forward(e, m->B, m->T, &part, 0, 0, NULL));
        if (b < n) loss += part;
    }
    TRY(ms_zero_sum(&e->zero, &loss, 1));
    *out_loss = (float)(loss / ((double)n * m->B * m->T));
    return MS_OK;
}

int64_t ms_engine_get_step(const ms_engine *e) { return e ? e->step : -1; }
int32_t ms_engine_rank(const ms_engine *e) { return e ? e->world.rank : -1; }
int32_t ms_engine_world_size(const ms_engine *e) { return e ? e->world.world : 0; }
int32_t ms_engine_threads(const ms_engine *e) { return e ? e->dev.threads : 0; }

ms_status ms_engine_set_step(ms_engine *e, int64_t step) {
    if (!e || step < 0) return ms_fail(MS_ERR_INVALID, "ms_engine_set_step: step must be >= 0");
    e->step = step;
    return MS_OK;
}

ms_status ms_engine_agree_max(ms_engine *e, int32_t value, int32_t *max) {
    if (!e || !max) return ms_fail(MS_ERR_INVALID, "ms_engine_agree_max: engine and max are required");
    int32_t *all = calloc((size_t)e->world.world, sizeof *all);
    if (!all) return ms_fail(MS_ERR_NOMEM, "ms_engine_agree_max: out of host memory");
    ms_comm_req *req;
    ms_status st = e->comm->all_gather(e->comm, &value, all, 1, MS_F32, &req); /* 4 bytes each, copied as they are */
    if (st == MS_OK) st = e->comm->wait(e->comm, req);
    *max = value;
    for (int r = 0; st == MS_OK && r < e->world.world; r++)
        if (all[r] > *max) *max = all[r];
    free(all);
    return st;
}

/* ---- profile: the device's ops timed on its own clock --------------------- */

/* Why the device's profile() failed: its latched error (a GPU's), else the host's memory. */
static ms_status profile_failed(ms_engine *e, const char *fn) {
    ms_status st = device_status(e);
    return st != MS_OK ? st : ms_fail(MS_ERR_NOMEM, "%s: no host memory for the profile's sums", fn);
}

ms_status ms_engine_profile_start(ms_engine *e) {
    if (!e) return ms_fail(MS_ERR_INVALID, "ms_engine_profile_start: engine is NULL");
    if (e->profiling)
        return ms_fail(MS_ERR_STATE, "ms_engine_profile_start: a profile is already running; stop it first");
    if (e->dev.profile(&e->dev, 1, NULL, 0, NULL) < 0) return profile_failed(e, "ms_engine_profile_start");
    e->profiling = 1;
    return MS_OK;
}

ms_status ms_engine_profile_stop(ms_engine *e, ms_op_time *out, int32_t max, int32_t *count, double *window_seconds) {
    if (!e || !count || !window_seconds || max < 0 || (max > 0 && !out))
        return ms_fail(MS_ERR_INVALID, "ms_engine_profile_stop: engine, count, window_seconds and room for max "
                       ">= 0 ops are required");
    if (!e->profiling) return ms_fail(MS_ERR_STATE, "ms_engine_profile_stop: no profile is running");
    e->profiling = 0;
    *window_seconds = 0;
    int n = e->dev.profile(&e->dev, 0, out, max, window_seconds);
    if (n < 0) return profile_failed(e, "ms_engine_profile_stop");
    *count = n;
    return MS_OK;
}

/* ---- memory and introspection -------------------------------------------- */

ms_status ms_engine_memory(const ms_engine *e, ms_memory_report *out) {
    if (!e || !out) return ms_fail(MS_ERR_INVALID, "ms_engine_memory: engine and out are required");
    int64_t reserved[MS_MEM_COUNT], used[MS_MEM_COUNT];
    for (int p = 0; p < MS_MEM_COUNT; p++) {
        reserved[p] = e->arenas[p].capacity;
        used[p] = e->arenas[p].used;
    }
    ms_memory_from_bytes(&out->reserved, reserved);
    ms_memory_from_bytes(&out->used, used);
    out->reservations = e->reservations;
    return MS_OK;
}

ms_status ms_engine_plan(const ms_engine *e, ms_plan *out) {
    if (!e || !out) return ms_fail(MS_ERR_INVALID, "ms_engine_plan: engine and out are required");
    *out = e->plan;
    return MS_OK;
}

int32_t ms_engine_unit_count(const ms_engine *e) { return e ? e->model.n_units : 0; }

ms_status ms_engine_unit(const ms_engine *e, int32_t unit, ms_unit_info *out) {
    if (!e || !out) return ms_fail(MS_ERR_INVALID, "ms_engine_unit: engine and out are required");
    if (unit < 0 || unit >= e->model.n_units)
        return ms_fail(MS_ERR_INVALID, "unit %d does not exist; units are 0..%d", unit, e->model.n_units - 1);
    const ms_unit *u = &e->model.units[unit];
    *out = (ms_unit_info){.name = u->name, .n_tensors = u->count, .numel = u->numel, .padded_numel = u->padded};
    return MS_OK;
}

static ms_status tensor_index(const ms_engine *e, int32_t unit, int32_t index, int *t) {
    if (!e) return ms_fail(MS_ERR_INVALID, "engine is NULL");
    if (unit < 0 || unit >= e->model.n_units)
        return ms_fail(MS_ERR_INVALID, "unit %d does not exist; units are 0..%d", unit, e->model.n_units - 1);
    const ms_unit *u = &e->model.units[unit];
    if (index < 0 || index >= u->count)
        return ms_fail(MS_ERR_INVALID, "unit %s has no tensor %d; its tensors are 0..%d", u->name, index,
                       u->count - 1);
    *t = u->first + index;
    return MS_OK;
}

ms_status ms_engine_tensor(const ms_engine *e, int32_t unit, int32_t index, ms_tensor_info *out) {
    int t;
    TRY(tensor_index(e, unit, index, &t));
    const ms_tensor *tt = &e->model.tensors[t];
    *out = (ms_tensor_info){.name = tt->name, .unit = tt->unit, .dtype = e->dev.bf16 ? MS_BF16 : MS_F32,
                            .ndim = tt->ndim, .decay = tt->decay, .numel = tt->numel, .offset = tt->offset};
    memcpy(out->shape, tt->shape, sizeof out->shape);
    return MS_OK;
}

static ms_status range_check(const ms_tensor *t, int64_t offset, int64_t n, const void *buf) {
    if (!buf || offset < 0 || n < 0 || offset + n > t->numel)
        return ms_fail(MS_ERR_INVALID, "tensor %s: elements [%lld, %lld) are outside 0..%lld (or no buffer)",
                       t->name, (long long)offset, (long long)(offset + n), (long long)t->numel);
    return MS_OK;
}

/* Where elements [x, x + n) of a unit live on this rank for a view: the
 * whole-unit buffer when this rank keeps one, else its shard [lo, hi). */
static ms_status locate(const ms_engine *e, const ms_tensor *t, int32_t view, int64_t offset, int64_t n,
                        char **out) {
    const ms_unit *u = &e->model.units[t->unit];
    int64_t x = t->offset + offset, ab = ms_act_bytes(&e->dev);
    int whole = view == MS_VIEW_PARAM ? !u->split.shard_params
              : view == MS_VIEW_GRAD  ? !u->split.shard_grads
                                      : !u->split.shard_optim;
    if (view < MS_VIEW_PARAM || view > MS_VIEW_MASTER)
        return ms_fail(MS_ERR_INVALID, "view %d is unknown; expected 0 (param), 1 (grad) or 2 (master)", view);
    if (whole) {
        *out = view == MS_VIEW_PARAM ? (char *)u->params_home + x * ab
             : view == MS_VIEW_GRAD  ? (char *)(u->grads_home + x)
                                     : (char *)(u->master + x);
        return MS_OK;
    }
    if (x < u->lo || x + n > u->hi)
        return ms_fail(MS_ERR_INVALID, "tensor %s: elements [%lld, %lld) of unit %s are not on rank %d, which "
                       "holds [%lld, %lld) under ZeRO stage %d; read them on the ranks that own them",
                       t->name, (long long)x, (long long)(x + n), u->name, e->world.rank, (long long)u->lo,
                       (long long)u->hi, e->cfg.zero_stage);
    *out = view == MS_VIEW_PARAM ? (char *)u->params_home + (x - u->lo) * ab
         : view == MS_VIEW_GRAD  ? (char *)(u->grads_owned + (x - u->lo))
                                 : (char *)(u->master + (x - u->lo));
    return MS_OK;
}

ms_status ms_engine_tensor_read(const ms_engine *e, int32_t unit, int32_t index, int32_t view, int64_t offset,
                                float *dst, int64_t n) {
    int t;
    TRY(tensor_index(e, unit, index, &t));
    const ms_tensor *tt = &e->model.tensors[t];
    TRY(range_check(tt, offset, n, dst));
    ms_engine *me = (ms_engine *)e; /* reading waits for the host's updates (they move buffers), and stages */
    TRY(ms_offload_wait(&me->offload));
    char *src;
    TRY(locate(e, tt, view, offset, n, &src));
    if (view == MS_VIEW_PARAM && ms_act_bytes(&e->dev) == 2) {
        /* bf16 on the device: widen to fp32 chunk by chunk (the bits are the top half) */
        uint16_t *half = (uint16_t *)me->stage.block;
        int64_t chunk = me->stage.block_elems * 2;
        for (int64_t at = 0; at < n; at += chunk) {
            int64_t k = n - at < chunk ? n - at : chunk;
            me->dev.download(&me->dev, half, src + at * 2, k * 2);
            for (int64_t i = 0; i < k; i++) {
                uint32_t bits = (uint32_t)half[i] << 16;
                memcpy(dst + at + i, &bits, 4);
            }
        }
    } else {
        ms_stage_down(me, dst, src, n * 4);
    }
    return device_status(me);
}

ms_status ms_engine_tensor_write(ms_engine *e, int32_t unit, int32_t index, int64_t offset, const float *src,
                                 int64_t n) {
    int t;
    TRY(tensor_index(e, unit, index, &t));
    const ms_tensor *tt = &e->model.tensors[t];
    TRY(range_check(tt, offset, n, src));
    TRY(ms_offload_wait(&e->offload));
    char *master, *param;
    TRY(locate(e, tt, MS_VIEW_MASTER, offset, n, &master));
    TRY(locate(e, tt, MS_VIEW_PARAM, offset, n, &param));
    ms_stage_up(e, master, src, n * 4);
    e->dev.cast_params(&e->dev, param, (const float *)master, n);
    e->dev.sync(&e->dev);
    return device_status(e);
}

/* ---- logits and generation ------------------------------------------------ */

ms_status ms_engine_logits(ms_engine *e, const int32_t *tokens, int32_t n, float *out) {
    if (!e || !tokens || !out) return ms_fail(MS_ERR_INVALID, "ms_engine_logits: engine, tokens and out are required");
    ms_model *m = &e->model;
    if (n < 1 || n > m->T)
        return ms_fail(MS_ERR_INVALID, "ms_engine_logits: %d tokens; expected 1..train.seq_len = %d", n, m->T);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= m->c.vocab_size)
            return ms_fail(MS_ERR_INVALID, "ms_engine_logits: token %d is %d, outside the vocabulary of %d", i,
                           tokens[i], m->c.vocab_size);
    }
    stage_wait(e);
    memcpy(e->stage.tokens, tokens, (size_t)n * sizeof *tokens);
    for (int i = 0; i < n; i++) e->stage.targets[i] = -1;
    stage_batch(e, 1, n);
    return forward(e, 1, n, NULL, 0, n, out);
}

/* Sample from softmax(logits / temperature) restricted to the top_k largest. */
static int32_t sample(const float *logits, int V, float temperature, int top_k, float u) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0 || top_k == 1) return best;
    /* the k-th largest logit, by a bounded insertion list (k <= 256) */
    float kth = -INFINITY;
    if (top_k > 0 && top_k < V) {
        float top[256];
        int k = top_k < 256 ? top_k : 256, have = 0;
        for (int i = 0; i < V; i++) {
            float x = logits[i];
            if (have == k && x <= top[k - 1]) continue;
            int j = have < k ? have++ : k - 1;
            while (j > 0 && top[j - 1] < x) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = x;
        }
        kth = top[k - 1];
    }
    double total = 0, inv_t = 1.0 / temperature, mx = logits[best];
    for (int i = 0; i < V; i++)
        if (logits[i] >= kth) total += exp((logits[i] - mx) * inv_t);
    double target = u * total, acc = 0;
    for (int i = 0; i < V; i++) {
        if (logits[i] < kth) continue;
        acc += exp((logits[i] - mx) * inv_t);
        if (acc >= target) return i;
    }
    return best;
}

ms_status ms_engine_generate(ms_engine *e, const int32_t *prompt, int32_t n_prompt, int32_t max_new,
                             float temperature, int32_t top_k, uint64_t seed, int32_t stop_token, int32_t *out,
                             int32_t *n_out) {
    if (!e || !prompt || !out || !n_out || n_prompt < 1 || max_new < 0)
        return ms_fail(MS_ERR_INVALID, "ms_engine_generate: needs an engine, a prompt of at least one token, "
                       "max_new >= 0 and output buffers");
    ms_model *m = &e->model;
    int V = m->c.vocab_size, window = m->T;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return ms_fail(MS_ERR_INVALID, "prompt token %d is %d, outside the vocabulary of %d", i, prompt[i], V);
    uint64_t key = ms_rng_key(seed, MS_STREAM_SAMPLE);
    *n_out = 0;
    for (int k = 0; k < max_new; k++) {
        /* the context is the last `window` tokens of prompt + generated */
        int64_t len = (int64_t)n_prompt + k, start = len > window ? len - window : 0;
        int T = (int)(len - start);
        stage_wait(e);
        for (int t = 0; t < T; t++) {
            int64_t i = start + t;
            e->stage.tokens[t] = i < n_prompt ? prompt[i] : out[i - n_prompt];
            e->stage.targets[t] = -1;
        }
        stage_batch(e, 1, T);
        TRY(forward(e, 1, T, NULL, T - 1, 1, e->stage.logits));
        int32_t next = sample(e->stage.logits, V, temperature, top_k, ms_rng_uniform(key, (uint64_t)k, 0));
        if (next == stop_token) break;
        out[k] = next;
        *n_out = k + 1;
    }
    return MS_OK;
}

/* ---- changes between steps (moonspeed attach) ------------------------------ */

ms_status ms_engine_set_lr(ms_engine *e, float lr) {
    if (!e) return ms_fail(MS_ERR_INVALID, "ms_engine_set_lr: no engine");
    if (!(lr > 0.0f && lr < 10.0f))
        return ms_fail(MS_ERR_INVALID, "learning rate %g is out of range: it must be > 0 and < 10", (double)lr);
    ms_train_config *t = &e->cfg.train;
    t->min_lr = t->lr > 0.0f ? t->min_lr * (lr / t->lr) : 0.0f;
    t->lr = lr;
    return MS_OK;
}

ms_status ms_engine_broadcast(ms_engine *e, void *buf, int64_t bytes) {
    if (!e || (!buf && bytes > 0) || bytes < 0)
        return ms_fail(MS_ERR_INVALID, "ms_engine_broadcast: needs an engine and a buffer of bytes >= 0");
    if (e->world.world == 1 || bytes == 0) return MS_OK;
    ms_comm_req *req = NULL;
    TRY(e->comm->broadcast(e->comm, buf, bytes, 0, &req));
    return e->comm->wait(e->comm, req);
}
