/*
 * comm/bench.c — timing the collectives the way nccl-tests does.
 *
 * For each collective and size: one call to warm up (connections, page
 * faults), rank 0's timing of it picks the number of calls (about 0.2 s worth,
 * 2..200) and tells the others, then a barrier and that many calls back to
 * back, each waited before the next starts. Every rank measures; the slowest
 * rank's time per call counts. Sizes are nccl-tests' "size": all ranks' data
 * for all-gather and reduce-scatter, one rank's for all-reduce and broadcast.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "core/status.h"

static ms_status run_once(ms_comm *c, int kind, float *a, float *b, int64_t bytes) {
    ms_comm_req *q = NULL;
    int64_t w = c->world;
    switch (kind) {
    case MS_COMM_ALL_GATHER: TRY(c->all_gather(c, a, b, bytes / 4 / w, MS_F32, &q)); break;
    case MS_COMM_REDUCE_SCATTER: TRY(c->reduce_scatter(c, a, b, bytes / 4 / w, MS_F32, &q)); break;
    case MS_COMM_ALL_REDUCE: TRY(c->all_reduce(c, a, b, bytes / 4, MS_F32, &q)); break;
    default: TRY(c->broadcast(c, a, bytes, 0, &q)); break;
    }
    return c->wait(c, q);
}

/* The slowest rank's value of x. */
static ms_status slowest(ms_comm *c, double x, double *out) {
    float mine = (float)x, *all = calloc((size_t)c->world, sizeof(float));
    if (!all) return ms_fail(MS_ERR_NOMEM, "bench: out of memory");
    ms_comm_req *q = NULL;
    ms_status st = c->all_gather(c, &mine, all, 1, MS_F32, &q);
    if (st == MS_OK) st = c->wait(c, q);
    double most = 0;
    for (int i = 0; i < c->world; i++)
        if (all[i] > most) most = all[i];
    free(all);
    *out = most;
    return st;
}

static ms_status measure(ms_comm *c, int kind, float *a, float *b, int64_t bytes, ms_comm_bench_row *row) {
    double t0 = ms_comm_now();
    TRY(run_once(c, kind, a, b, bytes));
    double once = ms_comm_now() - t0;
    int32_t iters = once > 0 ? (int32_t)(0.2 / once) : 200;
    if (iters < 2) iters = 2;
    if (iters > 200) iters = 200;
    ms_comm_req *q = NULL;
    TRY(c->broadcast(c, &iters, sizeof iters, 0, &q));
    TRY(c->wait(c, q));
    TRY(c->barrier(c));
    t0 = ms_comm_now();
    for (int32_t i = 0; i < iters; i++) TRY(run_once(c, kind, a, b, bytes));
    double per = (ms_comm_now() - t0) / iters;
    TRY(slowest(c, per, &per));
    double factor = ms_comm_bus_factor(kind, c->world);
    row->kind = kind;
    row->iters = iters;
    row->bytes = bytes;
    row->seconds = per;
    row->algbw = per > 0 ? (double)bytes / per / 1e9 : 0;
    row->busbw = row->algbw * factor;
    return MS_OK;
}

double ms_comm_bus_factor(int32_t kind, int32_t n) {
    double f = n > 0 ? (double)(n - 1) / n : 0;
    switch (kind) {
    case MS_COMM_ALL_GATHER:
    case MS_COMM_REDUCE_SCATTER: return f;
    case MS_COMM_ALL_REDUCE: return 2 * f;
    case MS_COMM_BROADCAST: return 1;
    }
    return 0;
}

ms_status ms_comm_bench(const char *provider, int64_t min_bytes, int64_t max_bytes, int32_t timeout_ms,
                        ms_comm_bench_info *info, ms_comm_bench_row *rows, int32_t cap, int32_t *n_rows) {
    if (!info || !rows || !n_rows || cap < 1)
        return ms_fail(MS_ERR_INVALID, "ms_comm_bench: needs info, rows (cap >= 1) and n_rows");
    if (min_bytes < 4 || max_bytes < min_bytes)
        return ms_fail(MS_ERR_INVALID, "bench: sizes %lld..%lld bytes: need 4 <= min <= max", (long long)min_bytes,
                       (long long)max_bytes);
    *n_rows = 0;
    ms_world w;
    TRY(ms_world_from_env(&w));
    ms_comm *c = NULL;
    TRY(ms_comm_create(&w, provider, timeout_ms > 0 ? timeout_ms : 60000, &c));
    memset(info, 0, sizeof *info);
    info->rank = c->rank;
    info->world = c->world;
    snprintf(info->provider, sizeof info->provider, "%s", c->provider ? c->provider : "none");
    /* every size is a multiple of 4 x world, so gathers split evenly */
    int64_t unit = 4 * (int64_t)c->world;
    size_t most = (size_t)((max_bytes + unit - 1) / unit * unit);
    float *a = aligned_alloc(64, (most + 63) / 64 * 64), *b = aligned_alloc(64, (most + 63) / 64 * 64);
    ms_status st = a && b ? MS_OK : ms_fail(MS_ERR_NOMEM, "bench: cannot hold two buffers of %zu bytes", most);
    if (st == MS_OK) {
        memset(a, 0, most);
        memset(b, 0, most);
    }
    static const int kinds[] = {MS_COMM_ALL_REDUCE, MS_COMM_ALL_GATHER, MS_COMM_REDUCE_SCATTER, MS_COMM_BROADCAST};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && st == MS_OK; k++) {
        for (int64_t size = min_bytes; size <= max_bytes && st == MS_OK; size *= 4) {
            int64_t bytes = (size + unit - 1) / unit * unit;
            if (*n_rows == cap) break;
            st = measure(c, kinds[k], a, b, bytes, &rows[*n_rows]);
            if (st == MS_OK) (*n_rows)++;
        }
    }
    free(a);
    free(b);
    c->destroy(c);
    return st;
}
