/*
 * device/cuda.c — the CUDA backend: one stream, cuBLASLt matmuls, and the
 * kernels of kernels/cuda for everything else.
 *
 * Act buffers hold real bf16 (2 bytes) under bf16 precision and fp32 otherwise.
 * Matmuls take act inputs and accumulate in fp32 (CUBLAS_COMPUTE_32F: no TF32,
 * so the fp32 mode matches the CPU to ~1e-6); parameter gradients and logits
 * are fp32 outputs of bf16 inputs; cuBLASLt's descriptors and algorithm are
 * chosen once per shape and kept (see `plans`). Memory is plain cudaMalloc,
 * host memory is pinned and mapped (cudaHostAlloc), so the device reaches it
 * in place and every copy says cudaMemcpyDefault. The backend's own scratch
 * (cuBLASLt workspace, sum partials, and one region shared by attention's
 * D_t, the per-row losses and the deterministic reductions of embedding and
 * RMSNorm backward; cuda.h lays it out) is not the backend's to allocate: the
 * plan counts it (ms_cuda_scratch_bytes), the engine reserves it with the
 * rest and hands it over (scratch_use); an op asking for more than planned
 * fails saying so, nothing grows mid-run. Every CUDA/cuBLAS status is
 * checked: the first failure is latched (cuda.h) and turns later ops into
 * no-ops.
 */
#ifdef MS_HAVE_CUDA
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "cpu/kernels.h"
#include "cuda/kernels.h"
#include "device/cuda.h"

#define WORKSPACE_BYTES ((size_t)MS_CUDA_WORKSPACE_BYTES)
#define SUM_BLOCKS MS_CUDA_SUM_BLOCKS
#define GEMM_PLANS 96
#define TICKETS 1024
#define PROF_RING 4096 /* ops timed but not yet read back */

/* Op timing (profile): each op on the compute stream between two events,
 * read back lazily (the ring is drained as it fills and at the end) and
 * summed by name; the window's own two events give its length, so what the
 * ops do not cover is the stream idle: waiting for the host, a copy or a
 * collective. */
typedef struct prof_slot {
    cudaEvent_t start, end;
    int op;
} prof_slot;

typedef struct prof_state {
    prof_slot ring[PROF_RING];
    int64_t head, tail;              /* slots recorded / read back */
    cudaEvent_t from, to;            /* the window */
    ms_op_table sums;
} prof_state;

/* One matmul shape's cuBLASLt descriptors and chosen algorithm. */
typedef struct gemm_plan {
    int64_t key[12];
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

typedef struct cuda_impl {
    int device;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    /* the planned scratch (scratch_use), in the order of cuda.h */
    void *scratch;
    int64_t scratch_bytes;
    void *workspace;      /* (WORKSPACE_BYTES) cuBLASLt's */
    double *sums;         /* (SUM_BLOCKS + 1) device doubles: partials, result */
    void *ops;            /* (ops_bytes) one op's call at a time */
    int64_t ops_bytes;
    double *host_sum;     /* pinned */
    gemm_plan plans[GEMM_PLANS]; /* per shape, filled on first use */
    int n_plans, next_evict;
    /* copies beside the compute: a stream each way, and a ring of events (a
       ticket's event is ring[ticket % TICKETS]; a ticket older than the ring
       waits on a later copy of its stream, which is later still: safe) */
    cudaStream_t down, up;
    cudaEvent_t ring[TICKETS], fence;
    int64_t tickets;
    pthread_mutex_t mu;
    prof_state *prof;     /* while a profile runs, else NULL */
    ms_status err;
} cuda_impl;

static cuda_impl *impl_of(const ms_device *d) { return (cuda_impl *)d->impl; }

static void latch(ms_device *d, ms_status st) {
    cuda_impl *c = impl_of(d);
    if (c && c->err == MS_OK) c->err = st;
}

/* Check a CUDA runtime status; on failure latch and return nonzero. */
static int cuda_bad(ms_device *d, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    latch(d, ms_fail(MS_ERR_INTERNAL, "cuda: %s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e)));
    return 1;
}

static int lt_bad(ms_device *d, cublasStatus_t e, const char *what) {
    if (e == CUBLAS_STATUS_SUCCESS) return 0;
    latch(d, ms_fail(MS_ERR_INTERNAL, "cuda: cuBLASLt %s failed: status %d", what, (int)e));
    return 1;
}

#define LIVE(d) (impl_of(d) && impl_of(d)->err == MS_OK && impl_of(d)->stream)
#define KCHECK(d, call, what) ((void)cuda_bad(d, (cudaError_t)(call), what))

ms_status ms_cuda_status(const ms_device *d) { return impl_of(d) ? impl_of(d)->err : MS_OK; }

/* ---- op timing (profile) ---------------------------------------------------- */

static prof_state *prof_of(const ms_device *d) { return LIVE(d) ? impl_of(d)->prof : NULL; }

/* Read back the oldest timed op, waiting for it, into its name's sum. */
static void prof_read(ms_device *d, prof_state *p) {
    prof_slot *s = &p->ring[p->tail++ % PROF_RING];
    float ms = 0;
    if (!cuda_bad(d, cudaEventSynchronize(s->end), "profile: waiting for an op's end") &&
        !cuda_bad(d, cudaEventElapsedTime(&ms, s->start, s->end), "profile: an op's time"))
        ms_op_table_add(&p->sums, s->op, 1e-3 * ms);
}

static void prof_begin(ms_device *d) {
    prof_state *p = prof_of(d);
    if (!p) return;
    if (p->head - p->tail == PROF_RING) prof_read(d, p);
    cuda_bad(d, cudaEventRecord(p->ring[p->head % PROF_RING].start, impl_of(d)->stream), "profile: event record");
}

static void prof_end(ms_device *d, const char *name) {
    prof_state *p = prof_of(d);
    if (!p) return;
    prof_slot *s = &p->ring[p->head % PROF_RING];
    s->op = ms_op_table_slot(&p->sums, name);
    if (!cuda_bad(d, cudaEventRecord(s->end, impl_of(d)->stream), "profile: event record")) p->head++;
}

static void prof_free(prof_state *p) {
    for (int i = 0; i < PROF_RING; i++) {
        if (p->ring[i].start) cudaEventDestroy(p->ring[i].start);
        if (p->ring[i].end) cudaEventDestroy(p->ring[i].end);
    }
    if (p->from) cudaEventDestroy(p->from);
    if (p->to) cudaEventDestroy(p->to);
    free(p);
}

static int profile(ms_device *d, int on, ms_op_time *out, int max, double *window) {
    cuda_impl *c = impl_of(d);
    if (!LIVE(d)) return -1;
    if (on) {
        if (c->prof) return 0;
        prof_state *p = calloc(1, sizeof *p);
        if (!p) {
            latch(d, ms_fail(MS_ERR_NOMEM, "cuda: no host memory for a profile (%zu bytes)", sizeof *p));
            return -1;
        }
        int bad = cuda_bad(d, cudaEventCreate(&p->from), "profile: event create") ||
                  cuda_bad(d, cudaEventCreate(&p->to), "profile: event create");
        for (int i = 0; i < PROF_RING && !bad; i++)
            bad = cuda_bad(d, cudaEventCreate(&p->ring[i].start), "profile: event create") ||
                  cuda_bad(d, cudaEventCreate(&p->ring[i].end), "profile: event create");
        if (bad || cuda_bad(d, cudaEventRecord(p->from, c->stream), "profile: event record")) {
            prof_free(p);
            return -1;
        }
        c->prof = p;
        return 0;
    }
    prof_state *p = c->prof;
    if (!p) return 0;
    float ms = 0;
    if (!cuda_bad(d, cudaEventRecord(p->to, c->stream), "profile: event record") &&
        !cuda_bad(d, cudaEventSynchronize(p->to), "profile: waiting for the window's end"))
        cuda_bad(d, cudaEventElapsedTime(&ms, p->from, p->to), "profile: the window's time");
    while (LIVE(d) && p->tail < p->head) prof_read(d, p);
    c->prof = NULL;
    int n = LIVE(d) ? ms_op_table_take(&p->sums, out, max) : -1;
    if (window) *window = 1e-3 * ms;
    prof_free(p);
    return n;
}

/* ---- memory --------------------------------------------------------------- */

static int64_t elem_bytes(const ms_device *d, int32_t dtype) {
    (void)d;
    return dtype == MS_BF16 ? 2 : 4;
}

static ms_status reserve(ms_device *d, int64_t bytes, void **out) {
    *out = NULL;
    if (bytes == 0) return MS_OK;
    cudaError_t e = cudaSetDevice(impl_of(d)->device);
    if (e == cudaSuccess) e = cudaMalloc(out, (size_t)bytes);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        *out = NULL;
        return ms_fail(MS_ERR_NOMEM, "cuda: could not reserve %lld bytes of GPU memory (%s; %lld of %lld bytes free)",
                       (long long)bytes, cudaGetErrorString(e), (long long)free_b, (long long)total_b);
    }
    return MS_OK;
}

static void release(ms_device *d, void *p) {
    if (p) cuda_bad(d, cudaFree(p), "cudaFree");
}

static ms_status host_reserve(ms_device *d, int64_t bytes, void **out) {
    (void)d;
    *out = NULL;
    if (bytes == 0) return MS_OK;
    cudaError_t e = cudaHostAlloc(out, (size_t)bytes, cudaHostAllocPortable | cudaHostAllocMapped);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *out = NULL;
        return ms_fail(MS_ERR_NOMEM, "cuda: could not reserve %lld bytes of pinned host memory (%s)",
                       (long long)bytes, cudaGetErrorString(e));
    }
    return MS_OK;
}

static void host_release(ms_device *d, void *p) {
    if (p) cuda_bad(d, cudaFreeHost(p), "cudaFreeHost");
}

static void upload(ms_device *d, void *dst, const void *src, int64_t n) {
    if (!LIVE(d) || n == 0) return;
    prof_begin(d);
    cuda_bad(d, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDefault, impl_of(d)->stream), "upload");
    prof_end(d, "upload");
}

/* The host sees the bytes when download returns. */
static void download(ms_device *d, void *dst, const void *src, int64_t n) {
    if (!LIVE(d) || n == 0) return;
    if (cuda_bad(d, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDefault, impl_of(d)->stream), "download"))
        return;
    cuda_bad(d, cudaStreamSynchronize(impl_of(d)->stream), "download (stream sync)");
}

static void copy(ms_device *d, void *dst, const void *src, int64_t n) {
    if (!LIVE(d) || n == 0) return;
    prof_begin(d);
    cuda_bad(d, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDefault, impl_of(d)->stream), "copy");
    prof_end(d, "copy");
}

static void zero(ms_device *d, void *p, int64_t n) {
    if (!LIVE(d) || n == 0) return;
    prof_begin(d);
    cuda_bad(d, cudaMemsetAsync(p, 0, (size_t)n, impl_of(d)->stream), "zero");
    prof_end(d, "zero");
}

static void sync(ms_device *d) {
    if (!LIVE(d)) return;
    cuda_bad(d, cudaStreamSynchronize(impl_of(d)->stream), "stream sync");
}

/* copy_async and ticket_wait serve other threads too (the offload's worker):
 * each makes the device's GPU its thread's, so that no thread of a rank
 * opens a context on another rank's GPU. */
static int64_t copy_async(ms_device *d, void *dst, const void *src, int64_t n, int how) {
    cuda_impl *c = impl_of(d);
    if (!LIVE(d) || n == 0) return 0;
    if (cuda_bad(d, cudaSetDevice(c->device), "set device (copy)")) return 0;
    pthread_mutex_lock(&c->mu);
    int64_t t = ++c->tickets;
    cudaStream_t s = how == MS_COPY_DOWN ? c->down : c->up;
    if (how != MS_COPY_UP && !cuda_bad(d, cudaEventRecord(c->fence, c->stream), "event record (fence)"))
        cuda_bad(d, cudaStreamWaitEvent(s, c->fence, 0), "stream wait (fence)");
    if (!cuda_bad(d, cudaMemcpyAsync(dst, src, (size_t)n, cudaMemcpyDefault, s), "copy beside the compute"))
        cuda_bad(d, cudaEventRecord(c->ring[t % TICKETS], s), "event record (ticket)");
    pthread_mutex_unlock(&c->mu);
    return t;
}

static void ticket_wait(ms_device *d, int64_t t) {
    if (!LIVE(d) || t <= 0 || cuda_bad(d, cudaSetDevice(impl_of(d)->device), "set device (copy wait)")) return;
    cuda_bad(d, cudaEventSynchronize(impl_of(d)->ring[t % TICKETS]), "waiting for a copy");
}

static void ticket_order(ms_device *d, int64_t t) {
    if (!LIVE(d) || t <= 0) return;
    cuda_impl *c = impl_of(d);
    pthread_mutex_lock(&c->mu); /* the worker may be recording into the ring */
    cuda_bad(d, cudaStreamWaitEvent(c->stream, c->ring[t % TICKETS], 0), "stream wait (ticket)");
    pthread_mutex_unlock(&c->mu);
}

/* Whether the planned scratch was handed over; if not, latch why op cannot run. */
static int has_scratch(ms_device *d, const char *op) {
    cuda_impl *c = impl_of(d);
    if (c->scratch) return 1;
    latch(d, ms_fail(MS_ERR_STATE, "cuda: %s needs the backend's scratch (at least %lld bytes of cuBLASLt workspace "
                     "and sums), and none was handed to the device: reserve scratch_bytes() and pass it to "
                     "scratch_use() after start()", op, (long long)(cuda_align256(MS_CUDA_WORKSPACE_BYTES) +
                                                                       ms_cuda_sums_bytes())));
    return 0;
}

/* The shared region of the scratch for one call of op; NULL, latched, when
 * the call needs more than was planned (nothing is ever allocated here). */
static void *scratch(ms_device *d, const char *op, int64_t bytes) {
    cuda_impl *c = impl_of(d);
    if (!has_scratch(d, op)) return NULL;
    if (bytes <= c->ops_bytes) return c->ops;
    latch(d, ms_fail(MS_ERR_NOMEM, "cuda: %s asks for %lld bytes of backend scratch, and the plan has %lld for one "
                     "op's call (of %lld in all): the backend scratch is planned for calls up to the micro-batch "
                     "shape the device was set up with (ms_device_shape); a larger call is a bug", op,
                     (long long)bytes, (long long)c->ops_bytes, (long long)c->scratch_bytes));
    return NULL;
}

/* The planned scratch, once, after start(): sliced as cuda.h says. */
static ms_status scratch_use(ms_device *d, void *base, int64_t bytes) {
    cuda_impl *c = impl_of(d);
    int64_t ws = cuda_align256(MS_CUDA_WORKSPACE_BYTES), fixed = ws + ms_cuda_sums_bytes();
    if (!base || bytes < fixed)
        return ms_fail(MS_ERR_INVALID, "cuda: the backend scratch must hold at least %lld bytes (cuBLASLt workspace "
                       "and sums), got %lld; size it with scratch_bytes()", (long long)fixed, (long long)bytes);
    if ((uintptr_t)base % 256)
        return ms_fail(MS_ERR_INVALID, "cuda: the backend scratch must start on a 256-byte boundary (got %p)", base);
    c->scratch = base;
    c->scratch_bytes = bytes;
    c->workspace = base;
    c->sums = (double *)((char *)base + ws);
    c->ops = (char *)base + fixed;
    c->ops_bytes = bytes - fixed;
    return MS_OK;
}

static ms_status start(ms_device *d) {
    cuda_impl *c = impl_of(d);
    cudaError_t e;
    if ((e = cudaSetDevice(c->device)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&c->down, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&c->up, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaEventCreateWithFlags(&c->fence, cudaEventDisableTiming)) != cudaSuccess ||
        (e = cudaMallocHost((void **)&c->host_sum, sizeof(double))) != cudaSuccess)
        return c->err = ms_fail(MS_ERR_STATE, "cuda: starting the backend on device %d: %s", c->device,
                                cudaGetErrorString(e));
    for (int i = 0; i < TICKETS; i++)
        if ((e = cudaEventCreateWithFlags(&c->ring[i], cudaEventDisableTiming)) != cudaSuccess)
            return c->err = ms_fail(MS_ERR_STATE, "cuda: creating copy events: %s", cudaGetErrorString(e));
    cublasStatus_t s = cublasLtCreate(&c->lt);
    if (s != CUBLAS_STATUS_SUCCESS)
        return c->err = ms_fail(MS_ERR_STATE, "cuda: cublasLtCreate failed: status %d", (int)s);
    return MS_OK;
}

static void stop(ms_device *d) {
    cuda_impl *c = impl_of(d);
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->prof) prof_free(c->prof);
    if (c->down) cudaStreamSynchronize(c->down);
    if (c->up) cudaStreamSynchronize(c->up);
    for (int i = 0; i < TICKETS; i++)
        if (c->ring[i]) cudaEventDestroy(c->ring[i]);
    if (c->fence) cudaEventDestroy(c->fence);
    for (int i = 0; i < c->n_plans; i++) {
        gemm_plan *g = &c->plans[i];
        cublasLtMatrixLayoutDestroy(g->lc);
        cublasLtMatrixLayoutDestroy(g->lb);
        cublasLtMatrixLayoutDestroy(g->la);
        cublasLtMatmulDescDestroy(g->op);
    }
    cudaFreeHost(c->host_sum);
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->down) cudaStreamDestroy(c->down);
    if (c->up) cudaStreamDestroy(c->up);
    pthread_mutex_destroy(&c->mu);
    free(c);
    d->impl = NULL;
}

/* ---- matmuls through cuBLASLt ---------------------------------------------- */

/* The plan of one shape: found in the table, or made (descriptors, heuristic)
 * and kept. NULL after a failure, latched. */
static gemm_plan *gemm_plan_for(ms_device *d, int ta, int tb, int64_t m, int64_t n, int64_t k, cudaDataType_t at,
                                int64_t lda, cudaDataType_t bt, int64_t ldb, cudaDataType_t ct, int64_t ldc) {
    cuda_impl *c = impl_of(d);
    int64_t key[12] = {ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc, 1};
    for (int i = 0; i < c->n_plans; i++)
        if (memcmp(c->plans[i].key, key, sizeof key) == 0) return &c->plans[i];
    /* a full table (generation grows T one token at a time) recycles its slots in turn */
    int slot = c->n_plans < GEMM_PLANS ? c->n_plans : c->next_evict;
    gemm_plan *g = &c->plans[slot];
    if (c->n_plans == GEMM_PLANS) {
        c->next_evict = (c->next_evict + 1) % GEMM_PLANS;
        cublasLtMatrixLayoutDestroy(g->lc);
        cublasLtMatrixLayoutDestroy(g->lb);
        cublasLtMatrixLayoutDestroy(g->la);
        cublasLtMatmulDescDestroy(g->op);
        c->n_plans--;
    }
    memset(g, 0, sizeof *g);
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    size_t ws = WORKSPACE_BYTES;
    cublasLtMatmulHeuristicResult_t h;
    int found = 0, ok = 0;
    if (lt_bad(d, cublasLtMatmulDescCreate(&g->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate") ||
        lt_bad(d, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "set TRANSA") ||
        lt_bad(d, cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "set TRANSB") ||
        lt_bad(d, cublasLtMatrixLayoutCreate(&g->la, at, ta ? k : m, ta ? m : k, lda), "layout A") ||
        lt_bad(d, cublasLtMatrixLayoutCreate(&g->lb, bt, tb ? n : k, tb ? k : n, ldb), "layout B") ||
        lt_bad(d, cublasLtMatrixLayoutCreate(&g->lc, ct, m, n, ldc), "layout C") ||
        lt_bad(d, cublasLtMatmulPreferenceCreate(&pref), "PreferenceCreate") ||
        lt_bad(d, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
               "set workspace") ||
        lt_bad(d, cublasLtMatmulAlgoGetHeuristic(c->lt, g->op, g->la, g->lb, g->lc, g->lc, pref, 1, &h, &found),
               "AlgoGetHeuristic"))
        goto done;
    if (found == 0) {
        latch(d, ms_fail(MS_ERR_INTERNAL, "cuda: cuBLASLt has no algorithm for a %lld x %lld x %lld matmul",
                         (long long)m, (long long)n, (long long)k));
        goto done;
    }
    g->algo = h.algo;
    memcpy(g->key, key, sizeof key);
    c->n_plans++;
    ok = 1;
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (!ok) {
        if (g->lc) cublasLtMatrixLayoutDestroy(g->lc);
        if (g->lb) cublasLtMatrixLayoutDestroy(g->lb);
        if (g->la) cublasLtMatrixLayoutDestroy(g->la);
        if (g->op) cublasLtMatmulDescDestroy(g->op);
        return NULL;
    }
    return g;
}

/* Column-major D (m, n) = op(A) op(B), plus C (D's layout; may be D itself) unless C is NULL; fp32 accumulation. */
static void gemm(ms_device *d, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a, cudaDataType_t at,
                 int64_t lda, const void *b, cudaDataType_t bt, int64_t ldb, void *dm, const void *cm, cudaDataType_t ct,
                 int64_t ldc) {
    if (!LIVE(d) || m == 0 || n == 0 || !has_scratch(d, "matmul")) return;
    cuda_impl *c = impl_of(d);
    float alpha = 1.0f, beta = cm ? 1.0f : 0.0f;
    if (k == 0) { /* D = C */
        size_t bytes = (size_t)(ldc * n * (ct == CUDA_R_32F ? 4 : 2));
        if (!cm) cuda_bad(d, cudaMemsetAsync(dm, 0, bytes, c->stream), "zero");
        else if (cm != dm) cuda_bad(d, cudaMemcpyAsync(dm, cm, bytes, cudaMemcpyDeviceToDevice, c->stream), "copy");
        return;
    }
    gemm_plan *g = gemm_plan_for(d, ta, tb, m, n, k, at, lda, bt, ldb, ct, ldc);
    if (!g) return;
    prof_begin(d);
    lt_bad(d, cublasLtMatmul(c->lt, g->op, &alpha, a, g->la, b, g->lb, &beta, cm ? cm : dm, g->lc, dm, g->lc,
                             &g->algo, c->workspace, WORKSPACE_BYTES, c->stream), "Matmul");
    if (c->prof) { /* named by its shape: m x n x k, the operands' transposes, an fp32 output, what it adds */
        char name[MS_OP_NAME];
        snprintf(name, sizeof name, "matmul %lldx%lldx%lld %c%c%s%s", (long long)m, (long long)n, (long long)k,
                 ta ? 'T' : 'N', tb ? 'T' : 'N', ct == CUDA_R_32F ? " f32" : "", !cm ? "" : cm == dm ? " +=" : " +C");
        prof_end(d, name);
    }
}

static cudaDataType_t act_t(const ms_device *d) { return d->bf16 ? CUDA_R_16BF : CUDA_R_32F; }

/* Row-major y (n, out) = x (n, in) W^T (+ add), W (out, in); y of type yt. */
static void linear(ms_device *d, void *y, cudaDataType_t yt, const void *x, const void *w, int64_t n, int in, int out,
                   const void *add) {
    gemm(d, 1, 0, out, n, in, w, act_t(d), in, x, act_t(d), in, y, add, yt, out);
}

static void matmul_fwd(ms_device *d, void *y, const void *x, const void *w, int64_t n, int in, int out,
                       const void *add) {
    linear(d, y, act_t(d), x, w, n, in, out, add);
}

/* dx (n, in) = or += dy (n, out) W; dW (out, in) = or += dy^T x. dy of type gt with row stride ldg. */
static void linear_bwd(ms_device *d, void *dx, float *dw, const void *dy, cudaDataType_t gt, int64_t ldg, const void *x,
                       const void *w, int64_t n, int in, int out, int acc_dx, int acc_dw) {
    if (dx) gemm(d, 0, 0, in, n, out, w, act_t(d), in, dy, gt, ldg, dx, acc_dx ? dx : NULL, act_t(d), in);
    if (dw) gemm(d, 0, 1, in, out, n, x, act_t(d), in, dy, gt, ldg, dw, acc_dw ? dw : NULL, CUDA_R_32F, in);
}

static void matmul_bwd(ms_device *d, void *dx, float *dw, const void *dy, const void *x, const void *w, int64_t n,
                       int in, int out, int acc, int acc_dw) {
    linear_bwd(d, dx, dw, dy, act_t(d), out, x, w, n, in, out, acc, acc_dw);
}

/* ---- kernels ------------------------------------------------------------------ */

#define S(d) ((ms_cuda_stream)impl_of(d)->stream)
#define RUN(d, what, call)                             \
    do {                                               \
        if (!LIVE(d)) return;                          \
        prof_begin(d);                                 \
        KCHECK(d, call, what);                         \
        prof_end(d, what);                             \
    } while (0)

static void embedding_fwd(ms_device *d, void *y, const int32_t *tokens, const void *table, int64_t n, int dim) {
    RUN(d, "embedding_fwd", cuda_embedding_fwd(S(d), d->bf16, y, tokens, table, n, dim));
}

static void embedding_bwd(ms_device *d, float *dtable, const void *dy, const int32_t *tokens, int64_t n, int dim) {
    if (!LIVE(d) || n == 0) return;
    void *scr = scratch(d, "embedding_bwd", cuda_embedding_bwd_scratch(n, dim));
    if (!scr) return;
    RUN(d, "embedding_bwd", cuda_embedding_bwd(S(d), d->bf16, dtable, dy, tokens, n, dim, scr));
}

static void rmsnorm_fwd(ms_device *d, void *y, float *rstd, const void *x, const void *w, int64_t n, int dim, float eps) {
    RUN(d, "rmsnorm_fwd", cuda_rmsnorm_fwd(S(d), d->bf16, y, rstd, x, w, n, dim, eps));
}

static void rmsnorm_bwd(ms_device *d, void *dx, float *dw, const void *dy, const void *x, const void *w,
                        const float *rstd, int64_t n, int dim, int acc_dw) {
    if (!LIVE(d) || n == 0) return;
    if (!acc_dw && dw) zero(d, dw, (int64_t)dim * 4); /* the kernel adds; dim floats */
    void *scr = scratch(d, "rmsnorm_bwd", cuda_rmsnorm_bwd_scratch(n, dim));
    if (!scr) return;
    RUN(d, "rmsnorm_bwd", cuda_rmsnorm_bwd(S(d), d->bf16, dx, dw, dy, x, w, rstd, n, dim, scr));
}

static void rope_fwd(ms_device *d, void *x, const float *cs, int64_t B, int T, int heads, int hd) {
    RUN(d, "rope_fwd", cuda_rope(S(d), d->bf16, x, cs, B, T, heads, hd, 1.0f));
}

static void rope_bwd(ms_device *d, void *dx, const float *cs, int64_t B, int T, int heads, int hd) {
    RUN(d, "rope_bwd", cuda_rope(S(d), d->bf16, dx, cs, B, T, heads, hd, -1.0f));
}

static void attention_fwd(ms_device *d, void *out, float *lse, const void *q, const void *k, const void *v,
                          const int32_t *doc_start, int B, int T, int H, int KV, int hd) {
    if (LIVE(d) && (hd > 128 || KV < 1 || H % KV)) {
        latch(d, ms_fail(MS_ERR_INVALID, "cuda: attention needs head_dim <= 128 and n_heads a multiple of "
                                         "n_kv_heads; got head_dim %d, %d heads, %d kv heads", hd, H, KV));
        return;
    }
    RUN(d, "attention_fwd", cuda_attention_fwd(S(d), d->bf16, out, lse, q, k, v, doc_start, B, T, H, KV, hd));
}

static void attention_bwd(ms_device *d, void *dq, void *dk, void *dv, const void *dout, const void *q, const void *k,
                          const void *v, const void *out, const float *lse, const int32_t *doc_start, int B, int T,
                          int H, int KV, int hd) {
    if (!LIVE(d)) return;
    void *work = scratch(d, "attention_bwd", cuda_attention_bwd_scratch(B, T, H, hd));
    if (!work) return;
    RUN(d, "attention_bwd",
        cuda_attention_bwd(S(d), d->bf16, dq, dk, dv, dout, q, k, v, out, lse, work, doc_start, B, T, H, KV, hd));
}

static void swiglu_fwd(ms_device *d, void *h, const void *gate, const void *up, int64_t n) {
    RUN(d, "swiglu_fwd", cuda_swiglu_fwd(S(d), d->bf16, h, gate, up, n));
}

static void swiglu_bwd(ms_device *d, void *dgate, void *dup, const void *dh, const void *gate, const void *up, int64_t n) {
    RUN(d, "swiglu_bwd", cuda_swiglu_bwd(S(d), d->bf16, dgate, dup, dh, gate, up, n));
}

/* Sum n device doubles in a fixed order and bring the sum to the host. */
static double sum_to_host(ms_device *d, const double *x, int64_t n) {
    cuda_impl *c = impl_of(d);
    if (cuda_bad(d, (cudaError_t)cuda_sum_doubles(S(d), c->sums + SUM_BLOCKS, x, n), "sum kernel") ||
        cuda_bad(d, cudaMemcpyAsync(c->host_sum, c->sums + SUM_BLOCKS, sizeof(double), cudaMemcpyDeviceToHost,
                                    c->stream), "download of a sum") ||
        cuda_bad(d, cudaStreamSynchronize(c->stream), "stream sync"))
        return NAN;
    return *c->host_sum;
}

/* Chunk by chunk: fp32 logits = x_c W^T (cuBLASLt), per-row loss and, with dx,
 * dlogits in place (bf16 under bf16, as the CPU rounds them), then
 * dx_c = dlogits W and dW += dlogits^T x_c (the first chunk overwrites dW
 * unless accumulate_dw). */
static double lmhead_xent(ms_device *d, void *dx, float *dw, float *logits, const void *x, const void *w,
                          const int32_t *targets, int64_t n, int dim, int vocab, int chunk, float grad_scale,
                          int acc_dw) {
    if (!LIVE(d)) return NAN;
    if (n == 0) return 0.0;
    double *loss = scratch(d, "lmhead_xent", n * (int64_t)sizeof(double));
    if (!loss) return NAN;
    int64_t ab = ms_act_bytes(d);
    int grad = dx != NULL, bfg = grad && d->bf16;
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int rows = (int)(n - r0 < chunk ? n - r0 : chunk);
        const char *xc = (const char *)x + r0 * dim * ab;
        linear(d, logits, CUDA_R_32F, xc, w, rows, dim, vocab, NULL);
        if (!LIVE(d)) return NAN;
        prof_begin(d);
        int bad = cuda_bad(d, (cudaError_t)cuda_xent_rows(S(d), logits, loss + r0, targets + r0, rows, vocab, grad,
                                                         bfg, grad_scale), "cross-entropy kernel");
        prof_end(d, "xent");
        if (bad) return NAN;
        if (grad)
            linear_bwd(d, (char *)dx + r0 * dim * ab, dw, logits, bfg ? CUDA_R_16BF : CUDA_R_32F,
                       bfg ? 2 * (int64_t)vocab : vocab, xc, w, rows, dim, vocab, 0, acc_dw || r0);
    }
    if (!LIVE(d)) return NAN;
    return sum_to_host(d, loss, n);
}

static void logits(ms_device *d, float *y, const void *x, const void *w, int64_t n, int dim, int vocab) {
    linear(d, y, CUDA_R_32F, x, w, n, dim, vocab, NULL);
}

/* The CPU formula on the host (fp32 as Hugging Face computes it), then uploaded. */
static void rope_table(ms_device *d, float *cs, int T, int hd, float theta) {
    if (!LIVE(d)) return;
    int64_t n = (int64_t)T * hd;
    float *h = malloc((size_t)n * sizeof(float));
    if (!h) {
        latch(d, ms_fail(MS_ERR_NOMEM, "cuda: rope_table: no host memory for %lld floats", (long long)n));
        return;
    }
    cpu_rope_table(h, T, hd, theta);
    if (d->bf16)
        for (int64_t i = 0; i < n; i++) h[i] = cpu_bf16_round(h[i]);
    if (!cuda_bad(d, cudaMemcpyAsync(cs, h, (size_t)n * 4, cudaMemcpyHostToDevice, impl_of(d)->stream), "rope_table upload"))
        cuda_bad(d, cudaStreamSynchronize(impl_of(d)->stream), "stream sync");
    free(h);
}

/* Summed on the device in the arrays' order; one trip to the host. */
static double sumsq(ms_device *d, const float *const *x, const int64_t *n, int count) {
    if (!LIVE(d) || !has_scratch(d, "sumsq")) return NAN;
    cuda_impl *c = impl_of(d);
    if (count == 0) return 0.0;
    prof_begin(d);
    for (int i = 0; i < count; i++)
        if (cuda_bad(d, (cudaError_t)cuda_sumsq(S(d), c->sums, c->sums + SUM_BLOCKS, x[i], n[i], i > 0),
                     "sumsq kernel"))
            return NAN;
    prof_end(d, "sumsq");
    if (cuda_bad(d, cudaMemcpyAsync(c->host_sum, c->sums + SUM_BLOCKS, sizeof(double), cudaMemcpyDeviceToHost,
                                    c->stream), "download of a sum") ||
        cuda_bad(d, cudaStreamSynchronize(c->stream), "stream sync"))
        return NAN;
    return *c->host_sum;
}

static void adamw(ms_device *d, float *param, float *m, float *v, const float *g, int64_t n, float lr, float b1,
                  float b2, float eps, float wd, float scale, int64_t step, void *compute) {
    float step_size = (float)(lr / (1.0 - pow(b1, (double)step)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)step));
    if (!d->bf16 && compute == (void *)param) compute = NULL; /* fp32: the master is the compute copy */
    RUN(d, "adamw", cuda_adamw(S(d), param, m, v, g, n, lr, b1, b2, eps, wd, scale, step_size, bc2_sqrt, compute,
                               d->bf16));
}

static void cast_params(ms_device *d, void *params, const float *master, int64_t n) {
    if (!d->bf16 && params == (const void *)master) return;
    RUN(d, "cast_params", cuda_cast_params(S(d), d->bf16, params, master, n));
}

static void add(ms_device *d, float *y, const float *x, int64_t n) { RUN(d, "add", cuda_add(S(d), y, x, n)); }

/* How many GPUs this machine has; fails saying why when none is usable. */
static ms_status gpu_count(int *count) {
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(count);
    if (e != cudaSuccess || *count == 0) {
        cudaGetLastError();
        return ms_fail(MS_ERR_INVALID, "device \"cuda\": this machine has no usable GPU (%s); run where an "
                       "NVIDIA GPU and its driver are, or use device = \"cpu\"",
                       e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
    }
    return MS_OK;
}

/* One GPU's name and memory, asked on a thread of its own: making the GPU
 * current there leaves the caller's current GPU as it was (the engine may be
 * running on it), and opens no context on any other GPU. */
typedef struct gpu_ask {
    int gpu;
    struct cudaDeviceProp prop;
    size_t free_b, total_b;
    cudaError_t e;
} gpu_ask;

static void *ask_gpu(void *arg) {
    gpu_ask *a = arg;
    a->e = cudaGetDeviceProperties(&a->prop, a->gpu);
    if (a->e == cudaSuccess) a->e = cudaSetDevice(a->gpu);
    if (a->e == cudaSuccess) a->e = cudaMemGetInfo(&a->free_b, &a->total_b);
    if (a->e != cudaSuccess) cudaGetLastError();
    return NULL;
}

ms_status ms_cuda_query(int32_t local_rank, ms_device_info *out) {
    int count;
    TRY(gpu_count(&count));
    gpu_ask a = {.gpu = local_rank % count};
    pthread_t t;
    if (pthread_create(&t, NULL, ask_gpu, &a) != 0)
        return ms_fail(MS_ERR_STATE, "device \"cuda\": could not start a thread to ask GPU %d", a.gpu);
    pthread_join(t, NULL);
    if (a.e != cudaSuccess)
        return ms_fail(MS_ERR_STATE, "device \"cuda\": GPU %d does not answer (%s)", a.gpu, cudaGetErrorString(a.e));
    out->count = count;
    out->index = a.gpu;
    out->free_bytes = (int64_t)a.free_b;
    out->total_bytes = (int64_t)a.total_b;
    size_t len = strnlen(a.prop.name, sizeof out->name - 1);
    memcpy(out->name, a.prop.name, len);
    out->name[len] = 0;
    return MS_OK;
}

ms_status ms_device_init_cuda(ms_device *d, int32_t precision, int32_t threads) {
    int count;
    TRY(gpu_count(&count));
    cuda_impl *c = calloc(1, sizeof *c);
    if (!c) return ms_fail(MS_ERR_NOMEM, "cuda: no host memory for the backend");
    pthread_mutex_init(&c->mu, NULL);
    *d = (ms_device){
        .name = "cuda", .kind = MS_DEVICE_CUDA, .bf16 = precision == MS_PRECISION_BF16,
        .threads = threads > 0 ? threads : omp_get_num_procs(), /* host threads: init values, offload */
        .impl = c,
        .elem_bytes = elem_bytes, .reserve = reserve, .release = release,
        .host_reserve = host_reserve, .host_release = host_release,
        .upload = upload, .download = download, .copy = copy, .zero = zero, .sync = sync,
        .copy_async = copy_async, .ticket_wait = ticket_wait, .ticket_order = ticket_order,
        .start = start, .stop = stop, .scratch_bytes = ms_cuda_scratch_bytes, .scratch_use = scratch_use,
        .embedding_fwd = embedding_fwd, .embedding_bwd = embedding_bwd,
        .matmul_fwd = matmul_fwd, .matmul_bwd = matmul_bwd,
        .rmsnorm_fwd = rmsnorm_fwd, .rmsnorm_bwd = rmsnorm_bwd,
        .rope_fwd = rope_fwd, .rope_bwd = rope_bwd, .rope_table = rope_table,
        .attention_fwd = attention_fwd, .attention_bwd = attention_bwd,
        .swiglu_fwd = swiglu_fwd, .swiglu_bwd = swiglu_bwd,
        .lmhead_xent = lmhead_xent, .logits = logits,
        .sumsq = sumsq, .adamw = adamw, .cast_params = cast_params, .add = add,
        .profile = profile,
    };
    return MS_OK;
}

/* ---- for the NCCL communicator (cuda.h) -------------------------------------- */

void *ms_cuda_compute_stream(const ms_device *d) { return impl_of(d) ? (void *)impl_of(d)->stream : NULL; }

int32_t ms_cuda_gpu(const ms_device *d) { return impl_of(d) ? impl_of(d)->device : 0; }

ms_status ms_cuda_use_gpu(ms_device *d, int32_t gpu) {
    cuda_impl *c = impl_of(d);
    if (!c || d->kind != MS_DEVICE_CUDA) return ms_fail(MS_ERR_INVALID, "ms_cuda_use_gpu: not a CUDA device");
    if (c->stream) return ms_fail(MS_ERR_STATE, "ms_cuda_use_gpu: the device has started on GPU %d already", c->device);
    int count;
    TRY(gpu_count(&count));
    if (gpu < 0 || gpu >= count)
        return ms_fail(MS_ERR_INVALID, "cuda: GPU %d does not exist: this process sees %d GPU%s (0..%d)", gpu, count,
                       count == 1 ? "" : "s", count - 1);
    c->device = gpu;
    return MS_OK;
}
#else
typedef int ms_cuda_not_built; /* nvcc was not found: no CUDA backend in this build */
#endif
