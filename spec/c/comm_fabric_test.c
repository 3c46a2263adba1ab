/*
 * spec/c/comm_fabric_test.c — every collective of the fabric communicator
 * against the sums it must produce, at world 2, 3 and 4, over shm and
 * tcp;ofi_rxm, fp32 and bf16, in place and out of place.
 *
 * Inputs are chosen so that the fp32 sums are exact in any order: the results
 * must match bit for bit, and bf16 results must equal the exact sum rounded
 * once to bf16 (a ring that rounded every partial sum would differ). Counts
 * are not divisible by the world, and the chunk is made small (4 KiB) so that
 * every block flows through many chunks and every pipeline is reused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "comm/fabric.h"
#include "comm_ranks.h"
#include "include/moonspeed.h"

/* fp32 inputs: multiples of 1/8 in [-2, 2]: every sum of a few is exact. */
static float val32(int rank, int64_t i) { return (float)((i * 7 + rank * 13) % 31 - 15) * 0.125f; }

/* bf16 inputs: 7-bit fractions at exponents -1..1: sums exact in fp32, rarely in bf16. */
static uint16_t val16(int rank, int64_t i) {
    float m = 1.0f + (float)((i * 5 + rank * 3) % 128) / 128.0f;
    int e = (int)((i + rank) % 3) - 1;
    float x = e < 0 ? m * 0.5f : e > 0 ? m * 2.0f : m;
    if ((i + rank) % 5 == 0) x = -x;
    return ms_f32_to_bf16(x);
}

static int same32(const char *what, const float *got, const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4) != 0) {
            fprintf(stderr, "%s[%lld]: got %.9g, want %.9g\n", what, (long long)i, (double)got[i], (double)want[i]);
            return 1;
        }
    return 0;
}

static int same16(const char *what, const uint16_t *got, const uint16_t *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "%s[%lld]: got bf16 0x%04x (%g), want 0x%04x (%g)\n", what, (long long)i, got[i],
                    (double)ms_bf16_to_f32(got[i]), want[i], (double)ms_bf16_to_f32(want[i]));
            return 1;
        }
    return 0;
}

/* Fills x (n elements of dtype) with rank's inputs at element offsets base.. */
static void fill(void *x, int32_t dtype, int rank, int64_t base, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (dtype == MS_BF16) ((uint16_t *)x)[i] = val16(rank, base + i);
        else ((float *)x)[i] = val32(rank, base + i);
    }
}

/* The sum over ranks of inputs at base.., rounded once to dtype. */
static void expect_sum(void *x, int32_t dtype, int world, int64_t base, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float s = 0;
        for (int r = 0; r < world; r++)
            s += dtype == MS_BF16 ? ms_bf16_to_f32(val16(r, base + i)) : val32(r, base + i);
        if (dtype == MS_BF16) ((uint16_t *)x)[i] = ms_f32_to_bf16(s);
        else ((float *)x)[i] = s;
    }
}

static int same(const char *what, const void *got, const void *want, int32_t dtype, int64_t n) {
    return dtype == MS_BF16 ? same16(what, got, want, n) : same32(what, got, want, n);
}

static void garbage(void *x, size_t bytes) { memset(x, 0x5A, bytes); }

typedef struct plan {
    rank_job job;
    int64_t counts[4];
    int n_counts;
} plan;

/* One collective of each kind, both dtypes, in and out of place, for every count. */
static int collectives(ms_comm *c, const plan *pl) {
    int w = c->world, r = c->rank;
    int64_t calls = 0;
    for (int ci = 0; ci < pl->n_counts; ci++) {
        int64_t n = pl->counts[ci];
        for (int32_t dt = MS_F32; dt <= MS_BF16; dt++) {
            size_t es = (size_t)ms_comm_elem_size(dt);
            char *send = malloc((size_t)(n * w) * es + 16), *recv = malloc((size_t)(n * w) * es + 16),
                 *want = malloc((size_t)(n * w) * es + 16);
            CHECK(send && recv && want);
            for (int in_place = 0; in_place <= 1; in_place++) {
                char what[96];
                ms_comm_req *q = NULL;
                /* all_gather */
                snprintf(what, sizeof what, "all_gather n=%lld dtype=%d in_place=%d rank %d", (long long)n, dt,
                         in_place, r);
                garbage(recv, (size_t)(n * w) * es);
                void *mine = in_place ? recv + (size_t)(r * n) * es : send;
                fill(mine, dt, r, 0, n);
                CHECK_OK(c->all_gather(c, mine, recv, n, dt, &q));
                CHECK_OK(c->wait(c, q));
                for (int b = 0; b < w; b++) fill(want + (size_t)(b * n) * es, dt, b, 0, n);
                CHECK_MSG(!same(what, recv, want, dt, n * w), "%s", what);
                /* reduce_scatter */
                snprintf(what, sizeof what, "reduce_scatter n=%lld dtype=%d in_place=%d rank %d", (long long)n, dt,
                         in_place, r);
                fill(send, dt, r, 0, n * w);
                void *out = in_place ? send + (size_t)(r * n) * es : recv;
                if (!in_place) garbage(recv, (size_t)n * es);
                CHECK_OK(c->reduce_scatter(c, send, out, n, dt, &q));
                CHECK_OK(c->wait(c, q));
                expect_sum(want, dt, w, r * n, n);
                CHECK_MSG(!same(what, out, want, dt, n), "%s", what);
                /* all_reduce */
                snprintf(what, sizeof what, "all_reduce n=%lld dtype=%d in_place=%d rank %d", (long long)n, dt,
                         in_place, r);
                fill(send, dt, r, 0, n);
                out = in_place ? send : recv;
                if (!in_place) garbage(recv, (size_t)n * es);
                CHECK_OK(c->all_reduce(c, send, out, n, dt, &q));
                CHECK_OK(c->wait(c, q));
                expect_sum(want, dt, w, 0, n);
                CHECK_MSG(!same(what, out, want, dt, n), "%s", what);
                calls += 3;
            }
            /* broadcast from every root */
            for (int root = 0; root < w; root++) {
                int64_t bytes = n * (int64_t)es + root;   /* odd sizes too */
                char what[64];
                snprintf(what, sizeof what, "broadcast of %lld bytes from %d, rank %d", (long long)bytes, root, r);
                for (int64_t i = 0; i < bytes; i++) want[i] = (char)(i * 31 + root);
                if (r == root) memcpy(recv, want, (size_t)bytes);
                else garbage(recv, (size_t)bytes);
                ms_comm_req *q = NULL;
                CHECK_OK(c->broadcast(c, recv, bytes, root, &q));
                CHECK_OK(c->wait(c, q));
                CHECK_MSG(memcmp(recv, want, (size_t)bytes) == 0, "%s: bytes differ", what);
                calls++;
            }
            free(send);
            free(recv);
            free(want);
        }
    }
    CHECK_OK(c->barrier(c));
    int64_t total = 0;
    for (int k = 0; k < MS_COMM_KINDS; k++) total += c->stats.calls[k];
    CHECK_MSG(total == calls + 1, "counted %lld calls, made %lld", (long long)total, (long long)calls + 1);
    return 0;
}

static int collectives_rank(int rank, void *arg) {
    const plan *pl = arg;
    setenv("MS_FABRIC_CHUNK", "4096", 1);
    ms_comm *c = NULL;
    CHECK_OK(job_comm(&pl->job, rank, &c));
    CHECK(strcmp(c->name, "fabric") == 0);
    CHECK_MSG(strcmp(c->provider, pl->job.provider) == 0, "provider %s, asked for %s", c->provider, pl->job.provider);
    int rc = collectives(c, pl);
    c->destroy(c);
    return rc;
}

static int run_collectives(const char *provider, int world) {
    plan pl = {.job = {.world = world, .port = free_port(), .provider = provider, .timeout_ms = 20000},
               .counts = {1, 7, 5003}, .n_counts = 3};
    CHECK(pl.job.port > 0);
    CHECK(run_ranks(&pl.job, collectives_rank, &pl, 120, NULL) == 0);
    return 0;
}

TEST(comm_shm_world2) { return run_collectives("shm", 2); }
TEST(comm_shm_world3) { return run_collectives("shm", 3); }
TEST(comm_shm_world4) { return run_collectives("shm", 4); }
TEST(comm_tcp_world2) { return run_collectives("tcp;ofi_rxm", 2); }
TEST(comm_tcp_world3) { return run_collectives("tcp;ofi_rxm", 3); }
TEST(comm_tcp_world4) { return run_collectives("tcp;ofi_rxm", 4); }

/* --- a random mix in flight ----------------------------------------------- */

typedef struct slot {
    int kind, dtype, in_place, root;
    int64_t n;
    char *send, *recv;
    ms_comm_req *q;
} slot;

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int check_slot(ms_comm *c, const slot *sl) {
    int w = c->world, r = c->rank;
    size_t es = (size_t)ms_comm_elem_size(sl->dtype);
    char *want = malloc((size_t)(sl->n * w) * es + 64);
    CHECK(want);
    char what[96];
    snprintf(what, sizeof what, "%s n=%lld dtype=%d in_place=%d rank %d", ms_comm_kind_name(sl->kind),
             (long long)sl->n, sl->dtype, sl->in_place, r);
    int bad = 0;
    switch (sl->kind) {
    case MS_COMM_ALL_GATHER:
        for (int b = 0; b < w; b++) fill(want + (size_t)(b * sl->n) * es, sl->dtype, b, 0, sl->n);
        bad = same(what, sl->recv, want, sl->dtype, sl->n * w);
        break;
    case MS_COMM_REDUCE_SCATTER:
        expect_sum(want, sl->dtype, w, r * sl->n, sl->n);
        bad = same(what, sl->in_place ? sl->send + (size_t)(r * sl->n) * es : sl->recv, want, sl->dtype, sl->n);
        break;
    case MS_COMM_ALL_REDUCE:
        expect_sum(want, sl->dtype, w, 0, sl->n);
        bad = same(what, sl->in_place ? sl->send : sl->recv, want, sl->dtype, sl->n);
        break;
    default:
        for (int64_t i = 0; i < sl->n; i++) want[i] = (char)(i * 7 + sl->root);
        bad = memcmp(sl->recv, want, (size_t)sl->n) != 0;
        break;
    }
    free(want);
    CHECK_MSG(!bad, "%s", what);
    return 0;
}

static int mix_rank(int rank, void *arg) {
    const rank_job *job = arg;
    setenv("MS_FABRIC_CHUNK", "4096", 1);
    ms_comm *c = NULL;
    CHECK_OK(job_comm(job, rank, &c));
    int w = c->world;
    enum { IN_FLIGHT = 6, TOTAL = 60 };
    slot sl[IN_FLIGHT];
    memset(sl, 0, sizeof sl);
    uint64_t same_everywhere = 0x9E3779B97F4A7C15ull, mine = 0x1234567ull + (uint64_t)rank * 77;
    int started = 0, waited = 0;
    while (waited < TOTAL) {
        /* start while there is room (the same choices on every rank) */
        int room = -1;
        for (int i = 0; i < IN_FLIGHT; i++)
            if (!sl[i].q && !sl[i].send) room = i;
        if (room >= 0 && started < TOTAL && next_rand(&same_everywhere) % 3 != 0) {
            slot *s = &sl[room];
            s->kind = (int)(next_rand(&same_everywhere) % 4);
            s->dtype = (int)(next_rand(&same_everywhere) % 2);
            s->in_place = (int)(next_rand(&same_everywhere) % 2);
            s->root = (int)(next_rand(&same_everywhere) % (uint64_t)w);
            s->n = (int64_t)(next_rand(&same_everywhere) % 9000);
            size_t es = (size_t)ms_comm_elem_size(s->dtype);
            s->send = malloc((size_t)(s->n * w) * es + 64);
            s->recv = malloc((size_t)(s->n * w) * es + 64);
            CHECK(s->send && s->recv);
            switch (s->kind) {
            case MS_COMM_ALL_GATHER: {
                void *own = s->in_place ? s->recv + (size_t)(rank * s->n) * es : s->send;
                fill(own, s->dtype, rank, 0, s->n);
                CHECK_OK(c->all_gather(c, own, s->recv, s->n, s->dtype, &s->q));
                break;
            }
            case MS_COMM_REDUCE_SCATTER:
                fill(s->send, s->dtype, rank, 0, s->n * w);
                CHECK_OK(c->reduce_scatter(c, s->send, s->in_place ? s->send + (size_t)(rank * s->n) * es : s->recv,
                                           s->n, s->dtype, &s->q));
                break;
            case MS_COMM_ALL_REDUCE:
                fill(s->send, s->dtype, rank, 0, s->n);
                CHECK_OK(c->all_reduce(c, s->send, s->in_place ? s->send : s->recv, s->n, s->dtype, &s->q));
                break;
            default:
                for (int64_t i = 0; i < s->n; i++) s->recv[i] = rank == s->root ? (char)(i * 7 + s->root) : 0;
                CHECK_OK(c->broadcast(c, s->recv, s->n, s->root, &s->q));
                break;
            }
            if (!s->q) s->q = (ms_comm_req *)1;   /* an empty one completes at once: nothing to wait */
            started++;
            continue;
        }
        /* else wait one, chosen differently on every rank */
        int pick = -1;
        for (int tries = 0; tries < 64 && pick < 0; tries++) {
            int i = (int)(next_rand(&mine) % IN_FLIGHT);
            if (sl[i].send) pick = i;
        }
        for (int i = 0; i < IN_FLIGHT && pick < 0; i++)
            if (sl[i].send) pick = i;
        if (pick < 0) continue;
        slot *s = &sl[pick];
        if (s->q != (ms_comm_req *)1) CHECK_OK(c->wait(c, s->q));
        CHECK(check_slot(c, s) == 0);
        free(s->send);
        free(s->recv);
        memset(s, 0, sizeof *s);
        waited++;
    }
    c->destroy(c);
    return 0;
}

TEST(comm_random_mix_shm) {
    rank_job job = {.world = 3, .port = free_port(), .provider = "shm", .timeout_ms = 20000};
    CHECK(run_ranks(&job, mix_rank, &job, 120, NULL) == 0);
    return 0;
}

TEST(comm_random_mix_tcp) {
    rank_job job = {.world = 4, .port = free_port(), .provider = "tcp;ofi_rxm", .timeout_ms = 20000};
    CHECK(run_ranks(&job, mix_rank, &job, 120, NULL) == 0);
    return 0;
}
