/*
 * ckpt/export.c — ms_hf_export: a consolidated Hugging Face Llama directory
 * from any weight source (ckpt/source.h), one unit in memory at a time.
 *
 * The tensors, in the model's order, are planned into shards up front (a new
 * shard starts before one would grow past max_shard_bytes; a tensor larger
 * than that gets a shard of its own), so every shard's header and the index
 * are known before a value is read. Then each unit is read whole, its tensors
 * are streamed into the shard that holds them, and the unit is dropped.
 * Everything goes into DIR.tmp.<pid>, which is synced and renamed to DIR at
 * the very end; any failure removes the temporary, so DIR either holds a
 * complete export or does not exist.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/hf.h"
#include "ckpt/safetensors.h"
#include "ckpt/source.h"
#include "core/file.h"
#include "core/json.h"
#include "core/status.h"

typedef struct planned {
    char name[128];        /* Hugging Face name */
    int shard;
    int64_t bytes;
} planned;

typedef struct exporter {
    const char *dir;
    char tmp[4200];
    ms_model m;
    ms_source *src;
    planned *plan;         /* (m.n_tensors) */
    int n_shards;
    int dtype;             /* MS_F32 or MS_BF16 */
    float *unit;           /* (largest padded) the unit being written */
    int loaded;            /* which unit is in `unit`, -1 none */
    int64_t total;
} exporter;

static void shard_name(char *buf, size_t len, int s, int n) {
    snprintf(buf, len, "model-%05d-of-%05d.safetensors", s + 1, n);
}

static ms_status write_shard(exporter *x, int s) {
    const ms_model *m = &x->m;
    ms_st_spec *specs = calloc((size_t)m->n_tensors, sizeof *specs);
    ms_st_writer *w = malloc(sizeof *w);
    if (!specs || !w) {
        free(specs);
        free(w);
        return ms_fail(MS_ERR_NOMEM, "export %s: out of host memory", x->dir);
    }
    int first = -1, n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (x->plan[i].shard == s) {
            if (first < 0) first = i;
            const ms_tensor *t = &m->tensors[i];
            specs[n] = (ms_st_spec){.name = x->plan[i].name, .ndim = t->ndim};
            for (int d = 0; d < t->ndim; d++) specs[n].shape[d] = t->shape[d];
            n++;
        }
    char file[64], path[4300];
    shard_name(file, sizeof file, s, x->n_shards);
    snprintf(path, sizeof path, "%s/%s", x->tmp, file);
    const char *keys[] = {"format"}, *values[] = {"pt"};
    ms_status st = ms_st_begin(w, path, x->dtype == MS_BF16 ? MS_ST_BF16 : MS_ST_F32, specs, n, keys, values, 1);
    for (int i = first; st == MS_OK && i < first + n; i++) {
        const ms_tensor *t = &m->tensors[i];
        if (x->loaded != t->unit) {
            const ms_unit *u = &m->units[t->unit];
            st = x->src->read(x->src, t->unit, 0, u->padded, x->unit);
            if (st != MS_OK) break;
            x->loaded = t->unit;
        }
        st = ms_st_write(w, x->unit + t->offset, t->numel);
    }
    if (st == MS_OK) st = ms_st_commit(w);
    else ms_st_abort(w);
    free(w);
    free(specs);
    return st;
}

static ms_status write_json(const char *tmp, const char *name, ms_text *t) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    TRY(ms_text_done(t, name));
    ms_span span = {t->s, (int64_t)t->len};
    return ms_write_atomic(name, path, &span, 1);
}

static ms_status write_index(exporter *x) {
    ms_text t = {0};
    ms_text_printf(&t, "{\n  \"metadata\": {\n    \"total_size\": %lld\n  },\n  \"weight_map\": {", (long long)x->total);
    for (int i = 0; i < x->m.n_tensors; i++) {
        char file[64];
        shard_name(file, sizeof file, x->plan[i].shard, x->n_shards);
        ms_text_printf(&t, "%s\n    ", i ? "," : "");
        ms_text_string(&t, x->plan[i].name);
        ms_text_printf(&t, ": ");
        ms_text_string(&t, file);
    }
    ms_text_printf(&t, "\n  }\n}\n");
    ms_status st = write_json(x->tmp, "model.safetensors.index.json", &t);
    ms_text_free(&t);
    return st;
}

static ms_status write_configs(exporter *x, const ms_hf_export_options *o) {
    ms_text t = {0};
    ms_hf_config_json(&t, &x->m.c, x->dtype, o->bos_token, o->eos_token);
    ms_status st = write_json(x->tmp, "config.json", &t);
    ms_text_free(&t);
    TRY(st);
    ms_text g = {0};
    ms_text_printf(&g, "{\n  \"_from_model_config\": true");
    if (o->bos_token >= 0) ms_text_printf(&g, ",\n  \"bos_token_id\": %d", o->bos_token);
    if (o->eos_token >= 0) ms_text_printf(&g, ",\n  \"eos_token_id\": %d", o->eos_token);
    ms_text_printf(&g, "\n}\n");
    st = write_json(x->tmp, "generation_config.json", &g);
    ms_text_free(&g);
    return st;
}

static ms_status sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ms_fail(MS_ERR_IO, "export: cannot open %s to sync it: %s", dir, strerror(errno));
    int r = fsync(fd);
    int err = errno;
    close(fd);
    if (r != 0) return ms_fail(MS_ERR_IO, "export: cannot sync %s: %s", dir, strerror(err));
    return MS_OK;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *ent;
        char path[4400];
        while ((ent = readdir(d)))
            if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* dir must not exist, or be an empty directory (removed just before the rename). */
static ms_status check_target(const char *dir, int *empty_dir) {
    struct stat sb;
    *empty_dir = 0;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT) return MS_OK;
        return ms_fail(MS_ERR_IO, "export %s: %s", dir, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(dir);
        int n = 0;
        struct dirent *ent;
        while (d && (ent = readdir(d)))
            if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) n++;
        if (d) closedir(d);
        if (d && n == 0) {
            *empty_dir = 1;
            return MS_OK;
        }
    }
    return ms_fail(MS_ERR_INVALID, "export %s: the target already exists%s; choose a new directory (an export "
                   "never writes over one)", dir, S_ISDIR(sb.st_mode) ? " and is not empty" : " as a file");
}

static ms_status plan_shards(exporter *x, int64_t max_bytes) {
    const ms_model *m = &x->m;
    int64_t in_shard = 0;
    int shard = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        planned *p = &x->plan[i];
        ms_hf_name(m, i, p->name, sizeof p->name);
        p->bytes = m->tensors[i].numel * (x->dtype == MS_BF16 ? 2 : 4);
        if (in_shard > 0 && in_shard + p->bytes > max_bytes) {
            shard++;
            in_shard = 0;
        }
        p->shard = shard;
        in_shard += p->bytes;
        x->total += p->bytes;
    }
    x->n_shards = shard + 1;
    if (x->n_shards > 99999)
        return ms_fail(MS_ERR_INVALID, "export %s: %d shards; raise --max-shard-size", x->dir, x->n_shards);
    return MS_OK;
}

static ms_status run(exporter *x, const ms_config *cfg, const char *source, const ms_hf_export_options *o) {
    int empty_dir;
    TRY(check_target(x->dir, &empty_dir));
    TRY(ms_model_build(&x->m, cfg, 0, 1, 0));
    TRY(ms_source_open(&x->m, source, &x->src));
    int64_t largest = 0;
    for (int u = 0; u < x->m.n_units; u++)
        if (x->m.units[u].padded > largest) largest = x->m.units[u].padded;
    x->unit = malloc((size_t)largest * 4);
    x->plan = calloc((size_t)x->m.n_tensors, sizeof *x->plan);
    if (!x->unit || !x->plan)
        return ms_fail(MS_ERR_NOMEM, "export %s: out of host memory for a unit of %lld values", x->dir,
                       (long long)largest);
    TRY(plan_shards(x, o->max_shard_bytes > 0 ? o->max_shard_bytes : 5000000000LL));
    if (snprintf(x->tmp, sizeof x->tmp, "%s.tmp.%d", x->dir, (int)getpid()) >= (int)sizeof x->tmp)
        return ms_fail(MS_ERR_INVALID, "export %s: path too long", x->dir);
    if (mkdir(x->tmp, 0755) != 0) {
        int err = errno;
        x->tmp[0] = 0; /* not ours: never removed */
        return ms_fail(MS_ERR_IO, "export %s: cannot create the temporary directory %s.tmp.%d: %s", x->dir, x->dir,
                       (int)getpid(), strerror(err));
    }
    for (int s = 0; s < x->n_shards; s++) TRY(write_shard(x, s));
    TRY(write_index(x));
    TRY(write_configs(x, o));
    TRY(sync_dir(x->tmp));
    if (empty_dir && rmdir(x->dir) != 0)
        return ms_fail(MS_ERR_IO, "export %s: cannot replace the empty directory: %s", x->dir, strerror(errno));
    if (rename(x->tmp, x->dir) != 0)
        return ms_fail(MS_ERR_IO, "export %s: cannot rename %s into place: %s", x->dir, x->tmp, strerror(errno));
    x->tmp[0] = 0;
    /* the rename itself becomes durable with the parent directory */
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", x->dir);
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/') parent[--len] = 0;
    char *slash = strrchr(parent, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == parent) parent[1] = 0;
    else *slash = 0;
    return sync_dir(parent);
}

ms_status ms_hf_export(const ms_config *cfg, const char *source, const char *dir, const ms_hf_export_options *opt,
                       ms_hf_export_report *out) {
    if (!cfg || !source || !dir || !*dir || !opt)
        return ms_fail(MS_ERR_INVALID, "ms_hf_export: cfg, source, dir and opt are required");
    if (opt->dtype != MS_F32 && opt->dtype != MS_BF16)
        return ms_fail(MS_ERR_INVALID, "export %s: dtype %d; expected MS_F32 (0) or MS_BF16 (1)", dir, opt->dtype);
    if (opt->max_shard_bytes < 0)
        return ms_fail(MS_ERR_INVALID, "export %s: max_shard_bytes = %lld must be >= 0 (0 = 5 GB)", dir,
                       (long long)opt->max_shard_bytes);
    exporter x = {.dir = dir, .dtype = opt->dtype, .loaded = -1};
    ms_status st = run(&x, cfg, source, opt);
    if (st != MS_OK && x.tmp[0]) remove_tree(x.tmp);
    if (st == MS_OK && out) *out = (ms_hf_export_report){.shards = x.n_shards, .tensors = x.m.n_tensors,
                                                         .bytes = x.total};
    ms_source_close(x.src);
    ms_model_free(&x.m);
    free(x.unit);
    free(x.plan);
    return st;
}
