/*
 * spec/c/comm_ranks.h — running a test body as several ranks.
 *
 * run_ranks forks one child per rank; each calls body(rank, arg) and exits
 * with its result. Ranks meet over 127.0.0.1 on a port that was free a moment
 * ago (free_port). A child still running after limit_s is killed and counts
 * as failed, so a hang is a red test, not a stuck runner.
 */
#ifndef MS_SPEC_COMM_RANKS_H
#define MS_SPEC_COMM_RANKS_H
#include <stdint.h>

#include "comm/comm.h"

typedef int (*rank_fn)(int rank, void *arg);

typedef struct rank_job {
    int world;
    int port;
    const char *provider;   /* NULL: the default choice */
    int32_t timeout_ms;
    const char *token;      /* NULL: "spec" */
    int *pids;              /* when set, run_ranks writes the children's pids here (world entries) */
} rank_job;

int free_port(void);

/* Forks job->world children running body; 0 when every one returned 0.
 * status (optional, world entries) gets each child's wait status. */
int run_ranks(const rank_job *job, rank_fn body, void *arg, double limit_s, int *status);

/* Forks one child running body(rank, arg); returns its pid. */
int spawn_rank(int rank, rank_fn body, void *arg);
/* Waits for pid up to limit_s (then kills it); returns its wait status. */
int reap(int pid, double limit_s);

/* A world of one rank that met nobody (world = local world = 1). */
ms_world world_of_one(void);
/* The world of `rank` in job (127.0.0.1, job->port, token). */
ms_world job_world(const rank_job *job, int rank);
/* ms_comm_create for `rank` of job. */
ms_status job_comm(const rank_job *job, int rank, ms_comm **out);

#endif
