/*
 * spec/c/zero_test.c — ZeRO stages 0–3 at world sizes 1, 2 and 4 on CPU ranks
 * (forked processes meeting over 127.0.0.1): every step's loss equals the
 * one-rank run's, each rank's initial shard is bit-identical to the
 * whole-model init, and the per-rank memory follows the plan.
 */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "fixtures.h"

enum { STEPS = 30, MAX_WORLD = 4 };

/* offload < 0: none; else the share of the optimizer state offloaded (at
 * stage 3 with the parameter shards too). */
static ms_config tiny(const char *dir, int stage, float offload) {
    ms_config c = fixture_tiny(dir);
    c.offload_optimizer = offload >= 0;
    c.offload_params = offload >= 0 && stage == 3;
    c.offload_overlap = offload > 0 && offload < 1; /* half offloaded: with the bet during the backward */
    c.offload_ratio = offload >= 0 ? offload : 1.0f;
    c.train.micro_batch = 2;
    c.train.steps = STEPS;
    c.train.lr = 3e-3f;
    c.threads = 1;
    c.zero_stage = stage;
    c.comm_timeout_ms = 20000;
    return c;
}

/* Every element this rank owns equals the whole-model init of that element. */
static int owned_init_matches(const ms_engine *e) {
    const ms_model *m = &e->model;
    for (int t = 0; t < m->n_tensors; t++) {
        const ms_tensor *tt = &m->tensors[t];
        const ms_unit *u = &m->units[tt->unit];
        for (int64_t i = 0; i < tt->numel; i++) {
            int64_t x = tt->offset + i;
            if (x < u->lo || x >= u->hi) continue;
            if (u->master[x - u->lo] != ms_tensor_init_value(tt, e->cfg.train.seed, i)) return 0;
        }
    }
    return 1;
}

/* What a rank reports back: its losses and the bytes of model state it reserved. */
typedef struct report {
    float losses[STEPS];
    double state_bytes;
} report;

/* One rank: train STEPS steps, write its report to fd; exit 0, or 1 with a message. */
static void rank_main(const char *dir, int stage, float offload, int rank, int world, int port, int fd) {
    char v[32];
    snprintf(v, sizeof v, "%d", rank), setenv("MS_RANK", v, 1);
    snprintf(v, sizeof v, "%d", world), setenv("MS_WORLD_SIZE", v, 1);
    snprintf(v, sizeof v, "%d", port), setenv("MS_MASTER_PORT", v, 1);
    setenv("MS_MASTER_ADDR", "127.0.0.1", 1);
    setenv("MS_JOB_TOKEN", "zero-spec", 1);
    ms_config c = tiny(dir, stage, offload);
    ms_engine *e;
    if (ms_engine_create(&c, &e) != MS_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, ms_last_error());
        _exit(1);
    }
    if (!owned_init_matches(e)) {
        fprintf(stderr, "rank %d: initial shard differs from the whole-model init\n", rank);
        _exit(1);
    }
    if (ms_engine_world_size(e) != world || ms_engine_rank(e) != rank) {
        fprintf(stderr, "rank %d: the engine says rank %d of %d\n", rank, ms_engine_rank(e), ms_engine_world_size(e));
        _exit(1);
    }
    report rep;
    ms_memory_report mem;
    ms_plan plan;
    ms_engine_memory(e, &mem);
    ms_engine_plan(e, &plan);
    if (mem.reserved.total != plan.device_bytes.total) {
        fprintf(stderr, "rank %d: reserved %lld bytes, planned %lld\n", rank, (long long)mem.reserved.total,
                (long long)plan.device_bytes.total);
        _exit(1);
    }
    rep.state_bytes = (double)(mem.reserved.params + mem.reserved.grads + mem.reserved.master + mem.reserved.optimizer);
    float *losses = rep.losses;
    for (int s = 0; s < STEPS; s++) {
        ms_step_stats st;
        if (ms_engine_step(e, &st) != MS_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, ms_last_error());
            _exit(1);
        }
        losses[s] = st.loss;
    }
    ms_engine_free(e);
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep) _exit(1);
    _exit(0);
}

/* Run a world in forked processes; rank 0's report into out. */
static int run_world(const char *dir, int stage, float offload, int world, report *out) {
    int32_t port;
    int fds[MAX_WORLD][2];
    if (ms_free_port(&port) != MS_OK) return 1;
    pid_t pids[MAX_WORLD];
    for (int r = 0; r < world; r++) {
        if (pipe(fds[r]) != 0) return 1;
        pids[r] = fork();
        if (pids[r] == 0) {
            close(fds[r][0]);
            rank_main(dir, stage, offload, r, world, port, fds[r][1]);
        }
        close(fds[r][1]);
    }
    int bad = 0;
    report rep;
    for (int r = 0; r < world; r++) {
        ssize_t got = read(fds[r][0], &rep, sizeof rep);
        close(fds[r][0]);
        int status;
        waitpid(pids[r], &status, 0);
        if (got != (ssize_t)sizeof rep || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "stage %d, world %d: rank %d failed\n", stage, world, r);
            bad = 1;
        } else if (r == 0) {
            *out = rep;
        }
    }
    return bad;
}

TEST(zero_stages_match_one_rank) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    report ref, got;
    const float *want = ref.losses;
    CHECK(run_world(dir, 0, -1, 1, &ref) == 0);
    CHECK_MSG(want[STEPS - 1] < 0.8f * want[0], "the reference did not learn: %.4f -> %.4f", want[0], want[STEPS - 1]);
    int worlds[3] = {1, 2, 4};
    double stage0_state[3] = {0};
    for (int stage = 0; stage <= 3; stage++) {
        for (int k = 0; k < 3; k++) {
            CHECK(run_world(dir, stage, -1, worlds[k], &got) == 0);
            for (int s = 0; s < STEPS; s++)
                CHECK_MSG(fabs(got.losses[s] - want[s]) <= 1e-5 * fabs(want[s]),
                          "stage %d, world %d, step %d: loss %.8f, one rank %.8f", stage, worlds[k], s,
                          got.losses[s], want[s]);
            if (stage == 0) stage0_state[k] = got.state_bytes;
            /* stage 3 keeps about 1/world of stage 0's model state (the tied embedding stays whole) */
            if (stage == 3) {
                double ratio = got.state_bytes / stage0_state[k];
                CHECK_MSG(ratio < 1.0 / worlds[k] + 0.15, "stage 3, world %d: %.0f bytes of model state per rank, "
                          "%.2f of stage 0's", worlds[k], got.state_bytes, ratio);
            }
        }
    }
    fixture_remove(dir);
    return 0;
}

/* Optimizer offload changes where the update runs, not what it computes:
 * every stage at world 2 with half or all of the optimizer state on the
 * host (at stage 3 the parameter shards too) gives the one-rank losses
 * (fp32, the same AdamW kernel). */
TEST(zero_offload_matches_one_rank) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    report ref, got;
    CHECK(run_world(dir, 0, -1, 1, &ref) == 0);
    float ratios[2] = {0.5f, 1.0f};
    for (int stage = 0; stage <= 3; stage++)
        for (int k = 0; k < 2; k++) {
            CHECK(run_world(dir, stage, ratios[k], 2, &got) == 0);
            for (int s = 0; s < STEPS; s++)
                CHECK_MSG(fabs(got.losses[s] - ref.losses[s]) <= 1e-5 * fabs(ref.losses[s]),
                          "stage %d, offload %.1f, step %d: loss %.8f, one rank %.8f", stage, (double)ratios[k], s,
                          got.losses[s], ref.losses[s]);
        }
    fixture_remove(dir);
    return 0;
}

/* The plan per rank: stage 3 keeps about 1/world of stage 0's model state. */
TEST(zero_plan_shrinks_with_world) {
    ms_config c = tiny("/nonexistent", 0, -1);
    c.train_path = c.val_path = NULL;
    c.model.dim = 256;
    c.model.n_layers = 4;
    c.model.n_heads = 8;
    c.model.n_kv_heads = 4;
    c.model.ffn_dim = 768;
    c.precision = MS_PRECISION_BF16;
    ms_plan p0, p3;
    c.world_size = 4;
    CHECK_OK(ms_plan_compute(&c, &p0));
    c.zero_stage = 3;
    CHECK_OK(ms_plan_compute(&c, &p3));
    CHECK(p0.world_size == 4 && p3.zero_stage == 3);
    double state0 = (double)(p0.device_bytes.params + p0.device_bytes.grads + p0.device_bytes.master +
                             p0.device_bytes.optimizer);
    double state3 = (double)(p3.device_bytes.params + p3.device_bytes.grads + p3.device_bytes.master +
                             p3.device_bytes.optimizer);
    CHECK_NEAR(state3 / state0, 0.25, 0.01, 0);
    /* stage 1 shards only master + moments, stage 2 gradients too */
    c.zero_stage = 1;
    ms_plan p1;
    CHECK_OK(ms_plan_compute(&c, &p1));
    CHECK(p1.device_bytes.params == p0.device_bytes.params && p1.device_bytes.grads == p0.device_bytes.grads);
    CHECK_NEAR((double)p1.device_bytes.optimizer / p0.device_bytes.optimizer, 0.25, 1e-9, 0);
    c.world_size = 3;
    c.train.batch = 8;
    CHECK_FAILS(ms_plan_compute(&c, &p1), MS_ERR_INVALID,
                "train.batch = 8 is not a multiple of train.micro_batch x ranks = 2 x 3");
    return 0;
}
