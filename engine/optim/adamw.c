/*
 * optim/adamw.c — the optimizer step over units: decoupled-weight-decay AdamW
 * on each tensor's part of the range of the unit this rank owns (per tensor,
 * so norms and embeddings can skip decay), writing the compute copy of the
 * parameters in the same pass. Offloaded units are updated on the host instead
 * (zero/offload.h).
 */
#include "optim/optim.h"

int ms_optimizer_range(const ms_unit *un, const ms_tensor *t, int64_t *at, int64_t *n) {
    int64_t from = t->offset > un->lo ? t->offset : un->lo;
    int64_t to = t->offset + t->numel < un->hi ? t->offset + t->numel : un->hi;
    *at = from - un->lo;
    *n = to - from;
    return from < to;
}

void ms_optimizer_step(ms_model *m, ms_device *d, const ms_train_config *t, float lr, float grad_scale,
                       int64_t step) {
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        if (un->split.offload) continue;
        for (int i = un->first; i < un->first + un->count; i++) {
            const ms_tensor *tt = &m->tensors[i];
            int64_t k, n;
            if (!ms_optimizer_range(un, tt, &k, &n)) continue;
            d->adamw(d, un->master + k, un->m + k, un->v + k, un->grads_owned + k, n, lr, t->beta1, t->beta2,
                     t->eps, tt->decay ? t->weight_decay : 0.0f, grad_scale, step,
                     (char *)ms_unit_params_mine(un, d) + k * ms_act_bytes(d));
        }
    }
}
