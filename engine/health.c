/*
 * health.c — NaN and Inf: where they first appeared, and injected faults.
 *
 * A step whose loss or gradient norm is not finite is never applied (see
 * engine.c). ms_health_diagnose then finds the first place the non-finite
 * numbers appear, in the order they would have been made: the parameters of
 * a unit (forward order), the output of a unit's forward when the step's last
 * micro-batch is run again, then the gradients of a unit (backward order).
 * Every check is agreed across ranks, so every rank names the same place.
 * It costs nothing in a healthy step: it runs only after a bad one.
 *
 * For the fault-injection specs, MS_FAULT="nan_grad:STEP:UNIT" makes step STEP
 * (0-based) find NaN in the gradients of unit UNIT ("block.1").
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "engine.h"

#define STAGE_BYTES (4 << 20)

/* Non-finite values among n elements of elem bytes (4: fp32, 2: bf16) at p. */
static int64_t count_nonfinite(ms_device *d, const void *p, int64_t n, int64_t elem, uint8_t *stage) {
    int64_t bad = 0, per = STAGE_BYTES / elem;
    for (int64_t at = 0; at < n; at += per) {
        int64_t k = n - at < per ? n - at : per;
        d->download(d, stage, (const char *)p + at * elem, k * elem);
        if (elem == 4) {
            const float *f = (const float *)stage;
            for (int64_t i = 0; i < k; i++) bad += !isfinite(f[i]);
        } else {
            const uint16_t *h = (const uint16_t *)stage; /* bf16: exponent all ones */
            for (int64_t i = 0; i < k; i++) bad += (h[i] & 0x7F80) == 0x7F80;
        }
    }
    return bad;
}

/* Sum per-unit counts over ranks; the first unit (in the given order) with any. */
static ms_status first_bad(ms_engine *e, float *counts, const int32_t *order, int *out) {
    int n = e->model.n_units;
    ms_comm_req *req;
    TRY(e->comm->all_reduce(e->comm, counts, counts, n, MS_F32, &req));
    TRY(e->comm->wait(e->comm, req));
    *out = -1;
    for (int i = 0; i < n && *out < 0; i++)
        if (counts[order[i]] > 0) *out = order[i];
    return MS_OK;
}

static ms_status params_check(ms_engine *e, uint8_t *stage, float *counts, int *unit) {
    for (int u = 0; u < e->model.n_units; u++) {
        ms_unit *un = &e->model.units[u];
        counts[u] = (float)count_nonfinite(&e->dev, un->master, un->hi - un->lo, 4, stage);
    }
    return first_bad(e, counts, e->order_fwd, unit);
}

/* The forward of the micro-batch still in the model's buffers, each unit's
 * output checked. Stage 3 gathers each unit as the forward does. */
static ms_status forward_check(ms_engine *e, uint8_t *stage, float *counts, int *unit) {
    ms_model *m = &e->model;
    int64_t act = ms_act_bytes(&e->dev), rows = (int64_t)m->B * m->T;
    for (int i = 0; i < m->n_units; i++) {
        int u = e->order_fwd[i];
        TRY(ms_zero_acquire(&e->zero, m, &e->dev, e->order_fwd, m->n_units, i));
        ms_model_unit_forward(m, &e->dev, u, m->B, m->T);
        counts[u] = (float)count_nonfinite(&e->dev, ms_model_unit_output(m, u), rows * m->c.dim, act, stage);
        ms_zero_release(&e->zero, m, u);
    }
    return first_bad(e, counts, e->order_fwd, unit);
}

static ms_status grads_check(ms_engine *e, uint8_t *stage, float *counts, int *unit) {
    for (int u = 0; u < e->model.n_units; u++) {
        ms_unit *un = &e->model.units[u];
        counts[u] = (float)count_nonfinite(&e->dev, un->grads_owned, un->hi - un->lo, 4, stage);
    }
    return first_bad(e, counts, e->order_bwd, unit);
}

ms_status ms_health_diagnose(ms_engine *e, char *where, size_t n) {
    TRY(ms_offload_wait(&e->offload));
    uint8_t *stage = malloc(STAGE_BYTES);
    float *counts = calloc((size_t)e->model.n_units, sizeof *counts);
    ms_status st = stage && counts ? MS_OK : ms_fail(MS_ERR_NOMEM, "out of host memory for a NaN diagnosis");
    int unit = -1;
    snprintf(where, n, "no single place (the loss and norm reductions)");
    if (st == MS_OK) st = params_check(e, stage, counts, &unit);
    if (st == MS_OK && unit >= 0) {
        snprintf(where, n, "the parameters of unit %s", e->model.units[unit].name);
    } else if (st == MS_OK && (st = grads_check(e, stage, counts, &unit)) == MS_OK) {
        int grad_unit = unit; /* the forward below overwrites nothing the gradients need any more */
        st = forward_check(e, stage, counts, &unit);
        if (st == MS_OK && unit >= 0)
            snprintf(where, n, "the output of unit %s's forward", e->model.units[unit].name);
        else if (st == MS_OK && grad_unit >= 0)
            snprintf(where, n, "the gradients of unit %s", e->model.units[grad_unit].name);
    }
    free(stage);
    free(counts);
    return st;
}

/* ---- fault injection -------------------------------------------------------- */

void ms_health_inject(ms_engine *e) {
    const char *spec = getenv("MS_FAULT");
    long long step;
    char unit[MS_NAME_LEN];
    if (!spec || sscanf(spec, "nan_grad:%lld:%47s", &step, unit) != 2 || step != e->step) return;
    for (int u = 0; u < e->model.n_units; u++) {
        ms_unit *un = &e->model.units[u];
        if (strcmp(un->name, unit) != 0 || un->hi <= un->lo) continue;
        float nan = NAN;
        e->dev.upload(&e->dev, un->grads_owned, &nan, sizeof nan);
    }
}
