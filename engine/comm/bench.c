/*
 * comm/bench.c — timing the collectives the way nccl-tests does.
 *
 * For each collective and size: one call to warm up (connections, page
 * faults), rank 0's timing of it picks the number of calls (about 0.2 s worth,
 * 2..200) and tells the others, then a barrier and that many calls back to
 * back, each waited before the next starts. Every rank measures; the slowest
 * rank's time per call counts. Sizes are nccl-tests' "size": all ranks' data
 * for all-gather and reduce-scatter, one rank's for all-reduce and broadcast.
 *
 * Provider "nccl": the collectives run on GPU buffers (GPU local_rank) through
 * the NCCL communicator, each call waited and drained (complete on the GPU)
 * before the next; the control traffic (the number of calls, the slowest
 * time) goes over the host communicator of the same world.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "core/clock.h"
#include "core/status.h"
#include "device/cuda.h"
#include "device/device.h"

/* What a bench runs on: c times, ctl carries the control messages (c itself on the host). */
typedef struct bench {
    ms_comm *c, *ctl;
    ms_device dev;
    int on_gpu;
    float *a, *b;   /* (most bytes) each, host or GPU */
} bench;

static ms_status run_once(ms_comm *c, int kind, float *a, float *b, int64_t bytes) {
    ms_comm_req *q = NULL;
    int64_t w = c->world;
    switch (kind) {
    case MS_COMM_ALL_GATHER: TRY(c->all_gather(c, a, b, bytes / 4 / w, MS_F32, &q)); break;
    case MS_COMM_REDUCE_SCATTER: TRY(c->reduce_scatter(c, a, b, bytes / 4 / w, MS_F32, &q)); break;
    case MS_COMM_ALL_REDUCE: TRY(c->all_reduce(c, a, b, bytes / 4, MS_F32, &q)); break;
    default: TRY(c->broadcast(c, a, bytes, 0, &q)); break;
    }
    TRY(c->wait(c, q));
    return ms_comm_drain(c);
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

static ms_status measure(bench *x, int kind, int64_t bytes, ms_comm_bench_row *row) {
    ms_comm *c = x->c;
    double t0 = ms_now();
    TRY(run_once(c, kind, x->a, x->b, bytes));
    double once = ms_now() - t0;
    int32_t iters = once > 0 ? (int32_t)(0.2 / once) : 200;
    if (iters < 2) iters = 2;
    if (iters > 200) iters = 200;
    ms_comm_req *q = NULL;
    TRY(x->ctl->broadcast(x->ctl, &iters, sizeof iters, 0, &q));
    TRY(x->ctl->wait(x->ctl, q));
    TRY(c->barrier(c));
    t0 = ms_now();
    for (int32_t i = 0; i < iters; i++) TRY(run_once(c, kind, x->a, x->b, bytes));
    double per = (ms_now() - t0) / iters;
    TRY(slowest(x->ctl, per, &per));
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

/* Host buffers, one communicator for everything. */
static ms_status open_host(bench *x, const ms_world *w, const char *provider, int32_t timeout_ms, size_t most) {
    TRY(ms_comm_create(w, provider, timeout_ms, &x->c));
    x->ctl = x->c;
    x->a = aligned_alloc(64, (most + 63) / 64 * 64);
    x->b = aligned_alloc(64, (most + 63) / 64 * 64);
    if (!x->a || !x->b) return ms_fail(MS_ERR_NOMEM, "bench: cannot hold two buffers of %zu bytes", most);
    memset(x->a, 0, most);
    memset(x->b, 0, most);
    return MS_OK;
}

/* GPU local_rank, its buffers, the host communicator and NCCL's over it. */
static ms_status open_gpu(bench *x, const ms_world *w, int32_t timeout_ms, size_t most) {
    ms_device_info gpus;
    TRY(ms_device_query(MS_DEVICE_CUDA, &gpus));
    TRY(ms_device_init(&x->dev, MS_DEVICE_CUDA, MS_PRECISION_FP32, 1));
    x->on_gpu = 1;
#ifdef MS_HAVE_CUDA
    TRY(ms_cuda_use_gpu(&x->dev, w->local_rank % (gpus.count > 0 ? gpus.count : 1)));
#endif
    TRY(x->dev.start(&x->dev));
    TRY(x->dev.reserve(&x->dev, (int64_t)most, (void **)&x->a));
    TRY(x->dev.reserve(&x->dev, (int64_t)most, (void **)&x->b));
    x->dev.zero(&x->dev, x->a, (int64_t)most);
    x->dev.zero(&x->dev, x->b, (int64_t)most);
    TRY(ms_comm_create(w, NULL, timeout_ms, &x->ctl));
    return ms_comm_nccl(w, x->ctl, &x->dev, timeout_ms, &x->c);
}

static void close_bench(bench *x) {
    if (x->c && x->c != x->ctl) x->c->destroy(x->c);
    if (x->ctl) x->ctl->destroy(x->ctl);
    if (x->on_gpu) {
        if (x->dev.impl) {
            x->dev.release(&x->dev, x->a);
            x->dev.release(&x->dev, x->b);
            x->dev.stop(&x->dev);
        }
    } else {
        free(x->a);
        free(x->b);
    }
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
    if (timeout_ms <= 0) timeout_ms = 60000;
    /* every size is a multiple of 4 x world, so gathers split evenly */
    int64_t unit = 4 * (int64_t)w.world;
    size_t most = (size_t)((max_bytes + unit - 1) / unit * unit);
    bench x;
    memset(&x, 0, sizeof x);
    ms_status st = provider && strcmp(provider, "nccl") == 0 ? open_gpu(&x, &w, timeout_ms, most)
                                                             : open_host(&x, &w, provider, timeout_ms, most);
    if (st == MS_OK) {
        memset(info, 0, sizeof *info);
        info->rank = x.c->rank;
        info->world = x.c->world;
        snprintf(info->provider, sizeof info->provider, "%s", x.c->provider ? x.c->provider : "none");
    }
    static const int kinds[] = {MS_COMM_ALL_REDUCE, MS_COMM_ALL_GATHER, MS_COMM_REDUCE_SCATTER, MS_COMM_BROADCAST};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && st == MS_OK; k++) {
        for (int64_t size = min_bytes; size <= max_bytes && st == MS_OK; size *= 4) {
            int64_t bytes = (size + unit - 1) / unit * unit;
            if (*n_rows == cap) break;
            st = measure(&x, kinds[k], bytes, &rows[*n_rows]);
            if (st == MS_OK) (*n_rows)++;
        }
    }
    close_bench(&x);
    return st;
}
