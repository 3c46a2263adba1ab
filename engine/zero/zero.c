/* zero/zero.c — the ZeRO hooks around each unit (see zero.h). */
#include <string.h>

#include "core/status.h"
#include "zero/zero.h"

static int32_t act_dtype(const ms_device *d) { return ms_act_bytes(d) == 2 ? MS_BF16 : MS_F32; }

static int64_t shard_of(const ms_unit *u) { return u->padded / u->split.world; }

void ms_zero_setup(ms_zero *z, int32_t stage, int32_t prefetch, ms_comm *comm, ms_comm *host) {
    memset(z, 0, sizeof *z);
    z->stage = stage;
    z->prefetch = prefetch; /* 0..MS_ZERO_MAX_SLOTS - 1: ms_config_check holds it there */
    z->comm = comm;
    z->host = host;
    for (int s = 0; s < MS_ZERO_MAX_SLOTS; s++) z->slot_unit[s] = -1;
}

void ms_zero_layout(ms_zero *z, const ms_model *m, const ms_device *d, ms_layout *l) {
    int64_t gather = 0, scratch = 0;
    int32_t world = 1;
    for (int u = 0; u < m->n_units; u++) {
        const ms_unit *un = &m->units[u];
        if (un->split.shard_params && un->padded > gather) gather = un->padded;
        if (!un->split.own_grads && un->padded > scratch) scratch = un->padded;
        world = un->split.world;
    }
    z->slots = gather ? z->prefetch + 1 : 0;
    for (int s = 0; s < z->slots; s++) z->slot[s] = ms_layout_take(l, MS_MEM_WORKSPACE, gather, ms_act_bytes(d));
    /* a second scratch lets a unit's reduce-scatter run beside the next unit's
       backward; the CPU computes on the cores that would run it */
    z->scratches = !scratch ? 0 : world > 1 && d->kind != MS_DEVICE_CPU ? 2 : 1;
    for (int s = 0; s < z->scratches; s++) z->scratch[s] = ms_layout_take(l, MS_MEM_WORKSPACE, scratch, 4);
}

/* ---- parameters --------------------------------------------------------- */

static int slot_of(const ms_zero *z, int u) {
    for (int s = 0; s < z->slots; s++)
        if (z->slot_unit[s] == u) return s;
    return -1;
}

static ms_status start_gather(ms_zero *z, ms_model *m, ms_device *d, int u) {
    ms_unit *un = &m->units[u];
    if (!un->split.shard_params || slot_of(z, u) >= 0) return MS_OK;
    int s = slot_of(z, -1);
    if (s < 0) return MS_OK; /* every slot busy: gathered when acquired */
    z->slot_unit[s] = u;
    if (!un->split.offload_params)
        return z->comm->all_gather(z->comm, un->params_home, z->slot[s], shard_of(un), act_dtype(d), &z->slot_req[s]);
    /* this rank's shard up from the host into its place in the slot (once the
       unit that held the slot is done), then gathered in place */
    int64_t bytes = shard_of(un) * ms_act_bytes(d);
    char *mine = (char *)z->slot[s] + un->split.rank * bytes;
    d->ticket_order(d, d->copy_async(d, mine, un->params_home, bytes, MS_COPY_UP_AFTER_COMPUTE));
    return z->comm->all_gather(z->comm, mine, z->slot[s], shard_of(un), act_dtype(d), &z->slot_req[s]);
}

ms_status ms_zero_acquire(ms_zero *z, ms_model *m, ms_device *d, const int32_t *order, int n, int i) {
    int u = order[i];
    ms_unit *un = &m->units[u];
    if (!un->split.shard_params) return MS_OK;
    TRY(start_gather(z, m, d, u));
    int s = slot_of(z, u);
    if (s < 0) return ms_fail(MS_ERR_INTERNAL, "zero: no gather slot for unit %s", un->name);
    TRY(z->comm->wait(z->comm, z->slot_req[s]));
    z->slot_req[s] = NULL;
    un->params = z->slot[s];
    for (int k = 1; k <= z->prefetch && i + k < n; k++) TRY(start_gather(z, m, d, order[i + k]));
    return MS_OK;
}

void ms_zero_release(ms_zero *z, ms_model *m, int u) {
    ms_unit *un = &m->units[u];
    if (!un->split.shard_params) return;
    (void)z->comm->progress(z->comm); /* move prefetches along (a failure shows at the next wait) */
    int s = slot_of(z, u);
    if (s >= 0) z->slot_unit[s] = -1;
    un->params = NULL;
}

/* Where this rank's part of the compute parameters lives. */
ms_status ms_zero_share_params(ms_zero *z, ms_model *m, ms_device *d, int u) {
    ms_unit *un = &m->units[u];
    if (!un->split.shard_optim || un->split.shard_params) return MS_OK;
    ms_comm_req *req;
    TRY(z->comm->all_gather(z->comm, ms_unit_params_mine(un, d), un->params_home, un->hi - un->lo, act_dtype(d),
                            &req));
    return z->comm->wait(z->comm, req);
}

ms_status ms_zero_refresh_params(ms_zero *z, ms_model *m, ms_device *d) {
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        d->cast_params(d, ms_unit_params_mine(un, d), un->master, un->hi - un->lo);
        TRY(ms_zero_share_params(z, m, d, u));
    }
    return MS_OK;
}

ms_status ms_zero_share_updated(ms_zero *z, ms_model *m, ms_device *d) {
    for (int u = 0; u < m->n_units; u++)
        if (!m->units[u].split.offload) TRY(ms_zero_share_params(z, m, d, u));
    return MS_OK;
}

/* ---- gradients ---------------------------------------------------------- */

/* Wait for the oldest gradient collective in flight. */
static ms_status settle_oldest(ms_zero *z) {
    ms_status st = z->comm->wait(z->comm, z->pending[0]);
    z->n_pending--;
    memmove(z->pending, z->pending + 1, (size_t)z->n_pending * sizeof *z->pending);
    memmove(z->pending_scratch, z->pending_scratch + 1, (size_t)z->n_pending * sizeof *z->pending_scratch);
    return st;
}

static ms_status settle_all(ms_zero *z) {
    while (z->n_pending) TRY(settle_oldest(z));
    return MS_OK;
}

/* Wait (oldest first) until no collective still reads scratch s. */
static ms_status settle_scratch(ms_zero *z, int s) {
    for (int i = z->n_pending - 1; i >= 0; i--)
        if (z->pending_scratch[i] == s) {
            for (int k = 0; k <= i; k++) TRY(settle_oldest(z));
            break;
        }
    return MS_OK;
}

static ms_status keep_pending(ms_zero *z, ms_comm_req *req, int scratch) {
    if (z->n_pending == MS_ZERO_MAX_PENDING) TRY(settle_oldest(z));
    z->pending[z->n_pending] = req;
    z->pending_scratch[z->n_pending++] = scratch;
    return MS_OK;
}

/* Whole-unit gradient buffers are declared fresh rather than zeroed: each
 * tensor's first write overwrites (ms_model_grads_fresh). Their padding is
 * never written, so it stays as zero as init left it. */
void ms_zero_grads_step_begin(ms_zero *z, ms_model *m, ms_device *d) {
    (void)z;
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        if (un->split.shard_grads) d->zero(d, un->grads_owned, (un->hi - un->lo) * 4);
        else ms_model_grads_fresh(m, u);
    }
}

ms_status ms_zero_grads_micro_begin(ms_zero *z, ms_model *m) {
    TRY(settle_all(z));
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        if (un->split.shard_grads && un->split.own_grads) ms_model_grads_fresh(m, u);
    }
    return MS_OK;
}

ms_status ms_zero_grads_begin(ms_zero *z, ms_model *m, ms_device *d, int u) {
    ms_unit *un = &m->units[u];
    if (un->split.own_grads) return MS_OK;
    int s = z->next_scratch;
    z->next_scratch = (s + 1) % z->scratches;
    TRY(settle_scratch(z, s));
    un->grads = z->scratch[s];
    ms_model_grads_fresh(m, u);
    d->zero(d, un->grads + un->numel, (un->padded - un->numel) * 4); /* another unit's gradients were there */
    return MS_OK;
}

ms_status ms_zero_grads_end(ms_zero *z, ms_model *m, ms_device *d, int u, int last) {
    ms_unit *un = &m->units[u];
    ms_comm_req *req;
    if (!un->split.shard_grads) {
        if (!last || z->comm->world == 1) return MS_OK;
        TRY(z->comm->all_reduce(z->comm, un->grads_home, un->grads_home, un->padded, MS_F32, &req));
        return keep_pending(z, req, -1);
    }
    /* fold what the shard already holds into this rank's part, then sum the parts */
    int64_t owned = un->hi - un->lo;
    d->add(d, un->grads + un->lo, un->grads_owned, owned);
    int s = un->grads == z->scratch[0] ? 0 : un->grads == z->scratch[1] ? 1 : -1;
    TRY(z->comm->reduce_scatter(z->comm, un->grads, un->grads_owned, owned, MS_F32, &req));
    TRY(keep_pending(z, req, s));
    if (!un->split.own_grads) un->grads = NULL;
    /* the offload reads the owned shard on the compute stream straight away */
    return last && un->split.offload ? settle_all(z) : MS_OK;
}

int ms_zero_grads_final_per_unit(const ms_zero *z, const ms_unit *un) {
    return un->split.shard_grads || z->comm->world == 1;
}

ms_status ms_zero_grads_step_end(ms_zero *z) { return settle_all(z); }

ms_status ms_zero_grad_sumsq(ms_zero *z, ms_model *m, ms_device *d, double *out) {
    TRY(ms_comm_drain(z->comm));
    double sum = 0;
    const float *x[32];
    int64_t n[32];
    for (int u0 = 0; u0 < m->n_units; u0 += 32) { /* 32 units a trip to the host */
        int count = m->n_units - u0 < 32 ? m->n_units - u0 : 32;
        for (int i = 0; i < count; i++) {
            const ms_unit *un = &m->units[u0 + i];
            x[i] = un->grads_owned;
            n[i] = un->hi - un->lo;
        }
        sum += d->sumsq(d, x, n, count);
    }
    if (z->stage >= 1) TRY(ms_zero_sum(z, &sum, 1));
    *out = sum;
    return MS_OK;
}

ms_status ms_zero_sum(ms_zero *z, double *values, int n) {
    if (z->host->world == 1) return MS_OK;
    float sums[4];
    for (int i = 0; i < n; i++) sums[i] = (float)values[i];
    ms_comm_req *req;
    TRY(z->host->all_reduce(z->host, sums, sums, n, MS_F32, &req));
    TRY(z->host->wait(z->host, req));
    for (int i = 0; i < n; i++) values[i] = sums[i];
    return MS_OK;
}
