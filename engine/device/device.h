/*
 * device/device.h — the backend interface: one struct of function pointers.
 *
 * The model calls these entries and never a kernel directly, so the same
 * schedule runs on every backend and the CPU backend (cpu.c, over
 * kernels/cpu) is the reference the others are tested against.
 *
 * Buffers are untyped device pointers. Their element type follows the
 * precision policy the device was created with:
 *   - "act" buffers (activations, their gradients, the compute copy of the
 *     parameters) are bf16 under MS_PRECISION_BF16 and fp32 otherwise;
 *   - "f32" buffers (master weights, gradients of parameters, Adam moments,
 *     rstd, lse, logits) are always fp32;
 *   - tokens are int32.
 * A backend that cannot store bf16 (the CPU) stores it in fp32 containers and
 * rounds every act output to bf16, exactly where a bf16 device would round.
 * All entries are asynchronous on a device with streams; sync() waits.
 */
#ifndef MS_DEVICE_H
#define MS_DEVICE_H
#include <stddef.h>
#include <stdint.h>

#include "include/moonspeed.h"

typedef struct ms_device ms_device;

/* A profile's sums by name (ms_op_time, moonspeed.h), for the backends'
 * profile(): a slot a name, the last one gathering the names beyond the table. */
#define MS_OP_NAME ((int)sizeof(((ms_op_time *)0)->name))
#define MS_OP_TABLE 256
typedef struct ms_op_table {
    ms_op_time ops[MS_OP_TABLE];
    int n;
} ms_op_table;
int ms_op_table_slot(ms_op_table *t, const char *name);
void ms_op_table_add(ms_op_table *t, int slot, double seconds); /* one call of that slot's op */
/* The sums into out, the largest first, at most max of them; returns how many. */
int ms_op_table_take(ms_op_table *t, ms_op_time *out, int max);

/* The largest calls a run makes of the ops that need backend scratch: what
 * scratch_bytes sizes it for (engine/plan.c fills it from the model). */
typedef struct ms_device_shape {
    int64_t rows;   /* rows of a micro-batch, B*T: embedding, RMSNorm, the loss */
    int32_t B, T;   /* micro-batch and sequence length of attention */
    int32_t heads;  /* query heads of attention */
    int32_t head_dim; /* columns of a head: attention backward's sums of dq */
    int32_t dim;    /* model width: columns of embedding and RMSNorm */
} ms_device_shape;

struct ms_device {
    const char *name;
    int32_t kind;       /* ms_device_kind */
    int32_t bf16;       /* act buffers hold bf16 values */
    int32_t threads;
    void *impl;         /* backend-private state */

    /* memory */
    int64_t (*elem_bytes)(const ms_device *d, int32_t dtype);   /* storage size of an ms_dtype */
    ms_status (*reserve)(ms_device *d, int64_t bytes, void **out);
    void (*release)(ms_device *d, void *p);
    /* host memory the device copies from and to at full speed (pinned on a
       GPU, plain on the CPU): the engine's staging between host and device */
    ms_status (*host_reserve)(ms_device *d, int64_t bytes, void **out);
    void (*host_release)(ms_device *d, void *p);
    /* upload is ordered on the device's stream: the host may reuse host_src
       only after sync(); download returns when the host sees the bytes */
    void (*upload)(ms_device *d, void *dst, const void *host_src, int64_t bytes);
    void (*download)(ms_device *d, void *host_dst, const void *src, int64_t bytes);
    void (*copy)(ms_device *d, void *dst, const void *src, int64_t bytes);
    void (*zero)(ms_device *d, void *p, int64_t bytes);
    void (*sync)(ms_device *d);
    /* Copies beside the compute, on the device's copy engines (offload,
       zero/offload.h and zero.c); plain memcpy on the CPU. Each returns a
       ticket (0: already done). how is an MS_COPY_*: down to the host (it
       starts once the compute enqueued so far is done), up at once (the host
       has finished writing src), or up once the compute enqueued so far is
       done (dst may still be read by it). ticket_wait blocks the caller until
       the copy is done; ticket_order makes the compute enqueued after it wait
       for the copy. Safe to call from another thread than the one computing.
       Any pointer may be host memory of host_reserve: the device reaches it
       in place (as do upload, download, copy and zero). */
    int64_t (*copy_async)(ms_device *d, void *dst, const void *src, int64_t bytes, int how);
    void (*ticket_wait)(ms_device *d, int64_t ticket);
    void (*ticket_order)(ms_device *d, int64_t ticket);
    ms_status (*start)(ms_device *d);   /* take threads/streams; init only describes */
    void (*stop)(ms_device *d);
    /* The backend's own scratch (a GPU's library workspace and the temporary
       buffers of its kernels), part of the plan like every other byte:
       scratch_bytes says how much calls up to shape s need (a described
       device answers too, so a plan needs no GPU); scratch_use hands the
       started device that much memory it reserved, once, before the first
       op, and the backend only ever takes slices of it: an op wanting more
       fails saying what it asked and what was planned. NULL on a backend
       that needs none (the CPU). */
    int64_t (*scratch_bytes)(const ms_device *d, const ms_device_shape *s);
    ms_status (*scratch_use)(ms_device *d, void *base, int64_t bytes);

    /* parameters and activations: shapes as in kernels/cpu/kernels.h. A
       weight gradient dw adds to what dw holds, or with accumulate_dw = 0
       overwrites it (the first write of a step needs no zeroed buffer). */
    void (*embedding_fwd)(ms_device *d, void *y, const int32_t *tokens, const void *table, int64_t n, int dim);
    void (*embedding_bwd)(ms_device *d, float *dtable, const void *dy, const int32_t *tokens, int64_t n, int dim);
    /* y (n, out) = x W^T, plus add (n, out) unless NULL; add may be y itself */
    void (*matmul_fwd)(ms_device *d, void *y, const void *x, const void *w, int64_t n, int in, int out, const void *add);
    void (*matmul_bwd)(ms_device *d, void *dx, float *dw, const void *dy, const void *x, const void *w,
                       int64_t n, int in, int out, int accumulate_dx, int accumulate_dw);
    void (*rmsnorm_fwd)(ms_device *d, void *y, float *rstd, const void *x, const void *w, int64_t n, int dim, float eps);
    void (*rmsnorm_bwd)(ms_device *d, void *dx, float *dw, const void *dy, const void *x, const void *w,
                        const float *rstd, int64_t n, int dim, int accumulate_dw);
    void (*rope_fwd)(ms_device *d, void *x, const float *cs, int64_t B, int T, int heads, int head_dim);
    void (*rope_bwd)(ms_device *d, void *dx, const float *cs, int64_t B, int T, int heads, int head_dim);
    /* doc_start (B, T): the first position of each token's document (NULL: plain causal) */
    void (*attention_fwd)(ms_device *d, void *out, float *lse, const void *q, const void *k, const void *v,
                          const int32_t *doc_start, int B, int T, int H, int KV, int hd);
    void (*attention_bwd)(ms_device *d, void *dq, void *dk, void *dv, const void *dout, const void *q,
                          const void *k, const void *v, const void *out, const float *lse,
                          const int32_t *doc_start, int B, int T, int H, int KV, int hd);
    void (*swiglu_fwd)(ms_device *d, void *h, const void *gate, const void *up, int64_t n);
    void (*swiglu_bwd)(ms_device *d, void *dgate, void *dup, const void *dh, const void *gate, const void *up, int64_t n);
    /* LM head + cross-entropy, fused and chunked; returns the summed loss (host value). */
    double (*lmhead_xent)(ms_device *d, void *dx, float *dw, float *logits, const void *x, const void *w,
                          const int32_t *targets, int64_t n, int dim, int vocab, int chunk, float grad_scale,
                          int accumulate_dw);
    /* fp32 logits of n rows, for sampling. */
    void (*logits)(ms_device *d, float *y, const void *x, const void *w, int64_t n, int dim, int vocab);
    void (*rope_table)(ms_device *d, float *cs, int T, int head_dim, float theta);

    /* optimizer */
    /* the sum of squares of count fp32 arrays (x[i], n[i] elements), summed in
       order in fp64: one wait for the device however many arrays */
    double (*sumsq)(ms_device *d, const float *const *x, const int64_t *n, int count);
    /* compute (or NULL): the compute copy of these n parameters, written from the
     * updated param in the same pass, as cast_params would write it */
    void (*adamw)(ms_device *d, float *param, float *m, float *v, const float *g, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, float grad_scale, int64_t step,
                  void *compute);
    /* compute copy of the parameters from the fp32 master (rounding to bf16 when bf16) */
    void (*cast_params)(ms_device *d, void *params, const float *master, int64_t n);
    void (*add)(ms_device *d, float *y, const float *x, int64_t n); /* fp32 y += x */

    /* Op timing by the device's own clock (ms_engine_profile_*): events on a GPU's
       compute stream, the host's clock on the CPU. profile(d, 1, ...) starts
       timing every op; profile(d, 0, out, max, window) stops, writes the
       ops' sums by name, the largest first, at most max, returns how many
       (-1 after a failure) and the window's seconds: what the ops do not
       cover is the device waiting (for the host, a copy or a collective). */
    int (*profile)(ms_device *d, int on, ms_op_time *out, int max, double *window);
};

enum { MS_COPY_DOWN, MS_COPY_UP, MS_COPY_UP_AFTER_COMPUTE };

/* Describe a backend: fills the table, touches nothing (planning uses it too). */
ms_status ms_device_init(ms_device *d, int32_t kind, int32_t precision, int32_t threads);
/* Only what planning needs (names and element sizes) of a backend, even one
   this machine cannot run: a plan for a GPU can be made without one. */
ms_status ms_device_describe(ms_device *d, int32_t kind, int32_t precision);
void ms_device_init_cpu(ms_device *d, int32_t precision, int32_t threads);

/* Storage bytes of an act buffer element on this device. */
static inline int64_t ms_act_bytes(const ms_device *d) {
    return d->elem_bytes(d, d->bf16 ? MS_BF16 : MS_F32);
}
#endif
