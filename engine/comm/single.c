/* comm/single.c — the communicator of a world of one rank: copies at most. */
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/status.h"

static int64_t elem(int32_t dtype) { return dtype == MS_BF16 ? 2 : 4; }

static void count(ms_comm *c, int kind, int64_t bytes) {
    c->stats.calls[kind]++;
    c->stats.bytes[kind] += bytes;
}

static ms_status copy_op(ms_comm *c, int kind, const void *send, void *recv, int64_t n, int32_t dtype,
                         ms_comm_req **req) {
    *req = NULL;
    if (send != recv) memmove(recv, send, (size_t)(n * elem(dtype)));
    count(c, kind, n * elem(dtype));
    return MS_OK;
}

static ms_status all_gather(ms_comm *c, const void *s, void *r, int64_t n, int32_t dt, ms_comm_req **q) {
    return copy_op(c, MS_COMM_ALL_GATHER, s, r, n, dt, q);
}
static ms_status reduce_scatter(ms_comm *c, const void *s, void *r, int64_t n, int32_t dt, ms_comm_req **q) {
    return copy_op(c, MS_COMM_REDUCE_SCATTER, s, r, n, dt, q);
}
static ms_status all_reduce(ms_comm *c, const void *s, void *r, int64_t n, int32_t dt, ms_comm_req **q) {
    return copy_op(c, MS_COMM_ALL_REDUCE, s, r, n, dt, q);
}
static ms_status broadcast(ms_comm *c, void *buf, int64_t bytes, int32_t root, ms_comm_req **q) {
    (void)buf;
    *q = NULL;
    if (root != 0) return ms_fail(MS_ERR_INVALID, "broadcast from rank %d in a world of 1 rank", root);
    count(c, MS_COMM_BROADCAST, bytes);
    return MS_OK;
}
static ms_status barrier(ms_comm *c) {
    count(c, MS_COMM_BARRIER, 0);
    return MS_OK;
}
static ms_status wait_req(ms_comm *c, ms_comm_req *q) {
    (void)c;
    (void)q;
    return MS_OK;
}
static void destroy(ms_comm *c) { free(c); }

ms_status ms_comm_single(ms_comm **out) {
    ms_comm *c = calloc(1, sizeof *c);
    if (!c) return ms_fail(MS_ERR_NOMEM, "communicator: out of host memory");
    *c = (ms_comm){.name = "single", .rank = 0, .world = 1, .all_gather = all_gather,
                   .reduce_scatter = reduce_scatter, .all_reduce = all_reduce, .broadcast = broadcast,
                   .barrier = barrier, .wait = wait_req, .destroy = destroy};
    *out = c;
    return MS_OK;
}
