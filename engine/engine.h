/*
 * engine.h — the engine's internal state, shared by engine.c (the public API),
 * plan.c and ckpt/. Nothing outside engine/ includes it except C specs.
 */
#ifndef MS_ENGINE_H
#define MS_ENGINE_H
#include "core/arena.h"
#include "data/data.h"
#include "device/device.h"
#include "include/moonspeed.h"
#include "model/llama.h"

struct ms_engine {
    ms_config cfg;                 /* a copy; the strings below are owned copies */
    char *train_path, *val_path, *tokenizer;
    ms_device dev;
    ms_model model;
    ms_arena arenas[MS_MEM_COUNT]; /* one per purpose, each exactly the planned size */
    int64_t reservations;          /* arena reservations since create */
    ms_plan plan;
    ms_shard train, val;
    int has_train, has_val;
    int64_t step;                  /* optimizer steps taken */
};

/* The plan of a built model on a described device, from its sizing layout. */
void ms_plan_from_layout(const ms_config *cfg, const ms_model *m, const ms_layout *l, ms_plan *out);

/* One micro-batch forward + backward on the tokens/targets already in the
 * model's data buffers; returns the summed loss. Gradients accumulate. */
double ms_engine_forward_backward(ms_engine *e, int B, int T, float grad_scale);

#endif
