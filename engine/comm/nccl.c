/*
 * comm/nccl.c — the communicator over GPU buffers: NCCL.
 *
 * NCCL is opened at run time with dlopen("libnccl.so.2") (MS_NCCL_LIBRARY
 * names another file), so a binary built with the CUDA backend runs where
 * NCCL is absent, and only a run that needs it fails, saying so. nccl.h gives
 * the types and the prototypes; the functions are looked up by name.
 *
 * Create: every rank loads NCCL and prepares its GPU (a stream of the highest
 * priority for the collectives, the requests' events); the ranks tell each
 * other over the host communicator whether that worked; rank 0 makes the
 * unique id and broadcasts it; each rank then creates a non-blocking NCCL
 * communicator (ncclCommInitRankConfig, blocking = 0) and polls it until it
 * is ready, or aborts it at the deadline.
 *
 * A collective (the semantics are in comm.h):
 *   compute stream:  ... work ... [ready]            ... (wait: waits on done) ...
 *   comm stream:                   waits on ready, [start], NCCL op, [done]
 * Requests form a ring in the order they start, the order the comm stream
 * runs them, so the host notices completions in that order (wait, progress,
 * drain, or when a slot of the ring is needed again) and adds the GPU time
 * between [start] and [done] to the counters. The deadline: the oldest
 * collective not done fails once it has been running on the GPU (its [start]
 * fired) for longer than timeout_ms; drain() also gives up when the compute
 * work before it does not finish within timeout_ms.
 *
 * Failure (an NCCL error, its asynchronous error, a CUDA error, a timeout):
 * ncclCommAbort, which also ends the kernels in flight, and the communicator
 * refuses further work, repeating the first failure, which names the
 * collective (#number), its bytes and NCCL's reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "core/clock.h"
#include "core/status.h"

#ifdef MS_HAVE_CUDA
#include <dlfcn.h>
#include <sched.h>
#include <time.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "device/cuda.h"
#include "device/device.h"

enum { N_REQS = 64 };   /* collectives in flight per communicator */

typedef struct nc nc;

struct ms_comm_req {
    nc *n;
    int32_t kind;
    uint32_t seq;           /* this communicator's collective number, from 1 */
    int64_t bytes;
    int held;               /* handed to the caller and not waited yet */
    int pending;            /* [done] not yet seen by the host */
    double t_running;       /* host time [start] was first seen fired; 0 before */
    cudaEvent_t ready;      /* on the compute stream: the inputs are written */
    cudaEvent_t start, done;/* on the comm stream, around the NCCL op */
};

struct nc {
    ms_comm c;
    /* NCCL, looked up in the library */
    void *lib;
    __typeof__(ncclGetVersion) *get_version;
    __typeof__(ncclGetUniqueId) *get_unique_id;
    __typeof__(ncclCommInitRankConfig) *init_rank_config;
    __typeof__(ncclCommGetAsyncError) *get_async_error;
    __typeof__(ncclCommAbort) *abort;
    __typeof__(ncclCommFinalize) *finalize;
    __typeof__(ncclCommDestroy) *destroy;
    __typeof__(ncclGetErrorString) *error_string;
    __typeof__(ncclGetLastError) *last_error;   /* NULL before NCCL 2.13 */
    __typeof__(ncclAllGather) *all_gather;
    __typeof__(ncclReduceScatter) *reduce_scatter;
    __typeof__(ncclAllReduce) *all_reduce;
    __typeof__(ncclBroadcast) *broadcast;
    ncclComm_t comm;
    /* the GPU */
    int gpu;
    cudaStream_t compute;   /* the device's stream (not ours) */
    const ms_device *dev;   /* whose stream it is: a device that failed is not waited for at the end */
    cudaStream_t stream;    /* the collectives' */
    float *scratch;         /* (1) device float: the barrier's all-reduce */
    /* requests: a ring, slot = seq % N_REQS */
    uint32_t seq, seen;     /* collectives started; the newest whose completion the host saw */
    ms_comm_req reqs[N_REQS];
    int events;             /* how many requests have their events */
    int failed;
    char failure[1024];
    char provider[32];
};

/* --------------------------------------------------------------------------
 * Failure
 * -------------------------------------------------------------------------- */

static void abort_comm(nc *n) {
    if (n->comm) n->abort(n->comm);
    n->comm = NULL;
}

static ms_status aborted(nc *n, ms_status st) {
    abort_comm(n);
    return st;
}

/* Latches the failure (later calls refuse, repeating it) and aborts NCCL's
 * communicator, after the message is made (it may ask NCCL for details). */
#define fail(n, st, ...) aborted(n, ms_comm_latch((n)->failure, sizeof (n)->failure, &(n)->failed, st, __VA_ARGS__))

static ms_status refuse_if_failed(nc *n, const char *what) {
    if (!n->failed) return MS_OK;
    return ms_fail(MS_ERR_STATE, "%s: the NCCL communicator failed earlier (%s); create a new one", what, n->failure);
}

/* NCCL's reason for r, with its last error message when it has one. */
static const char *why(nc *n, ncclResult_t r, char *buf, size_t len) {
    const char *last = n->last_error ? n->last_error(n->comm) : NULL;
    snprintf(buf, len, "%s%s%s", n->error_string(r), last && *last ? "; NCCL: " : "", last && *last ? last : "");
    return buf;
}

static const char *req_name(const ms_comm_req *q, char *buf, size_t len) {
    snprintf(buf, len, "%s #%u (%lld bytes)", ms_comm_kind_name(q->kind), q->seq, (long long)q->bytes);
    return buf;
}

static void pause_briefly(long *spins) {
    if (++*spins < 1000) {
        sched_yield();
    } else {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000};
        nanosleep(&ts, NULL);
    }
}

/* The result of an NCCL call once the non-blocking communicator has settled:
 * ncclInProgress means polling its asynchronous state until it is something
 * else, or the deadline passes (then ncclInProgress). */
static ncclResult_t settle(nc *n, ncclResult_t r, double deadline) {
    long spins = 0;
    while (r == ncclInProgress) {
        if (ms_now() > deadline) return ncclInProgress;
        pause_briefly(&spins);
        ncclResult_t state = ncclSuccess;
        ncclResult_t q = n->get_async_error(n->comm, &state);
        r = q != ncclSuccess ? q : state;
    }
    return r;
}

/* --------------------------------------------------------------------------
 * Completion: noticing it, waiting for it, the deadline
 * -------------------------------------------------------------------------- */

static ms_comm_req *slot_of(nc *n, uint32_t seq) { return &n->reqs[seq % N_REQS]; }

/* The oldest collective not seen done (NULL: none). */
static ms_comm_req *head(nc *n) { return n->seen == n->seq ? NULL : slot_of(n, n->seen + 1); }

/* NCCL's asynchronous error (a peer that died, a network failure), blamed on the oldest collective in flight. */
static ms_status check_async(nc *n) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = n->get_async_error(n->comm, &state);
    if (r == ncclSuccess) r = state;
    if (r == ncclSuccess || r == ncclInProgress) return MS_OK;
    char reason[512], name[96] = "the communicator";
    ms_comm_req *q = head(n);
    if (q) req_name(q, name, sizeof name);
    return fail(n, MS_ERR_IO, "nccl: %s failed (rank %d of %d, GPU %d): %s", name, n->c.rank, n->c.world, n->gpu,
                why(n, r, reason, sizeof reason));
}

/* A CUDA query's answer: 1 fired, 0 not yet, -1 failed (latched). */
static int fired(nc *n, cudaEvent_t ev, const ms_comm_req *q, const char *what) {
    cudaError_t e = cudaEventQuery(ev);
    if (e == cudaSuccess) return 1;
    if (e == cudaErrorNotReady) {
        (void)cudaGetLastError();   /* "not ready" is no error: leave none behind for the device's checks */
        return 0;
    }
    char name[96];
    fail(n, MS_ERR_IO, "nccl: %s: querying its %s event failed: %s", req_name(q, name, sizeof name), what,
         cudaGetErrorString(e));
    return -1;
}

/* Notices the collectives that completed, oldest first, and counts their GPU
 * time; fails the oldest one still running past the deadline. Never blocks. */
static ms_status observe(nc *n) {
    if (n->failed) return ms_fail(MS_ERR_IO, "%s", n->failure);
    TRY(check_async(n));
    ms_comm_req *q;
    while ((q = head(n)) != NULL) {
        int done = fired(n, q->done, q, "completion");
        if (done < 0) return ms_fail(MS_ERR_IO, "%s", n->failure);
        if (done) {
            float ms = 0;
            if (cudaEventElapsedTime(&ms, q->start, q->done) == cudaSuccess) n->c.stats.seconds[q->kind] += ms / 1000.0;
            else (void)cudaGetLastError();
            q->pending = 0;
            n->seen++;
            continue;
        }
        double now = ms_now();
        if (q->t_running == 0) {
            int started = fired(n, q->start, q, "start");
            if (started < 0) return ms_fail(MS_ERR_IO, "%s", n->failure);
            if (started) q->t_running = now;
        } else if (now - q->t_running > n->c.timeout_ms / 1000.0) {
            char name[96];
            return fail(n, MS_ERR_IO,
                        "nccl: %s did not complete in %.1f s on the GPU (rank %d of %d, GPU %d); another rank may "
                        "have died, be stuck, or not have started it",
                        req_name(q, name, sizeof name), now - q->t_running, n->c.rank, n->c.world, n->gpu);
        }
        break;
    }
    return MS_OK;
}

/* Blocks the host until collective `seq` (and every one before it) completed. */
static ms_status complete_through(nc *n, uint32_t seq) {
    double since = ms_now();
    uint32_t last_seen = n->seen;
    long spins = 0;
    for (;;) {
        TRY(observe(n));
        if ((int32_t)(n->seen - seq) >= 0) return MS_OK;
        ms_comm_req *q = head(n);
        double now = ms_now();
        if (n->seen != last_seen || q->t_running != 0) {
            last_seen = n->seen;
            since = now;
            spins = 0;
        } else if (now - since > n->c.timeout_ms / 1000.0) {
            char name[96];
            return fail(n, MS_ERR_IO,
                        "nccl: %s has not started on the GPU after %.1f s (rank %d of %d, GPU %d): the work before it "
                        "on the compute stream did not finish",
                        req_name(q, name, sizeof name), now - since, n->c.rank, n->c.world, n->gpu);
        }
        pause_briefly(&spins);
    }
}

static ms_status nc_drain(ms_comm *c) {
    if (!c) return ms_fail(MS_ERR_INVALID, "drain: the communicator is NULL");
    nc *n = c->impl;
    return complete_through(n, n->seq);
}

static ms_status nc_progress(ms_comm *c) {
    if (!c) return ms_fail(MS_ERR_INVALID, "progress: the communicator is NULL");
    return observe(c->impl);
}

static ms_status nc_wait(ms_comm *c, ms_comm_req *q) {
    if (!q) return MS_OK;
    if (!c) return ms_fail(MS_ERR_INVALID, "wait: the communicator is NULL");
    nc *n = c->impl;
    if (q < n->reqs || q >= n->reqs + N_REQS || !q->held)
        return ms_fail(MS_ERR_INVALID, "wait: %p is not a request in flight on this communicator", (void *)q);
    q->held = 0;
    TRY(refuse_if_failed(n, "wait"));
    cudaError_t e = cudaStreamWaitEvent(n->compute, q->done, 0);
    if (e != cudaSuccess) {
        char name[96];
        return fail(n, MS_ERR_IO, "nccl: %s: ordering the compute stream after it failed: %s",
                    req_name(q, name, sizeof name), cudaGetErrorString(e));
    }
    return observe(n);
}

/* --------------------------------------------------------------------------
 * The collectives
 * -------------------------------------------------------------------------- */

/* The next slot of the ring: a slot whose collective is still running is
 * waited for (the host blocks, within the deadline); one the caller still
 * holds is an error. */
static ms_status take(nc *n, const char *what, ms_comm_req **out) {
    ms_comm_req *q = slot_of(n, n->seq + 1);
    if (q->held)
        return ms_fail(MS_ERR_STATE, "%s: %d collectives are in flight and the oldest (%s #%u) was never waited; "
                       "wait for requests before starting more", what, N_REQS, ms_comm_kind_name(q->kind), q->seq);
    if (q->pending) TRY(complete_through(n, q->seq));
    *out = q;
    return MS_OK;
}

static ncclDataType_t nccl_type(int kind, int32_t dtype) {
    if (kind == MS_COMM_BROADCAST) return ncclUint8;
    return dtype == MS_BF16 ? ncclBfloat16 : ncclFloat32;
}

/* Orders, enqueues and marks one collective; count 0 completes at once (NULL request). */
static ms_status start(nc *n, int kind, const void *send, void *recv, int64_t count, int32_t dtype, int32_t root,
                       ms_comm_req **out) {
    const char *what = ms_comm_kind_name(kind);
    TRY(refuse_if_failed(n, what));
    int64_t w = n->c.world;
    int64_t esize = kind == MS_COMM_BROADCAST ? 1 : ms_comm_elem_size(dtype);
    int64_t bytes = kind == MS_COMM_ALL_GATHER || kind == MS_COMM_REDUCE_SCATTER ? count * w * esize
                    : kind == MS_COMM_BARRIER                                    ? 0
                                                                                 : count * esize;
    if (count == 0) {
        n->c.stats.calls[kind]++;
        *out = NULL;
        return MS_OK;
    }
    TRY(observe(n));
    ms_comm_req *q = NULL;
    TRY(take(n, what, &q));
    q->n = n;
    q->kind = kind;
    q->seq = n->seq + 1;
    q->bytes = bytes;
    q->t_running = 0;
    char name[96], reason[512];
    req_name(q, name, sizeof name);
    cudaError_t e = cudaEventRecord(q->ready, n->compute);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(n->stream, q->ready, 0);
    if (e == cudaSuccess) e = cudaEventRecord(q->start, n->stream);
    if (e != cudaSuccess)
        return fail(n, MS_ERR_IO, "nccl: %s: ordering it after the compute stream failed: %s", name,
                    cudaGetErrorString(e));
    ncclDataType_t t = nccl_type(kind, dtype);
    size_t cnt = (size_t)count;
    ncclResult_t r = ncclSuccess;
    switch (kind) {
    case MS_COMM_ALL_GATHER: r = n->all_gather(send, recv, cnt, t, n->comm, n->stream); break;
    case MS_COMM_REDUCE_SCATTER: r = n->reduce_scatter(send, recv, cnt, t, ncclSum, n->comm, n->stream); break;
    case MS_COMM_ALL_REDUCE:
    case MS_COMM_BARRIER: r = n->all_reduce(send, recv, cnt, t, ncclSum, n->comm, n->stream); break;
    case MS_COMM_BROADCAST: r = n->broadcast(send, recv, cnt, t, root, n->comm, n->stream); break;
    }
    double deadline = ms_now() + n->c.timeout_ms / 1000.0;
    r = settle(n, r, deadline);
    if (r == ncclInProgress)
        return fail(n, MS_ERR_IO, "nccl: %s: NCCL did not take it in %.1f s (rank %d of %d)", name,
                    n->c.timeout_ms / 1000.0, n->c.rank, n->c.world);
    if (r != ncclSuccess)
        return fail(n, MS_ERR_IO, "nccl: %s failed (rank %d of %d, GPU %d): %s", name, n->c.rank, n->c.world, n->gpu,
                    why(n, r, reason, sizeof reason));
    e = cudaEventRecord(q->done, n->stream);
    if (e != cudaSuccess)
        return fail(n, MS_ERR_IO, "nccl: %s: recording its completion failed: %s", name, cudaGetErrorString(e));
    n->seq = q->seq;
    q->pending = 1;
    q->held = 1;
    n->c.stats.calls[kind]++;
    n->c.stats.bytes[kind] += bytes;
    *out = q;
    return MS_OK;
}

static ms_status nc_all_gather(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                               ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_ALL_GATHER, send, recv, count, dtype, req));
    return start(c->impl, MS_COMM_ALL_GATHER, send, recv, count, dtype, 0, req);
}

static ms_status nc_reduce_scatter(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                   ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_REDUCE_SCATTER, send, recv, count, dtype, req));
    return start(c->impl, MS_COMM_REDUCE_SCATTER, send, recv, count, dtype, 0, req);
}

static ms_status nc_all_reduce(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                               ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_ALL_REDUCE, send, recv, count, dtype, req));
    return start(c->impl, MS_COMM_ALL_REDUCE, send, recv, count, dtype, 0, req);
}

static ms_status nc_broadcast(ms_comm *c, void *buf, int64_t bytes, int32_t root, ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_BROADCAST, buf, buf, bytes, MS_F32, req));
    if (root < 0 || root >= c->world)
        return ms_fail(MS_ERR_INVALID, "broadcast: root %d is not a rank of a world of %d", root, c->world);
    return start(c->impl, MS_COMM_BROADCAST, buf, buf, bytes, MS_F32, root, req);
}

/* An all-reduce of one float, after the compute stream's work; the host waits for it. */
static ms_status nc_barrier(ms_comm *c) {
    if (!c) return ms_fail(MS_ERR_INVALID, "barrier: the communicator is NULL");
    nc *n = c->impl;
    ms_comm_req *q = NULL;
    TRY(start(n, MS_COMM_BARRIER, n->scratch, n->scratch, 1, MS_F32, 0, &q));
    q->held = 0;
    return complete_through(n, q->seq);
}

/* --------------------------------------------------------------------------
 * Create and destroy
 * -------------------------------------------------------------------------- */

static void release_gpu(nc *n) {
    for (int i = 0; i < n->events; i++) {
        cudaEventDestroy(n->reqs[i].ready);
        cudaEventDestroy(n->reqs[i].start);
        cudaEventDestroy(n->reqs[i].done);
    }
    n->events = 0;
    /* after a failure the GPU may still be busy: cudaFree would wait for it, so
       the four bytes stay to the end of the process */
    if (n->scratch && !n->failed) cudaFree(n->scratch);
    n->scratch = NULL;
    if (n->stream) cudaStreamDestroy(n->stream);
    n->stream = NULL;
}

static void nc_destroy(ms_comm *c) {
    if (!c) return;
    nc *n = c->impl;
    cudaSetDevice(n->gpu);
    /* a clean end waits for what is in flight; after a failure here or on the
       device (the others may never match this rank's collectives) it aborts */
    if (!n->failed && n->comm && (!n->dev || ms_cuda_status(n->dev) == MS_OK) && nc_drain(c) == MS_OK) {
        ncclResult_t r = settle(n, n->finalize(n->comm), ms_now() + c->timeout_ms / 1000.0);
        if (r == ncclSuccess) {
            n->destroy(n->comm);
            n->comm = NULL;
        }
    }
    abort_comm(n);   /* whatever did not end cleanly */
    release_gpu(n);
    free(n);
}

static ms_status load_library(nc *n) {
    const char *name = getenv("MS_NCCL_LIBRARY");   /* another NCCL, by name or path */
    int from_env = name && *name;
    if (!from_env) name = "libnccl.so.2";
    n->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!n->lib)
        return ms_fail(MS_ERR_IO,
                       "NCCL (%s%s) could not be loaded: %s; install NCCL (the libnccl2 package, or the CUDA "
                       "toolkit's) or put its folder on LD_LIBRARY_PATH%s",
                       name, from_env ? ", from MS_NCCL_LIBRARY" : "", dlerror(),
                       from_env ? ", or unset MS_NCCL_LIBRARY" : ", or set MS_NCCL_LIBRARY to its path");
    struct { const char *name; void **fn; int optional; } syms[] = {
        {"ncclGetVersion", (void **)&n->get_version, 0},
        {"ncclGetUniqueId", (void **)&n->get_unique_id, 0},
        {"ncclCommInitRankConfig", (void **)&n->init_rank_config, 0},
        {"ncclCommGetAsyncError", (void **)&n->get_async_error, 0},
        {"ncclCommAbort", (void **)&n->abort, 0},
        {"ncclCommFinalize", (void **)&n->finalize, 0},
        {"ncclCommDestroy", (void **)&n->destroy, 0},
        {"ncclGetErrorString", (void **)&n->error_string, 0},
        {"ncclGetLastError", (void **)&n->last_error, 1},
        {"ncclAllGather", (void **)&n->all_gather, 0},
        {"ncclReduceScatter", (void **)&n->reduce_scatter, 0},
        {"ncclAllReduce", (void **)&n->all_reduce, 0},
        {"ncclBroadcast", (void **)&n->broadcast, 0},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].fn = dlsym(n->lib, syms[i].name);
        if (!*syms[i].fn && !syms[i].optional)
            return ms_fail(MS_ERR_IO, "NCCL (%s) has no %s: it is not an NCCL this build can use (2.14 or newer)",
                           name, syms[i].name);
    }
    int v = 0;
    n->get_version(&v);
    int major = v / 10000, minor = v / 100 % 100, patch = v % 100;
    if (v < 21400)
        return ms_fail(MS_ERR_IO, "NCCL %d.%d.%d (%s) is too old: the communicator needs 2.14 or newer "
                       "(non-blocking communicators)", major, minor, patch, name);
    snprintf(n->provider, sizeof n->provider, "nccl %d.%d.%d", major, minor, patch);
    return MS_OK;
}

/* This rank's GPU: the device's, which must be GPU local_rank of those the process sees. */
static ms_status use_device(nc *n, const ms_world *w, ms_device *d) {
    if (!d || d->kind != MS_DEVICE_CUDA)
        return ms_fail(MS_ERR_INVALID, "the NCCL communicator works on a CUDA device's buffers; got the %s device",
                       d && d->name ? d->name : "NULL");
    n->dev = d;
    n->compute = (cudaStream_t)ms_cuda_compute_stream(d);
    if (!n->compute)
        return ms_fail(MS_ERR_STATE, "the NCCL communicator needs a started CUDA device; start() it first");
    n->gpu = ms_cuda_gpu(d);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        (void)cudaGetLastError();
        return ms_fail(MS_ERR_STATE, "nccl: the process sees no GPU (%s)", cudaGetErrorString(e));
    }
    int want = w->local_rank % count;
    if (n->gpu != want)
        return ms_fail(MS_ERR_INVALID,
                       "nccl: rank %d (local rank %d) runs on GPU %d, but each local rank needs a GPU of its own: "
                       "local rank %d takes GPU %d of the %d this process sees (ms_cuda_use_gpu before start)",
                       w->rank, w->local_rank, n->gpu, w->local_rank, want, count);
    int lo = 0, hi = 0;   /* hi: the highest priority (the smallest number) */
    e = cudaSetDevice(n->gpu);
    if (e == cudaSuccess) e = cudaDeviceGetStreamPriorityRange(&lo, &hi);
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&n->stream, cudaStreamNonBlocking, hi);
    if (e == cudaSuccess) e = cudaMalloc((void **)&n->scratch, sizeof(float));
    if (e == cudaSuccess) e = cudaMemsetAsync(n->scratch, 0, sizeof(float), n->stream);
    for (; e == cudaSuccess && n->events < N_REQS; n->events++) {
        ms_comm_req *q = &n->reqs[n->events];
        e = cudaEventCreateWithFlags(&q->ready, cudaEventDisableTiming);
        if (e == cudaSuccess) e = cudaEventCreate(&q->start);
        if (e == cudaSuccess) e = cudaEventCreate(&q->done);
        if (e != cudaSuccess) break;   /* the partial set is not counted: destroy the ones made */
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (n->events < N_REQS) {
            ms_comm_req *q = &n->reqs[n->events];
            if (q->ready) cudaEventDestroy(q->ready);
            if (q->start) cudaEventDestroy(q->start);
        }
        return ms_fail(MS_ERR_STATE, "nccl: preparing GPU %d (a stream, %d events, 4 bytes) failed: %s", n->gpu,
                       3 * N_REQS, cudaGetErrorString(e));
    }
    return MS_OK;
}

/* Every rank's local preparation worked (over the host communicator), or the error names the ranks it did not. */
static ms_status agree(ms_comm *host, int ok) {
    int32_t mine = ok, all[64], *every = host->world <= 64 ? all : calloc((size_t)host->world, sizeof(int32_t));
    if (!every) return ms_fail(MS_ERR_NOMEM, "nccl: out of memory");
    ms_comm_req *q = NULL;
    ms_status st = host->all_gather(host, &mine, every, 1, MS_F32, &q);   /* 4 bytes each, copied as they are */
    if (st == MS_OK) st = host->wait(host, q);
    char bad[256] = "";
    int n_bad = 0;
    for (int32_t r = 0; r < host->world && st == MS_OK; r++) {
        if (every[r] || r == host->rank) continue;
        size_t used = strlen(bad);
        if (n_bad++ < 8) snprintf(bad + used, sizeof bad - used, "%s%d", used ? ", " : "", r);
    }
    if (every != all) free(every);
    TRY(st);
    if (ok && n_bad)
        return ms_fail(MS_ERR_STATE, "nccl: rank%s %s%s could not prepare NCCL (%s error%s say%s why)",
                       n_bad > 1 ? "s" : "", bad, n_bad > 8 ? ", ..." : "", n_bad > 1 ? "their" : "its",
                       n_bad > 1 ? "s" : "", n_bad > 1 ? "" : "s");
    return MS_OK;
}

static ms_status setup(nc *n, const ms_world *w, ms_comm *host, ms_device *d) {
    ms_status local = load_library(n);
    if (local == MS_OK) local = use_device(n, w, d);
    if (host) {
        /* the others must hear of a failure here, or they would wait for this rank until their deadline */
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", ms_last_error());
        TRY(agree(host, local == MS_OK));
        if (local != MS_OK) return ms_fail(local, "%s", saved);
    }
    TRY(local);
    struct { int32_t ok; ncclUniqueId id; } rec;   /* rank 0's unique id, or why there is none */
    memset(&rec, 0, sizeof rec);
    char reason[512];
    if (w->rank == 0) {
        ncclResult_t r = n->get_unique_id(&rec.id);
        rec.ok = r == ncclSuccess;
        if (!rec.ok && !host)
            return ms_fail(MS_ERR_IO, "nccl: ncclGetUniqueId failed: %s", why(n, r, reason, sizeof reason));
        if (!rec.ok) why(n, r, reason, sizeof reason);
    }
    if (host) {
        ms_comm_req *q = NULL;
        TRY(host->broadcast(host, &rec, (int64_t)sizeof rec, 0, &q));
        TRY(host->wait(host, q));
        if (!rec.ok)
            return ms_fail(MS_ERR_IO, "nccl: rank 0 could not make NCCL's unique id%s%s", w->rank == 0 ? ": " : "",
                           w->rank == 0 ? reason : " (its error says why)");
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    double t0 = ms_now();
    ncclResult_t r = n->init_rank_config(&n->comm, w->world, rec.id, w->rank, &config);
    r = settle(n, r, t0 + n->c.timeout_ms / 1000.0);
    if (r == ncclInProgress)
        return ms_fail(MS_ERR_IO,
                       "nccl: creating the communicator did not finish in %.1f s (rank %d of %d, GPU %d): a rank did "
                       "not reach it or cannot reach the others (NCCL_DEBUG=INFO shows where it stopped)",
                       ms_now() - t0, w->rank, w->world, n->gpu);
    if (r != ncclSuccess)
        return ms_fail(MS_ERR_IO, "nccl: creating the communicator failed (rank %d of %d, GPU %d): %s", w->rank,
                       w->world, n->gpu, why(n, r, reason, sizeof reason));
    return MS_OK;
}

static ms_status create(const ms_world *w, ms_comm *host, ms_device *d, int32_t timeout_ms, ms_comm **out) {
    nc *n = calloc(1, sizeof *n);
    if (!n) return ms_fail(MS_ERR_NOMEM, "nccl: out of memory");
    n->c = (ms_comm){.name = "nccl", .rank = w->rank, .world = w->world, .timeout_ms = timeout_ms, .impl = n,
                     .all_gather = nc_all_gather, .reduce_scatter = nc_reduce_scatter, .all_reduce = nc_all_reduce,
                     .broadcast = nc_broadcast, .barrier = nc_barrier, .wait = nc_wait, .destroy = nc_destroy,
                     .provider = n->provider, .progress = nc_progress, .drain = nc_drain};
    snprintf(n->provider, sizeof n->provider, "nccl");
    ms_status st = setup(n, w, host, d);
    if (st != MS_OK) {
        ms_fail_context(st, "creating the NCCL communicator (rank %d of %d)", w->rank, w->world);
        if (n->lib && n->comm) abort_comm(n);
        release_gpu(n);
        free(n);
        return st;
    }
    *out = &n->c;
    return MS_OK;
}

#else

static ms_status create(const ms_world *w, ms_comm *host, ms_device *d, int32_t timeout_ms, ms_comm **out) {
    (void)w, (void)host, (void)d, (void)timeout_ms, (void)out;
    return ms_fail(MS_ERR_STATE, "the NCCL communicator: this moonspeed was built without the CUDA backend (nvcc "
                   "was not found); rebuild where the CUDA toolkit is installed");
}

#endif

ms_status ms_comm_nccl(const ms_world *w, ms_comm *host, ms_device *d, int32_t timeout_ms, ms_comm **out) {
    if (!out) return ms_fail(MS_ERR_INVALID, "ms_comm_nccl: out is NULL");
    *out = NULL;
    if (!w || w->world < 1 || w->rank < 0 || w->rank >= w->world)
        return ms_fail(MS_ERR_INVALID, "ms_comm_nccl: the world is missing or its rank is outside it");
    if (timeout_ms <= 0) return ms_fail(MS_ERR_INVALID, "ms_comm_nccl: timeout_ms %d is not positive", timeout_ms);
    if (!host && w->world > 1)
        return ms_fail(MS_ERR_INVALID, "ms_comm_nccl: a world of %d needs a host communicator to hand out NCCL's "
                       "unique id", w->world);
    if (host && (host->world != w->world || host->rank != w->rank))
        return ms_fail(MS_ERR_INVALID, "ms_comm_nccl: the host communicator is rank %d of %d, the world rank %d of %d",
                       host->rank, host->world, w->rank, w->world);
    return create(w, host, d, timeout_ms, out);
}
