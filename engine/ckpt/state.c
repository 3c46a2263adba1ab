/*
 * ckpt/state.c — the training state of every rank, one file per rank.
 *
 * A checkpoint directory holds "rank-RRRRR-of-WWWWW.state" for every rank of
 * the world that saved it. Version 1 (little-endian):
 *   header   char[8] magic "MSSTATE1", uint32 version (1), uint32 rank,
 *            uint32 world, uint32 unit count, int64 step, uint32 zero stage,
 *            uint32 reserved (0)
 *   records  per unit: char[48] name, uint64 numel, uint64 lo, uint64 hi —
 *            the elements [lo, hi) of the unit this file holds (lo = hi: none)
 *   data     per unit with hi > lo: fp32 master[hi - lo], Adam m, Adam v
 * A rank holds the optimizer state of the elements it owns; a unit whose state
 * is replicated (ZeRO stage 0) is written by rank 0 alone. Everything else a
 * step needs is a function of the step: the data position and every random
 * draw come from counter-based generators keyed by (seed, step, index), the
 * learning rate from the schedule, the compute parameters from the master.
 *
 * Saving (collective): ms_engine_state_save starts; each rank writes its file
 * atomically (core/file.h) — in this thread, or, when asked for, from a host
 * snapshot by a background thread while training goes on — and
 * ms_engine_state_wait gathers every rank's outcome (size, CRC-32C, error).
 * Loading (collective) reads any world's files: each rank checks the size and
 * checksum of every file it needs against the caller's records, the ranks
 * agree that all is well, and only then does any rank change its state — so a
 * damaged checkpoint is refused as a whole and the engine is left untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/source.h"
#include "core/crc32c.h"
#include "core/json.h"
#include "core/file.h"
#include "core/status.h"
#include "engine.h"

#define STATE_MAGIC "MSSTATE1"
#define STATE_VERSION 1
#define CHUNK (8 << 20)

typedef struct state_header {
    char magic[8];
    uint32_t version, rank, world, units;
    int64_t step;
    uint32_t zero_stage, reserved;
} state_header;

typedef struct state_record {
    char name[MS_NAME_LEN];
    uint64_t numel, lo, hi;
} state_record;

/* A save in progress: what this rank writes, and how it went. */
typedef struct ms_state_job ms_state_job;
struct ms_state_job {
    char path[4096];
    state_header head;
    state_record *records;    /* (units) */
    float *snapshot;          /* async: every held element's master, m, v in file order (the plan's) */
    int64_t snapshot_floats;
    int async;
    pthread_t thread;
    atomic_int finished;
    ms_state_file result;     /* this rank's outcome */
};

void ms_state_name(char *out, size_t n, int32_t rank, int32_t world) {
    snprintf(out, n, "rank-%05d-of-%05d.state", rank, world);
}

/* ---- saving ---------------------------------------------------------------- */

typedef struct crc_writer {
    ms_file_out f;
    uint32_t crc;
    uint64_t bytes;
} crc_writer;

static ms_status put(crc_writer *w, const void *p, int64_t n) {
    TRY(ms_file_write(&w->f, p, n));
    w->crc = ms_crc32c(w->crc, p, (size_t)n);
    w->bytes += (uint64_t)n;
    return MS_OK;
}

static ms_status write_head(crc_writer *w, const ms_state_job *job) {
    TRY(put(w, &job->head, sizeof job->head));
    return put(w, job->records, (int64_t)sizeof(state_record) * job->head.units);
}

/* Synchronous: every unit's held state goes from the device to a staging
 * buffer and on to the file. */
static ms_status write_live(ms_engine *e, ms_state_job *job, crc_writer *w) {
    ms_device *d = &e->dev;
    TRY(write_head(w, job));
    float *stage = malloc(CHUNK);
    if (!stage) return ms_fail(MS_ERR_NOMEM, "out of host memory for an 8 MiB staging buffer");
    ms_status st = MS_OK;
    for (int u = 0; u < e->model.n_units && st == MS_OK; u++) {
        ms_unit *un = &e->model.units[u];
        const state_record *r = &job->records[u];
        float *const src[3] = {un->master, un->m, un->v};
        for (int k = 0; k < 3 && st == MS_OK; k++)
            for (uint64_t at = r->lo; at < r->hi && st == MS_OK;) {
                int64_t n = (int64_t)(r->hi - at) < CHUNK / 4 ? (int64_t)(r->hi - at) : CHUNK / 4;
                d->download(d, stage, src[k] + (at - (uint64_t)un->lo), n * 4);
                st = put(w, stage, n * 4);
                at += (uint64_t)n;
            }
    }
    free(stage);
    return st;
}

static ms_status write_snapshot(ms_state_job *job, crc_writer *w) {
    TRY(write_head(w, job));
    for (int64_t at = 0; at < job->snapshot_floats; at += CHUNK / 4) {
        int64_t n = job->snapshot_floats - at < CHUNK / 4 ? job->snapshot_floats - at : CHUNK / 4;
        TRY(put(w, job->snapshot + at, n * 4));
    }
    return MS_OK;
}

/* Write the file (from the snapshot when e is NULL) and record the outcome. */
static void run_job(ms_engine *e, ms_state_job *job) {
    crc_writer w = {.crc = 0};
    ms_status st = ms_file_begin(&w.f, "checkpoint state", job->path);
    if (st == MS_OK) st = e ? write_live(e, job, &w) : write_snapshot(job, &w);
    if (st == MS_OK) st = ms_file_commit(&w.f);
    else if (w.f.fd >= 0) ms_file_abort(&w.f);
    job->result.status = st;
    job->result.bytes = w.bytes;
    job->result.crc32c = w.crc;
    if (st != MS_OK) snprintf(job->result.error, sizeof job->result.error, "%s", ms_last_error());
    atomic_store(&job->finished, 1);
}

static void *writer_thread(void *arg) {
    run_job(NULL, arg);
    return NULL;
}

static void job_free(ms_state_job *job) {
    if (!job) return;
    free(job->records);
    free(job);
}

/* Joins a save still being written and drops it (engine teardown). */
void ms_state_abandon(ms_engine *e) {
    ms_state_job *job = e->save;
    if (!job) return;
    if (job->async) pthread_join(job->thread, NULL);
    job_free(job);
    e->save = NULL;
}

static ms_status plan_job(ms_engine *e, const char *dir, int async, ms_state_job **out) {
    ms_model *m = &e->model;
    ms_state_job *job = calloc(1, sizeof *job);
    if (!job || !(job->records = calloc((size_t)m->n_units, sizeof *job->records))) {
        job_free(job);
        return ms_fail(MS_ERR_NOMEM, "out of host memory for the checkpoint's unit table");
    }
    char name[64];
    ms_state_name(name, sizeof name, e->world.rank, e->world.world);
    if (snprintf(job->path, sizeof job->path, "%s/%s", dir, name) >= (int)sizeof job->path) {
        job_free(job);
        return ms_fail(MS_ERR_INVALID, "checkpoint directory path is too long: %s", dir);
    }
    snprintf(job->result.name, sizeof job->result.name, "%s", name);
    memcpy(job->head.magic, STATE_MAGIC, 8);
    job->head.version = STATE_VERSION;
    job->head.rank = (uint32_t)e->world.rank;
    job->head.world = (uint32_t)e->world.world;
    job->head.units = (uint32_t)m->n_units;
    job->head.step = e->step;
    job->head.zero_stage = (uint32_t)e->cfg.zero_stage;
    for (int u = 0; u < m->n_units; u++) {
        ms_unit *un = &m->units[u];
        int64_t lo, hi;
        ms_unit_held(un, &lo, &hi);
        state_record *r = &job->records[u];
        memcpy(r->name, un->name, MS_NAME_LEN);
        r->numel = (uint64_t)un->numel, r->lo = (uint64_t)lo, r->hi = (uint64_t)hi;
    }
    job->async = async;
    *out = job;
    return MS_OK;
}

/* Copy every held element's state into the planned snapshot, in file order. */
static void take_snapshot(ms_engine *e, ms_state_job *job) {
    job->snapshot = e->stage.snapshot;
    job->snapshot_floats = e->stage.snapshot_floats;
    ms_device *d = &e->dev;
    float *at = job->snapshot;
    for (int u = 0; u < e->model.n_units; u++) {
        ms_unit *un = &e->model.units[u];
        const state_record *r = &job->records[u];
        int64_t n = (int64_t)(r->hi - r->lo), off = (int64_t)r->lo - un->lo;
        float *const src[3] = {un->master, un->m, un->v};
        for (int k = 0; k < 3; k++, at += n) d->download(d, at, src[k] + off, n * 4);
    }
    d->sync(d);
}

ms_status ms_engine_state_save(ms_engine *e, const char *dir, int32_t async) {
    if (!e || !dir) return ms_fail(MS_ERR_INVALID, "ms_engine_state_save: engine and directory are required");
    if (e->save)
        return ms_fail(MS_ERR_STATE, "checkpoint %s: the previous save is still being written; "
                       "ms_engine_state_wait for it first", dir);
    if (async && !e->stage.async_checkpoints)
        return ms_fail(MS_ERR_STATE, "checkpoint %s: asynchronous, but the engine was created without "
                       "checkpoint_async, so its plan holds no snapshot to write from; set checkpoint.async = true "
                       "in the recipe, or save synchronously", dir);
    TRY(ms_offload_wait(&e->offload));
    ms_state_job *job = NULL;
    TRY(plan_job(e, dir, async != 0, &job));
    e->save = job;
    if (!async) {
        run_job(e, job);
        return MS_OK;
    }
    take_snapshot(e, job);
    if (pthread_create(&job->thread, NULL, writer_thread, job) != 0) { /* every rank learns of it at the wait */
        job->async = 0;
        job->result.status = ms_fail(MS_ERR_INTERNAL, "checkpoint %s: cannot start the writer thread: %s", dir,
                                     strerror(errno));
        snprintf(job->result.error, sizeof job->result.error, "%s", ms_last_error());
        atomic_store(&job->finished, 1);
    }
    return MS_OK;
}

/* Every rank's outcome, gathered; an error when any rank's write failed. */
static ms_status gather_results(ms_engine *e, const ms_state_file *mine, ms_state_file *all) {
    ms_comm_req *req;
    TRY(e->comm->all_gather(e->comm, mine, all, sizeof *mine / 4, MS_F32, &req));
    TRY(e->comm->wait(e->comm, req));
    for (int r = 0; r < e->world.world; r++)
        if (all[r].status != MS_OK)
            return ms_fail(all[r].status, "rank %d could not write its checkpoint state: %.*s", r,
                           (int)sizeof all[r].error, all[r].error);
    return MS_OK;
}

ms_status ms_engine_state_wait(ms_engine *e, int32_t block, int32_t *done, ms_state_file *files) {
    if (!e || !done || !files) return ms_fail(MS_ERR_INVALID, "ms_engine_state_wait: engine, done and files are required");
    ms_state_job *job = e->save;
    if (!job) return ms_fail(MS_ERR_STATE, "ms_engine_state_wait: no checkpoint save was started");
    if (!block) { /* collective: done only when every rank's writer is */
        float pending = atomic_load(&job->finished) ? 0.0f : 1.0f, total;
        ms_comm_req *req;
        TRY(e->comm->all_reduce(e->comm, &pending, &total, 1, MS_F32, &req));
        TRY(e->comm->wait(e->comm, req));
        *done = total == 0.0f;
        if (!*done) return MS_OK;
    }
    if (job->async) pthread_join(job->thread, NULL);
    ms_state_file mine = job->result;
    job_free(job);
    e->save = NULL;
    *done = 1;
    return gather_results(e, &mine, files);
}

/* ---- loading --------------------------------------------------------------- */

typedef struct source {
    char path[4096];
    int fd;
    state_header head;
    state_record *records;
    int64_t *data_at;   /* (units) offset of each unit's master in the file */
} source;


static ms_status read_from(const source *s, void *dst, int64_t bytes, int64_t at) {
    return ms_read_exact_at("checkpoint state", s->path, s->fd, dst, bytes, at);
}

/* Open file i of a world of n, check its header against the model and its
 * records against each other; note where each unit's data starts. */
static ms_status open_source(const ms_model *m, const char *dir, const ms_state_file *rec, int i, int n,
                             source *s) {
    char name[64];
    ms_state_name(name, sizeof name, i, n);
    if (strncmp(rec->name, name, sizeof rec->name) != 0)
        return ms_fail(MS_ERR_FORMAT, "%s: file %d of the checkpoint is named \"%.*s\"; expected \"%s\"", dir, i,
                       (int)sizeof rec->name, rec->name, name);
    snprintf(s->path, sizeof s->path, "%s/%s", dir, name);
    s->fd = open(s->path, O_RDONLY);
    if (s->fd < 0) return ms_fail(MS_ERR_IO, "%s: %s", s->path, strerror(errno));
    struct stat sb;
    if (fstat(s->fd, &sb) != 0) return ms_fail(MS_ERR_IO, "%s: %s", s->path, strerror(errno));
    if ((uint64_t)sb.st_size != rec->bytes)
        return ms_fail(MS_ERR_FORMAT, "%s: %lld bytes, but meta.json records %llu; the file is %s", s->path,
                       (long long)sb.st_size, (unsigned long long)rec->bytes,
                       (uint64_t)sb.st_size < rec->bytes ? "truncated" : "longer than written");
    TRY(read_from(s, &s->head, sizeof s->head, 0));
    const state_header *h = &s->head;
    if (memcmp(h->magic, STATE_MAGIC, 8) != 0 || h->version != STATE_VERSION)
        return ms_fail(MS_ERR_FORMAT, "%s: not a moonspeed checkpoint state file of version %d", s->path,
                       STATE_VERSION);
    if (h->rank != (uint32_t)i || h->world != (uint32_t)n)
        return ms_fail(MS_ERR_FORMAT, "%s: the header says rank %u of %u; expected rank %d of %d", s->path, h->rank,
                       h->world, i, n);
    if (h->units != (uint32_t)m->n_units)
        return ms_fail(MS_ERR_FORMAT, "%s: %u units, but the model has %d; the recipe's model section differs "
                       "from the one that saved this checkpoint", s->path, h->units, m->n_units);
    s->records = calloc((size_t)m->n_units, sizeof *s->records);
    s->data_at = calloc((size_t)m->n_units, sizeof *s->data_at);
    if (!s->records || !s->data_at) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", s->path);
    TRY(read_from(s, s->records, (int64_t)sizeof(state_record) * m->n_units, sizeof s->head));
    int64_t at = (int64_t)(sizeof s->head + sizeof(state_record) * (size_t)m->n_units);
    for (int u = 0; u < m->n_units; u++) {
        state_record *r = &s->records[u];
        const ms_unit *un = &m->units[u];
        r->name[MS_NAME_LEN - 1] = 0;
        if (strcmp(r->name, un->name) != 0 || r->numel != (uint64_t)un->numel)
            return ms_fail(MS_ERR_FORMAT, "%s: unit %d is %s with %llu parameters, but the model's is %s with %lld; "
                           "the recipe's model section differs from the one that saved this checkpoint",
                           s->path, u, r->name, (unsigned long long)r->numel, un->name, (long long)un->numel);
        if (r->lo > r->hi || r->hi > r->numel)
            return ms_fail(MS_ERR_FORMAT, "%s: unit %s holds elements [%llu, %llu) of %llu; the file is corrupt",
                           s->path, r->name, (unsigned long long)r->lo, (unsigned long long)r->hi,
                           (unsigned long long)r->numel);
        s->data_at[u] = at;
        at += 3 * 4 * (int64_t)(r->hi - r->lo);
    }
    if ((uint64_t)at != rec->bytes)
        return ms_fail(MS_ERR_FORMAT, "%s: its unit table describes %lld bytes, but meta.json records %llu; "
                       "the file does not belong to this checkpoint", s->path, (long long)at,
                       (unsigned long long)rec->bytes);
    return MS_OK;
}

/* The CRC-32C of the whole file against the record (its size was checked on opening). */
static ms_status verify(const source *s, const ms_state_file *rec) {
    uint32_t crc;
    uint64_t bytes;
    TRY(ms_crc32c_file(s->path, &crc, &bytes));
    if (crc != rec->crc32c)
        return ms_fail(MS_ERR_FORMAT, "%s: CRC-32C is %08x, but meta.json records %08x; the file was modified or "
                       "damaged", s->path, crc, rec->crc32c);
    return MS_OK;
}

/* Does file s hold any element this rank needs? */
static int needed(const ms_engine *e, const source *s) {
    for (int u = 0; u < e->model.n_units; u++) {
        const ms_unit *un = &e->model.units[u];
        const state_record *r = &s->records[u];
        if ((int64_t)r->lo < un->hi && (int64_t)r->hi > un->lo && r->hi > r->lo) return 1;
    }
    return 0;
}

/* Copy the overlap of file s with this rank's owned ranges into the state. */
static ms_status read_overlap(ms_engine *e, const source *s, float *stage) {
    ms_device *d = &e->dev;
    for (int u = 0; u < e->model.n_units; u++) {
        ms_unit *un = &e->model.units[u];
        const state_record *r = &s->records[u];
        int64_t lo = (int64_t)r->lo > un->lo ? (int64_t)r->lo : un->lo;
        int64_t hi = (int64_t)r->hi < un->hi ? (int64_t)r->hi : un->hi;
        int64_t held = (int64_t)(r->hi - r->lo);
        float *const dst[3] = {un->master, un->m, un->v};
        for (int k = 0; k < 3; k++)
            for (int64_t at = lo; at < hi;) {
                int64_t n = hi - at < CHUNK / 4 ? hi - at : CHUNK / 4;
                TRY(read_from(s, stage, n * 4, s->data_at[u] + 4 * (k * held + at - (int64_t)r->lo)));
                d->upload(d, dst[k] + (at - un->lo), stage, n * 4);
                at += n;
            }
    }
    return MS_OK;
}

/* Agree across ranks on whether every rank's check passed. */
static ms_status agree(ms_engine *e, ms_status mine, const char *dir) {
    ms_state_file me = {.status = mine}, *all = calloc((size_t)e->world.world, sizeof *all);
    if (!all) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", dir);
    if (mine != MS_OK) snprintf(me.error, sizeof me.error, "%s", ms_last_error());
    ms_status st = MS_OK;
    ms_comm_req *req;
    st = e->comm->all_gather(e->comm, &me, all, sizeof me / 4, MS_F32, &req);
    if (st == MS_OK) st = e->comm->wait(e->comm, req);
    for (int r = 0; st == MS_OK && r < e->world.world; r++)
        if (all[r].status != MS_OK)
            st = r == e->world.rank ? ms_fail(all[r].status, "%.*s", (int)sizeof all[r].error, all[r].error)
                                    : ms_fail(all[r].status, "rank %d: %.*s", r, (int)sizeof all[r].error, all[r].error);
    free(all);
    return st;
}

static ms_status load(ms_engine *e, const char *dir, const ms_state_file *files, int n, source *srcs) {
    ms_status st = MS_OK;
    int64_t step = -1;
    for (int i = 0; i < n && st == MS_OK; i++) {
        st = open_source(&e->model, dir, &files[i], i, n, &srcs[i]);
        if (st == MS_OK && step >= 0 && srcs[i].head.step != step)
            st = ms_fail(MS_ERR_FORMAT, "%s: saved at step %lld, but file 0 at step %lld; the files come from "
                         "different checkpoints", srcs[i].path, (long long)srcs[i].head.step, (long long)step);
        if (st == MS_OK) step = srcs[i].head.step;
        if (st == MS_OK && needed(e, &srcs[i])) st = verify(&srcs[i], &files[i]);
    }
    TRY(agree(e, st, dir)); /* nothing has changed yet: a refused checkpoint leaves the engine as it was */
    float *stage = malloc(CHUNK);
    if (!stage) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory for an 8 MiB staging buffer", dir);
    ms_device *d = &e->dev;
    for (int u = 0; u < e->model.n_units; u++) { /* padding past numel stays zero */
        ms_unit *un = &e->model.units[u];
        if (un->hi > un->numel) {
            int64_t from = un->lo > un->numel ? un->lo : un->numel;
            float *const dst[3] = {un->master, un->m, un->v};
            for (int k = 0; k < 3; k++) d->zero(d, dst[k] + (from - un->lo), (un->hi - from) * 4);
        }
    }
    for (int i = 0; i < n && st == MS_OK; i++)
        if (needed(e, &srcs[i])) st = read_overlap(e, &srcs[i], stage);
    free(stage);
    st = agree(e, st, dir);
    if (st == MS_OK) {
        e->step = step;
        st = ms_zero_refresh_params(&e->zero, &e->model, d);
    }
    return st;
}

ms_status ms_engine_state_load(ms_engine *e, const char *dir, const ms_state_file *files, int32_t n_files) {
    if (!e || !dir || !files || n_files < 1)
        return ms_fail(MS_ERR_INVALID, "ms_engine_state_load: engine, directory and at least one file record are required");
    if (e->save) return ms_fail(MS_ERR_STATE, "%s: a checkpoint save is still being written; wait for it first", dir);
    TRY(ms_offload_wait(&e->offload));
    source *srcs = calloc((size_t)n_files, sizeof *srcs);
    if (!srcs) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", dir);
    for (int i = 0; i < n_files; i++) srcs[i].fd = -1;
    ms_status st = load(e, dir, files, n_files, srcs);
    for (int i = 0; i < n_files; i++) {
        if (srcs[i].fd >= 0) close(srcs[i].fd);
        free(srcs[i].records);
        free(srcs[i].data_at);
    }
    free(srcs);
    return st;
}

ms_status ms_crc32c_file(const char *path, uint32_t *crc, uint64_t *bytes) {
    if (!path || !crc || !bytes) return ms_fail(MS_ERR_INVALID, "ms_crc32c_file: path, crc and bytes are required");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ms_fail(MS_ERR_IO, "%s: %s", path, strerror(errno));
    uint8_t *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", path);
    }
    uint32_t c = 0;
    uint64_t total = 0;
    ms_status st = MS_OK;
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = ms_fail(MS_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        c = ms_crc32c(c, buf, (size_t)r);
        total += (uint64_t)r;
    }
    free(buf);
    close(fd);
    *crc = c, *bytes = total;
    return st;
}

/* ---- a checkpoint as a weight source (ckpt/source.h) ------------------------ */

typedef struct state_source {
    ms_source base;
    int n;
    source *files;
} state_source;

static void close_files(source *files, int n) {
    for (int i = 0; files && i < n; i++) {
        if (files[i].fd >= 0) close(files[i].fd);
        free(files[i].records);
        free(files[i].data_at);
    }
    free(files);
}

static void state_close(ms_source *base) {
    state_source *s = (state_source *)base;
    close_files(s->files, s->n);
    free(s);
}

/* The master weights [lo, hi) of a unit, from whichever files hold them. */
static ms_status state_read(ms_source *base, int unit, int64_t lo, int64_t hi, float *out) {
    state_source *s = (state_source *)base;
    memset(out, 0, (size_t)(hi - lo) * 4);
    for (int i = 0; i < s->n; i++) {
        const source *f = &s->files[i];
        const state_record *r = &f->records[unit];
        int64_t a = (int64_t)r->lo > lo ? (int64_t)r->lo : lo, b = (int64_t)r->hi < hi ? (int64_t)r->hi : hi;
        if (a < b) TRY(read_from(f, out + (a - lo), (b - a) * 4, f->data_at[unit] + 4 * (a - (int64_t)r->lo)));
    }
    return MS_OK;
}

/* The file records of dir/meta.json (written by lua/moonspeed/checkpoint.lua). */
static ms_status meta_files(const char *dir, ms_state_file **out, int *n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return ms_fail(MS_ERR_IO, "%s: %s (an incomplete checkpoint)", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap && !(text = realloc(text, cap = 2 * cap + 65536))) break;
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    if (!text) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", path);
    ms_json *meta = NULL;
    ms_status st = ms_json_parse(text, len, &meta);
    free(text);
    if (st != MS_OK) return ms_fail_context(st, "%s", path);
    const ms_json *files = ms_json_get(meta, "files");
    st = files && files->kind == MS_JSON_ARRAY && files->n > 0
             ? MS_OK : ms_fail(MS_ERR_FORMAT, "%s: no \"files\" array of state files", path);
    *n = st == MS_OK ? files->n : 0;
    *out = st == MS_OK ? calloc((size_t)*n, sizeof **out) : NULL;
    if (st == MS_OK && !*out) st = ms_fail(MS_ERR_NOMEM, "%s: out of host memory", path);
    for (int i = 0; st == MS_OK && i < *n; i++) {
        const ms_json *name = ms_json_get(&files->items[i], "name"), *bytes = ms_json_get(&files->items[i], "bytes"),
                      *crc = ms_json_get(&files->items[i], "crc32c");
        char *end = NULL;
        unsigned long c = crc && crc->kind == MS_JSON_STRING ? strtoul(crc->string, &end, 16) : 0;
        if (!name || name->kind != MS_JSON_STRING || name->len >= sizeof (*out)[i].name || !bytes || !bytes->is_int ||
            bytes->integer < 0 || !end || *end || crc->len != 8) {
            st = ms_fail(MS_ERR_FORMAT, "%s: files[%d] needs a name, bytes and an 8-digit hex crc32c", path, i);
            break;
        }
        memcpy((*out)[i].name, name->string, name->len);
        (*out)[i].bytes = (uint64_t)bytes->integer;
        (*out)[i].crc32c = (uint32_t)c;
    }
    ms_json_free(meta);
    if (st != MS_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

ms_status ms_source_open_state(const ms_model *m, const char *dir, ms_source **out) {
    *out = NULL;
    ms_state_file *recs = NULL;
    int n = 0;
    TRY(meta_files(dir, &recs, &n));
    state_source *s = calloc(1, sizeof *s);
    source *files = calloc((size_t)n, sizeof *files);
    ms_status st = s && files ? MS_OK : ms_fail(MS_ERR_NOMEM, "checkpoint %s: out of host memory", dir);
    for (int i = 0; i < n && files; i++) files[i].fd = -1;
    for (int i = 0; st == MS_OK && i < n; i++) {
        st = open_source(m, dir, &recs[i], i, n, &files[i]);
        if (st == MS_OK) st = verify(&files[i], &recs[i]);
    }
    free(recs);
    if (st != MS_OK) {
        close_files(files, n);
        free(s);
        return st;
    }
    s->base = (ms_source){.kind = "checkpoint", .m = m, .read = state_read, .close = state_close};
    snprintf(s->base.path, sizeof s->base.path, "%s", dir);
    s->n = n, s->files = files;
    *out = &s->base;
    return MS_OK;
}
