/*
 * comm/world.c — which world this process belongs to, from the environment.
 *
 * In order: moonspeed's own MS_RANK, MS_WORLD_SIZE, MS_MASTER_ADDR,
 * MS_MASTER_PORT (+ MS_LOCAL_RANK, MS_LOCAL_WORLD_SIZE; `moonspeed launch`
 * sets them); Kubeflow Trainer's PET_NNODES, PET_NPROC_PER_NODE,
 * PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT with the local rank from
 * MS_LOCAL_RANK or LOCAL_RANK; torchrun's RANK, WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT (+ LOCAL_RANK, LOCAL_WORLD_SIZE). A family that is only partly
 * set is an error naming what is there and what is missing; none at all is a
 * world of one. MS_JOB_TOKEN (else TORCHELASTIC_RUN_ID) is the job token;
 * MS_RENDEZVOUS_TIMEOUT (seconds) bounds the rendezvous.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/status.h"

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* A decimal integer in [lo, hi] from variable `name`. */
static ms_status env_int(const char *name, const char *v, int64_t lo, int64_t hi, int32_t *out) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end != '\0' || x < lo || x > hi)
        return ms_fail(MS_ERR_INVALID, "%s=%s is not an integer in [%lld, %lld]", name, v, (long long)lo,
                       (long long)hi);
    *out = (int32_t)x;
    return MS_OK;
}

/* Fails when some of names[0..n) are set and others are not. */
static ms_status all_or_none(const char *family, const char *const *names, int n, int *any) {
    char set[256] = "", unset[256] = "";
    int n_set = 0;
    for (int i = 0; i < n; i++) {
        char *dst = env(names[i]) ? set : unset;
        if (env(names[i])) n_set++;
        size_t len = strlen(dst);
        snprintf(dst + len, 256 - len, "%s%s", len ? ", " : "", names[i]);
    }
    *any = n_set > 0;
    if (n_set > 0 && n_set < n)
        return ms_fail(MS_ERR_INVALID,
                       "the %s world is incomplete: %s %s set but %s %s not; a rank needs all of them "
                       "(moonspeed launch sets them)",
                       family, set, n_set == 1 ? "is" : "are", unset, n - n_set == 1 ? "is" : "are");
    return MS_OK;
}

static ms_status set_master(ms_world *w, const char *addr_var, const char *port_var) {
    const char *addr = env(addr_var);
    if (strlen(addr) >= sizeof w->master_addr)
        return ms_fail(MS_ERR_INVALID, "%s is %zu characters long; at most %zu fit", addr_var, strlen(addr),
                       sizeof w->master_addr - 1);
    snprintf(w->master_addr, sizeof w->master_addr, "%s", addr);
    return env_int(port_var, env(port_var), 1, 65535, &w->master_port);
}

static ms_status check_rank(ms_world *w, const char *rank_what) {
    if (w->rank >= w->world)
        return ms_fail(MS_ERR_INVALID, "%s = %d is not below the world size %d; ranks count from 0", rank_what,
                       w->rank, w->world);
    if (w->local_rank >= w->local_world)
        return ms_fail(MS_ERR_INVALID, "the local rank %d is not below the local world size %d", w->local_rank,
                       w->local_world);
    return MS_OK;
}

static ms_status world_from_ms(ms_world *w) {
    TRY(env_int("MS_WORLD_SIZE", env("MS_WORLD_SIZE"), 1, 65535, &w->world));
    TRY(env_int("MS_RANK", env("MS_RANK"), 0, 65534, &w->rank));
    TRY(set_master(w, "MS_MASTER_ADDR", "MS_MASTER_PORT"));
    w->local_rank = w->rank;
    w->local_world = w->world;
    if (env("MS_LOCAL_WORLD_SIZE")) TRY(env_int("MS_LOCAL_WORLD_SIZE", env("MS_LOCAL_WORLD_SIZE"), 1, 65535, &w->local_world));
    if (env("MS_LOCAL_RANK")) TRY(env_int("MS_LOCAL_RANK", env("MS_LOCAL_RANK"), 0, 65534, &w->local_rank));
    w->source = "MS_*";
    return check_rank(w, "MS_RANK");
}

static ms_status world_from_pet(ms_world *w) {
    int32_t nnodes, nproc, node;
    const char *np = env("PET_NPROC_PER_NODE");
    if (np && (strcmp(np, "auto") == 0 || strcmp(np, "cpu") == 0 || strcmp(np, "gpu") == 0))
        return ms_fail(MS_ERR_INVALID,
                       "PET_NPROC_PER_NODE=%s is not a number of processes; give the TrainJob an integer "
                       "trainer.numProcPerNode",
                       np);
    TRY(env_int("PET_NNODES", env("PET_NNODES"), 1, 65535, &nnodes));
    TRY(env_int("PET_NPROC_PER_NODE", np, 1, 65535, &nproc));
    TRY(env_int("PET_NODE_RANK", env("PET_NODE_RANK"), 0, 65534, &node));
    if ((int64_t)nnodes * nproc > 65535)
        return ms_fail(MS_ERR_INVALID, "PET_NNODES=%d x PET_NPROC_PER_NODE=%d ranks is more than 65535", nnodes, nproc);
    if (node >= nnodes)
        return ms_fail(MS_ERR_INVALID, "PET_NODE_RANK=%d is not below PET_NNODES=%d", node, nnodes);
    TRY(set_master(w, "PET_MASTER_ADDR", "PET_MASTER_PORT"));
    int32_t local = 0;
    if (env("MS_LOCAL_RANK")) {
        TRY(env_int("MS_LOCAL_RANK", env("MS_LOCAL_RANK"), 0, 65534, &local));
    } else if (env("LOCAL_RANK")) {
        TRY(env_int("LOCAL_RANK", env("LOCAL_RANK"), 0, 65534, &local));
    } else if (nproc > 1) {
        return ms_fail(MS_ERR_INVALID,
                       "PET_NPROC_PER_NODE=%d starts %d processes per node but this one has no local rank; "
                       "start them with `moonspeed launch` (it sets MS_LOCAL_RANK) or set LOCAL_RANK",
                       nproc, nproc);
    }
    if (local >= nproc)
        return ms_fail(MS_ERR_INVALID, "the local rank %d is not below PET_NPROC_PER_NODE=%d", local, nproc);
    w->world = nnodes * nproc;
    w->rank = node * nproc + local;
    w->local_rank = local;
    w->local_world = nproc;
    w->source = "PET_*";
    return check_rank(w, "the rank");
}

static ms_status world_from_torchrun(ms_world *w) {
    TRY(env_int("WORLD_SIZE", env("WORLD_SIZE"), 1, 65535, &w->world));
    TRY(env_int("RANK", env("RANK"), 0, 65534, &w->rank));
    TRY(set_master(w, "MASTER_ADDR", "MASTER_PORT"));
    w->local_rank = w->rank;
    w->local_world = w->world;
    if (env("LOCAL_WORLD_SIZE")) TRY(env_int("LOCAL_WORLD_SIZE", env("LOCAL_WORLD_SIZE"), 1, 65535, &w->local_world));
    if (env("LOCAL_RANK")) TRY(env_int("LOCAL_RANK", env("LOCAL_RANK"), 0, 65534, &w->local_rank));
    w->source = "torchrun";
    return check_rank(w, "RANK");
}

ms_status ms_world_from_env(ms_world *w) {
    if (!w) return ms_fail(MS_ERR_INVALID, "ms_world_from_env: w is NULL");
    memset(w, 0, sizeof *w);
    w->world = w->local_world = 1;
    w->source = "none";
    const char *token = env("MS_JOB_TOKEN");
    if (!token) token = env("TORCHELASTIC_RUN_ID");
    if (token && strlen(token) >= sizeof w->job_token)
        return ms_fail(MS_ERR_INVALID, "MS_JOB_TOKEN is %zu characters long; at most %zu fit", strlen(token),
                       sizeof w->job_token - 1);
    snprintf(w->job_token, sizeof w->job_token, "%s", token ? token : "");
    const char *rv = env("MS_RENDEZVOUS_TIMEOUT");
    if (rv) {
        char *end = NULL;
        double s = strtod(rv, &end);
        if (end == rv || *end != '\0' || !(s > 0) || s > 86400)
            return ms_fail(MS_ERR_INVALID, "MS_RENDEZVOUS_TIMEOUT=%s is not a number of seconds in (0, 86400]", rv);
        w->rendezvous_ms = (int32_t)(s * 1000.0 + 0.5);
        if (w->rendezvous_ms < 1) w->rendezvous_ms = 1;
    }

    static const char *const ms[] = {"MS_RANK", "MS_WORLD_SIZE", "MS_MASTER_ADDR", "MS_MASTER_PORT"};
    static const char *const pet[] = {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
                                      "PET_MASTER_PORT"};
    static const char *const torch[] = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};
    int any;
    ms_status st;
    TRY(all_or_none("MS_*", ms, 4, &any));
    if (any) {
        st = world_from_ms(w);
    } else {
        TRY(all_or_none("Kubeflow PET_*", pet, 5, &any));
        if (any) {
            st = world_from_pet(w);
        } else {
            TRY(all_or_none("torchrun", torch, 4, &any));
            if (!any) return MS_OK;
            st = world_from_torchrun(w);
        }
    }
    if (st != MS_OK) return ms_fail_context(st, "the world from the environment (%s)", w->source);
    return MS_OK;
}
