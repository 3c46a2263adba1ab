/*
 * ckpt/weights.c — the fp32 master weights of every unit in one file.
 *
 * Version 1 (little-endian):
 *   char[8] magic "MSWEIGHT", uint32 version (1), uint32 unit count,
 *   then per unit: char[48] name (NUL-padded), uint64 element count,
 *   float32[count] values (the unit's flat buffer without its padding).
 * Written atomically (core/file.h). Loading checks every name and size against
 * the engine's model and says which unit differs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/status.h"
#include "engine.h"

#define WEIGHTS_MAGIC "MSWEIGHT"
#define WEIGHTS_VERSION 1

typedef struct unit_header {
    char name[MS_NAME_LEN];
    uint64_t numel;
} unit_header;

ms_status ms_engine_save_weights(const ms_engine *e, const char *path) {
    if (!e || !path) return ms_fail(MS_ERR_INVALID, "ms_engine_save_weights: engine and path are required");
    const ms_model *m = &e->model;
    uint8_t head[16] = {0};
    uint32_t version = WEIGHTS_VERSION, units = (uint32_t)m->n_units;
    memcpy(head, WEIGHTS_MAGIC, 8);
    memcpy(head + 8, &version, 4);
    memcpy(head + 12, &units, 4);
    ms_span *spans = calloc((size_t)(1 + 2 * m->n_units), sizeof *spans);
    unit_header *uh = calloc((size_t)m->n_units, sizeof *uh);
    if (!spans || !uh) {
        free(spans), free(uh);
        return ms_fail(MS_ERR_NOMEM, "weights %s: out of host memory", path);
    }
    spans[0] = (ms_span){head, sizeof head};
    for (int u = 0; u < m->n_units; u++) {
        memcpy(uh[u].name, m->units[u].name, MS_NAME_LEN);
        uh[u].numel = (uint64_t)m->units[u].numel;
        spans[1 + 2 * u] = (ms_span){&uh[u], sizeof uh[u]};
        spans[2 + 2 * u] = (ms_span){m->units[u].master, m->units[u].numel * 4};
    }
    ms_status st = ms_write_atomic("weights", path, spans, 1 + 2 * m->n_units);
    free(spans);
    free(uh);
    return st;
}

static ms_status load(ms_engine *e, const char *path, int fd) {
    ms_model *m = &e->model;
    uint8_t head[16];
    TRY(ms_read_exact("weights", path, fd, head, sizeof head));
    if (memcmp(head, WEIGHTS_MAGIC, 8) != 0)
        return ms_fail(MS_ERR_FORMAT, "weights %s: magic is not \"%s\"; this is not a moonspeed weights file",
                       path, WEIGHTS_MAGIC);
    uint32_t version, units;
    memcpy(&version, head + 8, 4);
    memcpy(&units, head + 12, 4);
    if (version != WEIGHTS_VERSION)
        return ms_fail(MS_ERR_FORMAT, "weights %s: version %u, this build reads version %d", path, version,
                       WEIGHTS_VERSION);
    if (units != (uint32_t)m->n_units)
        return ms_fail(MS_ERR_FORMAT, "weights %s: %u units, but the model has %d; the recipe's model section "
                       "differs from the one that saved them", path, units, m->n_units);
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        unit_header uh;
        TRY(ms_read_exact("weights", path, fd, &uh, sizeof uh));
        uh.name[MS_NAME_LEN - 1] = 0;
        if (strcmp(uh.name, un->name) != 0 || uh.numel != (uint64_t)un->numel)
            return ms_fail(MS_ERR_FORMAT, "weights %s: unit %d is %s with %llu parameters, but the model's is %s "
                           "with %lld; the recipe's model section differs from the one that saved them",
                           path, u, uh.name, (unsigned long long)uh.numel, un->name, (long long)un->numel);
        TRY(ms_read_exact("weights", path, fd, un->master, un->numel * 4));
    }
    char extra;
    if (read(fd, &extra, 1) != 0)
        return ms_fail(MS_ERR_FORMAT, "weights %s: trailing bytes after the last unit; the file is corrupt", path);
    for (int u = 0; u < m->n_units; u++)
        e->dev.cast_params(&e->dev, m->units[u].params, m->units[u].master, m->units[u].padded);
    return MS_OK;
}

ms_status ms_engine_load_weights(ms_engine *e, const char *path) {
    if (!e || !path) return ms_fail(MS_ERR_INVALID, "ms_engine_load_weights: engine and path are required");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ms_fail(MS_ERR_IO, "weights %s: %s", path, strerror(errno));
    ms_status st = load(e, path, fd);
    close(fd);
    return st;
}
