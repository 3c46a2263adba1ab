/* zero/offload.c — the optimizer offload pipeline (see offload.h). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "cpu/kernels.h"
#include "optim/optim.h"
#include "zero/offload.h"

ms_status ms_offload_setup(ms_offload *o, ms_model *m, ms_device *d, ms_zero *z, const int32_t *order) {
    memset(o, 0, sizeof *o);
    *o = (ms_offload){.model = m, .dev = d, .zero = z, .order = order};
    for (int u = 0; u < m->n_units; u++) o->units += m->units[u].split.offload;
    if (!o->units) return MS_OK;
    size_t n = (size_t)m->n_units;
    o->down = calloc(n, sizeof *o->down);
    o->up = calloc(n, sizeof *o->up);
    o->sent = calloc(n, sizeof *o->sent);
    o->pending = calloc(n, sizeof *o->pending);
    o->ready = calloc(n, sizeof *o->ready);
    if (!o->down || !o->up || !o->sent || !o->pending || !o->ready)
        return ms_fail(MS_ERR_NOMEM, "offload: out of host memory for %d units", m->n_units);
    return MS_OK;
}

void ms_offload_layout(ms_offload *o, const ms_model *m, const ms_device *d, ms_layout *l) {
    int64_t largest = 0;
    for (int u = 0; u < m->n_units; u++) {
        const ms_unit *un = &m->units[u];
        if (un->split.offload && un->hi - un->lo > largest) largest = un->hi - un->lo;
    }
    for (int k = 0; k < 2; k++)
        o->scratch[k] = largest ? ms_layout_take(l, MS_MEM_WORKSPACE, largest, ms_act_bytes(d)) : NULL;
}

/* ---- the worker ------------------------------------------------------------ */

/* One AdamW step over host memory: the gradient in the compute dtype (bf16
 * bits when g_bf16), and the new compute copy of the parameters into out
 * (bf16 bits when out_bf16, else fp32 rounded to bf16; NULL: none). */
static void host_adamw(float *param, float *m, float *v, const void *g, int g_bf16, void *out, int out_bf16,
                       int64_t n, float lr, float beta1, float beta2, float eps, float wd, float grad_scale,
                       int64_t step) {
    if (!g_bf16) {
        cpu_adamw(param, m, v, g, n, lr, beta1, beta2, eps, wd, grad_scale, step);
    } else {
        float step_size = (float)(lr / (1.0 - pow(beta1, (double)step)));
        float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)step));
        float keep = 1.0f - lr * wd;
        const uint16_t *gb = g;
#pragma omp parallel for
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)gb[i] << 16;
            float gi;
            memcpy(&gi, &bits, 4);
            gi *= grad_scale;
            m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
            v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
            param[i] = param[i] * keep - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
        }
    }
    if (!out) return;
    if (!out_bf16) {
        cpu_copy_round_bf16(out, param, n);
        return;
    }
    uint16_t *ob = out;
#pragma omp parallel for
    for (int64_t i = 0; i < n; i++) {
        float r = cpu_bf16_round(param[i]);
        uint32_t bits;
        memcpy(&bits, &r, 4);
        ob[i] = (uint16_t)(bits >> 16);
    }
}

/* AdamW over unit u's owned tensors on the host, then the compute copy of the
 * result where the copy up reads it: in place over the gradient (bf16), or
 * the master itself (fp32). */
static void update_unit(ms_offload *o, const ms_offload_job *job, ms_unit *un) {
    const ms_train_config *t = job->train;
    const ms_model *m = o->model;
    int64_t ab = ms_act_bytes(o->dev);
    for (int i = un->first; i < un->first + un->count; i++) {
        int64_t at, n;
        if (!ms_optimizer_range(un, &m->tensors[i], &at, &n)) continue;
        float decay = m->tensors[i].decay ? t->weight_decay : 0.0f;
        const void *g = (const char *)un->grads_host + at * ab;
        void *out = o->dev->bf16 ? (char *)un->grads_host + at * ab : NULL;
        host_adamw(un->master + at, un->m + at, un->v + at, g, ab == 2, out, ab == 2, n, job->lr, t->beta1,
                       t->beta2, t->eps, decay, job->grad_scale, job->step);
    }
}

static void *worker(void *arg) {
    ms_offload *o = arg;
    ms_model *m = o->model;
    ms_device *d = o->dev;
    omp_set_num_threads(d->threads > 0 ? d->threads : omp_get_num_procs());
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->has_job && !o->quit) pthread_cond_wait(&o->cv, &o->mu);
        if (o->quit) break;
        ms_offload_job job = o->job;
        o->has_job = 0;
        pthread_mutex_unlock(&o->mu);
        for (int i = 0; i < m->n_units; i++) {
            int u = o->order[i];
            ms_unit *un = &m->units[u];
            if (!un->split.offload) continue;
            int64_t ab = ms_act_bytes(d), owned = un->hi - un->lo;
            d->ticket_wait(d, o->down[u]);
            update_unit(o, &job, un);
            char *dst = (char *)un->params_home + (un->split.shard_params ? 0 : un->lo * ab);
            const void *src = d->bf16 ? un->grads_host : (const void *)un->master;
            int64_t up = d->copy_async(d, dst, src, owned * ab, 0);
            pthread_mutex_lock(&o->mu);
            o->up[u] = up;
            o->ready[u] = 1;
            pthread_cond_broadcast(&o->cv);
            pthread_mutex_unlock(&o->mu);
        }
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

ms_status ms_offload_start(ms_offload *o) {
    if (!o->units) return MS_OK;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    int rc = pthread_create(&o->thread, NULL, worker, o);
    if (rc) return ms_fail(MS_ERR_STATE, "offload: could not start the optimizer thread: %s", strerror(rc));
    o->started = 1;
    return MS_OK;
}

void ms_offload_stop(ms_offload *o) {
    if (o->started) {
        pthread_mutex_lock(&o->mu);
        o->quit = 1;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->thread, NULL);
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        o->started = 0;
    }
    free(o->down);
    free(o->up);
    free(o->sent);
    free(o->pending);
    free(o->ready);
    o->down = o->up = NULL;
    o->sent = o->pending = o->ready = NULL;
}

/* ---- the step ---------------------------------------------------------------- */

void ms_offload_grads(ms_offload *o, int u) {
    ms_unit *un = &o->model->units[u];
    if (!un->split.offload || o->sent[u]) return;
    ms_device *d = o->dev;
    int k = o->next_scratch;
    int64_t n = un->hi - un->lo;
    d->ticket_order(d, o->scratch_ticket[k]); /* the previous copy out of this buffer is done */
    d->cast_params(d, o->scratch[k], un->grads_owned, n);
    o->down[u] = o->scratch_ticket[k] = d->copy_async(d, un->grads_host, o->scratch[k], n * ms_act_bytes(d), 1);
    o->next_scratch = 1 - k;
    o->sent[u] = 1;
}

void ms_offload_grads_rest(ms_offload *o) {
    for (int u = 0; o->units && u < o->model->n_units; u++) ms_offload_grads(o, u);
}

void ms_offload_update(ms_offload *o, const ms_train_config *t, float lr, float grad_scale, int64_t step) {
    if (!o->units) return;
    pthread_mutex_lock(&o->mu);
    for (int u = 0; u < o->model->n_units; u++) {
        o->sent[u] = 0;
        if (!o->model->units[u].split.offload) continue;
        o->pending[u] = 1;
        o->ready[u] = 0;
    }
    o->job = (ms_offload_job){.train = t, .lr = lr, .grad_scale = grad_scale, .step = step};
    o->has_job = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

ms_status ms_offload_acquire(ms_offload *o, int u) {
    if (!o->units || !o->pending[u]) return MS_OK;
    pthread_mutex_lock(&o->mu);
    while (!o->ready[u]) pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    o->pending[u] = 0;
    o->dev->ticket_order(o->dev, o->up[u]);
    return ms_zero_share_params(o->zero, o->model, o->dev, u);
}

ms_status ms_offload_wait(ms_offload *o) {
    for (int i = 0; o->units && i < o->model->n_units; i++) TRY(ms_offload_acquire(o, o->order[i]));
    return MS_OK;
}
