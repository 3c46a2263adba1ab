/* zero/offload.c — the optimizer offload pipeline (see offload.h). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/status.h"
#include "cpu/kernels.h"
#include "optim/optim.h"
#include "zero/offload.h"

ms_status ms_offload_setup(ms_offload *o, ms_model *m, ms_device *d, ms_zero *z, const int32_t *order,
                           int32_t overlap) {
    *o = (ms_offload){.model = m, .dev = d, .zero = z, .order = order, .overlap = overlap != 0};
    for (int u = 0; u < m->n_units; u++) o->units += m->units[u].split.offload;
    if (!o->units) return MS_OK;
    size_t n = (size_t)m->n_units;
    o->spare = calloc(n * 3, sizeof *o->spare);
    o->params_host = calloc(n, sizeof *o->params_host);
    o->down = calloc(n, sizeof *o->down);
    o->up = calloc(n, sizeof *o->up);
    o->sent = calloc(n, sizeof *o->sent);
    o->pending = calloc(n, sizeof *o->pending);
    o->ready = calloc(n, sizeof *o->ready);
    if (!o->spare || !o->params_host || !o->down || !o->up || !o->sent || !o->pending || !o->ready)
        return ms_fail(MS_ERR_NOMEM, "offload: out of host memory for %d units", m->n_units);
    return MS_OK;
}

void ms_offload_layout(ms_offload *o, const ms_model *m, const ms_device *d, ms_layout *l, ms_layout *host) {
    int64_t largest = 0, ab = ms_act_bytes(d);
    for (int u = 0; u < m->n_units; u++) {
        const ms_unit *un = &m->units[u];
        if (!un->split.offload) continue;
        int64_t owned = un->hi - un->lo;
        if (owned > largest) largest = owned;
        if (!o->overlap) continue;
        float *spare[3];
        spare[0] = ms_layout_take(host, MS_MEM_MASTER, owned, 4);
        for (int k = 1; k < 3; k++) spare[k] = ms_layout_take(host, MS_MEM_OPTIMIZER, owned, 4);
        void *params = d->bf16 ? ms_layout_take(host, MS_MEM_PARAMS, owned, ab) : NULL;
        if (o->spare) { /* carving: the engine's pass (planning sizes only) */
            memcpy(&o->spare[u * 3], spare, sizeof spare);
            o->params_host[u] = params;
        }
    }
    for (int k = 0; k < 2; k++) o->scratch[k] = largest ? ms_layout_take(l, MS_MEM_WORKSPACE, largest, ab) : NULL;
}

/* ---- the worker ------------------------------------------------------------ */

/* Unit u's update from its state into dst (its spare copy, or itself), with
 * the gradients (compute dtype) scaled by clip_scale, and the new compute
 * copy of its parameters into out: bf16 bits on a bf16 device, fp32 rounded
 * to bf16 where bf16 is emulated in fp32 (the CPU backend), none in fp32. */
static void update_unit(ms_offload *o, int u, float *const dst[3], void *out, float clip_scale) {
    double t0 = ms_now();
    const ms_train_config *t = o->train;
    const ms_model *m = o->model;
    ms_unit *un = &o->model->units[u];
    int64_t ab = ms_act_bytes(o->dev);
    for (int i = un->first; i < un->first + un->count; i++) {
        int64_t at, n;
        if (!ms_optimizer_range(un, &m->tensors[i], &at, &n)) continue;
        cpu_adam_hp hp = {.lr = o->lr, .beta1 = t->beta1, .beta2 = t->beta2, .eps = t->eps,
                          .weight_decay = m->tensors[i].decay ? t->weight_decay : 0.0f, .grad_scale = clip_scale,
                          .step = o->step};
        void *to = out ? (char *)out + at * ab : NULL;
        cpu_adamw_fast_from(un->master + at, un->m + at, un->v + at, dst[0] + at, dst[1] + at, dst[2] + at,
                            (const char *)un->grads_host + at * ab, ab == 2, ab == 2 ? to : NULL, n, &hp, 0);
        if (to && ab == 4) cpu_copy_round_bf16(to, dst[0] + at, n);
    }
    double dt = ms_now() - t0;
    pthread_mutex_lock(&o->mu);
    o->update_seconds += dt;
    pthread_mutex_unlock(&o->mu);
}

/* The spare copy becomes the state. */
static void commit(ms_offload *o, int u) {
    ms_unit *un = &o->model->units[u];
    float **cur[3] = {&un->master, &un->m, &un->v};
    for (int k = 0; k < 3; k++) {
        float *t = *cur[k];
        *cur[k] = o->spare[u * 3 + k];
        o->spare[u * 3 + k] = t;
    }
}

/* Where an update writes unit u's new compute parameters (bf16): beside the
 * state (overlap), else straight into host-resident parameters, else in
 * place over the gradient. NULL under fp32, where the master is the copy. */
static void *params_out(ms_offload *o, int u) {
    ms_unit *un = &o->model->units[u];
    if (!o->dev->bf16) return NULL;
    return o->overlap ? o->params_host[u] : un->split.offload_params ? un->params_home : un->grads_host;
}

/* The new compute parameters of unit u where the device reads them: copied
 * up (the ticket of the copy), or, when they live in host memory, in place
 * there (0). */
static int64_t publish(ms_offload *o, int u) {
    ms_device *d = o->dev;
    ms_unit *un = &o->model->units[u];
    int64_t ab = ms_act_bytes(d), owned = un->hi - un->lo;
    if (un->split.offload_params) {
        if (!d->bf16) {
            memcpy(un->params_home, un->master, (size_t)owned * 4);
        } else if (o->overlap) {
            void *t = un->params_home;
            un->params_home = o->params_host[u];
            o->params_host[u] = t;
        }
        return 0;
    }
    const void *src = d->bf16 ? params_out(o, u) : (const void *)un->master;
    char *dst = (char *)un->params_home + (un->split.shard_params ? 0 : un->lo * ab);
    return d->copy_async(d, dst, src, owned * ab, MS_COPY_UP);
}

/* Wait (under mu) until unit u's gradient is on its way down; 0 when the
 * verdict came first (a step that failed or was skipped before it). */
static int wait_sent(ms_offload *o, int u) {
    while (!o->sent[u] && o->verdict == MS_OFFLOAD_NONE && !o->quit) pthread_cond_wait(&o->cv, &o->mu);
    return o->sent[u];
}

/* One step's update: with a bet, speculate as the gradients land (backward
 * order); then, per the verdict, in forward order: commit or recompute (with
 * overlap and no bet: compute into the spare copy and commit), copy the new
 * parameters up, and mark the unit ready. */
static void run_job(ms_offload *o) {
    ms_model *m = o->model;
    ms_device *d = o->dev;
    int n = m->n_units;
    for (int i = n - 1; o->bet && i >= 0; i--) {
        int u = o->order[i];
        ms_unit *un = &m->units[u];
        if (!un->split.offload) continue;
        int sent = wait_sent(o, u);
        pthread_mutex_unlock(&o->mu);
        if (sent) {
            d->ticket_wait(d, o->down[u]);
            update_unit(o, u, &o->spare[u * 3], params_out(o, u), 1.0f);
        }
        pthread_mutex_lock(&o->mu);
        if (!sent) break;
    }
    while (o->verdict == MS_OFFLOAD_NONE && !o->quit) pthread_cond_wait(&o->cv, &o->mu);
    int verdict = o->verdict;
    if (verdict == MS_OFFLOAD_DROP || o->quit) return;
    for (int i = 0; i < n; i++) {
        int u = o->order[i];
        ms_unit *un = &m->units[u];
        if (!un->split.offload) continue;
        pthread_mutex_unlock(&o->mu);
        d->ticket_wait(d, o->down[u]);
        if (!o->overlap) {
            float *self[3] = {un->master, un->m, un->v};
            update_unit(o, u, self, params_out(o, u), o->clip_scale);
        } else {
            if (verdict == MS_OFFLOAD_RECOMPUTE || !o->bet)
                update_unit(o, u, &o->spare[u * 3], params_out(o, u), o->clip_scale);
            commit(o, u);
        }
        int64_t up = publish(o, u);
        pthread_mutex_lock(&o->mu);
        o->up[u] = up;
        o->ready[u] = 1;
        pthread_cond_broadcast(&o->cv);
    }
}

static void *worker(void *arg) {
    ms_offload *o = arg;
    omp_set_num_threads(o->dev->threads > 0 ? o->dev->threads : omp_get_num_procs());
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->job && !o->quit) pthread_cond_wait(&o->cv, &o->mu);
        if (o->quit) break;
        run_job(o);
        o->job = 0;
        pthread_cond_broadcast(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

ms_status ms_offload_start(ms_offload *o) {
    if (!o->units) return MS_OK;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    int rc = pthread_create(&o->thread, NULL, worker, o);
    if (rc) {
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        return ms_fail(MS_ERR_STATE, "offload: could not start the optimizer thread: %s", strerror(rc));
    }
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
    free(o->spare);
    free(o->params_host);
    free(o->down);
    free(o->up);
    free(o->sent);
    free(o->pending);
    free(o->ready);
    o->spare = NULL;
    o->params_host = NULL;
    o->down = o->up = NULL;
    o->sent = o->pending = o->ready = NULL;
}

/* ---- the step ---------------------------------------------------------------- */

void ms_offload_step_begin(ms_offload *o, const ms_train_config *t, float lr, int64_t step) {
    if (!o->units) return;
    ms_offload_update(o, 0, 0.0f); /* a step begun and never decided (it failed): dropped */
    pthread_mutex_lock(&o->mu);
    while (o->job) pthread_cond_wait(&o->cv, &o->mu);
    memset(o->sent, 0, (size_t)o->model->n_units * sizeof *o->sent);
    o->train = t, o->lr = lr, o->step = step;
    o->bet = o->overlap && !o->clipped;
    o->verdict = MS_OFFLOAD_NONE;
    o->job = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

void ms_offload_grads(ms_offload *o, int u) {
    ms_unit *un = &o->model->units[u];
    if (!un->split.offload || o->sent[u]) return;
    ms_device *d = o->dev;
    int k = o->next_scratch;
    int64_t n = un->hi - un->lo;
    d->ticket_order(d, o->scratch_ticket[k]); /* the previous copy out of this buffer is done */
    d->cast_params(d, o->scratch[k], un->grads_owned, n);
    int64_t t = d->copy_async(d, un->grads_host, o->scratch[k], n * ms_act_bytes(d), MS_COPY_DOWN);
    o->scratch_ticket[k] = t;
    o->next_scratch = 1 - k;
    pthread_mutex_lock(&o->mu);
    o->down[u] = t;
    o->sent[u] = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

void ms_offload_grads_rest(ms_offload *o) {
    for (int u = 0; o->units && u < o->model->n_units; u++) ms_offload_grads(o, u);
}

void ms_offload_update(ms_offload *o, int apply, float clip_scale) {
    if (!o->units) return;
    pthread_mutex_lock(&o->mu);
    if (o->job && o->verdict == MS_OFFLOAD_NONE) {
        o->verdict = !apply ? MS_OFFLOAD_DROP : clip_scale == 1.0f ? MS_OFFLOAD_COMMIT : MS_OFFLOAD_RECOMPUTE;
        o->clip_scale = clip_scale;
        o->recomputed += o->bet && o->verdict == MS_OFFLOAD_RECOMPUTE;
        if (apply) o->clipped = clip_scale != 1.0f;
        for (int u = 0; apply && u < o->model->n_units; u++)
            if (o->model->units[u].split.offload) o->pending[u] = 1, o->ready[u] = 0;
        pthread_cond_broadcast(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
}

ms_status ms_offload_acquire(ms_offload *o, int u) {
    if (!o->units || !o->pending[u]) return MS_OK;
    pthread_mutex_lock(&o->mu);
    if (!o->ready[u]) {
        double t0 = ms_now();
        while (!o->ready[u]) pthread_cond_wait(&o->cv, &o->mu);
        o->wait_seconds += ms_now() - t0;
    }
    pthread_mutex_unlock(&o->mu);
    o->pending[u] = 0;
    o->dev->ticket_order(o->dev, o->up[u]);
    return ms_zero_share_params(o->zero, o->model, o->dev, u);
}

ms_status ms_offload_wait(ms_offload *o) {
    for (int i = 0; o->units && i < o->model->n_units; i++) TRY(ms_offload_acquire(o, o->order[i]));
    return MS_OK;
}

void ms_offload_take_costs(ms_offload *o, double *update_seconds, double *wait_seconds, int32_t *recomputed) {
    *update_seconds = *wait_seconds = 0, *recomputed = 0;
    if (!o->units) return;
    pthread_mutex_lock(&o->mu);
    *update_seconds = o->update_seconds, *wait_seconds = o->wait_seconds, *recomputed = o->recomputed;
    o->update_seconds = o->wait_seconds = 0, o->recomputed = 0;
    pthread_mutex_unlock(&o->mu);
}
