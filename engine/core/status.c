/* core/status.c — the thread-local error message and status names. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/status.h"

#define MS_ERROR_LEN 1024
static _Thread_local char last_error[MS_ERROR_LEN];

const char *ms_last_error(void) { return last_error; }

const char *ms_version(void) { return "0.1.0"; }

const char *ms_status_name(ms_status status) {
    switch (status) {
    case MS_OK: return "ok";
    case MS_ERR_INVALID: return "invalid argument";
    case MS_ERR_IO: return "i/o error";
    case MS_ERR_FORMAT: return "bad file format";
    case MS_ERR_NOMEM: return "out of memory";
    case MS_ERR_STATE: return "wrong state";
    case MS_ERR_INTERNAL: return "internal error";
    case MS_ERR_NUMERIC: return "not finite";
    }
    return "unknown status";
}

ms_status ms_fail(ms_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

ms_status ms_fail_context(ms_status status, const char *fmt, ...) {
    char previous[MS_ERROR_LEN];
    memcpy(previous, last_error, sizeof previous);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof last_error)
        snprintf(last_error + n, sizeof last_error - (size_t)n, ": %s", previous);
    return status;
}
