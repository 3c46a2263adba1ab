/* ckpt/source.c — choosing a weight source, and the weights-file source (see source.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/source.h"
#include "core/status.h"

static int is_file(const char *dir, const char *name) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

ms_status ms_source_open(const ms_model *m, const char *path, ms_source **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return ms_fail(MS_ERR_IO, "weights %s: %s", path, strerror(errno));
    if (S_ISREG(sb.st_mode)) return ms_source_open_weights(m, path, out);
    if (!S_ISDIR(sb.st_mode))
        return ms_fail(MS_ERR_INVALID, "weights %s: neither a file nor a directory", path);
    if (is_file(path, "meta.json")) return ms_source_open_state(m, path, out);
    if (is_file(path, "model.safetensors.index.json") || is_file(path, "model.safetensors"))
        return ms_source_open_hf(m, path, out);
    if (is_file(path, "model.bin")) {
        char p[4200];
        snprintf(p, sizeof p, "%s/model.bin", path);
        return ms_source_open_weights(m, p, out);
    }
    return ms_fail(MS_ERR_INVALID, "weights %s: the directory holds no model.bin (a run directory), no meta.json "
                   "(a checkpoint) and no model.safetensors or model.safetensors.index.json (a Hugging Face model)", path);
}

void ms_source_close(ms_source *s) {
    if (s) s->close(s);
}

/* ---- a moonspeed weights file ------------------------------------------------ */

typedef struct weights_source {
    ms_source base;
    int fd;
    int64_t *starts;   /* (n_units) file offset of each unit's values */
} weights_source;

static ms_status weights_read(ms_source *s, int unit, int64_t lo, int64_t hi, float *out) {
    weights_source *w = (weights_source *)s;
    const ms_unit *u = &s->m->units[unit];
    int64_t real = hi < u->numel ? hi : u->numel;
    memset(out, 0, (size_t)(hi - lo) * 4);
    uint8_t *b = (uint8_t *)out;
    int64_t bytes = real > lo ? (real - lo) * 4 : 0, at = w->starts[unit] + lo * 4;
    while (bytes > 0) {
        ssize_t r = pread(w->fd, b, (size_t)bytes, (off_t)at);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ms_fail(MS_ERR_IO, "weights %s: %s", s->path, strerror(errno));
        if (r == 0) return ms_fail(MS_ERR_FORMAT, "weights %s: the file ends early; it is truncated", s->path);
        b += r, bytes -= r, at += r;
    }
    return MS_OK;
}

static void weights_close(ms_source *s) {
    weights_source *w = (weights_source *)s;
    if (w->fd >= 0) close(w->fd);
    free(w->starts);
    free(w);
}

ms_status ms_source_open_weights(const ms_model *m, const char *path, ms_source **out) {
    *out = NULL;
    weights_source *w = calloc(1, sizeof *w);
    if (!w) return ms_fail(MS_ERR_NOMEM, "weights %s: out of host memory", path);
    w->base = (ms_source){.kind = "weights file", .m = m, .read = weights_read, .close = weights_close};
    snprintf(w->base.path, sizeof w->base.path, "%s", path);
    w->fd = open(path, O_RDONLY | O_CLOEXEC);
    w->starts = calloc((size_t)m->n_units, sizeof *w->starts);
    ms_status st = w->fd < 0       ? ms_fail(MS_ERR_IO, "weights %s: %s", path, strerror(errno))
                 : !w->starts      ? ms_fail(MS_ERR_NOMEM, "weights %s: out of host memory", path)
                                   : ms_weights_check(m, path, w->fd, w->starts);
    if (st != MS_OK) {
        weights_close(&w->base);
        return st;
    }
    *out = &w->base;
    return MS_OK;
}
