/* ckpt/safetensors.c — the safetensors reader and writer (see safetensors.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/safetensors.h"
#include "core/file.h"
#include "core/json.h"
#include "core/status.h"
#include "cpu/kernels.h"

static const char *dtype_names[MS_ST_DTYPES] = {"F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8",
                                               "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2"};
static const int dtype_sizes[MS_ST_DTYPES] = {4, 2, 2, 8, 8, 4, 2, 1, 8, 4, 2, 1, 1, 1, 1};

const char *ms_st_dtype_name(int dtype) {
    return dtype >= 0 && dtype < MS_ST_DTYPES ? dtype_names[dtype] : "?";
}

int ms_st_dtype_size(int dtype) { return dtype >= 0 && dtype < MS_ST_DTYPES ? dtype_sizes[dtype] : 0; }

/* ---- reading -------------------------------------------------------------- */


static int by_name(const void *a, const void *b) {
    return strcmp(((const ms_st_tensor *)a)->name, ((const ms_st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b) {
    const ms_st_tensor *x = *(ms_st_tensor *const *)a, *y = *(ms_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static const char *describe(const ms_json *v, char *buf, size_t len) {
    if (v->kind == MS_JSON_NUMBER) snprintf(buf, len, "%.17g", v->number);
    else if (v->kind == MS_JSON_STRING) snprintf(buf, len, "\"%.40s\"", v->string);
    else snprintf(buf, len, "%s", ms_json_kind_name(v->kind));
    return buf;
}

/* One header entry: {"dtype", "shape", "data_offsets"}. */
static ms_status parse_entry(const ms_st_file *f, const char *name, const ms_json *v, ms_st_tensor *t) {
    const char *p = f->path;
    char what[64];
    if (v->kind != MS_JSON_OBJECT)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: its header entry is %s; expected an object with "
                       "dtype, shape and data_offsets", p, name, ms_json_kind_name(v->kind));
    const ms_json *dt = ms_json_get(v, "dtype"), *sh = ms_json_get(v, "shape"), *off = ms_json_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: its header entry has no %s; expected dtype, "
                       "shape and data_offsets", p, name, !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (dt->kind != MS_JSON_STRING)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: dtype is %s; expected a string such as \"BF16\"",
                       p, name, describe(dt, what, sizeof what));
    t->dtype = -1;
    for (int d = 0; d < MS_ST_DTYPES; d++)
        if (strcmp(dt->string, dtype_names[d]) == 0) t->dtype = d;
    if (t->dtype < 0)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: unknown dtype \"%.40s\"; expected one of F32, "
                       "BF16, F16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2",
                       p, name, dt->string);
    if (sh->kind != MS_JSON_ARRAY || sh->n > MS_ST_MAX_DIMS)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: shape is %s; expected a list of at most %d "
                       "sizes", p, name, sh->kind == MS_JSON_ARRAY ? "a list of more dimensions" :
                       describe(sh, what, sizeof what), MS_ST_MAX_DIMS);
    t->ndim = sh->n;
    t->numel = 1;
    for (int i = 0; i < sh->n; i++) {
        const ms_json *d = &sh->items[i];
        if (d->kind != MS_JSON_NUMBER || !d->is_int || d->integer < 0)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: shape[%d] is %s; expected a size >= 0",
                           p, name, i, describe(d, what, sizeof what));
        t->shape[i] = d->integer;
        if (d->integer > 0 && t->numel > INT64_MAX / 8 / d->integer)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: the shape's element count overflows 64 bits",
                           p, name);
        t->numel *= d->integer;
    }
    if (off->kind != MS_JSON_ARRAY || off->n != 2)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: data_offsets is %s; expected [begin, end]",
                       p, name, off->kind == MS_JSON_ARRAY ? "a list without exactly 2 items" :
                       describe(off, what, sizeof what));
    for (int i = 0; i < 2; i++)
        if (off->items[i].kind != MS_JSON_NUMBER || !off->items[i].is_int || off->items[i].integer < 0)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: data_offsets[%d] is %s; expected a byte "
                           "offset >= 0", p, name, i, describe(&off->items[i], what, sizeof what));
    t->begin = off->items[0].integer;
    t->end = off->items[1].integer;
    if (t->begin > t->end || t->end > f->data_bytes)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: data_offsets [%lld, %lld] are out of range: "
                       "the data section holds %lld bytes%s", p, name, (long long)t->begin, (long long)t->end,
                       (long long)f->data_bytes, t->begin > t->end ? " and begin must not exceed end"
                                                                   : " (a truncated file?)");
    int64_t want = t->numel * dtype_sizes[t->dtype];
    if (t->end - t->begin != want)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: data_offsets [%lld, %lld] span %lld bytes, but "
                       "%lld values of %s need %lld", p, name, (long long)t->begin, (long long)t->end,
                       (long long)(t->end - t->begin), (long long)t->numel, dtype_names[t->dtype], (long long)want);
    return MS_OK;
}

static ms_status parse_header(ms_st_file *f, const ms_json *h) {
    const char *p = f->path;
    if (h->kind != MS_JSON_OBJECT)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: the header is %s; expected an object of tensors", p,
                       ms_json_kind_name(h->kind));
    f->tensors = calloc((size_t)h->n + 1, sizeof *f->tensors);
    if (!f->tensors) return ms_fail(MS_ERR_NOMEM, "safetensors %s: out of memory for %d tensors", p, h->n);
    for (int i = 0; i < h->n; i++) {
        const char *name = h->keys[i];
        const ms_json *v = &h->items[i];
        if (strcmp(name, "__metadata__") == 0) {
            if (v->kind != MS_JSON_OBJECT)
                return ms_fail(MS_ERR_FORMAT, "safetensors %s: __metadata__ is %s; expected an object of strings",
                               p, ms_json_kind_name(v->kind));
            for (int k = 0; k < v->n; k++)
                if (v->items[k].kind != MS_JSON_STRING)
                    return ms_fail(MS_ERR_FORMAT, "safetensors %s: __metadata__.%s is %s; expected a string", p,
                                   v->keys[k], ms_json_kind_name(v->items[k].kind));
            continue;
        }
        if (strlen(name) == 0 || strlen(name) >= 1024)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: a tensor name of %zu bytes; expected 1..1023", p,
                           strlen(name));
        ms_st_tensor *t = &f->tensors[f->n];
        t->name = strdup(name);
        if (!t->name) return ms_fail(MS_ERR_NOMEM, "safetensors %s: out of memory", p);
        f->n++;
        TRY(parse_entry(f, name, v, t));
    }
    /* the regions must tile the data section: contiguous, no overlap, no gap */
    ms_st_tensor **order = malloc(((size_t)f->n + 1) * sizeof *order);
    if (!order) return ms_fail(MS_ERR_NOMEM, "safetensors %s: out of memory", p);
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, by_begin);
    int64_t at = 0;
    ms_status st = MS_OK;
    for (int i = 0; i < f->n && st == MS_OK; i++) {
        const ms_st_tensor *t = order[i];
        if (t->begin < at)
            st = ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: data_offsets [%lld, %lld] overlap tensor %s, "
                         "which ends at %lld", p, t->name, (long long)t->begin, (long long)t->end,
                         order[i - 1]->name, (long long)at);
        else if (t->begin > at)
            st = ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s: data_offsets [%lld, %lld] leave a gap of %lld "
                         "bytes before it; regions must be contiguous", p, t->name, (long long)t->begin,
                         (long long)t->end, (long long)(t->begin - at));
        at = t->end;
    }
    free(order);
    TRY(st);
    if (at != f->data_bytes)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: the tensors cover %lld bytes of data, but the file holds "
                       "%lld after its header; %s", p, (long long)at, (long long)f->data_bytes,
                       at < f->data_bytes ? "trailing bytes (a corrupt file?)" : "the file is truncated");
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, by_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s appears twice", p, f->tensors[i].name);
    return MS_OK;
}

static ms_status open_checked(ms_st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return ms_fail(MS_ERR_INVALID, "safetensors %.200s...: path too long", path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return ms_fail(MS_ERR_IO, "safetensors %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) return ms_fail(MS_ERR_IO, "safetensors %s: %s", path, strerror(errno));
    int64_t size = (int64_t)sb.st_size;
    if (size < 8)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: the file has %lld bytes, fewer than the 8 of the header "
                       "length; it is truncated or not a safetensors file", path, (long long)size);
    uint8_t head[8];
    TRY(ms_read_exact_at("safetensors", path, f->fd, head, 8, 0));
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | head[i];
    if (n < 2 || n > MS_ST_MAX_HEADER)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: the header length is %llu bytes; expected 2..%d (is this "
                       "a safetensors file?)", path, (unsigned long long)n, MS_ST_MAX_HEADER);
    if ((int64_t)n > size - 8)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: the header length %llu runs past the end of the file "
                       "(%lld bytes); it is truncated", path, (unsigned long long)n, (long long)size);
    f->data_start = 8 + (int64_t)n;
    f->data_bytes = size - f->data_start;
    char *text = malloc(n);
    if (!text) return ms_fail(MS_ERR_NOMEM, "safetensors %s: out of memory for a header of %llu bytes", path,
                              (unsigned long long)n);
    ms_status st = ms_read_exact_at("safetensors", path, f->fd, text, (int64_t)n, 8);
    if (st == MS_OK && text[0] != '{')
        st = ms_fail(MS_ERR_FORMAT, "safetensors %s: the header does not start with '{'; expected a JSON object "
                     "(is this a safetensors file?)", path);
    ms_json *h = NULL;
    if (st == MS_OK) {
        st = ms_json_parse(text, n, &h);
        if (st != MS_OK) ms_fail_context(st, "safetensors %s: the header is not valid JSON", path);
    }
    free(text);
    if (st == MS_OK) st = parse_header(f, h);
    ms_json_free(h);
    return st;
}

ms_status ms_st_open(ms_st_file *f, const char *path) {
    ms_status st = open_checked(f, path);
    if (st != MS_OK) ms_st_close(f);
    return st;
}

void ms_st_close(ms_st_file *f) {
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    f->tensors = NULL;
    f->n = 0;
    f->fd = -1;
}

const ms_st_tensor *ms_st_find(const ms_st_file *f, const char *name) {
    ms_st_tensor key = {.name = (char *)name};
    return f->n ? bsearch(&key, f->tensors, (size_t)f->n, sizeof key, by_name) : NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);          /* inf, nan */
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13); /* normal: rebias 15 -> 127 */
    else if (man == 0) bits = sign;                                      /* zero */
    else {                                                               /* subnormal: normalize */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

ms_status ms_st_read(const ms_st_file *f, const ms_st_tensor *t, int64_t first, int64_t n, float *out) {
    if (t->dtype != MS_ST_F32 && t->dtype != MS_ST_BF16 && t->dtype != MS_ST_F16)
        return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s has dtype %s; moonspeed reads weights of dtype "
                       "F32, BF16 or F16", f->path, t->name, dtype_names[t->dtype]);
    if (first < 0 || n < 0 || first + n > t->numel)
        return ms_fail(MS_ERR_INTERNAL, "safetensors %s: tensor %s: elements [%lld, %lld) outside 0..%lld",
                       f->path, t->name, (long long)first, (long long)(first + n), (long long)t->numel);
    int size = dtype_sizes[t->dtype];
    int64_t at = f->data_start + t->begin + first * size;
    if (size == 4) return ms_read_exact_at("safetensors", f->path, f->fd, out, n * 4, at);
    uint16_t buf[4096];
    while (n > 0) {
        int64_t k = n < 4096 ? n : 4096;
        TRY(ms_read_exact_at("safetensors", f->path, f->fd, buf, k * 2, at));
        for (int64_t i = 0; i < k; i++) {
            if (t->dtype == MS_ST_BF16) {
                uint32_t bits = (uint32_t)buf[i] << 16;
                memcpy(&out[i], &bits, 4);
            } else {
                out[i] = half_to_float(buf[i]);
            }
        }
        out += k, n -= k, at += k * 2;
    }
    return MS_OK;
}

/* ---- writing -------------------------------------------------------------- */

ms_status ms_st_begin(ms_st_writer *w, const char *path, int32_t dtype, const ms_st_spec *specs, int n,
                      const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    memset(w, 0, sizeof *w);
    w->out.fd = -1;
    if (dtype != MS_ST_F32 && dtype != MS_ST_BF16)
        return ms_fail(MS_ERR_INVALID, "safetensors %s: writing dtype %s; expected F32 or BF16", path,
                       ms_st_dtype_name(dtype));
    w->dtype = dtype;
    ms_text h = {0};
    ms_text_printf(&h, "{");
    if (n_meta > 0) {
        ms_text_printf(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            ms_text_printf(&h, i ? "," : "");
            ms_text_string(&h, meta_keys[i]);
            ms_text_printf(&h, ":");
            ms_text_string(&h, meta_values[i]);
        }
        ms_text_printf(&h, "}");
    }
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        ms_text_printf(&h, "%s", i || n_meta > 0 ? "," : "");
        ms_text_string(&h, specs[i].name);
        ms_text_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[dtype]);
        for (int d = 0; d < specs[i].ndim; d++) {
            ms_text_printf(&h, "%s%lld", d ? "," : "", (long long)specs[i].shape[d]);
            numel *= specs[i].shape[d];
        }
        int64_t end = at + numel * dtype_sizes[dtype];
        ms_text_printf(&h, "],\"data_offsets\":[%lld,%lld]}", (long long)at, (long long)end);
        at = end;
    }
    ms_text_printf(&h, "}");
    while (h.len % 8 != 0) ms_text_printf(&h, " "); /* data starts 8-byte aligned, as the reference writes */
    ms_status st = ms_text_done(&h, "safetensors header");
    if (st == MS_OK) st = ms_file_begin(&w->out, "safetensors", path);
    if (st == MS_OK) {
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
        st = ms_file_write(&w->out, len, 8);
        if (st == MS_OK) st = ms_file_write(&w->out, h.s, (int64_t)h.len);
    }
    ms_text_free(&h);
    w->expected = at;
    return st;
}

ms_status ms_st_write(ms_st_writer *w, const float *x, int64_t n) {
    int64_t bytes = n * dtype_sizes[w->dtype];
    if (w->written + bytes > w->expected) {
        ms_st_abort(w);
        return ms_fail(MS_ERR_INTERNAL, "safetensors %s: %lld bytes written past the planned %lld", w->out.path,
                       (long long)(w->written + bytes), (long long)w->expected);
    }
    w->written += bytes;
    if (w->dtype == MS_ST_F32) return ms_file_write(&w->out, x, bytes);
    while (n > 0) {
        int64_t k = n < 4096 ? n : 4096;
        for (int64_t i = 0; i < k; i++) {
            float r = cpu_bf16_round(x[i]);
            uint32_t bits;
            memcpy(&bits, &r, 4);
            w->buf[i] = (uint16_t)(bits >> 16);
        }
        TRY(ms_file_write(&w->out, w->buf, k * 2));
        x += k, n -= k;
    }
    return MS_OK;
}

ms_status ms_st_commit(ms_st_writer *w) {
    if (w->written != w->expected) {
        ms_st_abort(w);
        return ms_fail(MS_ERR_INTERNAL, "safetensors %s: %lld of the planned %lld data bytes were written",
                       w->out.path, (long long)w->written, (long long)w->expected);
    }
    return ms_file_commit(&w->out);
}

void ms_st_abort(ms_st_writer *w) {
    if (w->out.fd >= 0) ms_file_abort(&w->out);
}
