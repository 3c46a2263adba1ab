/*
 * ckpt/source.h — where master weights come from: one small interface.
 *
 * A source serves element ranges of a model's units, as fp32, without ever
 * holding more than the caller asks for: `read(s, unit, lo, hi, out)` fills
 * out[0 .. hi-lo) with elements [lo, hi) of the unit's flat buffer (the
 * layout of model/llama.h; elements past the unit's numel are padding and
 * read as 0). Import reads each rank's owned range [lo, hi); export reads
 * whole units, one at a time.
 *
 * Implementations:
 *   - a moonspeed weights file (model.bin, ckpt/weights.c), or a run
 *     directory holding one;
 *   - a checkpoint directory (meta.json and one state file per rank,
 *     ckpt/state.c), every file checked against its size and CRC-32C;
 *   - a Hugging Face Llama directory: config.json and model.safetensors or
 *     model.safetensors.index.json with its shards (ckpt/hf.c). Opening one
 *     checks config.json against the model and every tensor's presence,
 *     dtype and shape before anything is read.
 * ms_source_open tells them apart by what the path holds.
 */
#ifndef MS_CKPT_SOURCE_H
#define MS_CKPT_SOURCE_H
#include <stdint.h>

#include "model/llama.h"

typedef struct ms_source ms_source;
struct ms_source {
    const char *kind;      /* "weights file", "Hugging Face directory": for messages */
    char path[4096];
    const ms_model *m;     /* the tables the ranges refer to; must outlive the source */
    ms_status (*read)(ms_source *s, int unit, int64_t lo, int64_t hi, float *out);
    void (*close)(ms_source *s); /* frees s */
};

/* Opens whatever path holds, for model m. */
ms_status ms_source_open(const ms_model *m, const char *path, ms_source **out);
ms_status ms_source_open_weights(const ms_model *m, const char *path, ms_source **out);
ms_status ms_source_open_hf(const ms_model *m, const char *dir, ms_source **out);
ms_status ms_source_open_state(const ms_model *m, const char *dir, ms_source **out);
void ms_source_close(ms_source *s); /* NULL is a no-op */

/* Checks a weights file (ckpt/weights.c) against m and records where each
 * unit's values start (starts: n_units). */
ms_status ms_weights_check(const ms_model *m, const char *path, int fd, int64_t *starts);

#endif
