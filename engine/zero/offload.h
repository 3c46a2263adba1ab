/*
 * zero/offload.h — optimizer offload: the units marked split.offload keep
 * their fp32 master weights and Adam moments in pinned host memory, and a
 * CPU AdamW updates them while the device goes on.
 *
 * One step, for each offloaded unit u:
 *   backward  once u's owned gradient is final, the device casts it to the
 *             compute dtype into one of two scratch buffers and a copy engine
 *             brings it down into u->grads_host (ms_offload_grads);
 *   update    once the step's gradient norm is known (clipping and the
 *             non-finite check need all of it), a worker thread takes the
 *             units in forward order: it waits for u's gradient, runs AdamW
 *             over u's tensors on the host, writes the new compute parameters
 *             and starts their copy up (ms_offload_update);
 *   forward   the next forward makes the device wait for u's parameters
 *             just before u computes (ms_offload_acquire): the update of the
 *             late units overlaps the forward of the early ones, which is why
 *             the late units are the ones offloaded (model/llama.c).
 * ms_offload_wait finishes every update in flight; whatever reads or writes
 * the optimizer state or the parameters outside a step calls it first.
 */
#ifndef MS_ZERO_OFFLOAD_H
#define MS_ZERO_OFFLOAD_H
#include <pthread.h>

#include "core/arena.h"
#include "device/device.h"
#include "model/llama.h"
#include "zero/zero.h"

typedef struct ms_offload_job {
    const ms_train_config *train;
    float lr, grad_scale;
    int64_t step;
} ms_offload_job;

typedef struct ms_offload {
    int32_t units;              /* how many units are offloaded (0: the rest does nothing) */
    ms_model *model;
    ms_device *dev;
    ms_zero *zero;
    const int32_t *order;       /* (n_units) forward order: the order of updates */
    void *scratch[2];           /* (largest owned) act, device: gradients on their way down */
    int64_t scratch_ticket[2];  /* the copy still reading each scratch buffer */
    int32_t next_scratch;
    int64_t *down, *up;         /* (n_units) tickets of each unit's last copies */
    int32_t *sent;              /* (n_units) this step's gradient is on its way down */
    int32_t *pending;           /* (n_units) an update was asked for and not yet acquired */
    int32_t *ready;             /* (n_units) the worker finished that update (under mu) */
    /* the worker thread */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t started, quit, has_job;
    ms_offload_job job;
} ms_offload;

/* Count the offloaded units and keep what the pipeline needs (no memory yet). */
ms_status ms_offload_setup(ms_offload *o, ms_model *m, ms_device *d, ms_zero *z, const int32_t *order);
/* Declare the device scratch to a layout pass. */
void ms_offload_layout(ms_offload *o, const ms_model *m, const ms_device *d, ms_layout *l);
/* Start the worker (after the memory is carved); stop joins it. */
ms_status ms_offload_start(ms_offload *o);
void ms_offload_stop(ms_offload *o);

/* Unit u's owned gradient is final for this step: start bringing it down. */
void ms_offload_grads(ms_offload *o, int u);
/* At the end of the backward: bring down the offloaded gradients not sent yet. */
void ms_offload_grads_rest(ms_offload *o);
/* Hand every offloaded unit's update to the worker. */
void ms_offload_update(ms_offload *o, const ms_train_config *t, float lr, float grad_scale, int64_t step);
/* Unit u is about to compute: its updated parameters must be in place. */
ms_status ms_offload_acquire(ms_offload *o, int u);
/* Every update asked for is done and in place. */
ms_status ms_offload_wait(ms_offload *o);

#endif
