/*
 * spec/gpu/nccl_test.c — the NCCL communicator on device buffers, and the
 * single communicator over device copies.
 *
 * One rank (NCCL runs a world of one): every collective, f32 and bf16, in
 * place and out of place, counts 0, 1, odd and a few thousand, results
 * downloaded and compared bit for bit; the ordering against the compute
 * stream with no host synchronization in between; the counters; the request
 * pool's limit; a library that cannot be loaded. Two ranks (forked, one GPU
 * each; skipped with the reason on a machine with one GPU): every collective
 * against the sums it must produce, and a peer that never joins a collective
 * failing the other rank at its deadline instead of hanging it.
 *
 * CUDA is never touched before a fork: the parent asks a child how many GPUs
 * there are.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../c/comm_ranks.h"
#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "core/clock.h"
#include "gpu.h"

static int open_gpu(ms_device *d, int gpu) {
    if (ms_device_init(d, MS_DEVICE_CUDA, MS_PRECISION_FP32, 0) != MS_OK ||
        ms_cuda_use_gpu(d, gpu) != MS_OK || d->start(d) != MS_OK)
        return fprintf(stderr, "CUDA device on GPU %d: %s\n", gpu, ms_last_error()), 1;
    return 0;
}

static void *take(ms_device *d, int64_t bytes) {
    void *p = NULL;
    if (d->reserve(d, bytes > 0 ? bytes : 4, &p) != MS_OK) fprintf(stderr, "reserve: %s\n", ms_last_error());
    return p;
}

/* A CUDA device on GPU 0 and the NCCL communicator of a world of one over it. */
static int open_one(ms_device *d, ms_comm **c) {
    if (open_gpu(d, 0)) return 1;
    ms_world w = world_of_one();
    CHECK_OK(ms_comm_nccl(&w, NULL, d, 20000, c));
    return 0;
}

/* Drains and destroys c, stops d; 0 when that went well. */
static int close_one(ms_device *d, ms_comm *c) {
    CHECK_OK(ms_comm_drain(c));
    c->destroy(c);
    d->stop(d);
    return 0;
}

/* Starts kind on count elements (broadcast: bytes) and waits; dst = src in place. */
static ms_status run(ms_comm *c, int kind, const void *src, void *dst, int64_t count, int32_t dtype, int32_t root) {
    ms_comm_req *q = NULL;
    switch (kind) {
    case MS_COMM_ALL_GATHER: TRY(c->all_gather(c, src, dst, count, dtype, &q)); break;
    case MS_COMM_REDUCE_SCATTER: TRY(c->reduce_scatter(c, src, dst, count, dtype, &q)); break;
    case MS_COMM_ALL_REDUCE: TRY(c->all_reduce(c, src, dst, count, dtype, &q)); break;
    default: TRY(c->broadcast(c, dst, count, root, &q)); break;
    }
    if (count == 0 && q) return ms_fail(MS_ERR_INTERNAL, "an empty collective handed back a request");
    return c->wait(c, q);
}

/* count elements of dtype, random and finite, as stored (bf16: uint16). */
static void *host_values(int64_t count, int32_t dtype, unsigned seed) {
    float *f = rnd(count, seed, 4.0f, 0);
    if (dtype == MS_F32) return f;
    uint16_t *h = malloc(2 * (size_t)(count ? count : 1));
    for (int64_t i = 0; i < count; i++) h[i] = ms_f32_to_bf16(f[i]);
    free(f);
    return h;
}

static int same_bytes(const char *what, const void *got, const void *want, int64_t bytes) {
    const uint8_t *g = got, *w = want;
    for (int64_t i = 0; i < bytes; i++)
        if (g[i] != w[i]) return fprintf(stderr, "%s: byte %lld differs (got 0x%02x, want 0x%02x)\n", what,
                                         (long long)i, g[i], w[i]), 1;
    return 0;
}

TEST(nccl_one_rank_collectives) {
    ms_device D, *d = &D;
    ms_comm *c = NULL;
    if (open_one(d, &c)) return 1;
    CHECK(strcmp(c->name, "nccl") == 0 && strncmp(c->provider, "nccl 2.", 7) == 0 && c->world == 1);
    static const int64_t counts[] = {0, 1, 7, 1000, 4097};
    static const int kinds[] = {MS_COMM_ALL_GATHER, MS_COMM_REDUCE_SCATTER, MS_COMM_ALL_REDUCE};
    int64_t calls[MS_COMM_KINDS] = {0}, bytes[MS_COMM_KINDS] = {0};
    unsigned seed = 1;
    for (int32_t dtype = MS_F32; dtype <= MS_BF16; dtype++)
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
            for (int k = 0; k < 3; k++)
                for (int in_place = 0; in_place <= 1; in_place++) {
                    int64_t n = counts[i], nb = n * (dtype == MS_BF16 ? 2 : 4);
                    void *h = host_values(n, dtype, seed++), *back = malloc((size_t)(nb ? nb : 1));
                    void *x = take(d, nb), *y = take(d, nb);
                    d->upload(d, x, h, nb);
                    d->zero(d, y, nb);
                    CHECK_OK(run(c, kinds[k], x, in_place ? x : y, n, dtype, 0));
                    d->download(d, back, in_place ? x : y, nb);
                    CHECK_OK(ms_cuda_status(d));
                    char what[96];
                    snprintf(what, sizeof what, "%s %s count %lld%s", ms_comm_kind_name(kinds[k]),
                             dtype == MS_BF16 ? "bf16" : "f32", (long long)n, in_place ? " in place" : "");
                    if (same_bytes(what, back, h, nb)) return 1;
                    calls[kinds[k]]++;
                    bytes[kinds[k]] += nb;
                    d->release(d, x), d->release(d, y), free(h), free(back);
                }
    static const int64_t sizes[] = {0, 1, 13, 4099};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int64_t nb = sizes[i];
        uint8_t *h = host_values(nb, MS_F32, seed++), *back = malloc((size_t)(nb ? nb : 1));
        void *x = take(d, nb);
        d->upload(d, x, h, nb);
        CHECK_OK(run(c, MS_COMM_BROADCAST, x, x, nb, MS_F32, 0));
        d->download(d, back, x, nb);
        if (same_bytes("broadcast", back, h, nb)) return 1;
        calls[MS_COMM_BROADCAST]++;
        bytes[MS_COMM_BROADCAST] += nb;
        d->release(d, x), free(h), free(back);
    }
    ms_comm_req *q = NULL;
    CHECK_FAILS(c->broadcast(c, c, 4, 1, &q), MS_ERR_INVALID, "root 1");
    CHECK_OK(c->barrier(c));
    CHECK_OK(ms_comm_drain(c));
    for (int k = 0; k < MS_COMM_BROADCAST + 1; k++) {
        CHECK_MSG(c->stats.calls[k] == calls[k] && c->stats.bytes[k] == bytes[k],
                  "%s: %lld calls %lld bytes, want %lld and %lld", ms_comm_kind_name(k), (long long)c->stats.calls[k],
                  (long long)c->stats.bytes[k], (long long)calls[k], (long long)bytes[k]);
        /* GPU time: some of it in every kind that copies (an in-place one at world 1 may do nothing) */
        double s = c->stats.seconds[k];
        CHECK_MSG(s >= 0 && s < 10 && (k == MS_COMM_BROADCAST || s > 0), "%s: %g s", ms_comm_kind_name(k), s);
    }
    CHECK(c->stats.calls[MS_COMM_BARRIER] == 1 && c->stats.bytes[MS_COMM_BARRIER] == 0);
    return close_one(d, c);
}

/* The compute stream writes the input just before the collective and reads
 * the output just after wait(), with no host synchronization between: the
 * events must order them. The writes take about a millisecond, time enough
 * for an unordered collective to read the old input. */
TEST(nccl_orders_against_the_compute_stream) {
    ms_device D, *d = &D;
    ms_comm *c = NULL;
    if (open_one(d, &c)) return 1;
    int64_t n = (int64_t)1 << 24;
    float *hx = malloc(4 * (size_t)n), *hy = malloc(4 * (size_t)n), *back = malloc(4 * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        hx[i] = (float)(i % 7 - 3);
        hy[i] = (float)(i % 5);
    }
    float *x = take(d, 4 * n), *y = take(d, 4 * n), *z = take(d, 4 * n);
    d->upload(d, x, hx, 4 * n);
    for (int round = 0; round < 3; round++) {
        d->upload(d, y, hy, 4 * n);
        for (int k = 0; k < 20; k++) d->add(d, y, x, n);   /* y = hy + 20 x */
        ms_comm_req *q = NULL;
        CHECK_OK(c->all_reduce(c, y, z, n, MS_F32, &q));
        CHECK_OK(c->wait(c, q));
        d->zero(d, y, 4 * n);                              /* after the collective read it */
        d->add(d, z, x, n);                                /* z = hy + 21 x */
        d->download(d, back, z, 4 * n);
        CHECK_OK(ms_cuda_status(d));
        for (int64_t i = 0; i < n; i++)
            CHECK_MSG(back[i] == hy[i] + 21 * hx[i], "round %d: z[%lld] = %g, want %g", round, (long long)i,
                      (double)back[i], (double)(hy[i] + 21 * hx[i]));
    }
    CHECK_OK(ms_comm_drain(c));
    CHECK(c->stats.calls[MS_COMM_ALL_REDUCE] == 3 && c->stats.bytes[MS_COMM_ALL_REDUCE] == 3 * 4 * n);
    return close_one(d, c);
}

/* 64 requests are the pool: the 65th without a wait is refused, and waiting frees them. */
TEST(nccl_request_pool_is_bounded) {
    ms_device D, *d = &D;
    ms_comm *c = NULL;
    if (open_one(d, &c)) return 1;
    float *x = take(d, 4 * 1024);
    d->zero(d, x, 4 * 1024);
    ms_comm_req *q[64], *extra = NULL;
    for (int i = 0; i < 64; i++) CHECK_OK(c->all_reduce(c, x, x, 1024, MS_F32, &q[i]));
    CHECK_FAILS(c->all_reduce(c, x, x, 1024, MS_F32, &extra), MS_ERR_STATE, "was never waited");
    for (int i = 63; i >= 0; i--) CHECK_OK(c->wait(c, q[i]));
    CHECK_FAILS(c->wait(c, q[0]), MS_ERR_INVALID, "not a request in flight");
    for (int i = 0; i < 200; i++) {   /* the ring turns over: slots of finished collectives come back */
        CHECK_OK(c->all_reduce(c, x, x, 1024, MS_F32, &extra));
        CHECK_OK(c->wait(c, extra));
    }
    CHECK_OK(ms_comm_drain(c));
    CHECK(c->stats.calls[MS_COMM_ALL_REDUCE] == 264);
    return close_one(d, c);
}

TEST(nccl_names_a_missing_library_then_loads_the_real_one) {
    ms_device D, *d = &D;
    if (open_gpu(d, 0)) return 1;
    ms_world w = world_of_one();
    ms_comm *c = NULL;
    setenv("MS_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
    CHECK_FAILS(ms_comm_nccl(&w, NULL, d, 20000, &c), MS_ERR_IO,
                "NCCL (/nonexistent/libnccl.so.2, from MS_NCCL_LIBRARY) could not be loaded");
    CHECK(c == NULL);
    unsetenv("MS_NCCL_LIBRARY");
    CHECK_OK(ms_comm_nccl(&w, NULL, d, 20000, &c));
    CHECK_OK(c->barrier(c));
    return close_one(d, c);
}

static void device_copy(void *ctx, void *dst, const void *src, int64_t bytes) {
    ms_device *d = ctx;
    d->copy(d, dst, src, bytes);
}

/* ZeRO at world 1 on a GPU: the single communicator moves device memory with the device's copy. */
TEST(single_copies_device_buffers) {
    ms_device D, *d = &D;
    if (open_gpu(d, 0)) return 1;
    ms_comm *c = NULL;
    CHECK_OK(ms_comm_single_with_copy(device_copy, d, &c));
    int64_t n = 3001;
    void *h = host_values(n, MS_BF16, 7);
    uint16_t *back = malloc(2 * (size_t)n);
    void *x = take(d, 2 * n), *y = take(d, 2 * n);
    d->upload(d, x, h, 2 * n);
    static const int kinds[] = {MS_COMM_ALL_GATHER, MS_COMM_REDUCE_SCATTER, MS_COMM_ALL_REDUCE};
    for (int k = 0; k < 3; k++) {
        d->zero(d, y, 2 * n);
        CHECK_OK(run(c, kinds[k], x, y, n, MS_BF16, 0));
        d->download(d, back, y, 2 * n);
        CHECK_OK(ms_cuda_status(d));
        if (same_bytes(ms_comm_kind_name(kinds[k]), back, h, 2 * n)) return 1;
    }
    CHECK(c->stats.bytes[MS_COMM_ALL_GATHER] == 2 * n);
    return close_one(d, c);
}

/* ---- two ranks, one GPU each -------------------------------------------- */

static int count_gpus(int rank, void *arg) {
    (void)rank, (void)arg;
    ms_device_info info;
    memset(&info, 0, sizeof info);
    if (ms_cuda_query(0, &info) != MS_OK) return 0;
    return info.count > 100 ? 100 : info.count;
}

/* The GPUs of this machine, asked in a child: the parent stays free of CUDA to fork ranks. */
static int gpus_here(void) {
    int st = reap(spawn_rank(0, count_gpus, NULL), 120);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 0;
}

/* Rank r's element i: f32 multiples of 1/8 (sums exact); bf16 8-bit mantissas (sums exact in fp32). */
static float value(int r, int64_t i, int32_t dtype) {
    if (dtype == MS_F32) return (float)((i * 5 + r * 11) % 29 - 14) * 0.125f;
    float m = 1.0f + (float)((i * 3 + r * 7) % 128) / 128.0f;
    return ((i + r) % 3 == 0 ? -m : m) * (float)(1 << ((i + r) % 4)) * 0.25f;
}

/* Stores x as dtype at element i of buf. */
static void store(void *buf, int64_t i, int32_t dtype, float x) {
    if (dtype == MS_F32) ((float *)buf)[i] = x;
    else ((uint16_t *)buf)[i] = ms_f32_to_bf16(x);
}

/* The sum over the world of element i, as NCCL must produce it (bf16: one rounding, the only add of two ranks). */
static void store_sum(void *buf, int64_t at, int64_t i, int32_t dtype, int world) {
    float s = 0;
    for (int r = 0; r < world; r++) s += value(r, i, dtype);
    store(buf, at, dtype, s);
}

/* Rank `rank` of job: its GPU (GPU rank), the host communicator, NCCL's over both. */
static int open_rank(const rank_job *job, int rank, ms_device *d, ms_comm **host, ms_comm **c) {
    if (open_gpu(d, rank)) return 1;
    CHECK_OK(job_comm(job, rank, host));
    ms_world w = job_world(job, rank);
    CHECK_OK(ms_comm_nccl(&w, *host, d, job->timeout_ms, c));
    return 0;
}

static int two_rank_collectives(int rank, void *arg) {
    const rank_job *job = arg;
    ms_device D, *d = &D;
    ms_comm *host = NULL, *c = NULL;
    if (open_rank(job, rank, d, &host, &c)) return 1;
    int W = job->world;
    static const int64_t counts[] = {0, 1, 7, 4097};
    int64_t bytes[MS_COMM_KINDS] = {0};
    for (int32_t dtype = MS_F32; dtype <= MS_BF16; dtype++)
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++)
            for (int in_place = 0; in_place <= 1; in_place++) {
                int64_t n = counts[ci], es = dtype == MS_BF16 ? 2 : 4, all = n * W;
                int64_t room = all * es + 4; /* the broadcast moves n * es + 3 bytes */
                char *mine = calloc((size_t)room, 1), *want = calloc((size_t)room, 1), *back = calloc((size_t)room, 1);
                char *x = take(d, room), *y = take(d, room);
                /* all_gather: this rank's block in, every block out */
                for (int64_t i = 0; i < n; i++) store(mine, i, dtype, value(rank, i, dtype));
                for (int r = 0; r < W; r++)
                    for (int64_t i = 0; i < n; i++) store(want, r * n + i, dtype, value(r, i, dtype));
                d->zero(d, y, all * es);
                d->upload(d, in_place ? y + rank * n * es : x, mine, n * es);
                CHECK_OK(run(c, MS_COMM_ALL_GATHER, in_place ? y + rank * n * es : x, y, n, dtype, 0));
                d->download(d, back, y, all * es);
                CHECK_OK(ms_cuda_status(d));
                if (same_bytes("all_gather", back, want, all * es)) return 1;
                /* reduce_scatter: every block in, the sum of this rank's block out */
                for (int64_t j = 0; j < all; j++) store(mine, j, dtype, value(rank, j, dtype));
                for (int64_t i = 0; i < n; i++) store_sum(want, i, rank * n + i, dtype, W);
                d->upload(d, x, mine, all * es);
                CHECK_OK(run(c, MS_COMM_REDUCE_SCATTER, x, in_place ? x + rank * n * es : y, n, dtype, 0));
                d->download(d, back, in_place ? x + rank * n * es : y, n * es);
                CHECK_OK(ms_cuda_status(d));
                if (same_bytes("reduce_scatter", back, want, n * es)) return 1;
                /* all_reduce: the sum of every element */
                for (int64_t i = 0; i < n; i++) store_sum(want, i, i, dtype, W);
                d->upload(d, x, mine, n * es);
                CHECK_OK(run(c, MS_COMM_ALL_REDUCE, x, in_place ? x : y, n, dtype, 0));
                d->download(d, back, in_place ? x : y, n * es);
                CHECK_OK(ms_cuda_status(d));
                if (same_bytes("all_reduce", back, want, n * es)) return 1;
                /* broadcast from the last rank */
                int64_t nb = n * es + 3;
                for (int64_t j = 0; j < nb; j++) ((uint8_t *)want)[j] = (uint8_t)(j * 31 + 7);
                d->zero(d, y, all * es);
                if (rank == W - 1) d->upload(d, y, want, nb);
                CHECK_OK(run(c, MS_COMM_BROADCAST, y, y, nb, MS_F32, W - 1));
                d->download(d, back, y, nb);
                CHECK_OK(ms_cuda_status(d));
                if (same_bytes("broadcast", back, want, nb)) return 1;
                bytes[MS_COMM_ALL_GATHER] += all * es;
                bytes[MS_COMM_REDUCE_SCATTER] += all * es;
                bytes[MS_COMM_ALL_REDUCE] += n * es;
                bytes[MS_COMM_BROADCAST] += nb;
                d->release(d, x), d->release(d, y), free(mine), free(want), free(back);
            }
    CHECK_OK(c->barrier(c));
    CHECK_OK(ms_comm_drain(c));
    for (int k = 0; k <= MS_COMM_BROADCAST; k++)
        CHECK_MSG(c->stats.calls[k] == 16 && c->stats.bytes[k] == bytes[k] && c->stats.seconds[k] > 0,
                  "rank %d %s: %lld calls, %lld bytes (want 16, %lld), %g s", rank, ms_comm_kind_name(k),
                  (long long)c->stats.calls[k], (long long)c->stats.bytes[k], (long long)bytes[k], c->stats.seconds[k]);
    c->destroy(c);
    host->destroy(host);
    d->stop(d);
    return 0;
}

/* Rank 1 creates the communicator, then never joins the all-reduce: rank 0
 * must fail at its deadline, naming the collective, and stay destroyable. */
static int two_rank_missing_peer(int rank, void *arg) {
    const rank_job *job = arg;
    ms_device D, *d = &D;
    ms_comm *host = NULL, *c = NULL;
    if (open_rank(job, rank, d, &host, &c)) return 1;
    if (rank == 1) {
        sleep(3 * (unsigned)job->timeout_ms / 1000 + 2);
        return 0;   /* leaves without a goodbye */
    }
    float *x = take(d, 4 << 20);
    d->zero(d, x, 4 << 20);
    ms_comm_req *q = NULL;
    double t0 = ms_now();
    /* NCCL may not take it (it connects the ranks at their first collective),
       or take it and never finish: either fails at the deadline */
    ms_status st = c->all_reduce(c, x, x, 1 << 20, MS_F32, &q);
    if (st == MS_OK) {
        CHECK_OK(c->wait(c, q));   /* the device waits; the host goes on */
        st = ms_comm_drain(c);
    }
    double took = ms_now() - t0;
    CHECK_MSG(st == MS_ERR_IO && strstr(ms_last_error(), "all_reduce #1 (4194304 bytes)"), "%d: %s", (int)st,
              ms_last_error());
    CHECK_MSG(took < 3 * job->timeout_ms / 1000.0, "the failure took %.1f s", took);
    CHECK_FAILS(c->all_reduce(c, x, x, 16, MS_F32, &q), MS_ERR_STATE, "failed earlier");
    c->destroy(c);
    d->stop(d);
    return 0;
}

static int two_ranks(rank_fn body, int32_t timeout_ms, double limit_s) {
    int gpus = gpus_here();
    if (gpus < 2) {
        printf("skipped: two ranks need two GPUs (NCCL refuses two ranks on one GPU); this machine has %d\n", gpus);
        return 0;
    }
    rank_job job = {.world = 2, .port = free_port(), .timeout_ms = timeout_ms};
    CHECK(job.port > 0);
    return run_ranks(&job, body, &job, limit_s, NULL) != 0;
}

TEST(nccl_two_ranks_collectives) { return two_ranks(two_rank_collectives, 60000, 300); }

TEST(nccl_two_ranks_missing_peer_fails_at_the_deadline) { return two_ranks(two_rank_missing_peer, 3000, 120); }
