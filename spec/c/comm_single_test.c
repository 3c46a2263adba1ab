/*
 * spec/c/comm_single_test.c — the single communicator over memory only a copy
 * function can move (device buffers, ms_comm_single_with_copy), and what the
 * NCCL communicator says where it cannot run (no GPU is needed: it fails
 * before it touches one).
 *
 * The copy function here counts its calls and moves host bytes, so the specs
 * can tell that every out-of-place collective copies once, through it, and
 * in-place ones and empty ones never call it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "comm_ranks.h"
#include "comm/comm.h"
#include "core/status.h"
#include "device/device.h"

typedef struct counting_copy {
    int calls;
    int64_t bytes;
} counting_copy;

static void count_copy(void *ctx, void *dst, const void *src, int64_t bytes) {
    counting_copy *cc = ctx;
    cc->calls++;
    cc->bytes += bytes;
    memcpy(dst, src, (size_t)bytes);
}

/* Starts kind out of place or in place on (count) elements of x into y and waits. */
static ms_status run(ms_comm *c, int kind, float *x, float *y, int64_t count, int in_place) {
    ms_comm_req *q = NULL;
    float *dst = in_place ? x : y;
    switch (kind) {
    case MS_COMM_ALL_GATHER: TRY(c->all_gather(c, x, dst, count, MS_F32, &q)); break;
    case MS_COMM_REDUCE_SCATTER: TRY(c->reduce_scatter(c, x, dst, count, MS_F32, &q)); break;
    default: TRY(c->all_reduce(c, x, dst, count, MS_F32, &q)); break;
    }
    if (q) return ms_fail(MS_ERR_INTERNAL, "a request from the single communicator");
    TRY(c->wait(c, q));
    return ms_comm_drain(c);
}

TEST(comm_single_with_copy_moves_through_the_copy) {
    counting_copy cc = {0, 0};
    ms_comm *c = NULL;
    CHECK_OK(ms_comm_single_with_copy(count_copy, &cc, &c));
    CHECK(c->world == 1 && c->rank == 0 && strcmp(c->name, "single") == 0);
    CHECK(c->drain == NULL);
    float x[37], y[37];
    static const int kinds[] = {MS_COMM_ALL_GATHER, MS_COMM_REDUCE_SCATTER, MS_COMM_ALL_REDUCE};
    int64_t want_bytes = 0;
    for (int k = 0; k < 3; k++) {
        fill_random(x, 37, (unsigned)k, 1.0f);
        memset(y, 0, sizeof y);
        int before = cc.calls;
        CHECK_OK(run(c, kinds[k], x, y, 37, 0));
        CHECK_MSG(cc.calls == before + 1, "kind %d: %d copies, want 1", kinds[k], cc.calls - before);
        CHECK(memcmp(x, y, sizeof x) == 0);
        CHECK_OK(run(c, kinds[k], x, y, 37, 1));     /* in place: nothing to move */
        CHECK_OK(run(c, kinds[k], x, y, 0, 0));      /* empty: nothing to move */
        CHECK_MSG(cc.calls == before + 1, "kind %d: in place or empty copied", kinds[k]);
        CHECK(c->stats.calls[kinds[k]] == 3);
        CHECK(c->stats.bytes[kinds[k]] == 2 * 37 * 4);
        want_bytes += 37 * 4;
    }
    CHECK(cc.bytes == want_bytes);
    ms_comm_req *q = NULL;
    CHECK_OK(c->broadcast(c, x, sizeof x, 0, &q));  /* the root's buffer is the result: no copy */
    CHECK(q == NULL && cc.calls == 3 && c->stats.bytes[MS_COMM_BROADCAST] == (int64_t)sizeof x);
    CHECK_FAILS(c->broadcast(c, x, sizeof x, 1, &q), MS_ERR_INVALID, "root 1");
    CHECK_OK(c->barrier(c));
    CHECK(c->stats.calls[MS_COMM_BARRIER] == 1);
    c->destroy(c);

    /* without a copy function it is the plain host communicator */
    CHECK_OK(ms_comm_single(&c));
    fill_random(x, 37, 9, 1.0f);
    CHECK_OK(run(c, MS_COMM_ALL_REDUCE, x, y, 37, 0));
    CHECK(memcmp(x, y, sizeof x) == 0);
    CHECK_OK(ms_comm_drain(c));
    c->destroy(c);
    CHECK_FAILS(ms_comm_single_with_copy(count_copy, &cc, NULL), MS_ERR_INVALID, "out is NULL");
    return 0;
}

TEST(comm_nccl_names_a_library_it_cannot_load) {
    ms_world w = world_of_one();
    ms_device d;
    ms_device_init_cpu(&d, MS_PRECISION_FP32, 1);
    ms_comm *c = (ms_comm *)&w;   /* must come back NULL */
    setenv("MS_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
    ms_status st = ms_comm_nccl(&w, NULL, &d, 1000, &c);
    unsetenv("MS_NCCL_LIBRARY");
    CHECK(c == NULL);
#ifdef MS_HAVE_CUDA
    CHECK_MSG(st == MS_ERR_IO && strstr(ms_last_error(), "NCCL (/nonexistent/libnccl.so.2, from MS_NCCL_LIBRARY) "
                                                         "could not be loaded") &&
              strstr(ms_last_error(), "install NCCL"), "%d: %s", (int)st, ms_last_error());
#else
    CHECK_MSG(st == MS_ERR_STATE && strstr(ms_last_error(), "built without the CUDA backend"), "%d: %s", (int)st,
              ms_last_error());
#endif
    return 0;
}

TEST(comm_nccl_refuses_what_it_cannot_serve) {
    ms_world w = world_of_one();
    ms_device d;
    ms_device_init_cpu(&d, MS_PRECISION_FP32, 1);
    ms_comm *c = NULL;
    CHECK_FAILS(ms_comm_nccl(&w, NULL, &d, 1000, NULL), MS_ERR_INVALID, "out is NULL");
    CHECK_FAILS(ms_comm_nccl(&w, NULL, &d, 0, &c), MS_ERR_INVALID, "timeout_ms 0");
    ms_world two = w;
    two.world = 2;
    CHECK_FAILS(ms_comm_nccl(&two, NULL, &d, 1000, &c), MS_ERR_INVALID, "needs a host communicator");
    ms_comm *host = NULL;
    CHECK_OK(ms_comm_single(&host));
    CHECK_FAILS(ms_comm_nccl(&two, host, &d, 1000, &c), MS_ERR_INVALID, "the host communicator is rank 0 of 1");
    host->destroy(host);
    /* a CPU device: NCCL (when this machine has it) serves CUDA devices only */
    ms_status st = ms_comm_nccl(&w, NULL, &d, 1000, &c);
    CHECK(st != MS_OK && c == NULL);
    const char *e = ms_last_error();
    CHECK_MSG((st == MS_ERR_INVALID && strstr(e, "works on a CUDA device's buffers; got the cpu device")) ||
                  (st == MS_ERR_IO && strstr(e, "could not be loaded")) ||
                  (st == MS_ERR_STATE && strstr(e, "built without the CUDA backend")),
              "%d: %s", (int)st, e);
    return 0;
}
