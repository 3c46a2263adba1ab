/*
 * spec/c/comm_fault_test.c — a dead or stuck peer becomes an error that names
 * it, within the deadline, never a hang; and a few things that must hold
 * beside the sums: overlapping requests, counters, registered buffers, the
 * default chunk size.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "comm_ranks.h"
#include "core/clock.h"
#include "include/moonspeed.h"

typedef struct fault {
    rank_job job;
    int victim;          /* the rank that dies (or sleeps) mid-collective */
    int stuck;           /* 1: the victim sleeps instead of dying */
    const char *expect;  /* what the survivors' error must contain */
    double within_s;     /* and how soon they must fail */
} fault;

enum { BIG = 1 << 20 };

static int fault_rank(int rank, void *arg) {
    const fault *ft = arg;
    ms_comm *c = NULL;
    CHECK_OK(job_comm(&ft->job, rank, &c));
    float *x = calloc(BIG, sizeof(float));
    CHECK(x);
    ms_comm_req *q = NULL;
    CHECK_OK(c->all_reduce(c, x, x, BIG, MS_F32, &q));   /* one that works */
    CHECK_OK(c->wait(c, q));
    if (rank == ft->victim) {
        if (ft->stuck) {
            usleep((useconds_t)ft->job.timeout_ms * 2000);
            c->destroy(c);
            return 0;
        }
        CHECK_OK(c->all_reduce(c, x, x, BIG, MS_F32, &q));
        kill(getpid(), SIGKILL);   /* mid-collective */
        pause();
    }
    double t0 = ms_now();
    CHECK_OK(c->all_reduce(c, x, x, BIG, MS_F32, &q));
    ms_status st = c->wait(c, q);
    double took = ms_now() - t0;
    CHECK_MSG(st != MS_OK, "rank %d: the collective succeeded without rank %d", rank, ft->victim);
    if (rank == (ft->victim + 1) % c->world || !ft->stuck) {
        CHECK_MSG(strstr(ms_last_error(), ft->expect), "rank %d: \"%s\" does not say \"%s\"", rank, ms_last_error(),
                  ft->expect);
    }
    CHECK_MSG(took < ft->within_s, "rank %d failed after %.2f s, expected within %.2f s", rank, took, ft->within_s);
    /* and the communicator refuses more work, saying why */
    CHECK_FAILS(c->all_reduce(c, x, x, 1, MS_F32, &q), MS_ERR_STATE, "the communicator failed earlier");
    free(x);
    c->destroy(c);
    return 0;
}

static int run_fault(const char *provider, int victim, int stuck, const char *expect, double within_s, int timeout_ms) {
    fault ft = {.job = {.world = 3, .port = free_port(), .provider = provider, .timeout_ms = timeout_ms},
                .victim = victim, .stuck = stuck, .expect = expect, .within_s = within_s};
    int status[3], pids[3];
    ft.job.pids = pids;
    run_ranks(&ft.job, fault_rank, &ft, 30, status);
    if (strcmp(provider, "shm") == 0) {   /* no rank, dead or alive, left its shared memory behind */
        for (int r = 0; r < 3; r++) {
            char cmd[128];
            snprintf(cmd, sizeof cmd, "ls /dev/shm 2>/dev/null | grep -q '^%d:'", pids[r]);
            CHECK_MSG(system(cmd) != 0, "/dev/shm still holds a region of rank %d (pid %d)", r, pids[r]);
        }
    }
    for (int r = 0; r < 3; r++) {
        if (r == victim && !stuck) {
            CHECK_MSG(WIFSIGNALED(status[r]) && WTERMSIG(status[r]) == SIGKILL, "the victim: status %d", status[r]);
        } else {
            CHECK_MSG(WIFEXITED(status[r]) && WEXITSTATUS(status[r]) == 0, "rank %d: status %d", r, status[r]);
        }
    }
    return 0;
}

/* The deadline is 10 s; a killed peer is known at once through the rendezvous. */
TEST(comm_killed_peer_tcp) { return run_fault("tcp;ofi_rxm", 2, 0, "rank 2 is gone", 5, 10000); }
TEST(comm_killed_peer_shm) { return run_fault("shm", 1, 0, "rank 1 is gone", 5, 10000); }
TEST(comm_killed_rank0_tcp) { return run_fault("tcp;ofi_rxm", 0, 0, "rank 0 is gone", 5, 10000); }
/* A peer that is alive but never comes: the deadline (1 s) names it. */
TEST(comm_stuck_peer_tcp) { return run_fault("tcp;ofi_rxm", 2, 1, "no message from rank 2 in 1.", 3, 1000); }

/* --- overlap, counters, registration ------------------------------------- */

typedef struct extra {
    rank_job job;
    int64_t n;
    const char *env_name, *env_value;
} extra;

static int overlap_rank(int rank, void *arg) {
    const extra *ex = arg;
    if (ex->env_name) setenv(ex->env_name, ex->env_value, 1);
    ms_comm *c = NULL;
    CHECK_OK(job_comm(&ex->job, rank, &c));
    int w = c->world;
    int64_t n = ex->n;
    float *a = malloc((size_t)n * sizeof(float)), *g = malloc((size_t)(n * w) * sizeof(float));
    float *s = malloc((size_t)(n * w) * sizeof(float)), *rs = malloc((size_t)n * sizeof(float));
    CHECK(a && g && s && rs);
    for (int64_t i = 0; i < n; i++) a[i] = (float)(rank + 1) * (float)(i % 8);
    for (int64_t i = 0; i < n * w; i++) s[i] = (float)(rank + 1);
    ms_comm_req *qa = NULL, *qg = NULL, *qr = NULL;
    /* three in flight at once, waited in another order than started */
    CHECK_OK(c->all_reduce(c, a, a, n, MS_F32, &qa));
    CHECK_OK(c->all_gather(c, a + 0, g, 0, MS_F32, &qg));   /* an empty one too */
    CHECK_OK(c->reduce_scatter(c, s, rs, n, MS_F32, &qr));
    for (int i = 0; i < 1000; i++) CHECK_OK(c->progress(c));   /* "computing" meanwhile */
    CHECK_OK(c->wait(c, qr));
    CHECK_OK(c->wait(c, qg));
    CHECK_OK(c->wait(c, qa));
    float tri = (float)(w * (w + 1) / 2);
    for (int64_t i = 0; i < n; i++) {
        CHECK_NEAR(a[i], tri * (float)(i % 8), 0, 0);
        CHECK_NEAR(rs[i], tri, 0, 0);
    }
    /* the counters: calls, the bytes of each full collective, time */
    CHECK(c->stats.calls[MS_COMM_ALL_REDUCE] == 1 && c->stats.bytes[MS_COMM_ALL_REDUCE] == n * 4);
    CHECK(c->stats.calls[MS_COMM_REDUCE_SCATTER] == 1 && c->stats.bytes[MS_COMM_REDUCE_SCATTER] == n * w * 4);
    CHECK(c->stats.calls[MS_COMM_ALL_GATHER] == 1 && c->stats.bytes[MS_COMM_ALL_GATHER] == 0);
    CHECK(c->stats.seconds[MS_COMM_ALL_REDUCE] > 0 && c->stats.seconds[MS_COMM_REDUCE_SCATTER] > 0);
    CHECK(c->stats.calls[MS_COMM_BARRIER] == 0);   /* the one inside create does not count */
    /* a request is waited once */
    CHECK_FAILS(c->wait(c, qa), MS_ERR_INVALID, "is not a request in flight");
    free(a);
    free(g);
    free(s);
    free(rs);
    c->destroy(c);
    return 0;
}

static int run_extra(const char *provider, int world, int64_t n, const char *env_name, const char *env_value) {
    extra ex = {.job = {.world = world, .port = free_port(), .provider = provider, .timeout_ms = 20000}, .n = n,
                .env_name = env_name, .env_value = env_value};
    CHECK(run_ranks(&ex.job, overlap_rank, &ex, 60, NULL) == 0);
    return 0;
}

/* the default chunk (128 KiB): 3 x 300007 floats flow through several pipelines */
TEST(comm_overlap_counters_shm) { return run_extra("shm", 3, 300007, NULL, NULL); }
TEST(comm_overlap_counters_tcp) { return run_extra("tcp;ofi_rxm", 2, 300007, NULL, NULL); }
/* buffers registered per call, as providers with FI_MR_LOCAL (efa) need */
TEST(comm_registered_buffers_tcp) { return run_extra("tcp;ofi_rxm", 3, 20011, "MS_FABRIC_REGISTER", "1"); }

static int pool_rank(int rank, void *arg) {
    const extra *ex = arg;
    ms_comm *c = NULL;
    CHECK_OK(job_comm(&ex->job, rank, &c));
    float x[64] = {0};
    ms_comm_req *q[64];
    int started = 0;
    ms_status st = MS_OK;
    while (started < 64 && (st = c->all_reduce(c, x + started, x + started, 1, MS_F32, &q[started])) == MS_OK) started++;
    CHECK_MSG(st == MS_ERR_STATE && strstr(ms_last_error(), "requests of the communicator are in flight"), "%s",
              ms_last_error());
    CHECK(started >= 4);
    for (int i = 0; i < started; i++) CHECK_OK(c->wait(c, q[i]));
    c->destroy(c);
    return 0;
}

TEST(comm_request_pool_limit) {
    extra ex = {.job = {.world = 2, .port = free_port(), .provider = "shm", .timeout_ms = 10000}};
    CHECK(run_ranks(&ex.job, pool_rank, &ex, 30, NULL) == 0);
    return 0;
}

/* --- no allocation in steady state ---------------------------------------- */

#include "alloc_count.h"

static int round_of_everything(ms_comm *c, float *a, float *b, int64_t n) {
    ms_comm_req *q[4];
    CHECK_OK(c->all_gather(c, a, b, n, MS_F32, &q[0]));
    CHECK_OK(c->reduce_scatter(c, b, a, n, MS_BF16, &q[1]));
    CHECK_OK(c->broadcast(c, b + n * c->world, 1000, 1, &q[2]));
    CHECK_OK(c->all_reduce(c, b + 2 * n * c->world, b + 2 * n * c->world, n, MS_F32, &q[3]));
    for (int i = 3; i >= 0; i--) CHECK_OK(c->wait(c, q[i]));
    CHECK_OK(c->barrier(c));
    return 0;
}

static int steady_rank(int rank, void *arg) {
    const extra *ex = arg;
    ms_comm *c = NULL;
    CHECK_OK(job_comm(&ex->job, rank, &c));
    int64_t n = ex->n;
    float *a = calloc((size_t)(n * c->world), sizeof(float)), *b = calloc((size_t)(4 * n * c->world), sizeof(float));
    CHECK(a && b);
    CHECK(round_of_everything(c, a, b, n) == 0);   /* warm: connections, first touches */
    alloc_count_start();
    for (int i = 0; i < 5; i++) CHECK(round_of_everything(c, a, b, n) == 0);
    long got = alloc_count_stop();
    CHECK_MSG(got == 0, "rank %d: %ld allocations in 5 rounds of collectives over %s", rank, got, c->provider);
    free(a);
    free(b);
    c->destroy(c);
    return 0;
}

static int run_steady(const char *provider) {
    extra ex = {.job = {.world = 3, .port = free_port(), .provider = provider, .timeout_ms = 20000}, .n = 70001};
    CHECK(run_ranks(&ex.job, steady_rank, &ex, 60, NULL) == 0);
    return 0;
}

/* Every allocation of the process counts, libfabric's too: shm allocates
 * nothing per message; tcp;ofi_rxm (1.17) does, inside the provider, about 40
 * times per round of these collectives, so only shm can show that the
 * communicator itself allocates nothing. */
TEST(comm_steady_state_allocates_nothing_shm) { return run_steady("shm"); }
