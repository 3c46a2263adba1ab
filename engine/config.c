/*
 * config.c — defaults and validation of ms_config.
 *
 * The defaults are those of the recipe schema (lua/moonspeed/schema.lua); a
 * spec checks that the two agree. Every message names the recipe key.
 */
#include <string.h>

#include "core/status.h"
#include "model/llama.h"

ms_status ms_config_defaults(ms_config *cfg) {
    if (!cfg) return ms_fail(MS_ERR_INVALID, "ms_config_defaults: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    cfg->model = (ms_model_config){
        .vocab_size = 258, .dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .ffn_dim = 384,
        .max_seq_len = 256, .tie_embeddings = 1, .rope_theta = 10000.0f, .norm_eps = 1e-5f, .init_std = 0.02f,
    };
    cfg->train = (ms_train_config){
        .steps = 1000, .batch = 16, .micro_batch = 16, .seq_len = 128, .warmup = 0,
        .schedule = MS_SCHEDULE_COSINE, .lr = 1e-3f, .min_lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f,
        .eps = 1e-8f, .weight_decay = 0.1f, .clip = 1.0f, .checkpoint_activations = 0, .eval_batches = 8,
        .seed = 1234,
    };
    cfg->precision = MS_PRECISION_FP32;
    cfg->device = MS_DEVICE_CPU;
    cfg->zero_prefetch = 1;
    cfg->offload_ratio = 1.0f;
    return MS_OK;
}

ms_status ms_config_check(const ms_config *cfg) {
    if (!cfg) return ms_fail(MS_ERR_INVALID, "ms_config_check: cfg is NULL");
    const ms_train_config *t = &cfg->train;
    if (cfg->precision != MS_PRECISION_FP32 && cfg->precision != MS_PRECISION_BF16)
        return ms_fail(MS_ERR_INVALID, "precision = %d; expected 0 (\"fp32\") or 1 (\"bf16\")", cfg->precision);
    if (cfg->device != MS_DEVICE_CPU && cfg->device != MS_DEVICE_CUDA)
        return ms_fail(MS_ERR_INVALID, "device = %d; expected 0 (\"cpu\") or 1 (\"cuda\")", cfg->device);
    if (cfg->zero_stage < 0 || cfg->zero_stage > 3)
        return ms_fail(MS_ERR_INVALID, "zero.stage = %d; expected 0 (replicate), 1 (shard optimizer state), "
                       "2 (+ gradients) or 3 (+ parameters)", cfg->zero_stage);
    if (cfg->zero_prefetch < 0 || cfg->zero_prefetch > 2)
        return ms_fail(MS_ERR_INVALID, "zero.prefetch = %d; expected 0, 1 or 2 units gathered ahead",
                       cfg->zero_prefetch);
    if (cfg->world_size < 0 || cfg->comm_timeout_ms < 0)
        return ms_fail(MS_ERR_INVALID, "world_size = %d and the collective timeout %d ms must be >= 0",
                       cfg->world_size, cfg->comm_timeout_ms);
    if (cfg->offload_optimizer < 0 || cfg->offload_optimizer > 1 || !(cfg->offload_ratio >= 0.0f) ||
        cfg->offload_ratio > 1.0f)
        return ms_fail(MS_ERR_INVALID, "offload.optimizer = %d and offload.ratio = %g; expected 0 (none) or 1 (cpu), "
                       "and a ratio in [0, 1]", cfg->offload_optimizer, (double)cfg->offload_ratio);
    if (cfg->offload_params && (cfg->zero_stage != 3 || !cfg->offload_optimizer))
        return ms_fail(MS_ERR_INVALID, "offload.params = \"cpu\" streams the shards of ZeRO stage 3 from the host, "
                       "and the host updates them: it needs zero.stage = 3 and offload.optimizer = \"cpu\" (got stage %d, "
                       "optimizer %s)", cfg->zero_stage, cfg->offload_optimizer ? "\"cpu\"" : "\"none\"");
    if (cfg->train.checkpoint_activations < 0 || cfg->train.checkpoint_activations > 2)
        return ms_fail(MS_ERR_INVALID, "train.checkpoint_activations = %d; expected 0 (off), 1 (whole blocks) or "
                       "2 (selective)", cfg->train.checkpoint_activations);
    if (cfg->threads < 0 || cfg->loss_chunk < 0)
        return ms_fail(MS_ERR_INVALID, "threads = %d and train.loss_chunk = %d must be >= 0 (0 = automatic)",
                       cfg->threads, cfg->loss_chunk);
    if (t->steps < 0 || t->warmup < 0 || t->eval_batches < 0)
        return ms_fail(MS_ERR_INVALID, "train.steps = %d, train.warmup = %d and train.eval_batches = %d must be "
                       ">= 0", t->steps, t->warmup, t->eval_batches);
    if (t->batch < 1 || t->micro_batch < 1)
        return ms_fail(MS_ERR_INVALID, "train.batch = %d and train.micro_batch = %d must be >= 1", t->batch,
                       t->micro_batch);
    if (t->batch % t->micro_batch != 0)
        return ms_fail(MS_ERR_INVALID, "train.batch = %d is not a multiple of train.micro_batch = %d; gradient "
                       "accumulation runs batch/micro_batch micro-batches per step (try micro_batch = %d)",
                       t->batch, t->micro_batch, t->batch);
    if (t->schedule < MS_SCHEDULE_CONSTANT || t->schedule > MS_SCHEDULE_COSINE)
        return ms_fail(MS_ERR_INVALID, "train.schedule = %d; expected constant, linear or cosine", t->schedule);
    if (!(t->lr >= 0) || !(t->min_lr >= 0) || !(t->eps > 0) || !(t->weight_decay >= 0) || !(t->clip >= 0))
        return ms_fail(MS_ERR_INVALID, "train: lr = %g, min_lr = %g, weight_decay = %g and clip = %g must be >= 0 "
                       "and eps = %g > 0", t->lr, t->min_lr, t->weight_decay, t->clip, t->eps);
    if (!(t->beta1 >= 0 && t->beta1 < 1) || !(t->beta2 >= 0 && t->beta2 < 1))
        return ms_fail(MS_ERR_INVALID, "train.beta1 = %g and train.beta2 = %g must be in [0, 1)", t->beta1, t->beta2);
    return ms_model_check(cfg);
}
