/*
 * zero/zero.h — ZeRO stages 0–3 over units.
 *
 * The stages differ only in which of a unit's flat buffers are whole and
 * which are this rank's shard (ms_unit_split, decided in model/llama.c):
 *   0  everything whole; each unit's gradients all-reduced right after its
 *        backward in the step's last micro-batch;
 *   1  + fp32 master and Adam moments of the owned shard only; after the
 *        update each rank all-gathers the compute parameters;
 *   2  + gradients reduce-scattered into the owned shard right after each
 *        unit's backward, through a shared full-unit scratch;
 *   3  + compute parameters sharded: a unit is all-gathered into a slot just
 *        before it computes (the next `prefetch` units in flight meanwhile)
 *        and released right after, in forward and again in backward.
 * The engine's schedule calls these hooks around every unit; with one rank
 * and stage 0 they do nothing. Every hook is collective: all ranks call it
 * in the same order.
 *
 * Gradient collectives overlap the backward: each is waited for (the compute
 * stream made to wait, on GPUs) only when its buffers are next touched — its
 * scratch reused (two scratches alternate when the device computes beside
 * the collectives), the next micro-batch begun, or the step's gradients read.
 */
#ifndef MS_ZERO_H
#define MS_ZERO_H
#include "comm/comm.h"
#include "core/arena.h"
#include "device/device.h"
#include "model/llama.h"

#define MS_ZERO_MAX_SLOTS 3
#define MS_ZERO_MAX_PENDING 16 /* gradient collectives in flight; the oldest is waited beyond */

typedef struct ms_zero {
    int32_t stage, prefetch, slots;
    ms_comm *comm;                        /* over the device's buffers (NCCL on GPUs) */
    ms_comm *host;                        /* over host buffers: scalars summed across ranks */
    void *slot[MS_ZERO_MAX_SLOTS];        /* (max padded) act: gathered parameters (stage 3) */
    int32_t slot_unit[MS_ZERO_MAX_SLOTS]; /* the unit a slot holds, -1 when free */
    ms_comm_req *slot_req[MS_ZERO_MAX_SLOTS];
    int32_t scratches, next_scratch;
    float *scratch[2];                    /* (max padded) fp32: gradients of the units in backward */
    ms_comm_req *pending[MS_ZERO_MAX_PENDING]; /* gradient collectives not yet waited, oldest first */
    int32_t pending_scratch[MS_ZERO_MAX_PENDING]; /* the scratch each reads, -1 for none */
    int32_t n_pending;
} ms_zero;

/* comm: over the device's buffers (may be set later, once the device has
 * started); host: over host buffers (the same on the CPU). */
void ms_zero_setup(ms_zero *z, int32_t stage, int32_t prefetch, ms_comm *comm, ms_comm *host);
/* Declare the shared buffers (gather slots, gradient scratch) to a layout pass. */
void ms_zero_layout(ms_zero *z, const ms_model *m, const ms_device *d, ms_layout *l);

/* Make order[i]'s parameters resident and start gathering the next ones. */
ms_status ms_zero_acquire(ms_zero *z, ms_model *m, ms_device *d, const int32_t *order, int n, int i);
void ms_zero_release(ms_zero *z, ms_model *m, int u);

/* Make the gradient buffers a step accumulates into start from nothing: the
 * whole-unit ones fresh (their first write overwrites), the shards zeroed
 * (call before the step's first micro-batch). */
void ms_zero_grads_step_begin(ms_zero *z, ms_model *m, ms_device *d);
/* Before a micro-batch's backward: wait for the last one's gradient
 * collectives; the whole-unit buffers reduced per micro-batch start fresh. */
ms_status ms_zero_grads_micro_begin(ms_zero *z, ms_model *m);
/* Around unit u's backward: point its gradients at a scratch; then start
 * reducing them: reduce-scattered into the owned shard (stages 2 and 3), or,
 * in the step's last micro-batch, all-reduced whole (stages 0 and 1). */
ms_status ms_zero_grads_begin(ms_zero *z, ms_model *m, ms_device *d, int u);
ms_status ms_zero_grads_end(ms_zero *z, ms_model *m, ms_device *d, int u, int last);
/* At the end of the step: wait for every gradient collective. */
ms_status ms_zero_grads_step_end(ms_zero *z);

/* Squared global gradient norm over every rank's owned gradients (the host
 * waits, with the communicator's deadline, for the collectives before). */
ms_status ms_zero_grad_sumsq(ms_zero *z, ms_model *m, ms_device *d, double *out);
/* Refresh every unit's compute parameters from the owned master weights (at
 * start, after a load). */
ms_status ms_zero_refresh_params(ms_zero *z, ms_model *m, ms_device *d);
/* After an optimizer step, which wrote the compute copy of each unit it updated
 * on the device (optim/optim.h): share those (the host refreshes the offloaded
 * ones, zero/offload.h). */
ms_status ms_zero_share_updated(ms_zero *z, ms_model *m, ms_device *d);
/* Once this rank's part of unit u's compute parameters is new: the others'
 * parts too (all-gathered when the parameters are whole but the optimizer
 * state sharded, stages 1 and 2). */
ms_status ms_zero_share_params(ms_zero *z, ms_model *m, ms_device *d, int u);
/* Whether unit u's owned gradient is final for the device's compute stream
 * when its backward hook ends in the last micro-batch (else only after
 * ms_zero_grads_step_end). */
int ms_zero_grads_final_per_unit(const ms_zero *z, const ms_unit *un);
/* Sum n (<= 4) values across ranks, in place. */
ms_status ms_zero_sum(ms_zero *z, double *values, int n);

#endif
