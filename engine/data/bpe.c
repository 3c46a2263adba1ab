/*
 * data/bpe.c — encoding and decoding (see tokenizer.h for the algorithm) and
 * the public ms_tokenizer calls.
 *
 * Hot path, per piece of the pre-split: one hash lookup when the piece is a
 * token (most are); otherwise tiktoken's merge loop, O(n^2) on a stack array
 * for pieces up to SMALL bytes and a heap of (rank, position) pairs beyond,
 * so a megabyte of one letter stays O(n log n). Both pick the lowest rank,
 * leftmost on ties, so they give the same tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "data/tokenizer.h"

#define SMALL 96                /* pieces up to this many bytes merge on the stack */
#define NO_RANK INT32_MAX
#define JIT_STACK (1 << 20)     /* bytes of PCRE2 JIT stack per context */

/* --- the vocabulary's hash table ----------------------------------------- */

static inline uint64_t load_head(const uint8_t *p, int64_t n) {
    uint64_t w = 0;
    if (n >= 8) {
        memcpy(&w, p, 8);
        return w;
    }
    for (int64_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    return w;
}

static inline uint64_t hash_bytes(uint64_t head, const uint8_t *p, int64_t n) {
    uint64_t h = (head ^ 0x9e3779b97f4a7c15ull * (uint64_t)(n + 1)) * 0xbf58476d1ce4e5b9ull;
    for (int64_t i = 8; i < n; i += 8) {
        uint64_t w = load_head(p + i, n - i < 8 ? n - i : 8);
        h = (h ^ (h >> 31) ^ w) * 0x94d049bb133111ebull;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    return h ^ (h >> 32);
}

static inline int32_t lookup(const ms_tokenizer *t, uint64_t head, const uint8_t *p, int64_t n) {
    uint64_t i = hash_bytes(head, p, n) & t->mask;
    for (;;) {
        const ms_tok_slot *s = &t->slots[i];
        if (!s->len) return -1;
        if (s->len == (uint32_t)n && s->head == head &&
            (n <= 8 || memcmp(t->blob + t->off[s->rank] + 8, p + 8, (size_t)(n - 8)) == 0))
            return s->rank;
        i = (i + 1) & t->mask;
    }
}

int32_t ms_tok_rank(const ms_tokenizer *t, const uint8_t *p, int64_t n) {
    if (n == 2) return t->pair_rank[p[0] | p[1] << 8];
    return lookup(t, load_head(p, n), p, n);
}

/* The same through a context's cache: the big table is megabytes, so each of
 * its lookups is a cache miss, while the strings a text asks about repeat. */
static inline int32_t rank_c(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *p, int64_t n) {
    if (n == 2) return t->pair_rank[p[0] | p[1] << 8];
    uint64_t head = load_head(p, n);
    if (n > 8) return lookup(t, head, p, n);
    ms_tok_slot *e = &c->cache[((head ^ (uint64_t)n) * 0x9e3779b97f4a7c15ull) >> 52];
    if (e->len == (uint32_t)n && e->head == head) return e->rank;
    int32_t r = lookup(t, head, p, n);
    *e = (ms_tok_slot){.head = head, .len = (uint32_t)n, .rank = r};
    return r;
}

/* Builds the hash table over ranks 0..n_ranks-1; fails on a duplicate. */
static ms_status build_table(ms_tokenizer *t, const char *path) {
    uint32_t size = 1;
    while (size < 2u * (uint32_t)t->n_ranks) size <<= 1;
    t->slots = calloc(size, sizeof *t->slots);
    t->pair_rank = malloc(sizeof *t->pair_rank * 65536);
    if (!t->slots || !t->pair_rank)
        return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory for the vocabulary table", path);
    t->mask = size - 1;
    for (int i = 0; i < 65536; i++) t->pair_rank[i] = -1;
    for (int32_t r = 0; r < t->n_ranks; r++) {
        const uint8_t *p = t->blob + t->off[r];
        int64_t n = t->off[r + 1] - t->off[r];
        if (n == 0)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s: token %d is empty; every token must have at least one byte",
                           path, r);
        uint64_t head = load_head(p, n);
        uint64_t i = hash_bytes(head, p, n) & t->mask;
        while (t->slots[i].len) {
            const ms_tok_slot *s = &t->slots[i];
            if (s->len == (uint32_t)n && memcmp(t->blob + t->off[s->rank], p, (size_t)n) == 0)
                return ms_fail(MS_ERR_FORMAT, "tokenizer %s: tokens %d and %d have the same bytes; each token "
                               "must be unique (the file is corrupt)", path, s->rank, r);
            i = (i + 1) & t->mask;
        }
        t->slots[i] = (ms_tok_slot){.head = head, .len = (uint32_t)n, .rank = r};
        if (n == 2) t->pair_rank[p[0] | p[1] << 8] = r;
    }
    return MS_OK;
}

/* --- per-thread contexts ------------------------------------------------- */

ms_status ms_tok_ctx_init(ms_tok_ctx *c, const ms_tokenizer *t) {
    memset(c, 0, sizeof *c);
    if (t->kind != MS_TOK_BPE) return MS_OK;
    c->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    c->mc = pcre2_match_context_create(NULL);
    c->stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK, NULL);
    c->cache = calloc(MS_TOK_CACHE, sizeof *c->cache);
    if (!c->md || !c->mc || !c->stack || !c->cache) {
        ms_tok_ctx_free(c);
        return ms_fail(MS_ERR_NOMEM, "tokenizer: out of memory for the regular-expression state");
    }
    pcre2_jit_stack_assign(c->mc, NULL, c->stack);
    return MS_OK;
}

void ms_tok_ctx_free(ms_tok_ctx *c) {
    if (c->md) pcre2_match_data_free(c->md);
    if (c->mc) pcre2_match_context_free(c->mc);
    if (c->stack) pcre2_jit_stack_free(c->stack);
    free(c->cache);
    free(c->scratch);
    memset(c, 0, sizeof *c);
}

static int grow(ms_tok_ctx *c, int64_t bytes) {
    if (c->scratch_bytes >= bytes) return 0;
    void *p = realloc(c->scratch, (size_t)bytes);
    if (!p) return -1;
    c->scratch = p;
    c->scratch_bytes = bytes;
    return 0;
}

/* --- output -------------------------------------------------------------- */

typedef struct sink {
    uint32_t *out;
    int64_t cap, n;
} sink;

static inline void emit(sink *s, uint32_t id) {
    if (s->n < s->cap) s->out[s->n] = id;
    s->n++;
}

/* --- BPE merges ---------------------------------------------------------- */

/* tiktoken's loop on the stack: pos[] are part boundaries, rk[i] the rank of
 * parts i and i+1 joined. */
static void merge_small(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *p, int n, sink *s) {
    int32_t pos[SMALL + 1], rk[SMALL + 1];
    int m = n + 1; /* boundaries */
    for (int i = 0; i <= n; i++) pos[i] = i;
    for (int i = 0; i + 2 <= n; i++) {
        int32_t r = rank_c(t, c, p + i, 2);
        rk[i] = r < 0 ? NO_RANK : r;
    }
    rk[n - 1] = rk[n] = NO_RANK;
    while (m > 2) {
        int best = -1;
        int32_t br = NO_RANK;
        for (int i = 0; i + 2 < m; i++)
            if (rk[i] < br) br = rk[i], best = i;
        if (best < 0) break;
        /* join parts best and best+1: drop boundary best+1 */
        memmove(pos + best + 1, pos + best + 2, sizeof(int32_t) * (size_t)(m - best - 2));
        memmove(rk + best + 1, rk + best + 2, sizeof(int32_t) * (size_t)(m - best - 2));
        m--;
        if (best + 2 < m) {
            int32_t r = rank_c(t, c, p + pos[best], pos[best + 2] - pos[best]);
            rk[best] = r < 0 ? NO_RANK : r;
        } else {
            rk[best] = NO_RANK;
        }
        if (best > 0) {
            int32_t r = rank_c(t, c, p + pos[best - 1], pos[best + 1] - pos[best - 1]);
            rk[best - 1] = r < 0 ? NO_RANK : r;
        }
    }
    for (int i = 0; i + 1 < m; i++) emit(s, (uint32_t)rank_c(t, c, p + pos[i], pos[i + 1] - pos[i]));
}

/* The same merges for long pieces: parts are a linked list (a part is named
 * by its first byte), candidate pairs sit in a min-heap keyed (rank, first
 * byte); an entry is stale when its part is gone or its pair changed rank. */
static void heap_push(uint64_t *h, int64_t *n, uint64_t key) {
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t up = (i - 1) / 2;
        if (h[up] <= key) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = key;
}

static uint64_t heap_pop(uint64_t *h, int64_t *n) {
    uint64_t top = h[0], last = h[--(*n)];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (last <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

static ms_status merge_large(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *p, int64_t n, sink *s) {
    /* next, prev, pair rank: int32 each per byte; heap: up to 3n entries */
    if (n > INT32_MAX / 4 || grow(c, n * 12 + n * 3 * 8 + 64))
        return ms_fail(MS_ERR_NOMEM, "tokenizer: out of memory merging a piece of %lld bytes", (long long)n);
    int32_t *next = c->scratch, *prev = next + n, *prk = prev + n;
    uint64_t *heap = (uint64_t *)(((uintptr_t)(prk + n) + 7) & ~(uintptr_t)7);
    int64_t hn = 0;
    for (int64_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prev[i] = (int32_t)i - 1;
        int32_t r = i + 1 < n ? rank_c(t, c, p + i, 2) : -1;
        prk[i] = r < 0 ? NO_RANK : r;
        if (r >= 0) heap_push(heap, &hn, (uint64_t)r << 32 | (uint64_t)i);
    }
#define END(j) (next[j] < 0 ? n : next[j])
    while (hn > 0) {
        uint64_t key = heap_pop(heap, &hn);
        int32_t r = (int32_t)(key >> 32), i = (int32_t)(key & 0xffffffffu);
        if (prk[i] != r || next[i] < 0) continue; /* stale */
        int32_t j = next[i];                    /* i absorbs j */
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        prk[j] = NO_RANK;
        next[j] = -2; /* dead */
        if (next[i] >= 0) {
            int32_t nr = rank_c(t, c, p + i, END(next[i]) - i);
            prk[i] = nr < 0 ? NO_RANK : nr;
            if (nr >= 0) heap_push(heap, &hn, (uint64_t)nr << 32 | (uint64_t)i);
        } else {
            prk[i] = NO_RANK;
        }
        if (prev[i] >= 0) {
            int32_t a = prev[i];
            int32_t nr = rank_c(t, c, p + a, END(i) - a);
            prk[a] = nr < 0 ? NO_RANK : nr;
            if (nr >= 0) heap_push(heap, &hn, (uint64_t)nr << 32 | (uint64_t)a);
        }
    }
    for (int64_t i = 0; i >= 0 && i < n; i = next[i]) emit(s, (uint32_t)rank_c(t, c, p + i, END(i) - i));
#undef END
    return MS_OK;
}

static inline ms_status piece(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *p, int64_t n, sink *s) {
    if (n == 1) {
        emit(s, (uint32_t)t->byte_rank[p[0]]);
        return MS_OK;
    }
    int32_t r = rank_c(t, c, p, n);
    if (r >= 0) {
        emit(s, (uint32_t)r);
        return MS_OK;
    }
    if (n <= SMALL) {
        merge_small(t, c, p, (int)n, s);
        return MS_OK;
    }
    return merge_large(t, c, p, n, s);
}

/* --- UTF-8 --------------------------------------------------------------- */

/* Length of the valid UTF-8 prefix of p[0..n): the rules PCRE2 checks (no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static int64_t valid_prefix(const uint8_t *p, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        int len;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) len = 2;
        else if (b >= 0xe0 && b <= 0xef) {
            len = 3;
            if (b == 0xe0) lo = 0xa0;
            if (b == 0xed) hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            len = 4;
            if (b == 0xf0) lo = 0x90;
            if (b == 0xf4) hi = 0x8f;
        } else return i;
        if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
        for (int k = 2; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80) return i;
        i += len;
    }
    return n;
}

/* --- pre-split and encode ------------------------------------------------ */

/* A valid UTF-8 run: pieces from the pattern. */
static ms_status split_run(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *p, int64_t n, sink *s) {
    PCRE2_SIZE off = 0, len = (PCRE2_SIZE)n;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    while (off < len) {
        int rc = t->jit ? pcre2_jit_match(t->re, p, len, off, PCRE2_NO_UTF_CHECK, c->md, c->mc)
                        : pcre2_match(t->re, p, len, off, PCRE2_NO_UTF_CHECK, c->md, c->mc);
        if (rc == PCRE2_ERROR_NOMATCH) {
            TRY(piece(t, c, p + off, (int64_t)(len - off), s)); /* the pattern covers every character */
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ms_fail(MS_ERR_INTERNAL, "tokenizer: the pre-split pattern failed at byte %zu: %s", off,
                           (const char *)msg);
        }
        PCRE2_SIZE a = ov[0], b = ov[1];
        if (a > off) TRY(piece(t, c, p + off, (int64_t)(a - off), s));
        if (b == a) { /* cannot happen with this pattern; step one character */
            b = a + 1;
            while (b < len && (p[b] & 0xc0) == 0x80) b++;
        }
        TRY(piece(t, c, p + a, (int64_t)(b - a), s));
        off = b;
    }
    return MS_OK;
}

/* Text without special tokens: valid runs through the pattern, invalid bytes alone. */
static ms_status encode_plain(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *p, int64_t n, sink *s) {
    if (t->kind == MS_TOK_BYTES) {
        for (int64_t i = 0; i < n; i++) emit(s, p[i]);
        return MS_OK;
    }
    int64_t i = 0;
    while (i < n) {
        int64_t v = valid_prefix(p + i, n - i);
        if (v > 0) TRY(split_run(t, c, p + i, v, s));
        i += v;
        if (i < n) emit(s, (uint32_t)t->byte_rank[p[i++]]);
    }
    return MS_OK;
}

/* The special token whose name starts at p (p[0..1] == "<|"), or -1. */
static int32_t special_at(const ms_tokenizer *t, const uint8_t *p, int64_t avail) {
    for (int32_t id = t->n_ranks; id < t->vocab_size; id++) {
        int64_t len = t->off[id + 1] - t->off[id];
        if (len <= avail && memcmp(t->blob + t->off[id], p, (size_t)len) == 0) return id;
    }
    return -1;
}

ms_status ms_tok_encode(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *text, int64_t n,
                        int32_t flags, uint32_t *out, int64_t cap, int64_t *n_out) {
    sink s = {out, cap, 0};
    if (flags & MS_ENCODE_BOS) emit(&s, (uint32_t)t->bos);
    if (flags & MS_ENCODE_SPECIALS) {
        int64_t start = 0, i = 0;
        while (i + 1 < n) {
            const uint8_t *q = memchr(text + i, '<', (size_t)(n - 1 - i));
            if (!q) break;
            i = q - text;
            int32_t id = text[i + 1] == '|' ? special_at(t, text + i, n - i) : -1;
            if (id < 0) {
                i++;
                continue;
            }
            TRY(encode_plain(t, c, text + start, i - start, &s));
            emit(&s, (uint32_t)id);
            i += t->off[id + 1] - t->off[id];
            start = i;
        }
        TRY(encode_plain(t, c, text + start, n - start, &s));
    } else {
        TRY(encode_plain(t, c, text, n, &s));
    }
    if (flags & MS_ENCODE_EOS) emit(&s, (uint32_t)t->eos);
    *n_out = s.n;
    return MS_OK;
}

/* --- the public calls ---------------------------------------------------- */

static const char *BYTES_NAMES[2] = {"<|begin_of_text|>", "<|end_of_text|>"};

static ms_status load_bytes(ms_tokenizer *t) {
    t->kind = MS_TOK_BYTES;
    snprintf(t->id, sizeof t->id, "bytes");
    t->n_ranks = 256;
    t->vocab_size = 258;
    t->bos = 256;
    t->eos = 257;
    size_t names = strlen(BYTES_NAMES[0]) + strlen(BYTES_NAMES[1]);
    t->blob = malloc(256 + names);
    t->off = malloc(sizeof *t->off * 259);
    if (!t->blob || !t->off) return ms_fail(MS_ERR_NOMEM, "tokenizer bytes: out of memory");
    for (int i = 0; i < 256; i++) t->blob[i] = (uint8_t)i, t->off[i] = (uint32_t)i, t->byte_rank[i] = i;
    uint32_t o = 256;
    for (int i = 0; i < 2; i++) {
        t->off[256 + i] = o;
        memcpy(t->blob + o, BYTES_NAMES[i], strlen(BYTES_NAMES[i]));
        o += (uint32_t)strlen(BYTES_NAMES[i]);
    }
    t->off[258] = o;
    return MS_OK;
}

ms_status ms_tokenizer_load(const char *path, ms_tokenizer **out) {
    if (!path || !out) return ms_fail(MS_ERR_INVALID, "ms_tokenizer_load: path and out are required");
    *out = NULL;
    ms_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", path);
    ms_status st = strcmp(path, "bytes") == 0 ? load_bytes(t) : ms_tok_load_file(t, path);
    if (st == MS_OK && t->kind == MS_TOK_BPE) st = build_table(t, path);
    if (st == MS_OK && t->kind == MS_TOK_BPE) st = ms_tok_finish(t, path);
    if (st != MS_OK) {
        ms_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MS_OK;
}

void ms_tokenizer_free(ms_tokenizer *t) {
    if (!t) return;
    if (t->re) pcre2_code_free(t->re);
    free(t->blob);
    free(t->off);
    free(t->slots);
    free(t->pair_rank);
    free(t);
}

const char *ms_tokenizer_id(const ms_tokenizer *t) { return t ? t->id : ""; }
int32_t ms_tokenizer_vocab_size(const ms_tokenizer *t) { return t ? t->vocab_size : 0; }
int32_t ms_tokenizer_bos(const ms_tokenizer *t) { return t ? t->bos : -1; }
int32_t ms_tokenizer_eos(const ms_tokenizer *t) { return t ? t->eos : -1; }

int32_t ms_tokenizer_special(const ms_tokenizer *t, const char *name) {
    if (!t || !name) return -1;
    int64_t n = (int64_t)strlen(name);
    for (int32_t id = t->n_ranks; id < t->vocab_size; id++)
        if (t->off[id + 1] - t->off[id] == n && memcmp(t->blob + t->off[id], name, (size_t)n) == 0) return id;
    return -1;
}

ms_status ms_tokenizer_token(const ms_tokenizer *t, int32_t id, const char **bytes, int32_t *n_bytes) {
    if (!t || !bytes || !n_bytes) return ms_fail(MS_ERR_INVALID, "ms_tokenizer_token: tokenizer, bytes and n_bytes are required");
    if (id < 0 || id >= t->vocab_size)
        return ms_fail(MS_ERR_INVALID, "token id %d is outside the vocabulary of tokenizer %s (0..%d)", id, t->id,
                       t->vocab_size - 1);
    *bytes = (const char *)t->blob + t->off[id];
    *n_bytes = (int32_t)(t->off[id + 1] - t->off[id]);
    return MS_OK;
}

ms_status ms_tokenizer_encode(const ms_tokenizer *t, const char *text, int64_t n_bytes, int32_t flags,
                              int32_t *out, int64_t cap, int64_t *n_tokens) {
    if (!t || (!text && n_bytes > 0) || n_bytes < 0 || (!out && cap > 0) || cap < 0 || !n_tokens)
        return ms_fail(MS_ERR_INVALID, "ms_tokenizer_encode: needs a tokenizer, text, n_bytes >= 0, "
                       "out with cap >= 0 entries and n_tokens");
    if (flags & ~(MS_ENCODE_BOS | MS_ENCODE_EOS | MS_ENCODE_SPECIALS))
        return ms_fail(MS_ERR_INVALID, "ms_tokenizer_encode: unknown flags 0x%x (known: MS_ENCODE_BOS 1, "
                       "MS_ENCODE_EOS 2, MS_ENCODE_SPECIALS 4)", (unsigned)flags);
    ms_tok_ctx c;
    TRY(ms_tok_ctx_init(&c, t));
    ms_status st = ms_tok_encode(t, &c, (const uint8_t *)text, n_bytes, flags, (uint32_t *)out, cap, n_tokens);
    ms_tok_ctx_free(&c);
    return st;
}

ms_status ms_tokenizer_decode(const ms_tokenizer *t, const int32_t *ids, int64_t n, char *out, int64_t cap,
                              int64_t *n_bytes) {
    if (!t || (!ids && n > 0) || n < 0 || (!out && cap > 0) || cap < 0 || !n_bytes)
        return ms_fail(MS_ERR_INVALID, "ms_tokenizer_decode: needs a tokenizer, ids, n >= 0, "
                       "out with cap >= 0 bytes and n_bytes");
    int64_t w = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab_size)
            return ms_fail(MS_ERR_INVALID, "token %lld is %d, outside the vocabulary of tokenizer %s (0..%d)",
                           (long long)i, id, t->id, t->vocab_size - 1);
        int64_t len = t->off[id + 1] - t->off[id];
        if (w + len <= cap) memcpy(out + w, t->blob + t->off[id], (size_t)len);
        else if (w < cap) memcpy(out + w, t->blob + t->off[id], (size_t)(cap - w));
        w += len;
    }
    *n_bytes = w;
    return MS_OK;
}
