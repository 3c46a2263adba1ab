/*
 * comm/comm.h — the communicator interface: collectives over host or device
 * buffers.
 *
 * One struct of function pointers with implementations `single` (one rank,
 * no copies: single.c), `fabric` (libfabric RDM endpoints, tagged messages,
 * pipelined rings over host buffers: fabric.c) and `nccl` (NCCL over GPU
 * buffers: nccl.c). Ranks meet through bootstrap.c.
 *
 * Every collective is asynchronous: it starts the operation and returns a
 * request; wait() drives progress until it completes or the communicator's
 * deadline passes (then the error names the peer that did not answer).
 * Requests come from a fixed pool in the communicator (8 in flight at most
 * for fabric, 64 for nccl): starting and waiting allocate nothing. A
 * collective with nothing to move completes at once and hands back a NULL
 * request. Counts are elements of `dtype` (MS_F32 or MS_BF16, bf16 stored as
 * uint16) per rank; sums are computed in fp32 and rounded once (nccl: see
 * below). `send` may equal `recv` where noted (in place). Every rank starts
 * the same collectives in the same order; requests may be waited in any
 * order. After a failure the communicator refuses further work. One thread
 * uses a communicator at a time.
 *
 * Device buffers (nccl). Buffers are device pointers of the communicator's
 * GPU, and "complete" is a statement about the device's compute stream, not
 * the host:
 *   - a collective reads its inputs after everything enqueued on the compute
 *     stream before the call (an event orders its own stream behind them);
 *   - wait(req) makes the compute stream wait for the collective: work
 *     enqueued on it after wait() returns sees the results. The host does not
 *     block; wait() only checks the communicator for an error NCCL reported.
 *     Until wait(), work on the compute stream must neither write the
 *     collective's buffers nor read its results;
 *   - drain() blocks the host until every collective started so far has
 *     completed on the device, within the deadline (timeout_ms after the
 *     operation started running on the GPU); a timeout or an error aborts the
 *     communicator and names the collective. Call it before the host blocks on
 *     the compute stream for something a collective produced (the download of
 *     a reduced scalar, the end of a step): a stream synchronization has no
 *     deadline, drain() does. Host communicators' drain() returns at once;
 *   - progress() notices completions and errors without blocking.
 * bf16 sums are NCCL's: summed in fp32 and rounded to bf16 at every hop of
 * its ring or tree, so above two ranks a bf16 sum can differ from the sum
 * rounded once by a few units in the last place. The counters count calls
 * and bytes when a collective starts and its seconds (GPU time between the
 * start and the end of the operation, CUDA events) when the host notices it
 * completed: in wait(), progress() or drain().
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
    double seconds[MS_COMM_KINDS];   /* wall time from start to completion (nccl: GPU time of the operation) */
} ms_comm_stats;

typedef struct ms_comm ms_comm;
typedef struct ms_comm_req ms_comm_req;

struct ms_comm {
    const char *name;       /* "single", "fabric", "nccl" */
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
    const char *provider;   /* the libfabric provider ("shm", "tcp;ofi_rxm", "efa"); "none" for single;
                               "nccl 2.28.9" (the library's version) for nccl */
    /* Move requests in flight along without blocking. Progress is manual: a
       transfer advances only inside wait() or here, so work that overlaps a
       collective (a prefetch) calls this now and then to keep it flowing. */
    ms_status (*progress)(ms_comm *c);
    /* Block the host until every collective started so far has completed
       (device communicators: see above); NULL where wait() already completes
       on the host. ms_comm_drain() is the call that works on every kind. */
    ms_status (*drain)(ms_comm *c);
};

/* c->drain(c) where there is one, else MS_OK. */
static inline ms_status ms_comm_drain(ms_comm *c) { return c && c->drain ? c->drain(c) : MS_OK; }

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

/* The communicator of a world of one rank whose buffers only `copy` can move
 * (device memory): an out-of-place collective calls copy(ctx, dst, src,
 * bytes) once, with dst and src not overlapping; in place nothing is called.
 * The copy is ordered as the caller's copy orders it (a device's copy runs on
 * its compute stream, so wait() has nothing left to do). */
typedef void (*ms_comm_copy_fn)(void *ctx, void *dst, const void *src, int64_t bytes);
ms_status ms_comm_single_with_copy(ms_comm_copy_fn copy, void *ctx, ms_comm **out);

/* The NCCL communicator of world w over the GPU of device d (a started CUDA
 * device), within timeout_ms (also every later deadline; the rendezvous of
 * w->rendezvous_ms does not apply: `host` has met already). Rank 0 makes the
 * NCCL unique id and broadcasts it over `host`, a communicator of the same
 * world over host buffers (NULL allowed at world 1); each rank's GPU must be
 * GPU local_rank (modulo the GPUs it sees: one per process under
 * CUDA_VISIBLE_DEVICES). NCCL (libnccl.so.2, or MS_NCCL_LIBRARY) is loaded
 * here, at run time: where it is absent this fails saying so. */
typedef struct ms_device ms_device;
ms_status ms_comm_nccl(const ms_world *w, ms_comm *host, ms_device *d, int32_t timeout_ms, ms_comm **out);

#endif
