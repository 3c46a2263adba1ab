/*
 * optim/adamw.c — the optimizer step over units: global norm, clipping and
 * decoupled-weight-decay AdamW per tensor view (so norms and embeddings can
 * skip decay), then the bf16 compute copy is refreshed from fp32 master.
 */
#include <math.h>

#include "optim/optim.h"

double ms_grad_norm(const ms_model *m, ms_device *d) {
    double sum = 0;
    for (int u = 0; u < m->n_units; u++) sum += d->sumsq(d, m->units[u].grads, m->units[u].numel);
    return sqrt(sum);
}

void ms_optimizer_step(ms_model *m, ms_device *d, const ms_train_config *t, float lr, float grad_scale,
                       int64_t step) {
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        for (int i = un->first; i < un->first + un->count; i++) {
            const ms_tensor *tt = &m->tensors[i];
            d->adamw(d, un->master + tt->offset, un->m + tt->offset, un->v + tt->offset, un->grads + tt->offset,
                     tt->numel, lr, t->beta1, t->beta2, t->eps, tt->decay ? t->weight_decay : 0.0f, grad_scale,
                     step);
        }
        d->cast_params(d, un->params, un->master, un->padded);
    }
}
