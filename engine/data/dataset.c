/* data/dataset.c — the shards a data path names, as one sequence of windows (see data.h). */
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "data/data.h"

static int has_magic(const char *path) { return strpbrk(path, "*?[") != NULL; }

static ms_status open_all(ms_dataset *d, char **paths, int n, int32_t vocab, const char *tokenizer, int T) {
    d->shards = calloc((size_t)n, sizeof *d->shards);
    d->first = calloc((size_t)n + 1, sizeof *d->first);
    if (!d->shards || !d->first) return ms_fail(MS_ERR_NOMEM, "dataset: out of host memory for %d shards", n);
    for (int i = 0; i < n; i++) {
        TRY(ms_shard_open(&d->shards[i], paths[i], vocab, tokenizer));
        d->n = i + 1;
        int64_t tokens = d->shards[i].info.n_tokens, windows = tokens > T ? tokens - T : 0;
        d->first[i + 1] = d->first[i] + windows;
        d->tokens += tokens;
    }
    d->windows = d->first[n];
    return MS_OK;
}

ms_status ms_dataset_open(ms_dataset *d, const char *path, int32_t vocab, const char *tokenizer, int T) {
    memset(d, 0, sizeof *d);
    char *one[1] = {(char *)path};
    ms_status st;
    if (!has_magic(path)) {
        st = open_all(d, one, 1, vocab, tokenizer, T);
    } else {
        glob_t g;
        int rc = glob(path, 0, NULL, &g);
        if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
            globfree(&g);
            return ms_fail(MS_ERR_IO, "token shards %s: the pattern matches no file; run `moonspeed tokenize` or "
                           "check the path", path);
        }
        if (rc != 0) {
            globfree(&g);
            return ms_fail(MS_ERR_IO, "token shards %s: cannot list the matching files", path);
        }
        st = open_all(d, g.gl_pathv, (int)g.gl_pathc, vocab, tokenizer, T); /* glob sorts by name */
        globfree(&g);
    }
    if (st == MS_OK && d->windows == 0)
        st = ms_fail(MS_ERR_INVALID, "token shard%s %s: %lld tokens, and no shard holds train.seq_len + 1 = %d",
                     d->n > 1 ? "s" : "", path, (long long)d->tokens, T + 1);
    if (st != MS_OK) ms_dataset_close(d);
    return st;
}

void ms_dataset_close(ms_dataset *d) {
    for (int i = 0; i < d->n; i++) ms_shard_close(&d->shards[i]);
    free(d->shards);
    free(d->first);
    memset(d, 0, sizeof *d);
}
