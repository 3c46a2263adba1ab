/*
 * zero/offload.h — optimizer offload: the units marked split.offload keep
 * their fp32 master weights and Adam moments in pinned host memory, and a
 * CPU AdamW updates them while the device goes on.
 *
 * One step, for each offloaded unit u:
 *   backward  once u's owned gradient is final (in the step's last
 *             micro-batch), the device casts it to the compute dtype into one
 *             of two scratch buffers and a copy engine brings it down into
 *             u->grads_host (ms_offload_grads);
 *   update    a worker thread runs AdamW over u's tensors on the host, writes
 *             the new compute parameters and starts their copy up;
 *   forward   the next forward makes the device wait for u's parameters just
 *             before u computes (ms_offload_acquire).
 * The update needs the step's clip factor, and a non-finite step updates
 * nothing, so it cannot be final before the whole backward is done. With
 * overlap the worker does not wait: from ms_offload_step_begin on it updates
 * each unit as its gradient lands, during the backward, speculating that the
 * step is neither clipped nor skipped, into a second copy of the unit's
 * state (spare). The verdict (ms_offload_update) then commits those copies,
 * or recomputes them with the clip factor, or drops them. A clipped step
 * costs the bet a second update, and clipped steps come in runs (early in
 * training, or after a spike), so after a clipped step the worker does not
 * bet: it waits for the verdict and updates into the spare copy. Without
 * overlap it updates after the verdict, in forward order, while the next
 * forward runs.
 * The late units (model/llama.c) are offloaded: their gradients arrive first
 * and their parameters are needed last. ms_offload_wait finishes every
 * update in flight; whatever reads or writes the optimizer state or the
 * parameters outside a step calls it first.
 */
#ifndef MS_ZERO_OFFLOAD_H
#define MS_ZERO_OFFLOAD_H
#include <pthread.h>

#include "core/arena.h"
#include "device/device.h"
#include "model/llama.h"
#include "zero/zero.h"

enum { MS_OFFLOAD_NONE, MS_OFFLOAD_COMMIT, MS_OFFLOAD_RECOMPUTE, MS_OFFLOAD_DROP };

typedef struct ms_offload {
    int32_t units;              /* how many units are offloaded (0: the rest does nothing) */
    int32_t overlap;            /* speculate during the backward (see above) */
    int32_t bet;                /* this step speculates: overlap, and the step before was not clipped */
    int32_t clipped;            /* the last step decided was clipped */
    ms_model *model;
    ms_device *dev;
    ms_zero *zero;
    const int32_t *order;       /* (n_units) forward order */
    void *scratch[2];           /* (largest owned) act, device: gradients on their way down */
    int64_t scratch_ticket[2];  /* the copy still reading each scratch buffer */
    int32_t next_scratch;
    float **spare;              /* (n_units * 3) host: the other master, m, v (overlap) */
    void **params_host;         /* (n_units) act, host: new compute parameters (overlap, bf16) */
    int64_t *down, *up;         /* (n_units) tickets of each unit's last copies */
    /* shared with the worker thread, under mu */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t started, quit;
    int32_t job;                /* a step's update was begun and not yet finished by the worker */
    int32_t verdict;            /* MS_OFFLOAD_*: what to do with it (NONE: not known yet) */
    const ms_train_config *train;
    float lr, clip_scale;
    int64_t step;
    int32_t *sent;              /* (n_units) this step's gradient is on its way down */
    int32_t *pending;           /* (n_units) an update was decided and not yet acquired */
    int32_t *ready;             /* (n_units) the worker finished that update */
    /* what the updates cost since ms_offload_take_costs last read them */
    double update_seconds;      /* the worker's AdamW (under mu) */
    double wait_seconds;        /* the forward waiting for updates not yet done */
    int32_t recomputed;         /* steps whose bet the clip factor made the worker redo */
} ms_offload;

/* Count the offloaded units and keep what the pipeline needs (no memory yet). */
ms_status ms_offload_setup(ms_offload *o, ms_model *m, ms_device *d, ms_zero *z, const int32_t *order,
                           int32_t overlap);
/* Declare the device scratch (l) and, with overlap, the host's second copy (host). */
void ms_offload_layout(ms_offload *o, const ms_model *m, const ms_device *d, ms_layout *l, ms_layout *host);
/* Start the worker (after the memory is carved); stop joins it. */
ms_status ms_offload_start(ms_offload *o);
void ms_offload_stop(ms_offload *o);

/* Before the step's last micro-batch: its gradients will be final (lr and
 * step are the update's; with overlap the worker starts as they land). */
void ms_offload_step_begin(ms_offload *o, const ms_train_config *t, float lr, int64_t step);
/* Unit u's owned gradient is final for this step: start bringing it down. */
void ms_offload_grads(ms_offload *o, int u);
/* At the end of the backward: bring down the offloaded gradients not sent yet. */
void ms_offload_grads_rest(ms_offload *o);
/* The verdict on the step begun: apply (clip_scale: the gradients' factor)
 * or skip (a non-finite step). */
void ms_offload_update(ms_offload *o, int apply, float clip_scale);
/* Unit u is about to compute: its updated parameters must be in place. */
ms_status ms_offload_acquire(ms_offload *o, int u);
/* Every update decided is done and in place. */
ms_status ms_offload_wait(ms_offload *o);
/* What the updates cost since the last call: the worker's seconds of AdamW,
 * the seconds the forward waited for it, and the bets redone; then zero. */
void ms_offload_take_costs(ms_offload *o, double *update_seconds, double *wait_seconds, int32_t *recomputed);

#endif
