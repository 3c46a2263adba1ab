/*
 * optim/optim.h — learning-rate schedules, global-norm clipping and AdamW over
 * the units' flat buffers.
 */
#ifndef MS_OPTIM_H
#define MS_OPTIM_H
#include "device/device.h"
#include "include/moonspeed.h"
#include "model/llama.h"

/* Learning rate of step `step` (0-based): linear warmup over `warmup` steps
 * from lr/warmup to lr, then constant, linear or cosine decay to min_lr at
 * the last step. */
float ms_schedule_lr(const ms_train_config *t, int64_t step);

/* The part of tensor t that this rank owns in unit un: elements [*at, *at +
 * *n) of the unit's owned buffers (master, m, v, owned gradient); 0 when none. */
int ms_optimizer_range(const ms_unit *un, const ms_tensor *t, int64_t *at, int64_t *n);

/* One AdamW step on the range of every tensor this rank owns on the device
 * (offloaded units are the host's), with gradients scaled by grad_scale (the
 * compute copy is refreshed by zero/). step counts from 1. */
void ms_optimizer_step(ms_model *m, ms_device *d, const ms_train_config *t, float lr, float grad_scale,
                       int64_t step);
#endif
