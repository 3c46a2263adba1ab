/*
 * optim/adamw.c — the optimizer step over units: decoupled-weight-decay AdamW
 * on each tensor's part of the range of the unit this rank owns (per tensor,
 * so norms and embeddings can skip decay).
 */
#include "optim/optim.h"

void ms_optimizer_step(ms_model *m, ms_device *d, const ms_train_config *t, float lr, float grad_scale,
                       int64_t step) {
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        for (int i = un->first; i < un->first + un->count; i++) {
            const ms_tensor *tt = &m->tensors[i];
            int64_t from = tt->offset > un->lo ? tt->offset : un->lo;
            int64_t to = tt->offset + tt->numel < un->hi ? tt->offset + tt->numel : un->hi;
            if (from >= to) continue;
            int64_t k = from - un->lo;
            d->adamw(d, un->master + k, un->m + k, un->v + k, un->grads_owned + k, to - from, lr, t->beta1,
                     t->beta2, t->eps, tt->decay ? t->weight_decay : 0.0f, grad_scale, step);
        }
    }
}
