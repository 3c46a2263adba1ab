/*
 * plan.c — the memory plan: every byte the engine will reserve, by purpose,
 * computed by running the model's layout in sizing mode (core/arena.h). The
 * engine reserves from the very same layout, so the plan is exact.
 */
#include <string.h>

#include "core/status.h"
#include "engine.h"

void ms_plan_from_layout(const ms_config *cfg, const ms_model *m, const ms_layout *l, ms_plan *out) {
    memset(out, 0, sizeof *out);
    out->device = cfg->device;
    out->n_units = m->n_units;
    for (int t = 0; t < m->n_tensors; t++) out->n_params += m->tensors[t].numel;
    out->n_params_matmul = ms_model_matmul_params(&m->c);
    out->flops_per_token = ms_model_flops_per_token(&m->c, cfg->train.seq_len, 6);
    out->flops_per_token_full = ms_model_flops_per_token(&m->c, cfg->train.seq_len, 12);
    ms_memory_from_bytes(&out->device_bytes, l->bytes);
    /* On the CPU the device is the host: nothing extra lives beside it. */
}

ms_status ms_plan_compute(const ms_config *cfg, ms_plan *out) {
    if (!cfg || !out) return ms_fail(MS_ERR_INVALID, "ms_plan_compute: cfg and out are required");
    TRY(ms_config_check(cfg));
    ms_device dev;
    TRY(ms_device_init(&dev, cfg->device, cfg->precision, cfg->threads));
    ms_model m;
    TRY(ms_model_build(&m, cfg));
    ms_layout sizing = {0};
    ms_model_layout(&m, &dev, &sizing);
    ms_plan_from_layout(cfg, &m, &sizing, out);
    ms_model_free(&m);
    return MS_OK;
}
