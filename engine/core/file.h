/*
 * core/file.h — atomic file writes: everything goes to PATH.tmp.<pid>, is
 * fsync'ed, then renamed over PATH. A failure at any point leaves PATH as it
 * was and removes the temporary, so nothing on disk is ever half-written.
 */
#ifndef MS_CORE_FILE_H
#define MS_CORE_FILE_H
#include <stdint.h>

#include "include/moonspeed.h"

typedef struct ms_span {
    const void *data;
    int64_t bytes;
} ms_span;

/* Write the spans one after another as the new content of path. `what` names
 * the file in messages ("token shard", "weights"). */
ms_status ms_write_atomic(const char *what, const char *path, const ms_span *spans, int n_spans);

/* The same, streamed: begin, write any number of times, then commit (or
 * abort). After a failed write the file is aborted already. */
typedef struct ms_file_out {
    const char *what;
    char path[4096];
    char tmp[4096];
    int fd;
} ms_file_out;
ms_status ms_file_begin(ms_file_out *f, const char *what, const char *path);
ms_status ms_file_write(ms_file_out *f, const void *data, int64_t bytes);
ms_status ms_file_commit(ms_file_out *f);
void ms_file_abort(ms_file_out *f);

/* Read exactly `bytes` at the current position, or at offset `at` (pread);
 * a short read is a format error: the file is truncated. */
ms_status ms_read_exact(const char *what, const char *path, int fd, void *dst, int64_t bytes);
ms_status ms_read_exact_at(const char *what, const char *path, int fd, void *dst, int64_t bytes, int64_t at);

#endif
