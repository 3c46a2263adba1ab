/*
 * comm/comm.h — the communicator interface: collectives over host buffers.
 *
 * One struct of function pointers with implementations `single` (one rank,
 * no copies: single.c) and `fabric` (libfabric RDM endpoints, tagged
 * messages, pipelined rings: fabric.c); `nccl` for device buffers later.
 * Ranks meet through bootstrap.c.
 *
 * Every collective is asynchronous: it starts the operation and returns a
 * request; wait() drives progress until it completes or the communicator's
 * deadline passes (then the error names the peer that did not answer).
 * Requests come from a fixed pool in the communicator (8 in flight at most):
 * starting and waiting allocate nothing. A collective with nothing to move
 * completes at once and hands back a NULL request. Counts are elements of
 * `dtype` (MS_F32 or MS_BF16, bf16 stored as uint16) per rank; sums are
 * computed in fp32 and rounded once. `send` may equal `recv` where noted (in
 * place). Every rank starts the same collectives in the same order; requests
 * may be waited in any order. After a failure the communicator refuses
 * further work. One thread uses a communicator at a time.
 */
#ifndef MS_COMM_H
#define MS_COMM_H
#include <stdint.h>

#include "include/moonspeed.h"

enum { MS_COMM_ALL_GATHER, MS_COMM_REDUCE_SCATTER, MS_COMM_ALL_REDUCE, MS_COMM_BROADCAST, MS_COMM_BARRIER,
       MS_COMM_KINDS };

typedef struct ms_comm_stats {
    int64_t calls[MS_COMM_KINDS];
    int64_t bytes[MS_COMM_KINDS];    /* bytes of the full collective (count * world * elem for gathers) */
    double seconds[MS_COMM_KINDS];   /* wall time from start to completion */
} ms_comm_stats;

typedef struct ms_comm ms_comm;
typedef struct ms_comm_req ms_comm_req;

struct ms_comm {
    const char *name;       /* "single", "fabric" */
    int32_t rank, world;
    int32_t timeout_ms;     /* deadline of every wait */
    ms_comm_stats stats;
    void *impl;

    /* recv (world * count) = concatenation of every rank's send (count); in place when
       send == recv + rank * count */
    ms_status (*all_gather)(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                            ms_comm_req **req);
    /* recv (count) = sum over ranks of send[rank * count .. (rank + 1) * count); in place
       when recv == send + rank * count */
    ms_status (*reduce_scatter)(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                ms_comm_req **req);
    /* recv (count) = sum over ranks of send (count); in place when send == recv */
    ms_status (*all_reduce)(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                            ms_comm_req **req);
    /* buf (bytes) of root everywhere */
    ms_status (*broadcast)(ms_comm *c, void *buf, int64_t bytes, int32_t root, ms_comm_req **req);
    ms_status (*barrier)(ms_comm *c);
    /* Complete a request (NULL: nothing to do). */
    ms_status (*wait)(ms_comm *c, ms_comm_req *req);
    void (*destroy)(ms_comm *c);
    const char *provider;   /* the libfabric provider ("shm", "tcp;ofi_rxm", "efa"); "none" for single */
    /* Move requests in flight along without blocking. Progress is manual: a
       transfer advances only inside wait() or here, so work that overlaps a
       collective (a prefetch) calls this now and then to keep it flowing. */
    ms_status (*progress)(ms_comm *c);
};

/* The world this process belongs to, from the environment (bootstrap.c):
 * MS_RANK/MS_WORLD_SIZE/MS_MASTER_ADDR/MS_MASTER_PORT, or Kubeflow's PET_*,
 * or torchrun's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT. world = 1 when none. */
typedef struct ms_world {
    int32_t rank, world, local_rank, local_world;
    char master_addr[256];
    int32_t master_port;
    char job_token[64];     /* MS_JOB_TOKEN: ranks of another job cannot join */
    const char *source;     /* "MS_*", "PET_*", "torchrun", "none" */
    int32_t rendezvous_ms;  /* MS_RENDEZVOUS_TIMEOUT (seconds) in ms; 0: the communicator's timeout */
} ms_world;

ms_status ms_world_from_env(ms_world *w);

/* Create the communicator for a world: `single` when world == 1, else `fabric`
 * over `provider` (NULL: FI_PROVIDER, else efa when present, shm when every
 * rank is on this host, tcp;ofi_rxm otherwise). */
ms_status ms_comm_create(const ms_world *w, const char *provider, int32_t timeout_ms, ms_comm **out);
ms_status ms_comm_single(ms_comm **out);

#endif
