/*
 * core/json.h — a small strict JSON reader and a text builder for writing it.
 *
 * The reader takes RFC 8259 JSON and nothing else: no comments, no trailing
 * commas, no NaN, no duplicate object keys, no bytes after the value, at most
 * 64 levels of nesting. It exists for files that strangers hand us (the
 * headers of safetensors files, config.json, model.safetensors.index.json),
 * so a failure says what was wrong and at which byte. Integers without a
 * fraction or exponent that fit in int64 are kept exactly (safetensors offsets
 * need all 64 bits; a double has 53).
 *
 * The builder appends formatted text and escaped strings to a growing buffer.
 */
#ifndef MS_CORE_JSON_H
#define MS_CORE_JSON_H
#include <stddef.h>
#include <stdint.h>

#include "include/moonspeed.h"

typedef enum ms_json_kind {
    MS_JSON_NULL, MS_JSON_BOOL, MS_JSON_NUMBER, MS_JSON_STRING, MS_JSON_ARRAY, MS_JSON_OBJECT
} ms_json_kind;

typedef struct ms_json {
    ms_json_kind kind;
    int boolean;              /* BOOL */
    double number;            /* NUMBER */
    int is_int;               /* NUMBER written as an integer that fits int64 */
    int64_t integer;          /* ... and its exact value */
    char *string;             /* STRING: NUL-terminated UTF-8 (may hold NULs from \u0000; see len) */
    size_t len;
    int n;                    /* ARRAY, OBJECT: items */
    struct ms_json *items;    /* (n) */
    char **keys;              /* (n) OBJECT keys, in file order */
} ms_json;

/* Parses text[0..n). On failure the message is "at byte K: <what was wrong>";
 * callers prefix it with the file (ms_fail_context). *out is freed with
 * ms_json_free. */
ms_status ms_json_parse(const char *text, size_t n, ms_json **out);
void ms_json_free(ms_json *v);

/* The member `key` of an object, or NULL (also when v is not an object). */
const ms_json *ms_json_get(const ms_json *v, const char *key);
/* "null", "a boolean", "a number", "a string", "an array", "an object". */
const char *ms_json_kind_name(ms_json_kind k);

/* A growing text buffer. Appending never fails: on out of memory the buffer
 * remembers it and ms_text_done reports it once. */
typedef struct ms_text {
    char *s;
    size_t len, cap;
    int oom;
} ms_text;
void ms_text_printf(ms_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ms_text_string(ms_text *t, const char *s);   /* as a quoted, escaped JSON string */
/* MS_OK, or MS_ERR_NOMEM naming `what` when an append ran out of memory. */
ms_status ms_text_done(ms_text *t, const char *what);
void ms_text_free(ms_text *t);

#endif
