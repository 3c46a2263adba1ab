/*
 * data/bytes.c — the byte-level tokenizer (ids 0..255 are bytes, 256 is BOS,
 * 257 is EOS) and the preparation of a plain-text corpus into a training and
 * a held-out validation shard.
 *
 * The text is cut into blocks of MS_BYTES_BLOCK_LINES lines; every
 * val_every-th block goes to validation, the rest to training, so both see
 * the whole corpus (all books of the Bible, say) and never the same lines.
 * Each shard starts with BOS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "data/data.h"

#define MS_BYTES_VOCAB 258
#define MS_BYTES_BOS 256
#define MS_BYTES_EOS 257
#define MS_BYTES_BLOCK_LINES 64

int32_t ms_bytes_vocab_size(void) { return MS_BYTES_VOCAB; }
int32_t ms_bytes_bos(void) { return MS_BYTES_BOS; }
int32_t ms_bytes_eos(void) { return MS_BYTES_EOS; }

static ms_status read_file(const char *path, uint8_t **out, int64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return ms_fail(MS_ERR_IO, "text %s: %s", path, strerror(errno));
    int64_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc((size_t)cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, (size_t)(cap - len), f)) > 0) {
        len += (int64_t)got;
        if (len == cap) {
            uint8_t *grown = realloc(buf, (size_t)(cap *= 2));
            if (!grown) free(buf);
            buf = grown;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return ms_fail(MS_ERR_NOMEM, "text %s: out of memory", path);
    if (err) {
        free(buf);
        return ms_fail(MS_ERR_IO, "text %s: read error", path);
    }
    *out = buf;
    *n = len;
    return MS_OK;
}

ms_status ms_bytes_prepare(const char *text_path, const char *train_path, const char *val_path,
                           int32_t val_every, ms_shard_info *train_info, ms_shard_info *val_info) {
    if (!text_path || !train_path || !val_path)
        return ms_fail(MS_ERR_INVALID, "ms_bytes_prepare: text, train and val paths are required");
    if (val_every < 2)
        return ms_fail(MS_ERR_INVALID, "ms_bytes_prepare: val_every = %d; it must be at least 2 (every "
                       "val_every-th block of %d lines is held out)", val_every, MS_BYTES_BLOCK_LINES);
    uint8_t *text = NULL;
    int64_t n = 0;
    TRY(read_file(text_path, &text, &n));
    if (n == 0) {
        free(text);
        return ms_fail(MS_ERR_INVALID, "text %s is empty; there is nothing to train on", text_path);
    }
    uint32_t *train = malloc((size_t)(n + 1) * 4), *val = malloc((size_t)(n + 1) * 4);
    if (!train || !val) {
        free(text), free(train), free(val);
        return ms_fail(MS_ERR_NOMEM, "text %s: out of memory for %lld tokens", text_path, (long long)n);
    }
    int64_t nt = 0, nv = 0, line = 0;
    train[nt++] = MS_BYTES_BOS;
    val[nv++] = MS_BYTES_BOS;
    for (int64_t i = 0; i < n; i++) {
        int held_out = (line / MS_BYTES_BLOCK_LINES) % val_every == val_every - 1;
        if (held_out) val[nv++] = text[i];
        else train[nt++] = text[i];
        if (text[i] == '\n') line++;
    }
    free(text);
    ms_status st = MS_OK;
    if (nv < 2 || nt < 2)
        st = ms_fail(MS_ERR_INVALID, "text %s: %lld lines are too few to hold out every %d-th block of %d lines",
                     text_path, (long long)line, val_every, MS_BYTES_BLOCK_LINES);
    if (st == MS_OK) st = ms_shard_write(train_path, train, nt, MS_BYTES_VOCAB, "bytes");
    if (st == MS_OK) st = ms_shard_write(val_path, val, nv, MS_BYTES_VOCAB, "bytes");
    free(train);
    free(val);
    if (st != MS_OK) return st;
    if (train_info) TRY(ms_shard_info_read(train_path, train_info));
    if (val_info) TRY(ms_shard_info_read(val_path, val_info));
    return MS_OK;
}
