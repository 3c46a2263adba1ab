/*
 * data/bpe_load.c — loading the Llama 3 vocabulary from either file form.
 *
 *   tokenizer.model (Meta, tiktoken): one line per token, `base64(bytes) SP rank LF`,
 *       128,000 lines; the 256 special tokens are not in the file — their names are
 *       Meta's (Llama 3.0 spelling) and their ids follow the ranks.
 *   tokenizer.json (Hugging Face): model.vocab maps each token, written in GPT-2's
 *       byte-to-unicode alphabet, to its id; added_tokens names the special tokens.
 *       Read through libyaml (JSON is YAML); model.merges are not needed, because
 *       for a vocabulary converted from tiktoken the merge order is the rank order.
 *
 * Whichever form was read, the vocabulary ends up as the same ranks, and the id
 * is derived from the SHA-256 of those ranks written in tiktoken form — for Llama 3
 * the published hash of tokenizer.model — so both forms stamp shards alike.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "core/sha256.h"
#include "core/status.h"
#include "data/tokenizer.h"

#define MAX_FILE (256LL << 20) /* bytes: the real files are 2.2 MB and 9.1 MB */

/* --- small helpers ------------------------------------------------------- */

static ms_status read_all(const char *path, uint8_t **out, int64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int err = errno;
        return ms_fail(MS_ERR_IO, "tokenizer %s: %s%s", path, strerror(err),
                       err == ENOENT ? "; run `make data-llama3` for Llama 3's tokenizer.model and tokenizer.json "
                                       "(\"bytes\" names the byte-level tokenizer)" : "");
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ms_fail(MS_ERR_IO, "tokenizer %s: not a regular file", path);
    }
    if (st.st_size > MAX_FILE) {
        fclose(f);
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s: %lld bytes is too large for a tokenizer file (at most %lld)",
                       path, (long long)st.st_size, MAX_FILE);
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if ((int64_t)got != (int64_t)st.st_size) {
        free(buf);
        return ms_fail(MS_ERR_IO, "tokenizer %s: read %zu of %lld bytes", path, got, (long long)st.st_size);
    }
    buf[got] = 0;
    *out = buf;
    *n = (int64_t)got;
    return MS_OK;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* val[c]: the 6-bit value of base64 character c, or -1. */
static void b64_table(int8_t val[256]) {
    memset(val, -1, 256);
    for (int i = 0; i < 64; i++) val[(uint8_t)B64[i]] = (int8_t)i;
}

/* Decodes base64 p[0..n) into out; returns bytes or -1 when malformed. */
static int64_t b64_decode(const int8_t val[256], const uint8_t *p, int64_t n, uint8_t *out) {
    if (n == 0 || n % 4) return -1;
    int64_t w = 0;
    for (int64_t i = 0; i < n; i += 4) {
        int pad = (p[i + 3] == '=') + (p[i + 2] == '=');
        if (pad && i + 4 != n) return -1;
        if (p[i + 2] == '=' && p[i + 3] != '=') return -1;
        int32_t v[4];
        for (int k = 0; k < 4 - pad; k++)
            if ((v[k] = val[p[i + k]]) < 0) return -1;
        for (int k = 4 - pad; k < 4; k++) v[k] = 0;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[w++] = (uint8_t)(x >> 16);
        if (pad < 2) out[w++] = (uint8_t)(x >> 8);
        if (pad < 1) out[w++] = (uint8_t)x;
    }
    return w;
}

static size_t b64_encode(const uint8_t *p, size_t n, char *out) {
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[w++] = B64[x >> 18];
        out[w++] = B64[(x >> 12) & 63];
        out[w++] = i + 1 < n ? B64[(x >> 6) & 63] : '=';
        out[w++] = i + 2 < n ? B64[x & 63] : '=';
    }
    return w;
}

/* Meta's names of the 256 special tokens (Llama 3.0 spelling, as in tokenizer.json). */
static void special_name(int i, char *out, size_t cap) {
    static const char *named[10] = {"<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, NULL, NULL,
                                    "<|start_header_id|>", "<|end_header_id|>", NULL, "<|eot_id|>"};
    if (i < 10 && named[i]) snprintf(out, cap, "%s", named[i]);
    else snprintf(out, cap, "<|reserved_special_token_%d|>", i < 6 ? i - 2 : i == 8 ? 4 : i - 5);
}

/* Vocabulary under construction: token bytes by id. */
typedef struct vocab {
    uint8_t *blob;
    uint32_t *off;   /* (n + 1) once finished */
    int64_t blob_len, blob_cap;
    int32_t n;
} vocab;

/* Allocates a blob with room for the ranks' bytes plus the special names. */
static ms_status vocab_alloc(vocab *v, const char *path, int32_t n_ids, int64_t bytes) {
    v->blob_cap = bytes + (int64_t)MS_LLAMA3_SPECIALS * MS_TOK_MAX_SPECIAL;
    v->blob = malloc((size_t)v->blob_cap);
    v->off = calloc((size_t)n_ids + 1, sizeof *v->off);
    if (!v->blob || !v->off) return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", path);
    return MS_OK;
}

/* --- tiktoken form ------------------------------------------------------- */

/* Give the tokenizer the vocabulary (it frees it either way); on success close
 * the offset table and set the sizes of a Llama 3 vocabulary. */
static ms_status vocab_hand_over(ms_tokenizer *t, vocab *v, ms_status st) {
    t->blob = v->blob;
    t->off = v->off;
    if (st != MS_OK) return st;
    t->off[MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS] = (uint32_t)v->blob_len;
    t->n_ranks = MS_LLAMA3_RANKS;
    t->vocab_size = MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS;
    return MS_OK;
}

static ms_status load_tiktoken(ms_tokenizer *t, const char *path, const uint8_t *buf, int64_t n) {
    /* pass 1: count lines, check the shape */
    int64_t lines = 0;
    for (int64_t i = 0; i < n; i++) lines += buf[i] == '\n';
    if (n > 0 && buf[n - 1] != '\n')
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s: line %lld does not end with a newline; the file is truncated "
                       "(a tiktoken tokenizer.model ends every line, the last one too, with LF)", path,
                       (long long)lines + 1);
    if (lines != MS_LLAMA3_RANKS)
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s: %lld ranks; Llama 3's tokenizer.model has %d — the file is "
                       "truncated or belongs to another model", path, (long long)lines, MS_LLAMA3_RANKS);
    vocab v = {0};
    ms_status st = vocab_alloc(&v, path, MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS, n);
    uint32_t *len = calloc(MS_LLAMA3_RANKS, sizeof *len);
    int64_t *at = malloc(sizeof *at * MS_LLAMA3_RANKS);
    uint8_t *tmp = malloc((size_t)n + 1);
    if (st == MS_OK && (!len || !at || !tmp)) st = ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", path);
    for (int64_t r = 0; st == MS_OK && r < MS_LLAMA3_RANKS; r++) at[r] = -1;
    /* pass 2: decode each line into tmp, remember where each rank's bytes are */
    int8_t val[256];
    b64_table(val);
    int64_t line = 0, w = 0;
    for (int64_t i = 0; st == MS_OK && i < n; line++) {
        const uint8_t *eol = memchr(buf + i, '\n', (size_t)(n - i));
        int64_t e = eol - buf;
        const uint8_t *sp = memchr(buf + i, ' ', (size_t)(e - i));
        if (!sp) {
            st = ms_fail(MS_ERR_FORMAT, "tokenizer %s line %lld: no space; each line must be `base64 rank` "
                         "(a tiktoken tokenizer.model; a SentencePiece model of Llama 1/2 is not this format)",
                         path, (long long)line + 1);
            break;
        }
        int64_t s = sp - buf;
        int64_t got = b64_decode(val, buf + i, s - i, tmp + w);
        if (got <= 0) {
            st = ms_fail(MS_ERR_FORMAT, "tokenizer %s line %lld: \"%.*s\" is not base64 of a token; the file is "
                         "corrupt", path, (long long)line + 1, (int)(s - i < 40 ? s - i : 40), (const char *)buf + i);
            break;
        }
        char *end = NULL;
        errno = 0;
        long long r = (s + 1 < e && buf[s + 1] >= '0' && buf[s + 1] <= '9') ? strtoll((const char *)buf + s + 1, &end, 10) : -1;
        if (r < 0 || errno || end != (const char *)buf + e) {
            st = ms_fail(MS_ERR_FORMAT, "tokenizer %s line %lld: the rank \"%.*s\" is not a whole number; the file "
                         "is corrupt", path, (long long)line + 1, (int)(e - s - 1 < 40 ? e - s - 1 : 40),
                         (const char *)buf + s + 1);
            break;
        }
        if (r >= MS_LLAMA3_RANKS || at[r] >= 0) {
            st = ms_fail(MS_ERR_FORMAT, "tokenizer %s line %lld: rank %lld is %s; ranks must be 0..%d, each once",
                         path, (long long)line + 1, r, r >= MS_LLAMA3_RANKS ? "out of range" : "a duplicate",
                         MS_LLAMA3_RANKS - 1);
            break;
        }
        at[r] = w;
        len[r] = (uint32_t)got;
        w += got;
        i = e + 1;
    }
    for (int32_t r = 0; st == MS_OK && r < MS_LLAMA3_RANKS; r++) {
        v.off[r] = (uint32_t)v.blob_len;
        memcpy(v.blob + v.blob_len, tmp + at[r], len[r]);
        v.blob_len += len[r];
    }
    free(len);
    free(at);
    free(tmp);
    for (int i = 0; st == MS_OK && i < MS_LLAMA3_SPECIALS; i++) {
        char name[MS_TOK_MAX_SPECIAL];
        special_name(i, name, sizeof name);
        v.off[MS_LLAMA3_RANKS + i] = (uint32_t)v.blob_len;
        memcpy(v.blob + v.blob_len, name, strlen(name));
        v.blob_len += (int64_t)strlen(name);
    }
    return vocab_hand_over(t, &v, st);
}

/* --- tokenizer.json form -------------------------------------------------- */

typedef struct jp {
    yaml_parser_t parser;
    yaml_event_t ev;
    int have;             /* ev holds an event to delete */
    const char *path;
    /* what we collect */
    int32_t *ids;         /* model.vocab ids, in file order */
    int64_t *at;          /* where each entry's bytes start in the blob */
    int32_t n, cap;
    uint8_t *blob;
    int64_t blob_len, blob_cap;
    char type[32];        /* model.type */
    int has_model, has_vocab, pattern_ok;
    char pattern[600];    /* the pre-tokenizer's Split regex, when there is one */
    int32_t special_id[MS_LLAMA3_SPECIALS];
    char special[MS_LLAMA3_SPECIALS][MS_TOK_MAX_SPECIAL];
    int32_t n_added;
} jp;

static ms_status jnext(jp *j) {
    /* libyaml answers every call after the stream's end with an empty event: a
     * reader that wants more than the document holds must stop here, not spin */
    if (j->have && j->ev.type == YAML_STREAM_END_EVENT)
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s: the document ends inside a value; the file is not valid JSON "
                       "(truncated or corrupt)", j->path);
    if (j->have) yaml_event_delete(&j->ev);
    j->have = 0;
    if (!yaml_parser_parse(&j->parser, &j->ev)) {
        const char *what = j->parser.problem ? j->parser.problem : "malformed input";
        if (j->parser.error == YAML_READER_ERROR)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s: byte %zu: %s; the file is not valid UTF-8 JSON", j->path,
                           j->parser.problem_offset, what);
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu column %zu: %s; the file is not valid JSON (truncated "
                       "or corrupt)", j->path, j->parser.problem_mark.line + 1, j->parser.problem_mark.column + 1, what);
    }
    j->have = 1;
    return MS_OK;
}

static size_t jline(const jp *j) { return j->ev.start_mark.line + 1; }

static int is_scalar(const jp *j) { return j->ev.type == YAML_SCALAR_EVENT; }
static const char *sval(const jp *j) { return (const char *)j->ev.data.scalar.value; }
static size_t slen(const jp *j) { return j->ev.data.scalar.length; }
static int key_is(const jp *j, const char *k) { return strlen(k) == slen(j) && memcmp(sval(j), k, slen(j)) == 0; }

/* Skips the value whose first event is current; leaves the last event current. */
static ms_status jskip(jp *j) {
    int depth = 0;
    for (;;) {
        yaml_event_type_t ty = j->ev.type;
        if (ty == YAML_MAPPING_START_EVENT || ty == YAML_SEQUENCE_START_EVENT) depth++;
        if (ty == YAML_MAPPING_END_EVENT || ty == YAML_SEQUENCE_END_EVENT) depth--;
        if (ty == YAML_ALIAS_EVENT)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: YAML aliases are not JSON", j->path, jline(j));
        if (depth == 0) return MS_OK;
        TRY(jnext(j));
    }
}

static ms_status expect(jp *j, yaml_event_type_t ty, const char *what) {
    if (j->ev.type != ty)
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: %s is not %s", j->path, jline(j), what,
                       ty == YAML_MAPPING_START_EVENT ? "an object" : ty == YAML_SEQUENCE_START_EVENT ? "an array"
                                                                                                      : "a value");
    return MS_OK;
}

/* GPT-2's byte-to-unicode alphabet, inverted: code point -> byte, -1 outside. */
static int cp_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp < 256 || cp > 323) return -1;
    int k = (int)cp - 256; /* the k-th byte outside the printable ranges */
    for (int b = 0; b < 256; b++)
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) && k-- == 0) return b;
    return -1;
}

/* One model.vocab entry: key in the byte-to-unicode alphabet -> raw bytes. */
static ms_status vocab_entry(jp *j, const char *key, size_t klen, size_t line) {
    if (j->blob_len + (int64_t)klen > j->blob_cap) {
        int64_t cap = j->blob_cap ? j->blob_cap * 2 : 1 << 20;
        while (cap < j->blob_len + (int64_t)klen) cap *= 2;
        uint8_t *b = realloc(j->blob, (size_t)cap);
        if (!b) return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", j->path);
        j->blob = b, j->blob_cap = cap;
    }
    if (j->n == j->cap) {
        int32_t cap = j->cap ? j->cap * 2 : 1 << 17;
        int32_t *ids = realloc(j->ids, sizeof *ids * (size_t)cap);
        if (ids) j->ids = ids;
        int64_t *at = realloc(j->at, sizeof *at * (size_t)cap);
        if (at) j->at = at;
        if (!ids || !at) return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", j->path);
        j->cap = cap;
    }
    const uint8_t *p = (const uint8_t *)key;
    int64_t start = j->blob_len;
    for (size_t i = 0; i < klen;) {
        uint32_t cp = p[i];
        size_t l = 1;
        if (cp >= 0xc0 && cp < 0xe0 && i + 1 < klen) cp = (cp & 0x1f) << 6 | (p[i + 1] & 0x3f), l = 2;
        else if (cp >= 0x80) cp = 0x110000, l = 1;
        int b = cp_byte(cp);
        if (b < 0)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: model.vocab key \"%.*s\" has a character outside "
                           "GPT-2's byte-to-unicode alphabet; this is not a byte-level BPE vocabulary like Llama 3's",
                           j->path, line, (int)(klen < 40 ? klen : 40), key);
        j->blob[j->blob_len++] = (uint8_t)b;
        i += l;
    }
    j->at[j->n++] = start;
    return MS_OK;
}

static ms_status parse_int(jp *j, const char *what, long long max, int32_t *out) {
    if (!is_scalar(j)) return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: %s is not a number", j->path, jline(j), what);
    char *end = NULL;
    errno = 0;
    long long v = slen(j) ? strtoll(sval(j), &end, 10) : -1;
    if (errno || !end || end != sval(j) + slen(j) || v < 0 || v > max)
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: %s \"%.*s\" is not an id in 0..%lld", j->path, jline(j),
                       what, (int)(slen(j) < 40 ? slen(j) : 40), sval(j), max);
    *out = (int32_t)v;
    return MS_OK;
}

static ms_status parse_model(jp *j) {
    TRY(expect(j, YAML_MAPPING_START_EVENT, "\"model\""));
    j->has_model = 1;
    for (;;) {
        TRY(jnext(j));
        if (j->ev.type == YAML_MAPPING_END_EVENT) return MS_OK;
        if (key_is(j, "type")) {
            TRY(jnext(j));
            snprintf(j->type, sizeof j->type, "%.*s", is_scalar(j) ? (int)slen(j) : 0, is_scalar(j) ? sval(j) : "");
            TRY(jskip(j));
        } else if (key_is(j, "vocab")) {
            TRY(jnext(j));
            TRY(expect(j, YAML_MAPPING_START_EVENT, "model.vocab"));
            j->has_vocab = 1;
            for (;;) {
                TRY(jnext(j));
                if (j->ev.type == YAML_MAPPING_END_EVENT) break;
                if (!is_scalar(j))
                    return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: a model.vocab key is not a string", j->path,
                                   jline(j));
                TRY(vocab_entry(j, sval(j), slen(j), jline(j)));
                TRY(jnext(j));
                TRY(parse_int(j, "model.vocab id", INT32_MAX - 1, &j->ids[j->n - 1]));
            }
        } else {
            TRY(jnext(j));
            TRY(jskip(j));
        }
    }
}

static ms_status parse_added(jp *j) {
    TRY(expect(j, YAML_SEQUENCE_START_EVENT, "\"added_tokens\""));
    for (;;) {
        TRY(jnext(j));
        if (j->ev.type == YAML_SEQUENCE_END_EVENT) return MS_OK;
        TRY(expect(j, YAML_MAPPING_START_EVENT, "an added_tokens entry"));
        size_t line = jline(j);
        int32_t id = -1;
        char content[MS_TOK_MAX_SPECIAL] = "";
        int has_content = 0;
        for (;;) {
            TRY(jnext(j));
            if (j->ev.type == YAML_MAPPING_END_EVENT) break;
            if (key_is(j, "id")) {
                TRY(jnext(j));
                TRY(parse_int(j, "added_tokens id", INT32_MAX - 1, &id));
            } else if (key_is(j, "content")) {
                TRY(jnext(j));
                if (!is_scalar(j) || slen(j) == 0 || slen(j) >= sizeof content)
                    return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: added_tokens content must be a string of "
                                   "1..%d bytes", j->path, jline(j), MS_TOK_MAX_SPECIAL - 1);
                memcpy(content, sval(j), slen(j));
                content[slen(j)] = 0;
                has_content = 1;
            } else {
                TRY(jnext(j));
                TRY(jskip(j));
            }
        }
        if (id < MS_LLAMA3_RANKS || id >= MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS || !has_content)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: added token %d \"%s\"; Llama 3's special tokens are "
                           "ids %d..%d, each with a content string", j->path, line, id, content, MS_LLAMA3_RANKS,
                           MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS - 1);
        int k = id - MS_LLAMA3_RANKS;
        if (j->special_id[k] >= 0)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: added token id %d appears twice", j->path, line, id);
        j->special_id[k] = id;
        memcpy(j->special[k], content, sizeof content);
        j->n_added++;
    }
}

/* Finds the Split pattern anywhere under pre_tokenizer: a "Regex" key's string. */
static ms_status parse_pre(jp *j) {
    int depth = 0;
    for (;;) {
        yaml_event_type_t ty = j->ev.type;
        if (ty == YAML_MAPPING_START_EVENT || ty == YAML_SEQUENCE_START_EVENT) depth++;
        else if (ty == YAML_MAPPING_END_EVENT || ty == YAML_SEQUENCE_END_EVENT) depth--;
        else if (depth > 0 && ty == YAML_SCALAR_EVENT && key_is(j, "Regex") &&
                 j->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
            TRY(jnext(j));
            if (is_scalar(j)) snprintf(j->pattern, sizeof j->pattern, "%.*s", (int)slen(j), sval(j));
            continue;
        }
        if (depth == 0) return MS_OK;
        TRY(jnext(j));
    }
}

static ms_status parse_json(jp *j) {
    TRY(jnext(j)); /* stream start */
    TRY(jnext(j)); /* document start */
    if (j->ev.type != YAML_DOCUMENT_START_EVENT)
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s: the file is empty", j->path);
    TRY(jnext(j));
    TRY(expect(j, YAML_MAPPING_START_EVENT, "the top level"));
    for (;;) {
        TRY(jnext(j));
        if (j->ev.type == YAML_MAPPING_END_EVENT) break;
        if (!is_scalar(j)) return ms_fail(MS_ERR_FORMAT, "tokenizer %s line %zu: a key is not a string", j->path, jline(j));
        if (key_is(j, "model")) {
            TRY(jnext(j));
            TRY(parse_model(j));
        } else if (key_is(j, "added_tokens")) {
            TRY(jnext(j));
            TRY(parse_added(j));
        } else if (key_is(j, "pre_tokenizer")) {
            TRY(jnext(j));
            TRY(parse_pre(j));
        } else {
            TRY(jnext(j));
            TRY(jskip(j));
        }
    }
    TRY(jnext(j)); /* document end */
    return MS_OK;
}

static ms_status load_json(ms_tokenizer *t, const char *path, const uint8_t *buf, int64_t n) {
    jp *j = calloc(1, sizeof *j);
    if (!j) return ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", path);
    j->path = path;
    for (int k = 0; k < MS_LLAMA3_SPECIALS; k++) j->special_id[k] = -1;
    yaml_parser_initialize(&j->parser);
    yaml_parser_set_input_string(&j->parser, buf, (size_t)n);
    ms_status st = parse_json(j);
    if (j->have) yaml_event_delete(&j->ev);
    yaml_parser_delete(&j->parser);
    if (st == MS_OK && !j->has_model)
        st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: no \"model\" object; this is not a Hugging Face tokenizer.json", path);
    if (st == MS_OK && strcmp(j->type, "BPE") != 0)
        st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: model.type is \"%s\"; moonspeed reads byte-level BPE tokenizers "
                     "(model.type \"BPE\") of the Llama 3 family", path, j->type[0] ? j->type : "(missing)");
    if (st == MS_OK && !j->has_vocab)
        st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: model.vocab is missing", path);
    if (st == MS_OK && j->n != MS_LLAMA3_RANKS)
        st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: model.vocab has %d entries; Llama 3's has %d — the file is "
                     "truncated or belongs to another model", path, j->n, MS_LLAMA3_RANKS);
    if (st == MS_OK && strcmp(j->pattern, MS_LLAMA3_PATTERN) != 0)
        st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: the pre-tokenizer's Split pattern is %s%s%s; moonspeed splits with "
                     "Llama 3's pattern, so this tokenizer would give other tokens", path,
                     j->pattern[0] ? "\"" : "", j->pattern[0] ? j->pattern : "missing", j->pattern[0] ? "\"" : "");
    if (st == MS_OK && j->n_added != MS_LLAMA3_SPECIALS)
        st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: %d added_tokens; Llama 3 has %d special tokens (ids %d..%d)", path,
                     j->n_added, MS_LLAMA3_SPECIALS, MS_LLAMA3_RANKS, MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS - 1);
    /* ids must be 0..n-1, each once: place each entry at its id */
    vocab v = {0};
    int64_t *by_id = NULL;
    if (st == MS_OK) st = vocab_alloc(&v, path, MS_LLAMA3_RANKS + MS_LLAMA3_SPECIALS, j->blob_len);
    if (st == MS_OK && !(by_id = malloc(sizeof *by_id * MS_LLAMA3_RANKS))) st = ms_fail(MS_ERR_NOMEM, "tokenizer %s: out of memory", path);
    for (int32_t r = 0; st == MS_OK && r < MS_LLAMA3_RANKS; r++) by_id[r] = -1;
    for (int32_t i = 0; st == MS_OK && i < j->n; i++) {
        int32_t id = j->ids[i];
        if (id >= MS_LLAMA3_RANKS || by_id[id] >= 0)
            st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: model.vocab id %d is %s; ids must be 0..%d, each once", path, id,
                         id >= MS_LLAMA3_RANKS ? "out of range" : "a duplicate", MS_LLAMA3_RANKS - 1);
        else by_id[id] = i;
    }
    for (int32_t r = 0; st == MS_OK && r < MS_LLAMA3_RANKS; r++) {
        int32_t i = (int32_t)by_id[r];
        int64_t a = j->at[i], b = i + 1 < j->n ? j->at[i + 1] : j->blob_len;
        v.off[r] = (uint32_t)v.blob_len;
        memcpy(v.blob + v.blob_len, j->blob + a, (size_t)(b - a));
        v.blob_len += b - a;
    }
    for (int k = 0; st == MS_OK && k < MS_LLAMA3_SPECIALS; k++) {
        size_t l = strlen(j->special[k]);
        v.off[MS_LLAMA3_RANKS + k] = (uint32_t)v.blob_len;
        memcpy(v.blob + v.blob_len, j->special[k], l);
        v.blob_len += (int64_t)l;
    }
    free(by_id);
    free(j->ids);
    free(j->at);
    free(j->blob);
    free(j);
    return vocab_hand_over(t, &v, st);
}

/* --- entry points --------------------------------------------------------- */

ms_status ms_tok_load_file(ms_tokenizer *t, const char *path) {
    uint8_t *buf = NULL;
    int64_t n = 0;
    TRY(read_all(path, &buf, &n));
    int64_t i = 0;
    if (n >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf) i = 3; /* a UTF-8 BOM */
    while (i < n && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')) i++;
    ms_status st;
    t->kind = MS_TOK_BPE;
    if (n == 0) st = ms_fail(MS_ERR_FORMAT, "tokenizer %s: the file is empty; expected Meta's tokenizer.model or "
                             "Hugging Face's tokenizer.json", path);
    else if (i < n && buf[i] == '{') st = load_json(t, path, buf, n);
    else st = load_tiktoken(t, path, buf, n);
    free(buf);
    return st;
}

ms_status ms_tok_finish(ms_tokenizer *t, const char *path) {
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_rank[b] = ms_tok_rank(t, &c, 1);
        if (t->byte_rank[b] < 0)
            return ms_fail(MS_ERR_FORMAT, "tokenizer %s: byte 0x%02x is not a token; a byte-level BPE vocabulary "
                           "holds all 256 bytes", path, b);
    }
    /* the id: sha256 of the ranks in tiktoken form */
    ms_sha256 h;
    ms_sha256_init(&h);
    char line[1024];
    for (int32_t r = 0; r < t->n_ranks; r++) {
        uint32_t len = t->off[r + 1] - t->off[r];
        if (len > 700) return ms_fail(MS_ERR_FORMAT, "tokenizer %s: token %d has %u bytes; at most 700", path, r, len);
        size_t w = b64_encode(t->blob + t->off[r], len, line);
        w += (size_t)snprintf(line + w, sizeof line - w, " %d\n", r);
        ms_sha256_update(&h, line, w);
    }
    uint8_t digest[32];
    ms_sha256_final(&h, digest);
    ms_sha256_hex(digest, t->sha256);
    int llama3 = strcmp(t->sha256, MS_LLAMA3_SHA256) == 0;
    snprintf(t->id, sizeof t->id, "%s-%.*s", llama3 ? "llama3" : "bpe", llama3 ? 24 : 27, t->sha256);
    t->bos = ms_tokenizer_special(t, "<|begin_of_text|>");
    t->eos = ms_tokenizer_special(t, "<|end_of_text|>");
    if (t->bos < 0 || t->eos < 0)
        return ms_fail(MS_ERR_FORMAT, "tokenizer %s: no special token <|begin_of_text|> or <|end_of_text|>; Llama 3 "
                       "names them so", path);
    int err = 0;
    PCRE2_SIZE where = 0;
    t->re = pcre2_compile((PCRE2_SPTR)MS_LLAMA3_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &where, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ms_fail(MS_ERR_INTERNAL, "tokenizer: the Llama 3 pattern does not compile at %zu: %s", where,
                       (const char *)msg);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return MS_OK;
}
