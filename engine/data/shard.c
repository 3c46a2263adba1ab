/* data/shard.c — reading, validating and atomically writing token shards. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "core/status.h"
#include "data/data.h"

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Validate a header against the file size; fills info. */
static ms_status parse_header(const char *path, const uint8_t *h, int64_t file_bytes, ms_shard_info *info) {
    if (file_bytes < MS_SHARD_HEADER)
        return ms_fail(MS_ERR_FORMAT, "token shard %s: %lld bytes is shorter than the %d-byte header; "
                       "the file is truncated or not a token shard", path, (long long)file_bytes, MS_SHARD_HEADER);
    if (memcmp(h, MS_SHARD_MAGIC, 8) != 0) {
        char got[9];
        for (int i = 0; i < 8; i++) got[i] = (h[i] >= 32 && h[i] < 127) ? (char)h[i] : '?';
        got[8] = 0;
        return ms_fail(MS_ERR_FORMAT, "token shard %s: magic \"%s\", expected \"%s\"; this is not a moonspeed "
                       "token shard (make one with `moonspeed prepare-bytes`)", path, got, MS_SHARD_MAGIC);
    }
    uint32_t version = rd32(h + 8), header = rd32(h + 12), vocab = rd32(h + 16);
    uint64_t n = rd64(h + 24);
    if (version != MS_SHARD_VERSION)
        return ms_fail(MS_ERR_FORMAT, "token shard %s: version %u, this build reads version %d; "
                       "re-create the shard with this moonspeed", path, version, MS_SHARD_VERSION);
    if (header != MS_SHARD_HEADER || vocab < 2 || vocab > INT32_MAX)
        return ms_fail(MS_ERR_FORMAT, "token shard %s: header size %u or vocabulary size %u is invalid "
                       "(expected header %d and a vocabulary of at least 2)", path, header, vocab, MS_SHARD_HEADER);
    if (n > (uint64_t)(INT64_MAX / 4) || (int64_t)(MS_SHARD_HEADER + 4 * n) != file_bytes)
        return ms_fail(MS_ERR_FORMAT, "token shard %s: header says %llu tokens (%llu bytes) but the file has "
                       "%lld bytes; the file is truncated or was modified", path, (unsigned long long)n,
                       (unsigned long long)(MS_SHARD_HEADER + 4 * n), (long long)file_bytes);
    memset(info, 0, sizeof *info);
    info->version = (int32_t)version;
    info->vocab_size = (int32_t)vocab;
    info->n_tokens = (int64_t)n;
    memcpy(info->tokenizer, h + 32, 32);
    info->tokenizer[32] = 0;
    return MS_OK;
}

ms_status ms_shard_info_read(const char *path, ms_shard_info *out) {
    if (!path || !out) return ms_fail(MS_ERR_INVALID, "ms_shard_info_read: path and out are required");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ms_fail(MS_ERR_IO, "token shard %s: %s", path, strerror(errno));
    struct stat st;
    uint8_t h[MS_SHARD_HEADER] = {0};
    ssize_t got = fstat(fd, &st) == 0 ? read(fd, h, sizeof h) : -1;
    close(fd);
    if (got < 0) return ms_fail(MS_ERR_IO, "token shard %s: %s", path, strerror(errno));
    return parse_header(path, h, (int64_t)st.st_size, out);
}

ms_status ms_shard_open(ms_shard *s, const char *path, int32_t expect_vocab, const char *expect_tokenizer) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        int err = errno;
        return ms_fail(MS_ERR_IO, "token shard %s: %s%s", path, strerror(err),
                       err == ENOENT ? "; run `make data` or point data.train/data.val at a shard" : "");
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ms_fail(MS_ERR_IO, "token shard %s: %s", path, strerror(errno));
    }
    void *map = st.st_size > 0 ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (st.st_size > 0 && map == MAP_FAILED)
        return ms_fail(MS_ERR_IO, "token shard %s: cannot map: %s", path, strerror(errno));
    s->map = map;
    s->map_bytes = (int64_t)st.st_size;
    uint8_t empty[MS_SHARD_HEADER] = {0};
    ms_status st2 = parse_header(path, map ? (const uint8_t *)map : empty, s->map_bytes, &s->info);
    if (st2 != MS_OK) {
        ms_shard_close(s);
        return st2;
    }
    s->tokens = (const uint32_t *)((const uint8_t *)map + MS_SHARD_HEADER);
    if (expect_vocab > 0 && s->info.vocab_size != expect_vocab) {
        ms_shard_close(s);
        return ms_fail(MS_ERR_FORMAT, "token shard %s: vocabulary size %d, but model.vocab_size is %d; the "
                       "shard was made with another tokenizer — set model.vocab_size = %d or use a matching shard",
                       path, s->info.vocab_size, expect_vocab, s->info.vocab_size);
    }
    if (expect_tokenizer && strcmp(expect_tokenizer, s->info.tokenizer) != 0) {
        ms_shard_close(s);
        return ms_fail(MS_ERR_FORMAT, "token shard %s: made by tokenizer \"%s\", but data.tokenizer is \"%s\"",
                       path, s->info.tokenizer, expect_tokenizer);
    }
    for (int64_t i = 0; i < s->info.n_tokens; i++) {
        if (s->tokens[i] >= (uint32_t)s->info.vocab_size) {
            ms_status bad = ms_fail(MS_ERR_FORMAT, "token shard %s: token %lld is %u, outside the vocabulary "
                                    "of %d; the file is corrupt", path, (long long)i, s->tokens[i],
                                    s->info.vocab_size);
            ms_shard_close(s);
            return bad;
        }
    }
    return MS_OK;
}

void ms_shard_close(ms_shard *s) {
    if (s->map) munmap(s->map, (size_t)s->map_bytes);
    s->map = NULL;
    s->tokens = NULL;
}

ms_status ms_shard_write(const char *path, const uint32_t *tokens, int64_t n, int32_t vocab, const char *tokenizer) {
    if (!path || (n > 0 && !tokens) || n < 0 || vocab < 2 || !tokenizer || strlen(tokenizer) > 32)
        return ms_fail(MS_ERR_INVALID, "ms_shard_write %s: needs tokens, n >= 0, vocab >= 2 and a tokenizer id "
                       "of at most 32 bytes", path ? path : "(null)");
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] >= (uint32_t)vocab)
            return ms_fail(MS_ERR_INVALID, "ms_shard_write %s: token %lld is %u, outside the vocabulary of %d",
                           path, (long long)i, tokens[i], vocab);
    uint8_t h[MS_SHARD_HEADER] = {0};
    uint32_t version = MS_SHARD_VERSION, header = MS_SHARD_HEADER, v = (uint32_t)vocab;
    uint64_t count = (uint64_t)n;
    memcpy(h, MS_SHARD_MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &header, 4);
    memcpy(h + 16, &v, 4);
    memcpy(h + 24, &count, 8);
    memcpy(h + 32, tokenizer, strlen(tokenizer));

    ms_span spans[2] = {{h, sizeof h}, {tokens, n * 4}};
    return ms_write_atomic("token shard", path, spans, 2);
}
