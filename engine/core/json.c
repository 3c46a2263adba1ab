/* core/json.c — strict JSON reading, JSON text building (see json.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/status.h"

#define MAX_DEPTH 64

typedef struct parser {
    const char *s;
    size_t n, at;
} parser;

static ms_status bad(const parser *p, const char *what) {
    if (p->at >= p->n) return ms_fail(MS_ERR_FORMAT, "at byte %zu: %s, but the text ends there", p->at, what);
    unsigned char c = (unsigned char)p->s[p->at];
    if (c >= 0x20 && c < 0x7f)
        return ms_fail(MS_ERR_FORMAT, "at byte %zu: %s, found '%c'", p->at, what, c);
    return ms_fail(MS_ERR_FORMAT, "at byte %zu: %s, found byte 0x%02x", p->at, what, c);
}

static void skip_ws(parser *p) {
    while (p->at < p->n) {
        char c = p->s[p->at];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->at++;
    }
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The string starting at the opening quote; escapes decoded. */
static ms_status parse_string(parser *p, char **out, size_t *len) {
    p->at++; /* the opening quote */
    size_t start = p->at;
    /* the decoded text is never longer than the source */
    size_t end = start;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) {
        p->at = p->n;
        return bad(p, "a string must end with '\"'");
    }
    char *o = malloc(end - start + 1);
    if (!o) return ms_fail(MS_ERR_NOMEM, "at byte %zu: out of memory for a string", start);
    size_t k = 0;
    while (p->at < end) {
        unsigned char c = (unsigned char)p->s[p->at];
        if (c < 0x20) {
            free(o);
            return bad(p, "control characters in strings must be escaped");
        }
        if (c != '\\') {
            o[k++] = (char)c;
            p->at++;
            continue;
        }
        char e = p->s[p->at + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            o[k++] = to[simple - "\"\\/bfnrt"];
            p->at += 2;
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || p->at + 6 > end || !hex4(p->s + p->at + 2, &cp)) {
            p->at++;
            free(o);
            return bad(p, "expected an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\u and 4 hex digits");
        }
        p->at += 6;
        if (cp >= 0xd800 && cp < 0xdc00) { /* a high surrogate needs its low half */
            if (p->at + 6 > end || p->s[p->at] != '\\' || p->s[p->at + 1] != 'u' || !hex4(p->s + p->at + 2, &lo) ||
                lo < 0xdc00 || lo >= 0xe000) {
                free(o);
                return bad(p, "a \\u escape of a high surrogate must be followed by one of a low surrogate");
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p->at += 6;
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            p->at -= 6;
            free(o);
            return bad(p, "a lone low surrogate escape");
        }
        k += put_utf8(o + k, cp);
    }
    o[k] = 0;
    p->at = end + 1;
    *out = o;
    *len = k;
    return MS_OK;
}

static ms_status parse_number(parser *p, ms_json *v) {
    size_t start = p->at;
    const char *s = p->s;
    size_t i = p->at;
    int integral = 1;
    if (i < p->n && s[i] == '-') i++;
    if (i < p->n && s[i] == '0') i++;
    else if (i < p->n && s[i] >= '1' && s[i] <= '9') while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    else { p->at = i; return bad(p, "expected a digit"); }
    if (i < p->n && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') { p->at = i; return bad(p, "expected a digit after '.'"); }
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->n || s[i] < '0' || s[i] > '9') { p->at = i; return bad(p, "expected a digit in the exponent"); }
        while (i < p->n && s[i] >= '0' && s[i] <= '9') i++;
    }
    char buf[64];
    size_t len = i - start;
    if (len >= sizeof buf) return ms_fail(MS_ERR_FORMAT, "at byte %zu: a number of %zu characters is too long",
                                          start, len);
    memcpy(buf, s + start, len);
    buf[len] = 0;
    v->kind = MS_JSON_NUMBER;
    v->number = strtod(buf, NULL);
    if (!isfinite(v->number)) return ms_fail(MS_ERR_FORMAT, "at byte %zu: the number %s is out of range", start, buf);
    if (integral) {
        errno = 0;
        long long x = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->is_int = 1;
            v->integer = x;
        }
    }
    p->at = i;
    return MS_OK;
}

static ms_status parse_value(parser *p, ms_json *v, int depth);

static ms_status grow(ms_json *v, int *cap, int object) {
    if (v->n < *cap) return MS_OK;
    int nc = *cap ? *cap * 2 : 8;
    ms_json *items = realloc(v->items, (size_t)nc * sizeof *items);
    if (!items) return ms_fail(MS_ERR_NOMEM, "out of memory for %d JSON items", nc);
    v->items = items;
    if (object) {
        char **keys = realloc(v->keys, (size_t)nc * sizeof *keys);
        if (!keys) return ms_fail(MS_ERR_NOMEM, "out of memory for %d JSON keys", nc);
        v->keys = keys;
    }
    *cap = nc;
    return MS_OK;
}

static ms_status parse_container(parser *p, ms_json *v, int depth, int object) {
    v->kind = object ? MS_JSON_OBJECT : MS_JSON_ARRAY;
    if (depth >= MAX_DEPTH) return bad(p, "nesting deeper than 64 levels");
    p->at++;
    int cap = 0;
    skip_ws(p);
    if (p->at < p->n && p->s[p->at] == (object ? '}' : ']')) {
        p->at++;
        return MS_OK;
    }
    for (;;) {
        skip_ws(p);
        TRY(grow(v, &cap, object));
        if (object) {
            if (p->at >= p->n || p->s[p->at] != '"') return bad(p, "expected a key (a string)");
            size_t key_at = p->at, klen;
            char *key;
            TRY(parse_string(p, &key, &klen));
            for (int i = 0; i < v->n; i++)
                if (strcmp(v->keys[i], key) == 0) {
                    ms_fail(MS_ERR_FORMAT, "at byte %zu: the key \"%.60s\" appears twice in one object", key_at, key);
                    free(key);
                    return MS_ERR_FORMAT;
                }
            v->keys[v->n] = key;
            skip_ws(p);
            if (p->at >= p->n || p->s[p->at] != ':') {
                free(key);
                return bad(p, "expected ':' after a key");
            }
            p->at++;
            skip_ws(p);
        }
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->n++; /* counted before parsing, so a failure frees what was built */
        TRY(parse_value(p, &v->items[v->n - 1], depth + 1));
        skip_ws(p);
        if (p->at < p->n && p->s[p->at] == ',') {
            p->at++;
            continue;
        }
        if (p->at < p->n && p->s[p->at] == (object ? '}' : ']')) {
            p->at++;
            return MS_OK;
        }
        return bad(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static ms_status literal(parser *p, const char *word) {
    size_t k = strlen(word);
    if (p->n - p->at < k || memcmp(p->s + p->at, word, k) != 0) return bad(p, "expected a JSON value");
    p->at += k;
    return MS_OK;
}

static ms_status parse_value(parser *p, ms_json *v, int depth) {
    skip_ws(p);
    if (p->at >= p->n) return bad(p, "expected a value");
    char c = p->s[p->at];
    switch (c) {
    case '{': return parse_container(p, v, depth, 1);
    case '[': return parse_container(p, v, depth, 0);
    case '"': v->kind = MS_JSON_STRING; return parse_string(p, &v->string, &v->len);
    case 't': v->kind = MS_JSON_BOOL; v->boolean = 1; return literal(p, "true");
    case 'f': v->kind = MS_JSON_BOOL; return literal(p, "false");
    case 'n': v->kind = MS_JSON_NULL; return literal(p, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return bad(p, "expected a JSON value");
    }
}

static void free_inner(ms_json *v) {
    for (int i = 0; i < v->n; i++) {
        free_inner(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
}

void ms_json_free(ms_json *v) {
    if (!v) return;
    free_inner(v);
    free(v);
}

ms_status ms_json_parse(const char *text, size_t n, ms_json **out) {
    *out = NULL;
    ms_json *v = calloc(1, sizeof *v);
    if (!v) return ms_fail(MS_ERR_NOMEM, "out of memory for a JSON value");
    parser p = {.s = text, .n = n};
    ms_status st = parse_value(&p, v, 0);
    if (st == MS_OK) {
        skip_ws(&p);
        if (p.at < p.n) st = bad(&p, "expected the end of the text after the value");
    }
    if (st != MS_OK) {
        ms_json_free(v);
        return st;
    }
    *out = v;
    return MS_OK;
}

const ms_json *ms_json_get(const ms_json *v, const char *key) {
    if (!v || v->kind != MS_JSON_OBJECT) return NULL;
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0) return &v->items[i];
    return NULL;
}

const char *ms_json_kind_name(ms_json_kind k) {
    static const char *names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return (unsigned)k < 6 ? names[k] : "a value";
}

/* ---- building text ------------------------------------------------------ */

static int reserve(ms_text *t, size_t more) {
    if (t->oom) return 0;
    if (t->len + more + 1 <= t->cap) return 1;
    size_t nc = t->cap ? t->cap : 256;
    while (nc < t->len + more + 1) nc *= 2;
    char *s = realloc(t->s, nc);
    if (!s) {
        t->oom = 1;
        return 0;
    }
    t->s = s;
    t->cap = nc;
    return 1;
}

void ms_text_printf(ms_text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || !reserve(t, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)k;
}

void ms_text_string(ms_text *t, const char *s) {
    ms_text_printf(t, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') ms_text_printf(t, "\\%c", *c);
        else if (*c < 0x20) ms_text_printf(t, "\\u%04x", *c);
        else ms_text_printf(t, "%c", *c);
    }
    ms_text_printf(t, "\"");
}

ms_status ms_text_done(ms_text *t, const char *what) {
    if (t->oom) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", what);
    if (!t->s && !reserve(t, 0)) return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", what);
    return MS_OK;
}

void ms_text_free(ms_text *t) {
    free(t->s);
    *t = (ms_text){0};
}
