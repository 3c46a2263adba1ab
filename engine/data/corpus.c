/*
 * data/corpus.c — a corpus of text files into train/val token shards
 * (ms_tokenize_files; the contract is in moonspeed.h).
 *
 * Pipeline, one batch (about 16 MB of text, or HELD small files) at a time:
 *   1. the calling thread gathers blocks: plain-text files are mapped, JSONL
 *      lines decoded ("text" field, JSON escapes undone) into the batch buffer;
 *      documents longer than BLOCK are cut after a '\n' that is followed by a
 *      printable ASCII character — no piece of the pre-split pattern crosses
 *      such a point, so the cut changes no token;
 *   2. OpenMP threads encode the blocks (dynamic schedule, one tokenizer
 *      context per thread); block i writes its tokens where its text sits in
 *      the batch, since a text never has more tokens than bytes;
 *   3. the calling thread appends the tokens, in block order, to the train or
 *      val buffer, with BOS where a document (or its run of blocks in one
 *      split) starts and EOS where it ends, and writes a shard whenever a
 *      buffer is full.
 * The output depends on the inputs alone, never on the thread count.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/status.h"
#include "data/data.h"
#include "data/tokenizer.h"

#define BLOCK (16 << 10)          /* bytes of text per block, about */
#define BATCH (16 << 20)          /* bytes of text per batch, about */
#define DEFAULT_SHARD (1LL << 26) /* tokens per shard */
#define HELD 1024                 /* finished plain-text files whose mappings a batch may hold */

/* --- the input list -------------------------------------------------------- */

typedef struct input {
    char *path;
    int jsonl;
    int64_t bytes;
} input;

typedef struct inputs {
    input *v;
    int64_t n, cap, bytes;
} inputs;

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static ms_status add_input(inputs *in, const char *path, int64_t bytes) {
    if (in->n == in->cap) {
        int64_t cap = in->cap ? 2 * in->cap : 64;
        input *v = realloc(in->v, sizeof *v * (size_t)cap);
        if (!v) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory listing inputs");
        in->v = v, in->cap = cap;
    }
    input *x = &in->v[in->n];
    x->path = strdup(path);
    if (!x->path) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory listing inputs");
    x->jsonl = ends_with(path, ".jsonl") || ends_with(path, ".json");
    x->bytes = bytes;
    in->n++;
    in->bytes += bytes;
    return MS_OK;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A file, or a directory walked recursively in name order (hidden entries skipped). */
static ms_status collect(inputs *in, const char *path, int depth) {
    struct stat st;
    if (stat(path, &st) != 0)
        return ms_fail(MS_ERR_IO, "tokenize: input %s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) return add_input(in, path, (int64_t)st.st_size);
    if (!S_ISDIR(st.st_mode))
        return ms_fail(MS_ERR_INVALID, "tokenize: input %s is neither a file nor a directory", path);
    if (depth > 64) return ms_fail(MS_ERR_INVALID, "tokenize: input %s: directories nest deeper than 64", path);
    DIR *d = opendir(path);
    if (!d) return ms_fail(MS_ERR_IO, "tokenize: input %s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    ms_status s = MS_OK;
    while (s == MS_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(names, sizeof *names * cap);
            if (!grown) s = ms_fail(MS_ERR_NOMEM, "tokenize: out of memory listing %s", path);
            else names = grown;
        }
        if (s == MS_OK && !(names[n++] = strdup(e->d_name))) s = ms_fail(MS_ERR_NOMEM, "tokenize: out of memory");
    }
    closedir(d);
    if (s == MS_OK) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (s == MS_OK && names[i]) {
            size_t len = strlen(path) + strlen(names[i]) + 2;
            char *full = malloc(len);
            if (!full) s = ms_fail(MS_ERR_NOMEM, "tokenize: out of memory");
            else {
                snprintf(full, len, "%s%s%s", path, ends_with(path, "/") ? "" : "/", names[i]);
                s = collect(in, full, depth + 1);
                free(full);
            }
        }
        free(names[i]);
    }
    free(names);
    return s;
}

/* --- JSONL: the "text" field of one line ------------------------------------- */

typedef struct buf {
    uint8_t *p;
    int64_t n, cap;
} buf;

static int reserve(buf *b, int64_t more) {
    if (b->n + more <= b->cap) return 0;
    int64_t cap = b->cap ? b->cap : 1 << 20;
    while (cap < b->n + more) cap *= 2;
    uint8_t *p = realloc(b->p, (size_t)cap);
    if (!p) return -1;
    b->p = p, b->cap = cap;
    return 0;
}

static int hexval(uint8_t c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int put_utf8(uint8_t *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return o[0] = (uint8_t)(0xc0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000)
        return o[0] = (uint8_t)(0xe0 | cp >> 12), o[1] = (uint8_t)(0x80 | ((cp >> 6) & 63)),
               o[2] = (uint8_t)(0x80 | (cp & 63)), 3;
    return o[0] = (uint8_t)(0xf0 | cp >> 18), o[1] = (uint8_t)(0x80 | ((cp >> 12) & 63)),
           o[2] = (uint8_t)(0x80 | ((cp >> 6) & 63)), o[3] = (uint8_t)(0x80 | (cp & 63)), 4;
}

/* Parses the JSON string at p[*i] (the opening quote); appends its text to out
 * when out is not NULL. Returns 0, or -1 when malformed. Lone surrogates
 * become U+FFFD. */
static int json_string(const uint8_t *p, int64_t n, int64_t *i, buf *out) {
    int64_t k = *i + 1;
    if (out && reserve(out, n - k + 4)) return -2;
    while (k < n) {
        uint8_t c = p[k];
        if (c == '"') {
            *i = k + 1;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c != '\\') {
            int64_t run = k;
            while (run < n && p[run] != '"' && p[run] != '\\' && p[run] >= 0x20) run++;
            if (out) memcpy(out->p + out->n, p + k, (size_t)(run - k)), out->n += run - k;
            k = run;
            continue;
        }
        if (k + 1 >= n) return -1;
        uint8_t e = p[k + 1], ch;
        k += 2;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp = 0;
            for (int j = 0; j < 4; j++) {
                int h = k + j < n ? hexval(p[k + j]) : -1;
                if (h < 0) return -1;
                cp = cp << 4 | (uint32_t)h;
            }
            k += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && k + 5 < n && p[k] == '\\' && p[k + 1] == 'u') {
                uint32_t lo = 0;
                int ok = 1;
                for (int j = 0; j < 4; j++) {
                    int h = hexval(p[k + 2 + j]);
                    if (h < 0) ok = 0;
                    lo = lo << 4 | (uint32_t)(h < 0 ? 0 : h);
                }
                if (ok && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    k += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd;
            if (out) out->n += put_utf8(out->p + out->n, cp);
            continue;
        }
        default: return -1;
        }
        if (out) out->p[out->n++] = ch;
    }
    return -1;
}

static void skip_ws(const uint8_t *p, int64_t n, int64_t *i) {
    while (*i < n && (p[*i] == ' ' || p[*i] == '\t' || p[*i] == '\r' || p[*i] == '\n')) (*i)++;
}

/* Skips any JSON value at p[*i]; 0 or -1. */
static int json_skip(const uint8_t *p, int64_t n, int64_t *i) {
    skip_ws(p, n, i);
    if (*i >= n) return -1;
    if (p[*i] == '"') return json_string(p, n, i, NULL);
    if (p[*i] == '{' || p[*i] == '[') {
        int depth = 0;
        while (*i < n) {
            uint8_t c = p[*i];
            if (c == '"') {
                if (json_string(p, n, i, NULL)) return -1;
                continue;
            }
            if (c == '{' || c == '[') depth++;
            if (c == '}' || c == ']') depth--;
            (*i)++;
            if (depth == 0) return 0;
        }
        return -1;
    }
    int64_t k = *i;
    while (*i < n && p[*i] != ',' && p[*i] != '}' && p[*i] != ']' && p[*i] != ' ' && p[*i] != '\t' && p[*i] != '\r')
        (*i)++;
    return *i > k ? 0 : -1;
}

/* The "text" of one JSONL line into out. Returns 0, -1 when the line is not a
 * JSON object, -3 when it has no string "text" (keys listed into keys). */
static int json_text(const uint8_t *p, int64_t n, buf *out, char *keys, size_t keys_cap) {
    int64_t i = 0;
    int found = 0;
    skip_ws(p, n, &i);
    if (i >= n || p[i] != '{') return -1;
    i++;
    keys[0] = 0;
    skip_ws(p, n, &i);
    if (i < n && p[i] == '}') {
        i++;
    } else {
        for (;;) {
            skip_ws(p, n, &i);
            if (i >= n || p[i] != '"') return -1;
            int64_t k0 = i;
            if (json_string(p, n, &i, NULL)) return -1;
            int is_text = i - k0 == 6 && memcmp(p + k0, "\"text\"", 6) == 0;
            size_t kl = strlen(keys);
            if (kl + (size_t)(i - k0) + 2 < keys_cap)
                snprintf(keys + kl, keys_cap - kl, "%s%.*s", kl ? ", " : "", (int)(i - k0 - 2), (const char *)p + k0 + 1);
            skip_ws(p, n, &i);
            if (i >= n || p[i] != ':') return -1;
            i++;
            skip_ws(p, n, &i);
            if (is_text && !found && i < n && p[i] == '"') {
                int r = json_string(p, n, &i, out);
                if (r) return r == -2 ? -2 : -1;
                found = 1;
            } else if (json_skip(p, n, &i)) {
                return -1;
            }
            skip_ws(p, n, &i);
            if (i < n && p[i] == ',') {
                i++;
                continue;
            }
            if (i < n && p[i] == '}') {
                i++;
                break;
            }
            return -1;
        }
    }
    skip_ws(p, n, &i);
    if (i < n) return -1; /* something after the object */
    return found ? 0 : -3;
}

/* --- blocks and batches ------------------------------------------------------ */

typedef struct block {
    const uint8_t *text;
    int64_t n;
    int64_t out;       /* offset of its tokens in the batch's token buffer */
    int64_t tokens;    /* filled by the encoder */
    int64_t text_off;  /* in_text: where text starts in the batch's decoded text */
    int in_text;       /* 1: decoded JSONL text (text is set once the batch is full) */
    int first, last;   /* first / last block of its document */
} block;

typedef struct run {
    const ms_tokenizer *t;
    const ms_tokenize_options *opt;
    const char *out_dir;
    inputs in;
    /* the reader */
    int64_t file;      /* current input */
    const uint8_t *map;
    int64_t map_bytes, pos, line;
    void *held[HELD];         /* mappings of finished files whose blocks are in the batch */
    int64_t held_bytes[HELD];
    int n_held;
    int64_t doc_pos;   /* plain text: bytes of the current document already cut */
    buf text;          /* batch text decoded from JSONL */
    int pending_jsonl; /* a decoded JSONL document not yet cut into blocks */
    int64_t pend_at, pend_n, pend_done; /* its rest: text.p[pend_at .. pend_at + pend_n) */
    int pend_first;    /* no block of it was pushed yet */
    /* the batch */
    block *blocks;
    int64_t n_blocks, cap_blocks, batch_bytes;
    uint32_t *tok;
    int64_t tok_cap;
    /* output */
    uint32_t *split_buf[2];   /* 0 train, 1 val */
    int64_t split_n[2], shard_cap;
    int32_t shards[2];
    int64_t tokens[2];
    int64_t block_index;      /* global ordinal of the next block */
    int prev_split;           /* split of the previous block of the current document */
    /* progress */
    int64_t done_bytes, documents;
    int64_t files_bytes;      /* input bytes of the files finished */
    double t0, last_print;
    int tty;
} run;

static int is_val(const run *r, int64_t k) {
    double f = r->opt ? r->opt->val_fraction : 0.0;
    return f > 0 && (int64_t)((double)(k + 1) * f) > (int64_t)((double)k * f);
}

static ms_status push_block(run *r, const uint8_t *text, int64_t n, int first, int last, int64_t text_off) {
    if (r->n_blocks == r->cap_blocks) {
        int64_t cap = r->cap_blocks ? 2 * r->cap_blocks : 4096;
        block *b = realloc(r->blocks, sizeof *b * (size_t)cap);
        if (!b) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory");
        r->blocks = b, r->cap_blocks = cap;
    }
    block *b = &r->blocks[r->n_blocks++];
    b->text = text, b->n = n, b->first = first, b->last = last;
    b->in_text = text_off >= 0;
    b->text_off = text_off;
    b->out = r->batch_bytes;
    b->tokens = 0;
    r->batch_bytes += n;
    return MS_OK;
}

/* The end of the next block of doc[0..n): about BLOCK bytes, cut after a '\n'
 * followed by a printable ASCII character, or the whole rest. */
static int64_t cut(const uint8_t *doc, int64_t n) {
    if (n <= BLOCK + BLOCK / 2) return n;
    for (int64_t i = BLOCK; i + 1 < n; i++) {
        const uint8_t *nl = memchr(doc + i, '\n', (size_t)(n - 1 - i));
        if (!nl) return n;
        i = nl - doc;
        if (doc[i + 1] > 0x20 && doc[i + 1] < 0x7f) return i + 1;
    }
    return n;
}

static void close_map(run *r) {
    if (r->map && r->map_bytes > 0) munmap((void *)r->map, (size_t)r->map_bytes);
    r->map = NULL;
    r->map_bytes = 0;
}

static void release_held(run *r) {
    for (int i = 0; i < r->n_held; i++) munmap(r->held[i], (size_t)r->held_bytes[i]);
    r->n_held = 0;
}

static ms_status open_input(run *r) {
    input *x = &r->in.v[r->file];
    r->pos = 0, r->line = 0, r->doc_pos = 0;
    int fd = open(x->path, O_RDONLY);
    if (fd < 0) return ms_fail(MS_ERR_IO, "tokenize: input %s: %s", x->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return ms_fail(MS_ERR_IO, "tokenize: input %s: %s", x->path, strerror(errno));
    }
    r->map_bytes = (int64_t)st.st_size;
    r->map = NULL;
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            r->map_bytes = 0;
            return ms_fail(MS_ERR_IO, "tokenize: input %s: cannot map: %s", x->path, strerror(errno));
        }
        madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
        r->map = m;
    }
    close(fd);
    return MS_OK;
}

/* Fills the batch with blocks. Plain-text blocks point into their file's
 * mapping: a finished file's mapping is held until the batch is encoded, so
 * many small files share a batch. Returns MS_OK with n_blocks == 0 at the end. */
static ms_status fill_batch(run *r) {
    r->n_blocks = 0;
    r->batch_bytes = 0;
    r->text.n = 0;
    if (r->pending_jsonl) { /* the rest of a long document cut across batches */
        memmove(r->text.p, r->text.p + r->pend_at, (size_t)r->pend_n);
        r->pend_at = 0;
        r->text.n = r->pend_n;
    }
    while (r->batch_bytes < BATCH) {
        if (r->pending_jsonl) { /* cut the decoded document into blocks */
            const uint8_t *doc = r->text.p + r->pend_at;
            int64_t left = r->pend_n - r->pend_done;
            int64_t c = cut(doc + r->pend_done, left);
            TRY(push_block(r, NULL, c, r->pend_first, c == left, r->pend_at + r->pend_done));
            r->pend_first = 0;
            r->pend_at += r->pend_done + c, r->pend_n -= r->pend_done + c, r->pend_done = 0;
            if (r->pend_n == 0) r->pending_jsonl = 0;
            continue;
        }
        if (r->file >= r->in.n || r->n_held == HELD) break;
        input *x = &r->in.v[r->file];
        if (!r->map && r->pos == 0 && r->map_bytes == 0) {
            TRY(open_input(r));
            if (r->map_bytes == 0) { /* an empty file: nothing */
                r->files_bytes += x->bytes;
                r->file++;
                continue;
            }
        }
        if (r->pos >= r->map_bytes) { /* this file is done */
            if (!x->jsonl) { /* its blocks point into the mapping: keep it until the batch is encoded */
                r->held[r->n_held] = (void *)r->map;
                r->held_bytes[r->n_held++] = r->map_bytes;
                r->map = NULL;
                r->map_bytes = 0;
            } else {
                close_map(r);
            }
            r->files_bytes += x->bytes;
            r->file++;
            r->pos = 0;
            continue;
        }
        if (!x->jsonl) {
            if (r->pos == 0) r->documents++;
            int64_t c = cut(r->map + r->pos, r->map_bytes - r->pos);
            TRY(push_block(r, r->map + r->pos, c, r->pos == 0, r->pos + c == r->map_bytes, -1));
            r->pos += c;
            continue;
        }
        /* JSONL: one line */
        const uint8_t *p = r->map + r->pos;
        int64_t left = r->map_bytes - r->pos;
        const uint8_t *nl = memchr(p, '\n', (size_t)left);
        int64_t len = nl ? nl - p : left;
        r->pos += len + (nl != NULL);
        r->line++;
        int64_t blank = 0;
        while (blank < len && (p[blank] == ' ' || p[blank] == '\t' || p[blank] == '\r')) blank++;
        if (blank == len) continue;
        char keys[200];
        int64_t at = r->text.n;
        if (reserve(&r->text, len + 4)) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory");
        int rc = json_text(p, len, &r->text, keys, sizeof keys);
        if (rc == -2) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory");
        if (rc == -1)
            return ms_fail(MS_ERR_FORMAT, "tokenize: %s line %lld: not a JSON object; a JSONL file holds one object "
                           "per line, with the document in its \"text\" field", x->path, (long long)r->line);
        if (rc == -3)
            return ms_fail(MS_ERR_FORMAT, "tokenize: %s line %lld: no string field \"text\" (fields: %s); each line "
                           "needs the document in \"text\"", x->path, (long long)r->line, keys[0] ? keys : "none");
        if (r->text.n == at) continue; /* an empty document */
        r->documents++;
        r->pending_jsonl = 1;
        r->pend_at = at, r->pend_n = r->text.n - at, r->pend_done = 0, r->pend_first = 1;
    }
    return MS_OK;
}

/* --- output -------------------------------------------------------------------- */

static ms_status flush_split(run *r, int s) {
    if (r->split_n[s] == 0) return MS_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%05d.bin", r->out_dir, s ? "val" : "train", r->shards[s]);
    TRY(ms_shard_write(path, r->split_buf[s], r->split_n[s], r->t->vocab_size, r->t->id));
    r->shards[s]++;
    r->split_n[s] = 0;
    return MS_OK;
}

static ms_status put(run *r, int s, uint32_t id) {
    if (r->split_n[s] == r->shard_cap) TRY(flush_split(r, s));
    r->split_buf[s][r->split_n[s]++] = id;
    r->tokens[s]++;
    return MS_OK;
}

static ms_status append_batch(run *r) {
    for (int64_t i = 0; i < r->n_blocks; i++) {
        block *b = &r->blocks[i];
        int64_t k = r->block_index++;
        int s = is_val(r, k);
        if (b->first || s != r->prev_split) TRY(put(r, s, (uint32_t)r->t->bos));
        for (int64_t j = 0; j < b->tokens; j++) TRY(put(r, s, r->tok[b->out + j]));
        if (b->last || is_val(r, k + 1) != s) TRY(put(r, s, (uint32_t)r->t->eos));
        r->prev_split = s;
    }
    return MS_OK;
}

static void progress(run *r, int final) {
    if (!r->opt || !r->opt->progress) return;
    double t = ms_now(), dt = t - r->t0;
    if (!final && t - r->last_print < (r->tty ? 0.2 : 5.0)) return;
    r->last_print = t;
    int64_t raw = r->files_bytes + (r->map ? r->pos : 0);
    double frac = final || r->in.bytes == 0 ? 1.0 : (double)raw / (double)r->in.bytes;
    if (frac > 1) frac = 1;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    double mbs = dt > 0 ? (double)r->done_bytes / dt / 1e6 : 0.0;
    fprintf(stderr, "%stokenize [%s] %3.0f%%  %.1f MB/s  %lld documents  %lld tokens%s", r->tty ? "\r" : "", bar,
            100 * frac, mbs, (long long)r->documents, (long long)(r->tokens[0] + r->tokens[1]),
            r->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* --- the call ------------------------------------------------------------------ */

static ms_status check_out_dir(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ms_fail(MS_ERR_IO, "tokenize: output directory %s does not exist", dir);
    DIR *d = opendir(dir);
    if (!d) return ms_fail(MS_ERR_IO, "tokenize: output directory %s: %s", dir, strerror(errno));
    struct dirent *e;
    ms_status s = MS_OK;
    while ((e = readdir(d)))
        if ((strncmp(e->d_name, "train-", 6) == 0 || strncmp(e->d_name, "val-", 4) == 0) && ends_with(e->d_name, ".bin")) {
            s = ms_fail(MS_ERR_INVALID, "tokenize: %s already holds token shards (%s); choose another output "
                        "directory or remove them", dir, e->d_name);
            break;
        }
    closedir(d);
    return s;
}

static ms_status encode_batch(run *r, int threads) {
    if (r->batch_bytes > r->tok_cap) {
        free(r->tok);
        r->tok = malloc(sizeof *r->tok * (size_t)r->batch_bytes);
        r->tok_cap = r->tok ? r->batch_bytes : 0;
        if (!r->tok) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory for %lld tokens", (long long)r->batch_bytes);
    }
    ms_status failed = MS_OK;
    char msg[1024] = "";
#pragma omp parallel num_threads(threads)
    {
        ms_tok_ctx c;
        ms_status st = ms_tok_ctx_init(&c, r->t);
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < r->n_blocks; i++) {
            if (st != MS_OK) continue;
            block *b = &r->blocks[i];
            st = ms_tok_encode(r->t, &c, b->text, b->n, 0, r->tok + b->out, b->n, &b->tokens);
        }
        if (st != MS_OK) {
#pragma omp critical(ms_tokenize_error)
            if (failed == MS_OK) {
                failed = st;
                snprintf(msg, sizeof msg, "%s", ms_last_error());
            }
        }
        ms_tok_ctx_free(&c);
    }
    if (failed != MS_OK) return ms_fail(failed, "%s", msg);
    return MS_OK;
}

static ms_status tokenize(run *r, int threads) {
    for (;;) {
        TRY(fill_batch(r));
        if (r->n_blocks == 0) break;
        for (int64_t i = 0; i < r->n_blocks; i++) /* decoded JSONL text may have moved while growing */
            if (r->blocks[i].in_text) r->blocks[i].text = r->text.p + r->blocks[i].text_off;
        TRY(encode_batch(r, threads));
        TRY(append_batch(r));
        for (int64_t i = 0; i < r->n_blocks; i++) r->done_bytes += r->blocks[i].n;
        release_held(r);
        progress(r, 0);
    }
    TRY(flush_split(r, 0));
    TRY(flush_split(r, 1));
    return MS_OK;
}

ms_status ms_tokenize_files(const ms_tokenizer *t, const char *const *paths, int32_t n_paths, const char *out_dir,
                            const ms_tokenize_options *opt, ms_tokenize_report *out) {
    if (!t || !paths || n_paths < 1 || !out_dir)
        return ms_fail(MS_ERR_INVALID, "ms_tokenize_files: needs a tokenizer, at least one input and an output directory");
    if (opt && (opt->val_fraction < 0 || opt->val_fraction >= 1 || opt->val_fraction != opt->val_fraction))
        return ms_fail(MS_ERR_INVALID, "tokenize: val_fraction = %g; it must be in [0, 1)", opt->val_fraction);
    if (opt && opt->shard_tokens < 0)
        return ms_fail(MS_ERR_INVALID, "tokenize: shard_tokens = %lld; it must be >= 0 (0 = %lld)",
                       (long long)opt->shard_tokens, DEFAULT_SHARD);
    if (opt && opt->shard_tokens > 0 && opt->shard_tokens < 2)
        return ms_fail(MS_ERR_INVALID, "tokenize: shard_tokens = %lld; a shard holds at least 2 tokens",
                       (long long)opt->shard_tokens);
    TRY(check_out_dir(out_dir));
    run *r = calloc(1, sizeof *r);
    if (!r) return ms_fail(MS_ERR_NOMEM, "tokenize: out of memory");
    r->t = t, r->opt = opt, r->out_dir = out_dir;
    r->t0 = ms_now();
    r->tty = isatty(2);
    r->prev_split = -1;
    ms_status st = MS_OK;
    for (int32_t i = 0; st == MS_OK && i < n_paths; i++) st = collect(&r->in, paths[i], 0);
    if (st == MS_OK && r->in.n == 0)
        st = ms_fail(MS_ERR_INVALID, "tokenize: the inputs hold no files (hidden files are skipped)");
    r->shard_cap = opt && opt->shard_tokens > 0 ? opt->shard_tokens : DEFAULT_SHARD;
    for (int s = 0; st == MS_OK && s < 2; s++) {
        r->split_buf[s] = malloc(sizeof(uint32_t) * (size_t)r->shard_cap);
        if (!r->split_buf[s]) st = ms_fail(MS_ERR_NOMEM, "tokenize: out of memory for a shard of %lld tokens",
                                           (long long)r->shard_cap);
    }
    int threads = opt && opt->threads > 0 ? opt->threads : omp_get_num_procs();
    if (st == MS_OK) st = tokenize(r, threads);
    close_map(r);
    release_held(r);
    if (st == MS_OK) progress(r, 1);
    if (st != MS_OK) { /* remove what this call wrote: no partial corpus is left behind */
        char path[4096];
        for (int s = 0; s < 2; s++)
            for (int32_t k = 0; k < r->shards[s]; k++) {
                snprintf(path, sizeof path, "%s/%s-%05d.bin", out_dir, s ? "val" : "train", k);
                unlink(path);
            }
    }
    if (st == MS_OK && out) {
        memset(out, 0, sizeof *out);
        out->files = r->in.n;
        out->documents = r->documents;
        out->bytes = r->done_bytes;
        out->train_tokens = r->tokens[0];
        out->val_tokens = r->tokens[1];
        out->train_shards = r->shards[0];
        out->val_shards = r->shards[1];
        out->seconds = ms_now() - r->t0;
    }
    for (int64_t i = 0; i < r->in.n; i++) free(r->in.v[i].path);
    free(r->in.v);
    free(r->text.p);
    free(r->blocks);
    free(r->tok);
    free(r->split_buf[0]);
    free(r->split_buf[1]);
    free(r);
    return st;
}
