/*
 * spec/c/comm_boot_test.c — the world from the environment, the rendezvous
 * (missing ranks, wrong job tokens, duplicate ranks, peers that vanish), the single communicator
 * and a missing libfabric.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "comm_ranks.h"
#include "core/clock.h"
#include "include/moonspeed.h"

static void clear_world_env(void) {
    const char *names[] = {"MS_RANK", "MS_WORLD_SIZE", "MS_MASTER_ADDR", "MS_MASTER_PORT", "MS_LOCAL_RANK",
                           "MS_LOCAL_WORLD_SIZE", "MS_JOB_TOKEN", "MS_RENDEZVOUS_TIMEOUT", "PET_NNODES",
                           "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT", "RANK",
                           "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                           "TORCHELASTIC_RUN_ID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unsetenv(names[i]);
}

TEST(comm_world_none) {
    clear_world_env();
    ms_world w;
    CHECK_OK(ms_world_from_env(&w));
    CHECK(w.world == 1 && w.rank == 0 && w.local_world == 1);
    CHECK(strcmp(w.source, "none") == 0);
    return 0;
}

TEST(comm_world_ms) {
    clear_world_env();
    setenv("MS_RANK", "3", 1);
    setenv("MS_WORLD_SIZE", "4", 1);
    setenv("MS_MASTER_ADDR", "node-0.example", 1);
    setenv("MS_MASTER_PORT", "29511", 1);
    setenv("MS_LOCAL_RANK", "1", 1);
    setenv("MS_LOCAL_WORLD_SIZE", "2", 1);
    setenv("MS_JOB_TOKEN", "abc123", 1);
    setenv("MS_RENDEZVOUS_TIMEOUT", "2.5", 1);
    ms_world w;
    CHECK_OK(ms_world_from_env(&w));
    CHECK(w.rank == 3 && w.world == 4 && w.local_rank == 1 && w.local_world == 2);
    CHECK(strcmp(w.master_addr, "node-0.example") == 0 && w.master_port == 29511);
    CHECK(strcmp(w.job_token, "abc123") == 0 && strcmp(w.source, "MS_*") == 0);
    CHECK(w.rendezvous_ms == 2500);
    return 0;
}

TEST(comm_world_pet) {
    clear_world_env();
    setenv("PET_NNODES", "2", 1);
    setenv("PET_NPROC_PER_NODE", "4", 1);
    setenv("PET_NODE_RANK", "1", 1);
    setenv("PET_MASTER_ADDR", "job-node-0-0.job", 1);
    setenv("PET_MASTER_PORT", "29500", 1);
    ms_world w;
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID, "has no local rank");
    setenv("LOCAL_RANK", "2", 1);
    CHECK_OK(ms_world_from_env(&w));
    CHECK(w.world == 8 && w.rank == 6 && w.local_rank == 2 && w.local_world == 4);
    CHECK(strcmp(w.source, "PET_*") == 0 && strcmp(w.master_addr, "job-node-0-0.job") == 0);
    setenv("MS_LOCAL_RANK", "3", 1);   /* the launcher's wins */
    CHECK_OK(ms_world_from_env(&w));
    CHECK(w.rank == 7);
    setenv("PET_NPROC_PER_NODE", "auto", 1);
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID, "PET_NPROC_PER_NODE=auto is not a number of processes");
    return 0;
}

TEST(comm_world_torchrun) {
    clear_world_env();
    setenv("RANK", "1", 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", "29400", 1);
    setenv("LOCAL_RANK", "1", 1);
    ms_world w;
    CHECK_OK(ms_world_from_env(&w));
    CHECK(w.rank == 1 && w.world == 2 && w.local_rank == 1 && strcmp(w.source, "torchrun") == 0);
    return 0;
}

TEST(comm_world_partial_and_bad) {
    clear_world_env();
    ms_world w;
    setenv("MS_RANK", "1", 1);
    setenv("MS_MASTER_ADDR", "h", 1);
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID,
                "the MS_* world is incomplete: MS_RANK, MS_MASTER_ADDR are set but MS_WORLD_SIZE, MS_MASTER_PORT are not");
    setenv("MS_WORLD_SIZE", "2", 1);
    setenv("MS_MASTER_PORT", "http", 1);
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID, "MS_MASTER_PORT=http is not an integer in [1, 65535]");
    setenv("MS_MASTER_PORT", "29500", 1);
    setenv("MS_RANK", "2", 1);
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID, "MS_RANK = 2 is not below the world size 2");
    clear_world_env();
    setenv("PET_NNODES", "2", 1);
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID, "the Kubeflow PET_* world is incomplete");
    clear_world_env();
    setenv("WORLD_SIZE", "2", 1);
    CHECK_FAILS(ms_world_from_env(&w), MS_ERR_INVALID, "the torchrun world is incomplete");
    return 0;
}

TEST(comm_single) {
    ms_comm *c = NULL;
    CHECK_OK(ms_comm_single(&c));
    CHECK(c->world == 1 && c->rank == 0 && strcmp(c->name, "single") == 0);
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {0};
    uint16_t h[3] = {0x3f80, 0x4000, 0x4040}, g[3] = {0};
    ms_comm_req *q = (ms_comm_req *)1;
    CHECK_OK(c->all_reduce(c, a, b, 5, MS_F32, &q));
    CHECK(q == NULL);
    CHECK_OK(c->wait(c, q));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_OK(c->all_gather(c, h, g, 3, MS_BF16, &q));
    CHECK(memcmp(h, g, sizeof h) == 0);
    CHECK_OK(c->reduce_scatter(c, a, a, 5, MS_F32, &q));   /* in place: nothing to do */
    CHECK_OK(c->broadcast(c, b, sizeof b, 0, &q));
    CHECK_FAILS(c->broadcast(c, b, sizeof b, 1, &q), MS_ERR_INVALID, "root 1 is not a rank of a world of 1");
    CHECK_FAILS(c->all_reduce(c, a, b, 5, 7, &q), MS_ERR_INVALID, "dtype 7 is not MS_F32 (0) or MS_BF16 (1)");
    CHECK_OK(c->barrier(c));
    CHECK(c->stats.calls[MS_COMM_ALL_REDUCE] == 1 && c->stats.bytes[MS_COMM_ALL_REDUCE] == 20);
    CHECK(c->stats.calls[MS_COMM_ALL_GATHER] == 1 && c->stats.bytes[MS_COMM_ALL_GATHER] == 6);
    CHECK(c->stats.calls[MS_COMM_BROADCAST] == 1 && c->stats.bytes[MS_COMM_BROADCAST] == 20);
    CHECK(c->stats.calls[MS_COMM_BARRIER] == 1);
    c->destroy(c);
    /* a world of one from the environment is the single communicator too */
    ms_world w;
    memset(&w, 0, sizeof w);
    w.world = w.local_world = 1;
    CHECK_OK(ms_comm_create(&w, NULL, 1000, &c));
    CHECK(strcmp(c->name, "single") == 0);
    c->destroy(c);
    return 0;
}

TEST(comm_no_libfabric) {
    setenv("MS_FABRIC_LIBRARY", "libfabric-that-is-not-here.so.1", 1);
    rank_job job = {.world = 2, .port = free_port(), .timeout_ms = 1000};
    ms_comm *c = NULL;
    CHECK_FAILS(job_comm(&job, 0, &c), MS_ERR_IO, "install the libfabric1 package (Debian, Ubuntu) or the EFA installer");
    CHECK(strstr(ms_last_error(), "libfabric-that-is-not-here.so.1"));
    return 0;
}

/* --- the rendezvous ------------------------------------------------------- */

typedef struct boot_case {
    rank_job job;
    const char *expect[8];   /* per rank: NULL = must succeed, else a piece of the error */
} boot_case;

static int boot_rank(int rank, void *arg) {
    const boot_case *bc = arg;
    ms_comm *c = NULL;
    ms_status st = job_comm(&bc->job, rank, &c);
    if (!bc->expect[rank]) {
        CHECK_OK(st);
        CHECK_OK(c->barrier(c));
        c->destroy(c);
        return 0;
    }
    CHECK_MSG(st != MS_OK, "rank %d joined but should have failed with \"%s\"", rank, bc->expect[rank]);
    CHECK_MSG(strstr(ms_last_error(), bc->expect[rank]), "rank %d failed with \"%s\", expected \"%s\"", rank,
              ms_last_error(), bc->expect[rank]);
    return 0;
}

TEST(comm_rendezvous_missing_rank) {
    /* rank 2 of 3 never comes: rank 0 names it at the deadline; rank 1 hears why */
    boot_case bc = {.job = {.world = 3, .port = free_port(), .provider = "tcp;ofi_rxm", .timeout_ms = 1500},
                    .expect = {"rank 2 of 3 did not join within 1.5 s", "rank 0 gave up"}};
    double t0 = ms_now();
    int p0 = spawn_rank(0, boot_rank, &bc), p1 = spawn_rank(1, boot_rank, &bc);
    int s0 = reap(p0, 20), s1 = reap(p1, 20);
    CHECK_MSG(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "rank 0 status %d", s0);
    CHECK_MSG(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "rank 1 status %d", s1);
    CHECK_MSG(ms_now() - t0 < 8, "took %.1f s", ms_now() - t0);
    return 0;
}

TEST(comm_rendezvous_no_master) {
    /* nobody listens: a rank retries until its deadline, then says where it looked */
    boot_case bc = {.job = {.world = 2, .port = free_port(), .timeout_ms = 700},
                    .expect = {NULL, "could not reach rank 0 at 127.0.0.1:"}};
    int p1 = spawn_rank(1, boot_rank, &bc);
    int s1 = reap(p1, 20);
    CHECK_MSG(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "rank 1 status %d", s1);
    return 0;
}

TEST(comm_rendezvous_wrong_token) {
    /* a rank of another job is refused with a clear message; rank 0 keeps
     * waiting, and the right rank 1 still joins */
    int port = free_port();
    boot_case good = {.job = {.world = 2, .port = port, .provider = "tcp;ofi_rxm", .timeout_ms = 8000, .token = "job-a"}};
    boot_case bad = good;
    bad.job.token = "job-b";
    bad.expect[1] = "this rank was refused: rank 0 at 127.0.0.1";
    int p0 = spawn_rank(0, boot_rank, &good);
    int pb = spawn_rank(1, boot_rank, &bad);
    int sb = reap(pb, 20);
    CHECK_MSG(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "the wrong rank 1: status %d", sb);
    int p1 = spawn_rank(1, boot_rank, &good);
    int s0 = reap(p0, 20), s1 = reap(p1, 20);
    CHECK_MSG(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "rank 0 status %d", s0);
    CHECK_MSG(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "rank 1 status %d", s1);
    return 0;
}

static int token_message_rank(int rank, void *arg) {
    boot_case *bc = arg;
    ms_comm *c = NULL;
    ms_status st = job_comm(&bc->job, rank, &c);
    CHECK(st != MS_OK);
    CHECK_MSG(strstr(ms_last_error(), "its job token (MS_JOB_TOKEN) is not this job's"), "got: %s", ms_last_error());
    return 0;
}

TEST(comm_rendezvous_token_message) {
    int port = free_port();
    boot_case good = {.job = {.world = 2, .port = port, .timeout_ms = 1500, .token = "job-a"},
                      .expect = {"rank 1 of 2 did not join"}};
    boot_case bad = good;
    bad.job.token = "job-b";
    int p0 = spawn_rank(0, boot_rank, &good);
    int pb = spawn_rank(1, token_message_rank, &bad);
    int sb = reap(pb, 20), s0 = reap(p0, 20);
    CHECK_MSG(WIFEXITED(sb) && WEXITSTATUS(sb) == 0, "the wrong rank 1: status %d", sb);
    CHECK_MSG(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "rank 0 status %d", s0);
    return 0;
}

/* 0 joined, 3 refused as a duplicate, 1 anything else */
static int maybe_duplicate_rank(int rank, void *arg) {
    const boot_case *bc = arg;
    ms_comm *c = NULL;
    if (job_comm(&bc->job, rank, &c) == MS_OK) {
        CHECK_OK(c->barrier(c));
        c->destroy(c);
        return 0;
    }
    if (strstr(ms_last_error(), "rank 1 has already joined from host")) return 3;
    fprintf(stderr, "rank %d: %s\n", rank, ms_last_error());
    return 1;
}

TEST(comm_rendezvous_duplicate_rank) {
    /* two processes claim rank 1: the later one is refused, the job goes on */
    boot_case bc = {.job = {.world = 3, .port = free_port(), .provider = "tcp;ofi_rxm", .timeout_ms = 8000}};
    int p0 = spawn_rank(0, boot_rank, &bc);
    int pa = spawn_rank(1, maybe_duplicate_rank, &bc), pb = spawn_rank(1, maybe_duplicate_rank, &bc);
    /* the refused one exits at once; the other waits for rank 2 */
    double t0 = ms_now();
    int sa = -1, sb = -1;
    while ((sa < 0 && sb < 0) && ms_now() - t0 < 10) {
        int st;
        if (waitpid(pa, &st, WNOHANG) == pa) sa = st;
        if (waitpid(pb, &st, WNOHANG) == pb) sb = st;
        usleep(10000);
    }
    int refused = sa >= 0 ? sa : sb;
    CHECK_MSG(refused >= 0 && WIFEXITED(refused) && WEXITSTATUS(refused) == 3, "no duplicate was refused (%d, %d)", sa, sb);
    int p2 = spawn_rank(2, boot_rank, &bc);
    int other = reap(sa >= 0 ? pb : pa, 20), s0 = reap(p0, 20), s2 = reap(p2, 20);
    CHECK_MSG(WIFEXITED(other) && WEXITSTATUS(other) == 0, "the first rank 1: status %d", other);
    CHECK_MSG(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "rank 0 status %d", s0);
    CHECK_MSG(WIFEXITED(s2) && WEXITSTATUS(s2) == 0, "rank 2 status %d", s2);
    return 0;
}

TEST(comm_unknown_provider) {
    /* rank 0's choice is everyone's; a provider that is not there fails setup
     * on every rank at once, listing those that are */
    boot_case bc = {.job = {.world = 2, .port = free_port(), .provider = "nonesuch", .timeout_ms = 20000},
                    .expect = {"libfabric offers no provider \"nonesuch\"", "libfabric offers no provider \"nonesuch\""}};
    double t0 = ms_now();
    CHECK(run_ranks(&bc.job, boot_rank, &bc, 30, NULL) == 0);
    CHECK_MSG(ms_now() - t0 < 10, "took %.1f s", ms_now() - t0);
    return 0;
}

/* --- peers that vanish during the rendezvous ------------------------------ */

/* Connect to rank 0 (retrying until it listens), send n bytes of junk, then close. */
static int vanish(int port, size_t n) {
    for (int tries = 0; tries < 400; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            char junk[64];
            memset(junk, 'x', sizeof junk);
            if (n) CHECK(send(fd, junk, n < sizeof junk ? n : sizeof junk, MSG_NOSIGNAL) > 0);
            close(fd);
            return 0;
        }
        close(fd);
        usleep(10000);
    }
    return 1;
}

TEST(comm_rendezvous_peer_vanishes) {
    /* one peer connects and goes away without a word, another after half a
     * hello: rank 0 drops both and the real rank 1 still joins */
    boot_case bc = {.job = {.world = 2, .port = free_port(), .provider = "tcp;ofi_rxm", .timeout_ms = 8000}};
    int p0 = spawn_rank(0, boot_rank, &bc);
    CHECK(vanish(bc.job.port, 0) == 0);
    CHECK(vanish(bc.job.port, 13) == 0);
    int p1 = spawn_rank(1, boot_rank, &bc);
    int s0 = reap(p0, 20), s1 = reap(p1, 20);
    CHECK_MSG(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "rank 0 status %d", s0);
    CHECK_MSG(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "rank 1 status %d", s1);
    return 0;
}

static int join_then_die(int rank, void *arg) {
    boot_case *bc = arg;
    ms_comm *c = NULL;
    alarm(1); /* killed by SIGALRM while it waits for the others, after its hello */
    job_comm(&bc->job, rank, &c);
    return 0;
}

TEST(comm_rendezvous_joined_rank_dies) {
    /* rank 1 joins and dies before rank 2 comes: rank 0 and rank 2 fail with
     * a message naming rank 1, within the deadline, instead of hanging */
    boot_case bc = {.job = {.world = 3, .port = free_port(), .provider = "tcp;ofi_rxm", .timeout_ms = 6000},
                    .expect = {"rank 1", NULL, "rank 0"}};
    double t0 = ms_now();
    int p0 = spawn_rank(0, boot_rank, &bc);
    int p1 = spawn_rank(1, join_then_die, &bc);
    int s1 = reap(p1, 20);
    CHECK_MSG(WIFSIGNALED(s1) && WTERMSIG(s1) == SIGALRM, "rank 1 status %d", s1);
    bc.expect[2] = "rank";
    int p2 = spawn_rank(2, boot_rank, &bc);
    int s0 = reap(p0, 20), s2 = reap(p2, 20);
    CHECK_MSG(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "rank 0 status %d", s0);
    CHECK_MSG(WIFEXITED(s2) && WEXITSTATUS(s2) == 0, "rank 2 status %d", s2);
    CHECK_MSG(ms_now() - t0 < 15, "took %.1f s", ms_now() - t0);
    return 0;
}
