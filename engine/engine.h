/*
 * engine.h — the engine's internal state, shared by engine.c (the public API),
 * plan.c and ckpt/. Nothing outside engine/ includes it except C specs.
 */
#ifndef MS_ENGINE_H
#define MS_ENGINE_H
#include "comm/comm.h"
#include "core/arena.h"
#include "data/data.h"
#include "device/device.h"
#include "include/moonspeed.h"
#include "model/llama.h"
#include "zero/offload.h"
#include "zero/zero.h"

/* Host staging: everything that crosses between the host and the device
 * goes through these buffers, reserved by the plan (host_bytes) in memory the
 * device copies at full speed (pinned on a GPU). One code path serves every
 * backend: on the CPU the copies are memcpy. */
#define MS_STAGE_BLOCK ((int64_t)1 << 20) /* floats per chunk of init values and weights */

typedef struct ms_staging {
    int32_t *tokens, *targets; /* (B*T) the batch, filled on the host, then uploaded */
    int32_t *doc_start;        /* (B*T) under doc_mask, else NULL */
    float *logits;             /* (V) one row of logits down, for sampling */
    float *block;              /* (block_elems) init values up, weights both ways, chunk by chunk */
    int64_t block_elems;
    float *gather;             /* (the largest unit) a sharded unit's master weights gathered to be
                                  saved; NULL when no unit is sharded */
    int32_t async_checkpoints; /* set before the layout: reserve the snapshot */
    float *snapshot;           /* (snapshot_floats) master, m and v of every element this rank's
                                  checkpoint holds, for an asynchronous save; else NULL */
    int64_t snapshot_floats;
} ms_staging;

/* The device backend's own scratch (device.h, scratch_bytes): carved from
 * MS_MEM_BACKEND and handed to the started device (scratch_use). */
typedef struct ms_backend_scratch {
    void *base;
    int64_t bytes;   /* 0: the backend needs none (the CPU) */
} ms_backend_scratch;

struct ms_engine {
    ms_config cfg;                 /* a copy; the strings below are owned copies */
    char *train_path, *val_path, *tokenizer;
    ms_device dev;
    ms_model model;
    ms_world world;                /* this rank and its world */
    ms_comm *comm;                 /* over host buffers: `single` for one rank */
    ms_comm *dev_comm;             /* over GPU buffers (NCCL; device copies for one rank), else NULL */
    ms_zero zero;
    ms_offload offload;            /* optimizer state of offloaded units, updated on the host */
    int32_t *order_fwd, *order_bwd; /* (n_units) the unit schedule of forward and backward */
    ms_arena arenas[MS_MEM_COUNT]; /* one per purpose, each exactly the planned size */
    int64_t reservations;          /* device arena reservations since create */
    ms_arena host[MS_MEM_COUNT];   /* host staging, by purpose (data, workspace) */
    ms_staging stage;
    ms_backend_scratch backend;
    ms_plan plan;
    ms_dataset train, val;
    int has_train, has_val;
    int64_t step;                  /* optimizer steps taken */
    int profiling;                 /* a profile window is open (ms_engine_profile_start) */
    struct ms_state_job *save;     /* a checkpoint save being written (ckpt/state.c), or NULL */
};

/* The world a configuration asks for: cfg->world_size, or the environment's. */
ms_status ms_config_world(const ms_config *cfg, ms_world *out);

/* The plan of a built model on a described device, from its sizing layouts
 * (device and host staging). */
void ms_plan_from_layout(const ms_config *cfg, const ms_model *m, const ms_layout *l, const ms_layout *host,
                         ms_plan *out);

/* Declare the host staging of a model to a layout pass. */
void ms_staging_layout(ms_staging *s, const ms_model *m, ms_layout *l);

/* Copies between host memory and the device through the staging block, in
 * chunks: host may be any host memory. Both return when the copy is done. */
void ms_stage_up(ms_engine *e, void *dev_dst, const void *host_src, int64_t bytes);
void ms_stage_down(ms_engine *e, void *host_dst, const void *dev_src, int64_t bytes);

/* The whole layout of an engine, on the device (l) and on the host: the
 * model's buffers, ZeRO's, the offload pipeline's, the staging, then the
 * backend's scratch for the model's micro-batch. */
void ms_engine_layout(ms_model *m, ms_zero *z, ms_offload *o, ms_staging *s, ms_backend_scratch *b,
                      const ms_device *d, ms_layout *l, ms_layout *host);

/* One micro-batch forward and backward over the tokens/targets already in the
 * model's data buffers: gradients accumulate, *loss gets this rank's sum.
 * last: the step's last micro-batch (offloaded gradients start down). */
ms_status ms_engine_forward_backward(ms_engine *e, int B, int T, float grad_scale, int last, double *loss);

/* ckpt/state.c: the file name of a rank's state ("rank-00001-of-00004.state"),
 * and dropping a save still in flight when the engine is freed. */
void ms_state_name(char *out, size_t n, int32_t rank, int32_t world);
void ms_state_abandon(ms_engine *e);

/* health.c: after a step whose loss or gradient norm is not finite, where the
 * non-finite numbers first appear (collective; a phrase for messages), and
 * the faults MS_FAULT injects for specs. */
ms_status ms_health_diagnose(ms_engine *e, char *where, size_t n);
void ms_health_inject(ms_engine *e);

#endif
