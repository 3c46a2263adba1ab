/*
 * core/status.h — setting the thread-local error behind ms_last_error().
 *
 *   return ms_fail(MS_ERR_INVALID, "model.dim = %d is not divisible by n_heads = %d; ...", ...);
 *
 * ms_fail formats the sentence, stores it and returns the status, so a failing
 * path is one line. TRY propagates a failure from a callee unchanged.
 */
#ifndef MS_CORE_STATUS_H
#define MS_CORE_STATUS_H
#include "include/moonspeed.h"

ms_status ms_fail(ms_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with context: "creating the engine: <old message>". */
ms_status ms_fail_context(ms_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define TRY(call)                          \
    do {                                   \
        ms_status try_st_ = (call);        \
        if (try_st_ != MS_OK) return try_st_; \
    } while (0)

#endif
