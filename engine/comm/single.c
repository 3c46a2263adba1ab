/*
 * comm/single.c — the communicator of a world of one rank.
 *
 * Every collective of one rank is the identity: out of place it copies send
 * to recv (bf16 copies bit for bit: a sum of one term rounds to itself), in
 * place it does nothing. Requests are never needed: each call completes
 * before it returns and hands back NULL. The counters count all the same, so
 * metrics read the same at every world size. Over device memory the copy is
 * the caller's (ms_comm_single_with_copy): a device copy, ordered on the
 * device's stream like any other work there.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "core/clock.h"
#include "core/status.h"

const char *ms_comm_kind_name(int kind) {
    switch (kind) {
    case MS_COMM_ALL_GATHER: return "all_gather";
    case MS_COMM_REDUCE_SCATTER: return "reduce_scatter";
    case MS_COMM_ALL_REDUCE: return "all_reduce";
    case MS_COMM_BROADCAST: return "broadcast";
    case MS_COMM_BARRIER: return "barrier";
    }
    return "unknown collective";
}

ms_status ms_comm_check(const ms_comm *c, int kind, const void *send, const void *recv, int64_t count,
                        int32_t dtype, ms_comm_req **req) {
    const char *what = ms_comm_kind_name(kind);
    if (!c) return ms_fail(MS_ERR_INVALID, "%s: the communicator is NULL", what);
    if (!req) return ms_fail(MS_ERR_INVALID, "%s: req is NULL; pass where to put the request", what);
    *req = NULL;
    if (count < 0) return ms_fail(MS_ERR_INVALID, "%s: count %lld is negative", what, (long long)count);
    if (kind != MS_COMM_BROADCAST && dtype != MS_F32 && dtype != MS_BF16)
        return ms_fail(MS_ERR_INVALID, "%s: dtype %d is not MS_F32 (0) or MS_BF16 (1)", what, (int)dtype);
    if (count > 0 && (!send || !recv))
        return ms_fail(MS_ERR_INVALID, "%s: %s buffer is NULL with count %lld", what, !send ? "the send" : "the recv",
                       (long long)count);
    return MS_OK;
}

ms_status ms_comm_latch(char *failure, size_t len, int *failed, ms_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, len, fmt, ap);
    va_end(ap);
    *failed = 1;
    return ms_fail(st, "%s", failure);
}

static ms_status finish(ms_comm *c, int kind, int64_t bytes, double t0) {
    c->stats.calls[kind]++;
    c->stats.bytes[kind] += bytes;
    c->stats.seconds[kind] += ms_now() - t0;
    return MS_OK;
}

/* How an out-of-place collective moves bytes: memmove, or the caller's copy. */
typedef struct single_impl {
    ms_comm_copy_fn copy;
    void *ctx;
} single_impl;

static ms_status copy_op(ms_comm *c, int kind, const void *send, void *recv, int64_t count, int32_t dtype,
                         ms_comm_req **req) {
    double t0 = ms_now();
    TRY(ms_comm_check(c, kind, send, recv, count, dtype, req));
    int64_t bytes = count * ms_comm_elem_size(dtype);
    const single_impl *s = c->impl;
    if (count > 0 && send != recv) {
        if (s->copy) s->copy(s->ctx, recv, send, bytes);
        else memmove(recv, send, (size_t)bytes);
    }
    return finish(c, kind, bytes, t0);
}

static ms_status single_all_gather(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                   ms_comm_req **req) {
    return copy_op(c, MS_COMM_ALL_GATHER, send, recv, count, dtype, req);
}

static ms_status single_reduce_scatter(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                       ms_comm_req **req) {
    return copy_op(c, MS_COMM_REDUCE_SCATTER, send, recv, count, dtype, req);
}

static ms_status single_all_reduce(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                   ms_comm_req **req) {
    return copy_op(c, MS_COMM_ALL_REDUCE, send, recv, count, dtype, req);
}

static ms_status single_broadcast(ms_comm *c, void *buf, int64_t bytes, int32_t root, ms_comm_req **req) {
    double t0 = ms_now();
    TRY(ms_comm_check(c, MS_COMM_BROADCAST, buf, buf, bytes, MS_F32, req));
    if (root != 0) return ms_fail(MS_ERR_INVALID, "broadcast: root %d is not a rank of a world of 1", root);
    return finish(c, MS_COMM_BROADCAST, bytes, t0);
}

static ms_status single_barrier(ms_comm *c) {
    if (!c) return ms_fail(MS_ERR_INVALID, "barrier: the communicator is NULL");
    c->stats.calls[MS_COMM_BARRIER]++;
    return MS_OK;
}

static ms_status single_wait(ms_comm *c, ms_comm_req *req) {
    (void)c;
    if (req) return ms_fail(MS_ERR_INVALID, "wait: the single communicator never hands out requests; got %p", (void *)req);
    return MS_OK;
}

static ms_status single_progress(ms_comm *c) {
    (void)c;
    return MS_OK;
}

static void single_destroy(ms_comm *c) { free(c); }

/* The communicator and its impl in one allocation. */
typedef struct single_comm {
    ms_comm c;
    single_impl s;
} single_comm;

ms_status ms_comm_single_with_copy(ms_comm_copy_fn copy, void *ctx, ms_comm **out) {
    if (!out) return ms_fail(MS_ERR_INVALID, "ms_comm_single: out is NULL");
    single_comm *sc = calloc(1, sizeof *sc);
    if (!sc) return ms_fail(MS_ERR_NOMEM, "ms_comm_single: out of memory");
    sc->s = (single_impl){.copy = copy, .ctx = ctx};
    ms_comm *c = &sc->c;
    c->impl = &sc->s;
    c->name = "single";
    c->provider = "none";
    c->rank = 0;
    c->world = 1;
    c->timeout_ms = 30000;
    c->all_gather = single_all_gather;
    c->reduce_scatter = single_reduce_scatter;
    c->all_reduce = single_all_reduce;
    c->broadcast = single_broadcast;
    c->barrier = single_barrier;
    c->wait = single_wait;
    c->destroy = single_destroy;
    c->progress = single_progress;
    *out = c;
    return MS_OK;
}

ms_status ms_comm_single(ms_comm **out) { return ms_comm_single_with_copy(NULL, NULL, out); }
