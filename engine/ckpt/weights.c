/*
 * ckpt/weights.c — the fp32 master weights of every unit in one file.
 *
 * Version 1 (little-endian):
 *   char[8] magic "MSWEIGHT", uint32 version (1), uint32 unit count,
 *   then per unit: char[48] name (NUL-padded), uint64 element count,
 *   float32[count] values (the unit's flat buffer without its padding).
 * Values cross between host and device through the engine's staging block.
 * Saving is collective: a unit whose master weights are sharded over ranks
 * is all-gathered into the plan's gather buffer, and rank 0 writes it; a
 * whole unit streams into the file chunk by chunk. The file is written
 * atomically (core/file.h). Loading is
 * per rank: each reads only the range it owns, after checking every name and
 * size against its model.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/source.h"
#include "core/file.h"
#include "core/status.h"
#include "engine.h"

#define WEIGHTS_MAGIC "MSWEIGHT"
#define WEIGHTS_VERSION 1
#define HEAD_BYTES 16

typedef struct unit_header {
    char name[MS_NAME_LEN];
    uint64_t numel;
} unit_header;

/* A unit's master weights into the file (rank 0's): a sharded unit gathered
 * whole from its owners (each rank's part brought down into its place, then
 * gathered in place over the host communicator), else chunk by chunk. */
static ms_status write_master(ms_engine *e, ms_file_out *f, ms_unit *u, int writer) {
    if (ms_unit_sharded(u)) {
        float *full = e->stage.gather;
        int64_t owned = u->hi - u->lo;
        ms_stage_down(e, full + u->lo, u->master, owned * 4);
        ms_comm_req *req;
        TRY(e->comm->all_gather(e->comm, full + u->lo, full, owned, MS_F32, &req));
        TRY(e->comm->wait(e->comm, req));
        return writer ? ms_file_write(f, full, u->numel * 4) : MS_OK;
    }
    if (!writer) return MS_OK;
    for (int64_t at = 0; at < u->numel; at += e->stage.block_elems) {
        int64_t n = u->numel - at < e->stage.block_elems ? u->numel - at : e->stage.block_elems;
        e->dev.download(&e->dev, e->stage.block, u->master + at, n * 4);
        TRY(ms_file_write(f, e->stage.block, n * 4));
    }
    return MS_OK;
}

static ms_status save(ms_engine *e, ms_file_out *f) {
    const ms_model *m = &e->model;
    int writer = e->world.rank == 0;
    uint8_t head[HEAD_BYTES] = {0};
    uint32_t version = WEIGHTS_VERSION, units = (uint32_t)m->n_units;
    memcpy(head, WEIGHTS_MAGIC, 8);
    memcpy(head + 8, &version, 4);
    memcpy(head + 12, &units, 4);
    if (writer) TRY(ms_file_write(f, head, sizeof head));
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &e->model.units[u];
        unit_header uh = {.numel = (uint64_t)un->numel};
        memcpy(uh.name, un->name, MS_NAME_LEN);
        if (writer) TRY(ms_file_write(f, &uh, sizeof uh));
        TRY(write_master(e, f, un, writer));
    }
    return MS_OK;
}

ms_status ms_engine_save_weights(ms_engine *e, const char *path) {
    if (!e || !path) return ms_fail(MS_ERR_INVALID, "ms_engine_save_weights: engine and path are required");
    TRY(ms_offload_wait(&e->offload));
    ms_file_out f = {.fd = -1};
    ms_status st = e->world.rank == 0 ? ms_file_begin(&f, "weights", path) : MS_OK;
    if (st == MS_OK) st = save(e, &f);
    if (st == MS_OK && e->world.rank == 0) st = ms_file_commit(&f);
    if (st != MS_OK && f.fd >= 0) ms_file_abort(&f);
    return st;
}


/* Check the header and every unit's name and size; record where each unit's values start. */
ms_status ms_weights_check(const ms_model *m, const char *path, int fd, int64_t *starts) {
    uint8_t head[HEAD_BYTES];
    TRY(ms_read_exact_at("weights", path, fd, head, sizeof head, 0));
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
    int64_t at = HEAD_BYTES;
    for (int u = 0; u < m->n_units; u++) {
        const ms_unit *un = &m->units[u];
        unit_header uh;
        TRY(ms_read_exact_at("weights", path, fd, &uh, sizeof uh, at));
        uh.name[MS_NAME_LEN - 1] = 0;
        if (strcmp(uh.name, un->name) != 0 || uh.numel != (uint64_t)un->numel)
            return ms_fail(MS_ERR_FORMAT, "weights %s: unit %d is %s with %llu parameters, but the model's is %s "
                           "with %lld; the recipe's model section differs from the one that saved them",
                           path, u, uh.name, (unsigned long long)uh.numel, un->name, (long long)un->numel);
        starts[u] = at + (int64_t)sizeof uh;
        at = starts[u] + un->numel * 4;
    }
    char extra;
    if (pread(fd, &extra, 1, (off_t)at) != 0)
        return ms_fail(MS_ERR_FORMAT, "weights %s: trailing bytes after the last unit; the file is corrupt", path);
    return MS_OK;
}

static ms_status load(ms_engine *e, const char *path, int fd, int64_t *starts) {
    TRY(ms_weights_check(&e->model, path, fd, starts));
    ms_model *m = &e->model;
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        int64_t real = un->hi < un->numel ? un->hi : un->numel; /* past numel is padding: zeros */
        /* through the staging block, a chunk at a time */
        float *block = e->stage.block;
        for (int64_t at = un->lo; at < un->hi; at += e->stage.block_elems) {
            int64_t n = un->hi - at < e->stage.block_elems ? un->hi - at : e->stage.block_elems;
            int64_t have = real - at < 0 ? 0 : (real - at < n ? real - at : n);
            memset(block + have, 0, (size_t)(n - have) * 4);
            if (have > 0) TRY(ms_read_exact_at("weights", path, fd, block, have * 4, starts[u] + at * 4));
            e->dev.upload(&e->dev, un->master + (at - un->lo), block, n * 4);
            e->dev.sync(&e->dev);
        }
    }
    return ms_zero_refresh_params(&e->zero, m, &e->dev);
}

ms_status ms_engine_load_weights(ms_engine *e, const char *path) {
    if (!e || !path) return ms_fail(MS_ERR_INVALID, "ms_engine_load_weights: engine and path are required");
    TRY(ms_offload_wait(&e->offload));
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ms_fail(MS_ERR_IO, "weights %s: %s", path, strerror(errno));
    int64_t *starts = calloc((size_t)e->model.n_units, sizeof *starts);
    ms_status st = starts ? load(e, path, fd, starts) : ms_fail(MS_ERR_NOMEM, "weights %s: out of memory", path);
    free(starts);
    close(fd);
    return st;
}
